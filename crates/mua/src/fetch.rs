//! `fetch`: get messages over POP3 or IMAP and print each one as `show` does,
//! raw with `--raw`, or its path with `--trace`; `--transcript` prints the
//! dialogue first.

use std::io::Write;

use anyhow::Context;

use facteur_daemon::transcript::{Proto, Recording};

use crate::cli::FetchArgs;
use crate::net::Server;
use crate::{imap, pop3, show, trace};

/// Fetch and print; returns how many messages were printed.
pub async fn fetch(args: &FetchArgs) -> anyhow::Result<usize> {
    let tap = args.transcript.then(|| {
        let (proto, kind, server) = match (&args.pop3, &args.imap) {
            (Some(s), _) => (Proto::Pop3, "pop3", s.as_str()),
            (None, s) => (Proto::Imap, "imap", s.as_deref().unwrap_or_default()),
        };
        let rec = Recording::detached(proto, "facteur-mua", kind, server);
        std::sync::Arc::new(std::sync::Mutex::new(rec))
    });
    let fetched = match (&args.pop3, &args.imap) {
        (Some(s), _) => pop3::fetch(&Server::parse(s)?, args, tap.clone()).await,
        (None, Some(s)) => imap::fetch(&Server::parse(s)?, args, tap.clone()).await,
        (None, None) => anyhow::bail!("pass --pop3 HOST:PORT or --imap HOST:PORT"),
    };
    if let Some(rec) = tap.and_then(|t| std::sync::Arc::try_unwrap(t).ok()) {
        let record = rec
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_record();
        crate::send::print_transcript(&record);
    }
    // The transcript is printed first, failure or not: it shows why.
    let messages = fetched?;
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
