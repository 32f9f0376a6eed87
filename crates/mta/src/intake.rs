//! Taking mail in: the gRPC `Relay` service (submission from the MSA) and SMTP on
//! port 25 (from other MTAs, for local domains only; to any domain only from a
//! trusted network or an authenticated client: never an open relay). Both
//! spool the message with a `Received:` header and answer only once it is queued.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use facteur_daemon::logging::{addr, addrs, clean};
use facteur_daemon::metrics::{self, Outcome};
use facteur_daemon::smtp_server::{Client, SmtpHandler};
use facteur_daemon::trace::{Hop, HopCounter, now_unix};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, Mailbox, ReversePath};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::{Body, MailParams, Param};
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::mailbox::VerifyRequest;
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::relay::relay_server::Relay;
use facteur_rpc::relay::{MailReply, RecipientQuery, RecipientVerdict, SubmitReply, SubmitRequest};
use facteur_rpc::replies;
use facteur_rpc::stream as rpc_stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::config::MtaConfig;
use crate::queue::{Envelope, Queue, QueueError, SpoolWriter};
use crate::routing::{Routing, Transport};

/// What both intakes share.
pub struct Intake {
    pub queue: Queue,
    pub config: Arc<MtaConfig>,
    pub routing: Arc<Routing>,
    /// The `Auth` service for AUTH on port 25 (`[smtp] auth`); `None`: no AUTH.
    pub auth: Option<AuthClient<Channel>>,
}

/// RFC 4954 leaves the pace to the server: a wrong password on port 25 waits
/// this long before its 535 (slows guessing; the MDA throttles too).
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Intake {
    /// May this recipient be accepted? Local domains ask the MDA they are
    /// delivered to (a domain routed to LMTP or SMTP is accepted here and
    /// checked by that server at delivery, bouncing when it refuses); other
    /// domains only when the client may relay (`may_relay`).
    pub async fn check_recipient(&self, rcpt: &str, may_relay: bool) -> Reply {
        let domain = domain_of(rcpt);
        if self.config.is_local(domain) {
            let mda = match self.routing.routes.route(domain, true) {
                Transport::Grpc(url) => self.routing.delivery(url.as_deref()),
                _ => return Reply::new(250, "2.1.5", "Recipient OK"),
            };
            let Some(mut mda) = mda else {
                return codes::local_error();
            };
            let query = RecipientQuery {
                rcpt_to: rcpt.to_owned(),
            };
            match mda.check_recipient(query).await {
                Ok(r) => r
                    .into_inner()
                    .reply
                    .as_ref()
                    .map_or_else(codes::local_error, replies::to_reply),
                Err(status) => replies::from_status("Delivery.CheckRecipient", &status),
            }
        } else if may_relay {
            // An address literal names the host itself (RFC 5321 §5.1): one in
            // an internal network is refused now rather than bounced later.
            if domain.starts_with('[')
                && let Ok(lit) = facteur_protocol::address::AddressLiteral::parse(domain)
                && !self.routing.may_connect(lit.ip())
            {
                return Reply::new(
                    550,
                    "5.7.1",
                    &format!("<{rcpt}>: address literal in an internal network, not relayed"),
                );
            }
            Reply::new(250, "2.1.5", "Recipient OK")
        } else {
            // RFC 5321 §3.6.2 / RFC 2505: relay only for our own domains.
            Reply::new(554, "5.7.1", "Relay access denied")
        }
    }

    /// Start spooling a message: the spool file begins with the envelope, then
    /// this hop's Received header.
    async fn start(&self, hop: Hop<'_>, envelope: Envelope) -> Result<SpoolWriter, QueueError> {
        let mut writer = self
            .queue
            .writer(self.config.max_message_size, envelope)
            .await?;
        let id = writer.id().to_owned();
        let header = Hop { id: &id, ..hop }.received(now_unix());
        writer.write(header.as_bytes()).await?;
        writer.end_preamble();
        Ok(writer)
    }
}

/// RFC 5321 §6.3: a message that crossed too many hops is looping.
fn too_many_hops() -> Reply {
    Reply::new(554, "5.4.6", "Too many hops: mail loop detected")
}

fn queue_reply(result: Result<(String, bool), QueueError>) -> Reply {
    match result {
        Ok((id, _)) => Reply::new(250, "2.0.0", &format!("Ok: queued as {id}")),
        Err(QueueError::TooBig(_)) => codes::message_too_big(),
        Err(e) if e.is_full() => {
            tracing::warn!(error = %e, "queue disk full: message refused");
            codes::insufficient_storage()
        }
        Err(e) => {
            tracing::error!(error = %e, "queueing failed");
            codes::local_error()
        }
    }
}

/// The gRPC status for a queue error: a full disk is `RESOURCE_EXHAUSTED`,
/// which the MSA answers with 452 4.3.1; anything else `UNAVAILABLE` (451).
fn queue_status(e: &QueueError) -> Status {
    if e.is_full() {
        tracing::warn!(error = %e, "queue disk full: submission refused");
        Status::resource_exhausted("insufficient system storage")
    } else {
        tracing::error!(error = %e, "queueing failed");
        Status::unavailable("queue unavailable")
    }
}

/// Port 25: one connection's transaction.
pub struct InboundHandler {
    intake: Arc<Intake>,
    from: Option<String>,
    /// SMTPUTF8 and BODY=8BITMIME as declared on MAIL.
    declared: (bool, bool),
    rcpts: Vec<String>,
    writer: Option<SpoolWriter>,
    /// The first spool write error of this message (answered at its end).
    write_error: Option<QueueError>,
    /// Counts `Received:` fields and keeps the Message-ID for the log.
    hops: HopCounter,
    /// Bytes of the message so far.
    size: u64,
    /// SHA-256 of the envelope and of the bytes as the client sent them.
    content: Sha256,
}

/// The idempotency key of a message taken over SMTP: SMTP has none, and the
/// MTA-to-MTA hop is at-least-once (RFC 1047: a sender that dies after our
/// 250 but before it records the delivery sends again, and so does one that
/// lost our 250 when we died). The same envelope with the same bytes (which
/// carry the sender's own `Received:` line and Message-ID) is the same message
/// resent, so it maps to the first copy instead of being queued twice.
fn content_key(content: Sha256) -> String {
    format!("smtp:{}", hex::encode(content.finalize()))
}

fn envelope_digest(from: &str, rcpts: &[String]) -> Sha256 {
    let mut h = Sha256::new();
    h.update(from.as_bytes());
    for r in rcpts {
        h.update([0u8]);
        h.update(r.to_ascii_lowercase().as_bytes());
    }
    h.update([0xffu8]);
    h
}

impl InboundHandler {
    pub fn new(intake: Arc<Intake>) -> Self {
        Self {
            intake,
            from: None,
            declared: (false, false),
            rcpts: Vec::new(),
            writer: None,
            write_error: None,
            hops: HopCounter::new(),
            size: 0,
            content: Sha256::new(),
        }
    }
}

impl InboundHandler {
    /// Why this client may relay to any domain, if it may (for the log).
    fn relay_rule(&self, client: &Client) -> Option<String> {
        if let Some(user) = &client.user {
            // Postfix's permit_sasl_authenticated.
            return Some(format!("authenticated as {user}"));
        }
        // Postfix's mynetworks.
        self.intake
            .routing
            .trusted
            .find(client.peer.ip())
            .map(|net| format!("trusted network {net}"))
    }
}

impl SmtpHandler for InboundHandler {
    async fn auth(&mut self, client: &Client, user: &str, password: &Secret<String>) -> Reply {
        let Some(auth) = &self.intake.auth else {
            return codes::auth_failed();
        };
        let request = VerifyRequest {
            user: user.to_owned(),
            password: password.expose().clone(),
            service: "smtp".into(),
            remote_addr: client.peer.ip().to_string(),
        };
        match auth.clone().verify(request).await {
            Ok(r) if r.get_ref().ok => codes::auth_ok(),
            Ok(_) => {
                tokio::time::sleep(AUTH_FAILURE_DELAY).await;
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
        if let ReversePath::Mailbox(m) = from
            && self.intake.config.smtp.reject_spoofed_local_senders
        {
            let sender = m.to_string();
            if self.intake.config.is_local(domain_of(&sender)) && self.relay_rule(client).is_none()
            {
                tracing::info!(from = %addr(&sender), client = %client.peer.ip(), "local sender from an untrusted client refused");
                return Reply::new(
                    550,
                    "5.7.1",
                    &format!("<{sender}>: Sender address rejected: not logged in (use submission)"),
                );
            }
        }
        // Like Postfix's queue_minfree: no new transaction while the disk is low.
        if let Err(e) = self.intake.queue.check_space().await {
            return queue_reply(Err(e));
        }
        self.from = Some(match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        });
        self.declared = (
            params.smtputf8,
            matches!(params.body, Some(Body::EightBitMime | Body::BinaryMime)),
        );
        Reply::new(250, "2.1.0", "Sender OK")
    }

    async fn rcpt(&mut self, client: &Client, to: &ForwardPath, _: &[Param]) -> Reply {
        let rcpt = match to {
            ForwardPath::Mailbox(m) => m.to_string(),
            // RFC 5321 §4.5.1: every domain must take mail for postmaster.
            ForwardPath::Postmaster => match self.intake.config.local_domains.first() {
                Some(d) => format!("postmaster@{d}"),
                None => return codes::no_such_user(),
            },
        };
        let rule = if self.intake.config.is_local(domain_of(&rcpt)) {
            None
        } else {
            self.relay_rule(client)
        };
        let reply = self.intake.check_recipient(&rcpt, rule.is_some()).await;
        if reply.is_positive() {
            if let Some(rule) = rule {
                tracing::info!(to = %addr(&rcpt), client = %client.peer.ip(), %rule, "relay permitted");
            }
            self.rcpts.push(rcpt);
        }
        reply
    }

    async fn data_start(&mut self, client: &Client) -> Reply {
        let for_rcpt = (self.rcpts.len() == 1).then(|| self.rcpts[0].as_str());
        let hop = Hop {
            from_helo: &client.helo,
            from_ip: Some(client.peer.ip()),
            by: &self.intake.config.hostname,
            agent: "facteur-mta",
            with: client.with_protocol(false),
            id: "",
            for_rcpt,
        };
        let envelope = Envelope {
            // Keyed by content at the end of data (`content_key`).
            key: Some(crate::queue::LATE_KEY.to_owned()),
            mail_from: self.from.clone().unwrap_or_default(),
            rcpts: self.rcpts.clone(),
            smtputf8: self.declared.0,
            eight_bit: self.declared.1,
            created: 0,
        };
        match self.intake.start(hop, envelope).await {
            Ok(w) => {
                self.writer = Some(w);
                self.hops = HopCounter::new();
                self.size = 0;
                self.write_error = None;
                self.content =
                    envelope_digest(self.from.as_deref().unwrap_or_default(), &self.rcpts);
                codes::start_data()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot spool");
                metrics::messages(Outcome::Refused, 1);
                queue_reply(Err(e))
            }
        }
    }

    async fn data_chunk(&mut self, chunk: Vec<u8>) {
        self.hops.feed(&chunk);
        self.size += chunk.len() as u64;
        self.content.update(&chunk);
        if self.write_error.is_none()
            && let Some(w) = self.writer.as_mut()
            && let Err(e) = w.write(&chunk).await
        {
            tracing::error!(error = %e, "spool write failed");
            self.write_error = Some(e);
        }
    }

    async fn data_end(&mut self, client: &Client) -> Vec<Reply> {
        let Some(mut writer) = self.writer.take() else {
            return vec![codes::local_error()];
        };
        if let Some(e) = self.write_error.take() {
            metrics::messages(Outcome::Refused, 1);
            return vec![queue_reply(Err(e))];
        }
        if self.hops.hops() > self.intake.config.max_hops {
            tracing::info!(
                hops = self.hops.hops(), client = %client.peer.ip(),
                message_id = %clean(&self.hops.message_id().unwrap_or_default()), "mail loop refused"
            );
            tracing::info!(hops = self.hops.hops(), "mail loop refused");
            metrics::messages(Outcome::Refused, 1);
            return vec![too_many_hops()];
        }
        let from = self.from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        writer.set_key(content_key(std::mem::replace(
            &mut self.content,
            Sha256::new(),
        )));
        let result = self.intake.queue.commit(writer).await;
        let message_id = self.hops.message_id().unwrap_or_default();
        match &result {
            Ok((id, false)) => {
                tracing::info!(
                    %id, message_id = %clean(&message_id), from = %addr(&from), size = self.size,
                    nrcpt = rcpts.len(), to = %addrs(&rcpts), client = %client.peer.ip(),
                    helo = %clean(&client.helo), "queued from SMTP"
                );
            }
            Ok((id, true)) => {
                tracing::info!(
                    %id, message_id = %clean(&message_id), from = %addr(&from),
                    client = %client.peer.ip(), "the same message again: already queued once"
                );
            }
            Err(_) => {}
        }
        let outcome = if result.is_ok() {
            Outcome::Accepted
        } else {
            Outcome::Refused
        };
        metrics::messages(outcome, 1);
        vec![queue_reply(result)]
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
        self.writer = None;
    }
}

/// The gRPC `Relay` service for the MSA.
#[derive(Clone)]
pub struct RelayService(pub Arc<Intake>);

#[tonic::async_trait]
impl Relay for RelayService {
    async fn submit(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitReply>, Status> {
        let result = self.queue_submission(request).await;
        let outcome = if result.is_ok() {
            Outcome::Accepted
        } else {
            Outcome::Refused
        };
        metrics::messages(outcome, 1);
        result
    }

    async fn check_recipient(
        &self,
        request: Request<RecipientQuery>,
    ) -> Result<Response<RecipientVerdict>, Status> {
        let reply = self
            .0
            .check_recipient(&request.into_inner().rcpt_to, true)
            .await;
        Ok(Response::new(RecipientVerdict {
            reply: Some(MailReply::from(&reply)),
        }))
    }
}

impl RelayService {
    /// `Relay.Submit`: read the envelope and the body, queue the message.
    async fn queue_submission(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitReply>, Status> {
        let peer_ip: Option<IpAddr> = request.remote_addr().map(|a| a.ip());
        let mut stream = request.into_inner();
        let env = rpc_stream::envelope(&mut stream).await?;
        if env.message_key.is_empty() || env.rcpt_to.is_empty() {
            return Err(Status::invalid_argument(
                "message key and recipients are required",
            ));
        }
        // The addresses go into the queue, Received headers and the next hop's
        // MAIL/RCPT: only well-formed ones (the null sender is "").
        let bad = (!env.mail_from.is_empty() && Mailbox::parse(&env.mail_from).is_err())
            .then_some(&env.mail_from)
            .or_else(|| env.rcpt_to.iter().find(|r| Mailbox::parse(r).is_err()));
        if let Some(bad) = bad {
            return Err(Status::invalid_argument(format!(
                "malformed address {bad:?}"
            )));
        }
        let submitter = if env.submitter_host.is_empty() {
            "submission"
        } else {
            env.submitter_host.as_str()
        };
        let for_rcpt = (env.rcpt_to.len() == 1).then(|| env.rcpt_to[0].as_str());
        let hop = Hop {
            from_helo: submitter,
            from_ip: peer_ip,
            by: &self.0.config.hostname,
            agent: "facteur-mta",
            with: "gRPC",
            id: "",
            for_rcpt,
        };
        let envelope = Envelope {
            key: Some(env.message_key.clone()),
            mail_from: env.mail_from.clone(),
            rcpts: env.rcpt_to.clone(),
            smtputf8: env.smtputf8,
            eight_bit: env.body.eq_ignore_ascii_case("8BITMIME"),
            created: 0,
        };
        let mut writer = self
            .0
            .start(hop, envelope)
            .await
            .map_err(|e| queue_status(&e))?;
        let mut hops = HopCounter::new();
        let mut size = 0u64;
        let mut body = rpc_stream::Body::new(&mut stream);
        while let Some(c) = body.next().await? {
            hops.feed(&c);
            size += c.len() as u64;
            writer.write(&c).await.map_err(|e| queue_status(&e))?;
        }
        if hops.hops() > self.0.config.max_hops {
            return Err(Status::invalid_argument("too many hops: mail loop"));
        }
        match self.0.queue.commit(writer).await {
            Ok((queue_id, duplicate)) => {
                tracing::info!(
                    id = %queue_id, message_id = %clean(&hops.message_id().unwrap_or_default()),
                    from = %addr(&env.mail_from), size, nrcpt = env.rcpt_to.len(),
                    to = %addrs(&env.rcpt_to), duplicate, key = %clean(&env.message_key),
                    user = %clean(&env.authenticated_user), client = %clean(submitter),
                    "queued from submission"
                );
                Ok(Response::new(SubmitReply {
                    queue_id,
                    duplicate,
                }))
            }
            Err(QueueError::TooBig(max)) => Err(Status::out_of_range(format!(
                "message larger than {max} bytes"
            ))),
            Err(e) => Err(queue_status(&e)),
        }
    }
}
