//! `facteur-<agent> health [--config F]`: GET `/healthz` of the configured
//! `metrics_listen` (127.0.0.1 when it binds every address) within 3 seconds;
//! the process exits 0 on 200 and 1 otherwise (the compose healthcheck).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::config::{ConfigArgs, ConfigError};

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The flags of `health`: the same `--config`/`--set` as serving (given before
/// or after the subcommand).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Why the agent is not healthy (one line each).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metrics_listen is not set: the agent serves no /healthz")]
    Disabled,
    #[error("bad metrics_listen {0:?}: expected host:port")]
    BadAddress(String),
    #[error("no answer from http://{addr}/healthz within {}s", TIMEOUT.as_secs())]
    Timeout { addr: String },
    #[error("http://{addr}/healthz: {message}")]
    Failed { addr: String, message: String },
    #[error("http://{addr}/healthz answered {status}: {body}")]
    Unhealthy {
        addr: String,
        status: u16,
        body: String,
    },
}

/// The one key `health` reads from the agent's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MetricsKey {
    metrics_listen: String,
}

/// The subcommand: check, print one line (stdout when healthy, stderr with the
/// reason when not) and give the process's exit code, 0 or 1.
pub async fn run(top: &ConfigArgs, args: &HealthArgs, env_prefix: &str) -> i32 {
    match check(top, args, env_prefix).await {
        Ok(addr) => {
            println!("healthy: http://{addr}/healthz answered 200");
            0
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            1
        }
    }
}

/// Run the check with the subcommand's config flags, else the top-level ones;
/// `env_prefix` is the agent's (`FACTEUR_MTA`). Gives the address checked.
pub async fn check(
    top: &ConfigArgs,
    args: &HealthArgs,
    env_prefix: &str,
) -> Result<String, HealthError> {
    let mut merged = top.clone();
    if args.config.config.is_some() {
        merged.config = args.config.config.clone();
    }
    merged.sets.extend(args.config.sets.iter().cloned());
    let key: MetricsKey = merged.load_some(env_prefix)?;
    if key.metrics_listen.is_empty() {
        return Err(HealthError::Disabled);
    }
    let addr = target(&key.metrics_listen)?;
    match tokio::time::timeout(TIMEOUT, get(&addr)).await {
        Err(_) => Err(HealthError::Timeout { addr }),
        Ok(r) => r.map(|()| addr),
    }
}

/// Where to connect for a listen address: loopback for the wildcard ones.
fn target(listen: &str) -> Result<String, HealthError> {
    match listen.parse::<SocketAddr>() {
        Ok(sa) if sa.ip().is_unspecified() => {
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), sa.port()).to_string())
        }
        Ok(sa) => Ok(sa.to_string()),
        Err(_)
            if listen
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            Ok(listen.to_owned())
        }
        Err(_) => Err(HealthError::BadAddress(listen.to_owned())),
    }
}

async fn get(addr: &str) -> Result<(), HealthError> {
    let failed = |message: String| HealthError::Failed {
        addr: addr.to_owned(),
        message,
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if status == 200 {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned();
    Err(HealthError::Unhealthy {
        addr: addr.to_owned(),
        status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_checked_on_loopback() {
        assert_eq!(target("0.0.0.0:9100").unwrap(), "127.0.0.1:9100");
        assert_eq!(target("[::]:9100").unwrap(), "127.0.0.1:9100");
        assert_eq!(target("127.0.0.5:9100").unwrap(), "127.0.0.5:9100");
        assert_eq!(target("mta:9100").unwrap(), "mta:9100");
        assert!(target("nope").is_err());
    }
}
