//! `facteur-devdns`: runs the dev DNS server until SIGTERM or Ctrl-C.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use facteur_devdns::Zone;
use tracing_subscriber::EnvFilter;

/// Dev DNS server serving MX/A/TXT for the dev mail domains.
#[derive(Debug, Parser)]
#[command(name = "facteur-devdns", version)]
struct Args {
    /// Address to listen on, UDP and TCP.
    #[arg(long, default_value = "127.0.0.1:5353")]
    listen: SocketAddr,
    /// A dev domain and its agents' IPv4 address, e.g. `paris.test=127.0.0.2`; repeatable.
    #[arg(long = "zone", value_name = "DOMAIN=IP", required = true)]
    zones: Vec<Zone>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();

    let (addr, mut handle, stop) = facteur_devdns::spawn(args.listen, args.zones).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "facteur-devdns ready on {addr}")?;
        out.flush()?;
    }

    tokio::select! {
        result = &mut handle => {
            return result.context("dev DNS task panicked")?;
        }
        signal = shutdown_signal() => {
            signal?;
        }
    }
    // The server may already have stopped on its own; then there is nobody to tell.
    let _ = stop.send(());
    handle.await.context("dev DNS task panicked")?
}

/// Logs to stderr, filtered by `FACTEUR_LOG`, else `RUST_LOG`, else `info`.
fn init_logging() {
    let filter = std::env::var("FACTEUR_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        tracing::info!("signal received, stopping");
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("Ctrl-C received, stopping");
        Ok(())
    }
}
