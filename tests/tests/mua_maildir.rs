//! `facteur-mua` as a mail client keeps mail: accounts from a `mua.toml`,
//! `fetch` into a local Maildir (IMAP incremental by UID, POP3 by UIDL with
//! `--keep`, else deleted from the server once stored), `list`, and `read N`
//! with its attachment saved — on a real stack.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use facteur_tests::{Stack, StackSpec};

fn mua(stack: &Stack, config: &Path, password: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(stack.spec.bin_dir.join("facteur-mua"))
        .args(args)
        .env("FACTEUR_PASSWORD", password)
        .env("FACTEUR_MUA_CONFIG", config)
        .env_remove("FACTEUR_ACCOUNT")
        .output()
        .expect("run facteur-mua");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn files_in(dir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|s| std::fs::read_dir(dir.join(s)).map_or(0, |d| d.count()))
        .sum()
}

#[test]
fn fetch_keeps_mail_in_a_maildir_and_list_and_read_show_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 123);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    let ip = |d: &str| stack.spec.domain(d).expect("domain").ip.to_string();
    let (paris, lyon) = (ip("paris.test"), ip("lyon.test"));
    let p = stack.spec.ports.clone();
    let pw = facteur_tests::stack::dev_password();
    let (imap_dir, pop_dir) = (dir.path().join("Mail-imap"), dir.path().join("Mail-pop"));
    let config = dir.path().join("mua.toml");
    std::fs::write(
        &config,
        format!(
            "default = \"andre\"\n\
             [accounts.pierre]\nuser = \"pierre@paris.test\"\nfrom = \"Pierre <pierre@paris.test>\"\n\
             submission = \"{paris}:{sub}\"\nca = \"{ca}\"\n\
             [accounts.andre]\nuser = \"andre@lyon.test\"\nimap = \"{lyon}:{imap}\"\n\
             ca = \"{ca}\"\nmaildir = \"{imap_dir}\"\n\
             [accounts.andre-pop]\nuser = \"andre@lyon.test\"\npop3 = \"{lyon}:{pop3}\"\n\
             ca = \"{ca}\"\nmaildir = \"{pop_dir}\"\n",
            sub = p.submission,
            imap = p.imap,
            pop3 = p.pop3,
            ca = stack.spec.ca().display(),
            imap_dir = imap_dir.display(),
            pop_dir = pop_dir.display(),
        ),
    )
    .expect("write mua.toml");
    let plan = dir.path().join("plan.pdf");
    std::fs::write(&plan, b"%PDF-1.4 the plan of the building").expect("write plan.pdf");
    let send = |subject: &str, attach: Option<&Path>| {
        let mut args = vec![
            "-a",
            "pierre",
            "send",
            "--to",
            "andre@lyon.test",
            "--subject",
            subject,
            "--body",
            "Bonjour",
        ];
        if let Some(a) = attach {
            args.extend(["--attach", a.to_str().expect("path")]);
        }
        let (ok, out) = mua(&stack, &config, &pw, &args);
        assert!(ok, "send with the account's server and sender: {out}");
    };
    send("first", None);
    send("with the plan", Some(&plan));

    // IMAP (the default account): new mail only, by UID; the server keeps it.
    let mut last = String::new();
    let both = Stack::wait_until(Duration::from_secs(60), || {
        last = mua(&stack, &config, &pw, &["fetch"]).1;
        files_in(&imap_dir) >= 2
    });
    assert!(
        both,
        "two messages never reached the Maildir: {last}\n{}",
        stack.all_logs()
    );
    assert_eq!(files_in(&imap_dir), 2, "{last}");
    let (ok, out) = mua(&stack, &config, &pw, &["fetch"]);
    assert!(
        ok && out.contains("0 new message(s)"),
        "nothing is fetched twice: {out}"
    );
    assert!(out.contains("2 on the server, 0 deleted"), "{out}");
    // A flag that prints (`--last`) wins over the account's Maildir.
    let (ok, out) = mua(&stack, &config, &pw, &["fetch", "--last"]);
    assert!(ok && out.contains("Subject:    with the plan"), "{out}");
    assert_eq!(files_in(&imap_dir), 2);

    // `list`, then `read 2` saves the attachment and marks it read.
    let (ok, listing) = mua(&stack, &config, &pw, &["list"]);
    assert!(ok, "{listing}");
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("   1 N ") && lines[0].contains("first"),
        "{listing}"
    );
    assert!(
        lines[1].starts_with("   2 N ") && lines[1].contains("with the plan"),
        "{listing}"
    );
    assert!(listing.contains("2 message(s), 2 unread"), "{listing}");
    let saved = dir.path().join("saved");
    let (ok, out) = mua(
        &stack,
        &config,
        "",
        &["read", "2", "--save", saved.to_str().expect("path")],
    );
    assert!(
        ok && out.contains("Bonjour") && out.contains("plan.pdf"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(saved.join("plan.pdf")).expect("the saved attachment"),
        std::fs::read(&plan).expect("plan.pdf")
    );
    let (_, listing) = mua(&stack, &config, "", &["list"]);
    assert!(listing.contains("2 message(s), 1 unread"), "{listing}");
    assert!(
        listing
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("   2   ")),
        "{listing}"
    );
    let (ok, out) = mua(&stack, &config, "", &["read", "3"]);
    assert!(!ok && out.contains("no message 3"), "{out}");

    // POP3 --keep: stored, left on the server, and not fetched again.
    let pop = ["-a", "andre-pop", "fetch", "--keep"];
    let (ok, out) = mua(&stack, &config, &pw, &pop);
    assert!(
        ok && out.contains("2 new message(s)") && out.contains("0 deleted"),
        "{out}"
    );
    let (ok, out) = mua(&stack, &config, &pw, &pop);
    assert!(
        ok && out.contains("0 new message(s)") && out.contains("2 on the server"),
        "{out}"
    );
    // A third message: only it comes, over both protocols.
    send("third", None);
    let third = Stack::wait_until(Duration::from_secs(60), || {
        last = mua(&stack, &config, &pw, &pop).1;
        files_in(&pop_dir) >= 3
    });
    assert!(third, "the third message never came: {last}");
    assert!(last.contains("1 new message(s)"), "{last}");
    let (ok, out) = mua(&stack, &config, &pw, &["fetch"]);
    assert!(ok && out.contains("1 new message(s)"), "{out}");
    assert_eq!(files_in(&imap_dir), 3);
    // Without --keep: nothing new, everything deleted from the server.
    let (ok, out) = mua(&stack, &config, &pw, &["-a", "andre-pop", "fetch"]);
    assert!(
        ok && out.contains("0 new message(s)") && out.contains("3 deleted"),
        "{out}"
    );
    let (ok, out) = mua(&stack, &config, &pw, &["-a", "andre-pop", "fetch"]);
    assert!(ok && out.contains("0 on the server"), "{out}");
    let (_, listing) = mua(&stack, &config, "", &["-a", "andre-pop", "list"]);
    assert!(listing.contains("3 message(s), 3 unread"), "{listing}");

    // The accounts file holds no password.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[accounts.a]\nuser = \"a@b\"\npassword = \"x\"\n").expect("write");
    let (ok, out) = mua(&stack, &bad, "", &["-a", "a", "list"]);
    assert!(!ok && out.contains("password"), "{out}");
}
