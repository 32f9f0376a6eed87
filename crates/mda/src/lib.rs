//! facteur MDA, the mail delivery agent: the only process that opens the mailbox
//! store. Takes deliveries over gRPC `Delivery` and LMTP, serves `Mailbox` to the
//! MAA and `Auth` to the MSA and MAA.

pub mod accounts;
/// The storage seam (the `facteur-store` crate), as the MDA sees it.
pub use facteur_store as store;
pub mod auth;
pub mod config;
pub mod filing;
pub mod grpc;
pub mod lmtp;
pub mod transfer;

use std::sync::Arc;

use anyhow::Context;
use facteur_daemon::conn::{ConnOptions, Endpoint, serve_sessions};
use facteur_daemon::smtp_server::SmtpSession;
use facteur_daemon::transcript::{Proto, Transcripts};
use facteur_daemon::{Shutdown, grpc as rpc_server, listener};
use facteur_protocol::smtp::server::{ServerConfig, ServerSession};
use facteur_rpc::admin::accounts_server::AccountsServer;
use facteur_rpc::admin::store_admin_server::StoreAdminServer;
use facteur_rpc::delivery::delivery_server::DeliveryServer;
use facteur_rpc::mailbox::auth_server::AuthServer;
use facteur_rpc::mailbox::mailbox_server::MailboxServer;

pub use config::MdaConfig;
use filing::Filing;
use store::SledStore;
use store::maildir::MaildirTree;

/// Opens the mailbox store of `config` (only the MDA does).
pub fn open_store(config: &MdaConfig) -> anyhow::Result<SledStore> {
    let options = store::SledOptions {
        min_free_bytes: config.store.min_free_bytes,
    };
    SledStore::open_with(&config.data_dir, options)
        .with_context(|| format!("opening the mailbox store in {}", config.data_dir.display()))
}

/// The `[store] maildir` tree, its root created, or `None` when unset.
async fn maildir_tree(config: &MdaConfig) -> anyhow::Result<Option<Arc<MaildirTree>>> {
    let root = config.store.maildir.clone();
    if root.as_os_str().is_empty() {
        return Ok(None);
    }
    let created = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&root)).await?
    };
    created.with_context(|| format!("creating the Maildir root {}", root.display()))?;
    tracing::info!(maildir = %root.display(), "filing into Maildir");
    Ok(Some(Arc::new(
        MaildirTree::new(root, &config.hostname).with_reserve(config.store.min_free_bytes),
    )))
}

/// What the `Mailbox` service answers in Maildir mode (the MAA shows the
/// message to the user).
pub fn elsewhere_status(root: &std::path::Path) -> tonic::Status {
    let mut meta = tonic::metadata::MetadataMap::new();
    meta.insert(
        facteur_rpc::MAILBOXES_ELSEWHERE,
        tonic::metadata::MetadataValue::from_static("maildir"),
    );
    tonic::Status::with_metadata(
        tonic::Code::FailedPrecondition,
        format!(
            "mailboxes are in the Maildir at {}; serve them with an IMAP server that reads Maildir",
            root.display()
        ),
        meta,
    )
}

/// Open the store and serve gRPC (and LMTP) until shutdown.
pub async fn run(config: MdaConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    // Up first, so /healthz answers 503 until the agent serves.
    let _metrics =
        facteur_daemon::metrics_http::start(&config.metrics_listen, "mda", &shutdown).await?;
    // Checked before anything is opened: plaintext off loopback is a config error.
    let grpc_tls = rpc_server::server_tls(&config.grpc_tls, &config.grpc.listen)?;
    let transcripts = Transcripts::open(&config.transcript, "facteur-mda", &config.hostname)
        .context("opening the transcript file")?;
    // Opening replays sled's log: blocking work, kept off the async workers.
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_store(&config)).await??
    };
    let housekeeping: Arc<dyn facteur_store::Housekeeping> = Arc::new(store.clone());
    let gc_grace = std::time::Duration::from_secs(config.store.gc_grace_secs);
    let accounts = accounts::Accounts::new(Arc::new(store.clone()));
    let accounts_admin = accounts.clone();
    let aliases = config
        .aliases
        .iter()
        .map(|(from, to)| (filing::account_of(from), filing::account_of(to)))
        .collect();
    let auth = auth::Authenticator::start(accounts.clone(), &config.auth)
        .context("starting the argon2 pool")?;
    let maildir = maildir_tree(&config).await?;
    let elsewhere = maildir.as_ref().map(|t| elsewhere_status(t.root()));
    let filing = Filing {
        store: Arc::new(store),
        accounts,
        aliases: Arc::new(aliases),
        maildir,
        quota_bytes: config.store.quota_bytes,
    };
    let services = grpc::Services {
        filing: filing.clone(),
        max_message_size: config.max_message_size,
        shutdown: shutdown.clone(),
        transcripts: transcripts.clone(),
    };
    let (health, health_service) = rpc_server::health();
    {
        use tonic::server::NamedService;
        rpc_server::report_serving(
            health,
            &[
                <DeliveryServer<grpc::Services<SledStore>> as NamedService>::NAME,
                <MailboxServer<grpc::Services<SledStore>> as NamedService>::NAME,
                <AuthServer<grpc::AuthService> as NamedService>::NAME,
            ],
            &shutdown,
        )
        .await;
    }
    let router = rpc_server::server()
        .add_service(health_service)
        .add_service(DeliveryServer::new(services.clone()))
        .add_service(AuthServer::new(grpc::AuthService { auth: auth.clone() }))
        // Privileged: on this listener only (loopback or mTLS), never on LMTP's.
        .add_service(AccountsServer::new(grpc::AccountsService {
            accounts: accounts_admin,
            auth,
        }))
        .add_service(StoreAdminServer::new(grpc::StoreAdminService {
            store: Arc::clone(&housekeeping),
            grace: gc_grace,
        }));
    let router = match elsewhere {
        // Maildir mode: every Mailbox call is refused before it reaches the store.
        Some(refusal) => router.add_service(MailboxServer::with_interceptor(
            services,
            move |_: tonic::Request<()>| Err(refusal.clone()),
        )),
        None => router.add_service(MailboxServer::new(services)),
    };
    let grpc_listener = listener::bind(&config.grpc.listen).await?;
    let mut ready = vec![format!("grpc={}", grpc_listener.local_addr()?)];
    let mut tasks = tokio::task::JoinSet::new();
    {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            rpc_server::serve(grpc_listener, router, grpc_tls, shutdown)
                .await
                .context("gRPC server")
        });
    }
    if config.store.gc_interval_secs > 0 {
        let every = std::time::Duration::from_secs(config.store.gc_interval_secs);
        let collector =
            grpc::store_admin::collector(housekeeping, every, gc_grace, shutdown.clone());
        tasks.spawn(async move {
            collector.await;
            Ok(())
        });
    }
    if !config.lmtp.listen.is_empty() {
        let lmtp_listener = listener::bind(&config.lmtp.listen).await?;
        ready.push(format!("lmtp={}", lmtp_listener.local_addr()?));
        let session_config = ServerConfig {
            hostname: config.hostname.clone(),
            lmtp: true,
            max_line: config.lmtp.max_line,
            max_message_size: config.max_message_size,
            max_recipients: config.lmtp.max_recipients,
            chunking: true,
            ..ServerConfig::default()
        };
        let opts = ConnOptions::new(&config.lmtp.limits, None, 16 * 1024).with_transcript(
            &transcripts,
            Proto::Lmtp,
            "lmtp",
        );
        let hostname = config.hostname.clone();
        let sd = shutdown.clone();
        tasks.spawn(async move {
            serve_sessions(
                lmtp_listener,
                Endpoint {
                    protocol: "lmtp",
                    limits: config.lmtp.limits.clone(),
                    busy: b"421 4.7.0 Too many connections\r\n",
                    implicit_tls: false,
                },
                opts,
                sd,
                move |peer, tls| {
                    SmtpSession::new(
                        ServerSession::new(session_config.clone(), tls),
                        lmtp::LmtpHandler::new(filing.clone()),
                        peer,
                        hostname.clone(),
                    )
                },
            )
            .await;
            Ok(())
        });
    }
    facteur_daemon::announce_ready("facteur-mda", &ready.join(" "));
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shutdown.trigger();
                return Err(e);
            }
            Err(e) => {
                shutdown.trigger();
                return Err(e.into());
            }
        }
    }
    Ok(())
}
