//! `StoreAdmin` (proto/admin.proto): the store's report and a blob collection
//! while the MDA runs (`facteur-mda store check|gc`), on the blocking pool.
//! Privileged: served on the MDA's own gRPC listener only.

use std::sync::Arc;
use std::time::Duration;

use facteur_rpc::admin::store_admin_server::StoreAdmin as StoreAdminRpc;
use facteur_rpc::admin::{CollectReply, CollectRequest, StoreCheckReply, StoreCheckRequest};
use facteur_store::{Housekeeping, StoreError};
use tonic::{Request, Response, Status};

/// The service over the store, with the configured grace period.
#[derive(Clone)]
pub struct StoreAdminService {
    pub store: Arc<dyn Housekeeping>,
    pub grace: Duration,
}

impl StoreAdminService {
    fn grace(&self, asked: Option<u64>) -> Duration {
        asked.map_or(self.grace, Duration::from_secs)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Status::internal("store task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "store housekeeping failed");
            Status::unavailable(e.to_string())
        })
}

#[tonic::async_trait]
impl StoreAdminRpc for StoreAdminService {
    async fn check(
        &self,
        request: Request<StoreCheckRequest>,
    ) -> Result<Response<StoreCheckReply>, Status> {
        let grace = self.grace(request.into_inner().grace_secs);
        let store = Arc::clone(&self.store);
        let report = blocking(move || store.check(grace)).await?;
        facteur_daemon::metrics::store_bytes(report.db_bytes, report.blob_bytes);
        Ok(Response::new(report.into()))
    }

    async fn collect(
        &self,
        request: Request<CollectRequest>,
    ) -> Result<Response<CollectReply>, Status> {
        let grace = self.grace(request.into_inner().grace_secs);
        let done = collect(Arc::clone(&self.store), grace).await?;
        Ok(Response::new(done.into()))
    }
}

/// One collection on the blocking pool, logged and counted.
pub async fn collect(
    store: Arc<dyn Housekeeping>,
    grace: Duration,
) -> Result<facteur_store::Collected, Status> {
    let done = blocking(move || store.collect_blobs(grace)).await?;
    facteur_daemon::metrics::collected(done.removed, done.removed_bytes, done.kept_bytes());
    tracing::info!(
        examined = done.examined,
        removed = done.removed,
        freed_bytes = done.removed_bytes,
        recent = done.recent,
        "blob collection"
    );
    Ok(done)
}

/// Collects every `interval` until shutdown (the first one an interval
/// after start, so a restart loop does not rescan the store each time).
pub async fn collector(
    store: Arc<dyn Housekeeping>,
    interval: Duration,
    grace: Duration,
    shutdown: facteur_daemon::Shutdown,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                // Failures are logged; the next tick tries again.
                let _ = collect(Arc::clone(&store), grace).await;
            }
            () = shutdown.cancelled() => return,
        }
    }
}
