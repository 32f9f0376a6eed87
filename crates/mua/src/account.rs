//! Accounts in `~/.config/facteur/mua.toml`: each account's servers, user,
//! sender and local Maildir, so that `facteur-mua -a andre fetch` needs no other
//! flag. An account only supplies defaults: a flag on the command line wins.
//!
//! ```toml
//! default = "andre"
//!
//! [accounts.andre]
//! user = "andre@lyon.test"
//! from = "André <andre@lyon.test>"
//! submission = "127.0.0.3:5870"   # send
//! pop3 = "127.0.0.3:1100"         # fetch (IMAP is preferred when both are set)
//! imap = "127.0.0.3:1430"
//! tls = "starttls"                # starttls | implicit | none
//! ca = "/path/to/ca.pem"
//! maildir = "~/Mail/andre"        # fetch stores here; list and read read it
//! ```
//!
//! No password is kept in the file: it comes from `FACTEUR_PASSWORD` or a
//! hidden prompt, as without an account.
//!
//! The defaults are given to clap before it parses (`Arg::default_value`), so
//! `--help` shows them and every command keeps plain, complete arguments.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The file: the accounts by name and the one used without `--account`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub default: Option<String>,
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
}

/// One account; every field is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub user: Option<String>,
    pub from: Option<String>,
    pub submission: Option<String>,
    pub pop3: Option<String>,
    pub imap: Option<String>,
    pub tls: Option<String>,
    pub ca: Option<PathBuf>,
    pub server_name: Option<String>,
    pub maildir: Option<PathBuf>,
}

/// Where the file is: `--config`/`FACTEUR_MUA_CONFIG`, else
/// `$XDG_CONFIG_HOME/facteur/mua.toml`, else `~/.config/facteur/mua.toml`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("facteur").join("mua.toml"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".config/facteur/mua.toml"))
}

/// `~/` at the start of a path is the home directory.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

impl File {
    /// Read the file; a missing file is an empty one unless it was named.
    pub fn load(path: &Path, named: bool) -> anyhow::Result<File> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
                return Ok(File::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: File =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        for (name, a) in &file.accounts {
            if let Some(tls) = &a.tls
                && !matches!(tls.as_str(), "starttls" | "implicit" | "none")
            {
                bail!(
                    "{}: account {name}: tls = {tls:?}, expected starttls, implicit or none",
                    path.display()
                );
            }
        }
        Ok(file)
    }

    /// The account asked for, else the default one, else none.
    pub fn pick(&self, name: Option<&str>, path: &Path) -> anyhow::Result<Option<&Account>> {
        let Some(name) = name.or(self.default.as_deref()) else {
            return Ok(None);
        };
        match self.accounts.get(name) {
            Some(a) => Ok(Some(a)),
            None => bail!(
                "no account {name:?} in {} (it has: {})",
                path.display(),
                self.accounts.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The value of `--long VALUE` / `--long=VALUE` (or `-s VALUE`) in `argv`,
/// before clap parses it: the account must be known to set clap's defaults.
fn scan(argv: &[OsString], long: &str, short: Option<&str>) -> Option<String> {
    let mut it = argv.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        if arg == format!("--{long}") || short.is_some_and(|s| arg == s) {
            return it.next().map(str::to_owned);
        }
        if let Some(v) = arg.strip_prefix(&format!("--{long}=")) {
            return Some(v.to_owned());
        }
    }
    None
}

fn given(argv: &[OsString], long: &str) -> bool {
    argv.iter()
        .filter_map(|a| a.to_str())
        .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
}

/// The account named on the command line (or by `FACTEUR_ACCOUNT`, or the
/// file's default), with the path of the file it came from.
pub fn from_args(argv: &[OsString]) -> anyhow::Result<Option<(Account, PathBuf)>> {
    let named_file = scan(argv, "config", None).or_else(|| {
        std::env::var("FACTEUR_MUA_CONFIG")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let name = scan(argv, "account", Some("-a")).or_else(|| {
        std::env::var("FACTEUR_ACCOUNT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let path = match named_file.as_ref().map(PathBuf::from).or_else(default_path) {
        Some(p) => p,
        None if name.is_some() => bail!("no HOME: pass --config FILE"),
        None => return Ok(None),
    };
    let file = File::load(&path, named_file.is_some() || name.is_some())?;
    Ok(file
        .pick(name.as_deref(), &path)?
        .cloned()
        .map(|a| (a, path)))
}

/// The command line's clap command with the account's values as defaults.
pub fn apply(mut cmd: clap::Command, account: &Account, argv: &[OsString]) -> clap::Command {
    let conn = |mut c: clap::Command, a: &Account| {
        for (arg, value) in [
            ("user", a.user.clone()),
            ("tls", a.tls.clone()),
            (
                "ca",
                a.ca.as_deref()
                    .map(|p| expand_home(p).display().to_string()),
            ),
            ("server_name", a.server_name.clone()),
        ] {
            if let Some(v) = value {
                c = c.mut_arg(arg, |x| x.default_value(v).required(false));
            }
        }
        c
    };
    let maildir = account
        .maildir
        .as_deref()
        .map(|p| expand_home(p).display().to_string());
    cmd = cmd.mut_subcommand("send", |mut c| {
        c = conn(c, account);
        for (arg, value) in [
            ("server", account.submission.clone()),
            ("from", account.from.clone().or(account.user.clone())),
        ] {
            if let Some(v) = value {
                c = c.mut_arg(arg, |x| x.default_value(v).required(false));
            }
        }
        c
    });
    cmd = cmd.mut_subcommand("fetch", |mut c| {
        c = conn(c, account);
        // One protocol only: the account's is a default only when the command
        // line names neither.
        if !given(argv, "pop3") && !given(argv, "imap") {
            let server = match (&account.imap, &account.pop3) {
                (Some(s), _) => Some(("imap", s.clone())),
                (None, Some(s)) => Some(("pop3", s.clone())),
                (None, None) => None,
            };
            if let Some((arg, v)) = server {
                c = c
                    .mut_arg(arg, |x| x.default_value(v))
                    .mut_group("protocol", |g| g.required(false));
            }
        }
        if let Some(dir) = &maildir {
            c = c.mut_arg("maildir", |x| x.default_value(dir.clone()));
        }
        c
    });
    for sub in ["list", "read"] {
        if let Some(dir) = &maildir {
            cmd = cmd.mut_subcommand(sub, |c| {
                c.mut_arg("maildir", |x| x.default_value(dir.clone()).required(false))
            });
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_account_is_found_before_clap_parses() {
        let a = argv(&["mua", "-a", "andre", "fetch", "--pop3", "h:1"]);
        assert_eq!(scan(&a, "account", Some("-a")).as_deref(), Some("andre"));
        let a = argv(&["mua", "fetch", "--account=jacques"]);
        assert_eq!(scan(&a, "account", Some("-a")).as_deref(), Some("jacques"));
        assert!(given(&argv(&["mua", "fetch", "--pop3=h:1"]), "pop3"));
        assert!(!given(&argv(&["mua", "fetch"]), "pop3"));
    }

    #[test]
    fn files_are_checked() {
        let ok: File =
            toml::from_str("default = \"a\"\n[accounts.a]\nuser = \"a@b.test\"\nimap = \"h:1\"\n")
                .unwrap();
        assert_eq!(
            ok.pick(None, Path::new("f"))
                .unwrap()
                .and_then(|a| a.user.clone())
                .as_deref(),
            Some("a@b.test")
        );
        assert!(ok.pick(Some("zz"), Path::new("f")).is_err());
        assert!(toml::from_str::<File>("[accounts.a]\npassword = \"x\"\n").is_err());
    }
}
