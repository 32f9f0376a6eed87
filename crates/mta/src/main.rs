//! `facteur-mta`: serve (the default), or administer the running MTA's queue
//! with `queue list|show|flush|delete|hold|release` over its gRPC listener.

use anyhow::Context;
use clap::{Parser, Subcommand};
use facteur_daemon::Shutdown;
use facteur_daemon::config::{ConfigArgs, ConfigCmd};
use facteur_mta::MtaConfig;
use facteur_mta::admin::render_list;
use facteur_rpc::admin::queue_admin_client::QueueAdminClient;
use facteur_rpc::admin::{FlushRequest, ListQueueRequest, QueueIdRequest, RecipientState};
use tonic::transport::Channel;

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
    /// Inspect and act on the running MTA's queue (over its gRPC listener, `grpc.listen`).
    #[command(subcommand)]
    Queue(QueueCmd),
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Every queued message, as `postqueue -p` prints it (`!` after a held id).
    List,
    /// One message: envelope, status of each recipient, and its headers.
    Show { id: String },
    /// Make every message (or ID) due now and start delivering; held ones stay.
    Flush { id: Option<String> },
    /// Remove a message from the queue, without delivering or bouncing it.
    Delete { id: String },
    /// Put a message on hold: it is not delivered until released.
    Hold { id: String },
    /// Release a held message (due now).
    Release { id: String },
}

/// The client of the running MTA's admin service: the one place it is made.
fn client(config: &MtaConfig) -> anyhow::Result<QueueAdminClient<Channel>> {
    Ok(QueueAdminClient::new(facteur_daemon::admin::channel(
        &config.grpc.listen,
        &config.grpc_tls,
    )?))
}

/// A failed admin call as the operator should read it: an unreachable MTA
/// says where it was looked for; any other refusal is the MTA's own message.
fn rpc_error(at: &str, what: &str, s: tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => anyhow::anyhow!(
            "{what}: no answer from facteur-mta at {at} (is it running?): {}",
            s.message()
        ),
        _ => anyhow::anyhow!("{what}: {}", s.message()),
    }
}

fn state(s: RecipientState) -> &'static str {
    match s {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed => "failed",
        RecipientState::Unspecified => "unknown",
    }
}

async fn queue_cmd(config: &MtaConfig, cmd: QueueCmd) -> anyhow::Result<()> {
    let mut c = client(config)?;
    let at = facteur_daemon::admin::url(&config.grpc.listen);
    let call = |what: &'static str| move |s: tonic::Status| rpc_error(&at, what, s);
    let id_req = |id: &str| QueueIdRequest { id: id.to_owned() };
    match cmd {
        QueueCmd::List => {
            let list = c
                .list(ListQueueRequest {})
                .await
                .map_err(call("listing the queue"))?;
            print!("{}", render_list(&list.into_inner().entries));
        }
        QueueCmd::Show { id } => {
            let shown = c
                .show(id_req(&id))
                .await
                .map_err(call("showing the entry"))?
                .into_inner();
            let e = shown.entry.context("the MTA sent no entry")?;
            let date = facteur_daemon::trace::rfc5322_date;
            println!("id: {}{}", e.id, if e.held { " (held)" } else { "" });
            println!("arrival: {}", date(e.arrival));
            println!("size: {}", e.size);
            println!("sender: <{}>", e.sender);
            println!("attempts: {}", e.attempts);
            if !e.held {
                println!("next attempt: {}", date(e.next_attempt));
            }
            for r in &e.recipients {
                println!(
                    "recipient: <{}> {} {}",
                    r.address,
                    state(r.state()),
                    r.last_reply
                );
            }
            println!();
            print!(
                "{}",
                String::from_utf8_lossy(&shown.headers).replace("\r\n", "\n")
            );
        }
        QueueCmd::Flush { id } => {
            let r = c
                .flush(FlushRequest {
                    id: id.clone().unwrap_or_default(),
                })
                .await
                .map_err(call("flushing the queue"))?
                .into_inner();
            match id {
                Some(id) if r.held > 0 => anyhow::bail!("{id} is held: release it first"),
                _ => println!(
                    "{} message(s) flushed, {} held left alone",
                    r.flushed, r.held
                ),
            }
        }
        QueueCmd::Delete { id } => {
            c.delete(id_req(&id))
                .await
                .map_err(call("deleting the entry"))?;
            println!("{id}: removed");
        }
        QueueCmd::Hold { id } => {
            c.hold(id_req(&id))
                .await
                .map_err(call("holding the entry"))?;
            println!("{id}: placed on hold");
        }
        QueueCmd::Release { id } => {
            c.release(id_req(&id))
                .await
                .map_err(call("releasing the entry"))?;
            println!("{id}: released from hold");
        }
    }
    Ok(())
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
    // Everything the agent creates from here on is its own (0600/0700).
    facteur_daemon::files::private_umask();
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
        Cmd::Queue(cmd) => queue_cmd(&config, cmd).await,
    }
}
