//! The sans-IO SMTP/LMTP server session (shape of imap-next's server): feed bytes,
//! ask for the next [`Event`], answer the ones that need an answer, write the output.
//!
//! The session answers protocol matters itself (greeting, EHLO, sequencing, limits,
//! SASL exchange, DATA/BDAT framing); the agent decides only what is policy:
//! senders, recipients, whether to take the data, credentials, and the final
//! verdict on a message.
//!
//! DATA vs BDAT: `DATA` yields [`Event::DataStart`] (answer 354 to go on), then
//! [`Event::DataChunk`]s, then [`Event::DataEnd`] or [`Event::DataAborted`].
//! `BDAT` (RFC 3030) has no intermediate reply, so there is **no** `DataStart`:
//! the first `DataChunk` of the transaction arrives directly, the session answers
//! each non-final chunk with `250 2.0.0`, and after `BDAT n LAST` comes
//! [`Event::DataEnd`]. Either way, `DataEnd` is answered once (SMTP) or once per
//! accepted recipient, in order (LMTP, RFC 2033 §4.2).

use std::collections::VecDeque;

use super::codes;
use super::command::{Body, Command, MailParams, Param};
use super::data::{DataDecoder, DataEnd};
use super::reply::Reply;
use crate::Secret;
use crate::address::{ForwardPath, ReversePath};
use crate::deadline::{Phase, Progress};
use crate::line::{LineError, LineFramer};
use crate::sasl;

/// What the session enforces and offers. Every limit has a safe default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Our name, in the greeting and EHLO reply.
    pub hostname: String,
    /// Speak LMTP (RFC 2033): LHLO instead of EHLO/HELO, one reply per recipient.
    pub lmtp: bool,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 says at least 512).
    pub max_line: usize,
    /// Largest message, advertised in SIZE (RFC 1870).
    pub max_message_size: u64,
    /// Most recipients per transaction (RFC 5321 §4.5.3.1.8 says at least 100).
    pub max_recipients: usize,
    /// Errors (bad commands, refused recipients) before the session closes
    /// with 421 (Postfix's `smtpd_hard_error_limit`).
    pub max_errors: usize,
    /// Errors after which each further one is answered more slowly: the
    /// [`ServerSession::tarpit`] delay grows by `error_sleep` per error
    /// (Postfix's `smtpd_soft_error_limit` and `smtpd_error_sleep_time`), so
    /// harvesting addresses with RCPT costs the harvester time.
    pub soft_error_limit: usize,
    pub error_sleep: std::time::Duration,
    /// Offer STARTTLS while not yet under TLS (RFC 3207).
    pub starttls: bool,
    /// SASL mechanisms (PLAIN, LOGIN), offered and accepted only under TLS.
    pub auth_mechanisms: Vec<String>,
    /// MAIL needs a successful AUTH first (submission, RFC 6409 §4.3).
    pub require_auth: bool,
    /// Offer CHUNKING / accept BDAT (RFC 3030).
    pub chunking: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            lmtp: false,
            max_line: 2048,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            soft_error_limit: 3,
            error_sleep: std::time::Duration::from_millis(500),
            starttls: false,
            auth_mechanisms: Vec::new(),
            require_auth: false,
            chunking: false,
        }
    }
}

/// What happened; see each variant for whether it needs [`ServerSession::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// MAIL FROM passed the session's checks. Needs an answer (2xx opens the transaction).
    MailFrom {
        from: ReversePath,
        params: MailParams,
    },
    /// RCPT TO passed the session's checks (including `max_recipients`). Needs an
    /// answer (2xx accepts the recipient).
    Rcpt { to: ForwardPath, params: Vec<Param> },
    /// DATA with at least one accepted recipient. Needs an answer: 354 to go on,
    /// anything else refuses (the transaction stays open).
    DataStart,
    /// Un-stuffed message bytes, in order. No answer.
    DataChunk(Vec<u8>),
    /// The message is complete and valid. Needs an answer; in LMTP one per
    /// accepted recipient, in RCPT order.
    DataEnd,
    /// The message was refused (`TooBig` or `BareLineEnding`); the session already
    /// queued the reply(ies) and dropped the transaction. No answer.
    DataAborted(DataEnd),
    /// The session ran the SASL exchange. Needs an answer: 235 (marks the session
    /// authenticated as `authcid`) or 535.
    AuthCredentials {
        authzid: Option<String>,
        authcid: String,
        password: Secret<String>,
    },
    /// 220 queued: flush the output, upgrade the stream, call
    /// [`ServerSession::tls_started`]. No answer.
    StartTls,
    /// RSET or a new EHLO dropped an open transaction (already answered).
    Reset,
    /// 221 queued: flush and close.
    Quit,
    /// 421 queued (too many errors, or input pipelined after STARTTLS): flush and close.
    Close,
}

#[derive(Debug)]
enum Mode {
    Command,
    Data(DataDecoder),
    Bdat {
        remaining: u64,
        size: u64,
        last: bool,
        rejection: Option<Reply>,
    },
    SaslPlain,
    SaslLoginUser,
    SaslLoginPass(String),
}

#[derive(Debug)]
enum Awaiting {
    Mail { smtputf8: bool },
    Rcpt,
    DataStart,
    DataEnd { remaining: usize },
    Auth { authcid: String },
}

#[derive(Debug, PartialEq, Eq)]
enum Lifecycle {
    Open,
    AwaitingTls,
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    smtputf8: bool,
    rcpts: usize,
    bdat: bool,
    size: u64,
    /// BDAT: the line endings seen so far (a bare CR or LF refuses the
    /// message, as DATA does).
    endings: LineEndings,
}

/// Finds a bare CR or bare LF in BDAT content, across chunk boundaries. RFC 3030
/// lets BDAT carry any octet only under BINARYMIME, which is not offered; so its
/// content is held to the same rule as DATA's (RFC 5321 §2.3.8), and the same
/// bytes get the same `554 5.6.0` whichever command carried them.
#[derive(Debug, Default)]
struct LineEndings {
    /// The last byte seen was a CR.
    cr_pending: bool,
    bare: bool,
}

impl LineEndings {
    fn scan(&mut self, chunk: &[u8]) {
        for &b in chunk {
            match (self.cr_pending, b) {
                (true, b'\n') => self.cr_pending = false,
                (true, b'\r') => self.bare = true,
                (true, _) => {
                    self.bare = true;
                    self.cr_pending = false;
                }
                (false, b'\n') => self.bare = true,
                (false, b'\r') => self.cr_pending = true,
                (false, _) => {}
            }
        }
    }

    /// Bare so far, or (at the message's end) a CR left waiting for its LF.
    fn is_bare(&self, at_end: bool) -> bool {
        self.bare || (at_end && self.cr_pending)
    }
}

/// One SMTP or LMTP connection, server side. No IO.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    tls: bool,
    framer: LineFramer,
    raw: Vec<u8>,
    mode: Mode,
    awaiting: Option<Awaiting>,
    events: VecDeque<Event>,
    output: Vec<u8>,
    helo: Option<String>,
    authenticated: Option<String>,
    txn: Option<Transaction>,
    errors: usize,
    lifecycle: Lifecycle,
    /// Requests completed (command lines, message bodies), for [`Self::progress`].
    completed: u64,
}

impl ServerSession {
    /// A new session; the 220 greeting is queued. `tls_active` is true for
    /// implicit TLS (port 465).
    pub fn new(config: ServerConfig, tls_active: bool) -> Self {
        let mut s = ServerSession {
            framer: LineFramer::new(config.max_line),
            config,
            tls: tls_active,
            raw: Vec::new(),
            mode: Mode::Command,
            awaiting: None,
            events: VecDeque::new(),
            output: Vec::new(),
            helo: None,
            authenticated: None,
            txn: None,
            errors: 0,
            lifecycle: Lifecycle::Open,
            completed: 0,
        };
        let greeting = codes::greeting(&s.config.hostname, s.config.lmtp);
        s.reply(&greeting);
        s
    }

    /// Bytes read from the peer. Ignored once closed, and while a TLS upgrade is
    /// pending (plaintext there is an injection, RFC 3207 §4.2).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match self.mode {
            Mode::Data(_) | Mode::Bdat { .. } => self.raw.extend_from_slice(bytes),
            _ => self.framer.push(bytes),
        }
    }

    /// The next event, or `None` when more input is needed, an answer is awaited,
    /// or the session is over.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if self.awaiting.is_some() || self.lifecycle != Lifecycle::Open {
                return None;
            }
            match &mut self.mode {
                Mode::Data(dec) => {
                    if self.raw.is_empty() {
                        return None;
                    }
                    let step = dec.decode(&self.raw);
                    self.raw.drain(..step.consumed);
                    if !step.out.is_empty() {
                        self.events.push_back(Event::DataChunk(step.out));
                    }
                    if let Some(end) = step.end {
                        self.leave_raw_mode();
                        self.data_ended(end);
                    }
                }
                Mode::Bdat {
                    remaining,
                    size,
                    last,
                    rejection,
                } => {
                    if self.raw.is_empty() && *remaining > 0 {
                        return None;
                    }
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.raw.len());
                    let chunk: Vec<u8> = self.raw.drain(..n).collect();
                    *remaining -= n as u64;
                    if rejection.is_none()
                        && let Some(t) = self.txn.as_mut()
                    {
                        t.size = t.size.saturating_add(n as u64);
                        let too_big = t.size > self.config.max_message_size;
                        t.endings.scan(&chunk);
                        if !too_big && !t.endings.is_bare(false) && !chunk.is_empty() {
                            self.events.push_back(Event::DataChunk(chunk));
                        }
                    }
                    if *remaining == 0 {
                        let (size, last, rejection) = (*size, *last, rejection.take());
                        self.leave_raw_mode();
                        self.bdat_ended(size, last, rejection);
                    }
                }
                _ => match self.framer.next_line() {
                    None => return None,
                    Some(Err(LineError::TooLong)) => {
                        self.completed += 1;
                        // RFC 5321 §4.5.3.1.4 / §4.2.2 "500 Line too long"
                        self.mode = Mode::Command;
                        self.reply(&codes::line_too_long());
                        self.bad_command();
                    }
                    Some(Ok(line)) => {
                        self.completed += 1;
                        self.handle_line(&line);
                    }
                },
            }
        }
    }

    /// Bytes to write to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Answers the pending `MailFrom`, `Rcpt`, `DataStart`, `DataEnd` or
    /// `AuthCredentials` event. An answer with nothing pending is dropped.
    pub fn answer(&mut self, reply: Reply) {
        let Some(awaiting) = self.awaiting.take() else {
            return;
        };
        self.reply(&reply);
        match awaiting {
            Awaiting::Mail { smtputf8 } => {
                if reply.is_completion() {
                    self.txn = Some(Transaction {
                        smtputf8,
                        ..Transaction::default()
                    });
                }
            }
            Awaiting::Rcpt => {
                if let (true, Some(t)) = (reply.is_completion(), self.txn.as_mut()) {
                    t.rcpts += 1;
                } else if !reply.is_completion() && !self.config.lmtp {
                    // A refused recipient is an error (RCPT harvesting); not over
                    // LMTP, whose client is our own MTA.
                    self.bad_command();
                }
            }
            Awaiting::DataStart => {
                if reply.is_intermediate() {
                    self.mode = Mode::Data(DataDecoder::new(self.config.max_message_size));
                    self.raw = self.framer.take_remaining();
                }
            }
            Awaiting::DataEnd { remaining } => {
                if remaining > 1 {
                    self.awaiting = Some(Awaiting::DataEnd {
                        remaining: remaining - 1,
                    });
                } else {
                    self.txn = None;
                }
            }
            Awaiting::Auth { authcid } => {
                if reply.is_completion() {
                    self.authenticated = Some(authcid);
                } else {
                    self.bad_command();
                }
            }
        }
    }

    /// The stream is now TLS: back to the initial state without a new greeting,
    /// buffered plaintext discarded (RFC 3207 §4.2, CVE-2011-0411).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.framer = LineFramer::new(self.config.max_line);
        self.raw.clear();
        self.mode = Mode::Command;
        self.awaiting = None;
        self.helo = None;
        self.authenticated = None;
        self.txn = None;
        if self.lifecycle == Lifecycle::AwaitingTls {
            self.lifecycle = Lifecycle::Open;
        }
    }

    /// Input bytes received but not processed yet.
    pub fn buffered_input(&self) -> usize {
        self.framer.buffered() + self.raw.len()
    }

    /// Where the input stands, for the request deadlines (`crate::deadline`): a
    /// message body, part of a command line, or nothing under way.
    pub fn progress(&self) -> Progress {
        let phase = match self.mode {
            Mode::Data(_) | Mode::Bdat { .. } => Phase::Data,
            _ if self.framer.in_line() => Phase::Command,
            _ => Phase::Idle,
        };
        Progress {
            phase,
            completed: self.completed,
        }
    }

    /// The HELO/EHLO/LHLO argument, once given.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The authenticated identity, after a 2xx answer to `AuthCredentials`.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Errors so far in this session (bad commands, refused recipients).
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// How long the driver waits before answering on, once the errors are past
    /// `soft_error_limit`: `error_sleep` times the errors over it, at most 10 s.
    pub fn tarpit(&self) -> Option<std::time::Duration> {
        let over = self.errors.checked_sub(self.config.soft_error_limit)?;
        if over == 0 || self.lifecycle == Lifecycle::Closed {
            return None;
        }
        let n = u32::try_from(over).unwrap_or(u32::MAX);
        Some(
            self.config
                .error_sleep
                .saturating_mul(n)
                .min(std::time::Duration::from_secs(10)),
        )
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    // ---- internals ----

    fn reply(&mut self, reply: &Reply) {
        self.output.extend_from_slice(&reply.to_bytes());
    }

    /// One reply in SMTP; one per accepted recipient in LMTP (RFC 2033 §4.2).
    fn reply_per_recipient(&mut self, reply: &Reply) {
        let n = if self.config.lmtp {
            self.txn.as_ref().map_or(1, |t| t.rcpts.max(1))
        } else {
            1
        };
        for _ in 0..n {
            self.reply(reply);
        }
    }

    fn close(&mut self, reply: &Reply) {
        self.reply(reply);
        self.events.push_back(Event::Close);
        self.lifecycle = Lifecycle::Closed;
    }

    fn bad_command(&mut self) {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.close(&codes::too_many_errors());
        }
    }

    fn fail(&mut self, reply: &Reply) {
        self.reply(reply);
        self.bad_command();
    }

    fn reset_transaction(&mut self) {
        if self.txn.take().is_some() {
            self.events.push_back(Event::Reset);
        }
    }

    fn leave_raw_mode(&mut self) {
        self.completed += 1;
        self.mode = Mode::Command;
        let rest = std::mem::take(&mut self.raw);
        self.framer.push(&rest);
    }

    fn data_ended(&mut self, end: DataEnd) {
        match end {
            DataEnd::Complete => self.message_complete(),
            DataEnd::TooBig => self.abort_message(&codes::message_too_big(), end),
            DataEnd::BareLineEnding => self.abort_message(&codes::bare_line_ending(), end),
        }
    }

    fn message_complete(&mut self) {
        let remaining = if self.config.lmtp {
            self.txn.as_ref().map_or(1, |t| t.rcpts.max(1))
        } else {
            1
        };
        self.awaiting = Some(Awaiting::DataEnd { remaining });
        self.events.push_back(Event::DataEnd);
    }

    fn abort_message(&mut self, reply: &Reply, end: DataEnd) {
        self.reply_per_recipient(reply);
        self.txn = None;
        self.events.push_back(Event::DataAborted(end));
    }

    fn bdat_ended(&mut self, size: u64, last: bool, rejection: Option<Reply>) {
        if let Some(rejection) = rejection {
            self.reply(&rejection);
            return;
        }
        let refused = self.txn.as_ref().and_then(|t| {
            if t.size > self.config.max_message_size {
                Some((codes::message_too_big(), DataEnd::TooBig))
            } else if t.endings.is_bare(last) {
                Some((codes::bare_line_ending(), DataEnd::BareLineEnding))
            } else {
                None
            }
        });
        if let Some((reply, end)) = refused {
            // RFC 3030 §2: an error ends the transaction.
            if last {
                self.abort_message(&reply, end);
            } else {
                self.reply(&reply);
                self.txn = None;
                self.events.push_back(Event::DataAborted(end));
            }
        } else if last {
            self.message_complete();
        } else {
            self.reply(&codes::chunk_ok(size));
        }
    }

    fn handle_line(&mut self, line: &[u8]) {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::SaslPlain => return self.sasl_plain(line),
            Mode::SaslLoginUser => return self.sasl_login_user(line),
            Mode::SaslLoginPass(user) => return self.sasl_login_pass(user, line),
            _ => {}
        }
        match Command::parse(line) {
            Ok(cmd) => self.handle_command(cmd),
            Err(e) => self.fail(&e.reply()),
        }
    }

    fn ehlo_reply(&self) -> Reply {
        let c = &self.config;
        let mut lines = vec![
            c.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", c.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if c.chunking {
            lines.push("CHUNKING".into());
        }
        if c.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        // DESIGN: AUTH is offered only over TLS.
        if self.tls && !c.auth_mechanisms.is_empty() {
            lines.push(format!("AUTH {}", c.auth_mechanisms.join(" ")));
        }
        Reply::multi(250, None, lines)
    }

    fn handle_command(&mut self, cmd: Command) {
        let lmtp = self.config.lmtp;
        match cmd {
            // RFC 2033 §4.1: LMTP has LHLO only; SMTP has no LHLO.
            Command::Ehlo(_) | Command::Helo(_) if lmtp => self.fail(&codes::unknown_command()),
            Command::Lhlo(_) if !lmtp => self.fail(&codes::unknown_command()),
            Command::Ehlo(d) | Command::Lhlo(d) => {
                // RFC 5321 §4.1.4: EHLO mid-session resets the transaction.
                self.reset_transaction();
                self.helo = Some(d);
                let reply = self.ehlo_reply();
                self.reply(&reply);
            }
            Command::Helo(d) => {
                self.reset_transaction();
                self.helo = Some(d);
                let reply = codes::helo(&self.config.hostname);
                self.reply(&reply);
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => {
                let ready = self.txn.as_ref().is_some_and(|t| t.rcpts > 0 && !t.bdat);
                if ready {
                    self.awaiting = Some(Awaiting::DataStart);
                    self.events.push_back(Event::DataStart);
                } else {
                    // RFC 5321 §3.3: DATA without a valid recipient.
                    self.fail(&codes::bad_sequence());
                }
            }
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset_transaction();
                self.reply(&codes::ok());
            }
            Command::Noop => self.reply(&codes::ok()),
            Command::Quit => {
                let reply = codes::closing(&self.config.hostname);
                self.reply(&reply);
                self.events.push_back(Event::Quit);
                self.lifecycle = Lifecycle::Closed;
            }
            Command::Vrfy(_) => self.reply(&codes::vrfy()),
            Command::Expn(_) => self.reply(&codes::not_implemented()),
            Command::Help(_) => self.reply(&codes::help()),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
        }
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        if self.helo.is_none() || self.txn.is_some() {
            // RFC 5321 §4.1.4: MAIL needs HELO/EHLO first and no open transaction.
            return self.fail(&codes::bad_sequence());
        }
        if self.config.require_auth && self.authenticated.is_none() {
            return self.fail(&codes::auth_required());
        }
        if params
            .size
            .is_some_and(|n| n > self.config.max_message_size)
        {
            // RFC 1870 §6.2
            return self.reply(&codes::message_too_big());
        }
        // RFC 5321 §4.1.1.11: parameters we did not advertise are refused.
        // AUTH= (RFC 4954 §5) is accepted and ignored.
        let unknown = params.other.iter().any(|p| p.keyword != "AUTH");
        if unknown || params.body == Some(Body::BinaryMime) {
            return self.fail(&codes::param_not_impl());
        }
        if !params.smtputf8 && !from.is_ascii() {
            // RFC 6531 §3.4
            return self.reply(&codes::non_ascii_address());
        }
        self.awaiting = Some(Awaiting::Mail {
            smtputf8: params.smtputf8,
        });
        self.events.push_back(Event::MailFrom { from, params });
    }

    fn rcpt(&mut self, to: ForwardPath, params: Vec<Param>) {
        let Some(txn) = self.txn.as_ref() else {
            return self.fail(&codes::bad_sequence());
        };
        if txn.bdat {
            return self.fail(&codes::bad_sequence());
        }
        if !params.is_empty() {
            // RFC 5321 §4.1.1.11: no RCPT parameter is advertised.
            return self.fail(&codes::param_not_impl());
        }
        if txn.rcpts >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10
            return self.reply(&codes::too_many_recipients());
        }
        if !txn.smtputf8 && !to.is_ascii() {
            // RFC 6531 §3.4
            return self.reply(&codes::non_ascii_address());
        }
        self.awaiting = Some(Awaiting::Rcpt);
        self.events.push_back(Event::Rcpt { to, params });
    }

    fn bdat(&mut self, size: u64, last: bool) {
        if !self.config.chunking {
            return self.fail(&codes::not_implemented());
        }
        // RFC 3030 §2: the chunk is read even when the command is refused, so
        // its bytes are never taken for commands.
        let rejection = match self.txn.as_mut() {
            Some(t) if t.rcpts > 0 => {
                t.bdat = true;
                None
            }
            _ => Some(codes::bad_sequence()),
        };
        if rejection.is_some() {
            self.bad_command();
            if self.lifecycle != Lifecycle::Open {
                return;
            }
        }
        self.mode = Mode::Bdat {
            remaining: size,
            size,
            last,
            rejection,
        };
        self.raw = self.framer.take_remaining();
    }

    fn starttls(&mut self) {
        if !self.config.starttls {
            return self.fail(&codes::not_implemented());
        }
        if self.tls {
            return self.fail(&codes::bad_sequence());
        }
        if self.framer.buffered() > 0 {
            // CVE-2011-0411: input pipelined after STARTTLS would be read as if
            // it came over TLS. Refuse to upgrade; close.
            return self.close(&codes::starttls_pipelined());
        }
        self.reply(&codes::tls_ready());
        self.events.push_back(Event::StartTls);
        self.lifecycle = Lifecycle::AwaitingTls;
    }

    fn auth(&mut self, mechanism: &str, initial: Option<Secret<String>>) {
        if !self.tls {
            // DESIGN: AUTH only over TLS; RFC 4954 §6 538.
            return self.fail(&codes::encryption_required());
        }
        // RFC 4954 §4: not after a successful AUTH, not during a transaction.
        if self.helo.is_none() || self.authenticated.is_some() || self.txn.is_some() {
            return self.fail(&codes::bad_sequence());
        }
        let offered = self
            .config
            .auth_mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism));
        match (offered, mechanism) {
            (true, "PLAIN") => match initial {
                Some(i) => self.sasl_plain(i.expose().as_bytes()),
                None => {
                    self.reply(&codes::auth_challenge(""));
                    self.mode = Mode::SaslPlain;
                }
            },
            (true, "LOGIN") => match initial.filter(|i| !i.expose().is_empty()) {
                Some(i) => self.sasl_login_user(i.expose().as_bytes()),
                None => {
                    self.reply(&codes::auth_challenge(&sasl::base64_encode(b"Username:")));
                    self.mode = Mode::SaslLoginUser;
                }
            },
            _ => self.fail(&codes::auth_mechanism_unknown()),
        }
    }

    /// Decodes one SASL response line; `None` after replying to `*` or bad base64.
    fn sasl_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        if line == b"*" {
            // RFC 4954 §4: "*" cancels.
            self.fail(&codes::auth_cancelled());
            return None;
        }
        match std::str::from_utf8(line)
            .ok()
            .and_then(|s| sasl::base64_decode(s).ok())
        {
            Some(bytes) => Some(bytes),
            None => {
                self.fail(&codes::auth_bad_response());
                None
            }
        }
    }

    fn sasl_plain(&mut self, line: &[u8]) {
        let Some(msg) = self.sasl_line(line) else {
            return;
        };
        match sasl::decode_plain(&msg) {
            Ok(c) => self.credentials(c.authzid, c.authcid, c.password),
            Err(_) => self.fail(&codes::auth_bad_response()),
        }
    }

    fn sasl_login_user(&mut self, line: &[u8]) {
        let Some(user) = self.sasl_line(line) else {
            return;
        };
        match String::from_utf8(user) {
            Ok(user) if !user.is_empty() => {
                self.reply(&codes::auth_challenge(&sasl::base64_encode(b"Password:")));
                self.mode = Mode::SaslLoginPass(user);
            }
            _ => self.fail(&codes::auth_bad_response()),
        }
    }

    fn sasl_login_pass(&mut self, user: String, line: &[u8]) {
        let Some(pass) = self.sasl_line(line) else {
            return;
        };
        match String::from_utf8(pass) {
            Ok(pass) => self.credentials(None, user, Secret::new(pass)),
            Err(_) => self.fail(&codes::auth_bad_response()),
        }
    }

    fn credentials(&mut self, authzid: Option<String>, authcid: String, password: Secret<String>) {
        self.awaiting = Some(Awaiting::Auth {
            authcid: authcid.clone(),
        });
        self.events.push_back(Event::AuthCredentials {
            authzid,
            authcid,
            password,
        });
    }
}

#[cfg(test)]
mod tests;
