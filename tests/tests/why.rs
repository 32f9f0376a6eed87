//! `facteur-mua why`: each fault of the course told by its reason, from the
//! agents' transcripts of a real stack: unknown user, relay refused, wrong
//! password (POP3 and SMTP AUTH), next hop down (by queue ID), in English and
//! French.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use facteur_tests::{Stack, StackSpec};

fn mua(stack: &Stack, password: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(stack.spec.bin_dir.join("facteur-mua"))
        .args(args)
        .env("FACTEUR_PASSWORD", password)
        .env("FACTEUR_CA", stack.spec.ca())
        .env("FACTEUR_TRANSCRIPTS", stack.spec.var.join("transcripts"))
        .output()
        .expect("run facteur-mua");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `why TARGET` until it says `words` (records are written when a connection ends).
fn why_says(stack: &Stack, target: &str, lang: &str, words: &str) -> String {
    let mut last = String::new();
    let ok = Stack::wait_until(Duration::from_secs(60), || {
        last = mua(stack, "", &["why", target, "--lang", lang]).1;
        last.contains(words)
    });
    assert!(
        ok,
        "why {target} never said {words:?}:\n{last}\n{}",
        stack.all_logs()
    );
    last
}

/// One SMTP line and its (last) reply line.
fn say(conn: &mut BufReader<TcpStream>, line: &str) -> String {
    if !line.is_empty() {
        conn.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
    }
    loop {
        let mut reply = String::new();
        conn.read_line(&mut reply).expect("read");
        if reply.len() < 4 || reply.as_bytes()[3] != b'-' {
            return reply;
        }
    }
}

#[test]
fn why_names_the_reason_of_each_fault_from_the_agents_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 121);
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");
    let ip = |d: &str| stack.spec.domain(d).expect("domain").ip.to_string();
    let (paris, lyon) = (ip("paris.test"), ip("lyon.test"));
    let p = stack.spec.ports.clone();
    let pw = facteur_tests::stack::dev_password();
    let submission = format!("{paris}:{}", p.submission);
    let send = |stack: &Stack, to: &str| {
        mua(
            stack,
            &pw,
            &[
                "send",
                "--server",
                &submission,
                "--user",
                "pierre@paris.test",
                "--from",
                "pierre@paris.test",
                "--to",
                to,
                "--subject",
                "why",
                "--body",
                "x",
            ],
        )
    };

    // `send --transcript` prints the dialogue as the course's telnet sessions do.
    let (ok, out) = mua(
        &stack,
        &pw,
        &[
            "send",
            "--server",
            &submission,
            "--user",
            "pierre@paris.test",
            "--from",
            "pierre@paris.test",
            "--to",
            "andre@lyon.test",
            "--subject",
            "telnet",
            "--body",
            "x",
            "--transcript",
        ],
    );
    assert!(ok, "{out}");
    for line in [
        "S: 220 mail.paris.test",
        "C: STARTTLS",
        "C: AUTH PLAIN ********",
        "S: 235 ",
        "C: RCPT TO:<andre@lyon.test>",
        "C: .",
        "S: 250 2.0.0 Ok: queued as",
        "C: QUIT",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "{line:?} missing:\n{out}"
        );
    }
    assert!(
        !out.contains("AHBpZXJyZ"),
        "the AUTH PLAIN token is shown:\n{out}"
    );
    // `fetch --transcript` (POP3) likewise, before the message.
    let pop3 = format!("{lyon}:{}", p.pop3);
    let fetch = |stack: &Stack| {
        mua(
            stack,
            &pw,
            &[
                "fetch",
                "--pop3",
                &pop3,
                "--user",
                "andre@lyon.test",
                "--last",
                "--transcript",
            ],
        )
    };
    let arrived = Stack::wait_until(Duration::from_secs(60), || {
        let (ok, out) = fetch(&stack);
        ok && out.contains("Subject:    telnet")
    });
    assert!(arrived, "andre never got the telnet message");
    let (_, out) = fetch(&stack);
    for line in [
        "C: STLS",
        "C: USER andre@lyon.test",
        "C: PASS ********",
        "C: RETR 1",
        "C: QUIT",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing:\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("S: (") && l.contains("octets of message")),
        "{out}"
    );
    assert!(!out.contains(&format!("PASS {pw}")), "{out}");
    // And over IMAP (commands and responses as imap-next hands them over).
    let imap = format!("{lyon}:{}", p.imap);
    let (ok, out) = mua(
        &stack,
        &pw,
        &[
            "fetch",
            "--imap",
            &imap,
            "--user",
            "andre@lyon.test",
            "--last",
            "--transcript",
        ],
    );
    assert!(ok, "{out}");
    for needle in [
        "S: * OK",
        "STARTTLS",
        "* TLS started",
        "LOGIN",
        "EXAMINE",
        "octets of message",
        "LOGOUT",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let login = out
        .lines()
        .find(|l| l.contains(" LOGIN "))
        .expect("a LOGIN line");
    assert!(
        login.ends_with("********") && !login.contains(&pw),
        "{login}"
    );

    // `trace --transcripts`: the Received hops, then each agent's record of it.
    let (ok, raw) = mua(
        &stack,
        &pw,
        &[
            "fetch",
            "--pop3",
            &pop3,
            "--user",
            "andre@lyon.test",
            "--last",
            "--raw",
        ],
    );
    assert!(ok, "{raw}");
    let file = dir.path().join("telnet.eml");
    std::fs::write(&file, raw).expect("write the message");
    let (ok, traced) = mua(&stack, "", &["trace", file.to_str().expect("path")]);
    assert!(ok, "{traced}");
    for needle in [
        "with ESMTPSA",
        "with ESMTPS id",
        "[facteur-msa on mail.paris.test: submission",
        "[facteur-mta on mail.paris.test: smtp-out",
        "[facteur-mta on mail.lyon.test: smtp",
        "[facteur-mta on mail.lyon.test: grpc-out",
        "[facteur-mda on mail.lyon.test: grpc-in",
        "gRPC Delivery.Deliver",
        "[facteur-maa on mail.lyon.test: pop3",
        "filed as UID",
    ] {
        assert!(traced.contains(needle), "{needle:?} missing:\n{traced}");
    }

    // Unknown user: the MSA takes it (another domain), lyon's MTA says 550 5.1.1.
    let (ok, out) = send(&stack, "nobody@lyon.test");
    assert!(ok, "{out}");
    let text = why_says(&stack, "nobody@lyon.test", "en", "unknown user");
    assert!(text.contains("550 5.1.1"), "{text}");
    why_says(&stack, "nobody@lyon.test", "fr", "utilisateur inconnu");

    // A relay attempt on lyon's port 25 for a paris address.
    let mut conn = BufReader::new(
        TcpStream::connect(format!("{lyon}:{}", p.smtp)).expect("connect to lyon's MTA"),
    );
    assert!(say(&mut conn, "").starts_with("220"));
    assert!(say(&mut conn, "EHLO attacker.example").starts_with("250"));
    assert!(say(&mut conn, "MAIL FROM:<spam@attacker.example>").starts_with("250"));
    let refused = say(&mut conn, "RCPT TO:<victim@paris.test>");
    assert!(refused.starts_with("554 5.7.1"), "{refused}");
    say(&mut conn, "QUIT");
    drop(conn);
    let text = why_says(&stack, "victim@paris.test", "en", "relay refused");
    assert!(
        text.contains("attacker.example") || text.contains("554 5.7.1"),
        "{text}"
    );
    why_says(&stack, "victim@paris.test", "fr", "relais refusé");

    // A wrong POP3 password.
    let (ok, out) = mua(
        &stack,
        "not-the-password",
        &[
            "fetch",
            "--pop3",
            &pop3,
            "--user",
            "andre@lyon.test",
            "--last",
        ],
    );
    assert!(!ok, "{out}");
    let text = why_says(&stack, "andre@lyon.test", "en", "wrong password");
    assert!(
        text.contains("-ERR [AUTH]") && text.contains("PASS ********"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");

    // A wrong SMTP AUTH password: the dialogue masks the AUTH line, the MSA's
    // note names the user, so `why` finds it by address.
    let (ok, out) = mua(
        &stack,
        "not-the-password",
        &[
            "send",
            "--server",
            &submission,
            "--user",
            "jacques@paris.test",
            "--from",
            "jacques@paris.test",
            "--to",
            "andre@lyon.test",
            "--body",
            "x",
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("535"), "{out}");
    let text = why_says(&stack, "jacques@paris.test", "en", "wrong password");
    assert!(
        text.contains("facteur-msa") && text.contains("AUTH refused for jacques@paris.test"),
        "{text}"
    );
    why_says(&stack, "jacques@paris.test", "fr", "mauvais mot de passe");

    // lyon's MTA down: paris keeps the message; why by paris's queue ID.
    stack.kill("lyon.test", "mta").expect("kill lyon's MTA");
    let (ok, out) = send(&stack, "andre@lyon.test");
    assert!(ok, "{out}");
    let queue_id = out
        .split("queued as ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("a queue ID")
        .to_owned();
    let text = why_says(&stack, &queue_id, "en", "next hop down");
    assert!(text.contains("attempt failed"), "{text}");
    why_says(&stack, &queue_id, "fr", "serveur suivant injoignable");
}
