//! `facteur-mta`: serve (the default), or list the queue with `queue`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
use facteur_mta::MtaConfig;

#[derive(Parser)]
#[command(name = "facteur-mta", version, about = "facteur mail transfer agent")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Exit 0 when the running agent's /healthz (at `metrics_listen`) answers 200.
    Health(facteur_daemon::health::HealthArgs),
    /// Serve SMTP and gRPC Relay, and deliver the queue (the default).
    Serve,
    /// Check the configuration, or print the effective one.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// List the queue (the MTA must not be running: only one process opens it).
    Queue,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Config(cmd)) = &cli.command {
        return Ok(facteur_daemon::config::command(
            &cli.config,
            "FACTEUR_MTA",
            cmd,
            MtaConfig::check,
        )?);
    }
    let config: MtaConfig = cli.config.load("FACTEUR_MTA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Config(_) => Ok(()),
        Cmd::Health(args) => {
            std::process::exit(facteur_daemon::health::run(&cli.config, &args, "FACTEUR_MTA").await)
        }
        Cmd::Serve => {
            cli.config
                .announce_defaults("facteur-mta", &config.listens());
            let shutdown = Shutdown::new();
            shutdown.on_signals();
            facteur_mta::run(config, shutdown).await
        }
        Cmd::Queue => {
            let opts = facteur_mta::queue::QueueOptions { min_free_bytes: 0 };
            let dir = config.data_dir.clone();
            let queue =
                tokio::task::spawn_blocking(move || facteur_mta::queue::Queue::open(&dir, opts))
                    .await?
                    .with_context(|| format!("opening {}", config.data_dir.display()))?;
            for e in queue.list().await? {
                println!(
                    "{} {:>8} {} <{}> attempts={}",
                    e.id,
                    e.size,
                    facteur_daemon::trace::rfc5322_date(e.created),
                    e.mail_from,
                    e.attempts
                );
                for r in e.rcpts {
                    println!("    <{}> {:?} {}", r.addr, r.status, r.last_error);
                }
            }
            Ok(())
        }
    }
}
