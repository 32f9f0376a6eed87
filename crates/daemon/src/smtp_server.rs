//! The SMTP/LMTP server driver: runs the sans-IO [`ServerSession`] of
//! `facteur-protocol` and hands each decision to the agent's [`SmtpHandler`].
//!
//! The MSA, the MTA's port 25 and the MDA's LMTP all use this one driver; they
//! differ only in their handler and in the session's config.

use std::future::Future;
use std::net::SocketAddr;

use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::{MailParams, Param};
use facteur_protocol::smtp::reply::Reply;
use facteur_protocol::smtp::server::{Event, ServerSession};

use crate::conn::{Session, Step};

/// What the agent knows of the client when a transaction starts.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The name it gave in EHLO/HELO/LHLO.
    pub helo: String,
    /// Is the connection encrypted?
    pub tls: bool,
    /// The authenticated user, if any.
    pub user: Option<String>,
}

impl Client {
    /// The RFC 3848 protocol name for a Received header's `with` clause.
    pub fn with_protocol(&self, lmtp: bool) -> &'static str {
        match (lmtp, self.tls, self.user.is_some()) {
            (true, true, _) => "LMTPS",
            (true, false, _) => "LMTP",
            (false, true, true) => "ESMTPSA",
            (false, false, true) => "ESMTPA",
            (false, true, false) => "ESMTPS",
            (false, false, false) => "ESMTP",
        }
    }
}

/// The agent's side of an SMTP session: each method answers one decision.
pub trait SmtpHandler: Send {
    /// Check a password (AUTH PLAIN/LOGIN). Answer 235 or 535.
    fn auth(
        &mut self,
        client: &Client,
        user: &str,
        password: &Secret<String>,
    ) -> impl Future<Output = Reply> + Send {
        let _ = (client, user, password);
        async { codes::auth_failed() }
    }
    /// MAIL FROM.
    fn mail_from(
        &mut self,
        client: &Client,
        from: &ReversePath,
        params: &MailParams,
    ) -> impl Future<Output = Reply> + Send;
    /// RCPT TO.
    fn rcpt(
        &mut self,
        client: &Client,
        to: &ForwardPath,
        params: &[Param],
    ) -> impl Future<Output = Reply> + Send;
    /// DATA was accepted by the session: answer 354 to go on, or an error.
    fn data_start(&mut self, client: &Client) -> impl Future<Output = Reply> + Send;
    /// The next piece of the message, un-stuffed.
    fn data_chunk(&mut self, chunk: Vec<u8>) -> impl Future<Output = ()> + Send;
    /// The message is complete. SMTP: one reply. LMTP: one per accepted recipient.
    fn data_end(&mut self, client: &Client) -> impl Future<Output = Vec<Reply>> + Send;
    /// The transaction was dropped (RSET, EHLO, aborted DATA, disconnect).
    fn reset(&mut self);
}

/// An SMTP session plus its handler: what [`crate::conn::run`] drives.
pub struct SmtpSession<H> {
    session: ServerSession,
    handler: H,
    peer: SocketAddr,
    hostname: String,
    /// Where the current message stands with the handler.
    data: Data,
    /// Transcript notes not yet taken ([`Session::take_notes`]).
    notes: Vec<String>,
}

/// The handler's view of the message being received.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// No message under way.
    Idle,
    /// `data_start` said yes: chunks go to the handler.
    Started,
    /// `data_start` refused a BDAT message: its chunks are dropped and its end
    /// is answered with this refusal.
    Refused(Reply),
}

impl<H: SmtpHandler> SmtpSession<H> {
    pub fn new(session: ServerSession, handler: H, peer: SocketAddr, hostname: String) -> Self {
        Self {
            session,
            handler,
            peer,
            hostname,
            data: Data::Idle,
            notes: Vec::new(),
        }
    }

    /// BDAT (RFC 3030) has no DATA command and so no `DataStart`: the handler is
    /// asked to start at the first chunk (or at the end, for `BDAT 0 LAST`).
    async fn begin_bdat(&mut self) {
        if self.data == Data::Idle {
            let client = self.client();
            let reply = self.handler.data_start(&client).await;
            self.data = if reply.is_positive() {
                Data::Started
            } else {
                tracing::info!(reply = %reply, "BDAT message refused at its start");
                Data::Refused(reply)
            };
        }
    }

    fn client(&self) -> Client {
        Client {
            peer: self.peer,
            helo: self.session.helo().unwrap_or_default().to_owned(),
            tls: self.session.is_tls(),
            user: self.session.authenticated().map(str::to_owned),
        }
    }
}

impl<H: SmtpHandler> SmtpSession<H> {
    /// Feed the bytes and act on every event they complete.
    /// Past the soft limit each new error is answered late (a tarpit for RCPT
    /// harvesting and command floods), one wait per error even when the
    /// commands came pipelined; only this connection waits.
    async fn slow_down(&mut self, errors: &mut usize) {
        let now = self.session.errors();
        if now > *errors
            && let Some(delay) = self.session.tarpit()
        {
            tracing::info!(
                errors = now,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "errors past the soft limit: slowing down"
            );
            tokio::time::sleep(delay).await;
        }
        *errors = now;
    }

    async fn events(&mut self, bytes: &[u8]) -> Step {
        self.session.feed(bytes);
        let mut errors = self.session.errors();
        while let Some(event) = self.session.next_event() {
            match event {
                Event::MailFrom { from, params } => {
                    let client = self.client();
                    let reply = self.handler.mail_from(&client, &from, &params).await;
                    self.session.answer(reply);
                }
                Event::Rcpt { to, params } => {
                    let client = self.client();
                    let reply = self.handler.rcpt(&client, &to, &params).await;
                    self.session.answer(reply);
                }
                Event::DataStart => {
                    let client = self.client();
                    let reply = self.handler.data_start(&client).await;
                    if reply.is_positive() {
                        self.data = Data::Started;
                    }
                    self.session.answer(reply);
                }
                Event::DataChunk(chunk) => {
                    self.begin_bdat().await;
                    if self.data == Data::Started {
                        self.handler.data_chunk(chunk).await;
                    }
                }
                Event::DataEnd => {
                    self.begin_bdat().await;
                    let data = std::mem::replace(&mut self.data, Data::Idle);
                    match data {
                        // The refusal stands for the whole message (SMTP: one reply).
                        // LMTP handlers never refuse at the start; should one, its
                        // `data_end` still answers once per recipient.
                        Data::Refused(reply) if !self.session.config().lmtp => {
                            self.handler.reset();
                            self.session.answer(reply);
                        }
                        _ => {
                            let client = self.client();
                            for reply in self.handler.data_end(&client).await {
                                self.session.answer(reply);
                            }
                        }
                    }
                }
                Event::DataAborted(why) => {
                    tracing::info!(?why, "message refused");
                    self.data = Data::Idle;
                    self.handler.reset();
                }
                Event::AuthCredentials {
                    authzid,
                    authcid,
                    password,
                } => {
                    let client = self.client();
                    let reply = if authzid
                        .as_deref()
                        .is_some_and(|z| !z.is_empty() && z != authcid)
                    {
                        // Acting for someone else is not offered (RFC 4616 §2).
                        codes::auth_failed()
                    } else {
                        self.handler.auth(&client, &authcid, &password).await
                    };
                    let user = crate::logging::clean(&authcid);
                    if reply.is_positive() {
                        tracing::info!(%user, helo = %crate::logging::clean(&client.helo), client = %client.peer.ip(), "authenticated");
                        self.notes.push(format!("AUTH: logged in as {user}"));
                    } else {
                        tracing::info!(%user, helo = %crate::logging::clean(&client.helo), client = %client.peer.ip(), "authentication failed");
                        self.notes.push(format!("AUTH refused for {user}: {reply}"));
                    }
                    self.session.answer(reply);
                }
                Event::StartTls => return Step::StartTls,
                Event::Reset => {
                    self.data = Data::Idle;
                    self.handler.reset();
                }
                Event::Quit => return Step::Close,
                Event::Close => {
                    self.handler.reset();
                    return Step::Close;
                }
            }
            self.slow_down(&mut errors).await;
        }
        self.slow_down(&mut errors).await;
        Step::Continue
    }
}

impl<H: SmtpHandler> Session for SmtpSession<H> {
    async fn input(&mut self, bytes: &[u8]) -> Step {
        self.events(bytes).await
    }

    fn take_output(&mut self) -> Vec<u8> {
        self.session.take_output()
    }

    fn progress(&self) -> facteur_protocol::deadline::Progress {
        self.session.progress()
    }

    fn buffered_input(&self) -> usize {
        self.session.buffered_input()
    }

    fn tls_started(&mut self) {
        self.data = Data::Idle;
        self.handler.reset();
        self.session.tls_started();
    }

    fn timeout_reply(&self) -> Vec<u8> {
        // RFC 5321 §4.5.3.2: the server may close after its timeout with a 421.
        Reply::new(421, "4.4.2", &format!("{} Timeout, closing", self.hostname)).to_bytes()
    }

    fn shutdown_reply(&self) -> Vec<u8> {
        codes::service_unavailable(&self.hostname).to_bytes()
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    async fn finish(&mut self) {
        self.handler.reset();
    }
}
