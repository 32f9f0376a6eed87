//! The one connection loop every line protocol shares (SMTP, LMTP, POP3): read with
//! a timeout, feed the session, write what it says, upgrade to TLS when it asks,
//! and say goodbye in the protocol's own words on timeout or shutdown.
//!
//! Three clocks bound a connection: the idle timer (per read), the request
//! deadline (a command line or a message body must be complete in time however
//! slowly it trickles in, `facteur_protocol::deadline`), and the TLS handshake
//! deadline ([`handshake`], which also gives up at once on shutdown so a client
//! stalling a handshake never holds up the drain).
//!
//! The protocol logic lives in a [`Session`] (sans-IO at heart); this loop is the
//! only place that touches the socket.

use std::future::Future;
use std::time::{Duration, Instant};

use facteur_protocol::deadline::{Deadlines, Progress, RequestClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::Shutdown;
use crate::stream::Stream;
use crate::transcript::{Proto, Recording, Transcripts};

/// What the session wants after a batch of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Continue,
    /// Write the pending output, then upgrade to TLS (STARTTLS, STLS).
    StartTls,
    /// Write the pending output, then close.
    Close,
}

/// A protocol session driven by [`run`].
pub trait Session: Send {
    /// Take bytes from the peer and act on every complete command in them.
    fn input(&mut self, bytes: &[u8]) -> impl Future<Output = Step> + Send;
    /// Bytes to send to the peer (greeting, replies).
    fn take_output(&mut self) -> Vec<u8>;
    /// Where the input stands (between requests, in a command, in a body) and how
    /// many requests are complete: drives the request deadline.
    fn progress(&self) -> Progress;
    /// Input received but not yet consumed. Must be 0 for a TLS upgrade: bytes a
    /// client pipelined after STARTTLS were sent in the clear and are refused
    /// (CVE-2011-0411, command injection).
    fn buffered_input(&self) -> usize;
    /// The TLS handshake succeeded; reset to the protocol's post-TLS state.
    fn tls_started(&mut self);
    /// The goodbye written when the peer stays silent too long.
    fn timeout_reply(&self) -> Vec<u8>;
    /// The goodbye written when the server shuts down.
    fn shutdown_reply(&self) -> Vec<u8>;
    /// The session stopped early with complete commands still buffered (it bounds
    /// its output, e.g. one large POP3 RETR at a time): after the output is
    /// written the loop calls `input(&[])` again, without waiting for the peer.
    fn has_more(&self) -> bool {
        false
    }
    /// Decisions the session wants in the connection's transcript, beside the
    /// dialogue: what the masked lines hide (the user a refused AUTH named).
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Called once when the connection ends, however it ends (release locks, ...).
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Why a connection ended badly (the normal ends return `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("STARTTLS requested but TLS is not configured")]
    NoTls,
    #[error("input pipelined after STARTTLS; closing (CVE-2011-0411)")]
    PipelinedStartTls,
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
}

/// Options of one connection.
#[derive(Clone)]
pub struct ConnOptions {
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub deadlines: Deadlines,
    pub tls: Option<TlsAcceptor>,
    pub read_buffer: usize,
    /// Where each connection's transcript goes, if anywhere.
    pub transcript: Option<Tap>,
}

/// A listener's transcript tap: the sink, the protocol, and what the record calls
/// the connection (`submission`, `smtp`, `lmtp`, `pop3`).
#[derive(Clone, Debug)]
pub struct Tap {
    pub transcripts: Transcripts,
    pub proto: Proto,
    pub kind: &'static str,
}

impl ConnOptions {
    /// The options a listener's limits give, with its TLS and read size.
    pub fn new(
        limits: &crate::listener::ConnLimits,
        tls: Option<TlsAcceptor>,
        read_buffer: usize,
    ) -> Self {
        Self {
            idle_timeout: limits.idle_timeout(),
            tls_handshake_timeout: limits.tls_handshake_timeout(),
            deadlines: limits.deadlines(),
            tls,
            read_buffer,
            transcript: None,
        }
    }

    /// Record every connection (as `transcripts` samples them) as `kind`.
    pub fn with_transcript(
        mut self,
        transcripts: &Transcripts,
        proto: Proto,
        kind: &'static str,
    ) -> Self {
        self.transcript = transcripts.enabled().then(|| Tap {
            transcripts: transcripts.clone(),
            proto,
            kind,
        });
        self
    }
}

/// How a bounded server-side TLS handshake ended.
#[derive(Debug)]
pub enum Handshake {
    Done(Stream),
    /// The peer did not finish within the limit.
    TimedOut,
    /// The server is stopping: the handshake was abandoned.
    Shutdown,
}

/// Server-side TLS handshake on a plaintext stream (implicit TLS, or after
/// STARTTLS/STLS), bounded by `limit` and abandoned at once on shutdown: a
/// client that connects and then sends nothing can hold a task for `limit` at
/// most, and never holds up a stopping server.
pub async fn handshake(
    plain: Stream,
    acceptor: &TlsAcceptor,
    limit: Duration,
    shutdown: &Shutdown,
) -> std::io::Result<Handshake> {
    tokio::select! {
        _ = shutdown.cancelled() => Ok(Handshake::Shutdown),
        r = tokio::time::timeout(limit, plain.accept_tls(acceptor)) => match r {
            Ok(Ok(s)) => Ok(Handshake::Done(s)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(Handshake::TimedOut),
        },
    }
}

/// How long a goodbye (timeout, shutdown) may take to write: a peer that does not
/// read must not hold up a stopping server.
const GOODBYE: std::time::Duration = std::time::Duration::from_secs(5);

/// Drive `session` on `stream` until it closes, the peer leaves, or shutdown.
pub async fn run<S: Session>(
    stream: Stream,
    session: S,
    opts: &ConnOptions,
    shutdown: &Shutdown,
) -> Result<(), ConnError> {
    run_recorded(stream, session, opts, shutdown, None).await
}

/// [`run`], keeping the connection's transcript in `rec` (stored when it ends).
pub async fn run_recorded<S: Session>(
    mut stream: Stream,
    mut session: S,
    opts: &ConnOptions,
    shutdown: &Shutdown,
    mut rec: Option<Recording>,
) -> Result<(), ConnError> {
    let result = drive(&mut stream, &mut session, opts, shutdown, &mut rec).await;
    session.finish().await;
    let _ = stream.shutdown().await;
    if let Some(rec) = rec {
        rec.finish();
    }
    result
}

async fn drive<S: Session>(
    stream: &mut Stream,
    session: &mut S,
    opts: &ConnOptions,
    shutdown: &Shutdown,
    rec: &mut Option<Recording>,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; opts.read_buffer.max(512)];
    let mut clock = RequestClock::new(opts.deadlines);
    write_out(stream, opts.idle_timeout, session.take_output(), rec).await?;
    loop {
        // The read waits for the idle timer or the request deadline, the sooner.
        let idle = Instant::now() + opts.idle_timeout;
        let request = clock.deadline();
        let until = request.map_or(idle, |d| d.min(idle));
        let read = tokio::time::timeout_at(until.into(), stream.read(&mut buf));
        let n = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = write_out(stream, GOODBYE, session.shutdown_reply(), rec).await;
                return Ok(());
            }
            r = read => match r {
                Err(_) => {
                    if request.is_some_and(|d| d <= idle) {
                        tracing::info!(phase = ?session.progress().phase, "request deadline passed");
                    } else {
                        tracing::debug!("idle timeout");
                    }
                    let _ = write_out(stream, GOODBYE, session.timeout_reply(), rec).await;
                    return Ok(());
                }
                Ok(r) => r?,
            },
        };
        if n == 0 {
            return Ok(());
        }
        if let Some(rec) = rec.as_mut() {
            rec.client(&buf[..n]);
        }
        let mut step = session.input(&buf[..n]).await;
        clock.update(Instant::now(), n, session.progress());
        loop {
            for note in session.take_notes() {
                if let Some(rec) = rec.as_mut() {
                    rec.note(&note);
                }
            }
            write_out(stream, opts.idle_timeout, session.take_output(), rec).await?;
            match step {
                Step::Continue => {}
                Step::Close => return Ok(()),
                Step::StartTls => {
                    if session.buffered_input() > 0 {
                        return Err(ConnError::PipelinedStartTls);
                    }
                    let acceptor = opts.tls.as_ref().ok_or(ConnError::NoTls)?;
                    let plain = std::mem::take(stream);
                    match handshake(plain, acceptor, opts.tls_handshake_timeout, shutdown).await? {
                        Handshake::Done(tls) => *stream = tls,
                        Handshake::TimedOut => return Err(ConnError::HandshakeTimeout),
                        // Nothing can be said: the client expects TLS bytes now.
                        Handshake::Shutdown => return Ok(()),
                    }
                    tracing::debug!("TLS started");
                    if let Some(rec) = rec.as_mut() {
                        rec.note("TLS started");
                    }
                    session.tls_started();
                    clock = RequestClock::new(opts.deadlines);
                    clock.update(Instant::now(), 0, session.progress());
                    write_out(stream, opts.idle_timeout, session.take_output(), rec).await?;
                }
            }
            if !session.has_more() {
                break;
            }
            step = session.input(&[]).await;
            clock.update(Instant::now(), 0, session.progress());
        }
    }
}

/// Write and flush; a peer that stops reading for `limit` is dropped.
async fn write_out(
    stream: &mut Stream,
    limit: std::time::Duration,
    bytes: Vec<u8>,
    rec: &mut Option<Recording>,
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if let Some(rec) = rec.as_mut() {
        rec.server(&bytes);
    }
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stopped reading"))?
}

/// What a line-protocol listener is: its name in logs, its limits, the refusal a
/// peer over a limit reads, and whether TLS comes first (ports 465, 995).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub protocol: &'static str,
    pub limits: crate::listener::ConnLimits,
    pub busy: &'static [u8],
    pub implicit_tls: bool,
}

/// Accept connections on `listener` and drive one session per connection until
/// shutdown: the one wiring every line-protocol listener uses (SMTP, submission,
/// LMTP, POP3). `make(peer, tls)` builds the session for a new connection.
pub async fn serve_sessions<S, F>(
    listener: tokio::net::TcpListener,
    endpoint: Endpoint,
    opts: ConnOptions,
    shutdown: Shutdown,
    make: F,
) where
    S: Session + 'static,
    F: Fn(std::net::SocketAddr, bool) -> S + Send + Sync + 'static,
{
    let opts = std::sync::Arc::new(opts);
    let make = std::sync::Arc::new(make);
    let local = listener
        .local_addr()
        .map_or_else(|_| String::new(), |a| a.to_string());
    let sd = shutdown.clone();
    let implicit_tls = endpoint.implicit_tls;
    crate::listener::serve(
        listener,
        endpoint.protocol,
        endpoint.limits,
        endpoint.busy,
        shutdown,
        move |tcp, peer| {
            let (opts, make, sd, local) = (
                std::sync::Arc::clone(&opts),
                std::sync::Arc::clone(&make),
                sd.clone(),
                local.clone(),
            );
            async move {
                let stream = match (implicit_tls, &opts.tls) {
                    (true, Some(acceptor)) => {
                        let limit = opts.tls_handshake_timeout;
                        match handshake(Stream::Plain(tcp), acceptor, limit, &sd).await {
                            Ok(Handshake::Done(s)) => s,
                            Ok(Handshake::TimedOut) => {
                                tracing::info!("TLS handshake timed out");
                                return;
                            }
                            Ok(Handshake::Shutdown) => return,
                            Err(e) => {
                                tracing::info!(error = %e, "TLS handshake failed");
                                return;
                            }
                        }
                    }
                    (true, None) => {
                        tracing::error!("implicit TLS listener without a certificate");
                        return;
                    }
                    (false, _) => Stream::Plain(tcp),
                };
                let session = make(peer, stream.is_tls());
                let mut rec = opts
                    .transcript
                    .as_ref()
                    .and_then(|t| t.transcripts.start(t.proto, t.kind, peer, &local));
                if let (Some(rec), true) = (rec.as_mut(), implicit_tls) {
                    rec.note("TLS (implicit)");
                }
                if let Err(e) = run_recorded(stream, session, &opts, &sd, rec).await {
                    tracing::info!(error = %e, "connection ended");
                }
            }
        },
    )
    .await;
}
