//! One IMAP session: its state (not authenticated → authenticated → selected),
//! command dispatch with the state checks of RFC 9051 §6, CAPABILITY, LOGIN and
//! AUTHENTICATE PLAIN (TLS only), STARTTLS, LOGOUT, and the answers to input the
//! parser refused.

use std::net::SocketAddr;
use std::sync::Arc;

use facteur_daemon::stream::Stream;
use facteur_rpc::mailbox::VerifyRequest;
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::response::{
    Capability, Code, CommandContinuationRequest, Data, Greeting, GreetingKind, Status,
};
use imap_next::server::{Error as ServerError, Event, Options, Server};
use imap_next::types::CommandAuthenticate;

use super::conn::{Connection, Input};
use super::mailbox::{self, Ctx, Selected};
use super::reply::{
    authenticationfailed, bad, bye, cannot, no, ok, privacyrequired, text, unavailable,
    untagged_bad,
};
use super::{ImapContext, ImapError};

/// What the loop does after a command.
enum Step {
    Continue,
    /// LOGOUT: write what is queued, then close.
    Close,
}

/// Outcome of a credentials check.
enum Verified {
    Ok(String),
    Failed,
    Unavailable,
}

struct Session {
    ctx: Arc<ImapContext>,
    peer: SocketAddr,
    /// The account name once authenticated.
    user: Option<String>,
    selected: Option<Selected>,
    auth_failures: u32,
    bad_commands: u32,
    /// Tag of an AUTHENTICATE waiting for the client's response.
    authenticating: Option<Tag<'static>>,
}

/// Run a session on an accepted (and, for implicit TLS, already encrypted) stream.
pub(super) async fn run(
    stream: Stream,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
) -> Result<(), ImapError> {
    let mut session = Session {
        ctx,
        peer,
        user: None,
        selected: None,
        auth_failures: 0,
        bad_commands: 0,
        authenticating: None,
    };
    let greeting = Greeting {
        kind: GreetingKind::Ok,
        code: Some(Code::Capability(session.capabilities(stream.is_tls()))),
        text: text(format!("{} IMAP4rev1 ready.", session.ctx.config.hostname)),
    };
    let cfg = &session.ctx.config;
    // Before login the small limits: an anonymous client's literal over them is
    // refused with BAD before any of its bytes is read.
    let options = parser_options(cfg.max_literal_pre_auth, cfg.max_command_pre_auth);
    let (idle, deadlines) = (cfg.idle_timeout, cfg.deadlines);
    let mut conn = Connection::new(stream, Server::new(options, greeting), idle, deadlines);
    let result = session.drive(&mut conn).await;
    conn.shutdown().await;
    result
}

/// imap-next's options for the given literal and command limits.
fn parser_options(max_literal: u32, max_command: u32) -> Options {
    let mut options = Options::default();
    options.max_literal_size = max_literal;
    // imap-next requires room for a command around its largest literal.
    options.max_command_size = max_command.max(max_literal.saturating_add(1024));
    options.crlf_relaxed = true; // like Dovecot: a bare LF ends a line too
    let _ = options.set_literal_reject_text("Literal too big.".to_owned());
    let _ = options.set_literal_accept_text("Ready for literal data.".to_owned());
    options
}

impl Session {
    fn capabilities(&self, tls: bool) -> Vec1<Capability<'static>> {
        let mut caps = vec![Capability::Imap4Rev1];
        if self.user.is_some() {
            caps.push(Capability::Unselect);
        } else if tls {
            caps.push(Capability::Auth(AuthMechanism::Plain));
            caps.push(Capability::SaslIr);
        } else {
            if self.ctx.tls.is_some() {
                caps.push(Capability::StartTls);
            }
            caps.push(Capability::LoginDisabled);
        }
        Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }

    async fn drive(&mut self, conn: &mut Connection) -> Result<(), ImapError> {
        let mut logged_in = false;
        loop {
            let input = tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => {
                    // RFC 9051 §7.1.5: an untagged BYE before the server closes.
                    conn.status(bye("Server shutting down."));
                    conn.flush().await?;
                    return Ok(());
                }
                input = conn.next_input() => input?,
            };
            let step = match input {
                Input::Closed => {
                    tracing::debug!("client closed the connection");
                    return Ok(());
                }
                Input::Invalid(e) => self.invalid(conn, e),
                Input::Event(Event::CommandReceived { command }) => {
                    self.bad_commands = 0;
                    self.command(conn, command).await
                }
                Input::Event(Event::CommandAuthenticateReceived {
                    command_authenticate,
                }) => self.authenticate(conn, command_authenticate).await,
                Input::Event(Event::AuthenticateDataReceived { authenticate_data }) => {
                    self.authenticate_data(conn, authenticate_data).await
                }
                Input::Event(Event::IdleCommandReceived { tag }) => {
                    if let Err(status) = conn.server.idle_reject(bad(tag, "IDLE is not supported."))
                    {
                        conn.status(status);
                    }
                    Ok(Step::Continue)
                }
                Input::Event(_) => Ok(Step::Continue),
            };
            if self.user.is_some() && !logged_in {
                // The tagged OK goes out under the old parser, then the large limits apply.
                logged_in = true;
                let cfg = &self.ctx.config;
                conn.logged_in(parser_options(cfg.max_literal, cfg.max_command))
                    .await?;
            }
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Close) => {
                    conn.flush().await?;
                    return Ok(());
                }
                Err(e) => {
                    if matches!(e, ImapError::TooManyAuthFailures) {
                        conn.status(bye("Too many invalid authentication attempts."));
                    }
                    let _ = conn.flush().await;
                    return Err(e);
                }
            }
        }
    }

    /// Input the parser refused: `BAD`, tagged when the tag is readable.
    fn invalid(&mut self, conn: &mut Connection, error: ServerError) -> Result<Step, ImapError> {
        self.bad_commands += 1;
        let (bytes, sentence) = match &error {
            ServerError::MalformedMessage { discarded_bytes } => (
                Some(discarded_bytes),
                "Unknown command or invalid arguments.",
            ),
            ServerError::CommandTooLong { discarded_bytes } => {
                (Some(discarded_bytes), "Command too long.")
            }
            ServerError::ExpectedCrlfGotLf { discarded_bytes } => {
                (Some(discarded_bytes), "Lines must end with CRLF.")
            }
            // imap-next already answered `BAD` to the literal.
            ServerError::LiteralTooLong { .. } => (None, ""),
        };
        tracing::debug!(error = %error, "invalid command");
        if let Some(bytes) = bytes {
            match tag_of(bytes.declassify()) {
                Some(tag) => conn.status(bad(tag, sentence)),
                None => conn.status(untagged_bad(sentence)),
            }
        }
        if self.bad_commands >= self.ctx.config.max_bad_commands {
            tracing::info!("too many invalid commands");
            conn.status(bye("Too many invalid IMAP commands."));
            return Ok(Step::Close);
        }
        Ok(Step::Continue)
    }

    async fn command(
        &mut self,
        conn: &mut Connection,
        command: Command<'static>,
    ) -> Result<Step, ImapError> {
        let tag = command.tag;
        tracing::debug!(command = command.body.name(), "command");
        match command.body {
            // ----- any state -----
            CommandBody::Capability => {
                conn.data(Data::Capability(self.capabilities(conn.is_tls())));
                conn.status(ok(tag, None, "Capability completed."));
            }
            CommandBody::Noop | CommandBody::Check => {
                if let (Some(user), Some(sel)) = (&self.user, &mut self.selected) {
                    let ctx = Ctx {
                        imap: &self.ctx,
                        user,
                    };
                    mailbox::sync(&ctx, conn, sel).await;
                }
                conn.status(ok(tag, None, "NOOP completed."));
            }
            CommandBody::Logout => {
                conn.status(bye("Logging out."));
                conn.status(ok(tag, None, "Logout completed."));
                return Ok(Step::Close);
            }
            // ----- not authenticated -----
            CommandBody::StartTLS => return self.starttls(conn, tag).await,
            CommandBody::Login { username, password } => {
                if self.user.is_some() {
                    conn.status(bad(tag, "Already authenticated."));
                } else if !conn.is_tls() {
                    tracing::debug!("LOGIN refused without TLS");
                    conn.status(no(
                        tag,
                        Some(privacyrequired()),
                        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                    ));
                } else {
                    let user = String::from_utf8(username.as_ref().to_vec());
                    let pass = String::from_utf8(password.declassify().as_ref().to_vec());
                    let verified = match (user, pass) {
                        (Ok(u), Ok(p)) => self.verify(&u, &p).await,
                        _ => self.failed().await,
                    };
                    let (status, step) = self.auth_outcome(tag, verified, conn.is_tls());
                    conn.status(status);
                    return step;
                }
            }
            body => {
                // ----- authenticated and selected -----
                let Some(user) = self.user.clone() else {
                    conn.status(bad(tag, "Command not valid in this state (log in first)."));
                    return Ok(Step::Continue);
                };
                let imap = self.ctx.clone();
                let ctx = Ctx {
                    imap: &imap,
                    user: &user,
                };
                self.authenticated(&ctx, conn, tag, body).await?;
            }
        }
        Ok(Step::Continue)
    }

    async fn authenticated(
        &mut self,
        ctx: &Ctx<'_>,
        conn: &mut Connection,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Result<(), ImapError> {
        match body {
            CommandBody::Select { mailbox, .. } => {
                mailbox::select(ctx, conn, &mut self.selected, tag, &mailbox, false).await;
            }
            CommandBody::Examine { mailbox, .. } => {
                mailbox::select(ctx, conn, &mut self.selected, tag, &mailbox, true).await;
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => mailbox::list(ctx, conn, tag, &reference, &mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => mailbox::list(ctx, conn, tag, &reference, &mailbox_wildcard, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => mailbox::status(ctx, conn, tag, &mailbox, &item_names).await,
            CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } => {
                // Every mailbox is subscribed.
                conn.status(ok(tag, None, "Subscription updated."));
            }
            CommandBody::Create { .. }
            | CommandBody::Delete { .. }
            | CommandBody::Rename { .. }
            | CommandBody::Append { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. } => {
                conn.status(no(tag, Some(cannot()), "Not supported by this server yet."));
            }
            CommandBody::Enable { .. } => {
                conn.data(Data::Enabled {
                    capabilities: Vec::new(),
                });
                conn.status(ok(tag, None, "Enabled."));
            }
            body => {
                let Some(sel) = self.selected.as_mut() else {
                    conn.status(bad(tag, "No mailbox selected."));
                    return Ok(());
                };
                match body {
                    CommandBody::Fetch {
                        sequence_set,
                        macro_or_item_names,
                        uid,
                        ..
                    } => {
                        mailbox::fetch(
                            ctx,
                            conn,
                            sel,
                            tag,
                            &sequence_set,
                            macro_or_item_names,
                            uid,
                        )
                        .await?;
                    }
                    CommandBody::Store {
                        sequence_set,
                        kind,
                        response,
                        flags,
                        uid,
                        ..
                    } => {
                        mailbox::store(
                            ctx,
                            conn,
                            sel,
                            tag,
                            &sequence_set,
                            kind,
                            response,
                            &flags,
                            uid,
                        )
                        .await;
                    }
                    CommandBody::Search {
                        charset,
                        criteria,
                        uid,
                    } => mailbox::search(conn, sel, tag, charset.as_ref(), criteria.as_ref(), uid),
                    CommandBody::Expunge => {
                        if sel.read_only {
                            conn.status(no(
                                tag,
                                Some(super::reply::noperm()),
                                "Mailbox is read-only.",
                            ));
                        } else {
                            match mailbox::expunge(ctx, conn, sel, false).await {
                                Ok(()) => conn.status(ok(tag, None, "Expunge completed.")),
                                Err(e) => conn.status(super::reply::mda_error(tag, "Expunge", &e)),
                            }
                        }
                    }
                    CommandBody::Close => {
                        // Expunge silently, then leave the mailbox whatever happens.
                        let result = if sel.read_only {
                            Ok(())
                        } else {
                            mailbox::expunge(ctx, conn, sel, true).await
                        };
                        self.selected = None;
                        match result {
                            Ok(()) => conn.status(ok(tag, None, "Close completed.")),
                            Err(e) => conn.status(super::reply::mda_error(tag, "Expunge", &e)),
                        }
                    }
                    CommandBody::Unselect => {
                        self.selected = None;
                        conn.status(ok(tag, None, "Unselect completed."));
                    }
                    _ => conn.status(bad(tag, "Unknown command or not supported.")),
                }
            }
        }
        Ok(())
    }

    /// STARTTLS (RFC 9051 §6.2.1). Input pipelined after it closes the connection.
    async fn starttls(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
    ) -> Result<Step, ImapError> {
        if conn.is_tls() {
            conn.status(bad(tag, "TLS is already active."));
            return Ok(Step::Continue);
        }
        let Some(acceptor) = self.ctx.tls.clone() else {
            conn.status(bad(tag, "TLS support isn't enabled."));
            return Ok(Step::Continue);
        };
        if conn.has_pending_input() {
            tracing::info!("input pipelined after STARTTLS");
            conn.status(bye("Input after STARTTLS is refused."));
            return Err(ImapError::PipelinedStartTls);
        }
        conn.status(ok(tag, None, "Begin TLS negotiation now."));
        conn.start_tls(&acceptor, &self.ctx).await?;
        // Back to the not-authenticated state, nothing kept from before TLS.
        self.user = None;
        self.selected = None;
        self.authenticating = None;
        Ok(Step::Continue)
    }

    /// AUTHENTICATE (PLAIN only, TLS only, SASL-IR accepted).
    async fn authenticate(
        &mut self,
        conn: &mut Connection,
        cmd: CommandAuthenticate,
    ) -> Result<Step, ImapError> {
        let tag = cmd.tag;
        let refusal = if self.user.is_some() {
            Some(bad(tag.clone(), "Already authenticated."))
        } else if !conn.is_tls() {
            Some(no(
                tag.clone(),
                Some(privacyrequired()),
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            ))
        } else if !matches!(cmd.mechanism, AuthMechanism::Plain) {
            Some(no(
                tag.clone(),
                None,
                "Unsupported authentication mechanism.",
            ))
        } else {
            None
        };
        if let Some(status) = refusal {
            finish_auth(conn, status);
            return Ok(Step::Continue);
        }
        match cmd.initial_response {
            Some(ir) => self.plain(conn, tag, ir.declassify()).await,
            None => {
                self.authenticating = Some(tag);
                let cont = CommandContinuationRequest::base64(Vec::new());
                if let Err(cont) = conn.server.authenticate_continue(cont) {
                    tracing::error!(?cont, "imap-next refused an AUTHENTICATE continuation");
                }
                Ok(Step::Continue)
            }
        }
    }

    async fn authenticate_data(
        &mut self,
        conn: &mut Connection,
        data: AuthenticateData<'static>,
    ) -> Result<Step, ImapError> {
        let Some(tag) = self.authenticating.take() else {
            tracing::error!("AUTHENTICATE data without a pending AUTHENTICATE");
            return Ok(Step::Close);
        };
        match data {
            AuthenticateData::Cancel => {
                finish_auth(conn, bad(tag, "Authentication aborted by client."));
                Ok(Step::Continue)
            }
            AuthenticateData::Continue(bytes) => self.plain(conn, tag, bytes.declassify()).await,
        }
    }

    /// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`.
    async fn plain(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
        data: &[u8],
    ) -> Result<Step, ImapError> {
        let mut parts = data.split(|&b| b == 0);
        let fields = (parts.next(), parts.next(), parts.next(), parts.next());
        let verified = match fields {
            (Some(authz), Some(user), Some(pass), None) => {
                match (
                    std::str::from_utf8(authz),
                    std::str::from_utf8(user),
                    std::str::from_utf8(pass),
                ) {
                    // No proxy authorization: authzid must be empty or the user itself.
                    (Ok(z), Ok(u), Ok(p)) if z.is_empty() || z == u => self.verify(u, p).await,
                    _ => self.failed().await,
                }
            }
            _ => self.failed().await,
        };
        let (status, step) = self.auth_outcome(tag, verified, conn.is_tls());
        finish_auth(conn, status);
        step
    }

    /// Ask the MDA. Failures are delayed and counted.
    async fn verify(&mut self, user: &str, password: &str) -> Verified {
        let mut auth = self.ctx.auth.clone();
        let req = VerifyRequest {
            user: user.to_owned(),
            password: password.to_owned(),
            service: "imap".to_owned(),
            remote_addr: self.peer.ip().to_string(),
        };
        match auth.verify(req).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                if reply.ok {
                    let account = if reply.user.is_empty() {
                        user.to_owned()
                    } else {
                        reply.user
                    };
                    tracing::info!(user = %account, "authenticated");
                    Verified::Ok(account)
                } else {
                    tracing::info!(user, "authentication failed");
                    self.failed().await
                }
            }
            Err(e) => {
                tracing::error!(code = ?e.code(), error = %e.message(), "Auth.Verify failed");
                Verified::Unavailable
            }
        }
    }

    async fn failed(&mut self) -> Verified {
        self.auth_failures += 1;
        tokio::time::sleep(self.ctx.config.auth_failure_delay).await;
        Verified::Failed
    }

    /// The tagged reply to LOGIN/AUTHENTICATE, and whether to hang up.
    fn auth_outcome(
        &mut self,
        tag: Tag<'static>,
        verified: Verified,
        tls: bool,
    ) -> (Status<'static>, Result<Step, ImapError>) {
        match verified {
            Verified::Ok(user) => {
                self.user = Some(user);
                let caps = Code::Capability(self.capabilities(tls));
                (ok(tag, Some(caps), "Logged in."), Ok(Step::Continue))
            }
            Verified::Unavailable => (
                no(
                    tag,
                    Some(unavailable()),
                    "Temporary authentication failure, try again later.",
                ),
                Ok(Step::Continue),
            ),
            Verified::Failed => {
                let status = no(tag, Some(authenticationfailed()), "Authentication failed.");
                if self.auth_failures >= self.ctx.config.max_auth_failures {
                    (status, Err(ImapError::TooManyAuthFailures))
                } else {
                    (status, Ok(Step::Continue))
                }
            }
        }
    }
}

/// End an AUTHENTICATE exchange with `status` (imap-next then expects commands again).
fn finish_auth(conn: &mut Connection, status: Status<'static>) {
    if let Err(status) = conn.server.authenticate_finish(status) {
        conn.status(status);
    }
}

/// The tag at the start of a refused command, if it is a valid tag.
fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    Tag::try_from(bytes[..end].to_vec()).ok()
}
