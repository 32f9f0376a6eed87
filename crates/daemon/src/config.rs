//! Configuration: a TOML file, then environment variables, then `--set` flags (flags win).
//!
//! Every agent has a `serde` struct with defaults; this module only layers the
//! sources into one TOML table and deserializes it, so every agent reads its
//! config the same way:
//! - file: `--config facteur-msa.toml`
//! - environment: `FACTEUR_MSA__SMTP__LISTEN=127.0.0.1:5870` (`__` separates levels)
//! - flags: `--set smtp.listen=127.0.0.1:5870` (repeatable)
//!
//! A value is read as a TOML value when it parses as one (`42`, `true`,
//! `["a", "b"]`), and as a string otherwise.
//!
//! A key no config struct knows is an error naming the file, variable or flag
//! that set it (see [`keys`]); [`command`] is the `config check|show` subcommand.

mod command;
mod keys;

pub use keys::UnknownKey;

pub use command::{ConfigCmd, command};

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The flags every agent takes for its configuration.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (none: the built-in defaults).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. `--set smtp.listen=127.0.0.1:2525` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub sets: Vec<String>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Unknown(Vec<keys::UnknownKey>),
    #[error("writing to standard output: {0}")]
    Output(std::io::Error),
}

impl ConfigArgs {
    /// Layer file, environment (variables named `{env_prefix}__...`) and flags into `T`;
    /// a key `T` does not know is an error naming where it was set.
    pub fn load<T: DeserializeOwned + Serialize>(
        &self,
        env_prefix: &str,
    ) -> Result<T, ConfigError> {
        self.load_from(env_prefix, std::env::vars())
    }

    /// [`Self::load`] with the environment given.
    fn load_from<T: DeserializeOwned + Serialize>(
        &self,
        env_prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<T, ConfigError> {
        let (table, origins) = self.layer(env_prefix, vars)?;
        let config: T = serde_path_to_error::deserialize(Value::Table(table.clone()))
            .map_err(|e| bad_value(&e, &origins))?;
        keys::check_known(&table, &config, &origins)?;
        Ok(config)
    }

    /// Layer the sources and read only the keys `T` names, ignoring the rest:
    /// for a command that needs one setting of an agent's config (`health`
    /// reads `metrics_listen`); the agent itself checks every key when it starts.
    pub fn load_some<T: DeserializeOwned>(&self, env_prefix: &str) -> Result<T, ConfigError> {
        let (table, origins) = self.layer(env_prefix, std::env::vars())?;
        serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| bad_value(&e, &origins))
    }

    /// Where the configuration comes from, for messages: the file, or the defaults.
    pub fn describe(&self) -> String {
        self.config.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        )
    }

    /// Log, when no `--config` was given, that the agent runs on its built-in
    /// defaults and which addresses that makes it listen on.
    pub fn announce_defaults(&self, agent: &str, listens: &[(&str, &str)]) {
        if self.config.is_some() {
            return;
        }
        let listens: Vec<String> = listens
            .iter()
            .map(|(k, v)| format!("{k}={}", if v.is_empty() { "off" } else { v }))
            .collect();
        let overrides = if self.sets.is_empty() {
            String::new()
        } else {
            format!(" (with {} --set)", self.sets.len())
        };
        tracing::info!(
            "{agent}: no --config given, using the built-in defaults{overrides}: {}",
            listens.join(" ")
        );
    }

    /// The layered table, and which environment variable or flag set which key
    /// (a key in neither came from the file).
    fn layer(
        &self,
        env_prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Table, keys::Origins), ConfigError> {
        let mut origins = keys::Origins::new(self.config.clone());
        let mut table = match &self.config {
            Some(path) => read_file(path)?,
            None => Table::new(),
        };
        let prefix = format!("{env_prefix}__");
        let mut env: Vec<(String, String)> = vars
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_owned(), v)))
            .collect();
        env.sort();
        for (key, value) in env {
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            let origin = format!("{prefix}{key}");
            set_path(&mut table, &path, &value, &origin)?;
            origins.set(path, origin);
        }
        for set in &self.sets {
            let (key, value) = set.split_once('=').ok_or_else(|| ConfigError::Invalid {
                origin: format!("--set {set}"),
                message: "expected KEY=VALUE".into(),
            })?;
            let path = split_key(key.trim());
            set_path(&mut table, &path, value, &format!("--set {key}"))?;
            origins.set(path, format!("--set {set}"));
        }
        Ok((table, origins))
    }
}

/// A value of the wrong type, named by its key and by who set it.
fn bad_value(
    e: &serde_path_to_error::Error<toml::de::Error>,
    origins: &keys::Origins,
) -> ConfigError {
    let path: Vec<String> = e
        .path()
        .iter()
        .map_while(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    let origin = if path.is_empty() {
        origins.of(&path)
    } else {
        format!("{} ({})", keys::dotted(&path), origins.of(&path))
    };
    ConfigError::Invalid {
        origin,
        message: e.inner().message().to_owned(),
    }
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| ConfigError::Invalid {
        origin: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A dotted key as TOML writes it: `transport."lyon.test"` is two parts, the
/// quotes keeping the dot of the domain inside the second.
fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// A string as a TOML value when it parses as one, else as a plain string.
fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn set_path(
    table: &mut Table,
    path: &[String],
    raw: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        origin: origin.to_owned(),
        message: message.to_owned(),
    };
    let Some((last, parents)) = path.split_last() else {
        return Err(invalid("empty key"));
    };
    let mut cur = table;
    for part in parents {
        let entry = cur
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| invalid(&format!("`{part}` is not a table")))?;
    }
    cur.insert(last.clone(), parse_value(raw));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Serialize, Debug, Default)]
    #[serde(default)]
    struct Limits {
        max_connections: u64,
    }
    #[derive(Deserialize, Serialize, Debug, Default)]
    #[serde(default)]
    struct Tls {
        cert: String,
    }
    #[derive(Deserialize, Serialize, Debug, Default)]
    #[serde(default)]
    struct Smtp {
        listen: String,
        max: u64,
        tls: Tls,
        #[serde(flatten)]
        limits: Limits,
    }
    #[derive(Deserialize, Serialize, Debug, Default)]
    #[serde(default)]
    struct Conf {
        hostname: String,
        smtp: Smtp,
        transport: std::collections::BTreeMap<String, String>,
    }

    fn unknown(args: &ConfigArgs, env: &[(&str, &str)]) -> Vec<UnknownKey> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        match args.load_from::<Conf>("FACTEUR_T", env) {
            Err(ConfigError::Unknown(keys)) => keys,
            other => panic!("expected unknown keys, got {other:?}"),
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn an_unknown_key_in_the_file_names_the_file_and_its_siblings() {
        let (_dir, path) = file("hostname = \"a\"\n[smtp]\nlistn = \"1.2.3.4:25\"\n");
        let args = ConfigArgs {
            config: Some(path.clone()),
            sets: Vec::new(),
        };
        let keys = unknown(&args, &[]);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].key, "smtp.listn");
        assert_eq!(keys[0].origin, format!("in {}", path.display()));
        let text = ConfigError::Unknown(keys).to_string();
        assert!(
            text.contains("known keys in [smtp]: listen, max, max_connections, tls"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_next_to_a_flattened_struct_is_caught() {
        // serde's deny_unknown_fields and serde_ignored both miss this one.
        let (_dir, path) = file("[smtp]\nmax_connections = 3\nmax_conections = 4\n");
        let args = ConfigArgs {
            config: Some(path),
            sets: Vec::new(),
        };
        let keys = unknown(&args, &[]);
        assert_eq!(
            keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            ["smtp.max_conections"]
        );
    }

    #[test]
    fn an_unknown_env_variable_is_named() {
        let args = ConfigArgs::default();
        let keys = unknown(
            &args,
            &[
                ("FACTEUR_T__SMTP__LISTEN", "127.0.0.1:25"),
                ("FACTEUR_T__SMTP__TLS__CERTT", "/c.pem"),
            ],
        );
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].key, "smtp.tls.certt");
        assert_eq!(keys[0].origin, "from FACTEUR_T__SMTP__TLS__CERTT");
        assert_eq!(keys[0].known, ["cert"]);
    }

    #[test]
    fn an_unknown_flag_wins_over_the_file_that_set_the_same_key() {
        let (_dir, path) = file("[bogus]\na = 1\n");
        let args = ConfigArgs {
            config: Some(path),
            sets: vec![
                "smtp.listn=x".into(),
                "bogus.b=2".into(),
                "transport.\"a.test\"=mx:".into(),
            ],
        };
        let keys = unknown(&args, &[]);
        let got: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (k.key.as_str(), k.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bogus", "from --set bogus.b=2"),
                ("smtp.listn", "from --set smtp.listn=x")
            ]
        );
        let text = ConfigError::Unknown(keys).to_string();
        assert!(
            text.contains(
                "unknown key smtp.listn (from --set smtp.listn=x); known keys in [smtp]:"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_table_given_inline_by_a_flag_is_checked_inside() {
        let args = ConfigArgs {
            config: None,
            sets: vec!["smtp={ listen = \"a\", lisen = \"b\" }".into()],
        };
        let keys = unknown(&args, &[]);
        assert_eq!(keys[0].key, "smtp.lisen");
        assert_eq!(
            keys[0].origin,
            "from --set smtp={ listen = \"a\", lisen = \"b\" }"
        );
    }

    #[test]
    fn flags_win_over_file_and_values_keep_their_type() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "hostname = \"a\"\n[smtp]\nlisten = \"1.2.3.4:25\"\nmax = 5\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file),
            sets: vec!["smtp.max=7".into(), "hostname=mail.example".into()],
        };
        let c: Conf = args.load("FACTEUR_TEST_NOPE").unwrap();
        assert_eq!(c.hostname, "mail.example");
        assert_eq!(c.smtp.listen, "1.2.3.4:25");
        assert_eq!(c.smtp.max, 7);
    }

    #[test]
    fn a_quoted_key_part_keeps_its_dots() {
        assert_eq!(split_key("smtp.max"), ["smtp", "max"]);
        assert_eq!(
            split_key("transport.\"lyon.test\""),
            ["transport", "lyon.test"]
        );
        assert_eq!(split_key("transport.\"*\""), ["transport", "*"]);
    }

    #[test]
    fn a_bad_type_names_its_origin() {
        let args = ConfigArgs {
            config: None,
            sets: vec!["smtp.max=notanumber".into()],
        };
        let err = args.load::<Conf>("FACTEUR_TEST_NOPE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "smtp.max (from --set smtp.max=notanumber): invalid type: string \"notanumber\", expected u64"
        );
        // Inside a flattened struct serde loses the last part of the path: the
        // table is still named, and the file.
        let (_dir, path) = file("[smtp]\nmax_connections = \"x\"\n");
        let args = ConfigArgs {
            config: Some(path.clone()),
            sets: Vec::new(),
        };
        let err = args.load::<Conf>("FACTEUR_TEST_NOPE").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("smtp (in {}): invalid type", path.display())),
            "{err}"
        );
    }
}
