//! The workloads, run the same way against both sides and interleaved rep by
//! rep (the side that goes first alternates). Each talks only the public
//! protocols, so it keeps working whatever the servers store inside:
//!
//! - `ingest`: `smtp-source` (Postfix's load generator, one connection per
//!   message) sends N messages of a given size over S sessions to port 25;
//!   accepted/s = N / time until smtp-source has every 250; delivered/s = N /
//!   time until an IMAP client sees all N more in the INBOX (STATUS MESSAGES).
//! - `submission`: one authenticated STARTTLS submission session sends a 1 KB
//!   message, then an IMAP session with the INBOX selected polls NOOP until the
//!   new EXISTS shows; latency from MAIL FROM to that EXISTS, p50 and p99.
//! - `idle`: N sessions over TLS log in and SELECT INBOX and stay idle; the
//!   growth of the servers' memory (VmRSS and PSS from /proc: facteur's MAA and
//!   MDA, Dovecot's imap and imap-login processes) divided by N.
//! - `logins`: N logins over TLS, 50 at a time (connect, handshake, LOGIN,
//!   LOGOUT); logins/s.
//! - `mailbox`: an INBOX filled with N 1 KB messages (facteur: over LMTP, 16
//!   sessions; reference: Maildir files written directly), warmed by one pass,
//!   then per rep the time of SELECT, FETCH 1:* (FLAGS), UID FETCH of the last
//!   50 (BODY.PEEK[HEADER]) and SEARCH UNSEEN, each checked for its answer size.
//! - `lmtp`: N 1 KB messages over S LMTP sessions into the MDA / Dovecot's LMTP;
//!   messages/s until the last per-recipient 250.
//! - `idle_latency`: a session SELECTs INBOX and IDLEs; one 1 KB message at a
//!   time is delivered over LMTP (into facteur's MDA / Dovecot's LMTP, the same
//!   hop on both sides); latency from the 250 to the untagged `* n EXISTS`
//!   under IDLE (0 if it came first), p50 and p99.
//! - `idle` also measures the same N sessions once they are in IDLE too (what
//!   a mail client keeps open), as `imap_session_in_idle_N`, from the same
//!   baseline.
//! - `search`: in the `mailbox` INBOX, where one subject in a hundred holds
//!   [`client::RARE_WORD`], `UID SEARCH SUBJECT` for it, checked for the exact
//!   UIDs count: the first search (before the server cached anything for it)
//!   and the median of the reps after it.
//!
//! A side that plainly does not offer what a workload measures (IDLE refused
//! and not in CAPABILITY; SEARCH SUBJECT refused with `BAD` or `NO [CANNOT]`
//! by a server advertising neither IMAP4rev2 nor ESEARCH) gets `n/a` with what
//! it said ([`Unsupported`]); anything else going wrong is a failure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use super::client::{self, Imap, Smtp};
use super::report::{Better, Report, Side, Unsupported, quantile};

/// How to reach one side and what counts as its IMAP memory.
pub(crate) struct Target {
    pub(crate) side: Side,
    pub(crate) smtp: SocketAddr,
    pub(crate) submission: SocketAddr,
    pub(crate) imaps: SocketAddr,
    pub(crate) lmtp: SocketAddr,
    pub(crate) tls: TlsConnector,
    pub(crate) password: String,
    pub(crate) memory: Memory,
    /// facteur's running stack, to restart an agent that got stuck.
    pub(crate) restart: Option<Arc<std::sync::Mutex<facteur_tests::Stack>>>,
}

/// Which processes' resident memory an IMAP session costs.
pub(crate) enum Memory {
    /// These processes (facteur's MAA and MDA).
    Pids(Vec<u32>),
    /// Children of Dovecot's master named `imap` or `imap-login`.
    Dovecot { master: u32, dir: PathBuf },
}

pub(crate) fn user(local: &str) -> String {
    format!("{local}@bench.test")
}

/// The accounts every workload uses, the same on both sides.
pub(crate) const USERS: &[&str] = &[
    "ingest", "sub", "lat", "idle", "lmtp", "box200", "box1k", "box10k", "box100k", "idlelat",
];

/// Both sides in the order of this rep (alternating, so neither always goes first).
fn order(targets: &[Target], rep: usize) -> Vec<&Target> {
    let mut v: Vec<&Target> = targets.iter().collect();
    if rep % 2 == 1 {
        v.reverse();
    }
    v
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Port-25 ingest with smtp-source: (accepted/s, delivered/s).
async fn ingest_once(
    t: &Target,
    size: usize,
    sessions: u32,
    messages: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut watch = Imap::login(t.imaps, None, &t.tls, &user("ingest"), &t.password).await?;
    let before = watch.messages().await?;
    let deadline = Duration::from_secs(30 + messages / 20);
    let start = Instant::now();
    let mut child = tokio::process::Command::new("smtp-source")
        .args(["-s", &sessions.to_string()])
        .args(["-m", &messages.to_string()])
        .args(["-l", &size.to_string()])
        .args(["-f", "bench@bench.client", "-t", &user("ingest")])
        .arg(t.smtp.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running smtp-source (Debian package postfix)")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    // Wait for smtp-source, then for the last delivery, watching the INBOX: a
    // side that files nothing for STALL is stuck, and fails now.
    let mut accepted = None;
    let (mut seen, mut last_change) = (before, Instant::now());
    loop {
        if accepted.is_none()
            && let Some(status) = child.try_wait()?
        {
            if !status.success() {
                bail!(
                    "smtp-source failed ({status}): {}",
                    errors.await.unwrap_or_default().trim()
                );
            }
            accepted = Some(per_sec(messages, start.elapsed()));
        }
        let now = watch.messages().await?;
        if now != seen {
            (seen, last_change) = (now, Instant::now());
        }
        if let Some(accepted) = accepted
            && now >= before + messages
        {
            let delivered = per_sec(messages, start.elapsed());
            watch.logout().await?;
            return Ok((accepted, delivered));
        }
        let done = now.saturating_sub(before);
        if last_change.elapsed() > STALL {
            bail!("stuck: nothing filed for {STALL:?} ({done} of {messages} visible over IMAP)");
        }
        if start.elapsed() > deadline {
            bail!("{done} of {messages} messages visible over IMAP after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a side may file nothing during an ingest before it counts as stuck.
const STALL: Duration = Duration::from_secs(20);

/// After a failed ingest, restart facteur's MTA (a stuck one blocks every later
/// workload through it) and wait until what it had queued stops arriving.
async fn recover(t: &Target) {
    let Some(stack) = &t.restart else {
        return;
    };
    eprintln!("bench:   restarting facteur's MTA after the failure");
    let restarted = {
        let mut stack = stack.lock().unwrap_or_else(|p| p.into_inner());
        stack
            .kill(super::facteur::DOMAIN, "mta")
            .and_then(|()| stack.restart(super::facteur::DOMAIN, "mta"))
    };
    if let Err(e) = restarted {
        eprintln!("bench:   restarting the MTA failed: {e:#}");
        return;
    }
    let Ok(mut watch) = Imap::login(t.imaps, None, &t.tls, &user("ingest"), &t.password).await
    else {
        return;
    };
    let (mut seen, mut quiet) = (u64::MAX, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && quiet.elapsed() < Duration::from_secs(5) {
        let Ok(now) = watch.messages().await else {
            return;
        };
        if now != seen {
            (seen, quiet) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = watch.logout().await;
}
pub(crate) async fn ingest(
    report: &mut Report,
    targets: &[Target],
    size: usize,
    sessions: u32,
    messages: u64,
    reps: usize,
) {
    let kb = size / 1024;
    let name = format!("ingest_{kb}KB_s{sessions}");
    for rep in 0..reps {
        eprintln!("bench: {name}: {messages} messages, rep {}/{reps}", rep + 1);
        for t in order(targets, rep) {
            let r = ingest_once(t, size, sessions, messages).await;
            let (a, d) = match r {
                Ok((a, d)) => (Ok(a), Ok(d)),
                Err(e) => {
                    recover(t).await;
                    (Err(anyhow::anyhow!("{e:#}")), Err(e))
                }
            };
            let better = Better::Higher;
            report.record(&format!("{name}_accepted"), "msg/s", better, t.side, a);
            report.record(&format!("{name}_delivered"), "msg/s", better, t.side, d);
        }
    }
}

struct Submitter {
    smtp: Smtp,
    imap: Imap,
    exists: u64,
}

async fn submitter(t: &Target) -> anyhow::Result<Submitter> {
    let smtp = Smtp::submission(t.submission, &t.tls, &user("sub"), &t.password).await?;
    let mut imap = Imap::login(t.imaps, None, &t.tls, &user("lat"), &t.password).await?;
    let selected = imap.ok("SELECT INBOX").await?;
    let exists = selected.number("EXISTS").unwrap_or(0);
    Ok(Submitter { smtp, imap, exists })
}

async fn submit_once(s: &mut Submitter, n: u64) -> anyhow::Result<f64> {
    let to = user("lat");
    let data = client::message_from(&user("sub"), &to, n, 1024);
    let start = Instant::now();
    s.smtp.send_message(&user("sub"), &to, &data).await?;
    let deadline = Duration::from_secs(60);
    loop {
        let reply = s.imap.ok("NOOP").await?;
        if let Some(e) = reply.number("EXISTS")
            && e > s.exists
        {
            s.exists = e;
            return Ok(ms(start.elapsed()));
        }
        if start.elapsed() > deadline {
            bail!("the submitted message is not visible over IMAP after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) async fn submission(report: &mut Report, targets: &[Target], samples: u64) {
    eprintln!("bench: submission: {samples} messages, one at a time");
    let mut results = Vec::new();
    for t in targets {
        let s = submitter(t).await;
        results.push((t.side, s.map(|s| (s, Vec::new()))));
    }
    for i in 0..samples {
        for k in order_idx(results.len(), i as usize) {
            let (_, r) = &mut results[k];
            if let Ok((s, lat)) = r {
                match submit_once(s, i).await {
                    Ok(v) => lat.push(v),
                    Err(e) => *r = Err(e),
                }
            }
        }
    }
    for (side, r) in results {
        let (p50, p99) = match r {
            Ok((_, lat)) => (
                quantile(&lat, 0.5).context("no samples"),
                quantile(&lat, 0.99).context("no samples"),
            ),
            Err(e) => (Err(anyhow::anyhow!("{e:#}")), Err(e)),
        };
        report.record("submission_to_imap_p50", "ms", Better::Lower, side, p50);
        report.record("submission_to_imap_p99", "ms", Better::Lower, side, p99);
    }
}

fn order_idx(n: usize, rep: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    if rep % 2 == 1 {
        v.reverse();
    }
    v
}

/// A `key:` line of a /proc file of a process, in KiB (0 if it is gone).
fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Dovecot's imap and imap-login processes (children of our master).
fn dovecot_imap_pids(master: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid ..."; comm may hold spaces, so cut at the last ')'.
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let comm = stat
                .get(stat.find('(').map_or(0, |i| i + 1)..close)
                .unwrap_or("");
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            ppid == Some(&master.to_string()) && (comm == "imap" || comm == "imap-login")
        })
        .collect()
}

impl Memory {
    fn pids(&self) -> Vec<u32> {
        match self {
            Memory::Pids(p) => p.clone(),
            Memory::Dovecot { master, .. } => dovecot_imap_pids(*master),
        }
    }
    /// Resident memory (VmRSS) and proportional set size (Pss: shared pages
    /// split between the processes sharing them), summed, in KiB. RSS counts
    /// Dovecot's shared libraries once per process; PSS is what the sessions
    /// really cost the machine.
    fn kib(&self) -> (u64, u64) {
        self.pids().into_iter().fold((0, 0), |(rss, pss), pid| {
            (
                rss + proc_kib(pid, "status", "VmRSS:"),
                pss + proc_kib(pid, "smaps_rollup", "Pss:"),
            )
        })
    }
}

/// A loopback source address for session `i` (spreads thousands of sessions
/// over 100 addresses, 127.0.2.1-100).
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, (i % 100) as u8 + 1))
}

/// Run `n` jobs, `width` at a time; the first error stops them.
async fn bounded<T, F, Fut>(n: usize, width: usize, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut out = Vec::with_capacity(n);
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < width {
            set.spawn(job(next));
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            out.push(done.context("a bench task panicked")??);
        }
    }
    Ok(out)
}

/// Is IDLE refused by a server that does not offer it? `refused` is the tagged
/// answer to IDLE: [`Unsupported`] if IDLE is not in the CAPABILITY, else a
/// failure.
fn idle_refused(caps: &[String], refused: String) -> anyhow::Error {
    if caps.iter().any(|c| c == "IDLE") {
        anyhow::anyhow!("IDLE refused although advertised: {refused}")
    } else {
        Unsupported(refused).into()
    }
}

/// Log in as `who`, SELECT INBOX and IDLE; the session and the EXISTS count.
async fn idling(
    t: &Target,
    source: Option<IpAddr>,
    who: &str,
    caps: &[String],
) -> anyhow::Result<(Imap, u64)> {
    let mut imap = Imap::login(t.imaps, source, &t.tls, who, &t.password).await?;
    let exists = imap.ok("SELECT INBOX").await?.number("EXISTS").unwrap_or(0);
    if let Err(refused) = imap.idle().await? {
        return Err(idle_refused(caps, refused));
    }
    Ok((imap, exists))
}

/// One session's CAPABILITY after LOGIN (what the workloads check features by).
async fn capabilities(t: &Target, who: &str) -> anyhow::Result<Vec<String>> {
    let mut imap = Imap::login(t.imaps, None, &t.tls, who, &t.password).await?;
    let caps = imap.capabilities().await?;
    imap.logout().await?;
    Ok(caps)
}

/// Memory per session, (RSS, PSS) in KiB: logged in with INBOX selected, then
/// the same sessions also in IDLE (both from the same baseline, so the
/// allocator's reuse of one run's memory cannot flatter the other); the
/// second is an error if the side does not offer IDLE.
type PerSession = ((f64, f64), anyhow::Result<(f64, f64)>);

async fn idle_once(t: &Target, sessions: usize) -> anyhow::Result<PerSession> {
    // One probe first, so a server without IDLE says so once.
    let caps = capabilities(t, &user("idle")).await?;
    let probe = match idling(t, None, &user("idle"), &caps).await {
        Ok((mut probe, _)) => {
            probe.done().await?;
            probe.logout().await?;
            Ok(())
        }
        Err(e) if e.downcast_ref::<Unsupported>().is_some() => Err(e),
        Err(e) => return Err(e),
    };
    let before = t.memory.kib();
    let tls = t.tls.clone();
    let (addr, pw) = (t.imaps, Arc::new(t.password.clone()));
    let mut opened = bounded(sessions, 50, |i| {
        let (tls, pw) = (tls.clone(), Arc::clone(&pw));
        async move {
            let mut imap = Imap::login(addr, Some(source(i)), &tls, &user("idle"), &pw).await?;
            imap.ok("SELECT INBOX").await?;
            Ok(imap)
        }
    })
    .await?;
    // Let the servers settle (freed buffers, finished handshakes) before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let selected = t.memory.kib();
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / sessions as f64;
    let in_idle = match probe {
        Ok(()) => {
            for imap in &mut opened {
                if let Err(refused) = imap.idle().await? {
                    return Err(idle_refused(&caps, refused));
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idling = t.memory.kib();
            Ok((per(idling.0, before.0), per(idling.1, before.1)))
        }
        Err(e) => Err(e),
    };
    drop(opened);
    if let Memory::Dovecot { master, .. } = &t.memory {
        let deadline = Instant::now() + Duration::from_secs(120);
        while dovecot_imap_pids(*master).len() > 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok((
        (per(selected.0, before.0), per(selected.1, before.1)),
        in_idle,
    ))
}

/// Memory per logged-in session with INBOX selected (`idle_imap_session_N`),
/// and per session that is also in IDLE (`imap_session_in_idle_N`).
pub(crate) async fn idle(report: &mut Report, targets: &[Target], sessions: usize) {
    eprintln!("bench: idle: {sessions} IMAP sessions per side, SELECTed, then in IDLE");
    let selected = format!("idle_imap_session_{sessions}");
    let in_idle = format!("imap_session_in_idle_{sessions}");
    for t in targets {
        let (a, b) = match idle_once(t, sessions).await {
            Ok(((rss, pss), Ok((irss, ipss)))) => ((Ok(rss), Ok(pss)), (Ok(irss), Ok(ipss))),
            Ok(((rss, pss), Err(e))) => ((Ok(rss), Ok(pss)), (copy_err(&e), Err(e))),
            Err(e) => ((copy_err(&e), copy_err(&e)), (copy_err(&e), Err(e))),
        };
        for (name, (rss, pss)) in [(&selected, a), (&in_idle, b)] {
            report.record(&format!("{name}_rss"), "KiB", Better::Lower, t.side, rss);
            report.record(&format!("{name}_pss"), "KiB", Better::Lower, t.side, pss);
        }
    }
}

/// One delivery while `s` IDLEs: ms from the LMTP 250 to the new EXISTS.
async fn idle_sample(s: &mut IdleLatency, n: u64) -> anyhow::Result<f64> {
    let to = user("idlelat");
    let data = client::message(&to, n, 1024);
    let IdleLatency { lmtp, imap, exists } = s;
    let want = *exists + 1;
    let deliver = async {
        lmtp.send_message("bench@bench.client", &to, &data).await?;
        anyhow::Ok(Instant::now())
    };
    let notified = async {
        let deadline = Instant::now() + IDLE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = imap
                .next_line(left)
                .await
                .context("waiting for EXISTS under IDLE")?;
            if let Some(e) = client::exists(&line)
                && e >= want
            {
                return anyhow::Ok((Instant::now(), e));
            }
        }
    };
    let (acked, (seen, now)) = tokio::try_join!(deliver, notified)?;
    *exists = now;
    Ok(ms(seen.saturating_duration_since(acked)))
}

/// How long a delivered message may take to show under IDLE.
const IDLE_WAIT: Duration = Duration::from_secs(30);

struct IdleLatency {
    lmtp: Smtp,
    imap: Imap,
    exists: u64,
}

async fn idle_latency_session(t: &Target) -> anyhow::Result<IdleLatency> {
    let who = user("idlelat");
    let caps = capabilities(t, &who).await?;
    let (imap, exists) = idling(t, None, &who, &caps).await?;
    let lmtp = Smtp::connect(t.lmtp, true).await?;
    Ok(IdleLatency { lmtp, imap, exists })
}

pub(crate) async fn idle_latency(report: &mut Report, targets: &[Target], samples: u64) {
    eprintln!("bench: idle_latency: {samples} deliveries over LMTP to a session in IDLE");
    let mut results = Vec::new();
    for t in targets {
        let s = idle_latency_session(t).await;
        results.push((t.side, s.map(|s| (s, Vec::new()))));
    }
    for i in 0..samples {
        for k in order_idx(results.len(), i as usize) {
            let (_, r) = &mut results[k];
            if let Ok((s, lat)) = r {
                match idle_sample(s, i).await {
                    Ok(v) => lat.push(v),
                    Err(e) => *r = Err(e),
                }
            }
        }
    }
    for (side, r) in results {
        let (p50, p99) = match r {
            Ok((mut s, lat)) => {
                let end = async {
                    s.imap.done().await?;
                    s.imap.logout().await?;
                    s.lmtp.quit().await
                };
                if let Err(e) = end.await {
                    eprintln!("bench:   ending the IDLE session on {}: {e:#}", side.name());
                }
                (
                    quantile(&lat, 0.5).context("no samples"),
                    quantile(&lat, 0.99).context("no samples"),
                )
            }
            Err(e) => (copy_err(&e), Err(e)),
        };
        report.record("imap_idle_new_mail_p50", "ms", Better::Lower, side, p50);
        report.record("imap_idle_new_mail_p99", "ms", Better::Lower, side, p99);
    }
}

/// The same error again for a second figure, [`Unsupported`] kept as such.
fn copy_err(e: &anyhow::Error) -> anyhow::Result<f64> {
    match e.downcast_ref::<Unsupported>() {
        Some(u) => Err(Unsupported(u.0.clone()).into()),
        None => Err(anyhow::anyhow!("{e:#}")),
    }
}

async fn logins_once(t: &Target, n: usize) -> anyhow::Result<f64> {
    let tls = t.tls.clone();
    let (addr, pw) = (t.imaps, Arc::new(t.password.clone()));
    let start = Instant::now();
    bounded(n, 50, |i| {
        let (tls, pw) = (tls.clone(), Arc::clone(&pw));
        async move {
            let imap = Imap::login(addr, Some(source(i)), &tls, &user("idle"), &pw).await?;
            imap.logout().await
        }
    })
    .await?;
    Ok(per_sec(n as u64, start.elapsed()))
}

pub(crate) async fn logins(report: &mut Report, targets: &[Target], n: usize, reps: usize) {
    for rep in 0..reps {
        eprintln!("bench: logins: {n}, 50 at a time, rep {}/{reps}", rep + 1);
        for t in order(targets, rep) {
            let r = logins_once(t, n).await;
            report.record("imap_logins", "login/s", Better::Higher, t.side, r);
        }
    }
}

/// Deliver `n` messages of `size` bytes to `to` over `sessions` LMTP sessions.
pub(crate) async fn lmtp_send(
    addr: SocketAddr,
    to: &str,
    n: u64,
    size: usize,
    sessions: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let to = Arc::new(to.to_owned());
    let per = n.div_ceil(sessions as u64);
    bounded(sessions, sessions, |s| {
        let to = Arc::clone(&to);
        async move {
            let first = s as u64 * per;
            let last = (first + per).min(n);
            if first >= last {
                return Ok(());
            }
            let mut lmtp = Smtp::connect(addr, true).await?;
            for i in first..last {
                let data = client::message(&to, i, size);
                lmtp.send_message("bench@bench.client", &to, &data).await?;
            }
            lmtp.quit().await
        }
    })
    .await?;
    Ok(start.elapsed())
}

pub(crate) async fn lmtp(
    report: &mut Report,
    targets: &[Target],
    n: u64,
    sessions: usize,
    reps: usize,
) {
    for rep in 0..reps {
        eprintln!(
            "bench: lmtp: {n} messages over {sessions} sessions, rep {}/{reps}",
            rep + 1
        );
        for t in order(targets, rep) {
            let r = lmtp_send(t.lmtp, &user("lmtp"), n, 1024, sessions)
                .await
                .map(|d| per_sec(n, d));
            report.record(
                &format!("lmtp_1KB_s{sessions}"),
                "msg/s",
                Better::Higher,
                t.side,
                r,
            );
        }
    }
}

fn label(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

async fn fill(t: &Target, who: &str, n: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    match &t.memory {
        Memory::Pids(_) => {
            lmtp_send(t.lmtp, who, n, 1024, 16).await?;
        }
        Memory::Dovecot { dir, .. } => {
            let (dir, who) = (dir.clone(), who.to_owned());
            tokio::task::spawn_blocking(move || {
                super::reference::fill_maildir(&dir, &who, n, 1024)
            })
            .await??;
        }
    }
    eprintln!(
        "bench:   filled {who} on {} with {n} messages in {:.1} s",
        t.side.name(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One pass of the four mailbox commands; their times in ms.
async fn mailbox_pass(imap: &mut Imap, n: u64) -> anyhow::Result<[f64; 4]> {
    let t = Instant::now();
    let sel = imap.ok("SELECT INBOX").await?;
    let select = ms(t.elapsed());
    let exists = sel.number("EXISTS").context("no EXISTS in SELECT")?;
    if exists != n {
        bail!("the INBOX holds {exists} messages, not {n}");
    }
    let uidnext = sel.number("UIDNEXT").context("no UIDNEXT in SELECT")?;
    let t = Instant::now();
    let flags = imap.ok("FETCH 1:* (FLAGS)").await?;
    let fetch_flags = ms(t.elapsed());
    if (flags.untagged.len() as u64) < n {
        bail!("FETCH 1:* (FLAGS) answered {} of {n}", flags.untagged.len());
    }
    let first = uidnext.saturating_sub(50).max(1);
    let t = Instant::now();
    let headers = imap
        .ok(&format!("UID FETCH {first}:* (BODY.PEEK[HEADER])"))
        .await?;
    let fetch_headers = ms(t.elapsed());
    let want = (uidnext - first).min(n) as usize;
    if headers.untagged.len() < want {
        bail!(
            "UID FETCH of the last 50 answered {}",
            headers.untagged.len()
        );
    }
    let t = Instant::now();
    let found = imap.ok("SEARCH UNSEEN").await?;
    let search = ms(t.elapsed());
    if !found.untagged.iter().any(|l| l.starts_with("* SEARCH")) {
        bail!("SEARCH UNSEEN gave no SEARCH response");
    }
    Ok([select, fetch_flags, fetch_headers, search])
}

/// Which parts of the mailbox workload to run on the filled INBOX.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MailboxParts {
    /// SELECT, FETCH, UID FETCH, SEARCH UNSEEN.
    pub(crate) commands: bool,
    /// UID SEARCH SUBJECT.
    pub(crate) search: bool,
}

/// The UIDs `UID SEARCH SUBJECT` for [`client::RARE_WORD`] should find in an
/// INBOX filled with messages 0..n: how many.
fn rare_hits(n: u64) -> usize {
    (0..n).filter(|&i| client::has_rare_word(i)).count()
}

/// One `UID SEARCH SUBJECT`, checked for its hit count; its time in ms.
async fn search_subject(imap: &mut Imap, caps: &[String], n: u64) -> anyhow::Result<f64> {
    let t = Instant::now();
    let reply = imap
        .command(&format!("UID SEARCH SUBJECT \"{}\"", client::RARE_WORD))
        .await?;
    let took = ms(t.elapsed());
    let mut words = reply.status.split_whitespace().skip(1);
    let word = words.next().unwrap_or_default().to_ascii_uppercase();
    if word != "OK" {
        let cannot = word == "BAD"
            || (word == "NO"
                && words
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("[CANNOT]")));
        let modern = caps.iter().any(|c| c == "IMAP4REV2" || c == "ESEARCH");
        if cannot && !modern {
            return Err(Unsupported(reply.status).into());
        }
        bail!("UID SEARCH SUBJECT: {}", reply.status);
    }
    let hits = client::search_hits(&reply).len();
    let want = rare_hits(n);
    if hits != want {
        bail!("UID SEARCH SUBJECT found {hits} messages, not {want}");
    }
    Ok(took)
}

pub(crate) async fn mailbox(
    report: &mut Report,
    targets: &[Target],
    n: u64,
    reps: usize,
    parts: MailboxParts,
) {
    let l = label(n);
    let who = user(&format!("box{l}"));
    eprintln!("bench: mailbox: {n} messages, {reps} reps");
    let mut names = Vec::new();
    if parts.commands {
        names.extend([
            format!("imap_select_{l}"),
            format!("imap_fetch_flags_all_{l}"),
            format!("imap_uid_fetch_last50_headers_{l}"),
            format!("imap_search_unseen_{l}"),
        ]);
    }
    let first = format!("imap_search_subject_{l}_first");
    let warm = format!("imap_search_subject_{l}");
    let mut sessions = Vec::new();
    for t in targets {
        let session = async {
            fill(t, &who, n).await?;
            let mut imap = Imap::login(t.imaps, None, &t.tls, &who, &t.password).await?;
            let caps = imap.capabilities().await?;
            mailbox_pass(&mut imap, n).await.context("warm-up pass")?;
            anyhow::Ok((imap, caps))
        }
        .await;
        sessions.push(session);
    }
    if parts.commands {
        for rep in 0..reps {
            for k in order_idx(targets.len(), rep) {
                let t = &targets[k];
                let Ok((imap, _)) = &mut sessions[k] else {
                    continue;
                };
                match mailbox_pass(imap, n).await {
                    Ok(times) => {
                        for (name, v) in names.iter().zip(times) {
                            report.record(name, "ms", Better::Lower, t.side, Ok(v));
                        }
                    }
                    Err(e) => sessions[k] = Err(e),
                }
            }
        }
    }
    // SEARCH SUBJECT on each side: its first time, then `reps` more.
    let mut searches: Vec<anyhow::Result<()>> = targets.iter().map(|_| Ok(())).collect();
    if parts.search {
        for rep in 0..=reps {
            for k in order_idx(targets.len(), rep) {
                let t = &targets[k];
                let (Ok((imap, caps)), Ok(())) = (&mut sessions[k], &searches[k]) else {
                    continue;
                };
                match search_subject(imap, caps, n).await {
                    Ok(v) => {
                        let name = if rep == 0 { &first } else { &warm };
                        report.record(name, "ms", Better::Lower, t.side, Ok(v));
                    }
                    Err(e) => searches[k] = Err(e),
                }
            }
        }
    }
    for ((t, s), searched) in targets.iter().zip(sessions).zip(searches) {
        let err = match s {
            Ok((imap, _)) => {
                let _ = imap.logout().await;
                None
            }
            Err(e) => Some(e),
        };
        if let Some(e) = &err {
            for name in &names {
                report.record(name, "ms", Better::Lower, t.side, copy_err(e));
            }
        }
        if parts.search
            && let Some(e) = err.as_ref().or(searched.as_ref().err())
        {
            for name in [&first, &warm] {
                report.record(name, "ms", Better::Lower, t.side, copy_err(e));
            }
        }
    }
}
