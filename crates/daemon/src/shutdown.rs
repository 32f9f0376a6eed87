//! Graceful shutdown: one token every task watches, tripped by SIGTERM or Ctrl-C.

use tokio_util::sync::CancellationToken;

/// A cheap handle: clone it into every task; `cancelled().await` to learn of the stop.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask every holder to stop.
    pub fn trigger(&self) {
        self.0.cancel();
    }
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Resolves once the stop was asked for.
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }
    /// Trip this token on SIGTERM or Ctrl-C (spawns a task).
    pub fn on_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested, shutting down");
            me.trigger();
        });
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
