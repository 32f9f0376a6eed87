//! `facteur-msa`: the submission server.

use clap::Parser;
use facteur_daemon::Shutdown;
use facteur_daemon::config::ConfigArgs;
use facteur_msa::MsaConfig;

#[derive(Parser)]
#[command(name = "facteur-msa", version, about = "facteur mail submission agent")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: MsaConfig = cli.config.load("FACTEUR_MSA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    facteur_msa::run(config, shutdown).await
}
