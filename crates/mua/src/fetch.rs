//! `fetch`: get messages over POP3 or IMAP and store the new ones in a local
//! Maildir (`--maildir`), or print each one as `show` does, raw with `--raw`,
//! or its path with `--trace`; `--transcript` prints the dialogue first.

use std::io::Write;

use anyhow::Context;

use facteur_daemon::transcript::{Proto, Recording};

use crate::cli::FetchArgs;
use crate::maildir::Maildir;
use crate::net::Server;
use crate::{imap, pop3, show, trace};

/// What a fetch into a Maildir did.
#[derive(Debug, Default)]
pub struct Stored {
    /// The new messages, as stored.
    pub paths: Vec<std::path::PathBuf>,
    /// Messages on the server when the fetch began.
    pub on_server: usize,
    /// Messages deleted from the server.
    pub deleted: usize,
    /// The Maildir they are in.
    pub maildir: std::path::PathBuf,
}

/// Fetch and print (or store); returns how many messages were printed or stored.
pub async fn fetch(args: &FetchArgs) -> anyhow::Result<usize> {
    let tap = args.transcript.then(|| {
        let (proto, kind, server) = match (&args.pop3, &args.imap) {
            (Some(s), _) => (Proto::Pop3, "pop3", s.as_str()),
            (None, s) => (Proto::Imap, "imap", s.as_deref().unwrap_or_default()),
        };
        let rec = Recording::detached(proto, "facteur-mua", kind, server);
        std::sync::Arc::new(std::sync::Mutex::new(rec))
    });
    let into = match args.store_into() {
        Some(dir) => Some(Maildir::create(&crate::account::expand_home(dir))?),
        None => None,
    };
    let fetched = match (&args.pop3, &args.imap, &into) {
        (Some(s), _, Some(md)) => pop3::fetch_into(&Server::parse(s)?, args, tap.clone(), md)
            .await
            .map(Fetched::Stored),
        (None, Some(s), Some(md)) => imap::fetch_into(&Server::parse(s)?, args, tap.clone(), md)
            .await
            .map(Fetched::Stored),
        (Some(s), _, None) => pop3::fetch(&Server::parse(s)?, args, tap.clone())
            .await
            .map(Fetched::Printed),
        (None, Some(s), None) => imap::fetch(&Server::parse(s)?, args, tap.clone())
            .await
            .map(Fetched::Printed),
        (None, None, _) => anyhow::bail!("pass --pop3 HOST:PORT or --imap HOST:PORT"),
    };
    if let Some(rec) = tap.and_then(|t| std::sync::Arc::try_unwrap(t).ok()) {
        let record = rec
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_record();
        crate::send::print_transcript(&record);
    }
    // The transcript is printed first, failure or not: it shows why.
    let messages = match fetched? {
        Fetched::Printed(m) => m,
        Fetched::Stored(stored) => {
            println!(
                "{} new message(s) stored in {} ({} on the server, {} deleted there)",
                stored.paths.len(),
                stored.maildir.display(),
                stored.on_server,
                stored.deleted
            );
            return Ok(stored.paths.len());
        }
    };
    let mut out = std::io::stdout().lock();
    if messages.is_empty() {
        eprintln!("the mailbox is empty");
    }
    let several = messages.len() > 1;
    for (n, bytes) in &messages {
        if args.raw {
            out.write_all(bytes)?;
            continue;
        }
        if several {
            writeln!(out, "===== message {n} =====")?;
        }
        let text = if args.trace {
            trace::render(bytes)
        } else {
            show::render(bytes)
        }
        .with_context(|| format!("message {n}"))?;
        out.write_all(text.as_bytes())?;
        if several {
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(messages.len())
}

enum Fetched {
    Printed(Vec<(u32, Vec<u8>)>),
    Stored(Stored),
}
