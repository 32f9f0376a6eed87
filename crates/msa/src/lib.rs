//! facteur MSA, the mail submission agent (RFC 6409): takes authenticated
//! submission from mail clients on 587 (STARTTLS) and 465 (implicit TLS, RFC 8314),
//! fixes up the headers and hands the message to its next hop: the MTA over gRPC
//! `Relay` (the default) or any SMTP server (`next_hop`, module `hop`).

pub mod config;
pub mod headers;
pub mod hop;
pub mod submit;

use std::sync::Arc;

use anyhow::{Context, bail};
use facteur_daemon::conn::{ConnOptions, Endpoint, serve_sessions};
use facteur_daemon::passwd_file::PasswdFile;
use facteur_daemon::smtp_server::SmtpSession;
use facteur_daemon::transcript::{Proto, Transcripts};
use facteur_daemon::{Shutdown, grpc, listener, tls};
use facteur_protocol::smtp::server::{ServerConfig, ServerSession};
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::relay::relay_client::RelayClient;

pub use config::MsaConfig;

/// Serve submission until shutdown.
pub async fn run(config: MsaConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    // Up first, so /healthz answers 503 until the agent serves.
    let _metrics =
        facteur_daemon::metrics_http::start(&config.metrics_listen, "msa", &shutdown).await?;
    let Some(acceptor) = tls::acceptor(&config.tls)? else {
        bail!("the MSA needs tls.cert and tls.key: AUTH is only offered over TLS");
    };
    let transcripts = Transcripts::open(&config.transcript, "facteur-msa", &config.hostname)
        .context("opening the transcript file")?;
    let next_hop = match hop::SmtpHop::from_config(&config, transcripts.clone()).await? {
        Some(smtp) => {
            tracing::info!(next_hop = %smtp.target(), "relaying to an SMTP next hop");
            hop::NextHop::Smtp(Arc::new(smtp))
        }
        None => hop::NextHop::Grpc(hop::GrpcHop {
            relay: RelayClient::new(grpc::channel(
                &config.mta_url,
                config.source_address,
                &config.grpc_tls,
            )?),
            url: config.mta_url.clone(),
            transcripts: transcripts.clone(),
        }),
    };
    let passwords = if config.passwd_file.is_empty() {
        submit::Passwords::Mda(AuthClient::new(grpc::channel(
            &config.auth_url,
            config.source_address,
            &config.grpc_tls,
        )?))
    } else {
        submit::Passwords::File(
            PasswdFile::open(config.passwd_file.as_ref())
                .await
                .context("passwd_file")?,
        )
    };
    let shared = Arc::new(submit::Shared {
        next_hop,
        passwords,
        config: config.clone(),
    });
    let session_config = ServerConfig {
        hostname: config.hostname.clone(),
        lmtp: false,
        max_line: config.max_line,
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_errors: config.max_errors,
        soft_error_limit: config.soft_error_limit,
        error_sleep: std::time::Duration::from_millis(config.error_sleep_ms),
        starttls: true,
        auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
        require_auth: true,
        chunking: true,
    };
    let opts = ConnOptions::new(&config.limits, Some(acceptor), 16 * 1024).with_transcript(
        &transcripts,
        Proto::Smtp,
        "submission",
    );
    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = Vec::new();
    for (addr, implicit) in [
        (&config.submission_listen, false),
        (&config.submissions_listen, true),
    ] {
        if addr.is_empty() {
            continue;
        }
        let l = listener::bind(addr).await?;
        let name = if implicit {
            "submissions"
        } else {
            "submission"
        };
        ready.push(format!("{name}={}", l.local_addr()?));
        let (shared, session_config) = (Arc::clone(&shared), session_config.clone());
        let (sd, limits, opts) = (shutdown.clone(), config.limits.clone(), opts.clone());
        tasks.spawn(async move {
            serve_sessions(
                l,
                Endpoint {
                    protocol: name,
                    limits,
                    busy: b"421 4.7.0 Too many connections, try again later\r\n",
                    implicit_tls: implicit,
                },
                opts,
                sd,
                move |peer, tls| {
                    SmtpSession::new(
                        ServerSession::new(session_config.clone(), tls),
                        submit::SubmitHandler::new(Arc::clone(&shared)),
                        peer,
                        shared.config.hostname.clone(),
                    )
                },
            )
            .await;
            anyhow::Ok(())
        });
    }
    if ready.is_empty() {
        bail!("no listener configured");
    }
    facteur_daemon::announce_ready("facteur-msa", &ready.join(" "));
    while let Some(done) = tasks.join_next().await {
        done.context("listener task")??;
    }
    Ok(())
}
