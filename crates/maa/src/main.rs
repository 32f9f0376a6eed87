//! `facteur-maa`: the POP3 and IMAP server.

use clap::Parser;
use facteur_daemon::Shutdown;
use facteur_daemon::config::ConfigArgs;
use facteur_maa::MaaConfig;

#[derive(Parser)]
#[command(
    name = "facteur-maa",
    version,
    about = "facteur mail access agent (POP3, IMAP)"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    facteur_daemon::logging::init();
    let config: MaaConfig = cli.config.load("FACTEUR_MAA")?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    facteur_maa::run(config, shutdown).await
}
