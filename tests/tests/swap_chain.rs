//! The swap matrix of issue 17, row 8: a mixed chain end to end, every hop
//! between a facteur agent and a foreign server. paris.test's MTA is a real
//! Postfix (`tests/src/postfix.rs`); lyon.test's MTA and MDA are facteur's; the
//! mailbox side of the receiving domain is the facteur MDA filing into a
//! Maildir (`[store] maildir`) read by a real Dovecot (`tests/src/dovecot.rs`)
//! in the place of that domain's facteur MAA. `cargo xtask interop` runs the
//! rows by name (`row8_…`). Nets 127.95.0.x (pierre to andre) and 127.96.0.x
//! (andre's reply).
//!
//! Postfix routes by explicit transports (`smtp:[ip]:port`, `lmtp:inet:ip:port`):
//! its resolver cannot use the dev DNS (see `tests/tests/swap.rs`); the facteur
//! MTA finds Postfix through the dev DNS's MX.
//!
//! Each receiving user logs in to Dovecot once before the mail is sent (an empty
//! mailbox), so Dovecot makes the user's Maildir as its own mail user, and the
//! facteur MDA (root in the tests) files into it: the shared Maildir a real
//! site gets when both run as one `vmail` user.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use facteur_tests::mailcheck::{assert_intact, message, received, swap_py};
use facteur_tests::stack::dev_password;
use facteur_tests::{Dovecot, DovecotSpec, Postfix, PostfixSpec, Stack, StackSpec};

/// A stack on `127.<net>.0.x` without `swapped`, whose `maildir_domain` MDA
/// files into the Maildir tree `maildir`.
fn stack(
    dir: &Path,
    net: u8,
    swapped: &[(&str, &str)],
    maildir_domain: &str,
    maildir: &Path,
) -> Stack {
    let mut spec = StackSpec::dev(dir.join("var"), facteur_tests::bin_dir(), net);
    for (domain, agent) in swapped {
        spec.swap_out(domain, agent);
    }
    spec.sets.push((
        format!("{maildir_domain}/mda"),
        format!("store.maildir={:?}", maildir.display().to_string()),
    ));
    // The MDA runs as root here and Dovecot's mail processes as `mail`: the
    // Maildir must be readable by others (a deployment runs both under one
    // uid and keeps the agents' private 077).
    spec.env.push(("FACTEUR_UMASK".into(), "022".into()));
    spec.prepare().expect("prepare var/");
    spec.start().expect("start the stack")
}

fn ip(stack: &Stack, domain: &str) -> Ipv4Addr {
    stack.spec.domain(domain).expect("domain").ip
}

fn tls(stack: &Stack, domain: &str) -> (PathBuf, PathBuf) {
    let dir = stack.spec.var.join("tls");
    (
        dir.join(format!("{domain}.pem")),
        dir.join(format!("{domain}-key.pem")),
    )
}

/// Dovecot in the place of `domain`'s facteur MAA: its address, IMAP and POP3
/// ports and certificate, serving the MDA's Maildir. Its LMTP listener (unused
/// here) moves one port up, off the facteur MDA's.
fn dovecot(stack: &Stack, domain: &str, maildir: &Path) -> Dovecot {
    let mut spec = DovecotSpec::for_domain(&stack.spec, domain).expect("Dovecot spec");
    spec.maildir = maildir.to_owned();
    spec.ports.lmtp = stack.spec.ports.lmtp + 1;
    spec.start().expect("start Dovecot")
}

/// Everything a failed row prints: Postfix's queue and log, Dovecot's log,
/// the stack's logs.
fn reporter<'a>(
    stack: &'a Stack,
    postfix: &'a Postfix,
    dovecot: &'a Dovecot,
) -> impl Fn(&str) -> String + 'a {
    move |what: &str| {
        format!(
            "{what}\n===== postfix queue\n{}\n===== postfix log\n{}\n{}\n{}",
            postfix.queue(),
            postfix.log(),
            dovecot.logs(),
            stack.all_logs()
        )
    }
}

/// Run `tests/py/mailstate.py`; its JSON answer, or the test fails with `report`.
fn mailstate(stack: &Stack, args: &[&str], report: &dyn Fn(&str) -> String) -> serde_json::Value {
    let run = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/mailstate.py"))
        .args(args)
        .arg("--ca")
        .arg(stack.spec.ca())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FACTEUR_DEV_PASSWORD", dev_password())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{}",
        report(&format!(
            "mailstate.py {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        ))
    );
    serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout))
}

/// `user` logs in to the Dovecot at `host` over POP3 and finds nothing.
fn empty_at_first_login(
    stack: &Stack,
    host: Ipv4Addr,
    user: &str,
    report: &dyn Fn(&str) -> String,
) {
    let host = host.to_string();
    let pop3 = mailstate(stack, &["pop3", "--host", &host, "--user", user], report);
    assert_eq!(
        pop3,
        serde_json::json!([]),
        "{}",
        report(&format!("{user}'s new Maildir is not empty"))
    );
}

/// No message in `user`'s INBOX at the facteur MAA of `host`: no bounce came back.
fn no_bounce(stack: &Stack, host: Ipv4Addr, user: &str, report: &dyn Fn(&str) -> String) {
    let host = host.to_string();
    let state = mailstate(stack, &["imap", "--host", &host, "--user", user], report);
    assert_eq!(
        state["INBOX"]["messages"],
        serde_json::json!([]),
        "{}",
        report(&format!("{user} got mail back (a bounce?): {state:#}"))
    );
}

/// The message with `token` read from Dovecot at `host` over POP3 and over
/// IMAP (STARTTLS, dev CA), once each; the same bytes both ways.
fn read_from_dovecot(
    stack: &Stack,
    host: Ipv4Addr,
    user: &str,
    token: &str,
    dir: &Path,
    report: &dyn Fn(&str) -> String,
) -> Vec<u8> {
    let (host, ca) = (host.to_string(), stack.spec.ca().display().to_string());
    let p = &stack.spec.ports;
    let pop = dir.join(format!("{token}.pop"));
    swap_py(
        &[
            "pop",
            &host,
            &p.pop3.to_string(),
            &ca,
            user,
            token,
            "30",
            &pop.display().to_string(),
        ],
        report,
    );
    let imap = dir.join(format!("{token}.imap"));
    swap_py(
        &[
            "imap",
            &host,
            &p.imap.to_string(),
            &ca,
            user,
            token,
            "30",
            &imap.display().to_string(),
        ],
        report,
    );
    let (pop, imap) = (
        std::fs::read(pop).expect("read the POP3 copy"),
        std::fs::read(imap).expect("read the IMAP copy"),
    );
    assert_eq!(
        String::from_utf8_lossy(&pop),
        String::from_utf8_lossy(&imap),
        "{}",
        report("Dovecot serves different bytes over POP3 and IMAP")
    );
    imap
}

/// The files of `user`'s Maildir INBOX (`new/` and `cur/`) holding `token`.
fn filed(maildir: &Path, user: &str, token: &str) -> usize {
    let (local, domain) = user.split_once('@').expect("an address");
    let inbox = maildir.join(domain).join(local);
    ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(inbox.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| {
            std::fs::read(e.path())
                .map(|b| b.windows(token.len()).any(|w| w == token.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

/// The position of the one `Received:` field containing every one of `words`
/// (top, the last hop, is 0).
fn hop(trace: &[String], words: &[&str], report: &dyn Fn(&str) -> String) -> usize {
    let found: Vec<usize> = trace
        .iter()
        .enumerate()
        .filter(|(_, r)| words.iter().all(|w| r.contains(w)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}",
        report(&format!("not one hop with {words:?} in {trace:#?}"))
    );
    found[0]
}

/// Forward: pierre@paris.test submits to Postfix (paris.test's MTA, STARTTLS),
/// which sends to the facteur MTA of lyon.test (`smtp:[lyon]:port`, the
/// certificate verified against the dev CA); the facteur MDA files it into
/// lyon's Maildir and Dovecot serves it to andre over POP3 and IMAP.
#[test]
fn row8_postfix_mta_to_facteur_mta_and_maildir_mda_read_through_dovecot() {
    let net = 95;
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("maildir");
    let stack = stack(
        dir.path(),
        net,
        &[
            ("paris.test", "mta"),
            ("paris.test", "msa"),
            ("lyon.test", "maa"),
        ],
        "lyon.test",
        &maildir,
    );
    let (paris, lyon) = (ip(&stack, "paris.test"), ip(&stack, "lyon.test"));
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "paris.test");
    let hop_to_lyon = format!("[{lyon}]:{}", p.smtp);
    // Postfix delivers its own domain (a bounce to pierre) into paris's facteur MDA.
    let postfix = PostfixSpec::new(dir.path().join("postfix"), paris, "mail.paris.test")
        .smtp(p.smtp)
        .submission(p.submission)
        .mynetworks(&["127.0.0.0/8"])
        .server_tls(&cert, &key)
        .route("lyon.test", &format!("smtp:{hop_to_lyon}"))
        .route("paris.test", &format!("lmtp:inet:{paris}:{}", p.lmtp))
        .verify_tls(&stack.spec.ca(), &hop_to_lyon, "mail.lyon.test")
        .start()
        .expect("start postfix");
    let dovecot = dovecot(&stack, "lyon.test", &maildir);
    let report = reporter(&stack, &postfix, &dovecot);
    empty_at_first_login(&stack, lyon, "andre@lyon.test", &report);

    let token = format!("row8-pf-facteur-dovecot-{net}");
    let sent = message("pierre@paris.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    let ca = stack.spec.ca().display().to_string();
    swap_py(
        &[
            "send",
            &paris.to_string(),
            &p.submission.to_string(),
            "pierre@paris.test",
            "andre@lyon.test",
            &file.display().to_string(),
            "--starttls",
            &ca,
        ],
        &report,
    );
    let got = read_from_dovecot(&stack, lyon, "andre@lyon.test", &token, dir.path(), &report);
    assert_intact(&sent, &got, &report);
    assert_eq!(
        filed(&maildir, "andre@lyon.test", &token),
        1,
        "{}",
        report("not one file with the message in andre's Maildir")
    );
    let trace = received(&got);
    let pf = hop(&trace, &["by mail.paris.test (Postfix)"], &report);
    let mta = hop(
        &trace,
        &[
            "by mail.lyon.test (facteur-mta)",
            &format!("[{paris}]"),
            "with ESMTPS",
        ],
        &report,
    );
    assert!(
        mta < pf,
        "{}",
        report(&format!("not Postfix then the facteur MTA: {trace:#?}"))
    );
    assert!(
        postfix
            .wait_log(
                &["Verified TLS connection established to", &lyon.to_string()],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix did not verify the facteur MTA's certificate")
    );
    let outcome = postfix
        .wait_log(
            &["to=<andre@lyon.test>", "status="],
            Duration::from_secs(10),
        )
        .unwrap_or_default();
    assert!(
        outcome.contains("status=sent") && outcome.contains(&hop_to_lyon[1..]),
        "{}",
        report(&format!(
            "Postfix did not hand it to the facteur MTA: {outcome}"
        ))
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
    no_bounce(&stack, paris, "pierre@paris.test", &report);
}

/// Reverse, the mirror of the forward chain: andre@lyon.test replies through
/// lyon's facteur MSA and MTA, which finds paris.test's MTA — Postfix, on
/// paris's address and SMTP port — by MX in the dev DNS; Postfix delivers over
/// LMTP (`lmtp:inet:paris:port`) into paris's facteur MDA in Maildir mode, and
/// a Dovecot for paris.test serves it to pierre. The mirror keeps each domain's
/// roles (paris: Postfix MTA; lyon: facteur) and each hop's kind: the receiving
/// side is again a facteur MDA filing the Maildir Dovecot reads, rather than
/// Postfix's LMTP going straight into Dovecot (row 5 covers that kind of hop).
#[test]
fn row8_facteur_reply_to_postfix_mta_lmtp_into_maildir_mda_read_through_dovecot() {
    let net = 96;
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("maildir");
    let stack = stack(
        dir.path(),
        net,
        &[
            ("paris.test", "mta"),
            ("paris.test", "msa"),
            ("paris.test", "maa"),
        ],
        "paris.test",
        &maildir,
    );
    let (paris, lyon) = (ip(&stack, "paris.test"), ip(&stack, "lyon.test"));
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "paris.test");
    let hop_to_lyon = format!("[{lyon}]:{}", p.smtp);
    let lmtp = format!("{paris}:{}", p.lmtp);
    // A bounce to andre would go back to lyon's facteur MTA.
    let postfix = PostfixSpec::new(dir.path().join("postfix"), paris, "mail.paris.test")
        .smtp(p.smtp)
        .server_tls(&cert, &key)
        .route("paris.test", &format!("lmtp:inet:{lmtp}"))
        .route("lyon.test", &format!("smtp:{hop_to_lyon}"))
        .verify_tls(&stack.spec.ca(), &hop_to_lyon, "mail.lyon.test")
        .start()
        .expect("start postfix");
    let dovecot = dovecot(&stack, "paris.test", &maildir);
    let report = reporter(&stack, &postfix, &dovecot);
    empty_at_first_login(&stack, paris, "pierre@paris.test", &report);

    let token = format!("row8-reply-facteur-pf-dovecot-{net}");
    let sent = message("andre@lyon.test", "pierre@paris.test", &token);
    let file = dir.path().join("reply.eml");
    std::fs::write(&file, &sent).expect("write message");
    let ca = stack.spec.ca().display().to_string();
    swap_py(
        &[
            "send",
            &lyon.to_string(),
            &p.submission.to_string(),
            "andre@lyon.test",
            "pierre@paris.test",
            &file.display().to_string(),
            "--starttls",
            &ca,
            "--auth",
            "andre@lyon.test",
        ],
        &report,
    );
    let got = read_from_dovecot(
        &stack,
        paris,
        "pierre@paris.test",
        &token,
        dir.path(),
        &report,
    );
    assert_intact(&sent, &got, &report);
    assert_eq!(
        filed(&maildir, "pierre@paris.test", &token),
        1,
        "{}",
        report("not one file with the message in pierre's Maildir")
    );
    let trace = received(&got);
    let pf = hop(
        &trace,
        &[
            "by mail.paris.test (Postfix)",
            &format!("[{lyon}]"),
            "with ESMTPS",
        ],
        &report,
    );
    let mta = hop(&trace, &["by mail.lyon.test (facteur-mta)"], &report);
    let msa = hop(
        &trace,
        &["by mail.lyon.test (facteur-msa)", "with ESMTPSA"],
        &report,
    );
    assert!(
        pf < mta && mta < msa,
        "{}",
        report(&format!(
            "not the facteur MSA, the facteur MTA, then Postfix: {trace:#?}"
        ))
    );
    assert!(
        postfix
            .wait_log(
                &["TLS connection established from", &lyon.to_string()],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix logged no TLS session from the facteur MTA")
    );
    assert!(
        postfix
            .wait_log(
                &[
                    "postfix/lmtp",
                    &format!("{paris}]:{}", p.lmtp),
                    "status=sent",
                    "filed in the Maildir",
                ],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix logged no LMTP delivery into the facteur MDA's Maildir")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
    no_bounce(&stack, lyon, "andre@lyon.test", &report);
}
