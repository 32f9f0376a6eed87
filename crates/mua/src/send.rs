//! `send`: compose the message, then submit it — connect, EHLO, STARTTLS (or
//! implicit TLS), EHLO, AUTH PLAIN, MAIL/RCPT for To+Cc+Bcc, DATA — and report
//! the server's final reply per recipient.
//!
//! Every mode (STARTTLS, implicit TLS on 465, plaintext) goes through
//! `daemon::smtp_client::SmtpClient`, the one SMTP client of the project.

use std::io::Read;

use anyhow::{Context, bail};
use facteur_daemon::smtp_client::{SmtpClient, SmtpClientError, Timeouts};
use facteur_daemon::transcript::{Proto, Recording};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, Mailbox, ReversePath};
use facteur_protocol::smtp::{Command, MailParams, Reply};

use crate::cli::{SendArgs, TlsMode};
use crate::compose::{self, Attachment, Draft};
use crate::net::Server;

/// The outcome for one recipient.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rcpt: String,
    pub reply: Reply,
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        self.reply.is_completion()
    }
}

/// Build the draft from the arguments (reads the body file and attachments).
pub fn draft(args: &SendArgs) -> anyhow::Result<Draft> {
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => b.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the body from stdin")?;
            s
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the body from {}", path.display()))?,
        (None, None) => String::new(),
    };
    let attachments = args
        .attach
        .iter()
        .map(|p| Attachment::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Draft {
        from: args.from.clone(),
        to: args.to.clone(),
        cc: args.cc.clone(),
        bcc: args.bcc.clone(),
        subject: args.subject.clone(),
        body,
        attachments,
        date: facteur_daemon::trace::now_unix(),
        message_id: compose::new_message_id(&args.from),
    })
}

/// Compose and submit; one outcome per envelope recipient.
pub async fn send(args: &SendArgs) -> anyhow::Result<Vec<Outcome>> {
    let draft = draft(args)?;
    let sender = compose::envelope_address(&draft.from)?;
    let rcpts = compose::envelope_recipients(&draft)?;
    let message = compose::compose(&draft)?;
    let server = Server::parse(&args.server)?;
    let conn = &args.conn;
    let password = Secret::new(conn.password()?);

    let from = ReversePath::Mailbox(parse_mailbox(&sender)?);
    let rcpt_commands = rcpts
        .iter()
        .map(|r| {
            Ok(Command::Rcpt {
                to: ForwardPath::Mailbox(parse_mailbox(r)?),
                params: Vec::new(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let utf8 = !sender.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());

    let replies = submit(
        args,
        &server,
        &password,
        from,
        &rcpt_commands,
        &message,
        utf8,
    )
    .await?;
    Ok(rcpts
        .into_iter()
        .zip(replies)
        .map(|(rcpt, reply)| Outcome { rcpt, reply })
        .collect())
}

fn parse_mailbox(addr: &str) -> anyhow::Result<Mailbox> {
    Mailbox::parse(addr).map_err(|e| anyhow::anyhow!("bad address {addr:?}: {e}"))
}

/// An SMTP client error as a sentence that names the step and quotes the server.
fn smtp_error(step: &'static str) -> impl Fn(SmtpClientError) -> anyhow::Error {
    move |e| match e {
        SmtpClientError::Refused { stage, reply, .. } => {
            anyhow::anyhow!("{stage} refused: {reply}")
        }
        SmtpClientError::Timeout(what) => anyhow::anyhow!("{step}: timed out waiting for {what}"),
        other => anyhow::anyhow!("{step}: {other}"),
    }
}

async fn submit(
    args: &SendArgs,
    server: &Server,
    password: &Secret<String>,
    from: ReversePath,
    rcpts: &[Command],
    message: &[u8],
    utf8: bool,
) -> anyhow::Result<Vec<Reply>> {
    let conn = &args.conn;
    let timeout = conn.timeout();
    let addr = server.resolve(timeout).await?;
    let timeouts = Timeouts {
        connect: timeout,
        command: timeout,
        data_end: timeout * 2,
        tls_handshake: timeout,
    };
    let connected = match conn.tls {
        TlsMode::Implicit => {
            let connector = conn.connector()?;
            SmtpClient::connect_tls(addr, &connector, &conn.server_name(server), timeouts).await
        }
        TlsMode::Starttls | TlsMode::None => SmtpClient::connect(addr, timeouts).await,
    };
    let mut client = connected
        .map_err(smtp_error("connect"))
        .with_context(|| format!("connecting to {} ({addr})", server.spec))?;
    let tap = args.transcript.then(|| {
        let rec = Recording::detached(Proto::Smtp, "facteur-mua", "submission", &addr.to_string());
        std::sync::Arc::new(std::sync::Mutex::new(rec))
    });
    if let Some(tap) = &tap {
        client.record(std::sync::Arc::clone(tap));
    }
    let result = dialogue(args, server, password, from, rcpts, message, utf8, client).await;
    if let Some(rec) = tap.and_then(|t| std::sync::Arc::try_unwrap(t).ok()) {
        let record = rec
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_record();
        print_transcript(&record);
    }
    result
}

/// A transcript as the course prints a telnet session.
pub fn print_transcript(record: &facteur_daemon::transcript::Record) {
    for l in &record.lines {
        println!("{} {}", l.dir.prefix(), l.text);
    }
}

#[allow(clippy::too_many_arguments)]
async fn dialogue(
    args: &SendArgs,
    server: &Server,
    password: &Secret<String>,
    from: ReversePath,
    rcpts: &[Command],
    message: &[u8],
    utf8: bool,
    mut client: SmtpClient,
) -> anyhow::Result<Vec<Reply>> {
    let conn = &args.conn;
    client
        .hello(&args.helo, false)
        .await
        .map_err(smtp_error("EHLO"))?;
    if conn.tls == TlsMode::Starttls {
        if !client.supports("STARTTLS") {
            bail!("STARTTLS refused: {} does not offer STARTTLS", server.spec);
        }
        let connector = conn.connector()?;
        client
            .starttls(&connector, &conn.server_name(server))
            .await
            .map_err(smtp_error("STARTTLS"))?;
        client
            .hello(&args.helo, false)
            .await
            .map_err(smtp_error("EHLO"))?;
    }
    conn.check_password_allowed(client.is_tls())?;
    client
        .auth_plain(&conn.user, password)
        .await
        .map_err(smtp_error("AUTH"))?;
    let params = MailParams {
        size: client
            .supports("SIZE")
            .then(|| u64::try_from(message.len()).unwrap_or(u64::MAX)),
        smtputf8: utf8 && client.supports("SMTPUTF8"),
        ..MailParams::default()
    };
    let mail = Command::Mail { from, params };
    let replies = client
        .transaction(&mail, rcpts, message, false)
        .await
        .map_err(smtp_error("DATA"))?;
    client.quit().await;
    Ok(replies)
}
