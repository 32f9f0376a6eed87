//! gRPC plumbing shared by the agents: serve a tonic router (with tonic-health,
//! SERVING once ready and NOT_SERVING on shutdown) on a listener this crate bound, and lazy client channels to `http://host:port`.
//! TCP_NODELAY on both ends: small request/response frames must not wait for
//! Nagle's algorithm and delayed ACKs (40 ms stalls per call otherwise).

use std::net::IpAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint};

use crate::Shutdown;

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

/// Serve `router` on `listener` until shutdown; in-flight calls finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    // `Server::tcp_nodelay` does not apply to an incoming stream we pass in: the
    // stream itself sets it on each accepted connection.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
        .await
}

/// The server builder with the project's settings.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .timeout(Duration::from_secs(600))
}

#[derive(Debug, thiserror::Error)]
#[error("bad gRPC address {url:?}: {message}")]
pub struct BadAddress {
    url: String,
    message: String,
}

/// A channel to `url` (`http://127.0.0.2:7024`) that connects on first use, so
/// agents may start in any order and reconnect after a peer restarts. `source`
/// picks the local address (so the peer sees which agent called).
pub fn channel(url: &str, source: Option<IpAddr>) -> Result<Channel, BadAddress> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| BadAddress {
        url: url.to_owned(),
        message: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .local_address(source)
        .connect_lazy())
}
