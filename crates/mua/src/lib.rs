//! facteur-mua: the command-line mail user agent. It composes (mail-builder),
//! sends over SMTP submission, fetches over POP3 or IMAP, shows (mail-parser) and
//! traces the path a message took from its Received headers. It talks to the
//! other agents only over mail protocols.

pub mod cli;
pub mod compose;
pub mod fetch;
pub mod imap;
pub mod net;
pub mod pop3;
pub mod received;
pub mod send;
pub mod show;
pub mod tap;
pub mod trace;
pub mod why;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use cli::{Cli, Cmd};

/// Read a message file, or stdin for `-` / no file.
pub fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            Ok(buf)
        }
    }
}

/// Run one command; the exit code says whether everything went through.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Send(args) => {
            let outcomes = send::send(&args).await?;
            let mut ok = true;
            for o in &outcomes {
                println!("{}: {}", o.rcpt, o.reply);
                ok &= o.accepted();
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Fetch(args) => {
            fetch::fetch(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Show(f) => {
            print!("{}", show::render(&read_input(f.file.as_deref())?)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Trace(t) => {
            let raw = read_input(t.file.as_deref())?;
            print!("{}", trace::render(&raw)?);
            if let Some(dir) = &t.transcripts {
                print!("{}", trace::transcripts(&raw, dir)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Why(args) => {
            let records = why::read_dir(&args.transcripts)?;
            let found = why::findings(&records, &args.target);
            print!(
                "{}",
                why::render(&args.target, &found, args.lang == cli::Lang::Fr)
            );
            Ok(if found.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
