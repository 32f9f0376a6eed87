//! Password checks against a file in Dovecot's passwd-file format, for an MSA or
//! MAA whose MDA is not facteur's: parsing, the password schemes, and reloading
//! the file when it changes.
//!
//! Format (Dovecot's "passwd-file" passdb): one user a line,
//! `user:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]`; `#` starts a comment
//! line; blank lines are skipped; only the first two fields matter here. The user
//! is matched with its domain part case-insensitive (`Pierre@PARIS.test` is
//! `Pierre@paris.test`; the local part is compared as written). Schemes:
//! `{ARGON2ID}`/`{ARGON2I}` (PHC strings), `{SHA512-CRYPT}`/`{SHA256-CRYPT}`
//! (`$6$`/`$5$`, what `doveadm pw` prints), `{PLAIN}`/`{CLEARTEXT}`; a hash
//! without `{SCHEME}` is `{CRYPT}` as in Dovecot, of which only the `$6$` and
//! `$5$` forms are supported. An empty password field lets nobody in. Any other
//! scheme makes the whole file invalid (never a silently locked-out user).
//!
//! The file is read at [`PasswdFile::open`] (an invalid one is an error then) and
//! again whenever its mtime or size changes; a reload that fails keeps the last
//! good table and logs why. Every check runs on the blocking pool, a few at a
//! time, and an unknown user costs the same work as a known one: its password is
//! checked against a real hash of the file and the result thrown away, so timing
//! does not tell which users exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Checked when the file has no user at all (same cost as the MDA's dummy).
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$yhMpncBQXUY4oDigEytIfg$syClDvkH8iNHVy42RS/Uhm+tnnewT16JoLEoqAWyFaY";

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("password check task failed")]
    Task,
}

/// A stored password, by scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// `{ARGON2ID}`/`{ARGON2I}`: a PHC string, checked to parse at load.
    Argon2(String),
    /// `{SHA512-CRYPT}` or a `$6$` crypt string.
    Sha512Crypt(String),
    /// `{SHA256-CRYPT}` or a `$5$` crypt string.
    Sha256Crypt(String),
    /// `{PLAIN}`/`{CLEARTEXT}`.
    Plain(String),
    /// An empty password field: no password is right.
    Disabled,
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, not even a hashed one.
        f.write_str(match self {
            Hash::Argon2(_) => "Argon2(..)",
            Hash::Sha512Crypt(_) => "Sha512Crypt(..)",
            Hash::Sha256Crypt(_) => "Sha256Crypt(..)",
            Hash::Plain(_) => "Plain(..)",
            Hash::Disabled => "Disabled",
        })
    }
}

impl Hash {
    /// Parse the password field (`{SCHEME}value` or a bare crypt string).
    pub fn parse(field: &str) -> Result<Hash, String> {
        if field.is_empty() {
            return Ok(Hash::Disabled);
        }
        let (scheme, value) = match field.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((scheme, value)) => (scheme.to_ascii_uppercase(), value),
            None => ("CRYPT".to_owned(), field),
        };
        match scheme.as_str() {
            "ARGON2ID" | "ARGON2I" => {
                let phc = PasswordHash::new(value)
                    .map_err(|e| format!("{{{scheme}}}: not a PHC string: {e}"))?;
                if !phc.algorithm.as_str().eq_ignore_ascii_case(&scheme) {
                    return Err(format!(
                        "{{{scheme}}} holds a {} hash",
                        phc.algorithm.as_str()
                    ));
                }
                Ok(Hash::Argon2(value.to_owned()))
            }
            "SHA512-CRYPT" if value.starts_with("$6$") => Ok(Hash::Sha512Crypt(value.to_owned())),
            "SHA256-CRYPT" if value.starts_with("$5$") => Ok(Hash::Sha256Crypt(value.to_owned())),
            "SHA512-CRYPT" | "SHA256-CRYPT" => Err(format!(
                "{{{scheme}}} must hold a ${}$ crypt string",
                if scheme.starts_with("SHA512") { 6 } else { 5 }
            )),
            "CRYPT" if value.starts_with("$6$") => Ok(Hash::Sha512Crypt(value.to_owned())),
            "CRYPT" if value.starts_with("$5$") => Ok(Hash::Sha256Crypt(value.to_owned())),
            "CRYPT" => Err(
                "unsupported crypt hash: only $6$ (SHA512-CRYPT) and $5$ (SHA256-CRYPT) are \
                 supported; re-hash with `doveadm pw -s SHA512-CRYPT` or ARGON2ID"
                    .to_owned(),
            ),
            "PLAIN" | "CLEARTEXT" => Ok(Hash::Plain(value.to_owned())),
            other => Err(format!(
                "unsupported scheme {{{other}}} (supported: ARGON2ID, ARGON2I, SHA512-CRYPT, \
                 SHA256-CRYPT, CRYPT with $6$/$5$, PLAIN, CLEARTEXT)"
            )),
        }
    }

    /// Is `password` the one this hash stands for? (CPU-heavy: call off the async workers.)
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            }),
            Hash::Sha512Crypt(h) => sha_crypt::sha512_check(password, h).is_ok(),
            Hash::Sha256Crypt(h) => sha_crypt::sha256_check(password, h).is_ok(),
            Hash::Plain(p) => bool::from(p.as_bytes().ct_eq(password.as_bytes())),
            Hash::Disabled => false,
        }
    }
}

/// One user of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user as written in the file (the canonical account name).
    pub user: String,
    pub hash: Hash,
}

/// The lookup key of a user: the domain part in lower case.
fn key(user: &str) -> String {
    match user.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => user.to_owned(),
    }
}

/// Parse a whole file; the first bad line makes it invalid (line number, reason).
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ':');
        let user = fields.next().unwrap_or_default();
        if user.is_empty() {
            return Err((i + 1, "empty user name".into()));
        }
        let hash = Hash::parse(fields.next().unwrap_or_default()).map_err(|r| (i + 1, r))?;
        out.push(Entry {
            user: user.to_owned(),
            hash,
        });
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Table {
    /// mtime and size of the file as last read.
    stamp: Option<(SystemTime, u64)>,
    users: HashMap<String, Entry>,
    /// What an unknown user's password is checked against.
    dummy: Option<Hash>,
}

impl Table {
    fn load(path: &Path) -> Result<Table, PasswdError> {
        let io = |source| PasswdError::Io {
            path: path.to_owned(),
            source,
        };
        let stamp = stamp(path).map_err(io)?;
        let text = std::fs::read_to_string(path).map_err(io)?;
        let entries = parse(&text).map_err(|(line, reason)| PasswdError::Invalid {
            path: path.to_owned(),
            line,
            reason,
        })?;
        let dummy = entries
            .iter()
            .map(|e| e.hash.clone())
            .find(|h| *h != Hash::Disabled);
        let mut users = HashMap::with_capacity(entries.len());
        for e in entries {
            // Dovecot takes the first line of a user.
            users.entry(key(&e.user)).or_insert(e);
        }
        Ok(Table {
            stamp: Some(stamp),
            users,
            dummy,
        })
    }
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

struct Inner {
    path: PathBuf,
    table: Mutex<Arc<Table>>,
    /// Checks running at once (argon2 takes tens of MiB each).
    permits: Semaphore,
}

/// A passwd-file, shared by every session. Cheap to clone.
#[derive(Clone)]
pub struct PasswdFile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PasswdFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswdFile")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl PasswdFile {
    /// Read the file (at startup). A missing or invalid file is an error.
    pub async fn open(path: &Path) -> Result<PasswdFile, PasswdError> {
        let owned = path.to_owned();
        let table = tokio::task::spawn_blocking(move || Table::load(&owned))
            .await
            .map_err(|_| PasswdError::Task)??;
        tracing::info!(path = %path.display(), users = table.users.len(), "passwd-file loaded");
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(PasswdFile {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                table: Mutex::new(Arc::new(table)),
                permits: Semaphore::new(workers),
            }),
        })
    }

    /// The table, re-read first if the file changed (blocking).
    fn current(&self) -> Arc<Table> {
        let inner = &self.inner;
        let mut table = inner.table.lock().unwrap_or_else(PoisonError::into_inner);
        match stamp(&inner.path) {
            Ok(now) if Some(now) != table.stamp => match Table::load(&inner.path) {
                Ok(fresh) => {
                    tracing::info!(path = %inner.path.display(), users = fresh.users.len(), "passwd-file reloaded");
                    *table = Arc::new(fresh);
                }
                Err(e) => {
                    tracing::error!(error = %e, "passwd-file not reloaded, keeping the last good one");
                    // Do not retry on every login until the file changes again.
                    let kept = Table {
                        stamp: Some(now),
                        users: table.users.clone(),
                        dummy: table.dummy.clone(),
                    };
                    *table = Arc::new(kept);
                }
            },
            Ok(_) => {}
            Err(e) => {
                tracing::error!(path = %inner.path.display(), error = %e, "passwd-file unreadable, keeping the last good one");
            }
        }
        Arc::clone(&table)
    }

    /// Check `password` for `user`: `Some(account name as in the file)` when right
    /// (counted in `facteur_auth_total`).
    pub async fn verify(&self, user: &str, password: &str) -> Result<Option<String>, PasswdError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| PasswdError::Task)?;
        let (this, user, password) = (self.clone(), user.to_owned(), password.to_owned());
        let verdict = tokio::task::spawn_blocking(move || {
            let table = this.current();
            match table.users.get(&key(&user)) {
                Some(entry) => entry.hash.verify(&password).then(|| entry.user.clone()),
                None => {
                    // The same work as for a real user; the answer is no whatever it says.
                    let dummy = table
                        .dummy
                        .clone()
                        .unwrap_or_else(|| Hash::Argon2(DUMMY_PHC.to_owned()));
                    let _ = dummy.verify(&password);
                    None
                }
            }
        })
        .await
        .map_err(|_| PasswdError::Task)?;
        crate::metrics::auth(verdict.is_some());
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests;
