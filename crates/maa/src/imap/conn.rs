//! The IO driver around imap-next's sans-IO server: reads the socket with the
//! autologout timeout and the command deadline (slow-drip defence,
//! `facteur_protocol::deadline`), feeds the parser one line at a time, writes
//! responses as soon as they are encoded, upgrades to TLS only when nothing is
//! buffered, and swaps in the parser with the larger post-login limits.
//!
//! Feeding at most one LF-terminated piece at a time keeps an invariant: when the
//! parser reports a complete command, it holds no byte after it (a command always
//! ends with the only LF of the last piece fed). So bytes a client pipelined after
//! STARTTLS are all in `pending`, where the upgrade can see and refuse them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use facteur_daemon::stream::Stream;
use facteur_protocol::deadline::{Deadlines, Phase, Progress, RequestClock};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{Data, Greeting, Status};
use imap_next::server::{Error as ServerError, Event, Options, Server};
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use facteur_daemon::transcript::Recording;

use super::reply::{bad_code, toobig};
use super::{ImapContext, ImapError};

/// Size of one socket read.
const READ_CHUNK: usize = 16 * 1024;

/// What the driver hands to the session.
#[derive(Debug)]
pub(super) enum Input {
    /// A parsed command (or AUTHENTICATE step, or IDLE).
    Event(Event),
    /// A message the parser could not accept; the bytes are the client's.
    Invalid(ServerError),
    /// The client closed the connection.
    Closed,
    /// A non-synchronizing literal over the limit: `BAD [TOOBIG]` is queued,
    /// the connection must close (RFC 7888 §4), as its bytes are on the way.
    TooBig,
}

/// What `feed` did.
enum Fed {
    /// Nothing was pending.
    Nothing,
    /// A piece went to the parser (or a command was refused before its literal).
    Piece,
    /// A non-synchronizing literal over the limit.
    TooBig,
}

/// Encoded responses gathered before one write.
const WRITE_BATCH: usize = 64 * 1024;

/// One client connection: the socket, the imap-next server and unfed input.
pub(super) struct Connection {
    stream: Stream,
    pub(super) server: Server,
    /// Bytes read from the socket, not yet given to the parser.
    pending: Vec<u8>,
    /// Events met while flushing output, to hand out before reading more.
    stashed: VecDeque<Event>,
    /// Autologout: how long the client may stay silent (and a write may stall).
    idle: Duration,
    /// The deadline of the command under way.
    clock: RequestClock,
    /// Messages (commands, AUTHENTICATE lines, IDLE DONE) the parser completed.
    completed: u64,
    /// The parser holds part of a message.
    in_command: bool,
    /// The message under way announced a literal.
    has_literal: bool,
    /// Logged in: a command with a literal (APPEND) gets the body deadline.
    authenticated: bool,
    /// The parser's literal limit, checked here first (see `announced`).
    max_literal: u32,
    /// Bytes of an accepted literal not yet fed: they go to the parser as they
    /// come, never read as a line (a literal's data may end in `{n}`).
    literal_left: u64,
    /// The tag of the command under way, from its first line.
    tag: Option<Tag<'static>>,
    /// The session's transcript, stored when the connection is dropped.
    pub(super) rec: Option<Recording>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(rec) = self.rec.take() {
            rec.finish();
        }
    }
}

impl Connection {
    pub(super) fn new(
        stream: Stream,
        server: Server,
        max_literal: u32,
        idle: Duration,
        deadlines: Deadlines,
    ) -> Self {
        Self {
            stream,
            server,
            pending: Vec::new(),
            stashed: VecDeque::new(),
            idle,
            clock: RequestClock::new(deadlines),
            completed: 0,
            in_command: false,
            has_literal: false,
            authenticated: false,
            max_literal,
            literal_left: 0,
            tag: None,
            rec: None,
        }
    }

    /// After login: a parser with the larger limits (`options`) replaces the
    /// pre-login one. Call between commands: the old parser's queued responses
    /// are written first, and it holds no input (see the module header).
    pub(super) async fn logged_in(&mut self, options: Options) -> Result<(), ImapError> {
        self.flush().await?;
        self.authenticated = true;
        self.max_literal = options.max_literal_size;
        let mut server = Server::new(options, placeholder_greeting());
        // A new parser starts by sending its greeting; the client had one already.
        loop {
            match server.next() {
                Err(Interrupt::Io(Io::Output(_))) => {}
                Ok(Event::GreetingSent { .. }) => break,
                other => {
                    tracing::error!(?other, "unexpected start of a fresh imap-next server");
                    break;
                }
            }
        }
        self.server = server;
        Ok(())
    }

    pub(super) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Did the client send bytes the parser has not seen yet?
    pub(super) fn has_pending_input(&self) -> bool {
        !self.pending.is_empty() || !self.stashed.is_empty()
    }

    /// Queue an untagged data response.
    pub(super) fn data(&mut self, data: Data<'static>) {
        self.server.enqueue_data(data);
    }

    /// Queue a status response (tagged, untagged or BYE).
    pub(super) fn status(&mut self, status: Status<'static>) {
        self.server.enqueue_status(status);
    }

    /// The next thing the client did.
    pub(super) async fn next_input(&mut self) -> Result<Input, ImapError> {
        if let Some(event) = self.stashed.pop_front() {
            return Ok(Input::Event(event));
        }
        loop {
            match self.server.next() {
                Ok(Event::GreetingSent { .. } | Event::ResponseSent { .. }) => {}
                Ok(event) => {
                    self.message_done();
                    return Ok(Input::Event(event));
                }
                Err(Interrupt::Io(Io::Output(bytes))) => self.write(&bytes).await?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => match self.feed() {
                    Fed::Piece => {}
                    Fed::TooBig => return Ok(Input::TooBig),
                    Fed::Nothing => {
                        if !self.read().await? {
                            return Ok(Input::Closed);
                        }
                    }
                },
                Err(Interrupt::Error(e)) => {
                    self.message_done();
                    return Ok(Input::Invalid(e));
                }
            }
        }
    }

    /// Write every queued response without reading anything.
    pub(super) async fn flush(&mut self) -> Result<(), ImapError> {
        // imap-next hands out one encoded response at a time: gather them and
        // write in large pieces, not one write (and one TLS record) each.
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.server.next() {
                Ok(Event::GreetingSent { .. } | Event::ResponseSent { .. }) => {}
                Ok(event) => {
                    self.message_done();
                    self.stashed.push_back(event);
                }
                Err(Interrupt::Io(Io::Output(bytes))) => {
                    out.extend_from_slice(&bytes);
                    if out.len() >= WRITE_BATCH {
                        self.write(&out).await?;
                        out.clear();
                    }
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => break,
                Err(Interrupt::Error(e)) => {
                    // Cannot happen without new input; keep the parser's word for it.
                    tracing::debug!(error = %e, "parser error while flushing");
                    break;
                }
            }
        }
        if !out.is_empty() {
            self.write(&out).await?;
        }
        Ok(())
    }

    /// Write a response imap-types has no type for (ESEARCH), in order: what
    /// is queued goes first.
    pub(super) async fn raw(&mut self, bytes: Vec<u8>) -> Result<(), ImapError> {
        self.flush().await?;
        self.write(&bytes).await
    }

    /// Upgrade to TLS after the STARTTLS OK was written. Refuses (and the caller
    /// closes) if the client sent anything after the STARTTLS command.
    pub(super) async fn start_tls<M>(
        &mut self,
        acceptor: &TlsAcceptor,
        ctx: &ImapContext<M>,
    ) -> Result<(), ImapError> {
        self.flush().await?;
        if !self.pending.is_empty() || !self.stashed.is_empty() {
            return Err(ImapError::PipelinedStartTls);
        }
        let plain = std::mem::take(&mut self.stream);
        self.stream = super::accept_tls(plain, acceptor, ctx).await?;
        tracing::debug!("TLS started");
        if let Some(rec) = self.rec.as_mut() {
            rec.note("TLS started");
        }
        Ok(())
    }

    /// Close the write side politely (best effort).
    pub(super) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Give the parser the next piece of pending input: the rest of an
    /// accepted literal, else up to and including the first LF (or everything
    /// if there is no LF). A line announcing a literal over the limit is
    /// refused here (see `announced`).
    fn feed(&mut self) -> Fed {
        if self.pending.is_empty() {
            return Fed::Nothing;
        }
        if self.literal_left > 0 {
            let n = self
                .pending
                .len()
                .min(usize::try_from(self.literal_left).unwrap_or(usize::MAX));
            self.server.enqueue_input(&self.pending[..n]);
            self.pending.drain(..n);
            self.literal_left -= n as u64;
            return Fed::Piece;
        }
        let end = match self.pending.iter().position(|&b| b == b'\n') {
            Some(lf) => lf + 1,
            None => self.pending.len(),
        };
        let piece = &self.pending[..end];
        if !self.in_command {
            self.tag = super::session::tag_of(piece);
        }
        // `{n}` or `{n+}` at the end of a line announces a literal (RFC 9051 §4.3).
        let line = piece
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if let Some(literal) = line.and_then(announced) {
            if literal.size > u64::from(self.max_literal) {
                if !literal.sync {
                    let status = match self.tag.clone() {
                        Some(tag) => bad_code(tag, toobig(), "Literal too big."),
                        None => super::reply::untagged_bad("Literal too big."),
                    };
                    self.server.enqueue_status(status);
                    self.pending.clear();
                    return Fed::TooBig;
                }
                if !self.in_command
                    && let Some(tag) = self.tag.clone()
                {
                    // The first line of a command announces a literal over the
                    // limit: answer now, before any byte of it, with the reason.
                    self.server
                        .enqueue_status(bad_code(tag, toobig(), "Literal too big."));
                    self.pending.drain(..end);
                    return Fed::Piece;
                }
                // Further in a command, imap-next refuses it (with a plain BAD).
            } else {
                self.literal_left = literal.size;
            }
            self.has_literal = true;
        }
        self.server.enqueue_input(piece);
        self.pending.drain(..end);
        self.in_command = true;
        Fed::Piece
    }

    /// The parser finished (or refused) one message: the next one gets a new deadline.
    fn message_done(&mut self) {
        self.completed += 1;
        self.in_command = false;
        self.has_literal = false;
        self.literal_left = 0;
        self.tag = None;
    }

    /// Where the input stands, for the request deadline.
    fn progress(&self) -> Progress {
        let phase = if self.in_command || !self.pending.is_empty() {
            if self.has_literal && self.authenticated {
                Phase::Data
            } else {
                Phase::Command
            }
        } else {
            Phase::Idle
        };
        Progress {
            phase,
            completed: self.completed,
        }
    }

    /// Read more input, within the idle timer and the command deadline. False on EOF.
    async fn read(&mut self) -> Result<bool, ImapError> {
        self.clock.update(Instant::now(), 0, self.progress());
        let idle = Instant::now() + self.idle;
        let request = self.clock.deadline();
        let until = request.map_or(idle, |d| d.min(idle));
        self.pending.reserve(READ_CHUNK);
        let before = self.pending.len();
        let read = self.stream.read_buf(&mut self.pending);
        match tokio::time::timeout_at(until.into(), read).await {
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                if let Some(rec) = self.rec.as_mut() {
                    rec.client(&self.pending[before..]);
                }
                self.clock.update(Instant::now(), n, self.progress());
                Ok(true)
            }
            Ok(Err(e)) => Err(ImapError::Io(e)),
            Err(_) if request.is_some_and(|d| d <= idle) => Err(ImapError::CommandDeadline),
            Err(_) => Err(ImapError::Timeout),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        if let Some(rec) = self.rec.as_mut() {
            rec.server(bytes);
        }
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.idle, write).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ImapError::Timeout),
        }
    }
}

/// A literal announced at the end of a line: `{n}`, `{n+}` (LITERAL+,
/// RFC 7888), or their `~{n}` BINARY forms.
struct Announced {
    size: u64,
    /// Synchronizing: the client waits for `+` before sending the bytes.
    sync: bool,
}

/// The literal a line (without its CRLF) announces, if any. A literal over the
/// limit is refused with `BAD [TOOBIG]` (RFC 9051 §7.1) before any of its bytes
/// is read: imap-next would refuse it too, but with a plain `BAD`. A
/// synchronizing one is not sent then; a non-synchronizing one is on its way,
/// so the connection closes (RFC 7888 §4). LITERAL+ is advertised in every
/// state, so LITERAL-'s 4096-byte bound (RFC 7888 §3) does not apply here.
fn announced(line: &[u8]) -> Option<Announced> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits)
        .ok()?
        .parse()
        .unwrap_or(u64::MAX);
    Some(Announced { size, sync })
}

/// The greeting a fresh parser is built with; never sent (see `logged_in`).
fn placeholder_greeting() -> Greeting<'static> {
    Greeting {
        kind: imap_next::imap_types::response::GreetingKind::Ok,
        code: None,
        text: super::reply::text("ready".to_owned()),
    }
}
