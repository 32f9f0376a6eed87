//! Logs: `tracing` to stderr, filtered by `FACTEUR_LOG` (or `RUST_LOG`), default `info`
//! (rustls only at `error`: what it warns about is the peer's doing, e.g. an IP as SNI).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = std::env::var("FACTEUR_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,h2=warn,tower=warn,hyper=warn,sled=warn,rustls=error".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
