//! facteur-mua: the command-line mail user agent. It composes (mail-builder),
//! sends over SMTP submission, fetches over POP3 or IMAP, shows (mail-parser) and
//! traces the path a message took from its Received headers. It talks to the
//! other agents only over mail protocols.

pub mod account;
pub mod cli;
pub mod compose;
pub mod fetch;
pub mod imap;
pub mod mailbox;
pub mod maildir;
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

/// Parse the command line, the account's values (`-a NAME`, `mua.toml`) as
/// clap's defaults; `--help` and usage errors exit here as clap does.
pub fn parse(argv: Vec<std::ffi::OsString>) -> anyhow::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if let Some((account, _path)) = account::from_args(&argv)? {
        cmd = account::apply(cmd, &account, &argv);
    }
    let matches = cmd.get_matches_from(argv);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

fn maildir_of(m: &cli::MaildirArg) -> anyhow::Result<std::path::PathBuf> {
    m.maildir
        .as_deref()
        .map(account::expand_home)
        .context("pass --maildir DIR (or give the account a maildir)")
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
        Cmd::List(m) => {
            print!("{}", mailbox::list(&maildir_of(&m)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Read(r) => {
            let read = mailbox::read(&maildir_of(&r.maildir)?, r.number, r.raw, r.save.as_deref())?;
            print!("{}", read.text);
            for (path, size) in &read.saved {
                println!("saved {} ({size} bytes)", path.display());
            }
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
