//! `facteur-mua`: the command-line mail user agent (see the library for the commands).

use std::process::ExitCode;

use clap::Parser;
use facteur_mua::cli::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("FACTEUR_LOG").is_some() {
        facteur_daemon::logging::init(&facteur_daemon::logging::LogConfig::default());
    }
    match facteur_mua::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facteur-mua: {e:#}");
            ExitCode::FAILURE
        }
    }
}
