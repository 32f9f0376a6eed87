//! Dovecot instances for the interop tests: a real Dovecot from Debian's packages
//! (`dovecot -F -c FILE`) with its config, base_dir, logs, indexes (or those in
//! the Maildir, Dovecot's default) and passwd-file under one directory of the
//! test, listening for IMAP, IMAPS, POP3, POP3S and LMTP
//! on one loopback address, with a certificate from the stack's dev CA. Mail is a
//! Maildir++ tree at `<maildir>/<domain>/<localpart>/` (what facteur's MDA writes
//! in Maildir mode), read and written as Debian's `mail` user.
//!
//! The master runs under a small `sh` guard, in a process group of its own, that
//! holds a pipe from the test: when the test drops the [`Dovecot`] (or panics,
//! or dies), the pipe closes and the guard stops the master; [`Dovecot::stop`]
//! then waits until no process of the group is left (and kills what is).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::stack::{Ports, StackSpec, dev_password};

/// The user Dovecot reads and files mail as (Debian's `mail`).
pub const MAIL_USER: &str = "mail";

/// Debian packages a Dovecot instance needs, each with a check that it is there.
pub const PACKAGES: &[(&str, &str)] = &[
    ("test -x /usr/sbin/dovecot", "dovecot-core"),
    ("test -x /usr/lib/dovecot/imap", "dovecot-imapd"),
    ("test -x /usr/lib/dovecot/pop3", "dovecot-pop3d"),
    ("test -x /usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
];

/// How long Dovecot may take to listen on every port.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What one Dovecot instance is: where its files go, where it listens, who may log in.
#[derive(Debug, Clone)]
pub struct DovecotSpec {
    /// Config, `run/` (base_dir), `log/`, `index/`, `home/` and `passwd` go here.
    pub dir: PathBuf,
    /// The loopback address every listener binds.
    pub ip: Ipv4Addr,
    /// `imap`, `imaps`, `pop3`, `pop3s` and `lmtp` are used (the others are ignored).
    pub ports: Ports,
    /// The dev CA's directory (`var/tls`): a certificate for `cert_name` and `ip`
    /// is made there (or kept), chaining to its `ca.pem`.
    pub tls_dir: PathBuf,
    pub cert_name: String,
    /// The accounts (full addresses; Dovecot's user name is the address).
    pub users: Vec<String>,
    pub password: String,
    /// The Maildir++ root: `mail_location = maildir:<maildir>/%d/%n`.
    pub maildir: PathBuf,
    /// Keep Dovecot's indexes (`dovecot.index*`, `dovecot.list.index*`) inside
    /// the Maildir, as Dovecot does by default, instead of under `dir/index`.
    pub indexes_in_maildir: bool,
}

impl DovecotSpec {
    /// A Dovecot of its own on `ip` with the stack's standard ports, the dev
    /// users of every domain of `stack` and the dev password, its certificate
    /// (`cert_name`) from the stack's dev CA, its Maildir at `dir/mail`.
    pub fn new(dir: PathBuf, ip: Ipv4Addr, stack: &StackSpec, cert_name: &str) -> Self {
        let users = stack
            .domains
            .iter()
            .flat_map(|d| stack.users(&d.name))
            .collect();
        Self {
            maildir: dir.join("mail"),
            dir,
            ip,
            ports: stack.ports.clone(),
            tls_dir: stack.var.join("tls"),
            cert_name: cert_name.to_owned(),
            users,
            password: dev_password(),
            indexes_in_maildir: false,
        }
    }

    /// Dovecot in place of `domain`'s MDA and MAA: on the domain's address and
    /// the stack's ports, with the domain's certificate and users, its files in
    /// `var/<domain>/dovecot`. Swap those agents out of the stack
    /// ([`StackSpec::swap_out`]) so the ports are free.
    pub fn for_domain(stack: &StackSpec, domain: &str) -> anyhow::Result<Self> {
        let d = stack
            .domain(domain)
            .with_context(|| format!("no domain {domain} in the stack"))?;
        let dir = stack.var.join(domain).join("dovecot");
        Ok(Self {
            maildir: dir.join("mail"),
            dir,
            ip: d.ip,
            ports: stack.ports.clone(),
            tls_dir: stack.var.join("tls"),
            cert_name: domain.to_owned(),
            users: stack.users(domain),
            password: dev_password(),
            indexes_in_maildir: false,
        })
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }

    /// Write the instance's files (config, passwd-file, certificate, directories).
    pub fn prepare(&self) -> anyhow::Result<()> {
        for sub in ["run", "log", "index", "home"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        std::fs::create_dir_all(&self.maildir)?;
        traversable(&self.dir)?;
        traversable(&self.maildir)?;
        for sub in ["index", "home"] {
            chown_tree(&self.dir.join(sub), MAIL_USER)?;
        }
        chown_tree(&self.maildir, MAIL_USER)?;
        let certs = facteur_daemon::devpki::ensure(
            &self.tls_dir,
            &[(&self.cert_name, std::net::IpAddr::V4(self.ip))],
        )?;
        let cert = certs.first().context("no certificate made")?;
        std::fs::write(
            self.dir.join("dovecot.conf"),
            self.config(&cert.cert, &cert.key),
        )?;
        let passwd = self.dir.join("passwd");
        let mut file = std::fs::File::create(&passwd)?;
        for user in &self.users {
            writeln!(file, "{user}:{{ARGON2ID}}{}::::::", hash(&self.password)?)?;
        }
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644))?;
        Ok(())
    }

    fn config(&self, cert: &Path, key: &Path) -> String {
        let d = self.dir.display();
        let m = self.maildir.display();
        let (cert, key) = (cert.display(), key.display());
        let ip = self.ip;
        let p = &self.ports;
        let instance = instance_name();
        let index = if self.indexes_in_maildir {
            String::new()
        } else {
            format!(":INDEX={d}/index/%d/%n")
        };
        let special: String = [
            ("Sent", "\\Sent"),
            ("Drafts", "\\Drafts"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
            ("Archive", "\\Archive"),
        ]
        .iter()
        .map(|(name, role)| {
            format!("  mailbox {name} {{\n    special_use = {role}\n    auto = subscribe\n  }}\n")
        })
        .collect();
        format!(
            "# A test instance of Dovecot (facteur's tests/src/dovecot.rs); nothing outside {d}.
protocols = imap pop3 lmtp
listen = {ip}
base_dir = {d}/run
instance_name = {instance}
log_path = {d}/log/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
mail_location = maildir:{m}/%d/%n{index}
first_valid_uid = 1
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
default_login_user = dovenull
default_internal_user = dovecot
recipient_delimiter =
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
  default_fields = uid={MAIL_USER} gid={MAIL_USER} home={d}/home/%d/%n
}}
# the folders facteur makes (and subscribes) at first login, and its \"/\" separator
namespace inbox {{
  inbox = yes
  separator = /
  mailbox INBOX {{
    auto = subscribe
  }}
{special}}}
service imap-login {{
  inet_listener imap {{
    address = {ip}
    port = {imap}
  }}
  inet_listener imaps {{
    address = {ip}
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {ip}
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = {ip}
    port = {pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {ip}
    port = {lmtp}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
",
            imap = p.imap,
            imaps = p.imaps,
            pop3 = p.pop3,
            pop3s = p.pop3s,
            lmtp = p.lmtp,
        )
    }

    /// [`prepare`](Self::prepare), then start Dovecot and wait until every
    /// listener accepts connections; a Dovecot that does not start fails with its log.
    pub fn start(&self) -> anyhow::Result<Dovecot> {
        for (check, package) in PACKAGES {
            let ok = Command::new("sh")
                .args(["-c", check])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                bail!("`{check}` failed: install the Debian package {package}");
            }
        }
        self.prepare()?;
        let conf = self.dir.join("dovecot.conf");
        let log = std::fs::File::create(self.dir.join("log/stderr.log"))?;
        // The guard: Dovecot's master in the background (its stdin is /dev/null),
        // stopped with SIGTERM as soon as the test's end of the pipe closes.
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg("dovecot -F -c \"$0\" & read _ignored; kill -TERM $! 2>/dev/null; wait $!")
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .context("starting sh for dovecot")?;
        let pipe = guard.stdin.take();
        let mut me = Dovecot {
            spec: self.clone(),
            group: Some(guard.id()),
            guard: Some(guard),
            pipe,
        };
        let p = &self.ports;
        for port in [p.imap, p.imaps, p.pop3, p.pop3s, p.lmtp] {
            if let Err(e) = wait_port(self.addr(port), READY_TIMEOUT) {
                let logs = me.logs();
                me.stop();
                bail!("Dovecot did not start: {e}\n{logs}");
            }
        }
        Ok(me)
    }
}

/// A running Dovecot; dropping it stops every process of the instance.
pub struct Dovecot {
    pub spec: DovecotSpec,
    guard: Option<Child>,
    pipe: Option<ChildStdin>,
    /// The process group of the guard and of every Dovecot process.
    group: Option<u32>,
}

impl Dovecot {
    pub fn addr(&self, port: u16) -> SocketAddr {
        self.spec.addr(port)
    }

    /// The master's process id (from `base_dir/master.pid`).
    pub fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.spec.dir.join("run/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Dovecot's log and the master's stderr (for a failure report).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["dovecot.log", "stderr.log"] {
            let path = self.spec.dir.join("log").join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push_str(&format!("===== {}\n{text}\n", path.display()));
        }
        out
    }

    /// The processes of this instance still running: the guard, the master and
    /// every process it started, all in the guard's own process group (Dovecot
    /// in the foreground never leaves it).
    pub fn processes(&self) -> Vec<u32> {
        self.group.map(group_members).unwrap_or_default()
    }

    /// Stop Dovecot (SIGTERM to the master through the guard) and wait until no
    /// process of the instance is left; what did not stop cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        let master = self.master_pid();
        drop(self.pipe.take());
        if let Some(mut guard) = self.guard.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match guard.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        if let Some(pid) = master {
                            kill("-KILL", &pid.to_string());
                        }
                        let _ = guard.kill();
                        let _ = guard.wait();
                        unclean.push("dovecot still running after SIGTERM, killed".to_owned());
                        break;
                    }
                }
            }
        }
        // The master's children notice it is gone and exit on their own.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                if let Some(group) = self.group {
                    kill("-KILL", &format!("-{group}"));
                }
                unclean.push(format!("dovecot processes left behind, killed: {left:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unclean
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `kill SIGNAL TARGET` (a pid, or `-PGID` for a whole process group).
fn kill(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The processes whose process group is `group` (from `/proc/<pid>/stat`,
/// whose fields after the parenthesised command name are state, ppid, pgrp).
fn group_members(group: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(group) {
            out.push(pid);
        }
    }
    out
}

/// A name no other instance on the machine has (process titles, logs).
fn instance_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "facteur-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An argon2id hash with the argon2 crate's defaults (what facteur's MDA uses).
fn hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(phc.to_string())
}

fn uid_gid(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, user]).output()?;
        if !out.status.success() {
            bail!("no system user {user:?} (Debian's base system has it)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// Give `path` and everything under it to `user` (Dovecot renames files and
/// writes its uidlist beside what facteur's MDA filed, as `mail`).
pub fn chown_tree(path: &Path, user: &str) -> anyhow::Result<()> {
    let (uid, gid) = uid_gid(user)?;
    fn walk(p: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", p.display()))?;
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    walk(path, uid, gid)
}

/// Let Dovecot's unprivileged processes reach `path`: it and every directory
/// above it inside the system's temp directory get the search bit for all (a
/// test's temp dir is 0700).
fn traversable(path: &Path) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir();
    let mut dirs = vec![path.to_owned()];
    if path.starts_with(&tmp) {
        dirs.extend(
            path.ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&tmp) && *a != tmp)
                .map(Path::to_path_buf),
        );
    }
    for d in dirs {
        let mode = std::fs::metadata(&d)?.permissions().mode();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o711))?;
    }
    Ok(())
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
