//! `[store] maildir` and `facteur-mda store export|import --maildir` through the
//! real binaries: mail sent through the stack lands as a file in lyon's Maildir
//! `new/` and the MAA tells the user where the mailboxes are; a sled store with
//! folders, flags, keywords and subscriptions exports to the Maildir++ tree
//! Dovecot reads, and imports back into a fresh store the same. Nets 127.90-91.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use facteur_mda::store::{BlobStore, FlagOp, MailStore, SledStore};
use facteur_tests::stack::dev_password;
use facteur_tests::{Stack, StackSpec};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mda(args: &[String]) -> Output {
    Command::new(facteur_tests::bin_dir().join("facteur-mda"))
        .args(args)
        .output()
        .expect("run facteur-mda")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn python(script: &str) -> Output {
    Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("run python3")
}

#[test]
fn mail_sent_through_the_stack_lands_in_lyons_maildir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("Maildir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 90);
    spec.sets.push((
        "lyon.test/mda".into(),
        format!("store.maildir={:?}", maildir.display().to_string()),
    ));
    spec.prepare().expect("prepare var/");
    let stack: Stack = spec.start().expect("start the stack");
    let lyon = stack.spec.domain("lyon.test").expect("lyon").ip.to_string();

    // A message to lyon's MTA, as another domain's MTA would send it.
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("{lyon}", 2525)
s.sendmail("pierre@paris.test", ["andre@lyon.test"],
    b"From: pierre@paris.test\r\nTo: andre@lyon.test\r\nSubject: maildir check\r\n\r\nfiled as a file\r\n")
s.quit()
"#
    ));
    assert!(out.status.success(), "{}\n{}", text(&out), stack.all_logs());
    let new = maildir.join("lyon.test/andre/new");
    assert!(
        Stack::wait_until(Duration::from_secs(30), || !files(&new).is_empty()),
        "nothing in {}:\n{}",
        new.display(),
        stack.all_logs()
    );
    let got = files(&new);
    assert_eq!(got.len(), 1, "{got:?}");
    let bytes = std::fs::read(&got[0]).expect("read the file");
    let s = String::from_utf8_lossy(&bytes);
    assert!(s.starts_with("Return-Path: <pierre@paris.test>\r\n"), "{s}");
    assert!(
        s.contains("Subject: maildir check\r\n") && s.ends_with("filed as a file\r\n"),
        "{s}"
    );
    let name = got[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(name.contains(".mail.lyon.test,S="), "{name}");
    assert!(
        !dir.path()
            .join("var/lyon.test/mda/blobs")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );

    // The MAA says where the mailboxes are instead of showing empty ones.
    let out = python(&format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
c = imaplib.IMAP4_SSL("{lyon}", 9930, ssl_context=ctx)
try:
    c.login("andre@lyon.test", "{pw}")
    print("LOGGED IN")
except imaplib.IMAP4.error as e:
    print("REFUSED", e)
"#,
        pw = dev_password(),
        ca = stack.spec.ca().display()
    ));
    let said = text(&out);
    assert!(
        said.contains("REFUSED")
            && said.contains("[UNAVAILABLE]")
            && said.contains("mailboxes are in the Maildir at"),
        "{said}"
    );

    // The store commands refuse while the MDA holds the store.
    let config = dir.path().join("var/lyon.test/facteur-mda.toml");
    let out = mda(&[
        "--config".into(),
        config.display().to_string(),
        "store".into(),
        "export".into(),
        "--maildir".into(),
        dir.path().join("x").display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is facteur-mda running? stop it first"),
        "{}",
        text(&out)
    );
}

fn data_args(data: &Path) -> Vec<String> {
    vec![
        "--set".into(),
        format!("data_dir={:?}", data.display().to_string()),
        "--set".into(),
        "hostname=\"mail.lyon.test\"".into(),
    ]
}

fn store_cmd(data: &Path, what: &str, maildir: &Path, user: Option<&str>) -> String {
    let mut args = data_args(data);
    args.extend([
        "store".into(),
        what.into(),
        "--maildir".into(),
        maildir.display().to_string(),
    ]);
    if let Some(u) = user {
        args.extend(["--user".into(), u.into()]);
    }
    let out = mda(&args);
    assert!(out.status.success(), "store {what}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const USER: &str = "andre@lyon.test";

/// (mailbox, flags, date, body) of every message of the user, sorted.
fn contents(data: &Path) -> Vec<(String, Vec<String>, i64, Vec<u8>)> {
    let store = SledStore::open(data).expect("open the store");
    let mut out = Vec::new();
    for mb in store.list_mailboxes(USER).expect("mailboxes") {
        for m in store.list(USER, &mb, 1, 1000).expect("list") {
            let mut flags = m.flags.clone();
            flags.sort();
            let body = BlobStore::get(&store, &m.blob, None).expect("blob");
            out.push((mb.clone(), flags, m.internal_date, body));
        }
    }
    out.sort();
    out
}

#[test]
fn export_then_import_keeps_folders_flags_keywords_dates_and_subscriptions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("mda");
    let mut add = data_args(&data);
    add.extend([
        "user".into(),
        "add".into(),
        USER.into(),
        "--password".into(),
        "pw".into(),
    ]);
    assert!(mda(&add).status.success());
    {
        let store = SledStore::open(&data).expect("open the store");
        store.prepare_user(USER).expect("prepare");
        store.create_mailbox(USER, "Archiv/2024").expect("create");
        store.create_mailbox(USER, "Entwürfe").expect("create");
        store
            .set_subscribed(USER, "Archiv/2024", true)
            .expect("subscribe");
        let put = |mb: &str, n: u32, flags: &[&str], date: i64| {
            let body = format!("Subject: {mb} {n}\r\n\r\nbody {n}\r\n");
            let blob = store.put(body.as_bytes()).expect("put");
            let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
            store
                .append(USER, mb, &blob, body.len() as u64, &flags, date)
                .expect("append");
        };
        put("INBOX", 1, &[], 1_600_000_000);
        put(
            "INBOX",
            2,
            &["\\Seen", "\\Flagged", "$Label1"],
            1_600_000_100,
        );
        put("Sent", 3, &["\\Seen", "\\Answered"], 1_600_000_200);
        put(
            "Archiv/2024",
            4,
            &["\\Seen", "Junk", "$Label1"],
            1_500_000_000,
        );
        put("Entwürfe", 5, &["\\Draft"], 1_600_000_300);
        put("Trash", 6, &["\\Deleted", "\\Seen"], 1_600_000_400);
        let uid = store.uids(USER, "Sent").expect("uids")[0];
        store
            .store_flags(
                USER,
                "Sent",
                &[uid],
                FlagOp::Add,
                &["$Forwarded".into()],
                None,
            )
            .expect("flags");
    }
    let before = contents(&data);
    assert_eq!(before.len(), 6);

    let maildir = dir.path().join("Maildir");
    let said = store_cmd(&data, "export", &maildir, None);
    for line in [
        "andre@lyon.test INBOX: 2 messages",
        "andre@lyon.test Sent: 1 messages",
        "andre@lyon.test Archiv/2024: 1 messages",
        "andre@lyon.test Drafts: 0 messages",
    ] {
        assert!(said.contains(line), "{line} in:\n{said}");
    }
    let home = maildir.join("lyon.test/andre");
    let cur_names = |d: &str| -> Vec<String> {
        files(&home.join(d).join("cur"))
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let info = |d: &str| -> Vec<String> {
        cur_names(d)
            .iter()
            .map(|n| {
                n.rsplit_once(":2,")
                    .map(|(_, l)| l.to_owned())
                    .unwrap_or_default()
            })
            .collect()
    };
    // Keywords get letters in the order the folder first meets them.
    let mut inbox = info("");
    inbox.sort();
    assert_eq!(inbox, ["", "FSa"]);
    assert_eq!(
        std::fs::read_to_string(home.join("dovecot-keywords")).unwrap(),
        "0 $Label1\n"
    );
    assert_eq!(info(".Sent"), ["RSa"]);
    assert_eq!(
        std::fs::read_to_string(home.join(".Sent/dovecot-keywords")).unwrap(),
        "0 $Forwarded\n"
    );
    assert_eq!(info(".Archiv.2024"), ["Sab"]);
    assert_eq!(info(".Entw&APw-rfe"), ["D"]);
    assert_eq!(info(".Trash"), ["ST"]);
    assert!(home.join(".Archiv.2024/maildirfolder").is_file());
    let archived = &files(&home.join(".Archiv.2024/cur"))[0];
    let mtime = std::fs::metadata(archived).unwrap().modified().unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_500_000_000
    );
    let subs = std::fs::read_to_string(home.join("subscriptions")).unwrap();
    for s in ["INBOX", "Sent", "Archiv.2024", "Trash"] {
        assert!(subs.lines().any(|l| l == s), "{s} in {subs}");
    }
    // A second export would duplicate: refused.
    let mut again = data_args(&data);
    again.extend([
        "store".into(),
        "export".into(),
        "--maildir".into(),
        maildir.display().to_string(),
    ]);
    let out = mda(&again);
    assert!(
        !out.status.success() && text(&out).contains("already holds mail"),
        "{}",
        text(&out)
    );

    // Import into a fresh store gives the same mailboxes, flags, dates and bytes.
    let fresh = dir.path().join("mda2");
    let said = store_cmd(&fresh, "import", &maildir, Some(USER));
    assert!(
        said.contains("andre@lyon.test Entwürfe: 1 messages"),
        "{said}"
    );
    assert_eq!(contents(&fresh), before);
    {
        let store = SledStore::open(&fresh).expect("open");
        let subs = store.subscriptions(USER).expect("subscriptions");
        assert!(subs.contains(&"Archiv/2024".to_string()), "{subs:?}");
    }
    // A second import is a no-op.
    let said = store_cmd(&fresh, "import", &maildir, None);
    assert!(
        said.contains("andre@lyon.test INBOX: 0 messages, 2 already imported"),
        "{said}"
    );
    assert_eq!(contents(&fresh), before);
}
