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

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The flags every agent takes for its configuration.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
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
}

impl ConfigArgs {
    /// Layer file, environment (variables named `{env_prefix}__...`) and flags into `T`.
    pub fn load<T: DeserializeOwned>(&self, env_prefix: &str) -> Result<T, ConfigError> {
        let mut table = match &self.config {
            Some(path) => read_file(path)?,
            None => Table::new(),
        };
        let prefix = format!("{env_prefix}__");
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_owned(), v)))
            .collect();
        env.sort();
        for (key, value) in env {
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut table, &path, &value, &format!("{prefix}{key}"))?;
        }
        for set in &self.sets {
            let (key, value) = set.split_once('=').ok_or_else(|| ConfigError::Invalid {
                origin: format!("--set {set}"),
                message: "expected KEY=VALUE".into(),
            })?;
            let path = split_key(key.trim());
            set_path(&mut table, &path, value, &format!("--set {key}"))?;
        }
        T::deserialize(Value::Table(table)).map_err(|e| ConfigError::Invalid {
            origin: self
                .config
                .as_ref()
                .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string()),
            message: e.to_string(),
        })
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

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Smtp {
        listen: String,
        max: u64,
    }
    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Conf {
        hostname: String,
        smtp: Smtp,
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
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
