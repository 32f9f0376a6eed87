//! `--transcript` for the protocols the MUA frames itself (POP3): a stream
//! wrapper that hands every byte read and written, above TLS, to a transcript.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use facteur_daemon::transcript::Recording;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The shared transcript (kept by `fetch` across a STLS upgrade).
pub type Shared = Arc<Mutex<Recording>>;

/// `inner`, with what crosses it recorded into `tap` (the MUA is the client:
/// what it reads is the server's).
pub struct Tapped<S> {
    pub inner: S,
    tap: Option<Shared>,
}

impl<S> Tapped<S> {
    pub fn new(inner: S, tap: Option<Shared>) -> Self {
        Self { inner, tap }
    }

    /// The inner stream and the tap, to upgrade the stream (STLS) and wrap it again.
    pub fn into_parts(self) -> (S, Option<Shared>) {
        (self.inner, self.tap)
    }

    fn with(&self, f: impl FnOnce(&mut Recording)) {
        if let Some(tap) = &self.tap
            && let Ok(mut rec) = tap.lock()
        {
            f(&mut rec);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.with(|r| r.server(new));
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            let sent = &buf[..*n];
            this.with(|r| r.client(sent));
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
