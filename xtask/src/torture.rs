//! `cargo xtask torture --kills N`: the kill -9 torture run. It starts the dev
//! stack of both domains in its own var dir, sends mail continuously through
//! every door (`send`), `kill -9`s a random agent at a random moment and
//! restarts it, N times, then lets the queues drain and checks that every
//! message that got a 250 is in its recipient's mailbox exactly once (`check`).
//!
//! The RNG is seeded (`--seed`, printed) so the schedule of kills and the
//! senders' choices replay; every wait has a deadline.

mod check;
mod send;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use facteur_daemon::smtp_client::Timeouts;
use facteur_protocol::Secret;
use facteur_tests::stack::{dev_password, dev_users};
use facteur_tests::{Stack, StackSpec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use check::{Ledger, Verdict};

/// The agents a kill picks from (the dev DNS is not one of them).
const AGENTS: [&str; 4] = ["msa", "mta", "mda", "maa"];

/// How long the senders may take to notice the stop (each of their steps has a
/// shorter deadline of its own).
const SENDERS_STOP: Duration = Duration::from_secs(90);

/// Tries to read a mailbox at the end (each try has its own deadlines).
const READ_TRIES: u32 = 3;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "torture")]
pub(crate) struct Args {
    /// How many times to kill -9 (and restart) a random agent.
    #[arg(long, default_value_t = 10)]
    pub(crate) kills: u32,
    /// Seed of the RNG (printed; pass it again to replay a run's choices).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    pub(crate) senders: usize,
    /// Each kill comes after a random delay of at least this many ms...
    #[arg(long, default_value_t = 300)]
    pub(crate) min_delay_ms: u64,
    /// ...and at most this many.
    #[arg(long, default_value_t = 3000)]
    pub(crate) max_delay_ms: u64,
    /// A killed agent stays down a random time up to this many ms.
    #[arg(long, default_value_t = 500)]
    pub(crate) max_down_ms: u64,
    /// Pause between two messages of one sender, in ms.
    #[arg(long, default_value_t = 10)]
    pub(crate) pause_ms: u64,
    /// Seconds the queues may take to drain once sending stops.
    #[arg(long, default_value_t = 120)]
    pub(crate) drain_secs: u64,
    /// Build and use release binaries.
    #[arg(long)]
    pub(crate) release: bool,
    /// Use the binaries already built.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// State directory, wiped first (default: <target dir>/torture).
    #[arg(long)]
    pub(crate) var: Option<PathBuf>,
    /// The stack listens on 127.NET.0.x.
    #[arg(long, default_value_t = 45)]
    pub(crate) net: u8,
}

/// `cargo xtask torture`: build, run, print the summary; an error if anything
/// acknowledged was lost or duplicated.
pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    if !args.no_build {
        if args.release {
            crate::run(crate::cargo().args(["build", "--release", "--workspace", "--bins"]))?;
        } else {
            crate::build_bins()?;
        }
    }
    let debug = crate::bin_dir()?;
    let bins = if args.release {
        debug.with_file_name("release")
    } else {
        debug.clone()
    };
    let var = match &args.var {
        Some(v) => v.clone(),
        None => debug.with_file_name("torture"),
    };
    let report = run(args, &bins, &var)?;
    report.print();
    if report.failed() {
        bail!(
            "torture run failed (seed {}; replay with --seed {})",
            report.seed,
            report.seed
        );
    }
    Ok(())
}

/// The short run `cargo xtask test` makes: 10 kills, 4 senders, debug binaries.
pub(crate) fn ci() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse_from(["torture", "--kills", "10", "--no-build"]);
    eprintln!("==> cargo xtask torture --kills 10");
    main(&args)
}

/// Everything a run found.
pub(crate) struct Report {
    pub(crate) seed: u64,
    pub(crate) kills: BTreeMap<String, u32>,
    /// Agents that exited on their own (restarted when seen).
    pub(crate) crashes: Vec<String>,
    /// What went wrong with the harness's own waits (queues not drained,
    /// senders stuck, agents not stopping cleanly).
    pub(crate) problems: Vec<String>,
    pub(crate) outcomes: BTreeMap<String, u64>,
    pub(crate) verdict: Verdict,
    /// Torture ids still in an MTA's spool at the end, and which domain's.
    pub(crate) queued: BTreeMap<String, String>,
    pub(crate) elapsed: Duration,
}

impl Report {
    pub(crate) fn failed(&self) -> bool {
        self.verdict.failed() || !self.crashes.is_empty() || !self.problems.is_empty()
    }

    pub(crate) fn print(&self) {
        let v = &self.verdict;
        println!(
            "\ntorture summary (seed {}, {:.0?})",
            self.seed, self.elapsed
        );
        let total: u32 = self.kills.values().sum();
        println!("  kills: {total}");
        for (agent, n) in &self.kills {
            println!("    {agent:<16} {n}");
        }
        println!("  outcomes:");
        for (what, n) in &self.outcomes {
            println!("    {what:<48} {n}");
        }
        println!("  messages sent:            {}", v.sent);
        println!("  messages acknowledged:    {}", v.acked_messages);
        println!("  copies acknowledged:      {}", v.acked_copies);
        println!("  copies delivered (acked): {}", v.delivered_acked);
        println!("  lost (acked, not filed):  {}", v.lost.len());
        println!("  duplicated:               {}", v.duplicated.len());
        println!("  misfiled:                 {}", v.misfiled.len());
        println!("  unacked but delivered:    {}", v.unacked_delivered);
        println!("  unacked and absent:       {}", v.unacked_absent);
        println!("  other messages (bounces): {}", v.others);
        let show = |what: &str, items: Vec<String>| {
            for i in items.iter().take(20) {
                println!("  {what}: {i}");
            }
            if items.len() > 20 {
                println!("  ... and {} more {what}", items.len() - 20);
            }
        };
        show(
            "LOST",
            v.lost
                .iter()
                .map(|(id, r, route)| {
                    let whereabouts = self.queued.get(id).map_or("in no spool".to_owned(), |d| {
                        format!("still in {d}'s spool")
                    });
                    format!("{id} to {r} (sent by {route}; {whereabouts})")
                })
                .collect(),
        );
        show(
            "DUPLICATE",
            v.duplicated
                .iter()
                .map(|(id, r, n, route)| format!("{id} {n} times in {r} (sent by {route})"))
                .collect(),
        );
        show(
            "MISFILED",
            v.misfiled
                .iter()
                .map(|(id, r)| format!("{id} in {r}"))
                .collect(),
        );
        show("CRASH", self.crashes.clone());
        show("PROBLEM", self.problems.clone());
        println!(
            "RESULT {} seed={} kills={total} acked={} lost={} duplicated={}",
            if self.failed() { "FAIL" } else { "PASS" },
            self.seed,
            v.acked_copies,
            v.lost.len(),
            v.duplicated.len()
        );
    }
}

/// Start the stack in `var`, torture it, and report (an error only when the
/// harness cannot go on: the stack does not start, an agent does not restart).
pub(crate) fn run(args: &Args, bins: &Path, var: &Path) -> anyhow::Result<Report> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "torture: seed {seed} (replay with --seed {seed}), {} kills, {} senders",
        args.kills, args.senders
    );
    if var.exists() {
        std::fs::remove_dir_all(var).with_context(|| format!("wiping {}", var.display()))?;
    }
    let mut spec = StackSpec::dev(var.to_path_buf(), bins.to_path_buf(), args.net);
    // Short retries: a message deferred while an agent was down goes again soon.
    spec.retry_secs = vec![1, 1, 2, 3, 5];
    spec.prepare()?;
    let mut stack = spec.start()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ip = |d: &str| spec.domain(d).map(|d| d.ip).context("no such domain");
    let doors = Arc::new(send::Doors {
        paris: ip("paris.test")?,
        lyon: ip("lyon.test")?,
        submission_port: spec.ports.submission,
        smtp_port: spec.ports.smtp,
        connector: facteur_daemon::tls::connector(&spec.ca())?,
        password: Secret::new(dev_password()),
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(30),
            data_end: Duration::from_secs(30),
            tls_handshake: Duration::from_secs(10),
        },
        pause: Duration::from_millis(args.pause_ms),
    });
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..args.senders)
        .map(|n| {
            rt.spawn(send::sender(
                n,
                seed,
                doors.clone(),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut report = Report {
        seed,
        kills: BTreeMap::new(),
        crashes: Vec::new(),
        problems: Vec::new(),
        outcomes: BTreeMap::new(),
        verdict: Verdict::default(),
        queued: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    let killed = kill_loop(args, seed, &mut stack, &ledger, &mut report);
    stop.store(true, Ordering::Relaxed);
    // The senders finish their current step (each has its deadline) and stop.
    let stuck = rt.block_on(async {
        let mut stuck = 0;
        let deadline = tokio::time::Instant::now() + SENDERS_STOP;
        for s in senders {
            let abort = s.abort_handle();
            if tokio::time::timeout_at(deadline, s).await.is_err() {
                abort.abort();
                stuck += 1;
            }
        }
        stuck
    });
    if stuck > 0 {
        report.problems.push(format!(
            "{stuck} senders still busy {SENDERS_STOP:?} after the stop"
        ));
    }
    // A failure to restart ends the run here, with the logs.
    if let Err(e) = killed {
        eprintln!("{}", stack.all_logs());
        return Err(e);
    }
    restart_crashed(&mut stack, &mut report)?;
    eprintln!("torture: sending stopped; waiting for the queues to drain");
    if let Err(left) = drain(&spec, Duration::from_secs(args.drain_secs)) {
        report.problems.push(format!(
            "queues not drained within {}s: {left}",
            args.drain_secs
        ));
    }
    report.queued = queued(&spec);
    let (attempts, outcomes) = ledger.snapshot();
    let mailboxes = rt.block_on(read_mailboxes(&spec))?;
    report.verdict = check::verdict(&attempts, &mailboxes);
    report.outcomes = outcomes;
    restart_crashed(&mut stack, &mut report)?;
    for unclean in stack.stop() {
        report
            .problems
            .push(format!("not stopped cleanly: {unclean}"));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// N times: wait a random delay, kill -9 a random agent, leave it down a
/// random moment, restart it and wait for its ready line.
fn kill_loop(
    args: &Args,
    seed: u64,
    stack: &mut Stack,
    ledger: &Ledger,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let domains: Vec<String> = stack.spec.domains.iter().map(|d| d.name.clone()).collect();
    let (min, max) = (args.min_delay_ms, args.max_delay_ms.max(args.min_delay_ms));
    for i in 1..=args.kills {
        let delay = Duration::from_millis(rng.gen_range(min..=max));
        let down = Duration::from_millis(rng.gen_range(0..=args.max_down_ms));
        let domain = domains.choose(&mut rng).context("no domain")?.clone();
        let agent = *AGENTS.choose(&mut rng).context("no agent")?;
        // The random moment: the senders keep going meanwhile.
        std::thread::sleep(delay);
        restart_crashed(stack, report)?;
        stack.kill(&domain, agent)?;
        std::thread::sleep(down);
        let restarted = Instant::now();
        stack
            .restart(&domain, agent)
            .with_context(|| format!("restarting {domain} {agent} after kill {i}"))?;
        *report.kills.entry(format!("{domain} {agent}")).or_default() += 1;
        eprintln!(
            "torture: [{:>6.1}s] kill {i}/{}: {domain} {agent} after {delay:?}, down {down:?}, ready in {:.1?}; {} messages acknowledged so far",
            start.elapsed().as_secs_f64(),
            args.kills,
            restarted.elapsed(),
            ledger.acked_messages()
        );
    }
    // Let the last restart take some traffic before the stop.
    std::thread::sleep(Duration::from_millis(rng.gen_range(min..=max)));
    Ok(())
}

/// Agents that died on their own are crashes: note them and start them again.
fn restart_crashed(stack: &mut Stack, report: &mut Report) -> anyhow::Result<()> {
    for (domain, agent, status) in stack.exited() {
        report
            .crashes
            .push(format!("{domain} {agent} exited on its own: {status}"));
        eprintln!("torture: CRASH {domain} {agent}: {status}; restarting it");
        stack
            .restart(&domain, &agent)
            .with_context(|| format!("restarting {domain} {agent} after its crash"))?;
    }
    Ok(())
}

/// Wait until both MTAs' spools are empty (the spool file is the queue's truth,
/// so every acknowledged message is by then filed or bounced), seen twice in a
/// row; on timeout, what is left.
fn drain(spec: &StackSpec, timeout: Duration) -> Result<(), String> {
    let left = || -> Vec<String> {
        spec.domains
            .iter()
            .filter_map(|d| {
                let spool = spec.agent_dir(&d.name, "mta").join("spool");
                let n = std::fs::read_dir(&spool).map(|r| r.count()).unwrap_or(0);
                (n > 0).then(|| format!("{} spool holds {n} files", d.name))
            })
            .collect()
    };
    let mut empty_once = false;
    let drained = Stack::wait_until(timeout, || {
        let now_empty = left().is_empty();
        let twice = now_empty && empty_once;
        empty_once = now_empty;
        twice
    });
    if drained {
        Ok(())
    } else {
        Err(left().join(", "))
    }
}

/// The torture ids of the messages left in the MTAs' spools, with the domain.
fn queued(spec: &StackSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in &spec.domains {
        let spool = spec.agent_dir(&d.name, "mta").join("spool");
        for f in std::fs::read_dir(&spool).into_iter().flatten().flatten() {
            if let Some(id) = std::fs::read(f.path())
                .ok()
                .and_then(|m| check::torture_id(&m))
            {
                out.insert(id, d.name.clone());
            }
        }
    }
    out
}

/// Every dev user's mailbox, read over POP3 through its domain's MAA.
async fn read_mailboxes(spec: &StackSpec) -> anyhow::Result<BTreeMap<String, Vec<Option<String>>>> {
    let mut out = BTreeMap::new();
    for d in &spec.domains {
        let addr = SocketAddr::from((d.ip, spec.ports.pop3));
        for user in dev_users(&d.name) {
            // A few tries: the MAA or MDA may just have been restarted.
            let mut tries = 0;
            let ids = loop {
                tries += 1;
                let read = check::read_mailbox(
                    addr,
                    &format!("mail.{}", d.name),
                    &user,
                    &dev_password(),
                    &spec.ca(),
                )
                .await;
                match read {
                    Ok(ids) => break ids,
                    Err(e) if tries < READ_TRIES => {
                        eprintln!("torture: reading {user}'s mailbox: {e:#}; trying again");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(e) => {
                        return Err(e.context(format!("reading {user}'s mailbox over POP3")));
                    }
                }
            };
            eprintln!("torture: {user} holds {} messages", ids.len());
            out.insert(user, ids);
        }
    }
    Ok(out)
}
