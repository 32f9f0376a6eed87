//! IMAP clients end-to-end (issue 16): real clients against the dev stack's MAA
//! over IMAPS, each test on its own stack (`127.50.0.x` to `127.55.0.x`):
//! Python's imaplib and imapclient scenarios (`tests/py/imap_sync.py`,
//! `imap_client.py`), mbsync and offlineimap3 keeping a Maildir with folders in
//! sync both ways, curl's `imaps://` with `UID SEARCH`, and neomutt driven in
//! tmux. `cargo xtask test` installs every client; a missing one fails the test.
//! The server state is arranged and read back with `tests/py/imap_state.py`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use facteur_tests::stack::dev_password;
use facteur_tests::{Stack, StackSpec};

const JACQUES: &str = "jacques@paris.test";

fn start(net: u8) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

/// Fail (never skip) when a client the test drives is not installed.
fn require(check: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("{check} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{check}` failed: `cargo xtask test` installs {package}, or install it by hand"
    );
}

fn ip(stack: &Stack) -> String {
    stack
        .spec
        .domain("paris.test")
        .expect("paris")
        .ip
        .to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// Run a script of `tests/py` with the stack's addresses; its output, or the
/// test fails with it and the logs.
fn py(stack: &Stack, script: &str, extra: &[&str]) -> String {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let out = Command::new("python3")
        .arg(py_dir().join(script))
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FACTEUR_DEV_PASSWORD", dev_password())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    assert!(
        out.status.success(),
        "{script} {extra:?} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.all_logs()
    );
    stdout
}

/// `imap_state.py` as jacques: arrange the server (`create`, `append`, `store`,
/// `expunge`) or read it (`dump`).
fn state(stack: &Stack, args: &[&str]) -> String {
    let mut all = vec!["--user", JACQUES];
    all.extend_from_slice(args);
    py(stack, "imap_state.py", &all)
}

/// The server's messages as (folder, subject) → flags, and the folders.
struct ServerView {
    messages: BTreeMap<(String, String), Vec<String>>,
    folders: Vec<String>,
    raw: String,
}

fn server(stack: &Stack) -> ServerView {
    let raw = state(stack, &["dump"]);
    let mut messages = BTreeMap::new();
    let mut folders = Vec::new();
    for line in raw.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            [folder, "-"] => folders.push((*folder).to_owned()),
            [folder, _validity, _uid, subject, flags] => {
                let flags = flags.split_whitespace().map(str::to_owned).collect();
                let old = messages.insert(((*folder).to_owned(), (*subject).to_owned()), flags);
                assert!(old.is_none(), "{subject} twice in {folder}:\n{raw}");
            }
            _ => panic!("unexpected dump line {line:?}"),
        }
    }
    ServerView {
        messages,
        folders,
        raw,
    }
}

impl ServerView {
    fn flags(&self, folder: &str, subject: &str) -> Option<&Vec<String>> {
        self.messages.get(&(folder.to_owned(), subject.to_owned()))
    }
}

#[test]
fn imaplib_sees_folders_search_fetch_move_and_qresync() {
    let (_dir, stack) = start(50);
    py(&stack, "imap_sync.py", &[]);
}

#[test]
fn imapclient_finds_special_folders_and_hears_changes_under_idle() {
    let (_dir, stack) = start(51);
    py(&stack, "imap_client.py", &[]);
}

#[test]
fn curl_lists_searches_fetches_and_appends_over_imaps() {
    require("command -v curl", "curl");
    let (dir, stack) = start(54);
    state(&stack, &["append", "INBOX", "hello from curl", "\\Seen"]);
    let dump = server(&stack);
    let uid = dump
        .raw
        .lines()
        .find(|l| l.contains("\thello from curl\t"))
        .and_then(|l| l.split('\t').nth(2))
        .expect("the message's UID")
        .to_owned();
    let url = format!("imaps://{}:{}", ip(&stack), stack.spec.ports.imaps);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(stack.spec.ca())
            .args(["-u", &format!("{JACQUES}:{}", dev_password())])
            .args(args)
            .output()
            .expect("run curl");
        let t = text(&out);
        assert!(
            out.status.success(),
            "curl {args:?} failed:\n{t}\n{}",
            stack.all_logs()
        );
        t
    };
    let search = curl(&[&format!("{url}/INBOX"), "-X", "UID SEARCH SUBJECT hello"]);
    assert!(
        search
            .lines()
            .any(|l| l.trim() == format!("* SEARCH {uid}")),
        "curl's UID SEARCH SUBJECT hello should show UID {uid}:\n{search}"
    );
    let none = curl(&[&format!("{url}/INBOX"), "-X", "UID SEARCH SUBJECT nowhere"]);
    assert!(
        none.lines().any(|l| l.trim() == "* SEARCH"),
        "a search that matches nothing: {none}"
    );
    let list = curl(&[&format!("{url}/")]);
    for folder in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(
            list.lines()
                .any(|l| l.trim_end().ends_with(&format!(" {folder}"))
                    || l.trim_end().ends_with(&format!(" \"{folder}\""))),
            "curl's LIST shows {folder}:\n{list}"
        );
    }
    let body = curl(&[&format!("{url}/INBOX;UID={uid}")]);
    assert!(
        body.contains("Subject: hello from curl") && body.contains("the body of hello from curl"),
        "curl fetches the message by UID:\n{body}"
    );
    let draft = dir.path().join("draft.eml");
    std::fs::write(
        &draft,
        "From: jacques@paris.test\r\nTo: x@example.org\r\nSubject: uploaded by curl\r\n\r\nvia APPEND\r\n",
    )
    .expect("write draft");
    let drafts = format!("{url}/Drafts");
    curl(&["-T", &draft.display().to_string(), &drafts]);
    assert!(
        server(&stack).flags("Drafts", "uploaded by curl").is_some(),
        "curl -T appended to Drafts"
    );
}

// ---- Maildir helpers for mbsync and offlineimap

/// Every message file under a Maildir++-style tree of maildirs: (folder path
/// relative to `root`, file) → (subject, maildir flag letters).
fn maildir(root: &Path) -> BTreeMap<(String, PathBuf), (String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<(String, PathBuf), (String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let rel = dir
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if !path.is_dir() || name.starts_with('.') {
                continue;
            }
            if name == "cur" || name == "new" {
                for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    let file = f.path();
                    let content = std::fs::read(&file).unwrap_or_default();
                    let subject = String::from_utf8_lossy(&content)
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                        .unwrap_or_default();
                    let fname = f.file_name().to_string_lossy().into_owned();
                    let flags = fname
                        .split_once(":2,")
                        .map(|(_, f)| f.to_owned())
                        .unwrap_or_default();
                    out.insert((rel.clone(), file), (subject, flags));
                }
            } else if name != "tmp" {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Folder → subjects → flags, from `maildir`.
fn by_folder(root: &Path) -> BTreeMap<(String, String), String> {
    maildir(root)
        .into_iter()
        .map(|((folder, _), (subject, flags))| ((folder, subject), flags))
        .collect()
}

/// Every file of the tree with its bytes, but for the clients' dotfiles (their
/// sync state): what a run that changes nothing leaves as it was.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

/// Give the message with `subject` in the maildir `dir` the flag `letter`
/// (moving it to cur/ as a client does once it has seen it).
fn add_flag(dir: &Path, subject: &str, letter: char) {
    let files = maildir(dir);
    let (file, flags) = files
        .iter()
        .find(|((folder, _), (s, _))| folder.is_empty() && s == subject)
        .map(|((_, f), (_, flags))| (f.clone(), flags.clone()))
        .unwrap_or_else(|| panic!("no {subject:?} in {}: {files:?}", dir.display()));
    let name = file.file_name().expect("file name").to_string_lossy();
    let base = name.split_once(":2,").map_or(&*name, |(b, _)| b);
    let mut letters: Vec<char> = flags.chars().chain([letter]).collect();
    letters.sort_unstable();
    letters.dedup();
    let flags: String = letters.into_iter().collect();
    std::fs::rename(&file, dir.join("cur").join(format!("{base}:2,{flags}"))).expect("rename");
}

/// A new message written into a maildir by hand (a local mail program).
fn write_local(dir: &Path, subject: &str, flags: Option<&str>) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir maildir");
    }
    let unique = format!(
        "1700000000.{}_{}.facteur-test",
        std::process::id(),
        subject.len()
    );
    let (sub, name) = match flags {
        Some(f) => ("cur", format!("{unique}:2,{f}")),
        None => ("new", unique),
    };
    std::fs::write(
        dir.join(sub).join(name),
        format!(
            "From: jacques@paris.test\nTo: jacques@paris.test\nSubject: {subject}\n\
             Date: Tue, 01 Oct 2024 12:00:00 +0000\nMessage-ID: <{}@local.test>\n\n\
             written locally\n",
            subject.replace(' ', "-")
        ),
    )
    .expect("write local message");
}

/// What every two-way test starts from on the server: mail in INBOX, Sent,
/// Archive and a nested folder.
fn seed_server(stack: &Stack) {
    state(stack, &["create", "Projects/facteur"]);
    state(stack, &["append", "INBOX", "inbox one", "\\Seen"]);
    state(stack, &["append", "INBOX", "inbox two"]);
    state(stack, &["append", "Archive", "archive one", "\\Seen"]);
    state(stack, &["append", "Projects/facteur", "project one"]);
    state(stack, &["append", "Sent", "sent one", "\\Seen"]);
}

/// The server changes of the second run: new mail in a folder, a flag, a new
/// nested folder.
fn change_server(stack: &Stack) {
    state(stack, &["append", "Archive", "archive two"]);
    state(
        stack,
        &["store", "INBOX", "inbox two", "+FLAGS", "\\Flagged"],
    );
    state(stack, &["create", "Server/fresh"]);
    state(stack, &["append", "Server/fresh", "server note", "\\Seen"]);
}

/// How a local mail program deletes a message from a maildir.
#[derive(Clone, Copy)]
enum Delete {
    /// Mark it trashed (`T`); mbsync's `Expunge Both` expunges it on both sides.
    Trash,
    /// Remove the file (an expunge); offlineimap deletes it on the server.
    Unlink,
}

/// The local changes of the second run: a message written into a synced
/// folder, a new local folder, a flag, a message deleted.
fn change_local(inbox: &Path, mail: &Path, delete: Delete) {
    write_local(&mail.join("Projects/facteur"), "local project", None);
    write_local(&mail.join("Notes"), "local note", Some("S"));
    add_flag(inbox, "inbox one", 'F');
    let archive = mail.join("Archive");
    match delete {
        Delete::Trash => add_flag(&archive, "archive one", 'T'),
        Delete::Unlink => {
            let files = maildir(&archive);
            let file = files
                .iter()
                .find(|((folder, _), (s, _))| folder.is_empty() && s == "archive one")
                .map(|((_, f), _)| f.clone())
                .unwrap_or_else(|| panic!("no \"archive one\" in Archive: {files:?}"));
            std::fs::remove_file(file).expect("remove a local message");
        }
    }
}

/// After the second run both sides hold the union of the changes.
fn check_second_run(
    stack: &Stack,
    local: &BTreeMap<(String, String), String>,
    inbox: &BTreeMap<(String, String), String>,
    report: &dyn Fn(&str) -> String,
) {
    let s = server(stack);
    let has = |folder: &str, subject: &str| s.flags(folder, subject).is_some();
    for (folder, subject) in [
        ("Projects/facteur", "local project"),
        ("Projects/facteur", "project one"),
        ("Notes", "local note"),
        ("Archive", "archive two"),
    ] {
        assert!(
            has(folder, subject),
            "{}",
            report(&format!(
                "the server lacks {subject:?} in {folder}:\n{}",
                s.raw
            ))
        );
    }
    assert!(
        !has("Archive", "archive one"),
        "{}",
        report(&format!(
            "the message trashed locally is still on the server:\n{}",
            s.raw
        ))
    );
    let flags = s.flags("INBOX", "inbox one").cloned().unwrap_or_default();
    assert!(
        flags.iter().any(|f| f == "\\Flagged"),
        "{}",
        report(&format!(
            "the local F flag did not reach the server: {flags:?}"
        ))
    );
    let l = |folder: &str, subject: &str| local.get(&(folder.to_owned(), subject.to_owned()));
    assert!(
        l("Archive", "archive two").is_some() && l("Server/fresh", "server note").is_some(),
        "{}",
        report(&format!(
            "the server's new mail and folder did not reach the Maildir: {local:?}"
        ))
    );
    assert!(
        l("Archive", "archive one").is_none(),
        "{}",
        report("the trashed message is still in the Maildir")
    );
    let two = inbox
        .get(&(String::new(), "inbox two".to_owned()))
        .cloned()
        .unwrap_or_default();
    assert!(
        two.contains('F'),
        "{}",
        report(&format!(
            "the server's \\Flagged did not reach the Maildir: {inbox:?}"
        ))
    );
}

/// After the first run the Maildir mirrors the seeded server.
fn check_first_run(
    local: &BTreeMap<(String, String), String>,
    inbox: &BTreeMap<(String, String), String>,
    report: &dyn Fn(&str) -> String,
) {
    let subjects: Vec<&str> = inbox.keys().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        subjects,
        ["inbox one", "inbox two"],
        "{}",
        report("INBOX not pulled")
    );
    for (folder, subject) in [
        ("Archive", "archive one"),
        ("Projects/facteur", "project one"),
        ("Sent", "sent one"),
    ] {
        assert!(
            local.contains_key(&(folder.to_owned(), subject.to_owned())),
            "{}",
            report(&format!("{subject:?} not pulled into {folder}: {local:?}"))
        );
    }
    let seen = inbox
        .get(&(String::new(), "inbox one".to_owned()))
        .cloned()
        .unwrap_or_default();
    assert!(
        seen.contains('S'),
        "{}",
        report("\\Seen did not become the S flag")
    );
}

// ---- mbsync

/// The server's own certificate (the first of its chain): isync 1.4 matches
/// certificates against DNS names only and the stack is reached by IP, so the
/// certificate is pinned (see interop.rs).
fn leaf_pem(chain: &Path) -> String {
    let pem = std::fs::read_to_string(chain).expect("read server certificate");
    let end = "-----END CERTIFICATE-----";
    let at = pem.find(end).expect("a PEM certificate") + end.len();
    format!("{}\n", &pem[..at])
}

fn mbsync_config(stack: &Stack, home: &Path) -> String {
    let pinned = home.join("paris-cert.pem");
    let chain = stack.spec.var.join("tls").join("paris.test.pem");
    std::fs::write(&pinned, leaf_pem(&chain)).expect("write pinned certificate");
    format!(
        "IMAPAccount jacques\nHost {host}\nPort {port}\nUser {JACQUES}\nPass {password}\n\
         SSLType IMAPS\nSystemCertificates no\nCertificateFile {pinned}\n\n\
         IMAPStore remote\nAccount jacques\n\n\
         MaildirStore local\nPath {home}/Mail/\nInbox {home}/Inbox\nSubFolders Verbatim\n\n\
         Channel all\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
         Remove None\nSync All\nSyncState *\n",
        host = ip(stack),
        port = stack.spec.ports.imaps,
        password = dev_password(),
        pinned = pinned.display(),
        home = home.display(),
    )
}

#[test]
fn mbsync_syncs_every_folder_both_ways_and_a_third_run_changes_nothing() {
    require("command -v mbsync", "isync");
    let (dir, stack) = start(52);
    let home = dir.path().join("mbsync");
    std::fs::create_dir_all(&home).expect("mkdir");
    let config = home.join("mbsyncrc");
    let text_config = mbsync_config(&stack, &home);
    std::fs::write(&config, &text_config).expect("write mbsyncrc");
    let (inbox, mail) = (home.join("Inbox"), home.join("Mail"));
    std::fs::create_dir_all(&mail).expect("mkdir Mail");
    seed_server(&stack);

    let run = |which: &str| -> String {
        let out = Command::new("mbsync")
            .arg("-c")
            .arg(&config)
            .args(["-V", "all"])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .expect("run mbsync");
        let t = text(&out);
        println!("--- mbsync ({which} run):\n{t}");
        assert_eq!(
            out.status.code(),
            Some(0),
            "mbsync ({which} run) failed:\n{t}\n--- config:\n{text_config}\n--- logs:\n{}",
            stack.all_logs()
        );
        t
    };
    let report = |what: &str| format!("mbsync: {what}\n--- logs:\n{}", stack.all_logs());

    run("first");
    check_first_run(&by_folder(&mail), &by_folder(&inbox), &report);
    for folder in ["Drafts", "Trash", "Junk"] {
        assert!(
            mail.join(folder).join("cur").is_dir(),
            "{}",
            report(&format!("Create Near did not make {folder}"))
        );
    }

    change_local(&inbox, &mail, Delete::Trash);
    change_server(&stack);
    run("second");
    check_second_run(&stack, &by_folder(&mail), &by_folder(&inbox), &report);

    let (local_before, inbox_before, server_before) =
        (snapshot(&mail), snapshot(&inbox), server(&stack).raw);
    let transcript = run("third");
    let server_after = server(&stack).raw;
    assert_eq!(
        server_before,
        server_after,
        "{}",
        report("the third run changed the server")
    );
    assert!(
        snapshot(&mail) == local_before && snapshot(&inbox) == inbox_before,
        "{}",
        report("the third run changed the Maildir")
    );
    // mbsync's own account of each box before it synchronizes: both sides hold
    // as many messages.
    let mut boxes = 0;
    let mut counts: Vec<(String, String)> = Vec::new();
    for line in transcript.lines() {
        if let Some((side, rest)) = line.split_once(" side: ") {
            let n = rest.split_whitespace().next().unwrap_or_default();
            counts.push((side.to_owned(), n.to_owned()));
        } else if line.starts_with("Synchronizing") {
            boxes += 1;
            assert!(
                counts.len() == 2 && counts[0].1 == counts[1].1,
                "{}",
                report(&format!(
                    "the third run found a box out of sync: {counts:?}"
                ))
            );
            counts.clear();
        }
    }
    assert!(
        boxes >= 9,
        "{}",
        report(&format!(
            "the third run synchronized {boxes} boxes, not every folder"
        ))
    );
}

// ---- offlineimap3

/// A TCP relay from `127.0.0.1:<port>` to `to`, so a client can reach the stack
/// as `localhost`, a DNS name on the dev certificate (offlineimap checks DNS
/// names only). TLS stays end to end. Lives as long as the test.
fn relay(to: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("relay address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&to) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                })
            };
            if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                pipe(client, s2);
                pipe(server, c2);
            }
        }
    });
    port
}

#[test]
fn offlineimap_syncs_every_folder_both_ways_and_a_third_run_changes_nothing() {
    require("command -v offlineimap", "offlineimap3");
    let (dir, stack) = start(53);
    let home = dir.path().join("offlineimap");
    std::fs::create_dir_all(&home).expect("mkdir");
    let port = relay(format!("{}:{}", ip(&stack), stack.spec.ports.imaps));
    let mail = home.join("Mail");
    let config = home.join("offlineimaprc");
    let text_config = format!(
        "[general]\naccounts = jacques\nmetadata = {meta}\nui = basic\nmaxsyncaccounts = 1\n\n\
         [Account jacques]\nlocalrepository = local\nremoterepository = remote\n\n\
         [Repository local]\ntype = Maildir\nlocalfolders = {mail}\nsep = /\n\n\
         [Repository remote]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
         ipv6 = no\nssl = yes\nsslcacertfile = {ca}\nremoteuser = {JACQUES}\n\
         remotepass = {password}\nmaxconnections = 1\nholdconnectionopen = no\n",
        meta = home.join("meta").display(),
        mail = mail.display(),
        ca = stack.spec.ca().display(),
        password = dev_password(),
    );
    std::fs::write(&config, &text_config).expect("write offlineimaprc");
    seed_server(&stack);

    let run = |which: &str| -> String {
        let out = Command::new("offlineimap")
            .arg("-c")
            .arg(&config)
            .args(["-o", "-u", "basic"])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .expect("run offlineimap");
        let t = text(&out);
        println!("--- offlineimap ({which} run):\n{t}");
        assert!(
            out.status.success() && !t.contains("ERROR"),
            "offlineimap ({which} run) failed ({}):\n{t}\n--- config:\n{text_config}\n--- logs:\n{}",
            out.status,
            stack.all_logs()
        );
        t
    };
    let report = |what: &str| format!("offlineimap: {what}\n--- logs:\n{}", stack.all_logs());
    let local = |m: &Path| -> BTreeMap<(String, String), String> {
        by_folder(m)
            .into_iter()
            .filter(|((f, _), _)| f != "INBOX")
            .collect()
    };
    let inbox = |m: &Path| -> BTreeMap<(String, String), String> {
        by_folder(&m.join("INBOX"))
            .into_iter()
            .filter(|((f, _), _)| f.is_empty())
            .collect()
    };

    run("first");
    check_first_run(&local(&mail), &inbox(&mail), &report);

    change_local(&mail.join("INBOX"), &mail, Delete::Unlink);
    change_server(&stack);
    run("second");
    check_second_run(&stack, &local(&mail), &inbox(&mail), &report);

    let (local_before, server_before) = (snapshot(&mail), server(&stack).raw);
    let transcript = run("third");
    // offlineimap's account of the run: every folder looked at, nothing copied,
    // flagged, deleted or created.
    for folder in [
        "INBOX",
        "Archive",
        "Drafts",
        "Junk",
        "Notes",
        "Projects/facteur",
        "Sent",
        "Server/fresh",
        "Trash",
    ] {
        assert!(
            transcript.contains(&format!("Syncing {folder}: ")),
            "{}",
            report(&format!(
                "the third run did not sync {folder}:\n{transcript}"
            ))
        );
    }
    for action in ["Copy message", "Deleting", "flag", "Creating"] {
        assert!(
            !transcript.contains(action),
            "{}",
            report(&format!(
                "the third run did something ({action}):\n{transcript}"
            ))
        );
    }
    assert_eq!(
        server_before,
        server(&stack).raw,
        "{}",
        report("the third run changed the server")
    );
    assert!(
        snapshot(&mail) == local_before,
        "{}",
        report("the third run changed the Maildir")
    );
}

// ---- neomutt in tmux

/// A neomutt in a detached tmux session on its own server socket; dropping it
/// kills that tmux server.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn screen(&self) -> String {
        self.cmd()
            .args(["capture-pane", "-p", "-t", "mutt"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn keys(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "mutt"])
            .args(keys)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {keys:?}");
    }

    /// Poll the screen until `want` holds (at most `secs` seconds).
    fn wait(&self, secs: u64, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if want(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "neomutt: {what} not shown within {secs}s; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn running(&self) -> bool {
        self.cmd()
            .args(["has-session", "-t", "mutt"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

#[test]
fn neomutt_in_tmux_reads_a_message_and_moves_it_to_trash() {
    require("command -v neomutt", "neomutt");
    require("command -v tmux", "tmux");
    let (dir, stack) = start(55);
    let home = dir.path().join("neomutt");
    std::fs::create_dir_all(&home).expect("mkdir");
    state(&stack, &["append", "INBOX", "neomutt greeting"]);
    let muttrc = home.join("muttrc");
    let rc = format!(
        "set imap_user = \"{JACQUES}\"\nset imap_pass = \"{password}\"\n\
         set folder = \"imaps://{host}:{port}/\"\nset spoolfile = \"+INBOX\"\n\
         set ssl_ca_certificates_file = \"{ca}\"\nset certificate_file = \"{home}/certificates\"\n\
         set ssl_verify_host = yes\nset ssl_force_tls = yes\nset imap_check_subscribed\n\
         unset header_cache\nunset message_cachedir\nset record = \"\"\nset postponed = \"+Drafts\"\n\
         set mbox = \"+INBOX\"\nset move = no\nset delete = yes\nset confirmappend = no\n\
         set confirmcreate = no\nset quit = yes\nset wait_key = no\nset pager_stop = yes\n\
         set mail_check = 60\nset timeout = 1\nset sort = date\nset help = no\n",
        password = dev_password(),
        host = ip(&stack),
        port = stack.spec.ports.imaps,
        ca = stack.spec.ca().display(),
        home = home.display(),
    );
    std::fs::write(&muttrc, &rc).expect("write muttrc");
    let tmux = Tmux {
        socket: format!("facteur-neomutt-{}", std::process::id()),
    };
    let started = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "mutt", "-x", "160", "-y", "40"])
        .arg(format!(
            "neomutt -n -F {} 2>{}/stderr",
            muttrc.display(),
            home.display()
        ))
        .env("HOME", &home)
        .env("TERM", "xterm-256color")
        .status()
        .is_ok_and(|s| s.success());
    assert!(started, "tmux new-session");

    let index = tmux.wait(30, "the INBOX index with the message", |s| {
        s.contains("neomutt greeting")
    });
    println!("--- neomutt index:\n{index}");
    tmux.keys(&["Enter"]);
    let pager = tmux.wait(15, "the message's body in the pager", |s| {
        s.contains("the body of neomutt greeting")
    });
    println!("--- neomutt pager:\n{pager}");
    tmux.keys(&["s"]);
    tmux.wait(10, "the save prompt", |s| s.contains("Save to mailbox"));
    // Clear the proposed name, type the target.
    tmux.keys(&["C-u"]);
    tmux.keys(&["-l", "=Trash"]);
    tmux.keys(&["Enter"]);
    // Back in the index (or pager): leave, purging the saved message.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tmux.running() && Instant::now() < deadline {
        tmux.keys(&["q"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = tmux.screen();
    assert!(
        !tmux.running(),
        "neomutt did not quit; the screen:\n{last}\n--- stderr:\n{}",
        std::fs::read_to_string(home.join("stderr")).unwrap_or_default()
    );
    let s = server(&stack);
    assert!(
        s.flags("Trash", "neomutt greeting").is_some(),
        "neomutt's save to =Trash did not put the message in Trash:\n{}\n{}",
        s.raw,
        stack.all_logs()
    );
    assert!(
        s.flags("INBOX", "neomutt greeting").is_none(),
        "the saved message is still in INBOX after neomutt quit:\n{}",
        s.raw
    );
    assert!(
        s.folders.iter().any(|f| f == "Trash"),
        "Trash is listed: {:?}",
        s.folders
    );
}
