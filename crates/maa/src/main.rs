//! `facteur-maa`: the POP3 and IMAP server.

use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
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
    /// Serve POP3 and IMAP (the default).
    Serve,
    /// Check the configuration, or print the effective one.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Exit 0 when the running agent's /healthz (at `metrics_listen`) answers 200.
    Health(facteur_daemon::health::HealthArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Config(cmd)) = &cli.command {
        return Ok(facteur_daemon::config::command(
            &cli.config,
            "FACTEUR_MAA",
            cmd,
            MaaConfig::check,
        )?);
    }
    let config: MaaConfig = cli.config.load("FACTEUR_MAA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    // Everything the agent creates from here on is its own (0600/0700).
    facteur_daemon::files::private_umask();
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Config(_) => Ok(()),
        Cmd::Health(args) => {
            std::process::exit(facteur_daemon::health::run(&cli.config, &args, "FACTEUR_MAA").await)
        }
        Cmd::Serve => {
            cli.config
                .announce_defaults("facteur-maa", &config.listens());
            let shutdown = Shutdown::new();
            shutdown.on_signals();
            facteur_maa::run(config, shutdown).await
        }
    }
}
