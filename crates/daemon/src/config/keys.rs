//! Unknown keys: which keys of the layered table no config struct took, and which
//! file, environment variable or `--set` flag set each of them.
//!
//! Neither `#[serde(deny_unknown_fields)]` nor `serde_ignored` sees a stray key
//! next to a `#[serde(flatten)]` field (`ConnLimits` is flattened in several
//! tables): serde buffers such keys for the flattened struct, which drops what it
//! does not know without telling anyone. So the loaded config is serialized back
//! and every key of the input that is not in that output is unknown. This holds
//! for maps too (`[transport]`: every key given is a key kept), and the keys of the
//! output at the same level are the known siblings the error lists.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use toml::{Table, Value};

use super::ConfigError;

/// Who set which key: the environment variables and flags, in the order applied;
/// everything else came from the file (when there is one).
#[derive(Debug)]
pub(super) struct Origins {
    file: Option<PathBuf>,
    set: Vec<(Vec<String>, String)>,
}

impl Origins {
    pub(super) fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            set: Vec::new(),
        }
    }

    pub(super) fn set(&mut self, path: Vec<String>, origin: String) {
        self.set.push((path, origin));
    }

    /// The last layer that set `path`, a table above it (`--set smtp={listn=1}`)
    /// or a key below it (`--set bogus.a=1` makes the unknown table `bogus`).
    pub(super) fn of(&self, path: &[String]) -> String {
        self.set
            .iter()
            .rev()
            .find(|(p, _)| p.starts_with(path) || path.starts_with(p))
            .map(|(_, origin)| format!("from {origin}"))
            .or_else(|| self.file.as_ref().map(|f| format!("in {}", f.display())))
            .unwrap_or_else(|| "from the configuration".to_owned())
    }
}

/// A key no config struct knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Dotted, as TOML writes it: `smtp.listn`, `transport."a.test".x`.
    pub key: String,
    /// `in FILE`, `from FACTEUR_MTA__SMTP__LISTN` or `from --set smtp.listn=…`.
    pub origin: String,
    /// The keys the same table does know (empty at the top level of a map).
    pub known: Vec<String>,
    /// The table holding it, dotted ("" at the top).
    pub table: String,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown key {} ({})", self.key, self.origin)?;
        if !self.known.is_empty() {
            let table = if self.table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", self.table)
            };
            write!(f, "; known keys {table}: {}", self.known.join(", "))?;
        }
        Ok(())
    }
}

/// Every key of `input` that `config` (deserialized from it) does not carry.
pub(super) fn check_known<T: Serialize>(
    input: &Table,
    config: &T,
    origins: &Origins,
) -> Result<(), ConfigError> {
    let output = Value::try_from(config).map_err(|e| ConfigError::Invalid {
        origin: "configuration".into(),
        message: format!("cannot check its keys: {e}"),
    })?;
    let Value::Table(output) = output else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    walk(input, &output, &mut Vec::new(), origins, &mut unknown);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Unknown(unknown))
    }
}

fn walk(
    input: &Table,
    output: &Table,
    path: &mut Vec<String>,
    origins: &Origins,
    unknown: &mut Vec<UnknownKey>,
) {
    for (key, value) in input {
        path.push(key.clone());
        match (value, output.get(key)) {
            (Value::Table(sub_in), Some(Value::Table(sub_out))) => {
                walk(sub_in, sub_out, path, origins, unknown);
            }
            (_, Some(_)) => {}
            (_, None) => unknown.push(UnknownKey {
                key: dotted(path),
                origin: origins.of(path),
                known: output.keys().cloned().collect(),
                table: dotted(&path[..path.len() - 1]),
            }),
        }
        path.pop();
    }
}

/// A key path as TOML writes it, quoting the parts that are not bare keys.
pub(super) fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            let bare = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if bare { p.clone() } else { format!("{p:?}") }
        })
        .collect::<Vec<_>>()
        .join(".")
}
