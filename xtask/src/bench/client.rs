//! The bench's own protocol clients, the same bytes for both sides: an IMAP
//! client over implicit TLS (tagged commands, literals skipped, untagged lines
//! kept) and an SMTP/LMTP client (plain, STARTTLS, AUTH PLAIN, pipelined
//! MAIL/RCPT/DATA), plus the test message they send.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest wait for any one reply: a server that stops answering fails the
/// workload instead of hanging the bench.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Open a TCP connection, from `source` if given (spreads many sessions over
/// several loopback source addresses).
pub(crate) async fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn tls(
    tls: &TlsConnector,
    addr: SocketAddr,
    stream: TcpStream,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(Duration::from_secs(30), tls.connect(name, stream))
        .await
        .with_context(|| format!("TLS handshake with {addr}: timed out"))?
        .with_context(|| format!("TLS handshake with {addr}"))
}

/// A plain or TLS stream (SMTP starts plain and may switch after STARTTLS).
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn read_line(s: &mut BufStream<Stream>, line: &mut Vec<u8>) -> anyhow::Result<()> {
    line.clear();
    let n = tokio::time::timeout(REPLY_TIMEOUT, s.read_until(b'\n', line))
        .await
        .context("no reply in time")??;
    if n == 0 {
        bail!("connection closed by the server");
    }
    Ok(())
}

/// The answer to one IMAP command.
#[derive(Debug, Default)]
pub(crate) struct ImapReply {
    /// Untagged lines, literals replaced by `{n}`.
    pub(crate) untagged: Vec<String>,
    /// The tagged status line.
    pub(crate) status: String,
    /// Bytes received, literals included.
    pub(crate) bytes: usize,
}

impl ImapReply {
    /// The number after `key` in an untagged line (e.g. `UIDNEXT`, `MESSAGES`, `EXISTS`).
    pub(crate) fn number(&self, key: &str) -> Option<u64> {
        self.untagged.iter().find_map(|l| number_in(l, key))
    }
}

fn number_in(line: &str, key: &str) -> Option<u64> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || "()[]".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    // "* 12 EXISTS" has the number before the key, "MESSAGES 12" / "UIDNEXT 13" after.
    let i = words.iter().position(|w| w.eq_ignore_ascii_case(key))?;
    if key.eq_ignore_ascii_case("EXISTS") {
        words.get(i.checked_sub(1)?)?.parse().ok()
    } else {
        words.get(i + 1)?.parse().ok()
    }
}

/// An IMAP session over implicit TLS.
pub(crate) struct Imap {
    s: BufStream<Stream>,
    tag: u64,
}

impl Imap {
    pub(crate) async fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        connector: &TlsConnector,
    ) -> anyhow::Result<Self> {
        let stream = tls(connector, addr, tcp(addr, source).await?).await?;
        let mut s = BufStream::new(Stream::Tls(Box::new(stream)));
        let mut line = Vec::new();
        read_line(&mut s, &mut line).await?;
        if !line.starts_with(b"* OK") {
            bail!(
                "IMAP greeting: {}",
                String::from_utf8_lossy(&line).trim_end()
            );
        }
        Ok(Self { s, tag: 0 })
    }

    /// Connect and LOGIN.
    pub(crate) async fn login(
        addr: SocketAddr,
        source: Option<IpAddr>,
        connector: &TlsConnector,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let mut imap = Self::connect(addr, source, connector).await?;
        imap.ok(&format!("LOGIN \"{user}\" \"{password}\""))
            .await
            .with_context(|| format!("LOGIN {user}"))?;
        Ok(imap)
    }

    /// Send one command and read through its tagged answer.
    pub(crate) async fn command(&mut self, text: &str) -> anyhow::Result<ImapReply> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.s
            .write_all(format!("{tag} {text}\r\n").as_bytes())
            .await?;
        self.s.flush().await?;
        let mut reply = ImapReply::default();
        let mut line = Vec::new();
        let mut text_line = String::new();
        loop {
            read_line(&mut self.s, &mut line).await?;
            reply.bytes += line.len();
            // A literal `{n}\r\n` at the end: skip its n bytes, then the line goes on.
            if let Some(n) = literal_len(&line) {
                text_line.push_str(&String::from_utf8_lossy(&line[..line.len() - 2]));
                let mut left = n;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = left.min(buf.len());
                    tokio::time::timeout(REPLY_TIMEOUT, self.s.read_exact(&mut buf[..want]))
                        .await
                        .context("literal not sent in time")??;
                    left -= want;
                }
                reply.bytes += n;
                continue;
            }
            text_line.push_str(String::from_utf8_lossy(&line).trim_end());
            let done = std::mem::take(&mut text_line);
            if done.starts_with(&tag) && done.as_bytes().get(tag.len()) == Some(&b' ') {
                reply.status = done;
                return Ok(reply);
            }
            reply.untagged.push(done);
        }
    }

    /// A command that must answer OK.
    pub(crate) async fn ok(&mut self, text: &str) -> anyhow::Result<ImapReply> {
        let reply = self.command(text).await?;
        let word = reply.status.split_whitespace().nth(1).unwrap_or_default();
        if !word.eq_ignore_ascii_case("OK") {
            let shown: String = text.chars().take(60).collect();
            bail!("{shown}: {}", reply.status);
        }
        Ok(reply)
    }

    /// `STATUS INBOX (MESSAGES)`.
    pub(crate) async fn messages(&mut self) -> anyhow::Result<u64> {
        let reply = self.ok("STATUS INBOX (MESSAGES)").await?;
        reply
            .number("MESSAGES")
            .with_context(|| format!("no MESSAGES in STATUS: {:?}", reply.untagged))
    }

    pub(crate) async fn logout(mut self) -> anyhow::Result<()> {
        self.command("LOGOUT").await?;
        Ok(())
    }

    /// The server's capabilities (`CAPABILITY`), upper-cased.
    pub(crate) async fn capabilities(&mut self) -> anyhow::Result<Vec<String>> {
        let reply = self.ok("CAPABILITY").await?;
        let line = reply
            .untagged
            .iter()
            .find(|l| l.to_ascii_uppercase().starts_with("* CAPABILITY "))
            .with_context(|| format!("no CAPABILITY line: {:?}", reply.untagged))?;
        Ok(line
            .split_whitespace()
            .skip(2)
            .map(str::to_ascii_uppercase)
            .collect())
    }

    /// Start IDLE (RFC 2177): send the command and wait for the server's
    /// continuation. `Ok(Err(status))` when the server refused it with a tagged
    /// answer instead (the tagged line).
    pub(crate) async fn idle(&mut self) -> anyhow::Result<Result<(), String>> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.s
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        self.s.flush().await?;
        let mut line = Vec::new();
        loop {
            read_line(&mut self.s, &mut line).await?;
            if line.starts_with(b"+") {
                return Ok(Ok(()));
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if text.starts_with(&tag) && text.as_bytes().get(tag.len()) == Some(&b' ') {
                return Ok(Err(text));
            }
        }
    }

    /// The next line the server sends (under IDLE: untagged updates), without
    /// its CRLF; an error after `timeout`.
    pub(crate) async fn next_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let mut line = Vec::new();
        tokio::time::timeout(timeout, read_line(&mut self.s, &mut line))
            .await
            .with_context(|| format!("nothing from the server in {timeout:?}"))??;
        Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
    }

    /// End IDLE with `DONE` and read through the IDLE command's tagged OK.
    pub(crate) async fn done(&mut self) -> anyhow::Result<()> {
        let tag = format!("b{}", self.tag);
        self.s.write_all(b"DONE\r\n").await?;
        self.s.flush().await?;
        loop {
            let line = self.next_line(REPLY_TIMEOUT).await?;
            if line.starts_with(&tag) && line.as_bytes().get(tag.len()) == Some(&b' ') {
                let word = line.split_whitespace().nth(1).unwrap_or_default();
                if !word.eq_ignore_ascii_case("OK") {
                    bail!("IDLE ended with {line}");
                }
                return Ok(());
            }
        }
    }
}

/// The number of an untagged `* n EXISTS` line.
pub(crate) fn exists(line: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    if words.next() != Some("*") {
        return None;
    }
    let n = words.next()?.parse().ok()?;
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("EXISTS"))
        .then_some(n)
}

/// The numbers of the untagged `* SEARCH` lines of a reply.
pub(crate) fn search_hits(reply: &ImapReply) -> Vec<u64> {
    reply
        .untagged
        .iter()
        .filter(|l| {
            l.get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case("* SEARCH "))
                || l.eq_ignore_ascii_case("* SEARCH")
        })
        .flat_map(|l| l.split_whitespace().skip(2).filter_map(|w| w.parse().ok()))
        .collect()
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// An SMTP or LMTP session.
pub(crate) struct Smtp {
    s: BufStream<Stream>,
}

impl Smtp {
    /// Connect, read the greeting, say EHLO (LHLO for LMTP).
    pub(crate) async fn connect(addr: SocketAddr, lmtp: bool) -> anyhow::Result<Self> {
        let mut smtp = Self {
            s: BufStream::new(Stream::Plain(tcp(addr, None).await?)),
        };
        smtp.expect(220).await.context("greeting")?;
        smtp.hello(lmtp).await?;
        Ok(smtp)
    }

    async fn hello(&mut self, lmtp: bool) -> anyhow::Result<()> {
        let verb = if lmtp { "LHLO" } else { "EHLO" };
        self.send(&format!("{verb} bench.client\r\n")).await?;
        self.expect(250).await.context(verb)?;
        Ok(())
    }

    /// Submission: connect, STARTTLS, EHLO again, AUTH PLAIN.
    pub(crate) async fn submission(
        addr: SocketAddr,
        connector: &TlsConnector,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let mut smtp = Self::connect(addr, false).await?;
        smtp.send("STARTTLS\r\n").await?;
        smtp.expect(220).await.context("STARTTLS")?;
        let Stream::Plain(tcp) = smtp.s.into_inner() else {
            bail!("STARTTLS twice");
        };
        let mut smtp = Self {
            s: BufStream::new(Stream::Tls(Box::new(tls(connector, addr, tcp).await?))),
        };
        smtp.hello(false).await?;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        smtp.send(&format!("AUTH PLAIN {token}\r\n")).await?;
        smtp.expect(235).await.context("AUTH PLAIN")?;
        Ok(smtp)
    }

    async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.s.write_all(text.as_bytes()).await?;
        self.s.flush().await?;
        Ok(())
    }

    /// Read one (multi-line) reply; its code.
    async fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        let mut line = Vec::new();
        let mut text = String::new();
        loop {
            read_line(&mut self.s, &mut line).await?;
            let l = String::from_utf8_lossy(&line);
            text.push_str(&l);
            let code: u16 = l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text.trim_end().to_owned()));
            }
        }
    }

    async fn expect(&mut self, code: u16) -> anyhow::Result<()> {
        let (got, text) = self.reply().await?;
        if got != code {
            bail!("expected {code}, got {text}");
        }
        Ok(())
    }

    /// Send one message (MAIL, RCPT, DATA pipelined; RFC 2920) to one recipient
    /// and wait for the final 250 (for LMTP: the one per-recipient reply).
    pub(crate) async fn send_message(
        &mut self,
        from: &str,
        to: &str,
        data: &[u8],
    ) -> anyhow::Result<()> {
        self.send(&format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n"))
            .await?;
        self.expect(250).await.context("MAIL FROM")?;
        self.expect(250).await.context("RCPT TO")?;
        self.expect(354).await.context("DATA")?;
        self.s.write_all(data).await?;
        self.s.write_all(b".\r\n").await?;
        self.s.flush().await?;
        self.expect(250).await.context("end of DATA")?;
        Ok(())
    }

    pub(crate) async fn quit(mut self) -> anyhow::Result<()> {
        self.send("QUIT\r\n").await?;
        let _ = self.reply().await;
        Ok(())
    }
}

/// The word one message in a hundred has in its subject (number `n` with
/// `n % 100 == 7`), for SEARCH SUBJECT: no other subject holds it, even in part.
pub(crate) const RARE_WORD: &str = "lighthouse";

/// Does test message `n` have [`RARE_WORD`] in its subject?
pub(crate) fn has_rare_word(n: u64) -> bool {
    n % 100 == 7
}

/// A test message of about `size` bytes (CRLF lines, no line starting with a
/// dot, so it needs no dot-stuffing).
pub(crate) fn message(to: &str, n: u64, size: usize) -> Vec<u8> {
    message_from("sender@bench.client", to, n, size)
}

/// [`message`] with `From:` set to `from` (a submission's own user: the MSA
/// checks that the header is the logged-in user's).
pub(crate) fn message_from(from: &str, to: &str, n: u64, size: usize) -> Vec<u8> {
    let rare = if has_rare_word(n) { RARE_WORD } else { "note" };
    let mut m = format!(
        "From: Bench <{from}>\r\nTo: <{to}>\r\nSubject: bench message {n} {rare}\r\n\
         Message-ID: <{n}.{}@bench.client>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        std::process::id()
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_untagged_lines() {
        assert_eq!(number_in("* 12 EXISTS", "EXISTS"), Some(12));
        assert_eq!(
            number_in("* OK [UIDNEXT 13] Predicted", "UIDNEXT"),
            Some(13)
        );
        assert_eq!(
            number_in("* STATUS INBOX (MESSAGES 7)", "MESSAGES"),
            Some(7)
        );
        assert_eq!(number_in("* 3 RECENT", "EXISTS"), None);
    }

    #[test]
    fn literal_at_line_end() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[HEADER] {342}\r\n"), Some(342));
        assert_eq!(literal_len(b"* 1 FETCH (FLAGS ())\r\n"), None);
    }

    #[test]
    fn exists_and_search_lines() {
        assert_eq!(exists("* 12 EXISTS"), Some(12));
        assert_eq!(exists("* 12 exists"), Some(12));
        assert_eq!(exists("* 3 RECENT"), None);
        assert_eq!(exists("* OK Still here"), None);
        let reply = ImapReply {
            untagged: vec!["* SEARCH 8 108 208".into(), "* 3 EXISTS".into()],
            ..ImapReply::default()
        };
        assert_eq!(search_hits(&reply), vec![8, 108, 208]);
        let empty = ImapReply {
            untagged: vec!["* SEARCH".into()],
            ..ImapReply::default()
        };
        assert!(search_hits(&empty).is_empty());
    }

    #[test]
    fn rare_word_in_one_subject_in_a_hundred() {
        let with: Vec<u64> = (0..1000).filter(|&n| has_rare_word(n)).collect();
        assert_eq!(with.len(), 10);
        let text = String::from_utf8(message("a@b.test", 107, 1024)).unwrap();
        assert!(
            text.contains("Subject: bench message 107 lighthouse\r\n"),
            "{text}"
        );
        let text = String::from_utf8(message("a@b.test", 108, 1024)).unwrap();
        assert!(!text.contains(RARE_WORD), "{text}");
    }

    #[test]
    fn message_size_and_shape() {
        let m = message("a@b.test", 1, 1024);
        assert!(m.len() >= 1024 && m.len() < 1024 + 80, "{}", m.len());
        assert!(m.ends_with(b"\r\n"));
        assert!(!m.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
    }
}
