//! The Maildir tree on a real temporary directory: layout, flags, keywords,
//! folders and reading back.

use std::io::Write;

use super::*;

fn v(x: &[&str]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
}

#[test]
fn delivery_lands_in_new_with_a_unique_name() {
    let root = tempfile::tempdir().unwrap();
    let tree = MaildirTree::new(root.path(), "mx.lyon.test");
    let a = tree
        .deliver("Louise@Lyon.test", "INBOX", b"Subject: a\r\n\r\nA\r\n")
        .unwrap();
    let b = tree
        .deliver("louise@lyon.test", "inbox", b"Subject: b\r\n\r\nB\r\n")
        .unwrap();
    assert_ne!(a, b);
    let user = root.path().join("lyon.test/louise");
    for d in ["cur", "new", "tmp"] {
        assert!(user.join(d).is_dir(), "{d}");
    }
    assert!(!user.join("maildirfolder").exists());
    assert_eq!(
        std::fs::read(user.join("new").join(&a)).unwrap(),
        b"Subject: a\r\n\r\nA\r\n"
    );
    assert!(a.ends_with(".mx.lyon.test,S=17"), "{a}");
    assert_eq!(name::size_field(&a), Some(17));
    assert_eq!(std::fs::read_dir(user.join("tmp")).unwrap().count(), 0);
    assert!(tree.contains("louise@lyon.test", INBOX, &a).unwrap());
    assert!(
        !tree
            .contains("louise@lyon.test", INBOX, "1.M1P1Q1.x,S=1")
            .unwrap()
    );
    assert_eq!(tree.users().unwrap(), v(&["louise@lyon.test"]));
    let msgs = tree.messages("louise@lyon.test", INBOX).unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.flags.is_empty() && m.size == 17));
}

#[test]
fn export_style_writes_go_to_cur_with_flags_keywords_and_date() {
    let root = tempfile::tempdir().unwrap();
    let tree = MaildirTree::new(root.path(), "h");
    let user = "pierre@paris.test";
    let mut kw = tree.keywords(user, "Archiv/2024").unwrap();
    let flags = v(&["\\Seen", "$Label1", "\\Answered", "Junk"]);
    let letters = name::letters(&flags, |k| kw.letter_or_add(k));
    assert_eq!(letters, "RSab");
    tree.save_keywords(user, "Archiv/2024", &kw).unwrap();
    let body = b"Subject: x\r\n\r\nbody\r\n";
    let base = tree.new_name(body.len() as u64);
    let new = NewFile {
        base: &base,
        size: body.len() as u64,
        internal_date: Some(1_600_000_000),
        letters: Some(&letters),
    };
    let file = tree
        .write_message(user, "Archiv/2024", new, |f| f.write_all(body))
        .unwrap();
    assert!(file.ends_with(":2,RSab"), "{file}");
    let dir = root.path().join("paris.test/pierre/.Archiv.2024");
    assert!(dir.join("maildirfolder").is_file());
    assert!(dir.join("cur").join(&file).is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("dovecot-keywords")).unwrap(),
        "0 $Label1\n1 Junk\n"
    );
    // INBOX exists too: Dovecot wants the user's directory to be a Maildir.
    assert!(root.path().join("paris.test/pierre/cur").is_dir());

    let msgs = tree.messages(user, "Archiv/2024").unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.internal_date, 1_600_000_000);
    assert_eq!(m.size, body.len() as u64);
    assert_eq!(m.base, file.split(':').next().unwrap());
    assert_eq!(m.flags, v(&["\\Answered", "\\Seen", "$Label1", "Junk"]));
}

#[test]
fn a_short_write_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let tree = MaildirTree::new(root.path(), "h");
    let err = tree
        .write_message(
            "a@b.test",
            INBOX,
            NewFile {
                base: &tree.new_name(10),
                size: 10,
                internal_date: None,
                letters: None,
            },
            |f| f.write_all(b"short"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("5 bytes"), "{err}");
    let dir = root.path().join("b.test/a");
    for d in ["tmp", "new", "cur"] {
        assert_eq!(std::fs::read_dir(dir.join(d)).unwrap().count(), 0, "{d}");
    }
}

#[test]
fn folders_and_subscriptions_read_back() {
    let root = tempfile::tempdir().unwrap();
    let tree = MaildirTree::new(root.path(), "h");
    let user = "léa@lyon.test";
    for f in ["Sent", "Entwürfe", "a/b", "a"] {
        tree.ensure_folder(user, f).unwrap();
    }
    // Not folders: a stray file and a dot directory without cur/.
    std::fs::write(root.path().join("lyon.test/léa/.junkfile"), b"").unwrap();
    std::fs::create_dir(root.path().join("lyon.test/léa/.NoMaildir")).unwrap();
    assert!(root.path().join("lyon.test/léa/.Entw&APw-rfe/cur").is_dir());
    assert_eq!(
        tree.folders(user).unwrap(),
        v(&["INBOX", "Entwürfe", "Sent", "a", "a/b"])
    );
    tree.set_subscriptions(user, &v(&["INBOX", "Entwürfe", "a/b"]))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("lyon.test/léa/subscriptions")).unwrap(),
        "INBOX\nEntw&APw-rfe\na.b\n"
    );
    assert_eq!(
        tree.subscriptions(user).unwrap(),
        v(&["INBOX", "Entwürfe", "a/b"])
    );
    assert!(tree.ensure_folder(user, "v1.2").is_err());
    assert!(tree.user_dir("../x@y.test").is_err());
    assert!(tree.user_dir("x@..").is_err());
    assert!(tree.user_dir("a/b@c.test").is_err());
}
