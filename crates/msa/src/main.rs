//! `facteur-msa`: the submission server.

use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
use facteur_msa::MsaConfig;

#[derive(Parser)]
#[command(name = "facteur-msa", version, about = "facteur mail submission agent")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve submission (the default).
    Serve,
    /// Check the configuration, or print the effective one.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Config(cmd)) = &cli.command {
        return Ok(facteur_daemon::config::command(
            &cli.config,
            "FACTEUR_MSA",
            cmd,
            MsaConfig::check,
        )?);
    }
    let config: MsaConfig = cli.config.load("FACTEUR_MSA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    cli.config
        .announce_defaults("facteur-msa", &config.listens());
    // `serve` is the only other command.
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    facteur_msa::run(config, shutdown).await
}
