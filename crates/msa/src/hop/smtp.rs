//! The SMTP next hop: each submission is relayed to `next_hop` over its own SMTP
//! connection, opened at the client's MAIL (like Postfix's
//! `smtpd_proxy_filter`), so every answer the client gets is the next hop's own:
//! MAIL and each RCPT are passed on and their replies passed back (a recipient
//! the next hop refuses with 5xx is refused to the client with it, a 4xx stays a
//! 4xx), DATA is answered 354 only after the next hop's 354, and the message gets
//! 250 only after the next hop's 250 for it. Nothing is ever accepted that the
//! next hop did not accept, so no recipient is lost silently.
//!
//! A next hop that cannot be reached (connect, greeting, EHLO, TLS or AUTH
//! failing, or the connection lost mid-transaction) is `451 4.4.1`, never 250.
//! STARTTLS follows `next_hop_smtp.starttls`; with `tls_ca` the certificate is
//! verified (name: the host of `next_hop`), without it any certificate is taken
//! (encryption against passive eavesdropping only, as SMTP's opportunistic TLS).
//! AUTH PLAIN is sent only over TLS. The RSET of a transaction is a new
//! connection: a dropped transaction closes its connection, and the next hop,
//! having seen no final dot, queues nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use facteur_daemon::smtp_client::{SmtpClient, SmtpClientError, Tap, Timeouts};
use facteur_daemon::tls;
use facteur_daemon::transcript::{Proto, Transcripts};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::command::{Body, Command, MailParams};
use facteur_protocol::smtp::data::DotStuffer;
use facteur_protocol::smtp::reply::Reply;
use tokio_rustls::TlsConnector;

use crate::config::{MsaConfig, StartTls};

/// The next hop as configured (shared by every session).
pub struct SmtpHop {
    host: String,
    port: u16,
    implicit_tls: bool,
    starttls: StartTls,
    connector: TlsConnector,
    helo: String,
    login: Option<(String, Secret<String>)>,
    source: Option<IpAddr>,
    timeouts: Timeouts,
    transcripts: Transcripts,
}

/// `smtp://host[:port]` or `smtps://host[:port]` → (host, port, implicit TLS).
fn parse_url(url: &str) -> anyhow::Result<(String, u16, bool)> {
    let (rest, implicit, default_port) = if let Some(r) = url.strip_prefix("smtp://") {
        (r, false, 25)
    } else if let Some(r) = url.strip_prefix("smtps://") {
        (r, true, 465)
    } else {
        bail!("next_hop {url:?}: must be \"\", smtp://host:port or smtps://host:port");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("next_hop {url:?}: unclosed ["))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        bail!("next_hop {url:?}: no host");
    }
    let port = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("next_hop {url:?}: bad port"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port, implicit))
}

impl SmtpHop {
    /// From the config; `None` when `next_hop` is "" (the gRPC hop). Reads the
    /// CA bundle and the password file now, once.
    pub async fn from_config(
        config: &MsaConfig,
        transcripts: Transcripts,
    ) -> anyhow::Result<Option<SmtpHop>> {
        if config.next_hop.is_empty() {
            return Ok(None);
        }
        let (host, port, implicit_tls) = parse_url(&config.next_hop)?;
        let c = &config.next_hop_smtp;
        let connector = if c.tls_ca.is_empty() {
            tls::opportunistic_connector()?
        } else {
            tls::connector(Path::new(&c.tls_ca)).context("next_hop_smtp.tls_ca")?
        };
        let login = if c.user.is_empty() {
            None
        } else {
            if c.starttls == StartTls::Off && !implicit_tls {
                bail!("next_hop_smtp.user needs TLS: the password is never sent in the clear");
            }
            if c.password_file.is_empty() {
                bail!("next_hop_smtp.user is set but next_hop_smtp.password_file is not");
            }
            let raw = tokio::fs::read_to_string(&c.password_file)
                .await
                .with_context(|| format!("next_hop_smtp.password_file {}", c.password_file))?;
            let password = raw.trim_end_matches(['\r', '\n']).to_owned();
            Some((c.user.clone(), Secret::new(password)))
        };
        Ok(Some(SmtpHop {
            host,
            port,
            implicit_tls,
            starttls: c.starttls,
            connector,
            helo: if c.helo.is_empty() {
                config.hostname.clone()
            } else {
                c.helo.clone()
            },
            login,
            source: config.source_address,
            timeouts: Timeouts {
                connect: Duration::from_secs(30),
                ..Timeouts::default()
            },
            transcripts,
        }))
    }

    /// Where the next hop is, for the logs.
    pub fn target(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.implicit_tls { "smtps" } else { "smtp" },
            self.host,
            self.port
        )
    }

    async fn connect(&self) -> Result<SmtpClient, SmtpClientError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        let mut last = SmtpClientError::Malformed(format!("{} has no address", self.host));
        for addr in addrs {
            let attempt = if self.implicit_tls {
                SmtpClient::connect_tls_from(
                    addr,
                    self.source,
                    &self.connector,
                    &self.host,
                    self.timeouts.clone(),
                )
                .await
            } else {
                SmtpClient::connect_from(addr, self.source, self.timeouts.clone()).await
            };
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connected, greeted, encrypted and authenticated as configured; the
    /// dialogue recorded into `tap` from the greeting on.
    async fn open(&self, tap: Option<Tap>) -> Result<SmtpClient, SmtpClientError> {
        let mut c = self.connect().await?;
        if let Some(tap) = tap {
            c.record(tap);
        }
        c.hello(&self.helo, false).await?;
        if !c.is_tls() && self.starttls != StartTls::Off {
            if c.supports("STARTTLS") {
                c.starttls(&self.connector, &self.host).await?;
                c.hello(&self.helo, false).await?;
            } else if self.starttls == StartTls::Required {
                return Err(SmtpClientError::Malformed(
                    "STARTTLS is required but not offered".into(),
                ));
            }
        }
        if let Some((user, password)) = &self.login {
            if !c.is_tls() {
                return Err(SmtpClientError::Malformed(
                    "no TLS: AUTH not sent (the password never goes in the clear)".into(),
                ));
            }
            c.auth_plain(user, password).await?;
        }
        Ok(c)
    }
}

fn unreachable(hop: &SmtpHop, tap: Option<&Tap>, e: &SmtpClientError) -> Reply {
    tracing::warn!(next_hop = %hop.target(), error = %e, "next hop unreachable");
    if let Some(tap) = tap
        && let Ok(mut rec) = tap.lock()
    {
        rec.note(&format!("attempt failed: {e}"));
    }
    Reply::new(451, "4.4.1", "Next hop unreachable, try again later")
}

/// Store the record once no client holds it any more.
fn finish(tap: Option<Tap>) {
    if let Some(rec) = tap.and_then(|t| Arc::try_unwrap(t).ok()) {
        rec.into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .finish();
    }
}

/// Say goodbye to the next hop in the background, then store the record.
fn close(c: SmtpClient, tap: Option<Tap>) {
    tokio::spawn(async move {
        c.quit().await;
        finish(tap);
    });
}

/// One session's transaction with the next hop.
pub struct Session {
    hop: Arc<SmtpHop>,
    conn: Option<SmtpClient>,
    /// Inside the message data (after the next hop's 354).
    data: Option<DotStuffer>,
    /// The connection broke during the data: the message is answered with this.
    failed: Option<Reply>,
    /// This transaction's transcript record (`[transcript]`).
    tap: Option<Tap>,
}

impl Session {
    pub(super) fn new(hop: Arc<SmtpHop>) -> Self {
        Self {
            hop,
            conn: None,
            data: None,
            failed: None,
            tap: None,
        }
    }

    fn unreachable(&self, e: &SmtpClientError) -> Reply {
        unreachable(&self.hop, self.tap.as_ref(), e)
    }

    pub(super) async fn mail(&mut self, from: &ReversePath, params: &MailParams) -> Reply {
        self.reset();
        self.tap = self
            .hop
            .transcripts
            .start(Proto::Smtp, "smtp-out", self.hop.target(), &self.hop.helo)
            .map(|rec| Arc::new(std::sync::Mutex::new(rec)));
        let mut c = match self.hop.open(self.tap.clone()).await {
            Ok(c) => c,
            Err(e) => {
                let reply = self.unreachable(&e);
                finish(self.tap.take());
                return reply;
            }
        };
        if params.smtputf8 && !c.supports("SMTPUTF8") {
            close(c, self.tap.take());
            // RFC 6531 §3.5: the message cannot be relayed as it is.
            return Reply::new(553, "5.6.7", "The next hop does not support SMTPUTF8");
        }
        let params = MailParams {
            size: params.size.filter(|_| c.supports("SIZE")),
            body: params
                .body
                .filter(|b| *b != Body::EightBitMime || c.supports("8BITMIME")),
            smtputf8: params.smtputf8,
            other: Vec::new(),
        };
        let cmd = Command::Mail {
            from: from.clone(),
            params,
        };
        match c.command(&cmd).await {
            Ok(reply) if reply.is_positive() => {
                self.conn = Some(c);
                reply
            }
            Ok(reply) => {
                close(c, self.tap.take());
                reply
            }
            Err(e) => {
                drop(c);
                let reply = self.unreachable(&e);
                finish(self.tap.take());
                reply
            }
        }
    }

    pub(super) async fn rcpt(&mut self, to: &ForwardPath) -> Reply {
        let Some(c) = self.conn.as_mut() else {
            return lost();
        };
        let cmd = Command::Rcpt {
            to: to.clone(),
            params: Vec::new(),
        };
        match c.command(&cmd).await {
            Ok(reply) => reply,
            Err(e) => {
                self.conn = None;
                self.unreachable(&e)
            }
        }
    }

    pub(super) async fn data_start(&mut self) -> Reply {
        let Some(c) = self.conn.as_mut() else {
            return lost();
        };
        match c.command(&Command::Data).await {
            Ok(reply) if reply.code() / 100 == 3 => {
                self.data = Some(DotStuffer::new());
                reply
            }
            Ok(reply) => {
                self.reset();
                reply
            }
            Err(e) => {
                self.conn = None;
                self.unreachable(&e)
            }
        }
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) {
        let (Some(c), Some(stuffer)) = (self.conn.as_mut(), self.data.as_mut()) else {
            return;
        };
        if let Err(e) = c.write_data(stuffer, bytes).await {
            self.conn = None;
            self.failed = Some(self.unreachable(&e));
        }
    }

    pub(super) async fn data_end(&mut self) -> Reply {
        if let Some(reply) = self.failed.take() {
            self.reset();
            return reply;
        }
        let (Some(mut c), Some(stuffer)) = (self.conn.take(), self.data.take()) else {
            return lost();
        };
        match c.end_data(stuffer).await {
            Ok(reply) => {
                if reply.is_positive() {
                    tracing::info!(next_hop = %self.hop.target(), reply = %facteur_daemon::logging::clean(&reply.to_string()), "relayed");
                } else {
                    tracing::info!(next_hop = %self.hop.target(), reply = %facteur_daemon::logging::clean(&reply.to_string()), "next hop refused the message");
                }
                close(c, self.tap.take());
                reply
            }
            Err(e) => {
                drop(c);
                let reply = self.unreachable(&e);
                finish(self.tap.take());
                reply
            }
        }
    }

    pub(super) fn reset(&mut self) {
        self.failed = None;
        let in_data = self.data.take().is_some();
        if let Some(c) = self.conn.take()
            && !in_data
        {
            // Mid-data the connection is just dropped: without the final dot the
            // next hop queues nothing. Otherwise say goodbye.
            close(c, self.tap.take());
        }
        finish(self.tap.take());
    }
}

fn lost() -> Reply {
    Reply::new(451, "4.4.1", "Next hop connection lost, try again later")
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn next_hop_urls() {
        assert_eq!(
            parse_url("smtp://127.0.0.2:2525").unwrap(),
            ("127.0.0.2".into(), 2525, false)
        );
        assert_eq!(
            parse_url("smtps://mail.example.org").unwrap(),
            ("mail.example.org".into(), 465, true)
        );
        assert_eq!(
            parse_url("smtp://[::1]:25/").unwrap(),
            ("::1".into(), 25, false)
        );
        for bad in ["http://x:25", "smtp://:25", "smtp://x:port", "smtp://[::1"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
