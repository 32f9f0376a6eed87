//! One IMAP session: its state (not authenticated → authenticated → selected),
//! the loop over the client's input, command dispatch with the state checks
//! of RFC 9051 §6, CAPABILITY, ENABLE, ID, LOGOUT, and the answers to input
//! the parser refused. After each command that allows it (RFC 9051 §7.5.1),
//! what other sessions changed is announced before the tagged reply.

use std::net::SocketAddr;
use std::sync::Arc;

use facteur_daemon::stream::Stream;
use imap_next::imap_types::auth::AuthMechanism;
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{Atom, IString, NString, Tag, Vec1};
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::extensions::namespace::Namespace;
use imap_next::imap_types::extensions::utf8::Utf8Kind;
use imap_next::imap_types::response::{Capability, Code, Data, Greeting, GreetingKind, Status};
use imap_next::server::{Error as ServerError, Event, Options, Server};

use super::conn::{Connection, Input};
use super::mailbox::Selected;
use super::reply::{bad, bye, login_first, not_selected, ok, text, untagged_bad};
use super::{
    ImapContext, ImapError, append, ext, folders, mailbox, messages, names, notify, search,
};
use crate::mda::{MailboxRef, Mda};

/// What the loop does after a command.
pub(super) enum Step {
    Continue,
    /// LOGOUT: write what is queued, then close.
    Close,
}

/// Extensions the client turned on (RFC 5161 ENABLE; CONDSTORE also by use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Enabled {
    pub(super) rev2: bool,
    pub(super) condstore: bool,
    pub(super) qresync: bool,
    /// UTF8=ACCEPT (or IMAP4rev2): mailbox names in UTF-8 on the wire.
    pub(super) utf8: bool,
}

/// What a command handler needs from the session.
pub(super) struct Ctx<'a, M> {
    pub(super) mda: &'a M,
    pub(super) user: &'a str,
    pub(super) enabled: &'a mut Enabled,
}

impl<M> Ctx<'_, M> {
    pub(super) fn mref(&self, mailbox: &str) -> MailboxRef {
        MailboxRef::new(self.user, mailbox)
    }

    /// The store name of a mailbox the client named.
    pub(super) fn name(
        &self,
        mailbox: &imap_next::imap_types::mailbox::Mailbox<'_>,
    ) -> Option<String> {
        names::from_wire(mailbox, self.enabled.utf8)
    }
}

pub(super) struct Session<M> {
    pub(super) ctx: Arc<ImapContext<M>>,
    pub(super) peer: SocketAddr,
    /// The account name once authenticated.
    pub(super) user: Option<String>,
    pub(super) selected: Option<Selected>,
    pub(super) enabled: Enabled,
    pub(super) auth_failures: u32,
    bad_commands: u32,
    /// Tag of an AUTHENTICATE waiting for the client's response.
    pub(super) authenticating: Option<Tag<'static>>,
}

/// Run a session on an accepted (and, for implicit TLS, already encrypted) stream.
pub(super) async fn run<M: Mda>(
    stream: Stream,
    peer: SocketAddr,
    ctx: Arc<ImapContext<M>>,
) -> Result<(), ImapError> {
    let mut session = Session {
        ctx,
        peer,
        user: None,
        selected: None,
        enabled: Enabled::default(),
        auth_failures: 0,
        bad_commands: 0,
        authenticating: None,
    };
    let greeting = Greeting {
        kind: GreetingKind::Ok,
        code: Some(Code::Capability(session.capabilities(stream.is_tls()))),
        text: text(format!("{} IMAP4rev2 ready.", session.ctx.config.hostname)),
    };
    let cfg = &session.ctx.config;
    // Before login the small limits: an anonymous client's literal over them is
    // refused before any of its bytes is read.
    let options = parser_options(cfg.max_literal_pre_auth, cfg.max_command_pre_auth);
    let (idle, deadlines) = (cfg.idle_timeout, cfg.deadlines);
    let server = Server::new(options, greeting);
    let max = cfg.max_literal_pre_auth;
    let local = stream
        .local_addr()
        .map_or_else(|| session.ctx.config.hostname.clone(), |a| a.to_string());
    let mut conn = Connection::new(stream, server, max, idle, deadlines);
    conn.rec =
        session
            .ctx
            .transcripts
            .start(facteur_daemon::transcript::Proto::Imap, "imap", peer, local);
    let result = session.drive(&mut conn).await;
    conn.shutdown().await;
    result
}

/// imap-next's options for the given literal and command limits.
pub(super) fn parser_options(max_literal: u32, max_command: u32) -> Options {
    let mut options = Options::default();
    options.max_literal_size = max_literal;
    // imap-next requires room for a command around its largest literal.
    options.max_command_size = max_command.max(max_literal.saturating_add(1024));
    options.crlf_relaxed = true; // like Dovecot: a bare LF ends a line too
    let _ = options.set_literal_reject_text("Literal too big.".to_owned());
    let _ = options.set_literal_accept_text("Ready for literal data.".to_owned());
    options
}

fn other_cap(name: &'static str) -> Option<Capability<'static>> {
    Atom::try_from(name).ok().map(Capability::from)
}

impl<M: Mda> Session<M> {
    pub(super) fn capabilities(&self, tls: bool) -> Vec1<Capability<'static>> {
        let mut caps = vec![Capability::Imap4Rev1];
        caps.extend(other_cap("IMAP4rev2"));
        caps.push(Capability::LiteralPlus);
        caps.push(Capability::Id);
        if self.user.is_some() {
            caps.extend([
                Capability::Idle,
                Capability::UidPlus,
                Capability::Move,
                Capability::Namespace,
                Capability::Enable,
                Capability::CondStore,
                Capability::QResync,
                Capability::SaslIr,
                Capability::Unselect,
                Capability::Utf8(Utf8Kind::Accept),
                Capability::ListExtended,
                Capability::Binary,
                Capability::StatusSize,
            ]);
            caps.extend(
                [
                    "SPECIAL-USE",
                    "CHILDREN",
                    "LIST-STATUS",
                    "ESEARCH",
                    "CREATE-SPECIAL-USE",
                ]
                .into_iter()
                .filter_map(other_cap),
            );
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
                Input::TooBig => {
                    tracing::info!("non-synchronizing literal over the limit");
                    conn.status(bye("Literal too big."));
                    Ok(Step::Close)
                }
                Input::Invalid(ServerError::MalformedMessage { discarded_bytes })
                    if let Ok(cmd) = ext::parse(discarded_bytes.declassify()) =>
                {
                    self.bad_commands = 0;
                    self.extended(conn, cmd).await
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
                Input::Event(Event::IdleCommandReceived { tag }) => self.idle(conn, tag).await,
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
        let status = match command.body {
            // ----- any state -----
            CommandBody::Capability => {
                conn.data(Data::Capability(self.capabilities(conn.is_tls())));
                ok(tag, None, "Capability completed.")
            }
            CommandBody::Noop => ok(tag, None, "NOOP completed."),
            CommandBody::Logout => {
                conn.status(bye("Logging out."));
                conn.status(ok(tag, None, "Logout completed."));
                return Ok(Step::Close);
            }
            CommandBody::Id { .. } => {
                let field = |s: &'static str| IString::try_from(s).ok();
                let parameters = match (field("name"), field("facteur")) {
                    (Some(k), Some(v)) => Some(vec![(k, NString(Some(v)))]),
                    _ => None,
                };
                conn.data(Data::Id { parameters });
                ok(tag, None, "ID completed.")
            }
            // ----- not authenticated -----
            CommandBody::StartTLS => return self.starttls(conn, tag).await,
            CommandBody::Login { username, password } => {
                return self.login(conn, tag, username, password).await;
            }
            body => {
                // ----- authenticated and selected -----
                let Some(user) = self.user.clone() else {
                    conn.status(login_first(tag));
                    return Ok(Step::Continue);
                };
                let (status, sync) = self.authenticated(conn, &user, tag, body).await?;
                return Ok(self.reply(conn, status, sync).await);
            }
        };
        Ok(self.reply(conn, status, true).await)
    }

    /// The end of a command: what other sessions changed, unless the command
    /// ran by message number (`announce = false`; RFC 9051 §7.5.1: then the
    /// changes wait for the next command), then the tagged reply.
    pub(super) async fn reply(
        &mut self,
        conn: &mut Connection,
        status: Status<'static>,
        announce: bool,
    ) -> Step {
        if announce {
            self.announce(conn, true).await;
        }
        conn.status(status);
        Step::Continue
    }

    /// Announce what other sessions changed in the selected mailbox.
    pub(super) async fn announce(&mut self, conn: &mut Connection, expunge_allowed: bool) {
        if let (Some(user), Some(sel)) = (self.user.as_deref(), self.selected.as_mut()) {
            let ctx = Ctx {
                mda: &self.ctx.mda,
                user,
                enabled: &mut self.enabled,
            };
            notify::sync(&ctx, conn, sel, expunge_allowed, false).await;
        }
    }

    async fn authenticated(
        &mut self,
        conn: &mut Connection,
        user: &str,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Result<(Status<'static>, bool), ImapError> {
        let mut ctx = Ctx {
            mda: &self.ctx.mda,
            user,
            enabled: &mut self.enabled,
        };
        let examine = matches!(body, CommandBody::Examine { .. });
        let status = match body {
            CommandBody::Enable { capabilities } => enable(&mut ctx, conn, tag, &capabilities),
            CommandBody::Namespace => {
                let delimiter =
                    imap_next::imap_types::core::QuotedChar::try_from(names::DELIMITER).ok();
                let personal = IString::try_from("")
                    .map(|p| vec![Namespace::new(p, delimiter)])
                    .unwrap_or_default();
                conn.data(Data::Namespace {
                    personal,
                    other: Vec::new(),
                    shared: Vec::new(),
                });
                ok(tag, None, "Namespace completed.")
            }
            CommandBody::Select {
                mailbox,
                parameters,
            }
            | CommandBody::Examine {
                mailbox,
                parameters,
            } => {
                mailbox::select(
                    &mut ctx,
                    conn,
                    &mut self.selected,
                    tag,
                    &mailbox,
                    examine,
                    &parameters,
                )
                .await
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                let pattern = names::pattern_bytes(&mailbox_wildcard).to_vec();
                let opts = folders::ListOpts::plain(&reference, vec![pattern], ctx.enabled.utf8);
                folders::list(&ctx, conn, tag, opts).await?
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                let pattern = names::pattern_bytes(&mailbox_wildcard).to_vec();
                let mut opts =
                    folders::ListOpts::plain(&reference, vec![pattern], ctx.enabled.utf8);
                opts.lsub = true;
                folders::list(&ctx, conn, tag, opts).await?
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                // On the selected mailbox, what changed is announced first, so
                // that STATUS never counts messages the session has no number for.
                if let Some(sel) = self.selected.as_mut()
                    && ctx.name(&mailbox).is_some_and(|n| ctx.mref(&n) == sel.mref)
                {
                    notify::sync(&ctx, conn, sel, true, false).await;
                }
                folders::status(&ctx, conn, tag, &mailbox, &item_names).await
            }
            CommandBody::Create { mailbox } => folders::create(&ctx, tag, &mailbox, None).await,
            CommandBody::Delete { mailbox } => {
                folders::delete(&ctx, conn, &mut self.selected, tag, &mailbox).await
            }
            CommandBody::Rename { from, to } => folders::rename(&ctx, tag, &from, &to).await,
            CommandBody::Subscribe { mailbox } => {
                folders::subscribe(&ctx, tag, &mailbox, true).await
            }
            CommandBody::Unsubscribe { mailbox } => {
                folders::subscribe(&ctx, tag, &mailbox, false).await
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => append::append(&ctx, tag, &mailbox, &flags, date.as_ref(), message).await,
            body => {
                let Some(sel) = self.selected.as_mut() else {
                    return Ok((not_selected(tag), true));
                };
                let uid_command = match &body {
                    CommandBody::Fetch { uid, .. }
                    | CommandBody::Store { uid, .. }
                    | CommandBody::Search { uid, .. } => *uid,
                    _ => true,
                };
                let status = match body {
                    CommandBody::Check => ok(tag, None, "Check completed."),
                    CommandBody::Fetch {
                        sequence_set,
                        macro_or_item_names,
                        uid,
                        modifiers,
                    } => {
                        messages::fetch(
                            &mut ctx,
                            conn,
                            sel,
                            tag,
                            &sequence_set,
                            macro_or_item_names,
                            uid,
                            &modifiers,
                        )
                        .await?
                    }
                    CommandBody::Store {
                        sequence_set,
                        kind,
                        response,
                        flags,
                        uid,
                        modifiers,
                    } => {
                        let req = messages::StoreReq {
                            set: &sequence_set,
                            kind,
                            response,
                            flags: &flags,
                            uid,
                            modifiers: &modifiers,
                        };
                        messages::store(&mut ctx, conn, sel, tag, req).await
                    }
                    CommandBody::Search {
                        charset,
                        criteria,
                        uid,
                    } => {
                        let req = search::SearchReq {
                            charset: charset.as_ref(),
                            criteria: criteria.as_ref(),
                            uid,
                            ret: None,
                        };
                        search::search(&mut ctx, conn, sel, tag, req).await?
                    }
                    CommandBody::Expunge => mailbox::expunge(&ctx, conn, sel, tag, None).await,
                    CommandBody::ExpungeUid { sequence_set } => {
                        mailbox::expunge(&ctx, conn, sel, tag, Some(&sequence_set)).await
                    }
                    CommandBody::Copy {
                        sequence_set,
                        mailbox,
                        uid,
                    } => {
                        append::copy(&ctx, conn, sel, tag, &sequence_set, &mailbox, uid, false)
                            .await
                    }
                    CommandBody::Move {
                        sequence_set,
                        mailbox,
                        uid,
                    } => {
                        append::copy(&ctx, conn, sel, tag, &sequence_set, &mailbox, uid, true).await
                    }
                    CommandBody::Close => {
                        // Expunge silently, then leave the mailbox whatever happens.
                        let status = mailbox::close(&ctx, sel, tag).await;
                        self.selected = None;
                        return Ok((status, false));
                    }
                    CommandBody::Unselect => {
                        self.selected = None;
                        return Ok((ok(tag, None, "Unselect completed."), false));
                    }
                    _ => bad(tag, "Unknown command or not supported."),
                };
                // No EXPUNGE while a command by message number runs (RFC 9051
                // §7.5.1): then the changes wait for the next command.
                return Ok((status, uid_command));
            }
        };
        Ok((status, true))
    }
}

/// ENABLE (RFC 5161): IMAP4rev2, CONDSTORE, QRESYNC, UTF8=ACCEPT.
fn enable<M>(
    ctx: &mut Ctx<'_, M>,
    conn: &mut Connection,
    tag: Tag<'static>,
    caps: &Vec1<CapabilityEnable<'static>>,
) -> Status<'static> {
    let mut enabled = Vec::new();
    for cap in caps.as_ref() {
        let name = cap.to_string();
        let on = match name.to_ascii_uppercase().as_str() {
            "CONDSTORE" => std::mem::replace(&mut ctx.enabled.condstore, true),
            "QRESYNC" => {
                ctx.enabled.condstore = true;
                std::mem::replace(&mut ctx.enabled.qresync, true)
            }
            "UTF8=ACCEPT" => std::mem::replace(&mut ctx.enabled.utf8, true),
            "IMAP4REV2" => {
                ctx.enabled.utf8 = true;
                std::mem::replace(&mut ctx.enabled.rev2, true)
            }
            _ => continue,
        };
        if !on {
            enabled.push(cap.clone());
        }
    }
    conn.data(Data::Enabled {
        capabilities: enabled,
    });
    ok(tag, None, "Enabled.")
}

/// The tag at the start of a refused command, if it is a valid tag.
pub(super) fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    Tag::try_from(bytes[..end].to_vec()).ok()
}
