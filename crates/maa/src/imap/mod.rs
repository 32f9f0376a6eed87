//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server: one task per client
//! connection, parsing by imap-next, mailboxes through the [`Mda`] trait
//! (gRPC in production, the store in process in tests).
//!
//! Map of the module:
//! - this file: the public API ([`serve`], config, context, error), implicit TLS;
//! - `conn`: the IO driver around imap-next's sans-IO [`imap_next::server::Server`],
//!   which feeds input one line at a time so that a STARTTLS upgrade can prove that
//!   no plaintext is buffered, and refuses literals over the limit before they come;
//! - `session`: the connection state (not authenticated, authenticated, selected),
//!   command dispatch, capabilities, ENABLE, ID;
//! - `auth`: LOGIN, AUTHENTICATE PLAIN, STARTTLS;
//! - `folders`: LIST/LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, STATUS, NAMESPACE;
//! - `names`: mailbox names on the wire (modified UTF-7 or UTF-8) and LIST patterns;
//! - `mailbox`: SELECT/EXAMINE (CONDSTORE, QRESYNC), CLOSE, UNSELECT, EXPUNGE;
//! - `messages`: FETCH and STORE over the MDA, window by window;
//! - `fetch`: FETCH items to data items on one message's bytes (no IO);
//! - `structure/`: the MIME tree of a message: ENVELOPE, BODY/BODYSTRUCTURE,
//!   `BODY[section]` bytes and BINARY decoding (no IO; one file per concern);
//! - `append`: APPEND, COPY, MOVE;
//! - `search`: SEARCH keys to a store query, and the SEARCH/ESEARCH answers;
//! - `notify`: what other sessions changed (EXISTS/FETCH/EXPUNGE/VANISHED), IDLE;
//! - `seqset`: the selected mailbox's uids as runs, sequence sets as ranges;
//! - `date`: INTERNALDATE and SEARCH dates;
//! - `reply`: status responses, and the one place mapping MDA errors to the wire.

mod append;
mod auth;
mod conn;
mod date;
mod ext;
mod extended;
mod fetch;
mod folders;
mod mailbox;
mod messages;
mod names;
mod notify;
mod reply;
mod search;
mod seqset;
mod session;
mod structure;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::conn::{Handshake, handshake};
use facteur_daemon::stream::Stream;
use facteur_protocol::deadline::Deadlines;
use tracing::Instrument;

use crate::mda::Mda;

/// Limits and names of the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// Our name in the greeting (`mail.<domain>`).
    pub hostname: String,
    /// Largest literal a client may send once logged in (default 25 MiB); bigger
    /// ones get `BAD` before any of their bytes is read.
    pub max_literal: u32,
    /// Largest command once logged in, literals included (default `max_literal` + 64 KiB).
    pub max_command: u32,
    /// Largest literal before login (default 8 KiB): an anonymous client cannot
    /// make the server buffer megabytes.
    pub max_literal_pre_auth: u32,
    /// Largest command before login, literals included (default 16 KiB).
    pub max_command_pre_auth: u32,
    /// How long a TLS handshake may take (implicit TLS, STARTTLS; default 10 s).
    pub tls_handshake_timeout: Duration,
    /// Request deadlines: a command must be complete within `command` of its
    /// first byte; after login, one with a literal (APPEND) within `data` plus
    /// credit for its bytes (see `facteur_protocol::deadline`).
    pub deadlines: Deadlines,
    /// Delay before answering a failed authentication (default 1 s).
    pub auth_failure_delay: Duration,
    /// Failed authentications allowed per connection before `* BYE` (default 3).
    pub max_auth_failures: u32,
    /// Autologout: how long a client may stay silent (RFC 9051 §5.4 asks for at
    /// least 30 minutes); also bounds a stalled write.
    pub idle_timeout: Duration,
    /// Invalid commands in a row before `* BYE` (default 20).
    pub max_bad_commands: u32,
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_owned(),
            max_literal: 25 * 1024 * 1024,
            max_command: 25 * 1024 * 1024 + 64 * 1024,
            max_literal_pre_auth: 8 * 1024,
            max_command_pre_auth: 16 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            deadlines: Deadlines::default(),
            auth_failure_delay: Duration::from_secs(1),
            max_auth_failures: 3,
            idle_timeout: Duration::from_secs(30 * 60),
            max_bad_commands: 20,
        }
    }
}

/// What every IMAP connection shares: config, the MDA and TLS.
#[derive(Clone)]
pub struct ImapContext<M> {
    pub config: ImapConfig,
    pub mda: M,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Tripped when the server stops: live sessions say `* BYE` and close.
    pub shutdown: facteur_daemon::Shutdown,
    /// Where each session's transcript goes (off: nowhere).
    pub transcripts: facteur_daemon::transcript::Transcripts,
}

/// Why a connection ended badly. A client leaving (LOGOUT, EOF) is `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// Reading or writing the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed (peer's fault, usually).
    #[error("TLS handshake: {0}")]
    TlsHandshake(std::io::Error),
    /// Implicit TLS was asked for but no certificate is configured (our fault).
    #[error("implicit TLS requested but TLS is not configured")]
    NoTls,
    /// The client pipelined plaintext after STARTTLS (CVE-2011-0411 style injection).
    #[error("input pipelined after STARTTLS; connection closed")]
    PipelinedStartTls,
    /// The client said nothing for [`ImapConfig::idle_timeout`].
    #[error("autologout: client idle for too long")]
    Timeout,
    /// A command was still incomplete at its deadline (slow drip).
    #[error("command not complete by its deadline")]
    CommandDeadline,
    /// The TLS handshake did not finish in [`ImapConfig::tls_handshake_timeout`].
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    /// The server stopped during a TLS handshake (nothing can be said then).
    #[error("server stopping")]
    Stopped,
    /// Too many failed authentications on this connection.
    #[error("too many authentication failures")]
    TooManyAuthFailures,
}

impl ImapError {
    /// Is this the peer's fault (log at debug/info) rather than ours (log at error)?
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, ImapError::NoTls)
    }
}

/// Serve one client connection until LOGOUT, error, or shutdown.
///
/// Cancel-safe: dropping the future (on shutdown) closes the socket; nothing is
/// spawned and no lock is held across an await.
/// `stream` is the accepted connection (`Stream::Plain`, or `Stream::Memory`
/// in tests), not yet encrypted.
pub async fn serve<M: Mda>(
    mut stream: Stream,
    peer: SocketAddr,
    ctx: Arc<ImapContext<M>>,
    implicit_tls: bool,
) -> Result<(), ImapError> {
    let span = tracing::info_span!("imap", peer = %peer);
    async move {
        tracing::debug!(implicit_tls, "connection");
        if implicit_tls {
            let acceptor = ctx.tls.as_ref().ok_or(ImapError::NoTls)?;
            stream = accept_tls(stream, acceptor, &ctx).await?;
        }
        let result = match session::run(stream, peer, ctx).await {
            Err(ImapError::Stopped) => Ok(()),
            r => r,
        };
        match &result {
            Ok(()) => tracing::debug!("connection closed"),
            Err(e) if e.is_peer_fault() => tracing::info!(error = %e, "connection ended"),
            Err(e) => tracing::error!(error = %e, "connection failed"),
        }
        result
    }
    .instrument(span)
    .await
}

/// The server side of a TLS handshake, bounded by the handshake deadline and
/// abandoned at once on shutdown (`facteur_daemon::conn::handshake`).
async fn accept_tls<M>(
    plain: Stream,
    acceptor: &tokio_rustls::TlsAcceptor,
    ctx: &ImapContext<M>,
) -> Result<Stream, ImapError> {
    let limit = ctx.config.tls_handshake_timeout;
    match handshake(plain, acceptor, limit, &ctx.shutdown).await {
        Ok(Handshake::Done(s)) => Ok(s),
        Ok(Handshake::TimedOut) => Err(ImapError::HandshakeTimeout),
        Ok(Handshake::Shutdown) => Err(ImapError::Stopped),
        Err(e) => Err(ImapError::TlsHandshake(e)),
    }
}
