//! `facteur-mda`: serve (the default), manage accounts with `user add|passwd|del|list`,
//! or move mail between the store and a Maildir with `store export|import --maildir DIR`.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
use facteur_mda::MdaConfig;
use facteur_mda::accounts::Accounts;
use facteur_mda::store::SledStore;
use facteur_mda::store::maildir::MaildirTree;
use facteur_mda::transfer::{self, FolderReport};

#[derive(Parser)]
#[command(name = "facteur-mda", version, about = "facteur mail delivery agent")]
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
    /// Serve Delivery, Mailbox and Auth over gRPC, and LMTP (the default).
    Serve,
    /// Check the configuration, or print the effective one.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Manage accounts (the MDA must not be running: only one process opens the store).
    #[command(subcommand)]
    User(UserCmd),
    /// Move mail between the store and a Maildir++ tree (the MDA must not be running).
    #[command(subcommand)]
    Store(StoreCmd),
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Write every mailbox (flags, keywords, dates, subscriptions) into
    /// DIR/<domain>/<localpart>/, as Dovecot's `maildir:DIR/%d/%n` reads it.
    Export {
        #[arg(long)]
        maildir: std::path::PathBuf,
        /// Only this user (default: every account).
        #[arg(long)]
        user: Option<String>,
    },
    /// Append every message of DIR/<domain>/<localpart>/ (INBOX and .Folders)
    /// to the store, creating missing mailboxes; files imported before are skipped.
    Import {
        #[arg(long)]
        maildir: std::path::PathBuf,
        /// Only this user (default: every user directory in DIR).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account; the password is read from --password or standard input.
    Add {
        user: String,
        #[arg(long, env = "FACTEUR_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Change an account's password.
    Passwd {
        user: String,
        #[arg(long, env = "FACTEUR_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Delete an account (its mail stays in the store).
    Del { user: String },
    /// List accounts.
    List,
}

fn password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        bail!("empty password");
    }
    Ok(p)
}

fn store_cmd(store: SledStore, hostname: &str, cmd: StoreCmd) -> anyhow::Result<()> {
    let print = |r: &FolderReport| println!("{r}");
    match cmd {
        StoreCmd::Export { maildir, user } => {
            let users = match user {
                Some(u) => vec![facteur_mda::filing::account_of(&u)],
                None => Accounts::new(std::sync::Arc::new(store.clone())).list()?,
            };
            let tree = MaildirTree::new(&maildir, hostname);
            transfer::export(&store, &tree, &users, print)
                .with_context(|| format!("exporting into {}", maildir.display()))
        }
        StoreCmd::Import { maildir, user } => {
            let tree = MaildirTree::new(&maildir, hostname);
            let users = match user {
                Some(u) => vec![facteur_mda::filing::account_of(&u)],
                None => tree.users()?,
            };
            transfer::import(&store, &tree, &users, print)
                .with_context(|| format!("importing from {}", maildir.display()))
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Config(cmd)) = &cli.command {
        return Ok(facteur_daemon::config::command(
            &cli.config,
            "FACTEUR_MDA",
            cmd,
            MdaConfig::check,
        )?);
    }
    let config: MdaConfig = cli.config.load("FACTEUR_MDA")?;
    // After the config: it says how to log (a config error goes to stderr as is).
    facteur_daemon::logging::init(&config.log);
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Config(_) => Ok(()),
        Cmd::Health(args) => {
            std::process::exit(facteur_daemon::health::run(&cli.config, &args, "FACTEUR_MDA").await)
        }
        Cmd::Serve => {
            cli.config
                .announce_defaults("facteur-mda", &config.listens());
            let shutdown = Shutdown::new();
            shutdown.on_signals();
            facteur_mda::run(config, shutdown).await
        }
        Cmd::Store(cmd) => {
            let store = facteur_mda::open_store(&config).context(
                "opening the store (is facteur-mda running? stop it first: only one process opens the store)",
            )?;
            let hostname = config.hostname.clone();
            tokio::task::spawn_blocking(move || store_cmd(store, &hostname, cmd)).await?
        }
        Cmd::User(cmd) => {
            let store = facteur_mda::open_store(&config).context(
                "opening the store for account changes (is facteur-mda running? stop it first)",
            )?;
            let accounts = Accounts::new(std::sync::Arc::new(store));
            match cmd {
                UserCmd::Add { user, password: p } => {
                    accounts.add(&user, &password(p)?)?;
                    println!("added {user}");
                }
                UserCmd::Passwd { user, password: p } => {
                    accounts.set_password(&user, &password(p)?)?;
                    println!("password changed for {user}");
                }
                UserCmd::Del { user } => {
                    accounts.delete(&user)?;
                    println!("deleted {user}");
                }
                UserCmd::List => {
                    for user in accounts.list()? {
                        println!("{user}");
                    }
                }
            }
            Ok(())
        }
    }
}
