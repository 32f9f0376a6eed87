//! The `metrics_listen` HTTP listener: `GET /metrics` (Prometheus text) and
//! `GET /healthz` (200 "ok" once the agent serves, 503 before and while it stops).
//!
//! A small hyper HTTP/1 service rather than the exporter's own listener: that one
//! answers every path with the metrics and has no route for a health check.
//! It stays off the hot path: its own task, at most [`MAX_CONNS`] connections,
//! requests bounded by hyper's smallest read buffer (8 KiB of head, bodies never
//! read), a header deadline and a per-connection deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::AbortOnDropHandle;

use crate::Shutdown;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNS: usize = 32;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live.
const CONN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often histograms are drained (the exporter's listener would do it).
const UPKEEP: Duration = Duration::from_secs(5);

/// Set once the agent serves ([`crate::announce_ready`]).
static READY: AtomicBool = AtomicBool::new(false);

/// The agent serves: `/healthz` answers 200 from now until shutdown.
pub fn set_ready() {
    READY.store(true, Ordering::SeqCst);
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics_listen: {0}")]
    Bind(#[from] std::io::Error),
    #[error("metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
}

/// The running listener; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    local: std::net::SocketAddr,
    _task: AbortOnDropHandle<()>,
}

impl MetricsServer {
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }
}

/// Install the recorder for `agent` and serve `listen`; `""` disables both
/// (`Ok(None)`). `/healthz` turns 503 as soon as `shutdown` trips.
pub async fn start(
    listen: &str,
    agent: &'static str,
    shutdown: &Shutdown,
) -> Result<Option<MetricsServer>, MetricsError> {
    if listen.is_empty() {
        return Ok(None);
    }
    let handle = crate::metrics::install(agent)?;
    let listener = crate::listener::bind(listen).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "serving /metrics and /healthz");
    let task = tokio::spawn(run(listener, handle, shutdown.clone()));
    Ok(Some(MetricsServer {
        local,
        _task: AbortOnDropHandle::new(task),
    }))
}

async fn run(listener: TcpListener, handle: PrometheusHandle, shutdown: Shutdown) {
    let upkeep = {
        let handle = handle.clone();
        async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        }
    };
    tokio::join!(upkeep, accept_loop(listener, handle, shutdown));
}

async fn accept_loop(listener: TcpListener, handle: PrometheusHandle, shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (handle, shutdown) = (handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let reply = answer(&req, &handle, &shutdown);
                async move { Ok::<_, Infallible>(reply) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(8192)
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONN_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    handle: &PrometheusHandle,
    shutdown: &Shutdown,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(handle.render())));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/healthz" if shutdown.is_triggered() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        "/healthz" if !READY.load(Ordering::SeqCst) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => text(StatusCode::NOT_FOUND, "not found: /metrics or /healthz\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigArgs;
    use crate::health::{self, HealthArgs, HealthError};

    async fn check(addr: std::net::SocketAddr) -> Result<String, HealthError> {
        let args = HealthArgs {
            config: ConfigArgs {
                config: None,
                sets: vec![format!("metrics_listen=\"{addr}\"")],
            },
        };
        health::check(&ConfigArgs::default(), &args, "FACTEUR_TEST_NOPE").await
    }

    #[tokio::test]
    async fn healthz_is_503_until_ready_then_200_then_503_on_shutdown() {
        let shutdown = Shutdown::new();
        let server = start("127.111.0.1:0", "mta", &shutdown)
            .await
            .unwrap()
            .unwrap();
        let addr = server.local_addr();
        let err = check(addr).await.unwrap_err().to_string();
        assert!(err.contains("503: starting"), "{err}");
        set_ready();
        assert_eq!(check(addr).await.unwrap(), addr.to_string());
        shutdown.trigger();
        let err = check(addr).await.unwrap_err().to_string();
        assert!(err.contains("503: shutting down"), "{err}");
        drop(server);
        tokio::task::yield_now().await;
        let err = check(addr).await.unwrap_err().to_string();
        assert!(err.contains(&format!("http://{addr}/healthz")), "{err}");
    }

    #[tokio::test]
    async fn an_unset_listen_serves_nothing() {
        assert!(start("", "mta", &Shutdown::new()).await.unwrap().is_none());
    }
}
