//! The interop swap matrix, Dovecot's rows (issue 17), each on its own stack and
//! Dovecot instance (`tests/src/dovecot.rs`), nets 127.70.0.x to 127.72.0.x:
//! row 7 runs one client script (`tests/py/compare_imap.py`: folders, flags,
//! SEARCH, FETCH of parts, UIDPLUS, MOVE, POP3, IDLE) against the facteur MAA and
//! against Dovecot and compares the normalised answers; every difference is
//! either fixed in facteur or listed in [`ALLOWED`] with its RFC reason.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use facteur_tests::stack::dev_password;
use facteur_tests::{Dovecot, DovecotSpec, Stack, StackSpec};

/// The answers that may differ between facteur and Dovecot, by record key of
/// `compare_imap.py`, each with why both answers are right.
const ALLOWED: &[(&str, &str)] = &[
    (
        "capability IMAP4REV2",
        "facteur implements IMAP4rev2 (RFC 9051) beside IMAP4rev1; Dovecot 2.3 implements IMAP4rev1 (RFC 3501) only",
    ),
    (
        "\\Recent flag on new messages",
        "IMAP4rev2 removed \\Recent (RFC 9051 appendix E.1); facteur never sets it, Dovecot (IMAP4rev1, RFC 3501 §2.3.2) does",
    ),
    (
        "FETCH m1 BODY media type as sent",
        "media types are case-insensitive (RFC 2045 §5.1); facteur's codec writes the text type as \"TEXT\" (RFC 9051's \
         body-type-text grammar), Dovecot echoes the message's \"text\"; compared in lower case everywhere else",
    ),
    (
        "FETCH m2 BODY.PEEK[3]",
        "a section beyond the message's parts: RFC 9051 §6.4.5 leaves the answer open and body-section data is an \
         nstring (§9), so NIL (facteur, as other servers do for a missing part) and the empty string (Dovecot, \
         UW imapd's habit) are both valid; clients must take either",
    ),
    (
        "FETCH m7 BODY.PEEK[1]",
        "BODY[1] of a nested multipart: facteur ends it at its close-delimiter \"--alt--\"; Dovecot's answer is 2 \
         octets longer, the CRLF before the outer \"--outer\" that RFC 2046 §5.1.1 attaches to the next boundary \
         delimiter (\"the initial CRLF is considered to be attached to the boundary delimiter line rather than part \
         of the preceding part\"), so facteur's is the RFC's reading; clients use the parts inside, which agree",
    ),
    (
        "LIST after CREATE Projects/facteur",
        "CREATE a/b: facteur creates the superior name as a real mailbox (RFC 9051 §6.3.4 \"SHOULD create any \
         superior hierarchical names\"); Dovecot's Maildir++ keeps it a \\NoSelect placeholder (RFC 9051 §7.3.1)",
    ),
    (
        "LIST after RENAME",
        "the same superior name Projects: a mailbox in facteur, a \\NoSelect placeholder in Dovecot (RFC 9051 §6.3.4)",
    ),
    (
        "DELETE Projects",
        "Projects is a real (empty, childless) mailbox in facteur, so DELETE is OK; in Dovecot it is only a \
         placeholder for its child, gone with it, so DELETE is NO (RFC 9051 §6.3.5)",
    ),
    (
        "LIST (SPECIAL-USE)",
        "facteur also returns child information (\\HasNoChildren) without RETURN (CHILDREN), which RFC 5258 §4 \
         allows (a server MAY give child information the client did not ask for); Dovecot omits it here",
    ),
    (
        "LIST RETURN (SPECIAL-USE)",
        "child information returned without RETURN (CHILDREN) by facteur, allowed by RFC 5258 §4",
    ),
    (
        "LIST (SUBSCRIBED) after UNSUBSCRIBE",
        "facteur adds child information and special-use attributes to a LIST (SUBSCRIBED); RFC 5258 §4 allows child \
         information unasked, and RFC 6154 makes special-use attributes optional ones a server may include in any \
         LIST response (the SPECIAL-USE return option only makes them required); Dovecot sends \\Subscribed only",
    ),
    (
        "LIST RETURN (CHILDREN) %",
        "facteur also returns the special-use attributes when RETURN (SPECIAL-USE) is not asked, which RFC 6154 \
         allows (optional attributes a server may include in any LIST response); Dovecot omits them when another \
         RETURN option is given",
    ),
    (
        "LSUB at first login",
        "LSUB attributes may differ from LIST's (RFC 3501 §6.3.9 \"MAY contain different mailbox flags\"): Dovecot \
         adds the special-use attributes, facteur sends none (LSUB is deprecated in RFC 9051 appendix E)",
    ),
    (
        "LSUB after SUBSCRIBE",
        "LSUB attributes may differ from LIST's (RFC 3501 §6.3.9); Dovecot adds special-use attributes, facteur none",
    ),
    (
        "POP3 CAPA before STLS",
        "before TLS neither side offers a mechanism (RFC 2595 §4: no plaintext passwords before STLS); facteur leaves \
         SASL out of CAPA, Dovecot lists SASL with an empty mechanism list (RFC 2449 §6.3); after STLS both agree",
    ),
];

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// The stack of net `net` (both domains), started.
fn stack(dir: &Path, net: u8) -> Stack {
    let spec = StackSpec::dev(dir.join("var"), facteur_tests::bin_dir(), net);
    spec.prepare().expect("prepare var/");
    spec.start().expect("start the stack")
}

type Records = BTreeMap<String, serde_json::Value>;

/// Run `compare_imap.py` against one server; its records, or the test fails
/// with the script's output and `logs`.
fn compare_script(host: Ipv4Addr, stack: &Stack, out: &Path, logs: &dyn Fn() -> String) -> Records {
    let p = &stack.spec.ports;
    let run = Command::new("python3")
        .arg(py_dir().join("compare_imap.py"))
        .args(["--host", &host.to_string()])
        .arg("--ca")
        .arg(stack.spec.ca())
        .args(["--imaps", &p.imaps.to_string()])
        .args(["--pop3", &p.pop3.to_string()])
        .args(["--lmtp", &p.lmtp.to_string()])
        .arg("--out")
        .arg(out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FACTEUR_DEV_PASSWORD", dev_password())
        .output()
        .expect("run python3");
    assert!(
        run.status.success(),
        "compare_imap.py against {host} failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        logs()
    );
    let text = std::fs::read_to_string(out).expect("read the records");
    serde_json::from_str(&text).expect("records are JSON")
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "(absent)".to_owned(), ToString::to_string)
}

#[test]
fn row7_same_imap_and_pop3_session_against_facteur_and_dovecot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = stack(dir.path(), 70);
    let dovecot_ip = Ipv4Addr::new(127, 70, 0, 9);
    let dovecot: Dovecot = DovecotSpec::new(
        dir.path().join("dovecot"),
        dovecot_ip,
        &stack.spec,
        "dovecot.test",
    )
    .start()
    .expect("start Dovecot");
    let paris = stack.spec.domain("paris.test").expect("paris").ip;
    let facteur = compare_script(paris, &stack, &dir.path().join("facteur.json"), &|| {
        stack.all_logs()
    });
    let reference = compare_script(
        dovecot_ip,
        &stack,
        &dir.path().join("dovecot.json"),
        &|| dovecot.logs(),
    );

    let keys: std::collections::BTreeSet<&String> =
        facteur.keys().chain(reference.keys()).collect();
    let mut unlisted = Vec::new();
    let mut allowed_seen = Vec::new();
    for key in keys {
        let (f, d) = (facteur.get(key), reference.get(key));
        if f == d {
            continue;
        }
        let line = format!("{key}\n    facteur: {}\n    Dovecot: {}", show(f), show(d));
        match ALLOWED.iter().find(|(k, _)| k == key) {
            Some((_, reason)) => allowed_seen.push(format!("{line}\n    allowed: {reason}")),
            None => unlisted.push(line),
        }
    }
    let stale: Vec<&str> = ALLOWED
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| facteur.get(*k) == reference.get(*k))
        .collect();
    println!(
        "{} records compared; allowed differences:\n{}",
        facteur.len(),
        allowed_seen.join("\n")
    );
    assert!(
        unlisted.is_empty(),
        "facteur and Dovecot answered differently ({} unlisted differences):\n{}",
        unlisted.len(),
        unlisted.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as allowed differences but both servers now agree: {stale:?}"
    );
}
