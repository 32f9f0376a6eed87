//! What the network commands share: server addresses, the TLS connector and
//! server name, timeouts on every step, and the password rule.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::{ConnArgs, TlsMode, Which};

/// The system CA bundle (Debian, Ubuntu, Alpine).
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A server to talk to, as given on the command line.
#[derive(Debug, Clone)]
pub struct Server {
    /// `HOST:PORT` as given.
    pub spec: String,
    /// The host part, without brackets.
    pub host: String,
    pub port: u16,
}

impl Server {
    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
    pub fn parse(spec: &str) -> anyhow::Result<Server> {
        let (host, port) = spec
            .rsplit_once(':')
            .with_context(|| format!("{spec}: expected HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("{spec}: bad port {port:?}"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            bail!("{spec}: expected HOST:PORT");
        }
        Ok(Server {
            spec: spec.to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    /// Resolve to the first address.
    pub async fn resolve(&self, timeout: Duration) -> anyhow::Result<SocketAddr> {
        let mut addrs = step(
            "resolve",
            timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .with_context(|| format!("resolving {}", self.host))?;
        addrs
            .next()
            .with_context(|| format!("{}: no address", self.host))
    }

    /// Resolve and open a TCP connection.
    pub async fn connect(&self, timeout: Duration) -> anyhow::Result<TcpStream> {
        let addr = self.resolve(timeout).await?;
        let tcp = step("connect", timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {} ({addr})", self.spec))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

/// Run one network step under a timeout; the error names the step.
pub async fn step<T, E>(
    name: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.with_context(|| format!("{name} failed")),
        Err(_) => bail!("{name}: no answer within {}s", timeout.as_secs()),
    }
}

impl ConnArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// The password: set by a library caller, else `FACTEUR_PASSWORD`, else
    /// asked on the terminal without echo (rpassword); never a command-line flag.
    pub fn password(&self) -> anyhow::Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var("FACTEUR_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            return Ok(p);
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!("no password: set FACTEUR_PASSWORD (or run in a terminal to be asked)");
        }
        rpassword::prompt_password(format!("Password for {}: ", self.user))
            .context("reading the password")
    }

    /// The name to check in the server certificate.
    pub fn server_name(&self, server: &Server) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| server.host.clone())
    }

    /// The CA file: `--ca`, else the dev CA in `./var`, else the system bundle.
    pub fn ca_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(ca) = &self.ca {
            return Ok(ca.clone());
        }
        let dev = Path::new("var").join("tls").join("ca.pem");
        if dev.is_file() {
            return Ok(dev);
        }
        if Path::new(SYSTEM_CA).is_file() {
            return Ok(PathBuf::from(SYSTEM_CA));
        }
        bail!("no CA certificates found: pass --ca PATH")
    }

    /// A TLS connector trusting the CA file.
    pub fn connector(&self) -> anyhow::Result<TlsConnector> {
        let ca = self.ca_path()?;
        facteur_daemon::tls::connector(&ca).with_context(|| format!("loading CA {}", ca.display()))
    }

    /// Refuse to send a password in the clear, unless asked to with
    /// `--tls none --insecure-auth`.
    pub fn check_password_allowed(&self, is_tls: bool) -> anyhow::Result<()> {
        if is_tls || (self.tls == TlsMode::None && self.insecure_auth) {
            return Ok(());
        }
        bail!(
            "refusing to send the password over a connection without TLS \
             (use --tls starttls or implicit, or --tls none --insecure-auth)"
        )
    }
}

/// The message numbers to fetch out of `count` (1-based, oldest first).
pub fn pick(which: Which, count: u32) -> anyhow::Result<Vec<u32>> {
    match which {
        _ if count == 0 => Ok(Vec::new()),
        Which::Last => Ok(vec![count]),
        Which::All => Ok((1..=count).collect()),
        Which::Number(n) if n >= 1 && n <= count => Ok(vec![n]),
        Which::Number(n) => bail!("no message {n}: the mailbox holds {count}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_specs() {
        let s = Server::parse("127.0.0.2:5870").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.2", 5870));
        let s = Server::parse("[::1]:25").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 25));
        assert!(Server::parse("mail.paris.test").is_err());
        assert!(Server::parse(":25").is_err());
    }

    #[test]
    fn picking_messages() {
        assert_eq!(pick(Which::Last, 3).unwrap(), vec![3]);
        assert_eq!(pick(Which::All, 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(pick(Which::Number(2), 3).unwrap(), vec![2]);
        assert!(pick(Which::Number(4), 3).is_err());
        assert!(pick(Which::Last, 0).unwrap().is_empty());
    }
}
