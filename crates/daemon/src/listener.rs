//! The accept loop every listener shares: connection limits (total and per IP), one
//! task, one tracing span and one `facteur_sessions_open` count per connection,
//! accept errors that never kill the server, and a drain of live connections on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facteur_protocol::deadline::Deadlines;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::Shutdown;

/// Connection limits of one listener.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ConnLimits {
    /// Connections open at once on this listener.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_ip: usize,
    /// How long a connection may stay silent before it is closed, in seconds
    /// (RFC 5321 §4.5.3.2.7 asks servers to wait at least 5 minutes).
    pub idle_timeout_secs: u64,
    /// How long a TLS handshake may take (STARTTLS/STLS, or at connect on the
    /// implicit-TLS ports), in seconds.
    pub tls_handshake_timeout_secs: u64,
    /// A command line (for IMAP: the whole command, literals included, before
    /// login) must be complete this many seconds after its first byte, however
    /// the bytes trickle in (slow-drip defence; see `facteur_protocol::deadline`).
    pub command_timeout_secs: u64,
    /// A message body (DATA, a BDAT chunk, an IMAP literal after login) must be
    /// complete within this many seconds, plus one second per `min_data_rate` bytes.
    pub data_timeout_secs: u64,
    /// Bytes per second of message body that extend its deadline by one second
    /// (0: the body deadline is a fixed `data_timeout_secs`).
    pub min_data_rate: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_per_ip: 50,
            idle_timeout_secs: 300,
            tls_handshake_timeout_secs: 10,
            command_timeout_secs: 60,
            data_timeout_secs: 600,
            min_data_rate: 16 * 1024,
        }
    }
}

impl ConnLimits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs.max(1))
    }

    /// The request deadlines (command line, message body).
    pub fn deadlines(&self) -> Deadlines {
        Deadlines {
            command: Duration::from_secs(self.command_timeout_secs.max(1)),
            data: Duration::from_secs(self.data_timeout_secs.max(1)),
            min_data_rate: self.min_data_rate,
        }
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
                // Dropped with the task, however the connection ends.
                let _open = crate::metrics::SessionGuard::open(protocol);
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
