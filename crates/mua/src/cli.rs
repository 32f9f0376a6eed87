//! The command line: `send`, `fetch`, `list`, `read`, `show`, `trace` and
//! `why`, as clap derive types; an account of `mua.toml` ([`crate::account`])
//! gives their defaults.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// facteur mail user agent: compose, send, fetch, show and trace mail.
#[derive(Debug, Parser)]
#[command(name = "facteur-mua", version, about)]
pub struct Cli {
    /// The account of the accounts file whose servers, user and Maildir are the
    /// defaults (else the file's `default`).
    #[arg(short = 'a', long, global = true, env = "FACTEUR_ACCOUNT")]
    pub account: Option<String>,
    /// The accounts file (default: ~/.config/facteur/mua.toml).
    #[arg(long, global = true, env = "FACTEUR_MUA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Compose a message and submit it over SMTP (STARTTLS or TLS, AUTH PLAIN).
    Send(SendArgs),
    /// Fetch messages over POP3 or IMAP: into a local Maildir (`--maildir`,
    /// new mail only), or shown.
    Fetch(FetchArgs),
    /// List the messages of the local Maildir, oldest first.
    List(MaildirArg),
    /// Show message N of the local Maildir and mark it read.
    Read(ReadArgs),
    /// Show a message (a file, or `-` for stdin) in a readable form.
    Show(FileArg),
    /// Print the path a message took, hop by hop, from its Received headers,
    /// and the agents' transcript lines for it where their records exist.
    Trace(TraceArgs),
    /// Why a message to or from an address (or with a queue ID) was refused,
    /// deferred or bounced, in plain words, from the agents' transcripts.
    Why(WhyArgs),
}

/// `why`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct WhyArgs {
    /// An address (`nobody@lyon.test`) or a queue ID (`0006B0FC…`).
    pub target: String,
    /// The directory of the agents' transcript files (the dev stack's
    /// `var/transcripts`).
    #[arg(long, env = "FACTEUR_TRANSCRIPTS", default_value = "var/transcripts")]
    pub transcripts: PathBuf,
    /// The language of the explanation.
    #[arg(long, value_enum, default_value_t = Lang::En)]
    pub lang: Lang,
}

/// English or French.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    En,
    Fr,
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// Plaintext first, then STARTTLS / STLS (ports 587, 110, 143).
    Starttls,
    /// TLS from the first byte (ports 465, 995, 993).
    Implicit,
    /// No TLS at all: the password is only sent with `--insecure-auth`.
    None,
}

/// What every network command needs: TLS, credentials, timeouts.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// How to secure the connection.
    #[arg(long, value_enum, default_value_t = TlsMode::Starttls)]
    pub tls: TlsMode,
    /// CA certificates (PEM) to verify the server with; default: `./var/tls/ca.pem`
    /// when it exists (the dev CA), else the system bundle.
    #[arg(long, env = "FACTEUR_CA")]
    pub ca: Option<PathBuf>,
    /// The name to verify in the server's certificate; default: the host part of
    /// the server address.
    #[arg(long)]
    pub server_name: Option<String>,
    /// The account to log in as.
    #[arg(long)]
    pub user: String,
    /// Never on the command line (other users see it in `ps`): taken from
    /// `FACTEUR_PASSWORD`, else asked on the terminal without echo. Library
    /// callers (the torture run) may set it here.
    #[arg(skip)]
    pub password: Option<String>,
    /// Allow sending the password over a connection without TLS (`--tls none` only).
    #[arg(long)]
    pub insecure_auth: bool,
    /// Seconds each network step may take.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("body_src").args(["body", "body_file"])))]
pub struct SendArgs {
    /// Submission server, HOST:PORT (e.g. mail.paris.test:587).
    #[arg(long)]
    pub server: String,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The sender (envelope and From), `addr` or `Name <addr>`.
    #[arg(long)]
    pub from: String,
    /// Recipients (repeat the flag or separate with commas).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',')]
    pub to: Vec<String>,
    /// Copy recipients, shown in the Cc header.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub cc: Vec<String>,
    /// Blind copy recipients: in the envelope only, never in the headers.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub bcc: Vec<String>,
    #[arg(long)]
    pub subject: Option<String>,
    /// The text body.
    #[arg(long)]
    pub body: Option<String>,
    /// Read the text body from a file (`-` = stdin).
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Files to attach.
    #[arg(long, num_args = 1..)]
    pub attach: Vec<PathBuf>,
    /// The name to give in EHLO.
    #[arg(long, default_value = "localhost")]
    pub helo: String,
    /// Print the SMTP dialogue (`C:`/`S:` lines, the password masked, the message
    /// as one line), like the course's telnet sessions.
    #[arg(long)]
    pub transcript: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("protocol").args(["pop3", "imap"]).required(true)))]
#[command(group(ArgGroup::new("which").args(["last", "all", "number"])))]
#[command(group(ArgGroup::new("output").args(["raw", "trace"])))]
pub struct FetchArgs {
    /// POP3 server, HOST:PORT.
    #[arg(long)]
    pub pop3: Option<String>,
    /// IMAP server, HOST:PORT (reads INBOX).
    #[arg(long)]
    pub imap: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The newest message (the default).
    #[arg(long)]
    pub last: bool,
    /// Every message.
    #[arg(long)]
    pub all: bool,
    /// Message number N (1 is the oldest).
    #[arg(long)]
    pub number: Option<u32>,
    /// Print the raw message bytes.
    #[arg(long)]
    pub raw: bool,
    /// Print the path each message took instead of the message.
    #[arg(long)]
    pub trace: bool,
    /// Delete the fetched messages from the server.
    #[arg(long, conflicts_with = "keep")]
    pub delete: bool,
    /// Store new mail in this Maildir (created if needed) instead of printing
    /// it: POP3 takes the messages whose UIDL is not there yet and deletes them
    /// from the server once stored, unless `--keep`; IMAP takes the UIDs above
    /// the last one stored and leaves the server as it is. `--last`, `--all`,
    /// `--number`, `--raw` and `--trace` print instead.
    #[arg(long)]
    pub maildir: Option<PathBuf>,
    /// With `--maildir` over POP3: leave the messages on the server.
    #[arg(long)]
    pub keep: bool,
    /// Print the POP3 or IMAP dialogue (`C:`/`S:` lines, the password masked,
    /// each message as one line) before the messages.
    #[arg(long)]
    pub transcript: bool,
}

/// Which messages to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Last,
    All,
    Number(u32),
}

impl FetchArgs {
    /// The Maildir to store into, unless a printing flag was given.
    pub fn store_into(&self) -> Option<&std::path::Path> {
        let print = self.last || self.all || self.number.is_some() || self.raw || self.trace;
        self.maildir.as_deref().filter(|_| !print)
    }

    pub fn which(&self) -> Which {
        match (self.all, self.number) {
            (true, _) => Which::All,
            (false, Some(n)) => Which::Number(n),
            _ => Which::Last,
        }
    }
}

/// The local Maildir of `list` and `read`.
#[derive(Debug, Clone, Args)]
pub struct MaildirArg {
    /// The Maildir (the one `fetch --maildir` fills; an account's `maildir`).
    #[arg(long, required = true)]
    pub maildir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// The message number, as `list` shows it (1 is the oldest).
    pub number: usize,
    #[command(flatten)]
    pub maildir: MaildirArg,
    /// Save the attachments into this directory (never over a file already there).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print the raw message bytes.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// The message file; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// The agents' transcript files (the dev stack's `var/transcripts`): the
    /// dialogue at each hop is shown beside the Received lines.
    #[arg(long, env = "FACTEUR_TRANSCRIPTS")]
    pub transcripts: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct FileArg {
    /// The message file; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Cmd};

    #[test]
    fn no_password_on_the_command_line() {
        let base = [
            "facteur-mua",
            "send",
            "--server",
            "h:1",
            "--user",
            "u",
            "--from",
            "a@b",
            "--to",
            "c@d",
        ];
        assert!(Cli::try_parse_from(base).is_ok());
        let with: Vec<&str> = base.iter().copied().chain(["--password", "x"]).collect();
        let e = Cli::try_parse_from(with).expect_err("--password must not parse");
        assert!(e.to_string().contains("--password"), "{e}");
    }

    #[test]
    fn an_account_gives_defaults_that_flags_override() {
        let account: crate::account::Account = toml::from_str(
            "user = \"andre@lyon.test\"\nimap = \"h:143\"\nsubmission = \"h:587\"\nmaildir = \"/m\"\ntls = \"implicit\"\n",
        )
        .unwrap();
        let parse = |args: &[&str]| {
            let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            let cmd =
                crate::account::apply(<Cli as clap::CommandFactory>::command(), &account, &argv);
            let m = cmd.try_get_matches_from(&argv).expect("parses");
            <Cli as clap::FromArgMatches>::from_arg_matches(&m).expect("fits")
        };
        let Cmd::Fetch(f) = parse(&["mua", "fetch"]).command else {
            panic!()
        };
        assert_eq!(f.imap.as_deref(), Some("h:143"));
        assert_eq!(f.conn.user, "andre@lyon.test");
        assert_eq!(f.conn.tls, super::TlsMode::Implicit);
        assert_eq!(f.store_into(), Some(std::path::Path::new("/m")));
        let Cmd::Fetch(f) = parse(&[
            "mua", "fetch", "--pop3", "p:110", "--tls", "starttls", "--last",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(
            (f.pop3.as_deref(), f.imap.as_deref()),
            (Some("p:110"), None)
        );
        assert_eq!(f.conn.tls, super::TlsMode::Starttls);
        assert_eq!(f.store_into(), None, "--last prints");
        let Cmd::Send(s) = parse(&["mua", "send", "--to", "x@y"]).command else {
            panic!()
        };
        assert_eq!(
            (s.server.as_str(), s.from.as_str()),
            ("h:587", "andre@lyon.test")
        );
        let Cmd::List(l) = parse(&["mua", "list"]).command else {
            panic!()
        };
        assert_eq!(l.maildir.as_deref(), Some(std::path::Path::new("/m")));
    }
}
