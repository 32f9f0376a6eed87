//! The interop swap matrix, Dovecot's rows (issue 17), each on its own stack and
//! Dovecot instance (`tests/src/dovecot.rs`), nets 127.70.0.x to 127.72.0.x and
//! 127.100.0.x:
//! row 7 runs one client script (`tests/py/compare_imap.py`: folders, flags,
//! SEARCH, FETCH of parts, UIDPLUS, MOVE, POP3, IDLE) against the facteur MAA and
//! against Dovecot and compares the normalised answers; every difference is
//! either fixed in facteur or listed in [`ALLOWED`] with its RFC reason.
//! Row 5: the facteur MTA delivers into Dovecot over LMTP (`[transport]`), and
//! Dovecot serves the mail over IMAP and POP3. Row 6: Dovecot serves the Maildir
//! the facteur MDA writes (`[store] maildir`) and the one `facteur-mda store
//! export --maildir` makes, flags, keywords, folders and subscriptions included;
//! and back: `facteur-mda store import --maildir` takes the Maildir Dovecot kept
//! (its indexes beside the mail) and the facteur MAA shows what Dovecot showed.

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

/// Run `tests/py/mailstate.py` (`submit`, `imap`, `arrange`, `pop3`); its JSON
/// answer, or the test fails with its output and `logs`.
fn mailstate(stack: &Stack, args: &[&str], logs: &dyn Fn() -> String) -> serde_json::Value {
    let run = Command::new("python3")
        .arg(py_dir().join("mailstate.py"))
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
        "mailstate.py {args:?} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&run.stderr),
        logs()
    );
    serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout))
}

/// The messages of one folder of a `mailstate.py imap` answer.
fn folder<'a>(state: &'a serde_json::Value, name: &str) -> &'a Vec<serde_json::Value> {
    state[name]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no folder {name} in {state:#}"))
}

const ANDRE: &str = "andre@lyon.test";
const JACQUES: &str = "jacques@paris.test";

#[test]
fn row5_facteur_mta_delivers_into_dovecot_over_lmtp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dovecot_ip = Ipv4Addr::new(127, 71, 0, 9);
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 71);
    // bernard is a lyon.test account for the MTA (its recipient check asks the
    // facteur MDA) but not for Dovecot: Dovecot's LMTP refuses him alone.
    spec.extra_users.push("bernard@lyon.test".into());
    spec.sets.push((
        "lyon.test/mta".into(),
        format!(
            "transport={{\"lyon.test\" = \"lmtp:{dovecot_ip}:{}\"}}",
            spec.ports.lmtp
        ),
    ));
    spec.prepare().expect("prepare var/");
    let mut dspec = DovecotSpec::new(
        dir.path().join("dovecot"),
        dovecot_ip,
        &spec,
        "dovecot.test",
    );
    dspec.users = vec![ANDRE.to_owned()];
    let dovecot = dspec.start().expect("start Dovecot");
    let stack = spec.start().expect("start the stack");
    let logs = || format!("{}\n{}", stack.all_logs(), dovecot.logs());
    let paris = stack
        .spec
        .domain("paris.test")
        .expect("paris")
        .ip
        .to_string();
    let dv = dovecot_ip.to_string();

    let subject = "row 5 through the facteur MTA into Dovecot";
    let refused = mailstate(
        &stack,
        &[
            "submit",
            "--host",
            &paris,
            "--to",
            "andre@lyon.test,bernard@lyon.test",
            "--subject",
            subject,
        ],
        &logs,
    );
    assert_eq!(
        refused,
        serde_json::json!([]),
        "the MSA took both recipients"
    );

    // Dovecot files it over LMTP and serves it over IMAP...
    let imap = mailstate(
        &stack,
        &[
            "imap",
            "--host",
            &dv,
            "--user",
            ANDRE,
            "--wait",
            subject,
            "--mention",
            ".leading dot",
        ],
        &logs,
    );
    let inbox = folder(&imap, "INBOX");
    assert_eq!(inbox.len(), 1, "one message in andre's INBOX: {imap:#}");
    assert_eq!(inbox[0]["subject"], subject);
    assert_eq!(
        inbox[0]["message-id"],
        "<row-5-through-the-facteur-MTA-into-Dovecot@paris.test>"
    );
    assert_eq!(
        inbox[0]["mentions"], true,
        "the body's dot-stuffed line came through LMTP unstuffed: {imap:#}"
    );
    // ... and over POP3, the same bytes.
    let pop3 = mailstate(&stack, &["pop3", "--host", &dv, "--user", ANDRE], &logs);
    assert_eq!(pop3[0]["subject"], subject, "{pop3:#}");
    assert_eq!(
        pop3[0]["sha256"], inbox[0]["sha256"],
        "POP3 RETR = IMAP BODY[]"
    );
    assert_eq!(
        pop3[0]["list size"], pop3[0]["size"],
        "POP3 LIST size is exact"
    );

    // Dovecot's per-recipient LMTP refusal of bernard becomes the MTA's bounce to
    // pierre, for bernard alone.
    let bounce = "Undelivered Mail Returned to Sender";
    let paris_imap = mailstate(
        &stack,
        &[
            "imap",
            "--host",
            &paris,
            "--user",
            "pierre@paris.test",
            "--wait",
            bounce,
            "--mention",
            "bernard@lyon.test",
        ],
        &logs,
    );
    let bounces: Vec<&serde_json::Value> = folder(&paris_imap, "INBOX")
        .iter()
        .filter(|m| m["subject"] == bounce)
        .collect();
    assert_eq!(bounces.len(), 1, "one bounce: {paris_imap:#}");
    assert_eq!(bounces[0]["mentions"], true, "the bounce names bernard");
    let andre_bounced = mailstate(
        &stack,
        &[
            "imap",
            "--host",
            &paris,
            "--user",
            "pierre@paris.test",
            "--mention",
            "andre@lyon.test",
        ],
        &logs,
    );
    assert!(
        folder(&andre_bounced, "INBOX")
            .iter()
            .filter(|m| m["subject"] == bounce)
            .all(|m| m["mentions"] == false),
        "andre's delivery is not bounced: {andre_bounced:#}"
    );
}

/// A `mailstate.py imap` answer with what a Maildir legitimately cannot keep
/// dropped: child information (derived from the names), and each folder's
/// message list in a stable order.
fn comparable(state: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, f) in state.as_object().expect("folders") {
        let attrs: Vec<&serde_json::Value> = f["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .filter(|a| *a != "\\haschildren" && *a != "\\hasnochildren")
            .collect();
        out.insert(
            name.clone(),
            serde_json::json!({"attributes": attrs, "messages": f["messages"]}),
        );
    }
    serde_json::Value::Object(out)
}

#[test]
fn row6_dovecot_serves_the_maildir_facteur_mda_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dovecot_ip = Ipv4Addr::new(127, 72, 0, 9);
    // lyon.test's MDA files into a Maildir (`[store] maildir`); paris.test's keeps
    // its sled store, exported with `facteur-mda store export --maildir` below.
    let maildir = dir.path().join("maildir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 72);
    spec.sets.push((
        "lyon.test/mda".into(),
        format!("store.maildir={:?}", maildir.display().to_string()),
    ));
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");
    let paris = stack
        .spec
        .domain("paris.test")
        .expect("paris")
        .ip
        .to_string();
    let dv = dovecot_ip.to_string();
    let submit = |stack: &Stack, to: &str, subject: &str| {
        let refused = mailstate(
            stack,
            &["submit", "--host", &paris, "--to", to, "--subject", subject],
            &|| stack.all_logs(),
        );
        assert_eq!(refused, serde_json::json!([]), "the MSA took {to}");
    };

    // 1. What lyon's MDA filed in Maildir mode, served by Dovecot.
    let subjects = ["row 6 first", "row 6 second"];
    for subject in subjects {
        submit(&stack, ANDRE, subject);
    }
    let inbox = maildir.join("lyon.test/andre");
    let filed = Stack::wait_until(std::time::Duration::from_secs(60), || {
        std::fs::read_dir(inbox.join("new"))
            .map(|d| d.count() == subjects.len())
            .unwrap_or(false)
    });
    assert!(
        filed,
        "the MDA filed both messages into {}/new\n{}",
        inbox.display(),
        stack.all_logs()
    );
    {
        let mut dspec = DovecotSpec::new(
            dir.path().join("dovecot-live"),
            dovecot_ip,
            &stack.spec,
            "dovecot.test",
        );
        dspec.maildir = maildir.clone();
        let dovecot = dspec.start().expect("start Dovecot on the MDA's Maildir");
        let logs = || format!("{}\n{}", stack.all_logs(), dovecot.logs());
        let served = mailstate(
            &stack,
            &[
                "imap",
                "--host",
                &dv,
                "--user",
                ANDRE,
                "--mention",
                ".leading dot",
            ],
            &logs,
        );
        let got: Vec<(&serde_json::Value, &serde_json::Value, &serde_json::Value)> =
            folder(&served, "INBOX")
                .iter()
                .map(|m| (&m["subject"], &m["flags"], &m["mentions"]))
                .collect();
        let (yes, none) = (serde_json::json!(true), serde_json::json!([]));
        let first = serde_json::json!(subjects[0]);
        let second = serde_json::json!(subjects[1]);
        assert_eq!(
            got,
            vec![(&first, &none, &yes), (&second, &none, &yes)],
            "Dovecot serves what the MDA filed, unread, bodies whole: {served:#}"
        );
        let pop3 = mailstate(&stack, &["pop3", "--host", &dv, "--user", ANDRE], &logs);
        assert_eq!(
            pop3.as_array().map(Vec::len),
            Some(2),
            "POP3 sees both: {pop3:#}"
        );
    }

    // 2. Flags, keywords, folders and subscriptions set through paris.test's
    //    MAA, exported from its store, served by Dovecot as facteur served them.
    for subject in ["row 6 export one", "row 6 export two"] {
        submit(&stack, JACQUES, subject);
        let paris_ip = paris.as_str();
        mailstate(
            &stack,
            &[
                "imap", "--host", paris_ip, "--user", JACQUES, "--wait", subject,
            ],
            &|| stack.all_logs(),
        );
    }
    mailstate(
        &stack,
        &["arrange", "--host", &paris, "--user", JACQUES],
        &|| stack.all_logs(),
    );
    let arranged = mailstate(
        &stack,
        &["imap", "--host", &paris, "--user", JACQUES],
        &|| stack.all_logs(),
    );
    // The store is one process's at a time: stop the MDA, then export.
    stack.kill("paris.test", "mda").expect("stop paris's MDA");
    let export = dir.path().join("export");
    let out = Command::new(facteur_tests::bin_dir().join("facteur-mda"))
        .arg("--config")
        .arg(stack.spec.var.join("paris.test/facteur-mda.toml"))
        .args(["store", "export", "--maildir"])
        .arg(&export)
        .output()
        .expect("run facteur-mda store export");
    assert!(
        out.status.success(),
        "facteur-mda store export --maildir failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dspec = DovecotSpec::new(
        dir.path().join("dovecot-export"),
        dovecot_ip,
        &stack.spec,
        "dovecot.test",
    );
    dspec.maildir = export;
    let dovecot = dspec.start().expect("start Dovecot on the export");
    let logs = || format!("{}\n{}", stack.all_logs(), dovecot.logs());
    let served = mailstate(&stack, &["imap", "--host", &dv, "--user", JACQUES], &logs);
    assert_eq!(
        comparable(&served),
        comparable(&arranged),
        "Dovecot shows the exported folders, subscriptions, flags and keywords as facteur did"
    );
    let projects = folder(&served, "Projects/2024");
    assert_eq!(projects.len(), 1, "the copy in Projects/2024: {served:#}");
    let flags = projects[0]["flags"].as_array().expect("flags");
    assert!(
        flags.contains(&serde_json::json!("\\Flagged"))
            && flags.contains(&serde_json::json!("$Work")),
        "the copy kept \\Flagged and the $Work keyword: {served:#}"
    );
    let pop3 = mailstate(&stack, &["pop3", "--host", &dv, "--user", JACQUES], &logs);
    let mut pop_sums: Vec<String> = pop3
        .as_array()
        .expect("pop3")
        .iter()
        .map(|m| m["sha256"].to_string())
        .collect();
    let mut inbox_sums: Vec<String> = folder(&served, "INBOX")
        .iter()
        .map(|m| m["sha256"].to_string())
        .collect();
    pop_sums.sort();
    inbox_sums.sort();
    assert_eq!(
        pop_sums, inbox_sums,
        "POP3 serves the exported INBOX: {pop3:#}"
    );
}

/// `facteur-mda --config <domain's MDA config> store import --maildir DIR
/// --user USER` (the domain's MDA stopped); its standard output.
fn import(stack: &Stack, domain: &str, maildir: &Path, user: &str) -> String {
    let out = Command::new(facteur_tests::bin_dir().join("facteur-mda"))
        .arg("--config")
        .arg(stack.spec.var.join(domain).join("facteur-mda.toml"))
        .args(["store", "import", "--maildir"])
        .arg(maildir)
        .args(["--user", user])
        .output()
        .expect("run facteur-mda store import");
    assert!(
        out.status.success(),
        "facteur-mda store import --maildir failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `mailstate.py imap` answer with what a Maildir cannot carry from one
/// server to the other, or what each server derives on its own, left out:
/// - child information (`\HasChildren`, `\HasNoChildren`): derived from the
///   names by each server, not stored (RFC 5258 §4);
/// - a `\NoSelect` placeholder with no messages, such as `Archiv` above
///   `Archiv/Reçus` created without it: Maildir++ has no directory for it,
///   only the child's `.Archiv.Re&AOc-us`, so it is not a mailbox either side
///   may import; Dovecot lists it as a placeholder (RFC 9051 §7.3.1),
///   facteur as the superior name it makes (RFC 9051 §6.3.4 "SHOULD create
///   any superior hierarchical names") -- the names listed stay compared;
/// - UIDs, UIDVALIDITY and `\Recent` (`mailstate.py` prints none of them):
///   the store numbers the imported messages afresh (RFC 9051 §2.3.1.1 lets
///   a new UIDVALIDITY renumber them), and `\Recent` is per session and gone
///   in IMAP4rev2 (RFC 9051 appendix E.1);
///
/// and each folder's messages sorted (as `mailstate.py` already does).
fn migrated(state: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, f) in state.as_object().expect("folders") {
        let attrs: Vec<&serde_json::Value> = f["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .filter(|a| {
                let a = a.as_str().unwrap_or_default();
                !(a == "\\haschildren"
                    || a == "\\hasnochildren"
                    || (a == "\\noselect" && folder(state, name).is_empty()))
            })
            .collect();
        out.insert(
            name.clone(),
            serde_json::json!({"attributes": attrs, "messages": f["messages"]}),
        );
    }
    serde_json::Value::Object(out)
}

#[test]
fn row6_facteur_imports_the_maildir_dovecot_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dovecot_ip = Ipv4Addr::new(127, 100, 0, 9);
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 100);
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");
    let mut dspec = DovecotSpec::new(
        dir.path().join("dovecot"),
        dovecot_ip,
        &stack.spec,
        "dovecot.test",
    );
    dspec.users = vec![ANDRE.to_owned()];
    // Dovecot's default: its indexes beside the mail, which import must pass over.
    dspec.indexes_in_maildir = true;
    let maildir = dspec.maildir.clone();
    let mut dovecot = dspec.start().expect("start Dovecot");
    let dv = dovecot_ip.to_string();
    let lyon = stack.spec.domain("lyon.test").expect("lyon").ip.to_string();

    // 1. Mail delivered into Dovecot over LMTP, arranged by an IMAP client
    //    against Dovecot: flags, keywords, folders (nested, one non-ASCII), a
    //    COPY and a MOVE, subscriptions; then one more message nobody reads
    //    (Dovecot leaves it in new/).
    let deliver = |stack: &Stack, dovecot: &Dovecot, subject: &str| {
        let refused = mailstate(
            stack,
            &[
                "deliver",
                "--host",
                &dv,
                "--to",
                ANDRE,
                "--subject",
                subject,
            ],
            &|| dovecot.logs(),
        );
        assert_eq!(refused, serde_json::json!([]), "Dovecot took {subject}");
    };
    for subject in ["row 6 back one", "row 6 back two", "row 6 back three"] {
        deliver(&stack, &dovecot, subject);
    }
    mailstate(
        &stack,
        &["organise", "--host", &dv, "--user", ANDRE],
        &|| dovecot.logs(),
    );
    deliver(&stack, &dovecot, "row 6 back unread");
    let kept = mailstate(
        &stack,
        &["imap", "--host", &dv, "--user", ANDRE, "--dates"],
        &|| dovecot.logs(),
    );
    let recus = folder(&kept, "Archiv/Re&AOc-us");
    assert_eq!(
        (recus.len(), recus.first().map(|m| &m["subject"])),
        (1, Some(&serde_json::json!("row 6 back three"))),
        "Dovecot moved the third message into Archiv/Reçus: {kept:#}"
    );
    assert_eq!(
        folder(&kept, "INBOX").len(),
        3,
        "INBOX: one, two, unread: {kept:#}"
    );
    let unclean = dovecot.stop();
    assert!(unclean.is_empty(), "Dovecot stopped cleanly: {unclean:?}");

    // What Dovecot left in the Maildir beside the mail: import must read its
    // subscriptions and keywords and pass over the rest.
    let home = maildir.join("lyon.test/andre");
    for file in [
        "subscriptions",
        "dovecot-uidlist",
        "dovecot.index.log",
        ".Projects.2024/dovecot-keywords",
        ".Archiv.Re&AOc-us/dovecot-keywords",
    ] {
        assert!(
            home.join(file).exists(),
            "Dovecot wrote {file} in {}",
            home.display()
        );
    }

    // 2. lyon.test's MDA (and the MAA in front of it) stopped, the Maildir
    //    imported into its store, both started again: the facteur MAA shows
    //    what Dovecot showed.
    let view = |stack: &mut Stack, import_out: &mut Vec<String>| {
        stack.kill("lyon.test", "maa").expect("stop lyon's MAA");
        stack.kill("lyon.test", "mda").expect("stop lyon's MDA");
        import_out.push(import(stack, "lyon.test", &maildir, ANDRE));
        stack.restart("lyon.test", "mda").expect("start lyon's MDA");
        stack.restart("lyon.test", "maa").expect("start lyon's MAA");
        mailstate(
            stack,
            &["imap", "--host", &lyon, "--user", ANDRE, "--dates"],
            &|| stack.all_logs(),
        )
    };
    let mut outputs = Vec::new();
    let imported = view(&mut stack, &mut outputs);
    assert_eq!(
        migrated(&imported),
        migrated(&kept),
        "the facteur MAA shows the folders, subscriptions, flags, keywords, dates and bytes \
         Dovecot showed; import said:\n{}",
        outputs[0]
    );
    assert!(
        outputs[0].contains("andre@lyon.test INBOX: 3 messages"),
        "import filed INBOX's three: {}",
        outputs[0]
    );

    // 3. A second import of the same tree is a no-op.
    let again = view(&mut stack, &mut outputs);
    assert_eq!(
        again, imported,
        "a second import changed nothing; it said:\n{}",
        outputs[1]
    );
    for line in outputs[1].lines() {
        assert!(
            line.contains(": 0 messages"),
            "the second import appended nothing: {}",
            outputs[1]
        );
    }
    assert!(
        outputs[1].contains("INBOX: 0 messages, 3 already imported"),
        "the second import recognised INBOX's three: {}",
        outputs[1]
    );
}
