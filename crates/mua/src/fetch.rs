//! `fetch`: get messages over POP3 or IMAP and print each one as `show` does,
//! raw with `--raw`, or its path with `--trace`.

use std::io::Write;

use anyhow::Context;

use crate::cli::FetchArgs;
use crate::net::Server;
use crate::{imap, pop3, show, trace};

/// Fetch and print; returns how many messages were printed.
pub async fn fetch(args: &FetchArgs) -> anyhow::Result<usize> {
    let messages = match (&args.pop3, &args.imap) {
        (Some(s), _) => pop3::fetch(&Server::parse(s)?, args).await?,
        (None, Some(s)) => imap::fetch(&Server::parse(s)?, args).await?,
        (None, None) => anyhow::bail!("pass --pop3 HOST:PORT or --imap HOST:PORT"),
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
