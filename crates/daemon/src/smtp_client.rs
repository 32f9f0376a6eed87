//! The SMTP/LMTP client: connect, EHLO/LHLO, STARTTLS, AUTH PLAIN, one transaction
//! with the message streamed and dot-stuffed. Used by the MTA to relay, by the
//! MUA to submit, and by the MSA to relay to an SMTP next hop step by step
//! ([`SmtpClient::write_data`], [`SmtpClient::end_data`]).
//!
//! Replies are parsed by `facteur-protocol`; this module owns only the socket and
//! the RFC 5321 §4.5.3.2 timeouts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use facteur_protocol::Secret;
use facteur_protocol::line::LineFramer;
use facteur_protocol::smtp::command::Command;
use facteur_protocol::smtp::data::DotStuffer;
use facteur_protocol::smtp::reply::{Reply, ReplyParser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::stream::Stream;

/// Longest reply line we accept from a server (RFC 5321 §4.5.3.1.5 says 512).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum SmtpClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("server closed the connection")]
    Closed,
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("server refused {stage}: {reply}")]
    Refused {
        stage: &'static str,
        reply: String,
        code: u16,
    },
}

impl SmtpClientError {
    /// Worth trying again later (RFC 5321 §4.5.4.1): anything but a 5xx.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SmtpClientError::Refused { code, .. } if *code >= 500)
    }
}

/// Timeouts of the client, RFC 5321 §4.5.3.2 defaults.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data_end: Duration,
    /// The TLS handshake, implicit or after STARTTLS (a server that answers 220
    /// and then stalls must not hold a delivery for ever).
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data_end: Duration::from_secs(600),
            tls_handshake: Duration::from_secs(30),
        }
    }
}

/// One client connection.
pub struct SmtpClient {
    stream: Stream,
    framer: LineFramer,
    extensions: Vec<String>,
    timeouts: Timeouts,
    /// Where the dialogue is recorded, once [`SmtpClient::record`] is called.
    tap: Option<Tap>,
    /// What the server said before a tap was attached (the greeting), bounded.
    early: Option<Vec<u8>>,
}

/// A connection's transcript shared with the code that drives the client, so it
/// survives the client being dropped on an error path.
pub type Tap = std::sync::Arc<std::sync::Mutex<crate::transcript::Recording>>;

/// What of the server's first words is kept for a tap attached after connecting.
const EARLY_MAX: usize = 4096;

impl SmtpClient {
    /// Connect and read the greeting; a non-2xx greeting is an error.
    pub async fn connect(addr: SocketAddr, timeouts: Timeouts) -> Result<Self, SmtpClientError> {
        Self::connect_from(addr, None, timeouts).await
    }

    /// Connect from a chosen local address (an MTA sends from its own IP, so the
    /// next hop's Received header names it), then read the greeting.
    pub async fn connect_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        timeouts: Timeouts,
    ) -> Result<Self, SmtpClientError> {
        let tcp = open(addr, source, timeouts.connect).await?;
        Self::greet(Stream::Plain(tcp), timeouts).await
    }

    /// Connect with implicit TLS (submission on port 465, RFC 8314), then read the greeting.
    pub async fn connect_tls(
        addr: SocketAddr,
        connector: &TlsConnector,
        server_name: &str,
        timeouts: Timeouts,
    ) -> Result<Self, SmtpClientError> {
        Self::connect_tls_from(addr, None, connector, server_name, timeouts).await
    }

    /// [`SmtpClient::connect_tls`] from a chosen local address.
    pub async fn connect_tls_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        connector: &TlsConnector,
        server_name: &str,
        timeouts: Timeouts,
    ) -> Result<Self, SmtpClientError> {
        let tcp = open(addr, source, timeouts.connect).await?;
        let stream = tls_handshake(Stream::Plain(tcp), connector, server_name, &timeouts).await?;
        Self::greet(stream, timeouts).await
    }

    async fn greet(stream: Stream, timeouts: Timeouts) -> Result<Self, SmtpClientError> {
        let mut client = Self {
            stream,
            framer: LineFramer::new(MAX_REPLY_LINE),
            extensions: Vec::new(),
            timeouts,
            tap: None,
            early: Some(Vec::new()),
        };
        let greeting = client.read_reply("greeting").await?;
        expect(greeting, "greeting", 2)?;
        Ok(client)
    }

    /// Is the connection encrypted?
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Record the dialogue from here on into `tap`, starting with the greeting.
    pub fn record(&mut self, tap: Tap) {
        if let Some(early) = self.early.take()
            && let Ok(mut rec) = tap.lock()
        {
            rec.server(&early);
        }
        self.tap = Some(tap);
    }

    fn tap_server(&mut self, bytes: &[u8]) {
        if let Some(tap) = &self.tap {
            if let Ok(mut rec) = tap.lock() {
                rec.server(bytes);
            }
        } else if let Some(early) = self.early.as_mut() {
            let room = EARLY_MAX.saturating_sub(early.len());
            early.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn tap_client(&mut self, bytes: &[u8]) {
        // Past the greeting, a tap attached later would show replies without commands.
        self.early = None;
        if let Some(tap) = &self.tap
            && let Ok(mut rec) = tap.lock()
        {
            rec.client(bytes);
        }
    }

    fn tap_note(&self, text: &str) {
        if let Some(tap) = &self.tap
            && let Ok(mut rec) = tap.lock()
        {
            rec.note(text);
        }
    }

    async fn read_reply(&mut self, stage: &'static str) -> Result<Reply, SmtpClientError> {
        let wait = if stage == "end of data" {
            self.timeouts.data_end
        } else {
            self.timeouts.command
        };
        tokio::time::timeout(wait, self.read_reply_inner())
            .await
            .map_err(|_| SmtpClientError::Timeout(stage))?
    }

    async fn read_reply_inner(&mut self) -> Result<Reply, SmtpClientError> {
        let mut parser = ReplyParser::new(MAX_REPLY_LINES);
        let mut lines = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            while let Some(line) = self.framer.next_line() {
                let line = line.map_err(|e| SmtpClientError::Malformed(e.to_string()))?;
                lines += 1;
                if lines > MAX_REPLY_LINES {
                    return Err(SmtpClientError::Malformed("reply too long".into()));
                }
                if let Some(reply) = parser.feed(&line) {
                    return reply.map_err(|e| SmtpClientError::Malformed(e.to_string()));
                }
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(SmtpClientError::Closed);
            }
            self.tap_server(&buf[..n]);
            self.framer.push(&buf[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SmtpClientError> {
        self.tap_client(bytes);
        tokio::time::timeout(self.timeouts.command, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| SmtpClientError::Timeout("write"))??;
        Ok(())
    }

    /// Send one command and read its reply (whatever the code).
    pub async fn command(&mut self, cmd: &Command) -> Result<Reply, SmtpClientError> {
        self.send(&cmd.to_line()).await?;
        self.read_reply(stage_of(cmd)).await
    }

    /// EHLO (or LHLO for LMTP); remembers the extensions. Falls back to HELO on a
    /// 5xx to EHLO, as RFC 5321 §3.2 allows.
    pub async fn hello(&mut self, name: &str, lmtp: bool) -> Result<Reply, SmtpClientError> {
        let cmd = if lmtp {
            Command::Lhlo(name.to_owned())
        } else {
            Command::Ehlo(name.to_owned())
        };
        let mut reply = self.command(&cmd).await?;
        if !lmtp && reply.is_permanent() {
            reply = self.command(&Command::Helo(name.to_owned())).await?;
        }
        let reply = expect(reply, "EHLO", 2)?;
        self.extensions = reply
            .lines()
            .iter()
            .skip(1)
            .map(|l| l.as_str().to_ascii_uppercase())
            .collect();
        Ok(reply)
    }

    /// Did the server announce this extension (keyword, e.g. `STARTTLS`)?
    pub fn supports(&self, keyword: &str) -> bool {
        self.extension(keyword).is_some()
    }

    /// The announced extension line, e.g. `SIZE 10240000`.
    pub fn extension(&self, keyword: &str) -> Option<&str> {
        let keyword = keyword.to_ascii_uppercase();
        self.extensions
            .iter()
            .find(|l| l.split_whitespace().next() == Some(keyword.as_str()))
            .map(String::as_str)
    }

    /// STARTTLS then the TLS handshake; the caller says EHLO again (RFC 3207 §4.2).
    pub async fn starttls(
        &mut self,
        connector: &TlsConnector,
        server_name: &str,
    ) -> Result<(), SmtpClientError> {
        let reply = self.command(&Command::StartTls).await?;
        expect(reply, "STARTTLS", 2)?;
        if self.framer.buffered() > 0 {
            // The server spoke past its 220 in the clear: refuse to trust any of it.
            return Err(SmtpClientError::Malformed(
                "data after the STARTTLS reply".into(),
            ));
        }
        let plain = std::mem::take(&mut self.stream);
        self.stream = tls_handshake(plain, connector, server_name, &self.timeouts).await?;
        self.tap_note(&format!("TLS started (server name {server_name})"));
        self.extensions.clear();
        Ok(())
    }

    /// AUTH PLAIN with an initial response (RFC 4616, RFC 4954).
    pub async fn auth_plain(
        &mut self,
        user: &str,
        password: &Secret<String>,
    ) -> Result<Reply, SmtpClientError> {
        let token = facteur_protocol::sasl::encode_plain(None, user, password.expose());
        let reply = self
            .command(&Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(token),
            })
            .await?;
        expect(reply, "AUTH", 2)
    }

    /// MAIL, RCPT for each recipient, DATA with the streamed message.
    ///
    /// Returns one reply per recipient (the RCPT reply when refused there, else the
    /// final reply; for LMTP the per-recipient reply after the data).
    pub async fn transaction<R: AsyncRead + Unpin>(
        &mut self,
        mail: &Command,
        rcpts: &[Command],
        mut message: R,
        lmtp: bool,
    ) -> Result<Vec<Reply>, SmtpClientError> {
        let reply = self.command(mail).await?;
        let _ = expect(reply, "MAIL", 2)?;
        let mut results: Vec<Option<Reply>> = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            let reply = self.command(rcpt).await?;
            results.push(if reply.is_positive() {
                None
            } else {
                Some(reply)
            });
        }
        let accepted = results.iter().filter(|r| r.is_none()).count();
        if accepted == 0 {
            let _ = self.command(&Command::Rset).await;
            return Ok(results.into_iter().flatten().collect());
        }
        let reply = self.command(&Command::Data).await?;
        expect(reply, "DATA", 3)?;
        let mut stuffer = DotStuffer::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = message.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            self.write_data(&mut stuffer, &buf[..n]).await?;
        }
        let mut finals = Vec::with_capacity(if lmtp { accepted } else { 1 });
        finals.push(self.end_data(stuffer).await?);
        for _ in 1..(if lmtp { accepted } else { 1 }) {
            finals.push(self.read_reply("end of data").await?);
        }
        let mut finals = finals.into_iter();
        let mut last = None;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Some(refused) => refused,
                None => {
                    let next = finals.next().or_else(|| last.clone());
                    last.clone_from(&next);
                    next.unwrap_or_else(|| Reply::new(451, "4.3.0", "no reply"))
                }
            })
            .collect())
    }

    /// After a 354 to DATA: send the next piece of the message, dot-stuffed.
    pub async fn write_data(
        &mut self,
        stuffer: &mut DotStuffer,
        chunk: &[u8],
    ) -> Result<(), SmtpClientError> {
        let out = stuffer.encode(chunk);
        self.send(&out).await
    }

    /// End the message (CRLF.CRLF) and read the reply to it (SMTP: the only one;
    /// LMTP: the first recipient's).
    pub async fn end_data(&mut self, mut stuffer: DotStuffer) -> Result<Reply, SmtpClientError> {
        let tail = stuffer.finish();
        self.send(&tail).await?;
        self.read_reply("end of data").await
    }

    /// QUIT politely; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command(&Command::Quit)).await;
        let _ = self.stream.shutdown().await;
    }
}

async fn open(
    addr: SocketAddr,
    source: Option<IpAddr>,
    wait: Duration,
) -> Result<TcpStream, SmtpClientError> {
    let connect = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    };
    let tcp = tokio::time::timeout(wait, connect)
        .await
        .map_err(|_| SmtpClientError::Timeout("connect"))??;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The client side of a TLS handshake, bounded by `timeouts.tls_handshake`.
async fn tls_handshake(
    plain: Stream,
    connector: &TlsConnector,
    server_name: &str,
    timeouts: &Timeouts,
) -> Result<Stream, SmtpClientError> {
    let handshake = plain.connect_tls(connector, server_name);
    Ok(tokio::time::timeout(timeouts.tls_handshake, handshake)
        .await
        .map_err(|_| SmtpClientError::Timeout("TLS handshake"))??)
}

fn stage_of(cmd: &Command) -> &'static str {
    match cmd {
        Command::Ehlo(_) | Command::Helo(_) | Command::Lhlo(_) => "EHLO",
        Command::Mail { .. } => "MAIL",
        Command::Rcpt { .. } => "RCPT",
        Command::Data => "DATA",
        Command::StartTls => "STARTTLS",
        Command::Auth { .. } => "AUTH",
        _ => "reply",
    }
}

fn expect(reply: Reply, stage: &'static str, class: u16) -> Result<Reply, SmtpClientError> {
    if reply.code() / 100 == class {
        Ok(reply)
    } else {
        Err(SmtpClientError::Refused {
            stage,
            code: reply.code(),
            reply: format!("{} {}", reply.code(), reply.text()),
        })
    }
}
