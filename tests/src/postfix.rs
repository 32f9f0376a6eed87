//! A real Postfix (Debian's package) as its own instance for a test: every file
//! under one directory — `DIR/etc/{main.cf,master.cf}`, `DIR/spool` (queue and
//! master pid), `DIR/data`, `DIR/log/postfix.log`, `DIR/tls` — its listeners on
//! one loopback address, started with `postfix -c DIR/etc start` and stopped on
//! drop, so nothing in /etc is read for the instance and no process is left behind.
//!
//! Postfix's master must start as root (the tests run as root); it runs its
//! services as the package's `postfix` user, which must be able to reach `DIR`:
//! [`PostfixSpec::start`] opens up the modes on the way there that a temp dir
//! closes (0700).
//!
//! Routing is explicit (`transport_maps` entries `smtp:[ip]:port`,
//! `lmtp:inet:ip:port`, or a `relayhost`): Postfix resolves MX records through
//! the system resolver (/etc/resolv.conf), which cannot be pointed at the test's
//! dev DNS without touching /etc, so an instance never looks up MX records.
//! `postfix -c` works as root with a directory that the default main.cf does not
//! list in `alternate_config_directories`; so do `postqueue -c` and `postsuper -c`.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The Postfix services of master.cf besides the listeners, none chrooted (the
/// queue is outside any chroot Debian prepares).
const SERVICES: &str = "pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

/// Server certificate for the instance's smtpd (STARTTLS offered, `may`).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Its key (PEM); copied into the instance, readable by user postfix.
    pub key: PathBuf,
}

/// How the instance's SMTP/LMTP client uses TLS towards one next hop.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The next hop as it appears in the transport, e.g. `[127.60.0.3]:2525`.
    pub next_hop: String,
    /// The name its certificate must carry (checked against `ca`), e.g.
    /// `mail.lyon.test`.
    pub name: String,
}

/// What to write into one instance's main.cf and master.cf.
#[derive(Debug, Clone)]
pub struct PostfixSpec {
    /// The instance's directory (created; must not hold another instance).
    pub dir: PathBuf,
    /// The address every listener and the SMTP/LMTP clients bind to.
    pub ip: Ipv4Addr,
    pub myhostname: String,
    /// `myorigin`/`mydomain`.
    pub mydomain: String,
    /// SMTP listeners on `ip`: (port, extra `-o` options), e.g. a port-25
    /// service with no options, a submission service with
    /// `smtpd_client_restrictions=permit_mynetworks,reject`.
    pub listeners: Vec<(u16, Vec<String>)>,
    /// `mynetworks`: clients that may relay to any domain.
    pub mynetworks: Vec<String>,
    /// `transport_maps` entries, (domain, transport): each domain is also a
    /// `relay_domains` entry, so mail for it is accepted from anyone and sent on
    /// by that transport: `smtp:[127.60.0.3]:2525`, `lmtp:inet:127.60.0.3:2400`.
    pub routes: Vec<(String, String)>,
    /// `relayhost` for every other domain, e.g. `[127.60.0.2]:2525`.
    pub relayhost: Option<String>,
    pub server_tls: Option<ServerTls>,
    /// CA bundle the SMTP/LMTP clients trust (copied into the instance).
    pub client_ca: Option<PathBuf>,
    /// `smtp_tls_security_level` for hops not in `client_tls`: `may` by default.
    pub client_tls_level: String,
    /// Hops whose certificate is verified (`secure`, with a name to match).
    pub client_tls: Vec<ClientTls>,
    /// More main.cf lines, written last (they override the above).
    pub extra: Vec<String>,
}

impl PostfixSpec {
    /// An instance in `dir` listening on `ip`, nothing configured yet.
    pub fn new(dir: impl Into<PathBuf>, ip: Ipv4Addr, myhostname: &str) -> Self {
        let mydomain = myhostname
            .split_once('.')
            .map_or(myhostname, |(_, d)| d)
            .to_owned();
        Self {
            dir: dir.into(),
            ip,
            myhostname: myhostname.to_owned(),
            mydomain,
            listeners: Vec::new(),
            mynetworks: vec![format!("{ip}/32")],
            routes: Vec::new(),
            relayhost: None,
            server_tls: None,
            client_ca: None,
            client_tls_level: "may".to_owned(),
            client_tls: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A plain SMTP service (port 25's role) on `port`: relays for
    /// `mynetworks`, takes mail for the routed domains from anyone.
    pub fn smtp(mut self, port: u16) -> Self {
        self.listeners.push((port, Vec::new()));
        self
    }

    /// A submission service on `port` that takes mail from `mynetworks` only
    /// (no SASL: Postfix's SASL needs a Dovecot auth service) and relays it.
    pub fn submission(mut self, port: u16) -> Self {
        self.listeners.push((
            port,
            vec![
                "smtpd_client_restrictions=permit_mynetworks,reject".into(),
                "smtpd_relay_restrictions=permit_mynetworks,reject".into(),
            ],
        ));
        self
    }

    pub fn mynetworks(mut self, nets: &[&str]) -> Self {
        self.mynetworks = nets.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Mail for `domain` goes to `transport` (`smtp:[ip]:port`, `lmtp:inet:ip:port`).
    pub fn route(mut self, domain: &str, transport: &str) -> Self {
        self.routes.push((domain.to_owned(), transport.to_owned()));
        self
    }

    pub fn relayhost(mut self, next_hop: &str) -> Self {
        self.relayhost = Some(next_hop.to_owned());
        self
    }

    /// Offer STARTTLS with this certificate and key.
    pub fn server_tls(mut self, cert: &Path, key: &Path) -> Self {
        self.server_tls = Some(ServerTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
        });
        self
    }

    /// Trust `ca` and require TLS with a certificate for `name` from `next_hop`
    /// (as written in a route or the relayhost, e.g. `[127.60.0.3]:2525`).
    pub fn verify_tls(mut self, ca: &Path, next_hop: &str, name: &str) -> Self {
        self.client_ca = Some(ca.to_owned());
        self.client_tls.push(ClientTls {
            next_hop: next_hop.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_owned());
        self
    }

    fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// Write the instance's files (a fresh `dir`).
    pub fn prepare(&self) -> anyhow::Result<()> {
        let dir = &self.dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        for sub in ["etc", "spool", "data", "log", "tls"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        open_up(dir)?;
        chown(&dir.join("data"), "postfix")?;
        let d = dir.display();
        let ip = self.ip;
        let mut main = format!(
            "compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {host}
mydomain = {domain}
myorigin = $mydomain
mydestination =
# Postfix wants its interfaces on a configured address; the listeners in
# master.cf name {ip} themselves.
inet_interfaces = loopback-only
inet_protocols = ipv4
smtp_bind_address = {ip}
lmtp_bind_address = {ip}
mynetworks = {nets}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file_prefixes = {d}/log
maillog_file = {d}/log/postfix.log
smtpd_banner = $myhostname ESMTP $mail_name
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
# A test wants a refusal at once, and a failed delivery retried soon.
soft_bounce = no
minimal_backoff_time = 5s
maximal_backoff_time = 10s
queue_run_delay = 5s
smtp_tls_security_level = {level}
lmtp_tls_security_level = none
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
",
            host = self.myhostname,
            domain = self.mydomain,
            nets = self.mynetworks.join(", "),
            level = self.client_tls_level,
        );
        if !self.routes.is_empty() {
            let domains: Vec<&str> = self.routes.iter().map(|(d, _)| d.as_str()).collect();
            let map: Vec<String> = self
                .routes
                .iter()
                .map(|(d, t)| format!("{d}={t}"))
                .collect();
            main.push_str(&format!(
                "relay_domains = {}\ntransport_maps = inline:{{ {} }}\n",
                domains.join(", "),
                map.join(", ")
            ));
        } else {
            main.push_str("relay_domains =\n");
        }
        if let Some(hop) = &self.relayhost {
            main.push_str(&format!("relayhost = {hop}\n"));
        }
        if let Some(tls) = &self.server_tls {
            // smtpd reads the key after dropping privileges: a copy for user postfix.
            let cert = dir.join("tls/cert.pem");
            let key = dir.join("tls/key.pem");
            std::fs::copy(&tls.cert, &cert)
                .with_context(|| format!("copying {}", tls.cert.display()))?;
            std::fs::copy(&tls.key, &key)
                .with_context(|| format!("copying {}", tls.key.display()))?;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            chown(&key, "postfix")?;
            main.push_str(&format!(
                "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(ca) = &self.client_ca {
            let copy = dir.join("tls/ca.pem");
            std::fs::copy(ca, &copy).with_context(|| format!("copying {}", ca.display()))?;
            main.push_str(&format!("smtp_tls_CAfile = {}\n", copy.display()));
        }
        if !self.client_tls.is_empty() {
            let policies: Vec<String> = self
                .client_tls
                .iter()
                .map(|c| format!("{{ {} = secure match={} }}", c.next_hop, c.name))
                .collect();
            main.push_str(&format!(
                "smtp_tls_policy_maps = inline:{{ {} }}\n",
                policies.join(", ")
            ));
        }
        for line in &self.extra {
            main.push_str(line);
            main.push('\n');
        }
        std::fs::write(self.etc().join("main.cf"), main)?;
        let mut master = String::new();
        for (port, opts) in &self.listeners {
            master.push_str(&format!("{ip}:{port} inet n - n - - smtpd\n"));
            for o in opts {
                master.push_str(&format!("  -o {o}\n"));
            }
        }
        master.push_str(SERVICES);
        std::fs::write(self.etc().join("master.cf"), master)?;
        Ok(())
    }

    /// Write the files, start the instance and wait until every listener
    /// answers; a Postfix that does not start fails with its log.
    pub fn start(&self) -> anyhow::Result<Postfix> {
        self.prepare()?;
        let out = Command::new("postfix")
            .arg("-c")
            .arg(self.etc())
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .context("starting postfix (Debian package postfix)")?;
        let mut me = Postfix {
            spec: self.clone(),
            running: true,
        };
        if !out.status.success() {
            // `start` may have left a master behind before failing.
            let _ = me.stop();
            bail!(
                "postfix -c {} start failed: {}{}\n{}",
                self.etc().display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                me.log()
            );
        }
        for (port, _) in &self.listeners {
            let addr = SocketAddr::from((self.ip, *port));
            if let Err(e) = wait_port(addr, Duration::from_secs(30)) {
                bail!("postfix did not start: {e}\n{}", me.log());
            }
        }
        Ok(me)
    }
}

/// A running instance; dropping it stops it.
pub struct Postfix {
    pub spec: PostfixSpec,
    running: bool,
}

impl Postfix {
    /// The instance's config directory (for `postfix -c`, `postqueue -c`, …).
    pub fn config_dir(&self) -> PathBuf {
        self.spec.etc()
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.dir.join("log/postfix.log")).unwrap_or_default()
    }

    /// `postqueue -p`: the queue listing (`Mail queue is empty` when empty).
    pub fn queue(&self) -> String {
        Command::new("postqueue")
            .arg("-c")
            .arg(self.config_dir())
            .arg("-p")
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|e| format!("postqueue: {e}"))
    }

    /// Wait until the queue is empty (everything delivered or bounced).
    pub fn wait_queue_empty(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.queue().contains("Mail queue is empty"))
    }

    /// Wait until a log line contains every one of `words`; that line.
    pub fn wait_log(&self, words: &[&str], timeout: Duration) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .log()
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
                .map(str::to_owned);
            found.is_some()
        });
        found
    }

    /// Hand a message to `sendmail -C DIR` (Postfix's local submission).
    pub fn sendmail(&self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(self.config_dir())
            .args(["-f", from, "-i", "--", to])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running Postfix's sendmail")?;
        child.stdin.take().context("no stdin")?.write_all(message)?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "sendmail failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.spec.dir.join("spool/pid/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Stop the instance: `postfix stop`, then wait for the master to go; a
    /// master still there after 10 s is killed by its pid file. What did not
    /// stop cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        if !std::mem::take(&mut self.running) {
            return Vec::new();
        }
        let mut unclean = Vec::new();
        let pid = self.master_pid();
        let ok = Command::new("postfix")
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            unclean.push("postfix stop failed".to_owned());
        }
        if let Some(pid) = pid {
            let alive = || Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
            if !wait_until(Duration::from_secs(10), || !alive()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                unclean.push(format!("postfix master {pid} still running, killed"));
            }
        }
        unclean
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    condition()
}

/// Let user postfix reach `dir`: every ancestor that others cannot search
/// (a temp dir is 0700) gets o+x, and `dir` itself 0755.
fn open_up(dir: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for a in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(a)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o001 == 0 {
            std::fs::set_permissions(a, std::fs::Permissions::from_mode(mode | 0o011))
                .with_context(|| format!("opening up {}", a.display()))?;
        }
    }
    Ok(())
}

fn uid_gid(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, user]).output()?;
        if !out.status.success() {
            bail!("no system user {user:?} (the postfix package creates it)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

fn chown(path: &Path, user: &str) -> anyhow::Result<()> {
    let (uid, gid) = uid_gid(user)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {user} {}", path.display()))
}

/// Wait until something accepts TCP connections on `addr`.
pub fn wait_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing listens on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
