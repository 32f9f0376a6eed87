//! The swap matrix of issue 17, Postfix rows: one facteur agent replaced by a
//! real Postfix (Debian's package, its own instance under the test's temp dir,
//! see `facteur_tests::postfix`) on the same address and ports, and mail checked
//! the way a user would: it arrives once, byte for byte, and its `Received:`
//! fields show the path it took and that STARTTLS was used. `cargo xtask interop`
//! runs the rows by name (`row1_…` to `row4_…`). Nets 127.60.0.x-127.64.0.x.
//!
//! Postfix never looks up MX records here: it resolves them through the system
//! resolver, which cannot be pointed at the dev DNS without touching
//! /etc/resolv.conf, so its routes are explicit transports (`smtp:[ip]:port`,
//! `lmtp:inet:ip:port`). The facteur agents do use the dev DNS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use facteur_tests::mailcheck::{assert_intact, message, received, swap_py as py};
use facteur_tests::{Postfix, PostfixSpec, Stack, StackSpec};

/// A stack on `127.<net>.0.x` with `swapped` agents left out.
fn stack(dir: &Path, net: u8, swapped: &[(&str, &str)]) -> Stack {
    stack_with(dir, net, swapped, &[])
}

/// The same, with settings for one agent: `("paris.test/msa", "next_hop=…")`.
fn stack_with(dir: &Path, net: u8, swapped: &[(&str, &str)], sets: &[(&str, String)]) -> Stack {
    let mut spec = StackSpec::dev(dir.join("var"), facteur_tests::bin_dir(), net);
    for (domain, agent) in swapped {
        spec.swap_out(domain, agent);
    }
    for (agent, set) in sets {
        spec.sets.push(((*agent).to_owned(), set.clone()));
    }
    spec.prepare().expect("prepare var/");
    spec.start().expect("start the stack")
}

fn ip(stack: &Stack, domain: &str) -> String {
    stack.spec.domain(domain).expect("domain").ip.to_string()
}

fn tls(stack: &Stack, domain: &str) -> (PathBuf, PathBuf) {
    let dir = stack.spec.var.join("tls");
    (
        dir.join(format!("{domain}.pem")),
        dir.join(format!("{domain}-key.pem")),
    )
}

/// Everything a failed row prints: the stack's logs, Postfix's log and queue.
fn reporter<'a>(stack: &'a Stack, postfix: &'a Postfix) -> impl Fn(&str) -> String + 'a {
    move |what: &str| {
        format!(
            "{what}\n===== postfix queue\n{}\n===== postfix log\n{}\n{}",
            postfix.queue(),
            postfix.log(),
            stack.all_logs()
        )
    }
}

/// Read the one message carrying `token` from `user`'s maildrop over POP3
/// (STLS, dev CA) at `domain`'s facteur MAA.
fn pop_one(
    stack: &Stack,
    domain: &str,
    user: &str,
    token: &str,
    dir: &Path,
    report: &dyn Fn(&str) -> String,
) -> Vec<u8> {
    let out = dir.join(format!("{token}.pop"));
    let ca = stack.spec.ca();
    py(
        &[
            "pop",
            &ip(stack, domain),
            &stack.spec.ports.pop3.to_string(),
            &ca.display().to_string(),
            user,
            token,
            "30",
            &out.display().to_string(),
        ],
        report,
    );
    std::fs::read(&out).expect("read the fetched message")
}

/// Postfix as paris.test's MSA and MTA (submission from the trusted network,
/// then SMTP with verified STARTTLS) sends to the facteur MTA of lyon.test.
fn postfix_sends_to_facteur_mta(net: u8) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = stack(
        dir.path(),
        net,
        &[("paris.test", "mta"), ("paris.test", "msa")],
    );
    let (paris, lyon) = (ip(&stack, "paris.test"), ip(&stack, "lyon.test"));
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "paris.test");
    let hop = format!("[{lyon}]:{}", p.smtp);
    let postfix = PostfixSpec::new(
        dir.path().join("postfix"),
        stack.spec.domain("paris.test").expect("paris").ip,
        "mail.paris.test",
    )
    .smtp(p.smtp)
    .submission(p.submission)
    .mynetworks(&["127.0.0.0/8"])
    .server_tls(&cert, &key)
    .route("lyon.test", &format!("smtp:{hop}"))
    .verify_tls(&stack.spec.ca(), &hop, "mail.lyon.test")
    .start()
    .expect("start postfix");
    let report = reporter(&stack, &postfix);

    let token = format!("row1-pf2f-{net}");
    let sent = message("pierre@paris.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    py(
        &[
            "send",
            &paris,
            &p.submission.to_string(),
            "pierre@paris.test",
            "andre@lyon.test",
            &file.display().to_string(),
        ],
        &report,
    );
    // And the same way a local program hands mail to Postfix: its sendmail.
    let local = format!("row1-sendmail-{net}");
    let local_sent = message("pierre@paris.test", "andre@lyon.test", &local);
    postfix
        .sendmail("pierre@paris.test", "andre@lyon.test", &local_sent)
        .unwrap_or_else(|e| panic!("{}", report(&format!("{e:#}"))));
    let got = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &local,
        dir.path(),
        &report,
    );
    assert_intact(&local_sent, &got, &report);
    let got = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &token,
        dir.path(),
        &report,
    );
    assert_intact(&sent, &got, &report);
    let trace = received(&got);
    let mta = trace
        .iter()
        .find(|r| r.contains("by mail.lyon.test (facteur-mta)"))
        .unwrap_or_else(|| panic!("{}", report(&format!("no facteur-mta hop in {trace:#?}"))));
    assert!(
        mta.contains(&format!("[{paris}]")) && mta.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "the facteur MTA did not take it over STARTTLS from Postfix: {mta}"
        ))
    );
    assert!(
        trace
            .iter()
            .any(|r| r.contains("by mail.paris.test (Postfix)")),
        "{}",
        report(&format!("no Postfix hop in {trace:#?}"))
    );
    assert!(
        postfix
            .wait_log(
                &["Verified TLS connection established to", &lyon],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix did not verify the facteur MTA's certificate")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
}

/// The facteur MSA and MTA of paris.test send to Postfix as lyon.test's MTA
/// (found through the dev DNS's MX, STARTTLS checked against the dev CA);
/// Postfix delivers into the facteur MDA of lyon.test over LMTP.
fn facteur_mta_sends_to_postfix(net: u8) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = stack(dir.path(), net, &[("lyon.test", "mta")]);
    let (paris, lyon) = (ip(&stack, "paris.test"), ip(&stack, "lyon.test"));
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "lyon.test");
    let postfix = PostfixSpec::new(
        dir.path().join("postfix"),
        stack.spec.domain("lyon.test").expect("lyon").ip,
        "mail.lyon.test",
    )
    .smtp(p.smtp)
    .server_tls(&cert, &key)
    .route("lyon.test", &format!("lmtp:inet:{lyon}:{}", p.lmtp))
    .start()
    .expect("start postfix");
    let report = reporter(&stack, &postfix);

    let token = format!("row1-f2pf-{net}");
    let sent = message("pierre@paris.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    let ca = stack.spec.ca().display().to_string();
    py(
        &[
            "send",
            &paris,
            &p.submission.to_string(),
            "pierre@paris.test",
            "andre@lyon.test",
            &file.display().to_string(),
            "--starttls",
            &ca,
            "--auth",
            "pierre@paris.test",
        ],
        &report,
    );
    let got = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &token,
        dir.path(),
        &report,
    );
    assert_intact(&sent, &got, &report);
    let trace = received(&got);
    let pf = trace
        .iter()
        .find(|r| r.contains("by mail.lyon.test (Postfix)"))
        .unwrap_or_else(|| panic!("{}", report(&format!("no Postfix hop in {trace:#?}"))));
    assert!(
        pf.contains(&format!("[{paris}]")) && pf.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "Postfix did not take it over STARTTLS from the facteur MTA: {pf}"
        ))
    );
    assert!(
        trace
            .iter()
            .any(|r| r.contains("by mail.paris.test (facteur-mta)")),
        "{}",
        report(&format!("no facteur MTA hop in {trace:#?}"))
    );
    assert!(
        postfix
            .wait_log(
                &["TLS connection established from", &paris],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix logged no TLS session from the facteur MTA")
    );
    let lmtp = format!("{lyon}]:{}", p.lmtp);
    assert!(
        postfix
            .wait_log(
                &["postfix/lmtp", &lmtp, "status=sent", "filed as UID"],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix logged no LMTP delivery into the facteur MDA")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
}

#[test]
fn row1_postfix_mta_and_facteur_mta_exchange_mail_over_starttls() {
    postfix_sends_to_facteur_mta(60);
    facteur_mta_sends_to_postfix(61);
}

/// Postfix takes mail for lyon.test on port 25's place and delivers it into the
/// facteur MDA over LMTP; the facteur MAA serves it over IMAP and POP3, the same
/// bytes both ways, flags kept.
#[test]
fn row4_postfix_delivers_into_facteur_mda_over_lmtp_served_by_imap_and_pop3() {
    let net = 62;
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = stack(dir.path(), net, &[("lyon.test", "mta")]);
    let lyon = ip(&stack, "lyon.test");
    let p = &stack.spec.ports;
    let postfix = PostfixSpec::new(
        dir.path().join("postfix"),
        stack.spec.domain("lyon.test").expect("lyon").ip,
        "mail.lyon.test",
    )
    .smtp(p.smtp)
    .route("lyon.test", &format!("lmtp:inet:{lyon}:{}", p.lmtp))
    .start()
    .expect("start postfix");
    let report = reporter(&stack, &postfix);

    let token = format!("row4-lmtp-{net}");
    let sent = message("sender@interop.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    py(
        &[
            "send",
            &lyon,
            &p.smtp.to_string(),
            "sender@interop.test",
            "andre@lyon.test",
            &file.display().to_string(),
        ],
        &report,
    );
    let fetched = dir.path().join("imap.eml");
    let ca = stack.spec.ca().display().to_string();
    let flags = py(
        &[
            "imap",
            &lyon,
            &p.imap.to_string(),
            &ca,
            "andre@lyon.test",
            &token,
            "30",
            &fetched.display().to_string(),
        ],
        &report,
    );
    let imap = std::fs::read(&fetched).expect("read the IMAP copy");
    assert_intact(&sent, &imap, &report);
    let trace = received(&imap);
    assert!(
        trace
            .iter()
            .any(|r| r.contains("by mail.lyon.test (Postfix)")),
        "{}",
        report(&format!("no Postfix hop in {trace:#?}"))
    );
    // The MDA adds no trace field of its own for LMTP (the last hop's Received
    // is Postfix's); Postfix's log shows the LMTP delivery and the MDA's answer.
    let lmtp = format!("{lyon}]:{}", p.lmtp);
    assert!(
        postfix
            .wait_log(
                &["postfix/lmtp", &lmtp, "status=sent", "filed as UID"],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix logged no LMTP delivery into the facteur MDA")
    );
    let line = |prefix: &str| {
        flags
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_owned()
    };
    let (before, after) = (line("flags before:"), line("flags after:"));
    assert!(
        !before.contains("\\Seen") && !before.contains("\\Flagged"),
        "{}",
        report(&format!("a new message already has flags: {before}"))
    );
    assert!(
        after.contains("\\Flagged") && after.contains("$Interop") && !after.contains("\\Seen"),
        "{}",
        report(&format!(
            "flags not kept (BODY.PEEK must not set \\Seen): {after}"
        ))
    );
    let pop = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &token,
        dir.path(),
        &report,
    );
    assert_eq!(
        String::from_utf8_lossy(&pop),
        String::from_utf8_lossy(&imap),
        "{}",
        report("POP3 and IMAP serve different bytes")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
}

/// The facteur MSA of paris.test relays over SMTP (`next_hop`, STARTTLS
/// required, certificate checked against the dev CA) to Postfix as paris.test's
/// MTA, which delivers onward to the facteur MTA of lyon.test.
#[test]
fn row2_facteur_msa_relays_through_postfix_to_the_facteur_mta() {
    let net = 63;
    let dir = tempfile::tempdir().expect("temp dir");
    let var = dir.path().join("var");
    let paris_ip = std::net::Ipv4Addr::new(127, net, 0, 2);
    let smtp = facteur_tests::Ports::default().smtp;
    let ca = var.join("tls/ca.pem").display().to_string();
    let stack = stack_with(
        dir.path(),
        net,
        &[("paris.test", "mta")],
        &[
            (
                "paris.test/msa",
                format!("next_hop=smtp://{paris_ip}:{smtp}"),
            ),
            (
                "paris.test/msa",
                "next_hop_smtp.starttls=required".to_owned(),
            ),
            ("paris.test/msa", format!("next_hop_smtp.tls_ca={ca}")),
        ],
    );
    let (paris, lyon) = (ip(&stack, "paris.test"), ip(&stack, "lyon.test"));
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "paris.test");
    let hop = format!("[{lyon}]:{}", p.smtp);
    // The MSA is a trusted client of its MTA: from paris.test's address, or
    // from 127.0.0.1 when it does not bind its SMTP client to it.
    let trusted = [format!("{paris}/32"), "127.0.0.1/32".to_owned()];
    let postfix = PostfixSpec::new(dir.path().join("postfix"), paris_ip, "mail.paris.test")
        .smtp(p.smtp)
        .mynetworks(&[trusted[0].as_str(), trusted[1].as_str()])
        .server_tls(&cert, &key)
        .route("lyon.test", &format!("smtp:{hop}"))
        .verify_tls(&stack.spec.ca(), &hop, "mail.lyon.test")
        .start()
        .expect("start postfix");
    let report = reporter(&stack, &postfix);

    let token = format!("row2-msa-pf-{net}");
    let sent = message("pierre@paris.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    py(
        &[
            "send",
            &paris,
            &p.submission.to_string(),
            "pierre@paris.test",
            "andre@lyon.test",
            &file.display().to_string(),
            "--starttls",
            &ca,
            "--auth",
            "pierre@paris.test",
        ],
        &report,
    );
    let got = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &token,
        dir.path(),
        &report,
    );
    assert_intact(&sent, &got, &report);
    let trace = received(&got);
    let hop_of = |by: &str| {
        trace
            .iter()
            .find(|r| r.contains(by))
            .cloned()
            .unwrap_or_else(|| panic!("{}", report(&format!("no {by} hop in {trace:#?}"))))
    };
    let msa = hop_of("by mail.paris.test (facteur-msa)");
    assert!(
        msa.contains("with ESMTPSA"),
        "{}",
        report(&format!("the MSA's hop is not authenticated TLS: {msa}"))
    );
    let pf = hop_of("by mail.paris.test (Postfix)");
    assert!(
        pf.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "Postfix did not take it from the MSA over STARTTLS: {pf}"
        ))
    );
    let mta = hop_of("by mail.lyon.test (facteur-mta)");
    assert!(
        mta.contains(&format!("[{paris}]")) && mta.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "the facteur MTA did not take it over STARTTLS from Postfix: {mta}"
        ))
    );
    assert!(
        postfix
            .wait_log(
                &["Verified TLS connection established to", &lyon],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix did not verify the facteur MTA's certificate")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
}

/// A Postfix submission service as paris.test's MSA relays everything through
/// the facteur MTA of paris.test (`relayhost`), which takes relay from it as a
/// trusted network (`[smtp] trusted_networks`) and sends it on to lyon.test's
/// facteur MTA through the dev DNS. A client outside that network is still
/// refused relay.
#[test]
fn row3_postfix_submission_relays_through_the_facteur_mta_as_a_trusted_network() {
    let net = 64;
    let dir = tempfile::tempdir().expect("temp dir");
    let paris_ip = std::net::Ipv4Addr::new(127, net, 0, 2);
    let stack = stack_with(
        dir.path(),
        net,
        &[("paris.test", "msa")],
        &[(
            "paris.test/mta",
            format!("smtp.trusted_networks=[\"{paris_ip}/32\"]"),
        )],
    );
    let paris = ip(&stack, "paris.test");
    let p = &stack.spec.ports;
    let (cert, key) = tls(&stack, "paris.test");
    let hop = format!("[{paris}]:{}", p.smtp);
    let postfix = PostfixSpec::new(dir.path().join("postfix"), paris_ip, "submit.paris.test")
        .submission(p.submission)
        .mynetworks(&["127.0.0.0/8"])
        .server_tls(&cert, &key)
        .relayhost(&hop)
        .verify_tls(&stack.spec.ca(), &hop, "mail.paris.test")
        .start()
        .expect("start postfix");
    let report = reporter(&stack, &postfix);

    let token = format!("row3-pf-relay-{net}");
    let sent = message("pierre@paris.test", "andre@lyon.test", &token);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &sent).expect("write message");
    py(
        &[
            "send",
            &paris,
            &p.submission.to_string(),
            "pierre@paris.test",
            "andre@lyon.test",
            &file.display().to_string(),
        ],
        &report,
    );
    // Postfix's answer from the facteur MTA: relayed, not refused.
    let outcome = postfix
        .wait_log(
            &["to=<andre@lyon.test>", "status="],
            Duration::from_secs(20),
        )
        .unwrap_or_default();
    assert!(
        outcome.contains("status=sent"),
        "{}",
        report(&format!(
            "the facteur MTA did not take relay from Postfix: {outcome}"
        ))
    );
    let got = pop_one(
        &stack,
        "lyon.test",
        "andre@lyon.test",
        &token,
        dir.path(),
        &report,
    );
    assert_intact(&sent, &got, &report);
    let trace = received(&got);
    let hop_of = |by: &str| {
        trace
            .iter()
            .find(|r| r.contains(by))
            .cloned()
            .unwrap_or_else(|| panic!("{}", report(&format!("no {by} hop in {trace:#?}"))))
    };
    hop_of("by submit.paris.test (Postfix)");
    let relay = hop_of("by mail.paris.test (facteur-mta)");
    assert!(
        relay.contains(&format!("[{paris}]")) && relay.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "the facteur MTA did not take relay over STARTTLS from Postfix: {relay}"
        ))
    );
    let last = hop_of("by mail.lyon.test (facteur-mta)");
    assert!(
        last.contains(&format!("[{paris}]")) && last.contains("with ESMTPS"),
        "{}",
        report(&format!(
            "lyon's MTA did not take it over STARTTLS from paris's: {last}"
        ))
    );
    assert!(
        postfix
            .wait_log(
                &["Verified TLS connection established to", &paris],
                Duration::from_secs(10)
            )
            .is_some(),
        "{}",
        report("Postfix did not verify the facteur MTA's certificate")
    );
    assert!(
        postfix.wait_queue_empty(Duration::from_secs(10)),
        "{}",
        report("Postfix still holds mail")
    );
    // The test's own client (127.0.0.1, outside the trusted network) may not
    // relay (a stranger's sender: one of paris's own is refused at MAIL already).
    py(
        &[
            "send",
            &paris,
            &p.smtp.to_string(),
            "someone@example.org",
            "andre@lyon.test",
            &file.display().to_string(),
            "--expect-refused",
        ],
        &report,
    );
}
