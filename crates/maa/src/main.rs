//! `facteur-maa`: the POP3 and IMAP server.

use clap::{Parser, Subcommand};
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
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve (the default).
    Serve,
    /// Exit 0 when the running agent's /healthz (at `metrics_listen`) answers 200.
    Health(facteur_daemon::health::HealthArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    facteur_daemon::logging::init();
    let config: MaaConfig = cli.config.load("FACTEUR_MAA")?;
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Health(args) => {
            std::process::exit(facteur_daemon::health::run(&cli.config, &args, "FACTEUR_MAA").await)
        }
        Cmd::Serve => {
            let shutdown = Shutdown::new();
            shutdown.on_signals();
            facteur_maa::run(config, shutdown).await
        }
    }
}
