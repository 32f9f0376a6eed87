//! A TCP connection that may be plaintext or TLS (server or client side), and the
//! STARTTLS upgrade from one to the other.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::DuplexStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// One peer connection. `Closed` only exists for the instant of an upgrade.
#[derive(Debug, Default)]
pub enum Stream {
    Plain(TcpStream),
    Server(Box<server::TlsStream<TcpStream>>),
    Client(Box<client::TlsStream<TcpStream>>),
    /// An in-memory pipe (`tokio::io::duplex`), for session tests.
    Memory(DuplexStream),
    /// The server side of TLS over [`Stream::Memory`] (STARTTLS in tests).
    MemoryTls(Box<server::TlsStream<DuplexStream>>),
    #[default]
    Closed,
}

impl Stream {
    /// The local address of the TCP connection underneath, if there is one
    /// (none for the in-memory test pipes).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Stream::Plain(t) => t.local_addr().ok(),
            Stream::Server(t) => t.get_ref().0.local_addr().ok(),
            Stream::Client(t) => t.get_ref().0.local_addr().ok(),
            _ => None,
        }
    }
    /// Is this connection encrypted?
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            Stream::Server(_) | Stream::Client(_) | Stream::MemoryTls(_)
        )
    }

    /// Server side: TLS handshake on a plaintext connection (implicit TLS, or STARTTLS
    /// once the caller has checked that no plaintext input is pending).
    pub async fn accept_tls(self, acceptor: &TlsAcceptor) -> io::Result<Stream> {
        match self {
            Stream::Plain(tcp) => Ok(Stream::Server(Box::new(acceptor.accept(tcp).await?))),
            Stream::Memory(pipe) => Ok(Stream::MemoryTls(Box::new(acceptor.accept(pipe).await?))),
            _ => Err(io::Error::other("TLS is already active")),
        }
    }

    /// Client side: TLS handshake to `name` on a plaintext connection.
    pub async fn connect_tls(self, connector: &TlsConnector, name: &str) -> io::Result<Stream> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        match self {
            Stream::Plain(tcp) => Ok(Stream::Client(Box::new(
                connector.connect(name, tcp).await?,
            ))),
            _ => Err(io::Error::other("TLS is already active")),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Memory(s) => Pin::new(s).poll_read(cx, buf),
            Stream::MemoryTls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Memory(s) => Pin::new(s).poll_write(cx, buf),
            Stream::MemoryTls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s).poll_flush(cx),
            Stream::Memory(s) => Pin::new(s).poll_flush(cx),
            Stream::MemoryTls(s) => Pin::new(s).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Memory(s) => Pin::new(s).poll_shutdown(cx),
            Stream::MemoryTls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
