//! The POP3 client of `fetch`: STLS (or implicit TLS), USER/PASS, STAT, RETR,
//! DELE only when asked, QUIT; into a Maildir, UIDL first and only the new
//! messages — over `protocol::codec::Pop3ClientCodec`.

use std::time::Duration;

use anyhow::{Context, bail};
use facteur_daemon::stream::Stream;
use facteur_protocol::Secret;
use facteur_protocol::codec::{Pop3ClientCodec, Pop3Frame};
use facteur_protocol::pop3::{Command, Response};
use facteur_protocol::smtp::data::DataEnd;
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, FramedParts};

use crate::cli::{ConnArgs, FetchArgs, TlsMode};
use crate::fetch::Stored;
use crate::maildir::Maildir;
use crate::net::{Server, pick, step};
use crate::tap::{Shared, Tapped};

/// Largest message we accept.
const MAX_MESSAGE: u64 = 256 * 1024 * 1024;

struct Pop3 {
    framed: Framed<Tapped<Stream>, Pop3ClientCodec>,
    timeout: Duration,
}

fn codec() -> Pop3ClientCodec {
    Pop3ClientCodec::new(facteur_protocol::pop3::MAX_RESPONSE_LINE, MAX_MESSAGE)
}

impl Pop3 {
    async fn frame(&mut self, stage: &str) -> anyhow::Result<Pop3Frame> {
        match tokio::time::timeout(self.timeout, self.framed.next()).await {
            Err(_) => bail!("{stage}: no answer within {}s", self.timeout.as_secs()),
            Ok(None) => bail!("{stage}: the server closed the connection"),
            Ok(Some(f)) => f.with_context(|| format!("{stage}: bad response")),
        }
    }

    /// The next status line; `-ERR` is an error naming the step.
    async fn status(&mut self, stage: &str) -> anyhow::Result<Response> {
        match self.frame(stage).await? {
            Pop3Frame::Status(r) if r.is_ok() => Ok(r),
            Pop3Frame::Status(r) => bail!("{stage} refused: {r}"),
            other => bail!("{stage}: unexpected {other:?}"),
        }
    }

    async fn command(&mut self, stage: &str, cmd: Command) -> anyhow::Result<Response> {
        step(stage, self.timeout, self.framed.send(cmd)).await?;
        self.status(stage).await
    }

    /// The multi-line body after a `+OK`.
    async fn body(&mut self, stage: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.frame(stage).await? {
                Pop3Frame::Body(b) => out.extend(b),
                Pop3Frame::BodyEnd(DataEnd::TooBig) => {
                    bail!("{stage}: message larger than {MAX_MESSAGE} bytes")
                }
                Pop3Frame::BodyEnd(_) => return Ok(out),
                other => bail!("{stage}: unexpected {other:?}"),
            }
        }
    }
}

/// Connect, secure, log in: the session and the message count (STAT).
async fn login(
    server: &Server,
    conn: &ConnArgs,
    tap: Option<Shared>,
) -> anyhow::Result<(Pop3, u32)> {
    let timeout = conn.timeout();
    let tcp = server.connect(timeout).await?;
    let mut stream = Stream::Plain(tcp);
    if conn.tls == TlsMode::Implicit {
        let connector = conn.connector()?;
        stream = step(
            "TLS handshake",
            timeout,
            stream.connect_tls(&connector, &conn.server_name(server)),
        )
        .await?;
    }
    let mut pop = Pop3 {
        framed: Framed::new(Tapped::new(stream, tap), codec()),
        timeout,
    };
    pop.status("greeting").await?;
    if conn.tls == TlsMode::Starttls {
        pop.command("STLS", Command::Stls).await?;
        let parts = pop.framed.into_parts();
        if !parts.read_buf.is_empty() {
            // The server spoke past its +OK in the clear: trust none of it.
            bail!("STLS: data after the +OK, refusing to go on");
        }
        let connector = conn.connector()?;
        let (plain, tap) = parts.io.into_parts();
        let stream = step(
            "TLS handshake",
            timeout,
            plain.connect_tls(&connector, &conn.server_name(server)),
        )
        .await?;
        if let Some(tap) = &tap
            && let Ok(mut rec) = tap.lock()
        {
            rec.note("TLS started");
        }
        let stream = Tapped::new(stream, tap);
        pop.framed = Framed::from_parts(FramedParts::new::<Command>(stream, codec()));
    }
    conn.check_password_allowed(pop.framed.get_ref().inner.is_tls())?;
    pop.command("USER", Command::User(conn.user.clone()))
        .await?;
    pop.command("PASS", Command::Pass(Secret::new(conn.password()?)))
        .await?;
    let stat = pop.command("STAT", Command::Stat).await?;
    let count: u32 = stat
        .text()
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("STAT: cannot read the count in {stat}"))?;
    Ok((pop, count))
}

impl Pop3 {
    async fn retr(&mut self, n: u32) -> anyhow::Result<Vec<u8>> {
        self.command("RETR", Command::Retr(n)).await?;
        self.body("RETR").await
    }

    /// UIDL (RFC 1939 §7): each message's number and unique id.
    async fn uidl(&mut self) -> anyhow::Result<Vec<(u32, String)>> {
        self.command("UIDL", Command::Uidl(None)).await?;
        let body = self.body("UIDL").await?;
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut it = l.split_whitespace();
                match (it.next().and_then(|n| n.parse().ok()), it.next()) {
                    (Some(n), Some(uid)) => Ok((n, uid.to_owned())),
                    _ => bail!("UIDL: cannot read {l:?}"),
                }
            })
            .collect()
    }
}

/// Fetch the chosen messages: (number, bytes), oldest first; the dialogue goes
/// into `tap` when given (`--transcript`).
pub async fn fetch(
    server: &Server,
    args: &FetchArgs,
    tap: Option<Shared>,
) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
    let (mut pop, count) = login(server, &args.conn, tap).await?;
    let mut out = Vec::new();
    for n in pick(args.which(), count)? {
        let bytes = pop.retr(n).await?;
        if args.delete {
            pop.command("DELE", Command::Dele(n)).await?;
        }
        out.push((n, bytes));
    }
    // QUIT commits the deletions (RFC 1939 §6).
    pop.command("QUIT", Command::Quit).await?;
    Ok(out)
}

/// `fetch --maildir` over POP3: the messages whose UIDL the Maildir has not
/// seen, each stored durably before it is deleted from the server (unless
/// `--keep`). The UIDLs stored are kept in the Maildir's state, pruned to
/// those still on the server, so a crash at any point loses nothing and at
/// worst fetches one message twice.
pub async fn fetch_into(
    server: &Server,
    args: &FetchArgs,
    tap: Option<Shared>,
    md: &Maildir,
) -> anyhow::Result<Stored> {
    let (mut pop, _count) = login(server, &args.conn, tap).await?;
    let source = format!("pop3 {}@{}", args.conn.user, server.spec);
    let listing = pop.uidl().await?;
    let before: std::collections::BTreeSet<String> = md.state(&source)?.into_iter().collect();
    let mut here: Vec<String> = listing
        .iter()
        .filter(|(_, uid)| before.contains(uid))
        .map(|(_, uid)| uid.clone())
        .collect();
    let mut stored = Stored {
        on_server: listing.len(),
        maildir: md.root().to_path_buf(),
        ..Stored::default()
    };
    for (n, uid) in &listing {
        let is_new = !before.contains(uid);
        if is_new {
            let bytes = pop.retr(*n).await?;
            stored.paths.push(md.deliver(&bytes)?);
            here.push(uid.clone());
            md.set_state(&source, &here)?;
        }
        if !args.keep {
            pop.command("DELE", Command::Dele(*n)).await?;
            stored.deleted += 1;
        }
    }
    md.set_state(&source, &here)?;
    pop.command("QUIT", Command::Quit).await?;
    Ok(stored)
}
