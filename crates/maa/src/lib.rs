//! facteur MAA, the mail access agent: POP3 and IMAP for mail clients, over the
//! MDA's `Mailbox` and `Auth` services (or a passwd-file for passwords).
//! Stateless: every mailbox lives in the MDA.

pub mod config;
pub mod imap;
pub mod mda;
pub mod pop3;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use facteur_daemon::conn::{ConnOptions, Endpoint, serve_sessions};
use facteur_daemon::passwd_file::PasswdFile;
use facteur_daemon::transcript::{Proto, Transcripts};
use facteur_daemon::{Shutdown, grpc, listener, tls};
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::mailbox::mailbox_client::MailboxClient;

pub use config::MaaConfig;

/// Serve POP3 and IMAP until shutdown.
pub async fn run(config: MaaConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    // Up first, so /healthz answers 503 until the agent serves.
    let _metrics =
        facteur_daemon::metrics_http::start(&config.metrics_listen, "maa", &shutdown).await?;
    let acceptor = tls::acceptor(&config.tls)?;
    let channel = grpc::channel(&config.mda_url, None, &config.grpc_tls)?;
    let mailbox = MailboxClient::new(channel.clone());
    let auth = AuthClient::new(channel.clone());
    let delay = Duration::from_millis(config.auth_failure_delay_ms);
    let passwd = if config.passwd_file.is_empty() {
        None
    } else {
        Some(
            PasswdFile::open(config.passwd_file.as_ref())
                .await
                .context("passwd_file")?,
        )
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = Vec::new();

    let pop3 = Arc::new(pop3::Pop3Shared {
        hostname: config.hostname.clone(),
        mda: mda::GrpcMda::from_clients(mailbox.clone(), auth.clone())
            .with_passwd_file(passwd.clone()),
        tls_available: acceptor.is_some(),
        max_line: config.pop3.max_line,
        auth_failure_delay: delay,
        max_auth_failures: config.max_auth_failures,
        max_errors: config.pop3.max_errors,
        // The lock must outlive a silent client, or it could expire mid-session.
        lock_ttl: Duration::from_secs(
            config
                .pop3
                .lock_ttl_secs
                .max(config.pop3.limits.idle_timeout_secs.saturating_add(60)),
        ),
    });
    let transcripts = Transcripts::open(&config.transcript, "facteur-maa", &config.hostname)
        .context("opening the transcript file")?;
    let pop3_opts = ConnOptions::new(&config.pop3.limits, acceptor.clone(), 4096).with_transcript(
        &transcripts,
        Proto::Pop3,
        "pop3",
    );
    for (addr, implicit) in [
        (&config.pop3.listen, false),
        (&config.pop3.tls_listen, true),
    ] {
        if addr.is_empty() {
            continue;
        }
        if implicit && acceptor.is_none() {
            bail!("pop3.tls_listen needs tls.cert and tls.key");
        }
        let l = listener::bind(addr).await?;
        let name = if implicit { "pop3s" } else { "pop3" };
        ready.push(format!("{name}={}", l.local_addr()?));
        let (shared, opts, sd) = (Arc::clone(&pop3), pop3_opts.clone(), shutdown.clone());
        let limits = config.pop3.limits.clone();
        tasks.spawn(async move {
            serve_sessions(
                l,
                Endpoint {
                    protocol: name,
                    limits,
                    busy: b"-ERR [SYS/TEMP] Too many connections\r\n",
                    implicit_tls: implicit,
                },
                opts,
                sd,
                move |peer, tls| pop3::Pop3Session::new(Arc::clone(&shared), peer, tls),
            )
            .await;
            anyhow::Ok(())
        });
    }

    let imap = Arc::new(imap::ImapContext {
        config: imap::ImapConfig {
            hostname: config.hostname.clone(),
            max_literal: config.imap.max_literal,
            max_command: config.imap.max_literal.saturating_add(64 * 1024),
            max_literal_pre_auth: config.imap.max_literal_pre_auth,
            max_command_pre_auth: config.imap.max_command_pre_auth,
            tls_handshake_timeout: config.imap.limits.tls_handshake_timeout(),
            deadlines: config.imap.limits.deadlines(),
            auth_failure_delay: delay,
            max_auth_failures: config.max_auth_failures,
            idle_timeout: config.imap.limits.idle_timeout(),
            max_bad_commands: config.imap.max_bad_commands,
        },
        mda: mda::GrpcMda::new(channel.clone()).with_passwd_file(passwd),
        tls: acceptor.clone(),
        transcripts: transcripts.clone(),
        shutdown: shutdown.clone(),
    });
    for (addr, implicit) in [
        (&config.imap.listen, false),
        (&config.imap.tls_listen, true),
    ] {
        if addr.is_empty() {
            continue;
        }
        if implicit && acceptor.is_none() {
            bail!("imap.tls_listen needs tls.cert and tls.key");
        }
        let l = listener::bind(addr).await?;
        let name = if implicit { "imaps" } else { "imap" };
        ready.push(format!("{name}={}", l.local_addr()?));
        let (ctx, sd) = (Arc::clone(&imap), shutdown.clone());
        let limits = config.imap.limits.clone();
        tasks.spawn(async move {
            listener::serve(
                l,
                name,
                limits,
                b"* BYE Too many connections\r\n",
                sd.clone(),
                move |tcp, peer| {
                    let (ctx, sd) = (Arc::clone(&ctx), sd.clone());
                    async move {
                        // `serve` logs how the connection ended and says BYE on shutdown;
                        // one that does not finish soon after is dropped.
                        let _ = tcp.set_nodelay(true);
                        let stream = facteur_daemon::stream::Stream::Plain(tcp);
                        let serve = imap::serve(stream, peer, ctx, implicit);
                        tokio::pin!(serve);
                        tokio::select! {
                            _ = &mut serve => {}
                            _ = async {
                                sd.cancelled().await;
                                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                            } => {}
                        }
                    }
                },
            )
            .await;
            anyhow::Ok(())
        });
    }
    if ready.is_empty() {
        bail!("no listener configured");
    }
    facteur_daemon::announce_ready("facteur-maa", &ready.join(" "));
    while let Some(done) = tasks.join_next().await {
        done.context("listener task")??;
    }
    Ok(())
}
