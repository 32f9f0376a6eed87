//! Abuse paths a hostile client tries on the dev stack, each refused with the
//! protocol's clear error, and nothing delivered: a stranger on port 25
//! claiming one of our own users as the sender; user names that would forge
//! log lines; RCPT harvesting; a From: that is not the login's, and a
//! client's own Return-Path; the agents' files are theirs alone; mail aimed
//! at internal addresses; deleted mail's bytes left on disk for ever.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use facteur_tests::{Stack, StackSpec};

/// A raw SMTP client, as a hostile one would speak.
struct Smtp(BufReader<TcpStream>);

impl Smtp {
    fn connect(addr: &str) -> Smtp {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut s = Smtp(BufReader::new(tcp));
        assert!(s.reply().starts_with("220"));
        s
    }

    /// The last line of the next reply.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).expect("read a reply");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.trim_end().to_owned();
            }
        }
    }

    fn say(&mut self, line: &str) -> String {
        self.0
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        self.reply()
    }
}

/// Every message in `user`'s mailbox (POP3, read with the MUA).
fn mailbox(stack: &Stack, user: &str) -> String {
    let ip = stack
        .spec
        .domain(user.split('@').nth(1).unwrap_or_default())
        .expect("domain")
        .ip;
    let out = Command::new(stack.spec.bin_dir.join("facteur-mua"))
        .args([
            "fetch",
            "--pop3",
            &format!("{ip}:{}", stack.spec.ports.pop3),
        ])
        .args(["--user", user, "--all", "--raw"])
        .env("FACTEUR_PASSWORD", facteur_tests::stack::dev_password())
        .env("FACTEUR_CA", stack.spec.ca())
        .output()
        .expect("run facteur-mua");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_stranger_on_port_25_cannot_claim_a_local_sender() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 124);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    let paris = stack.spec.domain("paris.test").expect("paris").ip;
    let mta = format!("{paris}:{}", stack.spec.ports.smtp);
    let token = format!("spoof-{}", std::process::id());

    let mut c = Smtp::connect(&mta);
    assert!(c.say("EHLO attacker.example").starts_with("250"));
    let refused = c.say("MAIL FROM:<jacques@paris.test>");
    assert!(
        refused.starts_with("550 5.7.1") && refused.contains("jacques@paris.test"),
        "a forged local sender must be refused: {refused}"
    );
    // The same session goes on: without a transaction, RCPT is out of sequence.
    assert!(c.say("RCPT TO:<pierre@paris.test>").starts_with("503"));
    // Mail from a remote sender still comes in, and is the only one delivered.
    assert!(c.say("MAIL FROM:<someone@example.org>").starts_with("250"));
    assert!(c.say("RCPT TO:<pierre@paris.test>").starts_with("250"));
    assert!(c.say("DATA").starts_with("354"));
    let body = format!("From: someone@example.org\r\nSubject: {token} remote\r\n\r\nhello\r\n.");
    assert!(c.say(&body).starts_with("250"));
    c.say("QUIT");

    let mut got = String::new();
    let arrived = Stack::wait_until(Duration::from_secs(60), || {
        got = mailbox(&stack, "pierre@paris.test");
        got.contains(&format!("{token} remote"))
    });
    assert!(
        arrived,
        "the remote sender's mail never came:\n{}",
        stack.all_logs()
    );
    assert!(
        !got.contains("jacques@paris.test"),
        "a forged message was delivered:\n{got}"
    );
    let log = stack.log("paris.test", "mta");
    assert!(
        log.contains("local sender from an untrusted client refused"),
        "the refusal is logged:\n{log}"
    );
    // What the agents wrote for it (queue, spool, store, account hashes) is
    // theirs alone: no group or other bits anywhere under their data dirs.
    for agent in ["mta", "mda"] {
        let data = stack.spec.var.join("paris.test").join(agent);
        let loose = loose_files(&data);
        assert!(loose.is_empty(), "{agent}: readable by others: {loose:#?}");
    }
}

/// Every path under `dir` (itself included) with a group or other permission bit.
fn loose_files(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{} {mode:o}", p.display()));
        }
        if meta.is_dir() {
            todo.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Run one of `tests/py/`'s scripts against the stack; it must pass.
fn py(stack: &Stack, script: &str) {
    let ip = |d: &str| stack.spec.domain(d).expect("domain").ip.to_string();
    let out = Command::new("python3")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("py")
                .join(script),
        )
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(stack.spec.ca())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stack.all_logs()
    );
}

#[test]
fn user_names_with_cr_lf_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 125);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    py(&stack, "log_forging.py");
    for agent in ["msa", "maa"] {
        let mut log = String::new();
        // The refusals are logged once the sessions are answered.
        let logged = Stack::wait_until(Duration::from_secs(30), || {
            log = stack.log("paris.test", agent);
            log.contains("authentication failed")
        });
        assert!(logged, "the {agent} logged no failed login:\n{log}");
        let forged: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("FORGED-LINE") && !l.contains("authentication failed"))
            .collect();
        assert!(
            forged.is_empty(),
            "the {agent}'s log has a forged line: {forged:#?}"
        );
        assert!(
            log.lines().any(|l| l.contains("authentication failed")
                && l.contains("eve\\r\\n2026-12-02T00:00:00.000000Z  INFO FORGED-LINE")),
            "the {agent} logs the name escaped, on the refusal's own line:\n{log}"
        );
    }
}

#[test]
fn rcpt_harvesting_is_slowed_then_cut_with_421() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 126);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    let lyon = stack.spec.domain("lyon.test").expect("lyon").ip;
    let mut c = Smtp::connect(&format!("{lyon}:{}", stack.spec.ports.smtp));
    assert!(c.say("EHLO harvester.example").starts_with("250"));
    assert!(
        c.say("MAIL FROM:<harvester@example.org>")
            .starts_with("250")
    );
    // 1,000 guesses pipelined in one write, as a harvester sends them.
    let guesses: String = (0..1000)
        .map(|i| format!("RCPT TO:<guess{i}@lyon.test>\r\n"))
        .collect();
    let tcp = c.0.get_mut();
    tcp.write_all(guesses.as_bytes())
        .expect("write the guesses");
    let mut replies = Vec::new();
    loop {
        let mut line = String::new();
        match c.0.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => replies.push(line.trim_end().to_owned()),
            // The server may reset the connection on the guesses it never read.
            Err(_) => break,
        }
    }
    let refused = replies
        .iter()
        .filter(|r| r.starts_with("550 5.1.1"))
        .count();
    assert_eq!(
        refused, 10,
        "max_errors refusals, then the cut: {replies:#?}"
    );
    assert!(
        replies.last().is_some_and(|r| r.starts_with("421 4.7.0")),
        "closed with 421: {replies:#?}"
    );
    let log = stack.log("lyon.test", "mta");
    assert!(
        log.contains("errors past the soft limit: slowing down"),
        "{log}"
    );
    // Someone else is not held up: a fresh session is answered at once.
    let mut other = Smtp::connect(&format!("{lyon}:{}", stack.spec.ports.smtp));
    assert!(other.say("EHLO friend.example").starts_with("250"));
    assert!(
        other
            .say("MAIL FROM:<friend@example.org>")
            .starts_with("250")
    );
    assert!(other.say("RCPT TO:<andre@lyon.test>").starts_with("250"));
}

#[test]
fn the_from_header_is_bound_to_the_login_and_return_path_is_not_the_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 127);
    spec.sets.push((
        "paris.test/msa".into(),
        r#"from_aliases={"pierre@paris.test"=["contact@paris.test"]}"#.into(),
    ));
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    py(&stack, "from_binding.py");
    let log = stack.log("paris.test", "msa");
    assert!(log.contains("From: not owned by the user"), "{log}");
}

#[test]
fn mail_is_never_sent_into_internal_networks_for_a_literal_or_an_mx_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 128);
    spec.extra_zones.push(facteur_tests::stack::Domain {
        name: "evil.test".into(),
        ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
    });
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    py(&stack, "internal_hosts.py");
    let log = stack.log("paris.test", "mta");
    assert!(log.contains("internal destination refused"), "{log}");
    assert!(
        !log.contains("10.0.0.1:"),
        "the MTA tried to connect to the internal address:\n{log}"
    );
}

/// Sends one message from a remote sender to `rcpt` on port 25.
fn send_remote(stack: &Stack, rcpt: &str, subject: &str, body: &str) {
    let paris = stack.spec.domain("paris.test").expect("paris").ip;
    let mut c = Smtp::connect(&format!("{paris}:{}", stack.spec.ports.smtp));
    assert!(c.say("EHLO remote.example").starts_with("250"));
    assert!(c.say("MAIL FROM:<someone@example.org>").starts_with("250"));
    assert!(c.say(&format!("RCPT TO:<{rcpt}>")).starts_with("250"));
    assert!(c.say("DATA").starts_with("354"));
    let msg = format!("From: someone@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n.");
    assert!(c.say(&msg).starts_with("250"));
    c.say("QUIT");
}

/// `facteur-mda store ARGS` for paris.test's MDA (which is running: the
/// command goes through its gRPC `StoreAdmin`): exit status and output.
fn mda_store(stack: &Stack, args: &[&str]) -> (bool, String) {
    let out = Command::new(stack.spec.bin_dir.join("facteur-mda"))
        .arg("--config")
        .arg(stack.spec.config_path("paris.test", "mda"))
        .arg("store")
        .args(args)
        .output()
        .expect("run facteur-mda");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The number after `label` on the report line that starts with it.
fn field(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the report:\n{report}"))
}

#[test]
fn deleted_mail_is_collected_from_disk_and_kept_mail_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 129);
    // Collect every second whatever has had no reference for 3 s.
    spec.sets
        .push(("mda".into(), "store.gc_interval_secs=1".into()));
    spec.sets
        .push(("mda".into(), "store.gc_grace_secs=3".into()));
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    let token = format!("gc-{}", std::process::id());
    let big = "x".repeat(200_000);
    send_remote(&stack, "pierre@paris.test", &format!("{token} one"), &big);
    send_remote(&stack, "pierre@paris.test", &format!("{token} two"), &big);
    let arrived = Stack::wait_until(Duration::from_secs(60), || {
        let got = mailbox(&stack, "pierre@paris.test");
        got.contains(&format!("{token} one")) && got.contains(&format!("{token} two"))
    });
    assert!(arrived, "the mail never came:\n{}", stack.all_logs());
    let (ok, before) = mda_store(&stack, &["check"]);
    assert!(ok, "store check on a healthy store:\n{before}");
    assert_eq!(field(&before, "messages:"), 2, "{before}");
    assert_eq!(field(&before, "blobs:"), 2, "{before}");
    assert_eq!(field(&before, "unreferenced:"), 0, "{before}");
    assert!(before.contains("status:        ok"), "{before}");

    // The user takes the mail away (POP3 deletes it once it is stored locally).
    let local = dir.path().join("local");
    let paris = stack.spec.domain("paris.test").expect("paris").ip;
    let out = Command::new(stack.spec.bin_dir.join("facteur-mua"))
        .args([
            "fetch",
            "--pop3",
            &format!("{paris}:{}", stack.spec.ports.pop3),
        ])
        .args(["--user", "pierre@paris.test", "--maildir"])
        .arg(&local)
        .env("FACTEUR_PASSWORD", facteur_tests::stack::dev_password())
        .env("FACTEUR_CA", stack.spec.ca())
        .output()
        .expect("run facteur-mua");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // New mail comes meanwhile; it must stay.
    send_remote(
        &stack,
        "pierre@paris.test",
        &format!("{token} three"),
        "kept",
    );

    let mut now = String::new();
    let collected = Stack::wait_until(Duration::from_secs(60), || {
        now = mda_store(&stack, &["check"]).1;
        field(&now, "messages:") == 1 && field(&now, "blobs:") == 1
    });
    assert!(
        collected,
        "the deleted mail's blobs stayed on disk:\n{now}\n{}",
        stack.log("paris.test", "mda")
    );
    assert!(now.contains("status:        ok"), "{now}");
    assert!(
        field(&now, "store size:") + 300_000 < field(&before, "store size:"),
        "the store did not shrink:\n{before}\n{now}"
    );
    let got = mailbox(&stack, "pierre@paris.test");
    assert!(
        got.contains(&format!("{token} three")),
        "the kept mail is gone:\n{got}"
    );
    assert!(!got.contains(&format!("{token} one")), "{got}");
    let log = stack.log("paris.test", "mda");
    assert!(
        log.contains("blob collection"),
        "the collections are logged:\n{log}"
    );
    // A collection by hand has nothing left to take.
    let (ok, gc) = mda_store(&stack, &["gc", "--grace", "0"]);
    assert!(ok && gc.contains(" 0 removed"), "{gc}");
}
