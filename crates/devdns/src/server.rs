//! The DNS server: a hickory `Catalog` of the dev zones served on one UDP and one TCP socket.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hickory_proto::rr::LowerName;
use hickory_server::ServerFuture;
use hickory_server::authority::{AuthorityObject, Catalog};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::zone::{Zone, ZoneError};

/// Idle timeout of a TCP connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times to look for a port free on both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 16;

/// Bind UDP+TCP on `addr` and serve until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    zones: Vec<Zone>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let catalog = catalog(&zones)?;
    let (udp, tcp) = bind(addr).await?;
    run(catalog, udp, tcp, shutdown).await
}

/// Like [`serve`] but returns once bound, with the bound address (UDP and TCP share
/// the port), the server task, and a sender that stops it. Dropping the sender
/// without sending leaves the server running until the runtime shuts down.
pub async fn spawn(
    addr: SocketAddr,
    zones: Vec<Zone>,
) -> anyhow::Result<(
    SocketAddr,
    JoinHandle<anyhow::Result<()>>,
    oneshot::Sender<()>,
)> {
    let catalog = catalog(&zones)?;
    let (udp, tcp) = bind(addr).await?;
    let bound = udp.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async move {
        if rx.await.is_err() {
            // Sender dropped without a stop request: keep serving.
            std::future::pending::<()>().await;
        }
    };
    let handle = tokio::spawn(run(catalog, udp, tcp, shutdown));
    Ok((bound, handle, tx))
}

/// Builds the catalog: one authoritative in-memory zone per domain.
fn catalog(zones: &[Zone]) -> Result<Catalog, ZoneError> {
    let mut catalog = Catalog::new();
    let mut seen = HashSet::new();
    for zone in zones {
        let origin = zone.origin()?;
        if !seen.insert(origin.clone()) {
            return Err(ZoneError::Duplicate(origin.to_string()));
        }
        let authority: Arc<dyn AuthorityObject> = Arc::new(zone.authority()?);
        catalog.upsert(LowerName::new(&origin), vec![authority]);
        tracing::info!(domain = %origin, ip = %zone.ip, "serving zone");
    }
    Ok(catalog)
}

/// Binds UDP on `addr`, then TCP on the same address and port. When the port is 0,
/// retries with a fresh UDP port if the one picked is taken on TCP.
async fn bind(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { BIND_ATTEMPTS } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding UDP {addr}"))?;
        let udp_addr = udp.local_addr()?;
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) => Err(anyhow::Error::new(e).context(format!("binding TCP {addr}"))),
        None => Err(anyhow::anyhow!("binding {addr}: no attempt made")),
    }
}

/// Serves on the bound sockets until `shutdown` resolves or the server fails.
async fn run(
    catalog: Catalog,
    udp: UdpSocket,
    tcp: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let addr = udp.local_addr()?;
    let mut server = ServerFuture::new(catalog);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT);
    let token = server.shutdown_token().clone();
    tracing::info!(%addr, "dev DNS listening on UDP and TCP");
    let done = server.block_until_done();
    tokio::pin!(done, shutdown);
    let result = tokio::select! {
        result = &mut done => result,
        () = &mut shutdown => {
            tracing::info!("dev DNS shutting down");
            token.cancel();
            done.await
        }
    };
    result.context("dev DNS server failed")
}
