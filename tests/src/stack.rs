//! Layout, configuration and processes of the dev stack (see the design guide's
//! "Dev and teaching contract" for the addresses and ports).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// The dev users and their password (`$FACTEUR_DEV_PASSWORD` or `facteur`).
pub fn dev_users(domain: &str) -> Vec<String> {
    match domain {
        "paris.test" => vec!["pierre@paris.test".into(), "jacques@paris.test".into()],
        "lyon.test" => vec!["andre@lyon.test".into()],
        _ => Vec::new(),
    }
}

pub fn dev_password() -> String {
    std::env::var("FACTEUR_DEV_PASSWORD").unwrap_or_else(|_| "facteur".into())
}

/// One mail domain of the stack and the loopback address its agents listen on.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// Ports, ×10 of the standard ones so no root is needed.
#[derive(Debug, Clone)]
pub struct Ports {
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub imap: u16,
    pub imaps: u16,
    pub lmtp: u16,
    pub mta_grpc: u16,
    pub mda_grpc: u16,
    pub dns: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            smtp: 2525,
            submission: 5870,
            submissions: 4650,
            pop3: 1100,
            pop3s: 9950,
            imap: 1430,
            imaps: 9930,
            lmtp: 2400,
            mta_grpc: 7025,
            mda_grpc: 7024,
            dns: 5353,
        }
    }
}

/// Everything needed to lay out and start a stack.
#[derive(Debug, Clone)]
pub struct StackSpec {
    /// State directory (`./var` for `xtask up`, a temp dir for tests).
    pub var: PathBuf,
    /// Where the `facteur-*` binaries are.
    pub bin_dir: PathBuf,
    pub domains: Vec<Domain>,
    /// The dev DNS server's address.
    pub dns_ip: Ipv4Addr,
    pub ports: Ports,
    /// Queue retry delays for the MTAs (short in tests).
    pub retry_secs: Vec<u64>,
    /// The MTAs' free-space reserve (`queue.min_free_bytes`); `None`: the default.
    pub mta_min_free_bytes: Option<u64>,
    /// Extra settings per agent, passed as `--set KEY=VALUE` to every domain's
    /// instance of it: `("mda", "auth.throttle.window_secs=5")`, or to one
    /// domain's only: `("lyon.test/mta", "transport.…=…")`.
    pub sets: Vec<(String, String)>,
    /// Agents not started, `(domain, agent)`: the interop tests put Postfix or
    /// Dovecot in their place, on the same address and ports.
    pub swapped: Vec<(String, String)>,
    /// More accounts (full addresses) beside the dev users, added to the MDA of
    /// their domain with the dev password (the bench's users).
    pub extra_users: Vec<String>,
    /// `(max_connections, max_per_ip)` written into every listener's config
    /// instead of the defaults (the bench opens thousands of sessions).
    pub listener_limits: Option<(usize, usize)>,
    /// Environment variables for every process (after the launcher's
    /// `FACTEUR_LOG`, so `("FACTEUR_LOG", "debug")` wins).
    pub env: Vec<(String, String)>,
    /// Every agent keeps its connections' transcripts in
    /// `var/transcripts/<domain>-<agent>.jsonl` (on in the dev stack, for
    /// `cargo xtask demo` and `facteur-mua trace`; the bench turns it off).
    pub transcripts: bool,
    /// Zones the dev DNS serves beside the domains', with no agents behind
    /// them (`evil.test` → an internal address, for the outbound policy test).
    pub extra_zones: Vec<Domain>,
}

impl StackSpec {
    /// The dev stack of the design guide on `127.<net>.0.x` (net 0 is the one
    /// `xtask up` uses; tests take their own `net` so they can run side by side).
    pub fn dev(var: PathBuf, bin_dir: PathBuf, net: u8) -> Self {
        Self {
            var,
            bin_dir,
            domains: vec![
                Domain {
                    name: "paris.test".into(),
                    ip: Ipv4Addr::new(127, net, 0, 2),
                },
                Domain {
                    name: "lyon.test".into(),
                    ip: Ipv4Addr::new(127, net, 0, 3),
                },
            ],
            dns_ip: Ipv4Addr::new(127, net, 0, 1),
            ports: Ports::default(),
            retry_secs: vec![60, 300, 900, 3600],
            mta_min_free_bytes: None,
            sets: Vec::new(),
            swapped: Vec::new(),
            extra_users: Vec::new(),
            listener_limits: None,
            env: Vec::new(),
            transcripts: true,
            extra_zones: Vec::new(),
        }
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    pub fn ca(&self) -> PathBuf {
        self.var.join("tls").join("ca.pem")
    }

    /// Put every gRPC link of the stack under mutual TLS: a deployment CA in
    /// `var/grpc-tls` (apart from the dev CA of `var/tls`), one certificate per
    /// agent (`<domain>-<agent>`, valid for its domain's IP), `[grpc_tls]` in every
    /// agent and `https://` URLs, all as `sets`. Returns the CA's directory.
    pub fn grpc_mtls(&mut self) -> anyhow::Result<PathBuf> {
        let dir = self.var.join("grpc-tls");
        let ca = facteur_daemon::devpki::Ca::ensure(&dir)?;
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let (mta, mda) = (self.ports.mta_grpc, self.ports.mda_grpc);
        for d in self.domains.clone() {
            let ip = d.ip;
            for agent in ["mda", "mta", "msa", "maa"] {
                let name = format!("{}-{agent}", d.name);
                let sans = facteur_daemon::devpki::agent_sans(&name, &[ip.to_string()]);
                let cert = ca.issue(&name, &sans)?;
                let scoped = format!("{}/{agent}", d.name);
                let mut sets = vec![
                    format!("grpc_tls.ca={}", q(&ca.cert_path())),
                    format!("grpc_tls.cert={}", q(&cert.cert)),
                    format!("grpc_tls.key={}", q(&cert.key)),
                ];
                match agent {
                    "mta" => sets.push(format!("mda.url=\"https://{ip}:{mda}\"")),
                    "msa" => {
                        sets.push(format!("mta_url=\"https://{ip}:{mta}\""));
                        sets.push(format!("auth_url=\"https://{ip}:{mda}\""));
                    }
                    "maa" => sets.push(format!("mda_url=\"https://{ip}:{mda}\"")),
                    _ => {}
                }
                self.sets
                    .extend(sets.into_iter().map(|set| (scoped.clone(), set)));
            }
        }
        Ok(dir)
    }

    /// An agent's state directory (`var/<domain>/<agent>`; the MTA's spool is
    /// its `spool/`).
    pub fn agent_dir(&self, domain: &str, agent: &str) -> PathBuf {
        self.var.join(domain).join(agent)
    }

    /// Where an agent's transcripts go (when [`StackSpec::transcripts`] is on).
    pub fn transcript_file(&self, domain: &str, agent: &str) -> PathBuf {
        self.var
            .join("transcripts")
            .join(format!("{domain}-{agent}.jsonl"))
    }

    /// An agent's config file (`var/<domain>/facteur-<agent>.toml`).
    pub fn config_path(&self, domain: &str, agent: &str) -> PathBuf {
        self.var.join(domain).join(format!("facteur-{agent}.toml"))
    }

    /// Write `var/`: dev CA and certificates, one config per agent, dev users.
    pub fn prepare(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.var.join("log"))?;
        let certs: Vec<(&str, std::net::IpAddr)> = self
            .domains
            .iter()
            .map(|d| (d.name.as_str(), std::net::IpAddr::V4(d.ip)))
            .collect();
        facteur_daemon::devpki::ensure(&self.var.join("tls"), &certs)?;
        for d in &self.domains {
            std::fs::create_dir_all(self.var.join(&d.name))?;
            for (agent, text) in self.configs(d) {
                std::fs::write(self.config_path(&d.name, agent), text)?;
            }
            self.add_users(d)?;
        }
        Ok(())
    }

    /// The accounts of one domain: its dev users, then the extra users.
    pub fn users(&self, domain: &str) -> Vec<String> {
        let suffix = format!("@{domain}");
        let mut users = dev_users(domain);
        users.extend(
            self.extra_users
                .iter()
                .filter(|u| u.ends_with(&suffix))
                .cloned(),
        );
        users
    }

    fn configs(&self, d: &Domain) -> Vec<(&'static str, String)> {
        let p = &self.ports;
        let lim = self
            .listener_limits
            .map(|(all, per_ip)| format!("max_connections = {all}\nmax_per_ip = {per_ip}\n"))
            .unwrap_or_default();
        let (ip, name) = (d.ip, &d.name);
        let host = format!("mail.{name}");
        let dir = self.var.join(name);
        let tls = self.var.join("tls");
        let cert = tls.join(format!("{name}.pem"));
        let key = tls.join(format!("{name}-key.pem"));
        let retry = self
            .retry_secs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let min_free = self
            .mta_min_free_bytes
            .map(|n| format!("min_free_bytes = {n}\n"))
            .unwrap_or_default();
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let transcript = |agent: &str| {
            if self.transcripts {
                let file = self.transcript_file(name, agent);
                format!("\n[transcript]\nenabled = true\nfile = {}\n", q(&file))
            } else {
                String::new()
            }
        };
        let mut configs = vec![
            (
                "mda",
                format!(
                    "hostname = \"{host}\"\ndata_dir = {}\n\n[grpc]\nlisten = \"{ip}:{}\"\n\n[lmtp]\nlisten = \"{ip}:{}\"\n{lim}\n[aliases]\n\"postmaster@{name}\" = \"{}\"\n",
                    q(&dir.join("mda")),
                    p.mda_grpc,
                    p.lmtp,
                    self.users(name).first().cloned().unwrap_or_default(),
                ),
            ),
            (
                "mta",
                format!(
                    "hostname = \"{host}\"\nlocal_domains = [\"{name}\"]\ndata_dir = {}\n\n[smtp]\nlisten = \"{ip}:{}\"\n{lim}\n[smtp.tls]\ncert = {}\nkey = {}\n\n[grpc]\nlisten = \"{ip}:{}\"\n\n[mda]\nurl = \"http://{ip}:{}\"\n\n[dns]\nnameservers = [\"{}:{}\"]\n\n[relay]\nport = {}\ntls_ca = {}\nsource_address = \"{ip}\"\n# The dev domains live on loopback.\nallow_networks = [\"127.0.0.0/8\", \"::1/128\"]\n\n[queue]\nretry_secs = [{retry}]\n{min_free}",
                    q(&dir.join("mta")),
                    p.smtp,
                    q(&cert),
                    q(&key),
                    p.mta_grpc,
                    p.mda_grpc,
                    self.dns_ip,
                    p.dns,
                    p.smtp,
                    q(&tls.join("ca.pem")),
                ),
            ),
            (
                "msa",
                format!(
                    "hostname = \"{host}\"\nsubmission_listen = \"{ip}:{}\"\nsubmissions_listen = \"{ip}:{}\"\nmta_url = \"http://{ip}:{}\"\nauth_url = \"http://{ip}:{}\"\nsource_address = \"{ip}\"\n{lim}\n[tls]\ncert = {}\nkey = {}\n",
                    p.submission,
                    p.submissions,
                    p.mta_grpc,
                    p.mda_grpc,
                    q(&cert),
                    q(&key),
                ),
            ),
            (
                "maa",
                format!(
                    "hostname = \"{host}\"\nmda_url = \"http://{ip}:{}\"\n\n[pop3]\nlisten = \"{ip}:{}\"\ntls_listen = \"{ip}:{}\"\n{lim}\n[imap]\nlisten = \"{ip}:{}\"\ntls_listen = \"{ip}:{}\"\n{lim}\n[tls]\ncert = {}\nkey = {}\n",
                    p.mda_grpc,
                    p.pop3,
                    p.pop3s,
                    p.imap,
                    p.imaps,
                    q(&cert),
                    q(&key),
                ),
            ),
        ];
        for (agent, config) in &mut configs {
            config.push_str(&transcript(agent));
        }
        configs
    }

    fn bin(&self, agent: &str) -> PathBuf {
        self.bin_dir.join(format!("facteur-{agent}"))
    }

    fn add_users(&self, d: &Domain) -> anyhow::Result<()> {
        let config = self.config_path(&d.name, "mda");
        let existing = Command::new(self.bin("mda"))
            .arg("--config")
            .arg(&config)
            .args(["user", "list"])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.bin("mda").display()))?;
        if !existing.status.success() {
            bail!("facteur-mda user list failed for {}", d.name);
        }
        let existing = String::from_utf8_lossy(&existing.stdout).into_owned();
        for user in self.users(&d.name) {
            if existing.lines().any(|l| l.trim() == user) {
                continue;
            }
            let out = Command::new(self.bin("mda"))
                .arg("--config")
                .arg(&config)
                .args(["user", "add", &user])
                .env("FACTEUR_PASSWORD", dev_password())
                .stdout(Stdio::null())
                .output()?;
            if !out.status.success() {
                bail!(
                    "adding {user} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }

    /// Leave `agent` of `domain` out of [`StackSpec::start`] (another server takes its place).
    pub fn swap_out(&mut self, domain: &str, agent: &str) -> &mut Self {
        self.swapped.push((domain.to_owned(), agent.to_owned()));
        self
    }

    pub fn is_swapped(&self, domain: &str, agent: &str) -> bool {
        self.swapped.iter().any(|(d, a)| d == domain && a == agent)
    }

    /// The dev DNS serving every domain but `without`.
    fn dns_command(&self, without: &[&str]) -> Command {
        let zones: Vec<String> = self
            .domains
            .iter()
            .chain(&self.extra_zones)
            .filter(|d| !without.contains(&d.name.as_str()))
            .flat_map(|d| ["--zone".to_owned(), format!("{}={}", d.name, d.ip)])
            .collect();
        let mut dns = Command::new(self.bin("devdns"));
        dns.arg("--listen")
            .arg(format!("{}:{}", self.dns_ip, self.ports.dns))
            .args(&zones);
        dns
    }

    /// Start every process and wait for its ready line.
    pub fn start(&self) -> anyhow::Result<Stack> {
        let mut stack = Stack {
            spec: self.clone(),
            procs: Vec::new(),
        };
        stack.spawn("dns", "devdns", self.dns_command(&[]))?;
        for d in &self.domains {
            for agent in ["mda", "mta", "msa", "maa"] {
                if self.is_swapped(&d.name, agent) {
                    continue;
                }
                stack.start_agent(&d.name, agent)?;
            }
        }
        Ok(stack)
    }
}

/// One running process of the stack.
struct Proc {
    domain: String,
    agent: String,
    child: Child,
}

/// The running stack; dropping it stops every process.
pub struct Stack {
    pub spec: StackSpec,
    procs: Vec<Proc>,
}

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Stack {
    fn spawn(&mut self, domain: &str, agent: &str, mut cmd: Command) -> anyhow::Result<()> {
        let log = self
            .spec
            .var
            .join("log")
            .join(format!("{domain}-{agent}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?))
            .env(
                "FACTEUR_LOG",
                std::env::var("FACTEUR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .with_context(|| format!("starting {agent}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        let mut copy = log_file;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(" ready") {
                    let _ = tx.send(line.clone());
                }
                let _ = writeln!(copy, "{line}");
            }
        });
        let name = format!("{domain} {agent}");
        self.procs.push(Proc {
            domain: domain.to_owned(),
            agent: agent.to_owned(),
            child,
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => {
                eprintln!("  {name:<18} {line}");
                Ok(())
            }
            Err(_) => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{name} did not become ready; its log ({}):\n{}",
                    log.display(),
                    tail.join("\n")
                )
            }
        }
    }

    fn start_agent(&mut self, domain: &str, agent: &str) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.spec.bin(agent));
        cmd.arg("--config")
            .arg(self.spec.config_path(domain, agent));
        let scoped = format!("{domain}/{agent}");
        for (_, set) in self
            .spec
            .sets
            .iter()
            .filter(|(a, _)| a == agent || *a == scoped)
        {
            cmd.arg("--set").arg(set);
        }
        self.spawn(domain, agent, cmd)
    }

    fn index(&self, domain: &str, agent: &str) -> anyhow::Result<usize> {
        self.procs
            .iter()
            .position(|p| p.domain == domain && p.agent == agent)
            .with_context(|| format!("no {agent} for {domain}"))
    }

    /// The process id of one running agent.
    pub fn pid(&self, domain: &str, agent: &str) -> anyhow::Result<u32> {
        Ok(self.procs[self.index(domain, agent)?].child.id())
    }

    /// The agents that exited on their own since the last look (a crash: nothing
    /// but `kill`/`stop` ends them), each as (domain, agent, exit status). They
    /// are dropped from the stack, so `restart` can start them again.
    pub fn exited(&mut self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.procs.len() {
            match self.procs[i].child.try_wait() {
                Ok(Some(status)) => {
                    let p = self.procs.remove(i);
                    out.push((p.domain, p.agent, status.to_string()));
                }
                _ => i += 1,
            }
        }
        out
    }

    /// `kill -9` one agent (no chance to flush anything).
    pub fn kill(&mut self, domain: &str, agent: &str) -> anyhow::Result<()> {
        let i = self.index(domain, agent)?;
        let mut p = self.procs.remove(i);
        p.child.kill()?;
        p.child.wait()?;
        Ok(())
    }

    /// Restart the dev DNS serving every domain but `without` (`&[]`: all of them
    /// again): `cargo xtask lab no-mx` takes lyon.test's records away.
    pub fn restart_dns(&mut self, without: &[&str]) -> anyhow::Result<()> {
        if self.index("dns", "devdns").is_ok() {
            self.kill("dns", "devdns")?;
        }
        let cmd = self.spec.dns_command(without);
        self.spawn("dns", "devdns", cmd)
    }

    /// Start an agent again (after `kill`).
    pub fn restart(&mut self, domain: &str, agent: &str) -> anyhow::Result<()> {
        self.start_agent(domain, agent)
    }

    /// The log of one agent, for a failed test's report.
    pub fn log(&self, domain: &str, agent: &str) -> String {
        let path = self
            .spec
            .var
            .join("log")
            .join(format!("{domain}-{agent}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Every log in `var/log`, concatenated (printed when a test fails).
    pub fn all_logs(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.spec.var.join("log"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut out = String::new();
        for f in files {
            out.push_str(&format!(
                "===== {}\n{}\n",
                f.display(),
                std::fs::read_to_string(&f).unwrap_or_default()
            ));
        }
        out
    }

    /// Wait for `condition` to hold, polling; false on timeout.
    pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        condition()
    }

    /// Stop every process with SIGTERM (agents first, DNS last) and wait; a process
    /// still running after 10 s is killed. Returns the processes that did not stop
    /// cleanly (exit status 0 of their own accord), with how they ended.
    pub fn stop(&mut self) -> Vec<String> {
        for p in self.procs.iter().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &p.child.id().to_string()])
                .status();
        }
        let mut unclean = Vec::new();
        for mut p in self.procs.drain(..).rev() {
            let name = format!("{} {}", p.domain, p.agent);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match p.child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            unclean.push(format!("{name}: {status}"));
                        }
                        break;
                    }
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        unclean.push(format!("{name}: still running after SIGTERM, killed"));
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
