//! `cargo xtask compose-test`: the deployment of deploy/compose.yaml, end to end.
//!
//! Builds the images, copies deploy/ into a temp dir and runs its `init` there,
//! then for the base deployment and each variant file: `up -d`, waits (bounded)
//! until every healthcheck is green, adds the dev accounts through the running
//! MDAs (`docker-compose exec … facteur-mda user add`), sends mail paris→lyon and
//! lyon→paris with the tools image (on the compose networks) and reads each back
//! by POP3 and IMAP. On the base deployment it also scrapes
//! `/metrics` and sees the delivered counters move, `docker kill`s lyon's MTA
//! while paris has mail for it, lists paris's queue as an operator would, kills
//! paris's MTA (which holds the only copies) too, starts both, flushes the queue
//! and checks that every message arrives exactly once. A [`Project`] guard runs `down -v` on drop, on failure too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a deployment may take to be healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a message may take to reach its mailbox.
const MAIL_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages sent while lyon's MTA is down.
const KILL_BATCH: usize = 5;

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Args {
    /// Use the images as they are (no `cargo xtask images`).
    #[arg(long)]
    pub(crate) no_images: bool,
    /// Only this variant: base, dovecot, postfix-mta, postfix-msa.
    #[arg(long)]
    pub(crate) only: Option<String>,
}

/// One deployment under test: which variant, and how its mail is read.
struct Variant {
    name: &'static str,
    file: Option<&'static str>,
    /// Where lyon's mailboxes are served (facteur's MAA or Dovecot).
    lyon_reader: &'static str,
    /// Whether paris's submission takes AUTH (Postfix's: trusted network only).
    paris_auth: bool,
    /// Accounts to add to each facteur MDA: (service, user).
    users: &'static [(&'static str, &'static str)],
}

const ALL_USERS: &[(&str, &str)] = &[
    ("paris-mda", "pierre@paris.test"),
    ("paris-mda", "jacques@paris.test"),
    ("lyon-mda", "andre@lyon.test"),
];

const VARIANTS: &[Variant] = &[
    Variant {
        name: "base",
        file: None,
        lyon_reader: "lyon-maa",
        paris_auth: true,
        users: ALL_USERS,
    },
    Variant {
        name: "dovecot",
        file: Some("compose.dovecot.yaml"),
        lyon_reader: "lyon-mda",
        paris_auth: true,
        users: &[
            ("paris-mda", "pierre@paris.test"),
            ("paris-mda", "jacques@paris.test"),
        ],
    },
    Variant {
        name: "postfix-mta",
        file: Some("compose.postfix-mta.yaml"),
        lyon_reader: "lyon-maa",
        paris_auth: true,
        users: ALL_USERS,
    },
    Variant {
        name: "postfix-msa",
        file: Some("compose.postfix-msa.yaml"),
        lyon_reader: "lyon-maa",
        paris_auth: false,
        users: ALL_USERS,
    },
];

pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    let compose = compose_command()?;
    if !args.no_images {
        crate::images::main(&crate::images::Args::default())?;
    }
    let tmp = std::env::temp_dir().join(format!("facteur-compose-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        let deploy = tmp.join("deploy");
        crate::run(
            Command::new("cp")
                .arg("-a")
                .arg(crate::root().join("deploy"))
                .arg(&deploy),
        )?;
        let _ = std::fs::remove_dir_all(deploy.join("secrets"));
        crate::run(
            Command::new(deploy.join("init"))
                .arg(deploy.join("secrets"))
                .env("FACTEUR_SRC", crate::root())
                .current_dir(crate::root()),
        )?;
        for v in VARIANTS {
            if args.only.as_deref().is_some_and(|o| o != v.name) {
                continue;
            }
            eprintln!("==> compose: {}", v.name);
            let project = Project::new(&compose, &deploy, v.file);
            run_variant(&project, v).with_context(|| format!("compose variant {}", v.name))?;
            drop(project);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `docker-compose` (v1) when installed, else `docker compose` (v2); else a clear error.
fn compose_command() -> anyhow::Result<Vec<String>> {
    crate::images::check_docker()?;
    if crate::have("docker-compose version") {
        return Ok(vec!["docker-compose".into()]);
    }
    if crate::have("docker compose version") {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    bail!(
        "neither docker-compose nor `docker compose` is installed: the compose test needs one \
         (Debian: apt-get install docker-compose)"
    )
}

/// A compose project (`-p facteur-ci`) over the temp copy of deploy/; `down -v` on drop.
struct Project {
    base: Vec<String>,
    deploy: PathBuf,
}

impl Project {
    fn new(compose: &[String], deploy: &Path, variant: Option<&str>) -> Self {
        let mut base: Vec<String> = compose.to_vec();
        base.extend(["-p".into(), "facteur-ci".into()]);
        base.extend([
            "-f".into(),
            deploy.join("compose.yaml").display().to_string(),
        ]);
        if let Some(f) = variant {
            base.extend(["-f".into(), deploy.join(f).display().to_string()]);
        }
        let p = Self {
            base,
            deploy: deploy.to_owned(),
        };
        // A previous run killed before its guard ran leaves its containers and volumes.
        let _ = p.down();
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.base[0]);
        c.args(&self.base[1..]).args(args).current_dir(&self.deploy);
        c
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        crate::run(&mut self.cmd(args))
    }

    /// Standard output of a compose command that must succeed.
    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cmd(args).stderr(Stdio::inherit()).output()?;
        if !out.status.success() {
            bail!("compose {args:?} failed with {}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn down(&self) -> anyhow::Result<()> {
        let status = self
            .cmd(&["down", "-v", "--remove-orphans", "--timeout", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("compose down failed with {status}");
        }
        Ok(())
    }

    fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.output(&["ps", "-q", service])?.trim().to_owned();
        if id.is_empty() {
            bail!("service {service} has no container");
        }
        Ok(id)
    }

    /// `mailcheck ARGS` in the tools container (on every network).
    fn mailcheck(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["run", "--rm", "-T", "tools", "mailcheck"];
        all.extend_from_slice(args);
        self.output(&all)
    }

    fn logs(&self) {
        let _ = self.cmd(&["logs", "--no-color", "--tail", "40"]).status();
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        eprintln!("==> compose down -v");
        if let Err(e) = self.down() {
            eprintln!("warning: {e}");
        }
    }
}

fn run_variant(p: &Project, v: &Variant) -> anyhow::Result<()> {
    p.run(&["up", "-d"])?;
    if let Err(e) = wait_healthy(p) {
        p.logs();
        return Err(e);
    }
    // Accounts through the running MDAs (their gRPC Accounts service, mTLS).
    let password = std::fs::read_to_string(p.deploy.join("secrets/password"))
        .context("reading the dev password")?;
    let env = format!("FACTEUR_PASSWORD={}", password.trim());
    for (service, user) in v.users {
        p.run(&[
            "exec",
            "-T",
            "-e",
            &env,
            service,
            "/facteur-mda",
            "--config",
            "/etc/facteur/facteur-mda.toml",
            "user",
            "add",
            user,
        ])?;
    }
    let tag = format!("{}-{}", v.name, std::process::id());
    let lyon_delivered = || {
        p.mailcheck(&[
            "metric",
            "http://lyon-mda:9100/metrics",
            "facteur_messages_total",
            "outcome=delivered",
        ])
    };
    let before = if v.name == "base" {
        Some(lyon_delivered()?.trim().parse::<f64>().unwrap_or(0.0))
    } else {
        None
    };
    // paris → lyon, lyon → paris.
    let to_lyon = format!("{tag} paris to lyon");
    send_paris(p, v, &to_lyon)?;
    let to_paris = format!("{tag} lyon to paris");
    p.mailcheck(&[
        "send",
        "--host",
        "lyon-msa",
        "--port",
        "465",
        "--ssl",
        "--user",
        "andre@lyon.test",
        "--from",
        "andre@lyon.test",
        "--to",
        "jacques@paris.test",
        "--subject",
        &to_paris,
    ])?;
    // Each message readable over both POP3 and IMAP (implicit TLS).
    for (proto, port) in [("pop3", "995"), ("imap", "993")] {
        wait_mail(
            p,
            &[proto, "--host", v.lyon_reader, "--port", port],
            "andre@lyon.test",
            &[&to_lyon],
        )?;
        wait_mail(
            p,
            &[proto, "--host", "paris-maa", "--port", port],
            "jacques@paris.test",
            &[&to_paris],
        )?;
    }
    if let Some(before) = before {
        let after: f64 = lyon_delivered()?.trim().parse().unwrap_or(0.0);
        if after <= before {
            bail!(
                "lyon's MDA facteur_messages_total{{outcome=\"delivered\"}} did not move: {before} → {after}"
            );
        }
        eprintln!("==> lyon-mda delivered counter {before} → {after}");
        kill_mid_flow(p, v, &tag)?;
    }
    Ok(())
}

fn send_paris(p: &Project, v: &Variant, subject: &str) -> anyhow::Result<()> {
    let mut args = vec!["send", "--host", "paris-msa", "--port", "587"];
    if v.paris_auth {
        args.extend(["--user", "pierre@paris.test"]);
    }
    args.extend([
        "--from",
        "pierre@paris.test",
        "--to",
        "andre@lyon.test",
        "--subject",
        subject,
    ]);
    p.mailcheck(&args).map(drop)
}

/// Kill lyon's MTA, send a batch from paris (queued there, as `queue list`
/// shows), kill paris's MTA too, start both, `queue flush`: every message must
/// reach andre exactly once and paris's queue must empty.
fn kill_mid_flow(p: &Project, v: &Variant, tag: &str) -> anyhow::Result<()> {
    let mta = p.container("lyon-mta")?;
    crate::run(Command::new("docker").args(["kill", &mta]))?;
    let subjects: Vec<String> = (1..=KILL_BATCH)
        .map(|i| format!("{tag} queued {i}"))
        .collect();
    for s in &subjects {
        send_paris(p, v, s)?;
    }
    // The operator's view of the running paris MTA: the batch waits in its queue.
    let queue = |verb: &str| {
        p.output(&[
            "exec",
            "-T",
            "paris-mta",
            "/facteur-mta",
            "--config",
            "/etc/facteur/facteur-mta.toml",
            "queue",
            verb,
        ])
    };
    let listed = queue("list")?;
    eprint!("{listed}");
    let requests = format!("in {KILL_BATCH} Requests.");
    if !listed.contains(&requests) {
        bail!("paris-mta's queue list should show the {KILL_BATCH} waiting messages:\n{listed}");
    }
    // The MTA holding the only copies dies too (SIGKILL): its queue volume keeps them.
    let paris_mta = p.container("paris-mta")?;
    crate::run(Command::new("docker").args(["kill", &paris_mta]))?;
    crate::run(Command::new("docker").args(["start", &paris_mta]))?;
    crate::run(Command::new("docker").args(["start", &mta]))?;
    wait_healthy(p)?;
    // Do not wait for the retry timer: flush, as `postqueue -f` would.
    queue("flush")?;
    let wanted: Vec<&str> = subjects.iter().map(String::as_str).collect();
    wait_mail(
        p,
        &["pop3", "--host", v.lyon_reader, "--port", "995"],
        "andre@lyon.test",
        &wanted,
    )?;
    eprintln!(
        "==> after docker kill/start of lyon-mta and paris-mta and a queue flush: {KILL_BATCH} messages, each once"
    );
    // The paris entry goes once lyon's 250 is in; allow that a moment to land.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = queue("list")?;
        if left.contains("Mail queue is empty") {
            break;
        }
        if Instant::now() > deadline {
            bail!("paris-mta's queue should be empty once lyon has the mail:\n{left}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// Poll `user`'s mailbox until every subject is there; then each must be there once.
fn wait_mail(p: &Project, how: &[&str], user: &str, subjects: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + MAIL_TIMEOUT;
    let mut args = how.to_vec();
    args.extend(["--user", user]);
    loop {
        let listed = p.mailcheck(&args).unwrap_or_default();
        let lines: Vec<&str> = listed.lines().map(str::trim).collect();
        let count = |s: &str| lines.iter().filter(|l| **l == s).count();
        if subjects.iter().all(|s| count(s) > 0) {
            if let Some(dup) = subjects.iter().find(|s| count(s) > 1) {
                bail!("{user} has {dup:?} {} times", count(dup));
            }
            eprintln!(
                "==> {user} has {} message(s) via {}",
                subjects.len(),
                how[0]
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            p.logs();
            bail!("{user} did not get {subjects:?} within {MAIL_TIMEOUT:?} (mailbox: {lines:?})");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Every started container with a healthcheck is healthy (bounded).
fn wait_healthy(p: &Project) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEALTHY_TIMEOUT;
    loop {
        let ids: Vec<String> = p
            .output(&["ps", "-q"])?
            .lines()
            .map(str::to_owned)
            .collect();
        let mut waiting = Vec::new();
        for id in &ids {
            let out = Command::new("docker")
                .args([
                    "inspect",
                    "--format",
                    "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                    id,
                ])
                .output()?;
            let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !(line.ends_with(" healthy") || line.ends_with(" running")) {
                waiting.push(line);
            }
        }
        if !ids.is_empty() && waiting.is_empty() {
            eprintln!("==> all {} containers healthy", ids.len());
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not healthy within {HEALTHY_TIMEOUT:?}: {waiting:?}");
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}
