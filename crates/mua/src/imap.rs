//! The IMAP client of `fetch`, on imap-next's client state machine: STARTTLS (or
//! implicit TLS), LOGIN, SELECT INBOX (EXAMINE when not deleting), FETCH n
//! BODY.PEEK[], STORE \Deleted + EXPUNGE only when asked, LOGOUT.
//!
//! For STARTTLS the plaintext stream is taken back out of imap-next (its
//! `expose_stream` feature), the handshake done with tokio-rustls, and a fresh
//! client started that expects no second greeting; whatever the old client had
//! buffered in the clear is dropped with it.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, bail};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::fetch::{MessageDataItem, MessageDataItemName};
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::response::{Data, GreetingKind, Status, StatusBody, StatusKind};
use imap_next::stream::Stream;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use imap_codec::encode::Encoder;
use imap_codec::{CommandCodec, GreetingCodec, ResponseCodec};
use imap_next::imap_types::response::Response;

use crate::cli::{FetchArgs, TlsMode};
use crate::net::{Server, pick, step};
use crate::tap::Shared;

struct Imap {
    stream: Stream,
    client: Client,
    timeout: Duration,
    next_tag: u32,
    /// `--transcript`: each command sent and response received, encoded again
    /// with imap-codec (imap-next owns the socket, so its bytes are not seen).
    tap: Option<Shared>,
}

fn describe(body: &StatusBody<'_>) -> String {
    let kind = match body.kind {
        StatusKind::Ok => "OK",
        StatusKind::No => "NO",
        StatusKind::Bad => "BAD",
    };
    match &body.code {
        Some(code) => format!("{kind} [{code:?}] {}", body.text),
        None => format!("{kind} {}", body.text),
    }
}

impl Imap {
    async fn event(&mut self, stage: &str) -> anyhow::Result<Event> {
        let event =
            match tokio::time::timeout(self.timeout, self.stream.next(&mut self.client)).await {
                Err(_) => bail!("{stage}: no answer within {}s", self.timeout.as_secs()),
                Ok(r) => r.with_context(|| format!("{stage} failed"))?,
            };
        self.record(&event);
        Ok(event)
    }

    fn record(&self, event: &Event) {
        let Some(tap) = &self.tap else { return };
        let Ok(mut rec) = tap.lock() else { return };
        match event {
            Event::GreetingReceived { greeting } => {
                rec.server(&GreetingCodec::default().encode(greeting).dump());
            }
            Event::CommandSent { command, .. } | Event::CommandRejected { command, .. } => {
                rec.client(&CommandCodec::default().encode(command).dump());
                if let Event::CommandRejected { status, .. } = event {
                    let status = Response::Status(status.clone());
                    rec.server(&ResponseCodec::default().encode(&status).dump());
                }
            }
            Event::DataReceived { data } => {
                let data = Response::Data(data.clone());
                rec.server(&ResponseCodec::default().encode(&data).dump());
            }
            Event::StatusReceived { status } => {
                let status = Response::Status(status.clone());
                rec.server(&ResponseCodec::default().encode(&status).dump());
            }
            _ => {}
        }
    }

    /// Send one command; collect the untagged data until its tagged status, which
    /// must be OK. A BYE is accepted only for LOGOUT.
    async fn run(
        &mut self,
        stage: &str,
        body: CommandBody<'static>,
    ) -> anyhow::Result<Vec<Data<'static>>> {
        self.next_tag += 1;
        let tag = Tag::try_from(format!("M{}", self.next_tag))
            .map_err(|e| anyhow::anyhow!("tag: {e:?}"))?;
        let logout = matches!(body, CommandBody::Logout);
        self.client.enqueue_command(Command {
            tag: tag.clone(),
            body,
        });
        let mut data = Vec::new();
        loop {
            match self.event(stage).await? {
                Event::DataReceived { data: d } => data.push(d),
                Event::StatusReceived {
                    status: Status::Tagged(t),
                } if t.tag == tag => {
                    if t.body.kind == StatusKind::Ok {
                        return Ok(data);
                    }
                    bail!("{stage} refused: {}", describe(&t.body));
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } if !logout => bail!("{stage}: the server said BYE {}", bye.text),
                Event::CommandRejected { status, .. } => {
                    bail!("{stage} refused: {status:?}")
                }
                _ => {}
            }
        }
    }
}

async fn tls(
    tcp: TcpStream,
    args: &FetchArgs,
    server: &Server,
    timeout: Duration,
) -> anyhow::Result<Stream> {
    let conn = &args.conn;
    let connector = conn.connector()?;
    let name = ServerName::try_from(conn.server_name(server))
        .context("--server-name is not a valid name")?;
    let tls = step("TLS handshake", timeout, connector.connect(name, tcp)).await?;
    Ok(Stream::tls(TlsStream::Client(tls)))
}

/// Fetch the chosen messages from INBOX: (sequence number, bytes), oldest first;
/// the dialogue goes into `tap` when given (`--transcript`).
pub async fn fetch(
    server: &Server,
    args: &FetchArgs,
    tap: Option<Shared>,
) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
    let conn = &args.conn;
    let timeout = conn.timeout();
    let tcp = server.connect(timeout).await?;
    let (stream, is_tls) = match conn.tls {
        TlsMode::Implicit => (tls(tcp, args, server, timeout).await?, true),
        _ => (Stream::insecure(tcp), false),
    };
    let mut imap = Imap {
        stream,
        client: Client::new(Options::default()),
        timeout,
        next_tag: 0,
        tap,
    };
    let greeting = loop {
        if let Event::GreetingReceived { greeting } = imap.event("greeting").await? {
            break greeting;
        }
    };
    if greeting.kind == GreetingKind::Bye {
        bail!("greeting refused: BYE {}", greeting.text);
    }
    let mut is_tls = is_tls;
    if conn.tls == TlsMode::Starttls {
        imap.run("STARTTLS", CommandBody::StartTLS).await?;
        let tcp = TcpStream::from(imap.stream);
        imap.stream = tls(tcp, args, server, timeout).await?;
        let mut options = Options::default();
        options.discard_greeting = true;
        imap.client = Client::new(options);
        if let Some(tap) = &imap.tap
            && let Ok(mut rec) = tap.lock()
        {
            rec.note("TLS started");
        }
        is_tls = true;
    }
    conn.check_password_allowed(is_tls)?;
    let login = CommandBody::login(conn.user.clone(), conn.password()?)
        .map_err(|e| anyhow::anyhow!("LOGIN: user name or password cannot be sent: {e:?}"))?;
    imap.run("LOGIN", login).await?;
    let (stage, select) = if args.delete {
        ("SELECT", CommandBody::select("INBOX"))
    } else {
        ("EXAMINE", CommandBody::examine("INBOX"))
    };
    let select = select.map_err(|e| anyhow::anyhow!("{stage}: {e:?}"))?;
    let count = imap
        .run(stage, select)
        .await?
        .into_iter()
        .filter_map(|d| match d {
            Data::Exists(n) => Some(n),
            _ => None,
        })
        .next_back()
        .with_context(|| {
            format!("{stage}: the server did not say how many messages INBOX holds")
        })?;
    let mut out = Vec::new();
    for n in pick(args.which(), count)? {
        let seq = NonZeroU32::new(n).context("message number 0")?;
        let items = vec![MessageDataItemName::BodyExt {
            section: None,
            partial: None,
            peek: true,
        }];
        let fetch =
            CommandBody::fetch(seq, items, false).map_err(|e| anyhow::anyhow!("FETCH: {e:?}"))?;
        let bytes = imap
            .run("FETCH", fetch)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                Data::Fetch { seq: s, items } if s == seq => Some(items),
                _ => None,
            })
            .flat_map(|items| items.into_iter())
            .find_map(|item| match item {
                MessageDataItem::BodyExt {
                    section: None,
                    data,
                    ..
                } => Some(
                    data.into_option()
                        .map(|c| c.into_owned())
                        .unwrap_or_default(),
                ),
                _ => None,
            })
            .with_context(|| format!("FETCH: no BODY[] for message {n}"))?;
        out.push((n, bytes));
    }
    if args.delete && !out.is_empty() {
        let seqs: Vec<NonZeroU32> = out
            .iter()
            .filter_map(|(n, _)| NonZeroU32::new(*n))
            .collect();
        let store = CommandBody::store(
            seqs,
            StoreType::Add,
            StoreResponse::Silent,
            vec![Flag::Deleted],
            false,
        )
        .map_err(|e| anyhow::anyhow!("STORE: {e:?}"))?;
        imap.run("STORE", store).await?;
        imap.run("EXPUNGE", CommandBody::Expunge).await?;
    }
    // Errors at LOGOUT do not matter any more: the messages are in hand.
    let _ = imap.run("LOGOUT", CommandBody::Logout).await;
    Ok(out)
}
