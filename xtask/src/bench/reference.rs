//! The reference pair the bench compares facteur with: Postfix (port 25, and
//! submission with STARTTLS and SASL through Dovecot) delivering over LMTP into
//! Dovecot (IMAP over implicit TLS, LMTP, a passwd-file with argon2id hashes and
//! an auth cache). Both run from Debian's packages as their own instances on
//! 127.0.0.20 with every file under one directory: `postfix -c DIR/postfix`,
//! `dovecot -F -c DIR/dovecot.conf`. Their masters start as root (Postfix
//! refuses anything else) and run every service as the packages' unprivileged
//! users (postfix, dovenull, dovecot; mail is filed as `mail`).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The reference's loopback address (the dev stack uses 127.0.0.1-3).
pub(crate) const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 20);
pub(crate) const SMTP_PORT: u16 = 2525;
pub(crate) const SUBMISSION_PORT: u16 = 5870;
pub(crate) const IMAPS_PORT: u16 = 9930;
pub(crate) const LMTP_PORT: u16 = 2400;
/// Dovecot's auth service for Postfix's SASL (`smtpd_sasl_type = dovecot`).
const AUTH_PORT: u16 = 12345;
/// IMAP sessions Dovecot allows at once (one imap and one imap-login process each).
const MAX_SESSIONS: usize = 11_000;
/// The user Dovecot files mail as (Debian's `mail`, uid 8).
const MAIL_USER: &str = "mail";

/// Debian packages the reference needs, each with a check that it is there.
pub(crate) const PACKAGES: &[(&str, &str)] = &[
    ("test -x /usr/sbin/postfix", "postfix"),
    ("test -x /usr/sbin/smtp-source", "postfix"),
    ("test -x /usr/sbin/dovecot", "dovecot-core"),
    ("test -x /usr/lib/dovecot/imap", "dovecot-imapd"),
    ("test -x /usr/lib/dovecot/pop3", "dovecot-pop3d"),
    ("test -x /usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
];

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((IP, port))
}

/// The running reference; dropping it stops Postfix and Dovecot.
pub(crate) struct Reference {
    pub(crate) dir: PathBuf,
    dovecot: Option<Child>,
    postfix: bool,
}

fn uid_gid(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, user]).output()?;
        if !out.status.success() {
            bail!("no system user {user:?} (installed by Debian's base system)");
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

/// An argon2id hash with the same parameters facteur's MDA uses (the argon2
/// crate's defaults), so a login costs both sides the same.
fn hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(phc.to_string())
}

impl Reference {
    /// Write a fresh `dir`: certificates, Postfix's main.cf and master.cf,
    /// dovecot.conf, the passwd-file for `users` (full addresses).
    pub(crate) fn prepare(dir: &Path, users: &[String], password: &str) -> anyhow::Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        for sub in ["postfix", "spool", "data", "log", "mail", "tls"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        for d in [dir, &dir.join("log")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        chown(&dir.join("data"), "postfix")?;
        chown(&dir.join("mail"), MAIL_USER)?;
        let certs = facteur_daemon::devpki::ensure(
            &dir.join("tls"),
            &[("bench.test", std::net::IpAddr::V4(IP))],
        )?;
        let cert = certs.first().context("no certificate made")?;
        // Postfix's smtpd reads the key after dropping privileges: a bench-only key.
        std::fs::set_permissions(&cert.key, std::fs::Permissions::from_mode(0o644))?;
        let d = dir.display();
        let (cert, key) = (cert.cert.display(), cert.key.display());
        std::fs::write(
            dir.join("postfix/main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.reference.test
mydomain = reference.test
myorigin = reference.test
mydestination =
# Postfix wants its interfaces on a configured address; the listeners in
# master.cf name 127.0.0.20 themselves.
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_bind_address = {IP}
lmtp_bind_address = {IP}
virtual_mailbox_domains = bench.test
virtual_transport = lmtp:inet:{IP}:{LMTP_PORT}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file_prefixes = {d}/log
maillog_file = {d}/log/postfix.log
default_process_limit = 300
smtpd_client_connection_count_limit = 0
message_size_limit = 52428800
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{IP}:{AUTH_PORT}
"
            ),
        )?;
        let services = "pickup unix n - n 60 1 pickup
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
        std::fs::write(
            dir.join("postfix/master.cf"),
            format!(
                "{IP}:{SMTP_PORT} inet n - n - - smtpd
{IP}:{SUBMISSION_PORT} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{services}"
            ),
        )?;
        let conns = 2 * MAX_SESSIONS + 1000;
        std::fs::write(
            dir.join("dovecot.conf"),
            format!(
                "protocols = imap lmtp
listen = {IP}
base_dir = {d}/run
instance_name = facteur-bench-reference
log_path = {d}/log/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%n/Maildir
first_valid_uid = 1
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
default_login_user = dovenull
default_internal_user = dovecot
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 1 hour
passdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={MAIL_USER} gid={MAIL_USER} home={d}/mail/%n allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {IP}
    port = {IMAPS_PORT}
    ssl = yes
  }}
  process_limit = {MAX_SESSIONS}
}}
service imap {{
  process_limit = {MAX_SESSIONS}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {IP}
    port = {LMTP_PORT}
  }}
}}
service auth {{
  inet_listener {{
    address = {IP}
    port = {AUTH_PORT}
  }}
  client_limit = {conns}
}}
service anvil {{
  client_limit = {conns}
}}
# every imap process connects to stats: without this, past 1,000 sessions
# Dovecot drops and retries those connections and slows every command.
service stats {{
  client_limit = {conns}
}}
protocol imap {{
  mail_max_userip_connections = {conns}
}}
"
            ),
        )?;
        let mut passwd = std::fs::File::create(dir.join("passwd"))?;
        for user in users {
            writeln!(passwd, "{user}:{{ARGON2ID}}{}", hash(password)?)?;
        }
        std::fs::set_permissions(dir.join("passwd"), std::fs::Permissions::from_mode(0o644))?;
        Ok(())
    }

    /// Start Dovecot, then Postfix, and wait until every listener answers; a
    /// reference that does not start fails the bench with its logs.
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join("log/dovecot-stderr.log"))?;
        let dovecot = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting dovecot (Debian package dovecot-core)")?;
        let mut me = Self {
            dir: dir.to_owned(),
            dovecot: Some(dovecot),
            postfix: false,
        };
        let out = Command::new("postfix")
            .arg("-c")
            .arg(dir.join("postfix"))
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .context("starting postfix (Debian package postfix)")?;
        me.postfix = out.status.success();
        if !me.postfix {
            bail!(
                "postfix -c {} start failed: {}{}\n{}",
                dir.join("postfix").display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                me.logs()
            );
        }
        for port in [IMAPS_PORT, LMTP_PORT, AUTH_PORT, SMTP_PORT, SUBMISSION_PORT] {
            if let Err(e) = wait_port(addr(port), Duration::from_secs(30)) {
                bail!("the reference did not start: {e}\n{}", me.logs());
            }
        }
        Ok(me)
    }

    /// The tails of Postfix's and Dovecot's logs (for a failure report).
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["postfix.log", "dovecot.log", "dovecot-stderr.log"] {
            let path = self.dir.join("log").join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!("--- {}\n", path.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Dovecot's master process.
    pub(crate) fn dovecot_pid(&self) -> Option<u32> {
        self.dovecot.as_ref().map(Child::id)
    }

    /// Stop Postfix and Dovecot; what did not stop cleanly.
    pub(crate) fn stop(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        if std::mem::take(&mut self.postfix) {
            let ok = Command::new("postfix")
                .arg("-c")
                .arg(self.dir.join("postfix"))
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                unclean.push("postfix stop failed".to_owned());
            }
        }
        if let Some(mut child) = self.dovecot.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        unclean.push("dovecot still running after SIGTERM, killed".to_owned());
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Wait until something accepts TCP connections on `addr`.
pub(crate) fn wait_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
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

/// Put `n` messages of about `size` bytes into `user`'s INBOX under the
/// reference directory `dir` by writing Maildir files directly (what Dovecot
/// reads; it builds its index on the first SELECT, which the bench does before
/// measuring).
pub(crate) fn fill_maildir(dir: &Path, user: &str, n: u64, size: usize) -> anyhow::Result<()> {
    let local = user.split('@').next().unwrap_or(user);
    let home = dir.join("mail").join(local);
    let maildir = home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let (uid, gid) = uid_gid(MAIL_USER)?;
    for p in [
        &home,
        &maildir,
        &maildir.join("cur"),
        &maildir.join("new"),
        &maildir.join("tmp"),
    ] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
    }
    let base = 1_700_000_000u64;
    for i in 0..n {
        let body = super::client::message(user, i, size);
        let name = format!("{}.M{i}P1.bench,S={}:2,", base + i, body.len());
        let path = maildir.join("cur").join(name);
        std::fs::write(&path, &body)?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
    }
    Ok(())
}
