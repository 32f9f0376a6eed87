//! End-to-end: the real binaries of the whole chain, started as processes on their
//! own loopback addresses, driven by real clients (Python's smtplib/poplib/imaplib,
//! swaks). Each test takes its own `127.N.0.x` network so tests run side by side.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use facteur_tests::{Stack, StackSpec};

fn start(net: u8, tweak: impl FnOnce(&mut StackSpec)) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    tweak(&mut spec);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

fn py(stack: &Stack, script: &str, extra: &[&str]) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let out = Command::new("python3")
        .arg(dir.join(script))
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(extra)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{stderr}\n{}",
        stack.all_logs()
    );
}

#[test]
fn mail_walks_the_pipeline_within_and_across_domains() {
    let (_dir, stack) = start(11, |_| {});
    py(&stack, "scenario.py", &[]);
}

#[test]
fn wrong_passwords_and_unknown_recipients_are_refused() {
    let (_dir, stack) = start(12, |_| {});
    py(&stack, "refusals.py", &[]);
}

#[test]
fn swaks_submits_with_starttls_and_auth_and_is_refused_for_unknown_users() {
    let (_dir, stack) = start(13, |_| {});
    let spec = &stack.spec;
    let paris = spec.domain("paris.test").expect("paris").ip;
    let lyon = spec.domain("lyon.test").expect("lyon").ip;
    let swaks = |args: &[String]| {
        let out = Command::new("swaks")
            .args(args)
            .output()
            .expect("swaks is installed by cargo xtask test");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, transcript) = swaks(&[
        "--server".into(),
        format!("{paris}:5870"),
        "--tls".into(),
        "--tls-ca-path".into(),
        spec.ca().display().to_string(),
        "--auth".into(),
        "PLAIN".into(),
        "--auth-user".into(),
        "pierre@paris.test".into(),
        "--auth-password".into(),
        facteur_tests::stack::dev_password(),
        "--from".into(),
        "pierre@paris.test".into(),
        "--to".into(),
        "jacques@paris.test".into(),
        "--h-Subject".into(),
        "swaks".into(),
    ]);
    assert_eq!(code, Some(0), "swaks submission failed:\n{transcript}");
    assert!(
        transcript.contains("<~  250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let (code, transcript) = swaks(&[
        "--server".into(),
        format!("{lyon}:2525"),
        "--from".into(),
        "someone@example.org".into(),
        "--to".into(),
        "nobody@lyon.test".into(),
    ]);
    assert_ne!(code, Some(0), "unknown user accepted:\n{transcript}");
    assert!(transcript.contains("<** 550 5.1.1"), "{transcript}");
}

#[test]
fn a_message_answered_250_survives_kill_9_of_the_mta_and_the_mda() {
    let (_dir, mut stack) = start(14, |spec| spec.retry_secs = vec![1]);
    // Lyon's MTA is down: paris's MTA holds the only copy in its queue.
    stack.kill("lyon.test", "mta").expect("kill lyon mta");
    let token = format!("durable-{}", std::process::id());
    py(
        &stack,
        "send.py",
        &["--to", "andre@lyon.test", "--token", &token],
    );
    // The MSA said 250, so the message is on disk: kill -9 the MTA holding it.
    stack.kill("paris.test", "mta").expect("kill paris mta");
    stack.restart("lyon.test", "mta").expect("restart lyon mta");
    stack
        .restart("paris.test", "mta")
        .expect("restart paris mta");
    py(
        &stack,
        "pop_wait.py",
        &["--token", &token, "--timeout", "60"],
    );
    // Filed mail survives a kill -9 of the MDA too. (A kill -9 leaves the page
    // cache intact, so this shows the commit protocol, not the fsync itself.)
    stack.kill("lyon.test", "mda").expect("kill lyon mda");
    stack.restart("lyon.test", "mda").expect("restart lyon mda");
    py(
        &stack,
        "pop_wait.py",
        &["--token", &token, "--timeout", "30"],
    );
}

#[test]
fn the_same_message_resent_over_port_25_is_filed_once() {
    let (_dir, stack) = start(44, |_| {});
    py(&stack, "resend.py", &[]);
}

#[test]
fn hostile_input_gets_protocol_errors_and_smuggling_fails() {
    let (_dir, stack) = start(16, |_| {});
    py(&stack, "bad_input.py", &[]);
}

#[test]
fn lmtp_delivers_with_one_reply_per_recipient() {
    let (_dir, stack) = start(17, |_| {});
    py(&stack, "lmtp.py", &[]);
}

#[test]
fn pop3_follows_rfc1939_dele_at_quit_uidl_and_the_maildrop_lock() {
    let (_dir, stack) = start(18, |_| {});
    py(&stack, "pop3.py", &[]);
}

#[test]
fn an_unknown_remote_user_bounces_back_to_the_sender_as_a_dsn() {
    let (_dir, stack) = start(19, |_| {});
    py(&stack, "bounce.py", &[]);
}

#[test]
fn abandoned_and_refused_submissions_are_never_delivered() {
    let (_dir, stack) = start(20, |_| {});
    py(&stack, "submission_failures.py", &[]);
}

#[test]
fn with_the_mta_down_submission_is_deferred_never_accepted() {
    let (_dir, mut stack) = start(21, |_| {});
    stack.kill("paris.test", "mta").expect("kill paris mta");
    py(&stack, "mta_down.py", &[]);
}

#[test]
fn utf8_headers_and_8bit_bodies_cross_both_mtas_intact() {
    let (_dir, stack) = start(22, |_| {});
    py(&stack, "utf8.py", &[]);
}

/// `(agent, setting prefix)` of every listener that speaks TLS.
const TLS_LISTENERS: [(&str, &str); 4] = [
    ("msa", ""),
    ("mta", "smtp."),
    ("maa", "pop3."),
    ("maa", "imap."),
];

/// Every listener's TLS handshake deadline set to `secs`.
fn handshake_timeout(spec: &mut StackSpec, secs: u64) {
    for (agent, prefix) in TLS_LISTENERS {
        spec.sets.push((
            agent.to_owned(),
            format!("{prefix}tls_handshake_timeout_secs={secs}"),
        ));
    }
}

/// A line protocol's way into a TLS handshake.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// SMTP: EHLO, then STARTTLS (RFC 3207).
    Starttls,
    /// POP3: STLS (RFC 2595).
    Stls,
    /// IMAP: STARTTLS (RFC 9051 §6.2.1).
    ImapStarttls,
    /// An implicit-TLS port: connect and say nothing.
    Implicit,
}

/// Connect and stop right where the server waits for a ClientHello.
fn stall(ip: std::net::Ipv4Addr, port: u16, how: Stall) -> std::net::TcpStream {
    use std::io::{BufRead, BufReader, Write};
    let tcp = std::net::TcpStream::connect((ip, port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("socket");
    let mut w = tcp.try_clone().expect("socket");
    let mut r = BufReader::new(tcp.try_clone().expect("socket"));
    let mut until = |prefix: &str| loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("read");
        assert!(!line.is_empty(), "{port}: closed before {prefix:?}");
        if line.starts_with(prefix) {
            break;
        }
    };
    match how {
        Stall::Starttls => {
            until("220 ");
            w.write_all(b"EHLO stall.test\r\n").expect("socket");
            until("250 ");
            w.write_all(b"STARTTLS\r\n").expect("socket");
            until("220 ");
        }
        Stall::Stls => {
            until("+OK");
            w.write_all(b"STLS\r\n").expect("socket");
            until("+OK");
        }
        Stall::ImapStarttls => {
            until("* OK");
            w.write_all(b"s1 STARTTLS\r\n").expect("socket");
            until("s1 OK");
        }
        Stall::Implicit => {}
    }
    tcp
}

/// Every TLS way in of one domain: SMTP, submission, POP3, IMAP and the
/// implicit-TLS ports.
fn stall_everywhere(stack: &Stack) -> Vec<(u16, std::net::TcpStream)> {
    let p = &stack.spec.ports;
    let ip = stack.spec.domain("paris.test").expect("paris").ip;
    [
        (p.smtp, Stall::Starttls),
        (p.submission, Stall::Starttls),
        (p.submissions, Stall::Implicit),
        (p.pop3, Stall::Stls),
        (p.pop3s, Stall::Implicit),
        (p.imap, Stall::ImapStarttls),
        (p.imaps, Stall::Implicit),
    ]
    .into_iter()
    .map(|(port, how)| (port, stall(ip, port, how)))
    .collect()
}

#[test]
fn stalled_tls_handshakes_and_slow_drip_commands_are_closed_at_their_deadlines() {
    let (_dir, stack) = start(61, |spec| {
        handshake_timeout(spec, 2);
        spec.sets
            .push(("mta".into(), "smtp.command_timeout_secs=2".into()));
    });
    for (port, mut tcp) in stall_everywhere(&stack) {
        // The idle timers are minutes long; only the 2 s handshake deadline can
        // close these within the 30 s read timeout set by `stall`.
        let mut rest = Vec::new();
        match std::io::Read::read_to_end(&mut tcp, &mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("port {port} still open: {e}\n{}", stack.all_logs()),
        }
    }

    // Slow drip on port 25: one byte of a command line every half second.
    use std::io::{Read, Write};
    let ip = stack.spec.domain("paris.test").expect("paris").ip;
    let mut tcp = std::net::TcpStream::connect((ip, stack.spec.ports.smtp)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("socket");
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    let started = std::time::Instant::now();
    for b in b"EHLO drip.test".iter().cycle() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the drip was never cut; heard {:?}",
            String::from_utf8_lossy(&heard)
        );
        if tcp.write_all(&[*b]).is_err() {
            break;
        }
        match tcp.read(&mut buf) {
            Ok(0) => {
                break;
            }
            Ok(n) => heard.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                break;
            }
            Err(_) => {} // read timeout: drip on
        }
    }
    let heard = String::from_utf8_lossy(&heard);
    assert!(heard.contains("421 4.4.2"), "no timeout goodbye: {heard:?}");
}

#[test]
fn every_agent_stops_cleanly_on_sigterm_even_with_clients_connected() {
    // Handshake deadlines longer than `stop` waits: only giving up a handshake
    // on shutdown lets the agents with a stalled TLS client stop in time.
    let (_dir, mut stack) = start(23, |spec| handshake_timeout(spec, 3600));
    let spec = stack.spec.clone();
    let paris = spec.domain("paris.test").expect("paris").ip;
    // Idle clients on each line protocol: the agents must still stop promptly.
    let clients: Vec<std::net::TcpStream> = [5870, 2525, 1100, 1430, 2400]
        .iter()
        .map(|port| std::net::TcpStream::connect((paris, *port)).expect("connect"))
        .collect();
    // And clients stuck in a TLS handshake on every TLS listener.
    let stalled = stall_everywhere(&stack);
    let unclean = stack.stop();
    drop(clients);
    drop(stalled);
    assert!(
        unclean.is_empty(),
        "not stopped cleanly: {unclean:?}\n{}",
        stack.all_logs()
    );
}

#[test]
fn load_of_20_smtp_sessions_and_20_submissions_through_both_domains_files_each_message_once() {
    // 20 port-25 sessions x 100 messages and 20 submissions x 50: the shape
    // that deadlocked the MTA's queue. A hang fails on the script's deadline.
    let (_dir, stack) = start(24, |_| {});
    py(
        &stack,
        "load.py",
        &[
            "--smtp-sessions",
            "20",
            "--smtp-each",
            "100",
            "--submit-sessions",
            "20",
            "--submit-each",
            "50",
            "--deadline",
            "270",
        ],
    );
}

#[test]
fn bdat_chunks_are_taken_by_length_and_delivered_intact() {
    let (_dir, stack) = start(25, |_| {});
    py(&stack, "bdat.py", &[]);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size_mib: u32) -> Self {
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a {size_mib} MiB tmpfs as the MTA's queue and needs \
             root (CI runs as root): mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_full_queue_disk_refuses_with_452_loses_nothing_and_recovers() {
    const RESERVE: u64 = 4 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 40);
    spec.retry_secs = vec![1];
    spec.mta_min_free_bytes = Some(RESERVE);
    spec.prepare().expect("prepare var/");
    // paris.test's MTA keeps its queue (database and spool) on a 24 MiB tmpfs.
    let queue_dir = spec.var.join("paris.test").join("mta");
    let _mount = Tmpfs::mount(queue_dir.clone(), 24);
    let mut stack = spec.start().expect("start the stack");
    // With lyon's MTA down, what paris acknowledges waits in its queue.
    stack.kill("lyon.test", "mta").expect("kill lyon mta");
    let token = format!("full-{}", std::process::id());
    let extra = |phase: &'static str| {
        vec![
            "--phase".to_owned(),
            phase.to_owned(),
            "--token".to_owned(),
            token.clone(),
            "--queue-dir".to_owned(),
            queue_dir.display().to_string(),
            "--reserve".to_owned(),
            RESERVE.to_string(),
        ]
    };
    let run = |stack: &Stack, phase| {
        let args = extra(phase);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        py(stack, "disk_full.py", &args);
    };
    run(&stack, "fill");
    stack.restart("lyon.test", "mta").expect("restart lyon mta");
    run(&stack, "recover");
}

/// Resident memory of a process in bytes (`VmRSS` in /proc/<pid>/status).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in status");
    kib * 1024
}

#[test]
fn a_login_storm_leaves_the_mdas_memory_bounded() {
    // The cache is off so that every login runs argon2 (the worst case), on a
    // fixed two workers so the bound does not depend on this machine's cores;
    // the MAA takes more than 50 connections per IP because a freed slot comes
    // back only just after the client has seen the close.
    let (_dir, stack) = start(42, |spec| {
        for set in ["auth.cache_size=0", "auth.workers=2"] {
            spec.sets.push(("mda".into(), set.into()));
        }
        spec.sets.push(("maa".into(), "imap.max_per_ip=200".into()));
    });
    let mda = stack.pid("paris.test", "mda").expect("paris mda");
    let storm = |count: &str| {
        py(
            &stack,
            "login_storm.py",
            &[
                "--count",
                count,
                "--parallel",
                "50",
                "--user",
                "pierre@paris.test",
            ],
        )
    };
    // A first small wave brings in what any first login allocates (TLS on the
    // gRPC side, the argon2 blocks); the storm must not grow it much further.
    storm("50");
    let before = rss(mda);
    storm("200");
    let after = rss(mda);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "MDA resident memory: {:.1} MiB before the storm, {:.1} MiB after",
        mib(before),
        mib(after)
    );
    // Allocating argon2's 19 MiB per login grew the MDA by about 2 GB over
    // 200 logins 20 at a time. Now the pool holds 2 × 19 MiB, already counted
    // in `before`, and the storm adds next to nothing (measured: about 1 MiB).
    // A debug MDA starts at about 35 MiB (its binary maps far more code than
    // a release one's 8.5 MiB) and sits near 76 MiB after its first logins, so
    // 100 MiB is an honest ceiling for a debug build; the 30 MiB of growth
    // allowed covers the allocator keeping some gRPC/TLS buffers and is less
    // than two argon2 blocks, so memory that sticks per login shows.
    assert!(
        after < before + 30 * 1024 * 1024,
        "the MDA grew by {:.1} MiB over 200 logins",
        mib(after.saturating_sub(before))
    );
    assert!(
        after < 100 * 1024 * 1024,
        "the MDA holds {:.1} MiB",
        mib(after)
    );
}

#[test]
fn failed_logins_are_throttled_per_ip_and_per_user_until_the_window_passes() {
    let window = "10";
    let (_dir, stack) = start(43, |spec| {
        for set in [
            "auth.throttle.ip_failures=5".to_owned(),
            "auth.throttle.user_failures=8".to_owned(),
            format!("auth.throttle.window_secs={window}"),
        ] {
            spec.sets.push(("mda".into(), set));
        }
        spec.sets
            .push(("maa".into(), "auth_failure_delay_ms=50".into()));
    });
    py(&stack, "throttle.py", &["--window", window]);
}
