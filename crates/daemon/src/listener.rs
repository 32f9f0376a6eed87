//! The accept loop every listener shares: connection limits (total and per IP), one
//! task and one tracing span per connection, accept errors that never kill the
//! server, and a drain of live connections on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::Shutdown;

/// Connection limits of one listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConnLimits {
    /// Connections open at once on this listener.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_ip: usize,
    /// How long a connection may stay silent before it is closed, in seconds
    /// (RFC 5321 §4.5.3.2.7 asks servers to wait at least 5 minutes).
    pub idle_timeout_secs: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_per_ip: 50,
            idle_timeout_secs: 300,
        }
    }
}

impl ConnLimits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

/// Per-IP connection counts; the guard gives its slot back when dropped.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

struct Slot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Bind a TCP listener, naming the address in the error.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Accept connections until shutdown, then wait for the live ones to finish.
///
/// `busy` is written to a peer refused for a limit (e.g. `421 4.7.0 ...\r\n`).
/// `handle` runs once per connection, inside a span named `protocol`.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    limits: ConnLimits,
    busy: &'static [u8],
    shutdown: Shutdown,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let per_ip = Arc::new(PerIp::default());
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (mut tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off a little, never give up the listener.
                tracing::warn!(%protocol, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let slot = if tracker.len() >= limits.max_connections {
            None
        } else {
            per_ip.take(peer.ip(), limits.max_per_ip)
        };
        let Some(slot) = slot else {
            tracing::info!(%protocol, %peer, "connection refused: limit reached");
            tokio::spawn(async move {
                let _ = tcp.write_all(busy).await;
                let _ = tcp.shutdown().await;
            });
            continue;
        };
        let span = tracing::info_span!("conn", %protocol, %peer);
        let fut = handle(tcp, peer);
        tracker.spawn(
            async move {
                tracing::debug!("connected");
                fut.await;
                tracing::debug!("disconnected");
                drop(slot);
            }
            .instrument(span),
        );
    }
    tracker.close();
    tracing::debug!(%protocol, ?local, live = tracker.len(), "listener stopped; draining");
    tracker.wait().await;
}
