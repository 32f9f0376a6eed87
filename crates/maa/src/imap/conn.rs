//! The IO driver around imap-next's sans-IO server: reads the socket with the
//! autologout timeout, feeds the parser one line at a time, writes responses as
//! soon as they are encoded, and upgrades to TLS only when nothing is buffered.
//!
//! Feeding at most one LF-terminated piece at a time keeps an invariant: when the
//! parser reports a complete command, it holds no byte after it (a command always
//! ends with the only LF of the last piece fed). So bytes a client pipelined after
//! STARTTLS are all in `pending`, where the upgrade can see and refuse them.

use std::collections::VecDeque;
use std::time::Duration;

use facteur_daemon::stream::Stream;
use imap_next::imap_types::response::{Data, Status};
use imap_next::server::{Error as ServerError, Event, Server};
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use super::ImapError;

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
}

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
}

impl Connection {
    pub(super) fn new(stream: Stream, server: Server, idle: Duration) -> Self {
        Self {
            stream,
            server,
            pending: Vec::new(),
            stashed: VecDeque::new(),
            idle,
        }
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
                Ok(event) => return Ok(Input::Event(event)),
                Err(Interrupt::Io(Io::Output(bytes))) => self.write(&bytes).await?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    if !self.feed() && !self.read().await? {
                        return Ok(Input::Closed);
                    }
                }
                Err(Interrupt::Error(e)) => return Ok(Input::Invalid(e)),
            }
        }
    }

    /// Write every queued response without reading anything.
    pub(super) async fn flush(&mut self) -> Result<(), ImapError> {
        loop {
            match self.server.next() {
                Ok(Event::GreetingSent { .. } | Event::ResponseSent { .. }) => {}
                Ok(event) => self.stashed.push_back(event),
                Err(Interrupt::Io(Io::Output(bytes))) => self.write(&bytes).await?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => return Ok(()),
                Err(Interrupt::Error(e)) => {
                    // Cannot happen without new input; keep the parser's word for it.
                    tracing::debug!(error = %e, "parser error while flushing");
                    return Ok(());
                }
            }
        }
    }

    /// Upgrade to TLS after the STARTTLS OK was written. Refuses (and the caller
    /// closes) if the client sent anything after the STARTTLS command.
    pub(super) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> Result<(), ImapError> {
        self.flush().await?;
        if !self.pending.is_empty() || !self.stashed.is_empty() {
            return Err(ImapError::PipelinedStartTls);
        }
        let plain = std::mem::take(&mut self.stream);
        self.stream = match tokio::time::timeout(self.idle, plain.accept_tls(acceptor)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ImapError::TlsHandshake(e)),
            Err(_) => return Err(ImapError::Timeout),
        };
        tracing::debug!("TLS started");
        Ok(())
    }

    /// Close the write side politely (best effort).
    pub(super) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Give the parser the next piece of pending input (up to and including the
    /// first LF, or everything if there is no LF). False if nothing was pending.
    fn feed(&mut self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let end = match self.pending.iter().position(|&b| b == b'\n') {
            Some(lf) => lf + 1,
            None => self.pending.len(),
        };
        self.server.enqueue_input(&self.pending[..end]);
        self.pending.drain(..end);
        true
    }

    /// Read more input. False on EOF.
    async fn read(&mut self) -> Result<bool, ImapError> {
        self.pending.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.pending);
        match tokio::time::timeout(self.idle, read).await {
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(ImapError::Io(e)),
            Err(_) => Err(ImapError::Timeout),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
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
