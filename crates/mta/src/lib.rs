//! facteur MTA, the mail transfer agent: owns the durable queue; takes mail from
//! the MSA (gRPC `Relay`) and over SMTP (local domains, or any domain from
//! trusted or authenticated clients); routes each domain by its transport:
//! local domains to the MDA, other domains by DNS MX to their MTAs by default.

pub mod admin;
pub mod bounce;
pub mod config;
pub mod deliver;
pub mod dns;
pub mod intake;
pub mod queue;
pub mod routing;

use std::sync::Arc;

use anyhow::Context;
use facteur_daemon::conn::{ConnOptions, Endpoint, serve_sessions};
use facteur_daemon::smtp_server::SmtpSession;
use facteur_daemon::transcript::{Proto, Transcripts};
use facteur_daemon::{Shutdown, grpc as rpc_server, listener, tls};
use facteur_protocol::smtp::server::{ServerConfig, ServerSession};
use facteur_rpc::admin::queue_admin_server::QueueAdminServer;
use facteur_rpc::delivery::delivery_client::DeliveryClient;
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::relay::relay_server::RelayServer;

pub use config::MtaConfig;

/// Open the queue and serve SMTP, gRPC `Relay` and the delivery loop until shutdown.
pub async fn run(config: MtaConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    // Up first, so /healthz answers 503 until the agent serves.
    let metrics_server =
        facteur_daemon::metrics_http::start(&config.metrics_listen, "mta", &shutdown).await?;
    let config = Arc::new(config);
    let transcripts = Transcripts::open(&config.transcript, "facteur-mta", &config.hostname)
        .context("opening the transcript file")?;
    // Checked before anything is opened: a bad value is a config error.
    let grpc_tls = rpc_server::server_tls(&config.grpc_tls, &config.grpc.listen)?;
    let mda = DeliveryClient::new(rpc_server::channel(
        &config.mda.url,
        config.relay.source_address,
        &config.grpc_tls,
    )?);
    let routing = Arc::new(routing::Routing::new(&config, mda).context("configuration")?);
    if config.smtp.auth && (!config.smtp.tls.is_set() || config.smtp.listen.is_empty()) {
        anyhow::bail!(
            "configuration: smtp.auth needs smtp.listen and smtp.tls (AUTH is offered after STARTTLS only)"
        );
    }
    let auth = if config.smtp.auth {
        let url = if config.smtp.auth_url.is_empty() {
            &config.mda.url
        } else {
            &config.smtp.auth_url
        };
        Some(AuthClient::new(rpc_server::channel(
            url,
            config.relay.source_address,
            &config.grpc_tls,
        )?))
    } else {
        None
    };
    let queue = {
        let dir = config.data_dir.clone();
        let opts = queue::QueueOptions {
            min_free_bytes: config.queue.min_free_bytes,
        };
        tokio::task::spawn_blocking(move || queue::Queue::open(&dir, opts))
            .await?
            .with_context(|| format!("opening the queue in {}", config.data_dir.display()))?
    };
    let queue_admin = admin::QueueAdminService {
        queue: queue.clone(),
    };
    let intake = Arc::new(intake::Intake {
        queue: queue.clone(),
        config: Arc::clone(&config),
        routing: Arc::clone(&routing),
        auth,
    });
    let connector = if config.relay.tls_ca.as_os_str().is_empty() {
        tls::opportunistic_connector()?
    } else {
        tls::connector(&config.relay.tls_ca)?
    };
    let dns = dns::MxResolver::new(&config.dns.nameservers)?;
    let queue_for_gauges = queue.clone();
    let deliverer = Arc::new(deliver::Deliverer::new(
        queue,
        Arc::clone(&config),
        routing,
        dns,
        connector,
        transcripts.clone(),
    ));

    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = Vec::new();

    let (health, health_service) = rpc_server::health();
    rpc_server::report_serving(
        health,
        &[<RelayServer<intake::RelayService> as tonic::server::NamedService>::NAME],
        &shutdown,
    )
    .await;
    let router = rpc_server::server()
        .add_service(health_service)
        .add_service(RelayServer::new(intake::RelayService(Arc::clone(&intake))))
        // Privileged: on this listener only (loopback or mTLS), never on SMTP's.
        .add_service(QueueAdminServer::new(queue_admin));
    let grpc_listener = listener::bind(&config.grpc.listen).await?;
    ready.push(format!("grpc={}", grpc_listener.local_addr()?));
    {
        let sd = shutdown.clone();
        tasks.spawn(async move {
            rpc_server::serve(grpc_listener, router, grpc_tls, sd)
                .await
                .context("gRPC server")
        });
    }

    if !config.smtp.listen.is_empty() {
        let smtp_listener = listener::bind(&config.smtp.listen).await?;
        ready.push(format!("smtp={}", smtp_listener.local_addr()?));
        let acceptor = tls::acceptor(&config.smtp.tls)?;
        let session_config = ServerConfig {
            hostname: config.hostname.clone(),
            lmtp: false,
            max_line: config.smtp.max_line,
            max_message_size: config.max_message_size,
            max_recipients: config.smtp.max_recipients,
            max_errors: config.smtp.max_errors,
            soft_error_limit: config.smtp.soft_error_limit,
            error_sleep: std::time::Duration::from_millis(config.smtp.error_sleep_ms),
            starttls: acceptor.is_some(),
            auth_mechanisms: if config.smtp.auth {
                vec!["PLAIN".into(), "LOGIN".into()]
            } else {
                Vec::new()
            },
            require_auth: false,
            chunking: true,
        };
        let opts = ConnOptions::new(&config.smtp.limits, acceptor, 16 * 1024).with_transcript(
            &transcripts,
            Proto::Smtp,
            "smtp",
        );
        let sd = shutdown.clone();
        let limits = config.smtp.limits.clone();
        let hostname = config.hostname.clone();
        tasks.spawn(async move {
            serve_sessions(
                smtp_listener,
                Endpoint {
                    protocol: "smtp",
                    limits,
                    busy: b"421 4.7.0 Too many connections, try again later\r\n",
                    implicit_tls: false,
                },
                opts,
                sd,
                move |peer, tls| {
                    SmtpSession::new(
                        ServerSession::new(session_config.clone(), tls),
                        intake::InboundHandler::new(Arc::clone(&intake)),
                        peer,
                        hostname.clone(),
                    )
                },
            )
            .await;
            Ok(())
        });
    }

    {
        let sd = shutdown.clone();
        tasks.spawn(async move {
            deliverer.run(sd).await;
            Ok(())
        });
    }
    if metrics_server.is_some() {
        tokio::spawn(queue_gauges(queue_for_gauges, shutdown.clone()));
    }

    facteur_daemon::announce_ready("facteur-mta", &ready.join(" "));
    while let Some(done) = tasks.join_next().await {
        let err = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => e.into(),
        };
        shutdown.trigger();
        return Err(err);
    }
    Ok(())
}

/// How often the queue gauges are refreshed (a scan of the index's keys).
const QUEUE_GAUGES_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Keep `facteur_queue_messages` and `facteur_queue_oldest_seconds` current until shutdown.
async fn queue_gauges(queue: queue::Queue, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(QUEUE_GAUGES_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match queue.stats().await {
            Ok(s) => {
                let age = s.oldest_created.map_or(0, |t| {
                    facteur_daemon::trace::now_unix().saturating_sub(t).max(0) as u64
                });
                facteur_daemon::metrics::queue(s.messages, std::time::Duration::from_secs(age));
            }
            Err(e) => tracing::warn!(error = %e, "reading the queue for its gauges failed"),
        }
    }
}
