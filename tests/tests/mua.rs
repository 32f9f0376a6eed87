//! End-to-end: the real `facteur-mua` binary against the dev stack — send across
//! domains and within one, fetch over POP3 and IMAP, trace the path, and a
//! refused login. Runs on its own network, 127.15.0.x.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use facteur_tests::stack::dev_password;
use facteur_tests::{Stack, StackSpec};

/// The MUA takes no password on its command line: a `--password X` pair in a
/// test's arguments becomes `FACTEUR_PASSWORD=X` in its environment.
fn split_password<'a>(args: &[&'a str]) -> (Vec<&'a str>, Option<&'a str>) {
    let mut out = Vec::new();
    let mut password = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--password" {
            password = it.next().copied();
        } else {
            out.push(*a);
        }
    }
    (out, password)
}

struct Mua<'a> {
    stack: &'a Stack,
    bin: PathBuf,
    ca: PathBuf,
}

impl Mua<'_> {
    fn ip(&self, domain: &str) -> String {
        self.stack
            .spec
            .domain(domain)
            .expect("domain")
            .ip
            .to_string()
    }

    fn run(&self, args: &[&str]) -> (Output, String) {
        let (args, password) = split_password(args);
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args).arg("--ca").arg(&self.ca);
        match password {
            Some(p) => cmd.env("FACTEUR_PASSWORD", p),
            None => cmd.env_remove("FACTEUR_PASSWORD"),
        };
        let out = cmd
            .output()
            .expect("run facteur-mua (cargo build --workspace --bins first)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    }

    /// Run and require success; on failure, show the output and every log.
    fn ok(&self, args: &[&str]) -> String {
        let (out, text) = self.run(args);
        assert!(
            out.status.success(),
            "facteur-mua {args:?} failed:\n{text}\n{}",
            self.stack.all_logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, server: &str, tls: &str, to: &str, token: &str) -> String {
        self.ok(&[
            "send",
            "--server",
            server,
            "--tls",
            tls,
            "--user",
            "pierre@paris.test",
            "--password",
            &dev_password(),
            "--from",
            "Pierre <pierre@paris.test>",
            "--to",
            to,
            "--subject",
            &format!("hello {token}"),
            "--body",
            &format!("the token is {token}\n.\nend"),
        ])
    }

    /// Fetch until the output holds `token`, for at most `timeout`.
    fn fetch_until(&self, args: &[&str], token: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let (out, text) = self.run(args);
            if out.status.success() && text.contains(token) {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            last = text;
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "{token} never came with facteur-mua {args:?}; last output:\n{last}\n{}",
            self.stack.all_logs()
        );
    }
}

fn position(haystack: &str, needle: &str, trace: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing from the trace:\n{trace}"))
}

#[test]
fn mua_sends_fetches_and_traces_through_the_dev_stack() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 15);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    let mua = Mua {
        stack: &stack,
        bin: facteur_tests::bin_dir().join("facteur-mua"),
        ca: spec.ca(),
    };
    assert!(Path::new(&mua.bin).is_file(), "build facteur-mua first");
    let paris = mua.ip("paris.test");
    let lyon = mua.ip("lyon.test");
    let password = dev_password();
    let pid = std::process::id();

    // Across domains: MSA → paris MTA → (MX) → lyon MTA → lyon MDA, read over POP3.
    let token = format!("mua-across-{pid}");
    let out = mua.send(
        &format!("{paris}:5870"),
        "starttls",
        "andre@lyon.test",
        &token,
    );
    assert!(
        out.starts_with("andre@lyon.test: 250"),
        "unexpected send output: {out}"
    );
    let pop3 = format!("{lyon}:1100");
    let andre = [
        "fetch",
        "--pop3",
        &pop3,
        "--user",
        "andre@lyon.test",
        "--password",
        &password,
    ];
    let shown = mua.fetch_until(&andre, &token, Duration::from_secs(60));
    assert!(
        shown.contains("From:       Pierre <pierre@paris.test>"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("Subject:    hello {token}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("the token is {token}\n.\nend")),
        "{shown}"
    );

    // The path it took, oldest hop first.
    let mut traced = andre.to_vec();
    traced.push("--trace");
    let trace = mua.ok(&traced);
    println!("{shown}\n{trace}");
    let msa = position(&trace, "mail.paris.test (facteur-msa) with ESMTPSA", &trace);
    let paris_mta = position(&trace, "mail.paris.test (facteur-mta)", &trace);
    let lyon_mta = position(&trace, "mail.lyon.test (facteur-mta)", &trace);
    assert!(
        msa < paris_mta && paris_mta < lyon_mta,
        "hops out of order:\n{trace}"
    );
    assert!(trace.starts_with("1. "), "{trace}");
    assert!(
        trace.contains("Return-Path: <pierre@paris.test>"),
        "{trace}"
    );

    // Raw bytes: the Bcc-less headers as the MDA filed them.
    let mut raw = andre.to_vec();
    raw.push("--raw");
    let raw = mua.ok(&raw);
    assert!(raw.contains(&format!("Subject: hello {token}")), "{raw}");

    // Within one domain, submitted on implicit TLS, read over IMAP.
    let token = format!("mua-within-{pid}");
    let out = mua.send(
        &format!("{paris}:4650"),
        "implicit",
        "jacques@paris.test",
        &token,
    );
    assert!(
        out.starts_with("jacques@paris.test: 250"),
        "unexpected send output: {out}"
    );
    let imap = format!("{paris}:1430");
    let jacques = [
        "fetch",
        "--imap",
        &imap,
        "--user",
        "jacques@paris.test",
        "--password",
        &password,
    ];
    let shown = mua.fetch_until(&jacques, &token, Duration::from_secs(30));
    assert!(shown.contains("To:         jacques@paris.test"), "{shown}");

    // Implicit TLS on both access ports; then IMAP deletes what it fetched.
    let pop3s = format!("{lyon}:9950");
    let first = mua.ok(&[
        "fetch",
        "--pop3",
        &pop3s,
        "--tls",
        "implicit",
        "--number",
        "1",
        "--user",
        "andre@lyon.test",
        "--password",
        &password,
    ]);
    assert!(first.contains("mua-across-"), "{first}");
    let imaps = format!("{paris}:9930");
    let jacques_tls = [
        "fetch",
        "--imap",
        &imaps,
        "--tls",
        "implicit",
        "--user",
        "jacques@paris.test",
        "--password",
        &password,
    ];
    let mut delete = jacques_tls.to_vec();
    delete.extend(["--all", "--delete"]);
    let deleted = mua.ok(&delete);
    assert!(deleted.contains(&token), "{deleted}");
    let (out, text) = mua.run(&jacques_tls);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("the mailbox is empty"), "{text}");

    // A wrong password is refused, with the server's reply.
    let (out, text) = mua.run(&[
        "send",
        "--server",
        &format!("{paris}:5870"),
        "--user",
        "pierre@paris.test",
        "--password",
        "not-the-password",
        "--from",
        "pierre@paris.test",
        "--to",
        "andre@lyon.test",
        "--body",
        "x",
    ]);
    assert!(!out.status.success(), "wrong password accepted:\n{text}");
    assert!(text.contains("AUTH refused: 535"), "{text}");

    // And no password leaves in the clear.
    let (out, text) = mua.run(&[
        "send",
        "--server",
        &format!("{paris}:5870"),
        "--tls",
        "none",
        "--user",
        "pierre@paris.test",
        "--password",
        &password,
        "--from",
        "pierre@paris.test",
        "--to",
        "andre@lyon.test",
    ]);
    assert!(!out.status.success(), "password sent in the clear:\n{text}");
    assert!(text.contains("without TLS"), "{text}");
}
