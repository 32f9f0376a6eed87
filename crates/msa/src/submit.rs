//! One submission session's decisions: AUTH (the MDA's `Auth` service or a
//! passwd-file), the sender check, and the submission fix-ups of the header
//! (Received, Message-ID, Date, Bcc removal) on the bytes handed to the next hop
//! (`hop`: the MTA over gRPC or an SMTP server). The client gets 250 only once
//! the next hop has accepted the message.

use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::logging::{addr, clean};
use facteur_daemon::metrics::{self, Outcome};
use facteur_daemon::passwd_file::PasswdFile;
use facteur_daemon::smtp_server::{Client, SmtpHandler};
use facteur_daemon::trace::{Hop, HopCounter, now_unix, rfc5322_date};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::{MailParams, Param};
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::mailbox::VerifyRequest;
use facteur_rpc::mailbox::auth_client::AuthClient;
use tonic::transport::Channel;

use crate::config::MsaConfig;
use crate::headers::{Fixes, HeaderFixer};
use crate::hop::{Begin, HopSession, NextHop};

/// The refusal of a `From:` the logged-in user may not send as
/// (`enforce_from`), once the header block is read.
fn from_refusal(config: &MsaConfig, t: &Transfer) -> Option<Reply> {
    let user = t.user.as_deref()?;
    if !config.enforce_from {
        return None;
    }
    let from = t.fixer.from_addresses()?;
    let bad = from.iter().find(|a| !config.may_send_as(user, a))?;
    // Peer text in a reply line: no control characters (a folded raw From:).
    let bad: String = bad.chars().filter(|c| !c.is_control()).collect();
    tracing::info!(id = %t.id, user = %clean(user), from = %addr(&bad), "From: not owned by the user");
    Some(Reply::new(
        553,
        "5.7.1",
        &format!("<{bad}>: From: header not owned by user {user}"),
    ))
}

/// Who checks passwords.
pub enum Passwords {
    /// The MDA's `Auth` service.
    Mda(AuthClient<Channel>),
    /// A passwd-file (Dovecot's format).
    File(PasswdFile),
}

/// What every session shares.
pub struct Shared {
    pub config: MsaConfig,
    pub next_hop: NextHop,
    pub passwords: Passwords,
}

/// The message under way: its header fixer and the fields it adds.
struct Transfer {
    /// This submission's id (the `id` of its log lines).
    id: String,
    fixer: HeaderFixer,
    fields: Fields,
    failed: Option<Reply>,
    /// Reads the Message-ID back from the fixed bytes (the client's or ours).
    scan: HopCounter,
    /// Bytes handed to the next hop.
    size: u64,
    /// The logged-in user the `From:` is checked against.
    user: Option<String>,
}

struct Fields {
    received: String,
    message_id: String,
    date: String,
}

impl Fields {
    fn fixes(&self) -> Fixes<'_> {
        Fixes {
            received: &self.received,
            message_id: &self.message_id,
            date: &self.date,
        }
    }
}

pub struct SubmitHandler {
    shared: Arc<Shared>,
    hop: HopSession,
    from: Option<(String, MailParams)>,
    rcpts: Vec<String>,
    transfer: Option<Transfer>,
}

impl SubmitHandler {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            hop: shared.next_hop.session(),
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

/// Did the password check say yes, no, or could it not tell?
enum Checked {
    Yes,
    No,
    Unknown,
}

/// Where submitted mail goes, as the log names it.
fn relay_name(shared: &Shared) -> String {
    match &shared.next_hop {
        NextHop::Grpc(_) => format!("grpc:{}", shared.config.mta_url),
        NextHop::Smtp(hop) => hop.target(),
    }
}

/// The next hop's queue ID in its reply (`… queued as 3F2A1`), if it gave one.
fn queued_as(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let (_, rest) = text.split_once("queued as ")?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

impl SubmitHandler {
    async fn check(&self, client: &Client, user: &str, password: &Secret<String>) -> Checked {
        match &self.shared.passwords {
            Passwords::Mda(auth) => {
                let request = VerifyRequest {
                    user: user.to_owned(),
                    password: password.expose().clone(),
                    service: "smtp".into(),
                    remote_addr: client.peer.ip().to_string(),
                };
                match auth.clone().verify(request).await {
                    Ok(r) if r.get_ref().ok => Checked::Yes,
                    Ok(_) => Checked::No,
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = %status.message(), "Auth.Verify failed");
                        Checked::Unknown
                    }
                }
            }
            Passwords::File(file) => match file.verify(user, password.expose()).await {
                Ok(Some(_)) => Checked::Yes,
                Ok(None) => Checked::No,
                Err(e) => {
                    tracing::error!(error = %e, "passwd-file check failed");
                    Checked::Unknown
                }
            },
        }
    }
}

impl SmtpHandler for SubmitHandler {
    async fn auth(&mut self, client: &Client, user: &str, password: &Secret<String>) -> Reply {
        match self.check(client, user, password).await {
            Checked::Yes => codes::auth_ok(),
            Checked::No => {
                // RFC 4954 §4 leaves the pace to us: slow down password guessing.
                tokio::time::sleep(Duration::from_millis(
                    self.shared.config.auth_failure_delay_ms,
                ))
                .await;
                codes::auth_failed()
            }
            // RFC 4954 §6: 454 4.7.0 temporary authentication failure.
            Checked::Unknown => Reply::new(454, "4.7.0", "Temporary authentication failure"),
        }
    }

    async fn mail_from(
        &mut self,
        client: &Client,
        from: &ReversePath,
        params: &MailParams,
    ) -> Reply {
        let sender = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        if self.shared.config.enforce_sender
            && let Some(user) = &client.user
            && !self.shared.config.may_send_as(user, &sender)
        {
            return Reply::new(
                553,
                "5.7.1",
                &format!("<{sender}>: Sender address rejected: not owned by user {user}"),
            );
        }
        let reply = self.hop.mail(from, params).await;
        if reply.is_positive() {
            self.from = Some((sender, params.clone()));
        }
        reply
    }

    async fn rcpt(&mut self, _: &Client, to: &ForwardPath, _: &[Param]) -> Reply {
        let ForwardPath::Mailbox(m) = to else {
            return Reply::new(550, "5.1.1", "Postmaster of which domain? Name it.");
        };
        let rcpt = m.to_string();
        let reply = self.hop.rcpt(to, &rcpt).await;
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
        let begin = Begin {
            id: &id,
            from: &from,
            params: &params,
            rcpts: &self.rcpts,
            client,
            hostname: &config.hostname,
        };
        let reply = self.hop.data_start(&begin).await;
        if reply.code() / 100 == 3 {
            self.transfer = Some(Transfer {
                id: id.clone(),
                scan: HopCounter::new(),
                size: 0,
                user: client.user.clone(),
                fixer: HeaderFixer::new(config.max_header_size),
                fields: Fields {
                    received,
                    message_id: format!("<{id}@{}>", config.hostname),
                    date: rfc5322_date(now_unix()),
                },
                failed: None,
            });
        } else {
            metrics::messages(Outcome::Refused, 1);
        }
        reply
    }

    async fn data_chunk(&mut self, chunk: Vec<u8>) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        if t.failed.is_some() {
            return;
        }
        let fixes = t.fields.fixes();
        let out = match t.fixer.push(&chunk, &fixes) {
            Ok(out) => out,
            Err(e) => {
                t.failed = Some(Reply::new(552, "5.3.4", &e.to_string()));
                return;
            }
        };
        if !out.is_empty() && t.size == 0 {
            // The header block is complete: its From: must be the user's.
            if let Some(refusal) = from_refusal(&self.shared.config, t) {
                t.failed = Some(refusal);
                return;
            }
        }
        if !out.is_empty() {
            t.scan.feed(&out);
            t.size += out.len() as u64;
            self.hop.send(&out).await;
        }
    }

    async fn data_end(&mut self, client: &Client) -> Vec<Reply> {
        let Some(mut t) = self.transfer.take() else {
            return vec![codes::local_error()];
        };
        if let Some(reply) = t.failed.take() {
            self.reset();
            metrics::messages(Outcome::Refused, 1);
            return vec![reply];
        }
        let fixes = t.fields.fixes();
        let tail = t.fixer.finish(&fixes);
        if !tail.is_empty() {
            t.scan.feed(&tail);
            t.size += tail.len() as u64;
            self.hop.send(&tail).await;
        }
        let reply = self.hop.data_end().await;
        let from = self.from.as_ref().map_or("", |(f, _)| f.as_str());
        let message_id = t.scan.message_id().unwrap_or_default();
        let relay = relay_name(&self.shared);
        if reply.is_positive() {
            tracing::info!(
                id = %t.id, message_id = %clean(&message_id), from = %addr(from),
                size = t.size, nrcpt = self.rcpts.len(), client = %client.peer.ip(),
                user = %clean(client.user.as_deref().unwrap_or_default()), %relay,
                queue_id = %queued_as(&reply).unwrap_or_default(),
                reply = %clean(&reply.to_string()), "submitted"
            );
        } else {
            tracing::info!(
                id = %t.id, message_id = %clean(&message_id), from = %addr(from),
                size = t.size, nrcpt = self.rcpts.len(), client = %client.peer.ip(),
                %relay, reply = %clean(&reply.to_string()), "submission refused by the next hop"
            );
        }
        let outcome = if reply.is_positive() {
            Outcome::Accepted
        } else {
            Outcome::Refused
        };
        metrics::messages(outcome, 1);
        self.from = None;
        self.rcpts.clear();
        vec![reply]
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
        self.transfer = None;
        self.hop.reset();
    }
}
