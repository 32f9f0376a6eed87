//! `facteur-mda`: serve (the default), manage accounts with `user add|passwd|del|list`
//! (over the running MDA's gRPC `Accounts`, or on the store directly when no MDA
//! listens at `grpc.listen`), report on the store and collect its unreferenced
//! blobs with `store check|gc` (through the running MDA too, or on the store),
//! or move mail between the store and a Maildir with `store export|import --maildir DIR`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
use facteur_mda::MdaConfig;
use facteur_mda::accounts::Accounts;
use facteur_mda::store::SledStore;
use facteur_mda::store::maildir::MaildirTree;
use facteur_mda::store::{Collected, Housekeeping, StoreReport};
use facteur_mda::transfer::{self, FolderReport};
use facteur_rpc::admin::accounts_client::AccountsClient;
use facteur_rpc::admin::store_admin_client::StoreAdminClient;
use facteur_rpc::admin::{
    AccountRequest, CollectRequest, ListUsersRequest, StoreCheckRequest, UserRequest,
};
use tonic::transport::Channel;

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
    /// Manage accounts: through the running MDA (its gRPC listener, `grpc.listen`),
    /// or on the store directly when no MDA is listening there.
    #[command(subcommand)]
    User(UserCmd),
    /// The store: its size and health (`check`), collecting unreferenced blobs
    /// (`gc`), both through the running MDA or on the store; moving mail to and
    /// from a Maildir++ tree (`export`, `import`: the MDA must not be running).
    #[command(subcommand)]
    Store(StoreCmd),
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Print the store's size (metadata, blobs), its messages, the blobs no
    /// message references (and how many a collection would remove), and any
    /// damage: referenced blobs that are gone, reference counts that are
    /// wrong. Exits 1 when damaged.
    Check {
        /// Grace period in seconds for "collectable" (default: `store.gc_grace_secs`).
        #[arg(long)]
        grace: Option<u64>,
    },
    /// Remove now the blobs no message references that were put more than the
    /// grace period ago (the MDA also does this every `store.gc_interval_secs`).
    Gc {
        /// Grace period in seconds (default: `store.gc_grace_secs`).
        #[arg(long)]
        grace: Option<u64>,
    },
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
    /// Add an account; the password comes from --password or FACTEUR_PASSWORD,
    /// else a prompt that does not echo (or a line of standard input when it is
    /// not a terminal).
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

/// The password: given (flag or FACTEUR_PASSWORD), else typed twice at a prompt
/// that hides it, else (standard input is not a terminal: a script) one line of
/// standard input.
fn password(given: Option<String>, user: &str) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let p = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("Password for {user}: "))
            .context("reading the password")?;
        let again = rpassword::prompt_password("Retype it: ").context("reading the password")?;
        if p != again {
            bail!("the passwords differ");
        }
        p
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if p.is_empty() {
        bail!("empty password");
    }
    Ok(p)
}

/// The client of the running MDA's `Accounts`: the one place it is made.
fn accounts_client(config: &MdaConfig) -> anyhow::Result<AccountsClient<Channel>> {
    Ok(AccountsClient::new(facteur_daemon::admin::channel(
        &config.grpc.listen,
        &config.grpc_tls,
    )?))
}

/// `user …` through the running MDA.
async fn user_over_grpc(config: &MdaConfig, cmd: UserCmd) -> anyhow::Result<()> {
    let mut c = accounts_client(config)?;
    let at = facteur_daemon::admin::url(&config.grpc.listen);
    let call = |what: &'static str| {
        let at = at.clone();
        move |s: tonic::Status| match s.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown => anyhow::anyhow!(
                "{what}: no answer from facteur-mda at {at}: {}",
                s.message()
            ),
            _ => anyhow::anyhow!("{what}: {}", s.message()),
        }
    };
    match cmd {
        UserCmd::Add { user, password: p } => {
            let password = password(p, &user)?;
            let r = c
                .add(AccountRequest { user, password })
                .await
                .map_err(call("adding the account"))?;
            println!("added {}", r.into_inner().user);
        }
        UserCmd::Passwd { user, password: p } => {
            let password = password(p, &user)?;
            let r = c
                .passwd(AccountRequest { user, password })
                .await
                .map_err(call("changing the password"))?;
            println!("password changed for {}", r.into_inner().user);
        }
        UserCmd::Del { user } => {
            let r = c
                .del(UserRequest { user })
                .await
                .map_err(call("deleting the account"))?;
            println!("deleted {}", r.into_inner().user);
        }
        UserCmd::List => {
            let r = c
                .list(ListUsersRequest {})
                .await
                .map_err(call("listing the accounts"))?;
            for user in r.into_inner().users {
                println!("{user}");
            }
        }
    }
    Ok(())
}

/// `user …` on the store itself (no MDA running; sled's lock keeps a second
/// process out, so this cannot race a running MDA).
fn user_offline(config: &MdaConfig, cmd: UserCmd) -> anyhow::Result<()> {
    let store = facteur_mda::open_store(config).context(
        "opening the store for account changes (no facteur-mda answered at grpc.listen)",
    )?;
    let accounts = Accounts::new(std::sync::Arc::new(store));
    match cmd {
        UserCmd::Add { user, password: p } => {
            accounts.add(&user, &password(p, &user)?)?;
            println!("added {user}");
        }
        UserCmd::Passwd { user, password: p } => {
            accounts.set_password(&user, &password(p, &user)?)?;
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

/// `store check` (`check`) or `store gc` through the running MDA's `StoreAdmin`.
async fn housekeeping_over_grpc(
    config: &MdaConfig,
    check: bool,
    grace: Option<u64>,
) -> anyhow::Result<()> {
    let mut client = StoreAdminClient::new(facteur_daemon::admin::channel(
        &config.grpc.listen,
        &config.grpc_tls,
    )?);
    let failed =
        |s: tonic::Status| anyhow::anyhow!("the MDA at {}: {}", config.grpc.listen, s.message());
    if check {
        let reply = client
            .check(StoreCheckRequest { grace_secs: grace })
            .await
            .map_err(failed)?;
        return report(&reply.into_inner().into());
    }
    let reply = client
        .collect(CollectRequest { grace_secs: grace })
        .await
        .map_err(failed)?;
    println!("{}", Collected::from(reply.into_inner()));
    Ok(())
}

/// Prints a check's report; a damaged store exits 1.
fn report(report: &StoreReport) -> anyhow::Result<()> {
    println!("{report}");
    if !report.is_healthy() {
        std::process::exit(1);
    }
    Ok(())
}

fn store_cmd(store: SledStore, config: &MdaConfig, cmd: StoreCmd) -> anyhow::Result<()> {
    let print = |r: &FolderReport| println!("{r}");
    let hostname = &config.hostname;
    let grace = |asked: Option<u64>| {
        std::time::Duration::from_secs(asked.unwrap_or(config.store.gc_grace_secs))
    };
    match cmd {
        StoreCmd::Check { grace: asked } => report(&store.check(grace(asked))?),
        StoreCmd::Gc { grace: asked } => {
            println!("{}", store.collect_blobs(grace(asked))?);
            Ok(())
        }
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
    // Everything the agent creates from here on is its own (0600/0700).
    facteur_daemon::files::private_umask();
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
            let live = match &cmd {
                StoreCmd::Check { grace } => Some((true, *grace)),
                StoreCmd::Gc { grace } => Some((false, *grace)),
                _ => None,
            };
            if let Some((check, grace)) = live
                && facteur_daemon::admin::listening(&config.grpc.listen).await
            {
                return housekeeping_over_grpc(&config, check, grace).await;
            }
            let store = facteur_mda::open_store(&config).context(
                "opening the store (is facteur-mda running? stop it first: only one process opens the store)",
            )?;
            tokio::task::spawn_blocking(move || store_cmd(store, &config, cmd)).await?
        }
        Cmd::User(cmd) => {
            if facteur_daemon::admin::listening(&config.grpc.listen).await {
                user_over_grpc(&config, cmd).await
            } else {
                tokio::task::spawn_blocking(move || user_offline(&config, cmd)).await?
            }
        }
    }
}
