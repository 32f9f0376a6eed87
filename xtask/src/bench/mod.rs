//! `cargo xtask bench`: facteur next to a reference Postfix + Dovecot, the same
//! workloads against both in one run, interleaved rep by rep, progress on
//! stderr, then a table and one `RATIO` line per figure on stdout.
//!
//! `--smoke` (run by `cargo xtask test`) starts both sides and measures tiny
//! workloads; `--quick` a subset in about five minutes; no flag, everything;
//! `--only a,b` just the named workloads ([`WORKLOADS`]) at the mode's sizes.
//! Nothing is asserted on the numbers; a side that cannot start, or a workload
//! that fails, fails the bench (exit status 1) rather than print a made-up
//! figure. A side that says it does not offer a feature (no IDLE yet) gets
//! `n/a` for that figure, which is not a failure.

pub(crate) mod client;
pub(crate) mod facteur;
pub(crate) mod reference;
pub(crate) mod report;
pub(crate) mod workloads;

use anyhow::{Context, bail};

use report::{Report, Side};
use workloads::{Memory, Target};

#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct BenchArgs {
    /// A subset of the workloads (about five minutes).
    #[arg(long, conflicts_with = "smoke")]
    pub(crate) quick: bool,
    /// Start both sides, measure one tiny workload each (a few seconds).
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Use the debug build instead of the release build (figures are then only
    /// good for checking that the bench works).
    #[arg(long)]
    pub(crate) debug: bool,
    /// Skip installing the Debian packages (postfix, dovecot-*).
    #[arg(long)]
    pub(crate) no_install: bool,
    /// Skip building the binaries.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Run only these workloads (comma-separated): ingest, submission, lmtp,
    /// logins, idle_memory, idle_latency, mailbox, search.
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
}

/// The workloads `--only` can name.
pub(crate) const WORKLOADS: &[&str] = &[
    "ingest",
    "submission",
    "lmtp",
    "logins",
    "idle_memory",
    "idle_latency",
    "mailbox",
    "search",
];

/// Which workloads this run measures.
#[derive(Debug, Clone, Default)]
struct Plan {
    only: Vec<String>,
}

impl Plan {
    fn new(only: &[String]) -> anyhow::Result<Self> {
        for name in only {
            if !WORKLOADS.contains(&name.as_str()) {
                bail!(
                    "no workload {name:?} (--only takes: {})",
                    WORKLOADS.join(", ")
                );
            }
        }
        Ok(Self {
            only: only.to_vec(),
        })
    }

    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    fn mailbox(&self) -> workloads::MailboxParts {
        workloads::MailboxParts {
            commands: self.wants("mailbox"),
            search: self.wants("search"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

/// Raise the soft limit on open files to the hard one (thousands of sessions on
/// our side, and the servers we start inherit it).
/// Where the reference keeps its state: outside the target directory, which
/// may sit under a private (0700) directory such as a fresh clone in
/// `mktemp -d`, where Debian's `postfix` and `dovecot` users could not reach
/// it. One directory per target directory, in the world-traversable /var/tmp.
fn reference_dir(target: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::PermissionsExt;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    let base = std::path::Path::new("/var/tmp").join(format!("facteur-bench-{:016x}", h.finish()));
    std::fs::create_dir_all(&base)?;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))?;
    Ok(base.join("reference"))
}

fn raise_nofile() -> anyhow::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    Ok(hard)
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let mode = if args.smoke {
        Mode::Smoke
    } else if args.quick {
        Mode::Quick
    } else {
        Mode::Full
    };
    let plan = Plan::new(&args.only)?;
    if !super::is_root() {
        bail!(
            "the bench starts the reference Postfix, whose master must start as root: run it as root"
        );
    }
    if !args.no_install {
        super::install_packages(reference::PACKAGES)?;
    }
    let profile = if args.debug { "debug" } else { "release" };
    if !args.no_build {
        let mut build = super::cargo();
        build.args(["build", "--workspace", "--bins"]);
        if !args.debug {
            build.arg("--release");
        }
        super::run(&mut build)?;
    }
    let nofile = raise_nofile()?;
    let target = super::target_dir()?;
    let var = target.join("bench");
    std::fs::create_dir_all(&var)?;
    let users: Vec<String> = workloads::USERS
        .iter()
        .map(|u| workloads::user(u))
        .collect();
    let password = facteur_tests::stack::dev_password();

    eprintln!("==> bench ({mode:?}, {profile} build, up to {nofile} open files)");
    eprintln!("==> starting facteur on {} ({profile})", facteur::IP);
    let stack = facteur::start(&var.join("facteur"), target.join(profile), &users)?;
    eprintln!(
        "==> starting the reference Postfix + Dovecot on {}",
        reference::IP
    );
    let ref_dir = reference_dir(&target)?;
    reference::Reference::prepare(&ref_dir, &users, &password)?;
    let reference = reference::Reference::start(&ref_dir)?;
    let postfix = version("postconf", &["-h", "mail_version"]);
    let dovecot = version("dovecot", &["--version"]);
    eprintln!("    Postfix {postfix}, Dovecot {dovecot}");

    let targets = [
        Target {
            side: Side::Facteur,
            smtp: facteur::addr(&stack, |p| p.smtp),
            submission: facteur::addr(&stack, |p| p.submission),
            imaps: facteur::addr(&stack, |p| p.imaps),
            lmtp: facteur::addr(&stack, |p| p.lmtp),
            tls: facteur_daemon::tls::connector(&stack.spec.ca())?,
            password: password.clone(),
            memory: Memory::Pids(facteur::imap_pids(&stack)),
            restart: None,
        },
        Target {
            side: Side::Reference,
            smtp: reference::addr(reference::SMTP_PORT),
            submission: reference::addr(reference::SUBMISSION_PORT),
            imaps: reference::addr(reference::IMAPS_PORT),
            lmtp: reference::addr(reference::LMTP_PORT),
            tls: facteur_daemon::tls::connector(&ref_dir.join("tls").join("ca.pem"))?,
            password,
            memory: Memory::Dovecot {
                master: reference.dovecot_pid().context("dovecot is not running")?,
                dir: ref_dir.clone(),
            },
            restart: None,
        },
    ];
    let stack = std::sync::Arc::new(std::sync::Mutex::new(stack));
    let mut targets = targets;
    targets[0].restart = Some(std::sync::Arc::clone(&stack));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    // Ctrl-C or SIGTERM stops the workloads; both sides are still stopped below.
    let report = rt.block_on(async {
        tokio::select! {
            r = workloads_for(mode, &plan, &targets) => Ok(r),
            () = facteur_daemon::shutdown::wait_for_signal() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    eprintln!(
        "==> measured in {:.0} s; stopping both sides",
        started.elapsed().as_secs_f64()
    );
    drop(rt);
    drop(targets);
    drop(stack);
    drop(reference);
    let report = report?;
    println!(
        "\nfacteur ({profile} build) vs Postfix {postfix} + Dovecot {dovecot}, {mode:?} run; medians of the reps\n"
    );
    print!("{}", report.render());
    if report.failed() {
        bail!("some figures could not be measured (see `failed:` above)");
    }
    Ok(())
}

fn version(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "?".into())
}

async fn workloads_for(mode: Mode, plan: &Plan, t: &[Target]) -> Report {
    let mut r = Report::default();
    const KB: usize = 1024;
    let parts = plan.mailbox();
    let boxes = parts.commands || parts.search;
    match mode {
        Mode::Smoke => {
            if plan.wants("ingest") {
                workloads::ingest(&mut r, t, KB, 1, 10, 1).await;
            }
            if plan.wants("idle_latency") {
                workloads::idle_latency(&mut r, t, 5).await;
            }
            if plan.wants("idle_memory") {
                workloads::idle(&mut r, t, 20).await;
            }
            if boxes {
                workloads::mailbox(&mut r, t, 200, 1, parts).await;
            }
        }
        Mode::Quick => {
            if plan.wants("ingest") {
                workloads::ingest(&mut r, t, KB, 1, 300, 1).await;
                workloads::ingest(&mut r, t, KB, 10, 1000, 1).await;
                workloads::ingest(&mut r, t, KB, 100, 2000, 1).await;
                workloads::ingest(&mut r, t, 100 * KB, 10, 200, 1).await;
            }
            if plan.wants("submission") {
                workloads::submission(&mut r, t, 40).await;
            }
            if plan.wants("lmtp") {
                workloads::lmtp(&mut r, t, 1000, 10, 2).await;
            }
            if plan.wants("logins") {
                workloads::logins(&mut r, t, 200, 2).await;
            }
            if plan.wants("idle_memory") {
                workloads::idle(&mut r, t, 1000).await;
            }
            if plan.wants("idle_latency") {
                workloads::idle_latency(&mut r, t, 50).await;
            }
            if boxes {
                workloads::mailbox(&mut r, t, 1000, 3, parts).await;
                workloads::mailbox(&mut r, t, 10_000, 3, parts).await;
            }
        }
        Mode::Full => {
            if plan.wants("ingest") {
                for (size, sessions, messages) in [
                    (KB, 1, 1000),
                    (KB, 10, 3000),
                    (KB, 100, 5000),
                    (100 * KB, 1, 200),
                    (100 * KB, 10, 500),
                    (100 * KB, 100, 1000),
                ] {
                    workloads::ingest(&mut r, t, size, sessions, messages, 3).await;
                }
            }
            if plan.wants("submission") {
                workloads::submission(&mut r, t, 300).await;
            }
            if plan.wants("lmtp") {
                workloads::lmtp(&mut r, t, 5000, 10, 3).await;
            }
            if plan.wants("logins") {
                workloads::logins(&mut r, t, 1000, 3).await;
            }
            if plan.wants("idle_memory") {
                workloads::idle(&mut r, t, 1000).await;
                workloads::idle(&mut r, t, 10_000).await;
            }
            if plan.wants("idle_latency") {
                workloads::idle_latency(&mut r, t, 200).await;
            }
            if boxes {
                for n in [1000, 10_000, 100_000] {
                    workloads::mailbox(&mut r, t, n, 5, parts).await;
                }
            }
        }
    }
    r
}
