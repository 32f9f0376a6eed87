//! gRPC plumbing shared by the agents: serve a tonic router (with tonic-health,
//! SERVING once ready and NOT_SERVING on shutdown) on a listener this crate bound,
//! and lazy client channels to `host:port`, both with mutual TLS when
//! `[grpc_tls]` is configured (plaintext is allowed on loopback only).
//! TCP_NODELAY on both ends: small request/response frames must not wait for
//! Nagle's algorithm and delayed ACKs (40 ms stalls per call otherwise).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Shutdown;
use crate::tls::{TlsError, TlsFiles};

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[grpc_tls]`: the deployment CA and this agent's certificate (PEM paths).
///
/// Set: gRPC servers require a client certificate signed by `ca`, clients present
/// `cert`/`key` and verify the server against `ca`; URLs are `https://`. Unset:
/// plaintext, allowed only on loopback addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct GrpcTls {
    /// The CA every peer's certificate must chain to.
    pub ca: PathBuf,
    /// This agent's certificate chain, leaf first (server and client auth).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl GrpcTls {
    /// Is mutual TLS configured? An incomplete table is an error.
    pub fn enabled(&self) -> Result<bool, GrpcError> {
        let set = [&self.ca, &self.cert, &self.key].map(|p| !p.as_os_str().is_empty());
        match set {
            [true, true, true] => Ok(true),
            [false, false, false] => Ok(false),
            _ => Err(GrpcError::Incomplete),
        }
    }

    fn ca(&self) -> Result<Certificate, GrpcError> {
        Ok(Certificate::from_pem(read(&self.ca)?))
    }

    fn identity(&self) -> Result<Identity, GrpcError> {
        Ok(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("bad gRPC address {url:?}: {message}")]
    BadAddress { url: String, message: String },
    #[error("gRPC on {addr} is not loopback: configure [grpc_tls]")]
    NotLoopback { addr: String },
    #[error("gRPC URL {url:?}: [grpc_tls] is set, use https://")]
    PlainWithTls { url: String },
    #[error("gRPC URL {url:?}: https:// needs [grpc_tls] (ca, cert, key)")]
    TlsWithoutConfig { url: String },
    #[error("[grpc_tls] needs all of ca, cert and key")]
    Incomplete,
    #[error("[grpc_tls] {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[grpc_tls]: {0}")]
    Tls(#[from] tonic::transport::Error),
    #[error("[grpc_tls] {0}")]
    Server(#[from] TlsError),
}

fn read(path: &Path) -> Result<Vec<u8>, GrpcError> {
    std::fs::read(path).map_err(|source| GrpcError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Is `host` (an IP, `[v6]`, or a name) a loopback one: 127.0.0.0/8, ::1, localhost?
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The host part of a listen address `host:port` (`[v6]:port` too).
fn listen_host(listen: &str) -> &str {
    listen.rsplit_once(':').map_or(listen, |(h, _)| h)
}

/// The health service every gRPC server carries, and its reporter.
pub fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Mark `services` (their gRPC names, `NamedService::NAME`) SERVING now, and
/// every one of them and the whole server ("") NOT_SERVING once `shutdown` trips.
pub async fn report_serving(
    reporter: tonic_health::server::HealthReporter,
    services: &[&'static str],
    shutdown: &Shutdown,
) {
    use tonic_health::ServingStatus;
    for name in services {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let (services, shutdown) = (services.to_vec(), shutdown.clone());
    tokio::spawn(async move {
        shutdown.cancelled().await;
        for name in services.into_iter().chain([""]) {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    });
}

/// The TLS side of a gRPC server, from [`server_tls`]: mutual TLS, or plaintext on loopback.
#[derive(Clone)]
pub struct ServerTls(Option<TlsAcceptor>);

/// Check `[grpc_tls]` for a server that will listen on `listen`, before anything
/// is opened: with it, the acceptor that requires a client certificate signed by
/// `ca`; without, `listen` must be loopback.
pub fn server_tls(tls: &GrpcTls, listen: &str) -> Result<ServerTls, GrpcError> {
    if !tls.enabled()? {
        if !is_loopback_host(listen_host(listen)) {
            return Err(GrpcError::NotLoopback {
                addr: listen.to_owned(),
            });
        }
        return Ok(ServerTls(None));
    }
    let files = TlsFiles {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
    };
    let config = crate::tls::mutual_server_config(&files, &tls.ca)?;
    Ok(ServerTls(Some(TlsAcceptor::from(config))))
}

/// Serve `router` on `listener` until shutdown; in-flight calls finish first.
/// Under mutual TLS each connection's handshake runs on its own task, bounded by
/// a deadline; a refused client (no certificate, another CA's) is logged with
/// its address and never reaches a service.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: ServerTls,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    let done = {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    };
    match tls.0 {
        None => {
            // `Server::tcp_nodelay` does not apply to an incoming stream we pass in:
            // the stream itself sets it on each accepted connection.
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, done).await
        }
        Some(acceptor) => {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(accept_tls(listener, acceptor, tx, shutdown));
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            router.serve_with_incoming_shutdown(incoming, done).await
        }
    }
}

type Handshaken = Result<TlsStream<TcpStream>, std::io::Error>;

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: tokio::sync::mpsc::Sender<Handshaken>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off a little, never give up the listener.
                tracing::warn!(error = %e, "gRPC accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Err: the server is stopping.
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "gRPC TLS handshake refused"),
                Err(_) => tracing::warn!(%peer, "gRPC TLS handshake timed out"),
            }
        });
    }
}

/// The server builder with the project's settings.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .timeout(Duration::from_secs(600))
}

/// tonic's client builds its rustls config from the process-wide provider when
/// one is installed: make it ring, the one the rest of the project uses.
fn install_provider() {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A channel to `url` (`https://mda.lyon.test:7024`, or `http://127.0.0.1:7024`
/// without `[grpc_tls]`) that connects on first use, so agents may start in any
/// order and reconnect after a peer restarts. `source` picks the local address
/// (so the peer sees which agent called). With `[grpc_tls]` the server's
/// certificate must chain to `ca` and name the URL's host, and this agent
/// presents its own certificate.
pub fn channel(url: &str, source: Option<IpAddr>, tls: &GrpcTls) -> Result<Channel, GrpcError> {
    let bad = |message: String| GrpcError::BadAddress {
        url: url.to_owned(),
        message,
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| bad(e.to_string()))?;
    let uri = endpoint.uri();
    let host = uri
        .host()
        .ok_or_else(|| bad("no host".to_owned()))?
        .to_owned();
    let endpoint = match (uri.scheme_str(), tls.enabled()?) {
        (Some("https"), true) => {
            install_provider();
            let config = ClientTlsConfig::new()
                .ca_certificate(tls.ca()?)
                .identity(tls.identity()?)
                .timeout(Duration::from_secs(10));
            endpoint.tls_config(config)?
        }
        (Some("http"), true) => {
            return Err(GrpcError::PlainWithTls {
                url: url.to_owned(),
            });
        }
        (Some("https"), false) => {
            return Err(GrpcError::TlsWithoutConfig {
                url: url.to_owned(),
            });
        }
        (Some("http"), false) => {
            if !is_loopback_host(&host) {
                return Err(GrpcError::NotLoopback {
                    addr: url.to_owned(),
                });
            }
            endpoint
        }
        _ => return Err(bad("expected http:// or https://".to_owned())),
    };
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .local_address(source)
        .connect_lazy())
}

/// The URL a local client (an admin command on the same host) dials to reach a
/// server listening on `listen`: an unspecified address (`0.0.0.0`, `[::]`)
/// becomes loopback, and the scheme follows `[grpc_tls]`.
pub fn local_url(listen: &str, tls: &GrpcTls) -> Result<String, GrpcError> {
    let scheme = if tls.enabled()? { "https" } else { "http" };
    let addr = match listen.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
                    IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            addr.to_string()
        }
        Err(_) => listen.to_owned(),
    };
    Ok(format!("{scheme}://{addr}"))
}

/// A channel from an admin command to this host's own server listening on
/// `listen` (the agent's `grpc.listen`), with the agent's `[grpc_tls]`: the
/// command presents the agent's certificate, and the server's certificate must
/// name the address dialled (`cargo xtask pki` puts `127.0.0.1` and `localhost`
/// in every certificate).
pub fn local_channel(listen: &str, tls: &GrpcTls) -> Result<Channel, GrpcError> {
    channel(&local_url(listen, tls)?, None, tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1",
            "127.113.0.2",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["0.0.0.0", "10.0.0.1", "[::]", "mda.lyon.test", "lyon-mda"] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert_eq!(listen_host("[::1]:7024"), "[::1]");
        assert_eq!(listen_host("0.0.0.0:7024"), "0.0.0.0");
    }

    #[test]
    fn plaintext_off_loopback_and_mismatched_schemes_are_config_errors() {
        let none = GrpcTls::default();
        let err = server_tls(&none, "0.0.0.0:7024").err().unwrap();
        assert_eq!(
            err.to_string(),
            "gRPC on 0.0.0.0:7024 is not loopback: configure [grpc_tls]"
        );
        assert!(server_tls(&none, "127.0.0.1:7024").is_ok());
        assert!(server_tls(&none, "localhost:7024").is_ok());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert!(channel("http://127.0.0.1:7024", None, &none).is_ok());
        assert!(matches!(
            channel("http://mda.lyon.test:7024", None, &none),
            Err(GrpcError::NotLoopback { .. })
        ));
        assert!(matches!(
            channel("https://127.0.0.1:7024", None, &none),
            Err(GrpcError::TlsWithoutConfig { .. })
        ));
        let some = GrpcTls {
            ca: "ca.pem".into(),
            cert: "a.pem".into(),
            key: "a-key.pem".into(),
        };
        assert!(matches!(
            channel("http://127.0.0.1:7024", None, &some),
            Err(GrpcError::PlainWithTls { .. })
        ));
        let half = GrpcTls {
            ca: "ca.pem".into(),
            ..GrpcTls::default()
        };
        assert!(matches!(
            server_tls(&half, "127.0.0.1:1"),
            Err(GrpcError::Incomplete)
        ));
    }

    /// Serve tonic-health on `127.113.0.5` with `tls`; its address.
    async fn health_server(tls: &GrpcTls, shutdown: &Shutdown) -> SocketAddr {
        let listener = TcpListener::bind("127.113.0.5:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, service) = health();
        let tls = server_tls(tls, &addr.to_string()).ok().unwrap();
        let router = server().add_service(service);
        tokio::spawn(serve(listener, router, tls, shutdown.clone()));
        addr
    }

    async fn check(addr: SocketAddr, tls: &GrpcTls) -> Result<(), tonic::Status> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let channel = channel(&format!("https://{addr}"), None, tls).unwrap();
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn the_client_checks_that_the_server_certificate_names_the_host_dialled() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::devpki::Ca::ensure(dir.path()).unwrap();
        let files = |name: &str, sans: &[&str]| {
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let cert = ca.issue(name, &sans).unwrap();
            GrpcTls {
                ca: ca.cert_path(),
                cert: cert.cert,
                key: cert.key,
            }
        };
        let right = files("right", &["127.113.0.5"]);
        let wrong = files("wrong", &["mda.lyon.test"]);
        let client = files("client", &["msa.lyon.test"]);
        let shutdown = Shutdown::new();
        let good = health_server(&right, &shutdown).await;
        let bad = health_server(&wrong, &shutdown).await;
        check(good, &client).await.unwrap();
        let err = check(bad, &client).await.unwrap_err();
        assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
        shutdown.trigger();
    }

    #[test]
    fn local_url_dials_loopback_for_an_unspecified_listen() {
        let none = GrpcTls::default();
        assert_eq!(
            local_url("0.0.0.0:7024", &none).unwrap(),
            "http://127.0.0.1:7024"
        );
        assert_eq!(local_url("[::]:7024", &none).unwrap(), "http://[::1]:7024");
        assert_eq!(
            local_url("127.0.0.2:7025", &none).unwrap(),
            "http://127.0.0.2:7025"
        );
    }
}
