//! One submission session's decisions: AUTH against the MDA's `Auth` service,
//! recipients checked with the MTA, and the message streamed to `Relay.Submit`.
//! The client gets 250 only once the MTA said the message is durably queued.

use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::smtp_server::{Client, SmtpHandler};
use facteur_daemon::trace::{Hop, now_unix, rfc5322_date};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::{Body, MailParams, Param};
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::mailbox::VerifyRequest;
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::relay::relay_client::RelayClient;
use facteur_rpc::relay::{
    Envelope, MessageEnd, RecipientQuery, SubmitReply, SubmitRequest, submit_request,
};
use facteur_rpc::replies;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::config::MsaConfig;
use crate::headers::{Fixes, HeaderFixer};

/// What every session shares.
pub struct Shared {
    pub config: MsaConfig,
    pub relay: RelayClient<Channel>,
    pub auth: AuthClient<Channel>,
}

struct Transfer {
    tx: mpsc::Sender<SubmitRequest>,
    call: JoinHandle<Result<tonic::Response<SubmitReply>, tonic::Status>>,
    fixer: HeaderFixer,
    received: String,
    message_id: String,
    date: String,
    failed: Option<Reply>,
    sent: u64,
}

pub struct SubmitHandler {
    shared: Arc<Shared>,
    from: Option<(String, MailParams)>,
    rcpts: Vec<String>,
    transfer: Option<Transfer>,
}

impl SubmitHandler {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            from: None,
            rcpts: Vec::new(),
            transfer: None,
        }
    }
}

fn new_id() -> String {
    format!("{:016x}{:08x}", rand::random::<u64>(), now_unix() as u32).to_ascii_uppercase()
}

impl SmtpHandler for SubmitHandler {
    async fn auth(&mut self, client: &Client, user: &str, password: &Secret<String>) -> Reply {
        let request = VerifyRequest {
            user: user.to_owned(),
            password: password.expose().clone(),
            service: "smtp".into(),
            remote_addr: client.peer.ip().to_string(),
        };
        match self.shared.auth.clone().verify(request).await {
            Ok(r) if r.get_ref().ok => codes::auth_ok(),
            Ok(_) => {
                // RFC 4954 §4 leaves the pace to us: slow down password guessing.
                tokio::time::sleep(Duration::from_millis(
                    self.shared.config.auth_failure_delay_ms,
                ))
                .await;
                codes::auth_failed()
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = %status.message(), "Auth.Verify failed");
                // RFC 4954 §6: 454 4.7.0 temporary authentication failure.
                Reply::new(454, "4.7.0", "Temporary authentication failure")
            }
        }
    }

    async fn mail_from(
        &mut self,
        client: &Client,
        from: &ReversePath,
        params: &MailParams,
    ) -> Reply {
        let from = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        if self.shared.config.enforce_sender
            && let Some(user) = &client.user
            && !from.eq_ignore_ascii_case(user)
        {
            return Reply::new(
                553,
                "5.7.1",
                &format!("<{from}>: Sender address rejected: not owned by user {user}"),
            );
        }
        self.from = Some((from, params.clone()));
        Reply::new(250, "2.1.0", "Sender OK")
    }

    async fn rcpt(&mut self, _: &Client, to: &ForwardPath, _: &[Param]) -> Reply {
        let ForwardPath::Mailbox(m) = to else {
            return Reply::new(550, "5.1.1", "Postmaster of which domain? Name it.");
        };
        let rcpt = m.to_string();
        let query = RecipientQuery {
            rcpt_to: rcpt.clone(),
        };
        let reply = match self.shared.relay.clone().check_recipient(query).await {
            Ok(r) => r
                .into_inner()
                .reply
                .as_ref()
                .map_or_else(codes::local_error, replies::to_reply),
            Err(status) => replies::from_status("Relay.CheckRecipient", &status),
        };
        if reply.is_positive() {
            self.rcpts.push(rcpt);
        }
        reply
    }

    async fn data_start(&mut self, client: &Client) -> Reply {
        let Some((from, params)) = self.from.clone() else {
            return codes::bad_sequence();
        };
        let id = new_id();
        let config = &self.shared.config;
        let for_rcpt = (self.rcpts.len() == 1).then(|| self.rcpts[0].as_str());
        let received = Hop {
            from_helo: &client.helo,
            from_ip: Some(client.peer.ip()),
            by: &config.hostname,
            agent: "facteur-msa",
            with: client.with_protocol(false),
            id: &id,
            for_rcpt,
        }
        .received(now_unix());
        let envelope = Envelope {
            message_key: format!("msa-{id}"),
            mail_from: from,
            rcpt_to: self.rcpts.clone(),
            smtputf8: params.smtputf8,
            body: match params.body {
                Some(Body::EightBitMime) => "8BITMIME".into(),
                Some(Body::SevenBit) => "7BIT".into(),
                _ => String::new(),
            },
            authenticated_user: client.user.clone().unwrap_or_default(),
            client_helo: client.helo.clone(),
            client_addr: client.peer.ip().to_string(),
            size_hint: params.size.unwrap_or(0),
            submitter_host: config.hostname.clone(),
        };
        let (tx, rx) = mpsc::channel(8);
        let first = SubmitRequest {
            part: Some(submit_request::Part::Envelope(envelope)),
        };
        if tx.send(first).await.is_err() {
            return codes::local_error();
        }
        let mut relay = self.shared.relay.clone();
        let call = tokio::spawn(async move {
            relay
                .submit(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        self.transfer = Some(Transfer {
            tx,
            call,
            fixer: HeaderFixer::new(config.max_header_size),
            received,
            message_id: format!("<{id}@{}>", config.hostname),
            date: rfc5322_date(now_unix()),
            failed: None,
            sent: 0,
        });
        codes::start_data()
    }

    async fn data_chunk(&mut self, chunk: Vec<u8>) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        if t.failed.is_some() {
            return;
        }
        let fixes = Fixes {
            received: &t.received,
            message_id: &t.message_id,
            date: &t.date,
        };
        let out = match t.fixer.push(&chunk, &fixes) {
            Ok(out) => out,
            Err(e) => {
                t.failed = Some(Reply::new(552, "5.3.4", &e.to_string()));
                return;
            }
        };
        if !out.is_empty() {
            send_chunks(t, out).await;
        }
    }

    async fn data_end(&mut self, _: &Client) -> Vec<Reply> {
        let Some(mut t) = self.transfer.take() else {
            return vec![codes::local_error()];
        };
        if let Some(reply) = t.failed.take() {
            t.call.abort();
            return vec![reply];
        }
        let fixes = Fixes {
            received: &t.received,
            message_id: &t.message_id,
            date: &t.date,
        };
        let tail = t.fixer.finish(&fixes);
        if !tail.is_empty() {
            send_chunks(&mut t, tail).await;
        }
        // Only a complete message gets the end marker: the MTA queues nothing without it.
        let end = SubmitRequest {
            part: Some(submit_request::Part::End(MessageEnd { size: t.sent })),
        };
        let _ = t.tx.send(end).await;
        let Transfer { tx, call, .. } = t;
        drop(tx);
        let reply = match call.await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                tracing::info!(queue_id = %r.queue_id, "submitted");
                Reply::new(250, "2.0.0", &format!("Ok: queued as {}", r.queue_id))
            }
            Ok(Err(status)) => replies::from_status("Relay.Submit", &status),
            Err(e) => {
                tracing::error!(error = %e, "submit task failed");
                codes::local_error()
            }
        };
        self.from = None;
        self.rcpts.clear();
        vec![reply]
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
        if let Some(t) = self.transfer.take() {
            // Dropping the call cancels the stream: the MTA queues nothing.
            t.call.abort();
        }
    }
}

async fn send_chunks(t: &mut Transfer, bytes: Vec<u8>) {
    for piece in bytes.chunks(facteur_rpc::CHUNK_SIZE) {
        t.sent += piece.len() as u64;
        let req = SubmitRequest {
            part: Some(submit_request::Part::Chunk(piece.to_vec())),
        };
        if t.tx.send(req).await.is_err() {
            // The call ended early; its error is reported at the end of data.
            return;
        }
    }
}
