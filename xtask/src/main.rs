//! `cargo xtask up | test | bench`: the project's commands (the cargo-xtask pattern).
//!
//! - `up` builds every agent, lays out `./var` (dev CA, configs, dev users), starts
//!   the dev stack in the foreground and stops it on Ctrl-C or SIGTERM.
//! - `test` installs what the tests need (Debian packages; for the Python test
//!   clients, PyPI's `imapclient` beside the standard library), checks format and
//!   lints, and runs every test layer, then the bench's smoke run.
//! - `bench` compares facteur with a reference Postfix + Dovecot (`bench/`).
//! - `interop` runs the Postfix/Dovecot swap matrix and prints it as a table.
//! - `pki` makes a deployment CA and one certificate per agent for gRPC mutual TLS.
//! - `images` builds the container images of `deploy/compose.yaml`; `compose-test`
//!   brings that deployment and its variants up and sends mail through them.

mod bench;
mod compose;
mod images;
mod interop;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use facteur_tests::StackSpec;

mod torture;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Make (or keep) a deployment CA in DIR and one certificate per agent for gRPC
    /// mutual TLS: DIR/ca.pem, ca-key.pem, <name>.pem, <name>-key.pem (keys 0600).
    Pki {
        /// Directory to write into (created if missing).
        dir: PathBuf,
        /// `NAME[=SAN,SAN…]`: a certificate named NAME for these DNS names and IP
        /// addresses (NAME itself when none), plus localhost and 127.0.0.1; repeatable.
        #[arg(long = "agent", value_name = "NAME[=SAN,…]", required = true)]
        agents: Vec<String>,
    },
    /// Build and start the whole chain locally (paris.test and lyon.test).
    Up {
        /// State directory.
        #[arg(long, default_value = "var")]
        var: PathBuf,
    },
    /// Install test tools, then run every test layer.
    Test {
        /// Skip installing Debian/Python packages.
        #[arg(long)]
        no_install: bool,
        /// Skip the format and lint checks.
        #[arg(long)]
        no_lint: bool,
    },
    /// Measure facteur next to a reference Postfix + Dovecot (needs root).
    Bench(bench::BenchArgs),
    /// Run the swap matrix (Postfix/Dovecot in place of facteur agents) as a table.
    Interop(interop::Args),
    /// Send mail through both domains while kill -9ing random agents; check that
    /// every acknowledged message is filed exactly once.
    Torture(torture::Args),
    /// Build the container images of deploy/compose.yaml (facteur/*:dev).
    Images(images::Args),
    /// Build the images, bring up deploy/compose.yaml and each variant, send and read mail.
    ComposeTest(compose::Args),
    /// Break the chain on purpose (a stack of its own, started and stopped by the
    /// lab), watch what happens, then undo the fault.
    Lab {
        /// The exercise.
        #[arg(value_enum)]
        exercise: facteur_tests::lab::Exercise,
        /// The language of the texts.
        #[arg(long, value_enum, default_value_t = facteur_tests::demo::Lang::En)]
        lang: facteur_tests::demo::Lang,
        /// State directory of the lab's stack.
        #[arg(long, default_value = "var/lab")]
        var: PathBuf,
    },
    /// Watch one message walk the 8 steps of the pipeline (pierre@paris.test →
    /// andre@lyon.test), each hop's real dialogue read back from the agents'
    /// transcripts; starts the dev stack if it is not running.
    Demo {
        /// The language of the demo.
        #[arg(long, value_enum, default_value_t = facteur_tests::demo::Lang::En)]
        lang: facteur_tests::demo::Lang,
        /// Wait for Enter between steps (for a classroom).
        #[arg(long)]
        step: bool,
        /// State directory of the dev stack.
        #[arg(long, default_value = "var")]
        var: PathBuf,
        /// Also write the page of the route to FILE (one self-contained HTML page).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Serve the page of the route on this loopback address until Ctrl-C.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8025")]
        serve: Option<std::net::SocketAddr>,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Where cargo puts the debug binaries (honours CARGO_TARGET_DIR).
fn bin_dir() -> anyhow::Result<PathBuf> {
    Ok(target_dir()?.join("debug"))
}

/// Cargo's target directory (honours CARGO_TARGET_DIR).
fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let target = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(target))
}

fn build_bins() -> anyhow::Result<()> {
    run(cargo().args(["build", "--workspace", "--bins"]))
}

/// `var/mua.toml`: an account per dev user for `facteur-mua -a NAME` (no
/// password: the MUA takes it from FACTEUR_PASSWORD or asks).
fn write_mua_accounts(spec: &StackSpec) -> anyhow::Result<PathBuf> {
    let mut text = String::from(
        "# facteur-mua accounts for the dev stack (cargo xtask up writes this file).\n\
         # Use it with: export FACTEUR_MUA_CONFIG=<this file>; facteur-mua -a andre fetch\n\
         default = \"andre\"\n",
    );
    let p = &spec.ports;
    for (name, user, domain, imap) in [
        ("pierre", "pierre@paris.test", "paris.test", false),
        ("jacques", "jacques@paris.test", "paris.test", true),
        ("andre", "andre@lyon.test", "lyon.test", true),
    ] {
        let ip = spec
            .domain(domain)
            .map(|d| d.ip.to_string())
            .unwrap_or_default();
        let fetch = if imap {
            format!("imap = \"{ip}:{}\"", p.imap)
        } else {
            format!("pop3 = \"{ip}:{}\"", p.pop3)
        };
        text.push_str(&format!(
            "\n[accounts.{name}]\nuser = \"{user}\"\nsubmission = \"{ip}:{}\"\n{fetch}\n\
             ca = \"{}\"\nmaildir = \"{}\"\n",
            p.submission,
            spec.ca().display(),
            spec.var.join("Mail").join(name).display(),
        ));
    }
    let path = spec.var.join("mua.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn up(var: &Path) -> anyhow::Result<()> {
    build_bins()?;
    let var = if var.is_absolute() {
        var.to_path_buf()
    } else {
        root().join(var)
    };
    let spec = StackSpec::dev(var, bin_dir()?, 0);
    spec.prepare()?;
    eprintln!("==> starting the dev stack");
    let mut stack = spec.start()?;
    let paris = spec
        .domain("paris.test")
        .map(|d| d.ip.to_string())
        .unwrap_or_default();
    let lyon = spec
        .domain("lyon.test")
        .map(|d| d.ip.to_string())
        .unwrap_or_default();
    let ca = spec.ca();
    let pw = facteur_tests::stack::dev_password();
    let accounts = write_mua_accounts(&spec)?;
    println!(
        "
facteur is up: paris.test on {paris}, lyon.test on {lyon}, DNS on {dns}:5353.
Users: pierre@paris.test, jacques@paris.test, andre@lyon.test (password {pw:?}).
Logs: {logs}

Send a first message (pierre → andre, across domains); the MUA reads the
password from FACTEUR_PASSWORD (or asks for it), never from its command line:
  export FACTEUR_PASSWORD={pw}
  cargo run -q -p facteur-mua -- send --server {paris}:5870 --ca {ca} \\
      --user pierre@paris.test \\
      --from pierre@paris.test --to andre@lyon.test --subject hello --body 'Bonjour Andre'
Read it (POP3 with STLS on lyon), then see the path it took:
  cargo run -q -p facteur-mua -- fetch --pop3 {lyon}:1100 --ca {ca} \\
      --user andre@lyon.test --last
  cargo run -q -p facteur-mua -- fetch --pop3 {lyon}:1100 --ca {ca} \\
      --user andre@lyon.test --last --trace
Jacques reads his mail over IMAP:
  cargo run -q -p facteur-mua -- fetch --imap {paris}:1430 --ca {ca} \\
      --user jacques@paris.test --last
Or with the accounts written in {accounts} (servers, user, a Maildir each):
  export FACTEUR_MUA_CONFIG={accounts}
  cargo run -q -p facteur-mua -- -a pierre send --to andre@lyon.test --subject hi --body Salut
  cargo run -q -p facteur-mua -- -a andre fetch     # new mail into var/Mail/andre
  cargo run -q -p facteur-mua -- -a andre list
  cargo run -q -p facteur-mua -- -a andre read 1 --save /tmp/attachments
Or with swaks:
  swaks --server {paris}:5870 --tls --tls-ca-path {ca} --auth PLAIN \\
      --auth-user pierre@paris.test --auth-password {pw} \\
      --from pierre@paris.test --to jacques@paris.test

Press Ctrl-C to stop.",
        dns = spec.dns_ip,
        logs = spec.var.join("log").display(),
        ca = ca.display(),
        accounts = accounts.display(),
    );
    println!("facteur dev stack ready");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(facteur_daemon::shutdown::wait_for_signal());
    eprintln!("==> stopping");
    let unclean = stack.stop();
    if unclean.is_empty() {
        eprintln!("==> every agent stopped cleanly");
        Ok(())
    } else {
        bail!("not stopped cleanly: {}", unclean.join("; "))
    }
}

/// `cargo xtask lab`: a stack of its own on the dev addresses, broken on purpose.
fn lab(
    exercise: facteur_tests::lab::Exercise,
    lang: facteur_tests::demo::Lang,
    var: &Path,
) -> anyhow::Result<()> {
    build_bins()?;
    let var = if var.is_absolute() {
        var.to_path_buf()
    } else {
        root().join(var)
    };
    let spec = StackSpec::dev(var, bin_dir()?, 0);
    let submission = spec
        .domain("paris.test")
        .map(|d| std::net::SocketAddr::from((d.ip, spec.ports.submission)))
        .context("the dev stack has no paris.test")?;
    if std::net::TcpStream::connect_timeout(&submission, std::time::Duration::from_secs(1)).is_ok()
    {
        bail!(
            "the dev stack is running (`cargo xtask up`): stop it first, the lab starts and breaks a stack of its own on the same addresses"
        );
    }
    spec.prepare()?;
    let mut stack = spec.start()?;
    let mut out = std::io::stdout().lock();
    let result = facteur_tests::lab::run(&mut stack, exercise, lang, &mut out);
    drop(out);
    let unclean = stack.stop();
    if !unclean.is_empty() {
        eprintln!("warning: not stopped cleanly: {}", unclean.join("; "));
    }
    result.map(drop)
}

/// `cargo xtask demo`: on the running dev stack, or on one started for it.
fn demo(
    lang: facteur_tests::demo::Lang,
    step: bool,
    var: &Path,
    html: Option<&Path>,
    serve: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    if serve.is_some_and(|a| !a.ip().is_loopback()) {
        bail!("--serve: only on a loopback address (127.0.0.0/8 or ::1)");
    }
    build_bins()?;
    let var = if var.is_absolute() {
        var.to_path_buf()
    } else {
        root().join(var)
    };
    let spec = StackSpec::dev(var, bin_dir()?, 0);
    let submission = spec
        .domain("paris.test")
        .map(|d| std::net::SocketAddr::from((d.ip, spec.ports.submission)))
        .context("the dev stack has no paris.test")?;
    let running =
        std::net::TcpStream::connect_timeout(&submission, std::time::Duration::from_secs(1))
            .is_ok();
    let stack = if running {
        eprintln!("==> the dev stack is running (`cargo xtask up`): using it");
        None
    } else {
        eprintln!("==> starting the dev stack for the demo (stopped at the end)");
        spec.prepare()?;
        Some(spec.start()?)
    };
    let mut pause = || {
        if step {
            eprint!("   [Enter] ");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
    };
    let mut out = std::io::stdout().lock();
    let result = facteur_tests::demo::run(&spec, lang, &mut out, &mut pause);
    drop(out);
    let page = result
        .as_ref()
        .ok()
        .map(|o| facteur_tests::demo::html(o, lang));
    if let (Some(file), Some(page)) = (html, &page) {
        std::fs::write(file, page).with_context(|| format!("writing {}", file.display()))?;
        eprintln!("==> the page of the route: {}", file.display());
    }
    if let (Some(addr), Some(page)) = (serve, &page) {
        serve_page(addr, page)?;
    }
    if let Some(mut stack) = stack {
        stack.stop();
    }
    result.map(drop)
}

/// `--serve`: answer every HTTP request on `addr` with the page, until Ctrl-C.
/// A few lines of HTTP/1.0 rather than a web framework: one static page, on
/// loopback, for a classroom's browser.
fn serve_page(addr: std::net::SocketAddr, page: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    eprintln!("==> the page of the route on http://{addr}/ (Ctrl-C to stop)");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut request = [0u8; 2048];
        let _ = conn.read(&mut request);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            page.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(page.as_bytes());
    }
    Ok(())
}

/// Does this shell check succeed (e.g. `command -v swaks`)?
fn have(check: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("{check} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Debian packages the tests drive, each with a check that it is there:
/// swaks (SMTP client) and the Perl TLS modules it needs for STARTTLS, the
/// interop and IMAP clients (neomutt runs in tmux), and the bench's reference
/// Postfix + Dovecot; then the Python packages of the test scripts.
fn install() -> anyhow::Result<()> {
    let mut wanted = vec![
        ("command -v swaks", "swaks"),
        ("perl -MNet::SSLeay -e1", "libnet-ssleay-perl"),
        ("perl -MIO::Socket::SSL -e1", "libio-socket-ssl-perl"),
        ("command -v fetchmail", "fetchmail"),
        ("command -v mbsync", "isync"),
        // The demo's page of the route is checked in headless Chromium.
        ("command -v chromium", "chromium"),
        // What docs/TEACHING.md has students type by hand.
        ("command -v dig", "bind9-dnsutils"),
        ("command -v openssl", "openssl"),
        ("command -v offlineimap", "offlineimap3"),
        ("command -v neomutt", "neomutt"),
        ("command -v tmux", "tmux"),
        ("command -v curl", "curl"),
    ];
    wanted.extend_from_slice(bench::reference::PACKAGES);
    let installed = install_packages(&wanted)?;
    stop_system_instances(&installed);
    install_python(&[("python3 -c 'import imapclient'", "imapclient")])
}

/// Install with pip, for the `python3` the tests run, the PyPI packages whose
/// check fails. A Debian `python3` refuses pip installs outside a venv (PEP
/// 668); these are pure-Python test clients, so that refusal is overridden.
fn install_python(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(check, _)| !have(check))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let pip = |extra: &[&str]| {
        let mut c = Command::new("python3");
        c.args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .args(&missing)
            .stdin(std::process::Stdio::null());
        c
    };
    run(&mut pip(&[])).or_else(|_| run(&mut pip(&["--break-system-packages"])))
}

/// The tests run their own Postfix and Dovecot instances; a package install
/// that started the system-wide one (an init system running its postinst
/// start) would hold port 25 and friends. Stop only that instance, and only
/// when this run installed its package: an operator's own running Postfix or
/// Dovecot is left alone.
fn stop_system_instances(installed: &[&str]) {
    let stops: &[(&str, &str, &[&str])] = &[
        (
            "postfix",
            "/var/spool/postfix/pid/master.pid",
            &["postfix", "stop"],
        ),
        (
            "dovecot-core",
            "/run/dovecot/master.pid",
            &["doveadm", "stop"],
        ),
    ];
    for (package, pid_file, stop) in stops {
        if !installed.contains(package) {
            continue;
        }
        let running = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if running {
            eprintln!("==> {package}'s install started the system instance: stopping it");
            if let Err(e) = run(Command::new(stop[0]).args(&stop[1..])) {
                eprintln!("warning: could not stop the system {package}: {e}");
            }
        }
    }
}

/// Install with apt-get the packages whose check fails (from the system's own
/// apt sources); returns the ones it installed.
fn install_packages<'a>(wanted: &[(&str, &'a str)]) -> anyhow::Result<Vec<&'a str>> {
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(check, _)| !have(check))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(missing);
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut c = Command::new(all[0]);
        c.args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        c
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run(&mut apt(&args))?;
    Ok(missing)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn test(no_install: bool, no_lint: bool) -> anyhow::Result<()> {
    if !no_install {
        install()?;
    }
    if !no_lint {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    // The end-to-end tests start the real binaries: build them all first.
    build_bins()?;
    let tests = if have("cargo nextest --version") {
        run(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--failure-output",
            // A failing try is shown at once, so a test that passes on retry
            // (flaky) still leaves its output in the log.
            "immediate-final",
        ]))
    } else {
        run(cargo().args(["test", "--workspace", "--no-fail-fast"]))
    };
    // A short kill -9 torture run, whatever the tests said.
    let torture = torture::ci();
    // The bench starts and measures on both sides (no threshold on any figure).
    eprintln!("==> cargo xtask bench --smoke --debug");
    let bench = bench::run(&bench::BenchArgs {
        smoke: true,
        debug: true,
        no_install: true,
        no_build: true,
        ..bench::BenchArgs::default()
    });
    // The docker-compose deployment and its swap variants, from images built here
    // (a release build, Debian roots): fails clearly where Docker is missing.
    eprintln!("==> cargo xtask compose-test");
    let compose = compose::main(&compose::Args::default());
    tests.and(torture).and(bench).and(compose)
}

/// `cargo xtask pki DIR --agent NAME[=SAN,…]…`: existing files are kept, so it
/// can run on every `deploy/init` without invalidating what was issued.
fn pki(dir: &Path, agents: &[String]) -> anyhow::Result<()> {
    let ca = facteur_daemon::devpki::Ca::ensure(dir)?;
    for agent in agents {
        let (name, sans) = agent.split_once('=').unwrap_or((agent, ""));
        if name.is_empty() || name.contains(['/', '\\']) {
            bail!("--agent {agent:?}: expected NAME[=SAN,SAN…] with a plain file name");
        }
        let given: Vec<String> = sans
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let sans = facteur_daemon::devpki::agent_sans(name, &given);
        let kept = dir.join(format!("{name}.pem")).exists();
        let cert = ca.issue(name, &sans)?;
        if kept {
            println!("kept {} (delete it to issue it again)", cert.cert.display());
        } else {
            println!("made {} for {}", cert.cert.display(), sans.join(", "));
        }
    }
    println!("{}", ca.cert_path().display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Up { var } => up(&var),
        Task::Pki { dir, agents } => pki(&dir, &agents),
        Task::Test {
            no_install,
            no_lint,
        } => test(no_install, no_lint),
        Task::Bench(args) => bench::run(&args),
        Task::Interop(args) => interop::main(&args),
        Task::Torture(args) => torture::main(&args),
        Task::Images(args) => images::main(&args),
        Task::ComposeTest(args) => compose::main(&args),
        Task::Lab {
            exercise,
            lang,
            var,
        } => lab(exercise, lang, &var),
        Task::Demo {
            lang,
            step,
            var,
            html,
            serve,
        } => demo(lang, step, &var, html.as_deref(), serve),
    }
}
