//! `facteur-mua`: the command-line mail user agent (see the library for the commands).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match facteur_mua::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("facteur-mua: {e:#}");
            return ExitCode::from(2);
        }
    };
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
