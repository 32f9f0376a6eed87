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
    let config: MaaConfig = cli.config.load("FACTEUR_MAA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    facteur_maa::run(config, shutdown).await
}
