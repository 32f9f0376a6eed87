//! Interop end-to-end: real mail clients from Debian packages against the dev
//! stack — fetchmail over POP3 (STLS) and IMAP (STARTTLS), mbsync (isync) over
//! IMAP into a Maildir. `cargo xtask test` installs both; a missing tool fails the
//! test. Runs on its own networks, 127.30.0.x and 127.31.0.x.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facteur_tests::stack::dev_password;
use facteur_tests::{Stack, StackSpec};

fn start(net: u8) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

/// Fail (never skip) when a client the test drives is not installed.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: `cargo xtask test` installs it (Debian package \
         `{package}`), or run `apt-get install {package}`"
    );
}

fn ip(stack: &Stack, domain: &str) -> String {
    stack.spec.domain(domain).expect("domain").ip.to_string()
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A test message: the exact bytes sent, with `token` in the Subject and body.
/// The body has the awkward lines a client must carry through: a leading dot
/// (dot-stuffed on the wire), a lone dot, trailing blanks, a long line, a
/// `From ` line (mbox-escaped by careless code), an empty line inside.
fn message(to: &str, token: &str) -> Vec<u8> {
    let headers = format!(
        "From: Sender <sender@interop.test>\r\nTo: {to}\r\nSubject: interop {token}\r\n\
         Message-ID: <{token}@interop.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n"
    );
    let mut body = format!("Hello, this is {token}.\r\n");
    body.push_str(".leading dot\r\n.\r\n..two dots\r\n");
    body.push_str("trailing blanks   \r\n\ttab first\r\n");
    body.push_str("From the start of a line\r\n");
    let long: String = (0..9).fold(String::new(), |mut s, i| {
        let _ = write!(s, "{i}-0123456789-");
        s
    });
    body.push_str(&format!("{long}\r\n\r\nend {token}\r\n"));
    let mut raw = headers.into_bytes();
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body.as_bytes());
    raw
}

/// `got` (as a client stored it, LF line ends) carries the message `sent` (CRLF)
/// byte for byte: the same body, and the sent header block intact under the trace
/// headers the servers and the client put on top.
/// The one message among `stored` whose Subject carries `token`; fails the test
/// unless there is exactly one (nothing lost, nothing delivered twice).
fn the_copy<'a>(stored: &'a [Vec<u8>], token: &str, report: &dyn Fn(&str) -> String) -> &'a [u8] {
    let subject = format!("Subject: interop {token}");
    let copies: Vec<&Vec<u8>> = stored
        .iter()
        .filter(|m| count(m, subject.as_bytes()) == 1)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "{}",
        report(&format!("{token} arrived {} times", copies.len()))
    );
    copies[0]
}

fn assert_carried(sent: &[u8], got: &[u8], report: &dyn Fn(&str) -> String) {
    let sent = crlf_to_lf(sent);
    let sent_body = body_of(&sent).expect("sent body");
    let got_body = body_of(got).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(got_body),
        String::from_utf8_lossy(sent_body),
        "{}",
        report("body changed")
    );
    assert!(
        got.ends_with(&sent),
        "{}",
        report(&format!(
            "the sent message is not intact at the end of the stored one:\n{}",
            String::from_utf8_lossy(got)
        ))
    );
}

/// Write the messages to `dir` and send them by SMTP to `domain`'s MTA (2525).
fn seed(stack: &Stack, domain: &str, to: &str, dir: &Path, messages: &[(String, Vec<u8>)]) {
    let mut files = Vec::new();
    for (token, raw) in messages {
        let f = dir.join(format!("{token}.eml"));
        std::fs::write(&f, raw).expect("write message");
        files.push(f);
    }
    let out = Command::new("python3")
        .arg(interop_dir().join("seed.py"))
        .arg(ip(stack, domain))
        .arg(to)
        .args(&files)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "seeding {to} failed:\n{}\n{}",
        text(&out),
        stack.all_logs()
    );
}

/// Wait (up to 30 s) until `user`'s maildrop holds `want` messages with one of
/// the tokens and, if `total` is given, that many in all.
fn expect_maildrop(
    stack: &Stack,
    domain: &str,
    user: &str,
    want: usize,
    total: Option<usize>,
    tokens: &[String],
) {
    let out = Command::new("python3")
        .arg(interop_dir().join("count.py"))
        .arg(ip(stack, domain))
        .arg(user)
        .arg(stack.spec.ca())
        .arg(want.to_string())
        .arg(total.map_or_else(|| "-".to_owned(), |t| t.to_string()))
        .arg("30")
        .args(tokens)
        .env("FACTEUR_DEV_PASSWORD", dev_password())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "maildrop check failed:\n{}\n{}",
        text(&out),
        stack.all_logs()
    );
}

fn local_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}

/// The files in `dir` (not recursive), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The body of a raw message (after the first empty line), LF or CRLF.
fn body_of(raw: &[u8]) -> Option<&[u8]> {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(&raw[a.min(b)..]),
        (a, b) => a.or(b).map(|i| &raw[i..]),
    }
}

/// `raw` without the header lines starting with `prefix` (no continuations).
fn without_header(raw: &[u8], prefix: &[u8]) -> Vec<u8> {
    let end = body_of(raw).map_or(raw.len(), |b| raw.len() - b.len());
    let mut out = Vec::with_capacity(raw.len());
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(prefix) {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&raw[end..]);
    out
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// One fetchmail run over `proto` ("POP3" on 1100 with STLS, "IMAP" on 1430 with
/// STARTTLS): certificate checked against the dev CA, every message fetched and
/// deleted on the server, each handed to an MDA that writes it to a file in
/// `out`. Returns the exit code and the verbose transcript.
fn fetchmail(stack: &Stack, home: &Path, proto: &str, out: &Path) -> (Option<i32>, String) {
    let port = match proto {
        "POP3" => stack.spec.ports.pop3,
        _ => stack.spec.ports.imap,
    };
    let domain = "lyon.test";
    std::fs::create_dir_all(out).expect("mkdir out");
    let rc = home.join(format!("fetchmailrc-{proto}"));
    let config = format!(
        "set no syslog\n\
         set idfile \"{idfile}\"\n\
         poll {host} with proto {proto} service {port} timeout 20\n\
         \x20 user \"andre@lyon.test\" there with password \"{password}\" is \"{local}\" here\n\
         \x20 sslproto \"TLS1.2+\" sslcertck sslcertfile \"{ca}\" sslcommonname \"mail.{domain}\"\n\
         \x20 fetchall nokeep no rewrite\n\
         \x20 mda \"cat > $(mktemp {out}/msg.XXXXXX)\"\n",
        idfile = home.join("fetchids").display(),
        host = ip(stack, domain),
        password = dev_password(),
        local = local_user(),
        ca = stack.spec.ca().display(),
        out = out.display(),
    );
    std::fs::write(&rc, config).expect("write .fetchmailrc");
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600 .fetchmailrc");
    let run = Command::new("fetchmail")
        .arg("-f")
        .arg(&rc)
        .args(["-v", "--nosyslog", "--nodetach"])
        .env("HOME", home)
        .env("FETCHMAILHOME", home)
        .output()
        .expect("run fetchmail");
    (run.status.code(), text(&run))
}

#[test]
fn fetchmail_fetches_over_pop3_with_stls_and_imap_with_starttls() {
    require("fetchmail", "fetchmail");
    let (dir, stack) = start(30);
    let home = dir.path().join("fetchmail");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let andre = "andre@lyon.test";
    let pid = std::process::id();

    for (proto, n) in [("POP3", 3), ("IMAP", 2)] {
        let messages: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| {
                let token = format!("fm-{}-{pid}-{i}", proto.to_lowercase());
                (token.clone(), message(andre, &token))
            })
            .collect();
        let tokens: Vec<String> = messages.iter().map(|(t, _)| t.clone()).collect();
        seed(&stack, "lyon.test", andre, &home, &messages);
        expect_maildrop(&stack, "lyon.test", andre, n, Some(n), &tokens);

        let out = home.join(format!("out-{proto}"));
        let (code, transcript) = fetchmail(&stack, &home, proto, &out);
        println!("--- fetchmail over {proto}:\n{transcript}");
        let report = |what: &str| {
            format!(
                "fetchmail over {proto}: {what}\n--- fetchmail -v:\n{transcript}\n--- logs:\n{}",
                stack.all_logs()
            )
        };
        assert_eq!(code, Some(0), "{}", report("exit code not 0"));
        assert!(
            transcript.contains("mail.lyon.test: upgrade to TLS succeeded."),
            "{}",
            report("no STLS/STARTTLS upgrade")
        );
        let fetched: Vec<Vec<u8>> = files_in(&out)
            .iter()
            .map(|f| std::fs::read(f).expect("read fetched message"))
            .collect();
        assert_eq!(
            fetched.len(),
            n,
            "{}",
            report(&format!("{} messages handed to the MDA", fetched.len()))
        );
        for (token, raw) in &messages {
            // fetchmail adds its own Received header and hands the MDA LF line
            // ends; everything else must come through unchanged.
            assert_carried(raw, the_copy(&fetched, token, &report), &report);
        }
        // Without `keep` fetchmail deleted them on the server: a second run finds
        // no mail (exit 1) and the maildrop is empty.
        let (code, transcript2) = fetchmail(&stack, &home, proto, &home.join("again"));
        assert_eq!(
            code,
            Some(1),
            "second fetchmail over {proto} should find no mail (exit 1):\n{transcript2}\n{}",
            stack.all_logs()
        );
        assert!(files_in(&home.join("again")).is_empty(), "{transcript2}");
        expect_maildrop(&stack, "lyon.test", andre, 0, Some(0), &tokens);
    }
}

/// A pull-only mbsync channel from jacques@paris.test's INBOX to a Maildir, over
/// IMAP with STARTTLS (1430) or IMAPS (9930).
///
/// isync 1.4 matches the certificate only against DNS names, never an IP
/// address, and the dev stack is reached by IP; so `CertificateFile` holds the
/// server's own certificate, which mbsync trusts as a pinned host certificate
/// (exact match) without a name check. System CAs are off: nothing else is
/// trusted.
fn mbsync_config(stack: &Stack, maildir: &Path, pinned: &Path, ssl_type: &str) -> String {
    let port = match ssl_type {
        "IMAPS" => stack.spec.ports.imaps,
        _ => stack.spec.ports.imap,
    };
    format!(
        "IMAPAccount jacques\n\
         Host {host}\n\
         Port {port}\n\
         User jacques@paris.test\n\
         Pass {password}\n\
         SSLType {ssl_type}\n\
         SystemCertificates no\n\
         CertificateFile {pinned}\n\
         \n\
         IMAPStore remote\n\
         Account jacques\n\
         \n\
         MaildirStore local\n\
         Path {maildir}/\n\
         Inbox {maildir}/INBOX\n\
         \n\
         Channel inbox\n\
         Far :remote:INBOX\n\
         Near :local:INBOX\n\
         Create Near\n\
         Sync Pull\n\
         Expunge None\n\
         Remove None\n\
         SyncState *\n",
        host = ip(stack, "paris.test"),
        password = dev_password(),
        pinned = pinned.display(),
        maildir = maildir.display(),
    )
}

/// The first PEM certificate of `chain` (the server's own; the CA follows it).
fn leaf_pem(chain: &Path) -> String {
    let pem = std::fs::read_to_string(chain).expect("read server certificate");
    let end = "-----END CERTIFICATE-----";
    let at = pem.find(end).expect("a PEM certificate") + end.len();
    format!("{}\n", &pem[..at])
}

fn mbsync(home: &Path, config: &Path) -> (Option<i32>, String) {
    let run = Command::new("mbsync")
        .arg("-c")
        .arg(config)
        .args(["-V", "-Dn", "inbox"])
        .env("HOME", home)
        .output()
        .expect("run mbsync");
    (run.status.code(), text(&run))
}

#[test]
fn mbsync_pulls_an_imap_inbox_into_a_maildir_once() {
    require("mbsync", "isync");
    let (dir, stack) = start(31);
    let home = dir.path().join("mbsync");
    let maildir = home.join("Mail");
    std::fs::create_dir_all(&maildir).expect("mkdir");
    let jacques = "jacques@paris.test";
    let pid = std::process::id();
    let messages: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            let token = format!("mbsync-{pid}-{i}");
            (token.clone(), message(jacques, &token))
        })
        .collect();
    let tokens: Vec<String> = messages.iter().map(|(t, _)| t.clone()).collect();
    seed(&stack, "paris.test", jacques, &home, &messages);
    expect_maildrop(&stack, "paris.test", jacques, 3, Some(3), &tokens);

    let pinned = home.join("paris-cert.pem");
    let chain = stack.spec.var.join("tls").join("paris.test.pem");
    std::fs::write(&pinned, leaf_pem(&chain)).expect("write pinned certificate");
    let config = home.join("mbsyncrc");
    let inbox = maildir.join("INBOX");
    let synced = || -> Vec<Vec<u8>> {
        ["cur", "new"]
            .iter()
            .flat_map(|sub| files_in(&inbox.join(sub)))
            .map(|f| std::fs::read(f).expect("read maildir file"))
            .collect()
    };
    // The second run goes over IMAPS: the sync state (UIDVALIDITY, UIDs) must
    // match whichever port serves the mailbox, so nothing is fetched twice.
    for (run, ssl_type) in [("first", "STARTTLS"), ("second", "IMAPS")] {
        let text = mbsync_config(&stack, &maildir, &pinned, ssl_type);
        std::fs::write(&config, &text).expect("write mbsyncrc");
        let (code, transcript) = mbsync(&home, &config);
        println!("--- mbsync ({run} run, {ssl_type}):\n{transcript}");
        let report = |what: &str| {
            format!(
                "mbsync ({run} run, {ssl_type}): {what}\n--- config:\n{text}\n--- mbsync -V -Dn:\n{transcript}\n--- logs:\n{}",
                stack.all_logs()
            )
        };
        assert_eq!(code, Some(0), "{}", report("exit code not 0"));
        assert!(
            transcript.contains("Connection is now encrypted"),
            "{}",
            report("no TLS")
        );
        let files = synced();
        assert_eq!(
            files.len(),
            3,
            "{}",
            report(&format!("{} messages in the Maildir", files.len()))
        );
        for (token, raw) in &messages {
            // A Maildir file is the raw message with the local (LF) line end;
            // mbsync adds its own `X-TUID:` header at the end of the header block
            // (to find a copy of an interrupted sync again).
            let stored = without_header(the_copy(&files, token, &report), b"X-TUID: ");
            assert_carried(raw, &stored, &report);
        }
    }
    // The pin is what mbsync trusts: pinned to lyon's certificate instead, it
    // must refuse paris's server.
    let wrong = home.join("lyon-cert.pem");
    let lyon_chain = stack.spec.var.join("tls").join("lyon.test.pem");
    std::fs::write(&wrong, leaf_pem(&lyon_chain)).expect("write wrong certificate");
    let text = mbsync_config(&stack, &maildir, &wrong, "IMAPS");
    std::fs::write(&config, &text).expect("write mbsyncrc");
    let (code, transcript) = mbsync(&home, &config);
    println!("--- mbsync (wrong certificate pinned):\n{transcript}");
    assert_ne!(
        code,
        Some(0),
        "mbsync accepted a server whose certificate is not the pinned one:\n{transcript}"
    );
    assert!(
        transcript.contains("certificate") && !transcript.contains("Logging in"),
        "mbsync did not refuse the certificate:\n{transcript}"
    );
    assert_eq!(synced().len(), 3, "{transcript}");
}
