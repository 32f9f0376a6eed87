//! The IMAP client of `fetch`, on imap-next's client state machine: STARTTLS (or
//! implicit TLS), LOGIN, SELECT INBOX (EXAMINE when not deleting), FETCH n
//! BODY.PEEK[], STORE \Deleted + EXPUNGE only when asked, LOGOUT; into a
//! Maildir, UID FETCH of the UIDs above the last one stored.
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
use imap_next::imap_types::response::{Code, Data, GreetingKind, Status, StatusBody, StatusKind};
use imap_next::stream::Stream;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use imap_codec::encode::Encoder;
use imap_codec::{CommandCodec, GreetingCodec, ResponseCodec};
use imap_next::imap_types::response::Response;

use crate::cli::{FetchArgs, TlsMode};
use crate::fetch::Stored;
use crate::maildir::Maildir;
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
    /// The codes of the untagged statuses (`* OK [UIDVALIDITY …]`) of the last
    /// command run.
    codes: Vec<Code<'static>>,
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
        self.codes.clear();
        loop {
            match self.event(stage).await? {
                Event::DataReceived { data: d } => data.push(d),
                Event::StatusReceived {
                    status:
                        Status::Untagged(StatusBody {
                            code: Some(code), ..
                        }),
                } => self.codes.push(code),
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

/// The BODY[] of the FETCH response that `wanted(seq, items)` picks.
fn body_of(
    data: Vec<Data<'static>>,
    wanted: impl Fn(NonZeroU32, &[MessageDataItem<'static>]) -> bool,
) -> Option<Vec<u8>> {
    data.into_iter()
        .filter_map(|d| match d {
            Data::Fetch { seq, items } if wanted(seq, items.as_ref()) => Some(items),
            _ => None,
        })
        .flat_map(|items| items.into_inner())
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
}

/// The UID item of a FETCH response.
fn uid_of(items: &[MessageDataItem<'_>]) -> Option<u32> {
    items.iter().find_map(|i| match i {
        MessageDataItem::Uid(u) => Some(u.get()),
        _ => None,
    })
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

/// Connect, secure (STARTTLS or implicit TLS) and LOGIN.
async fn login(server: &Server, args: &FetchArgs, tap: Option<Shared>) -> anyhow::Result<Imap> {
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
        codes: Vec::new(),
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
    Ok(imap)
}

/// SELECT INBOX (EXAMINE when nothing is to be deleted, so no flag changes):
/// the command's name and the EXISTS count the server gave.
async fn open_inbox(imap: &mut Imap, delete: bool) -> anyhow::Result<(&'static str, Option<u32>)> {
    let (stage, select) = if delete {
        ("SELECT", CommandBody::select("INBOX"))
    } else {
        ("EXAMINE", CommandBody::examine("INBOX"))
    };
    let select = select.map_err(|e| anyhow::anyhow!("{stage}: {e:?}"))?;
    let exists = imap
        .run(stage, select)
        .await?
        .into_iter()
        .filter_map(|d| match d {
            Data::Exists(n) => Some(n),
            _ => None,
        })
        .next_back();
    Ok((stage, exists))
}

/// Fetch the chosen messages from INBOX: (sequence number, bytes), oldest first;
/// the dialogue goes into `tap` when given (`--transcript`).
pub async fn fetch(
    server: &Server,
    args: &FetchArgs,
    tap: Option<Shared>,
) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
    let mut imap = login(server, args, tap).await?;
    let (stage, count) = open_inbox(&mut imap, args.delete).await?;
    let count = count.with_context(|| {
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
        let data = imap.run("FETCH", fetch).await?;
        let bytes = body_of(data, |s, _| s == seq)
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

/// `fetch --maildir` over IMAP: INBOX's messages with a UID above the last one
/// stored (all of them again if UIDVALIDITY changed, RFC 3501 §2.3.1.1), one
/// at a time, each stored durably before the state moves on; `--delete`
/// removes them from the server once stored.
pub async fn fetch_into(
    server: &Server,
    args: &FetchArgs,
    tap: Option<Shared>,
    md: &Maildir,
) -> anyhow::Result<Stored> {
    let mut imap = login(server, args, tap).await?;
    let source = format!("imap {}@{} INBOX", args.conn.user, server.spec);
    let (stage, exists) = open_inbox(&mut imap, args.delete).await?;
    let exists = exists.unwrap_or(0);
    let validity = imap
        .codes
        .iter()
        .find_map(|c| match c {
            Code::UidValidity(v) => Some(v.get()),
            _ => None,
        })
        .with_context(|| format!("{stage}: the server gave no UIDVALIDITY"))?;
    // The state line: `uidvalidity V last U`.
    let last = md
        .state(&source)?
        .iter()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some("uidvalidity"), Some(v), Some("last"), Some(u)) => {
                    Some((v.parse::<u32>().ok()?, u.parse::<u32>().ok()?))
                }
                _ => None,
            }
        })
        .filter(|(v, _)| {
            let same = *v == validity;
            if !same {
                eprintln!("UIDVALIDITY changed ({v} → {validity}): fetching INBOX again");
            }
            same
        })
        .map_or(0, |(_, u)| u);
    let mut stored = Stored {
        on_server: exists as usize,
        maildir: md.root().to_path_buf(),
        ..Stored::default()
    };
    let mut uids = Vec::new();
    if exists > 0 {
        // `last+1:*` always matches the highest message (RFC 3501 §6.4.8: `*`
        // is the largest UID), so the UIDs are filtered again.
        let range = format!("{}:*", last.saturating_add(1));
        let items = vec![MessageDataItemName::Uid];
        let fetch = CommandBody::fetch(range.as_str(), items, true)
            .map_err(|e| anyhow::anyhow!("UID FETCH: {e:?}"))?;
        for d in imap.run("UID FETCH", fetch).await? {
            if let Data::Fetch { items, .. } = d
                && let Some(u) = uid_of(items.as_ref())
                && u > last
            {
                uids.push(u);
            }
        }
        uids.sort_unstable();
    }
    for uid in uids {
        let id = NonZeroU32::new(uid).context("UID 0")?;
        let items = vec![
            MessageDataItemName::Uid,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                peek: true,
            },
        ];
        let fetch =
            CommandBody::fetch(id, items, true).map_err(|e| anyhow::anyhow!("UID FETCH: {e:?}"))?;
        let data = imap.run("UID FETCH", fetch).await?;
        let Some(bytes) = body_of(data, |_, items| uid_of(items) == Some(uid)) else {
            // Expunged meanwhile by another client: nothing to store.
            continue;
        };
        stored.paths.push(md.deliver(&bytes)?);
        md.set_state(&source, &[format!("uidvalidity {validity} last {uid}")])?;
        if args.delete {
            let store = CommandBody::store(
                id,
                StoreType::Add,
                StoreResponse::Silent,
                vec![Flag::Deleted],
                true,
            )
            .map_err(|e| anyhow::anyhow!("UID STORE: {e:?}"))?;
            imap.run("UID STORE", store).await?;
            stored.deleted += 1;
        }
    }
    if stored.deleted > 0 {
        imap.run("EXPUNGE", CommandBody::Expunge).await?;
    }
    let _ = imap.run("LOGOUT", CommandBody::Logout).await;
    Ok(stored)
}
