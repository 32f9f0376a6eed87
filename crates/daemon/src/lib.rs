//! What every facteur daemon shares: config, TLS, listeners, the connection loop,
//! graceful shutdown, tracing, metrics and health, and the SMTP server and client drivers.
//!
//! Only this crate (and the agents through it) binds sockets; protocol logic stays
//! sans-IO in `facteur-protocol`, and this crate is the thin tokio shell around it.

pub mod admin;
pub mod config;
pub mod conn;
pub mod devpki;
pub mod files;
pub mod grpc;
pub mod health;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod passwd_file;
pub mod shutdown;
pub mod smtp_client;
pub mod smtp_server;
pub mod stream;
pub mod tls;
pub mod trace;
pub mod transcript;

pub use shutdown::Shutdown;

/// Print the one line a launcher waits for, then flush stdout.
///
/// The launcher (`cargo xtask up`, the end-to-end harness) reads stdout until a
/// line that starts with `<name> ready`; everything else goes to the log (stderr).
/// From now on `/healthz` answers 200 (until shutdown).
pub fn announce_ready(name: &str, what: &str) {
    use std::io::Write;
    metrics_http::set_ready();
    let mut out = std::io::stdout().lock();
    // A closed stdout only means nobody waits for the line.
    let _ = writeln!(out, "{name} ready: {what}");
    let _ = out.flush();
}
