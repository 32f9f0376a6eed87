//! `facteur-<agent> config check|show`: validate the configuration, or print the
//! effective one (defaults filled in) as TOML, like `postconf -n` / `doveconf -n`.

use std::io::Write as _;

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{ConfigArgs, ConfigError};

/// What `config` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCmd {
    /// Load and validate the configuration (file, FACTEUR_<AGENT>__* variables,
    /// --set flags): print `config OK: <file>` and exit 0, or the error and exit 1.
    Check,
    /// Print the effective configuration, defaults filled in, as TOML
    /// (passwords and secrets are printed as "<redacted>").
    Show {
        /// Only the values that differ from the built-in defaults.
        #[arg(long)]
        changed: bool,
    },
}

/// Run `cmd` for the agent whose config is `T`; `validate` is the agent's own
/// startup checks that need no IO (e.g. "the MSA needs tls.cert").
pub fn command<T>(
    args: &ConfigArgs,
    env_prefix: &str,
    cmd: &ConfigCmd,
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Result<(), ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let config: T = args.load(env_prefix)?;
    let text = match cmd {
        ConfigCmd::Check => {
            validate(&config).map_err(|message| ConfigError::Invalid {
                origin: args.describe(),
                message,
            })?;
            format!("config OK: {}\n", args.describe())
        }
        ConfigCmd::Show { changed } => {
            let mut table = to_table(&config)?;
            if *changed {
                table = changed_only(&table, &to_table(&T::default())?);
            }
            redact(&mut table);
            let body = toml::to_string(&table).map_err(|e| ConfigError::Invalid {
                origin: args.describe(),
                message: format!("cannot print it as TOML: {e}"),
            })?;
            let what = if *changed {
                "values that differ from the built-in defaults"
            } else {
                "effective configuration, defaults filled in"
            };
            format!("# {what}; from {}\n{body}", args.describe())
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(ConfigError::Output)
}

fn to_table<T: Serialize>(config: &T) -> Result<Table, ConfigError> {
    match Value::try_from(config) {
        Ok(Value::Table(t)) => Ok(t),
        Ok(_) => Ok(Table::new()),
        Err(e) => Err(ConfigError::Invalid {
            origin: "configuration".into(),
            message: format!("cannot print it as TOML: {e}"),
        }),
    }
}

/// The entries of `config` that `defaults` does not have with the same value
/// (tables compared key by key, anything else whole).
fn changed_only(config: &Table, defaults: &Table) -> Table {
    let mut out = Table::new();
    for (key, value) in config {
        match (value, defaults.get(key)) {
            (Value::Table(sub), Some(Value::Table(sub_default))) => {
                let sub = changed_only(sub, sub_default);
                if !sub.is_empty() {
                    out.insert(key.clone(), Value::Table(sub));
                }
            }
            (v, Some(d)) if v == d => {}
            (v, _) => {
                out.insert(key.clone(), v.clone());
            }
        }
    }
    out
}

/// A key that names a secret: its value is never printed.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "password" || key.ends_with("_password") || key.contains("secret")
}

fn redact(table: &mut Table) {
    for (key, value) in table.iter_mut() {
        match value {
            Value::Table(sub) => redact(sub),
            v if is_secret(key) => *v = Value::String("<redacted>".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keeps_only_what_differs_and_secrets_are_redacted() {
        let config: Table = "a = 1\nb = 2\n[t]\nx = \"y\"\npassword = \"hunter2\"\n[u]\nk = 1\n"
            .parse()
            .unwrap();
        let defaults: Table = "a = 1\nb = 3\n[t]\nx = \"y\"\npassword = \"\"\n[u]\nk = 1\n"
            .parse()
            .unwrap();
        let mut changed = changed_only(&config, &defaults);
        redact(&mut changed);
        assert_eq!(
            toml::to_string(&changed).unwrap(),
            "b = 2\n\n[t]\npassword = \"<redacted>\"\n"
        );
    }
}
