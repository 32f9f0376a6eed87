//! Live admin of the running agents over their gRPC listeners: `facteur-mta
//! queue list|show|flush|delete|hold|release` on paris's queue while lyon's MTA
//! is down, and `facteur-mda user add|passwd|list|del` while the MDA serves
//! (a new account logs in over IMAP at once). Net 127.114.0.x.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use facteur_tests::{Stack, StackSpec};

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// Run a Python snippet with the stack's addresses in `PARIS`, `LYON` and `CA`
/// (and tests/py on the path); its stdout.
fn py(stack: &Stack, code: &str) -> (bool, String) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let prelude = format!(
        "import sys; sys.path.insert(0, {:?})\nPARIS, LYON, CA = {:?}, {:?}, {:?}\n",
        py_dir().display().to_string(),
        ip("paris.test"),
        ip("lyon.test"),
        spec.ca().display().to_string()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{code}"))
        .output()
        .expect("run python3");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn send(stack: &Stack, token: &str) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let out = Command::new("python3")
        .arg(py_dir().join("send.py"))
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(["--to", "andre@lyon.test", "--token", token])
        .output()
        .expect("run send.py");
    assert!(
        out.status.success(),
        "send.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many of andre@lyon.test's messages hold `token` (POP3).
fn at_lyon(stack: &Stack, token: &str) -> usize {
    let (ok, out) = py(
        stack,
        &format!(
            "from common import pop3_messages\nprint(sum({token:?}.encode() in m for m in pop3_messages(LYON, 'andre@lyon.test', CA)))"
        ),
    );
    assert!(ok, "{out}");
    out.trim().parse().unwrap_or(0)
}

/// Run `facteur-<agent> --config <domain's config> args…`: (success, stdout+stderr).
fn admin(
    stack: &Stack,
    domain: &str,
    agent: &str,
    args: &[&str],
    password: Option<&str>,
) -> (bool, String) {
    let spec = &stack.spec;
    let mut cmd = Command::new(spec.bin_dir.join(format!("facteur-{agent}")));
    cmd.args(args)
        .arg("--config")
        .arg(spec.config_path(domain, agent));
    match password {
        Some(p) => cmd.env("FACTEUR_PASSWORD", p),
        None => cmd.env_remove("FACTEUR_PASSWORD"),
    };
    let out = cmd.output().expect("run the admin command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ facteur-{agent} {}\n{text}", args.join(" "));
    (out.status.success(), text)
}

fn queue(stack: &Stack, args: &[&str]) -> String {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    let (ok, out) = admin(stack, "paris.test", "mta", &all, None);
    assert!(
        ok,
        "facteur-mta queue {args:?} failed: {out}\n{}",
        stack.all_logs()
    );
    out
}

/// The ids in a `queue list`, each with whether it is held (`!`).
fn ids(list: &str) -> Vec<(String, bool)> {
    list.lines()
        .skip(1)
        .filter(|l| !l.starts_with(' ') && !l.starts_with("--") && !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| (id.trim_end_matches('!').to_owned(), id.ends_with('!')))
        .collect()
}

fn start(net: u8) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

/// One stack (net 114) for both: the queue first, then the accounts.
#[test]
fn the_queue_and_the_accounts_are_administered_while_the_agents_run() {
    let (_dir, mut stack) = start(114);
    queue_is_listed_held_flushed_deleted_and_released(&mut stack);
    accounts_change_while_the_mda_runs(&stack);
}

fn queue_is_listed_held_flushed_deleted_and_released(stack: &mut Stack) {
    stack.kill("lyon.test", "mta").expect("stop lyon's MTA");
    send(stack, "admin-held-one");
    send(stack, "admin-deleted-one");

    // Both wait in paris's queue, deferred with the reason of the failed attempt.
    let mut list = String::new();
    let deferred = Stack::wait_until(Duration::from_secs(60), || {
        list = queue(stack, &["list"]);
        ids(&list).len() == 2 && list.matches("                    (").count() == 2
    });
    assert!(
        deferred,
        "two deferred entries in:\n{list}\n{}",
        stack.all_logs()
    );
    assert!(
        list.starts_with("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"),
        "{list}"
    );
    assert!(list.contains("pierre@paris.test"), "{list}");
    assert!(list.contains("andre@lyon.test"), "{list}");
    assert!(list.trim_end().ends_with("in 2 Requests."), "{list}");
    assert!(
        list.lines().last().unwrap_or("").starts_with("-- "),
        "{list}"
    );

    // Which is which, by `queue show` (envelope, status and headers).
    let mut held = String::new();
    let mut deleted = String::new();
    for (id, _) in ids(&list) {
        let shown = queue(stack, &["show", &id]);
        assert!(
            shown.contains("recipient: <andre@lyon.test> pending"),
            "{shown}"
        );
        assert!(shown.contains("sender: <pierre@paris.test>"), "{shown}");
        if shown.contains("Subject: admin-held-one") {
            held = id;
        } else if shown.contains("Subject: admin-deleted-one") {
            deleted = id;
        }
    }
    assert!(
        !held.is_empty() && !deleted.is_empty(),
        "both shown with their Subject"
    );

    queue(stack, &["hold", &held]);
    let list = queue(stack, &["list"]);
    assert!(
        list.contains(&format!("{held}!")),
        "held entries show `!`:\n{list}"
    );
    assert!(!list.contains(&format!("{deleted}!")), "{list}");

    queue(stack, &["delete", &deleted]);
    let list = queue(stack, &["list"]);
    assert_eq!(ids(&list), vec![(held.clone(), true)], "{list}");
    assert!(list.trim_end().ends_with("in 1 Request."), "{list}");
    let (ok, out) = admin(
        stack,
        "paris.test",
        "mta",
        &["queue", "show", &deleted],
        None,
    );
    assert!(!ok, "a deleted entry is gone: {out}");

    // Lyon is back: a flush delivers new mail, never the held message.
    stack
        .restart("lyon.test", "mta")
        .expect("restart lyon's MTA");
    let flushed = queue(stack, &["flush"]);
    assert!(flushed.contains("1 held"), "{flushed}");
    let (ok, out) = admin(stack, "paris.test", "mta", &["queue", "flush", &held], None);
    assert!(
        !ok && out.contains("held"),
        "flushing a held id says so: {out}"
    );
    send(stack, "admin-after-restart");
    assert!(
        Stack::wait_until(Duration::from_secs(60), || at_lyon(
            stack,
            "admin-after-restart"
        ) == 1),
        "new mail flows to lyon again\n{}",
        stack.all_logs()
    );
    assert_eq!(
        at_lyon(stack, "admin-held-one"),
        0,
        "the held message stays queued"
    );
    assert_eq!(ids(&queue(stack, &["list"])), vec![(held.clone(), true)]);

    // Released and flushed: delivered, the queue empty.
    queue(stack, &["release", &held]);
    queue(stack, &["flush"]);
    let mut list = String::new();
    assert!(
        Stack::wait_until(Duration::from_secs(60), || {
            list = queue(stack, &["list"]);
            list == "Mail queue is empty\n"
        }),
        "the queue empties:\n{list}\n{}",
        stack.all_logs()
    );
    assert_eq!(
        at_lyon(stack, "admin-held-one"),
        1,
        "the released message is delivered"
    );
    assert_eq!(
        at_lyon(stack, "admin-deleted-one"),
        0,
        "the deleted message never is"
    );
}

fn accounts_change_while_the_mda_runs(stack: &Stack) {
    let imap_login = |user: &str, password: &str| -> bool {
        let (ok, out) = py(
            stack,
            &format!(
                "import imaplib\nfrom common import tls\nc = imaplib.IMAP4(PARIS, 1430)\nc.starttls(ssl_context=tls(CA))\ntry:\n    c.login({user:?}, {password:?})\n    print('LOGGED IN')\nexcept imaplib.IMAP4.error as e:\n    print('REFUSED', e)\n"
            ),
        );
        assert!(ok, "{out}");
        out.contains("LOGGED IN")
    };
    let mda = |args: &[&str], password: Option<&str>| {
        let mut all = vec!["user"];
        all.extend_from_slice(args);
        admin(stack, "paris.test", "mda", &all, password)
    };

    let (ok, out) = mda(&["add", "Marie@Paris.test"], Some("first-secret"));
    assert!(ok && out.contains("added marie@paris.test"), "{out}");
    assert!(
        imap_login("marie@paris.test", "first-secret"),
        "a new account logs in at once"
    );
    let (ok, out) = mda(&["add", "marie@paris.test"], Some("again"));
    assert!(!ok && out.contains("exists"), "a second add fails: {out}");

    let (ok, out) = mda(&["list"], None);
    assert!(ok, "{out}");
    let users: Vec<&str> = out.lines().filter(|l| l.contains('@')).collect();
    assert_eq!(
        users,
        [
            "jacques@paris.test",
            "marie@paris.test",
            "pierre@paris.test"
        ]
    );

    let (ok, out) = mda(&["passwd", "marie@paris.test"], Some("second-secret"));
    assert!(ok, "{out}");
    assert!(imap_login("marie@paris.test", "second-secret"));
    assert!(
        !imap_login("marie@paris.test", "first-secret"),
        "the old password is refused"
    );

    let (ok, out) = mda(&["del", "marie@paris.test"], None);
    assert!(ok && out.contains("deleted marie@paris.test"), "{out}");
    assert!(
        !imap_login("marie@paris.test", "second-secret"),
        "a deleted account is refused"
    );
    let (ok, out) = mda(&["del", "marie@paris.test"], None);
    assert!(!ok && out.contains("no such user"), "{out}");
    let (_, out) = mda(&["list"], None);
    assert!(!out.contains("marie@paris.test"), "{out}");
}
