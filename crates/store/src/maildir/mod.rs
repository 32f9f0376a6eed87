//! Maildir++ trees that Dovecot can serve (`mail_location =
//! maildir:<root>/%d/%n`): each user's mail under `<root>/<domain>/<localpart>/`,
//! INBOX in that directory's `cur/ new/ tmp/`, folder `a/b` in `.a.b/`
//! ([`folders`]). Blocking `std::fs` code: call it from `spawn_blocking` or a
//! writer thread.
//!
//! A message is written the classic safe way: a unique name ([`name`]) in
//! `tmp/`, the bytes written and fsynced, the internal date set as the file's
//! mtime, then renamed into `new/` (a fresh delivery) or `cur/` with its
//! `:2,<flags>` info (an export), and the directory fsynced: once
//! [`MaildirTree::write_message`] returns, the message survives a power cut.
//! Keywords are letters `a`..`z` through each folder's `dovecot-keywords`
//! ([`keywords`]). Files another server saved with LF line ends are read
//! back with CRLF ([`lines`]).

pub mod folders;
pub mod keywords;
pub mod lines;
pub mod name;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use keywords::Keywords;

use crate::durable;
use crate::mail::{INBOX, StoreError, normalize_user};

fn io_err(e: io::Error) -> StoreError {
    StoreError::io(&e)
}

/// One message file found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirMessage {
    pub path: PathBuf,
    /// The name without its info part: stable while flags change.
    pub base: String,
    /// Flags and keywords from the info part (none for `new/`).
    pub flags: Vec<String>,
    /// The file's mtime, unix seconds.
    pub internal_date: i64,
    /// The file's length.
    pub size: u64,
}

/// A message file to write with [`MaildirTree::write_message`].
#[derive(Debug, Clone, Copy)]
pub struct NewFile<'a> {
    /// Its unique base name ([`MaildirTree::new_name`]).
    pub base: &'a str,
    /// Its exact length.
    pub size: u64,
    /// The mtime to give it (unix seconds); `None`: now.
    pub internal_date: Option<i64>,
    /// `None`: a new message, into `new/`; `Some`: into `cur/` with these
    /// `:2,` info letters.
    pub letters: Option<&'a str>,
}

/// A Maildir++ tree of many users.
#[derive(Debug)]
pub struct MaildirTree {
    root: PathBuf,
    host: String,
    seq: AtomicU64,
    min_free_bytes: u64,
}

/// A path component from an address part: no separators, not `.` or `..`.
fn component<'a>(part: &'a str, user: &str) -> Result<&'a str, StoreError> {
    if part.is_empty() || part.starts_with('.') || part.contains(['/', '\\', '\0']) {
        return Err(StoreError::InvalidUser(user.to_owned()));
    }
    Ok(part)
}

fn mtime_of(secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

fn secs_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl MaildirTree {
    /// The tree at `root`; `host` goes into the unique names (the MDA's hostname).
    pub fn new(root: impl Into<PathBuf>, host: &str) -> Self {
        Self {
            root: root.into(),
            host: host.to_owned(),
            seq: AtomicU64::new(0),
            min_free_bytes: 0,
        }
    }

    /// New messages are refused ([`StoreError::Full`]) when fewer bytes than
    /// this are free on the tree's disk (0: no reserve).
    pub fn with_reserve(mut self, min_free_bytes: u64) -> Self {
        self.min_free_bytes = min_free_bytes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<domain>/<localpart>` of a user (lowercased address).
    pub fn user_dir(&self, user: &str) -> Result<PathBuf, StoreError> {
        let user = normalize_user(user)?;
        let (local, domain) = user
            .rsplit_once('@')
            .ok_or_else(|| StoreError::InvalidUser(user.clone()))?;
        Ok(self
            .root
            .join(component(domain, &user)?)
            .join(component(local, &user)?))
    }

    /// The directory of a user's folder (the user's directory for INBOX).
    pub fn folder_dir(&self, user: &str, folder: &str) -> Result<PathBuf, StoreError> {
        let dir = self.user_dir(user)?;
        let name = folders::dir_name(folder)?;
        Ok(if name.is_empty() { dir } else { dir.join(name) })
    }

    /// Creates the folder (its `cur/ new/ tmp/`, and `maildirfolder` for
    /// one that is not INBOX) if missing, durably; returns its directory.
    pub fn ensure_folder(&self, user: &str, folder: &str) -> Result<PathBuf, StoreError> {
        let dir = self.folder_dir(user, folder)?;
        if ["cur", "new", "tmp"].iter().all(|d| dir.join(d).is_dir()) {
            return Ok(dir);
        }
        let inbox = folders::dir_name(folder)?.is_empty();
        if !inbox {
            // Dovecot expects INBOX (the user's directory) to be a Maildir too.
            self.ensure_folder(user, INBOX)?;
        }
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).map_err(io_err)?;
        }
        if !inbox {
            File::create(dir.join(folders::MAILDIRFOLDER))
                .and_then(|f| f.sync_all())
                .map_err(io_err)?;
        }
        // Every directory entry created on the way, from the folder up to the root.
        let mut at = Some(dir.as_path());
        while let Some(d) = at {
            durable::sync_dir(d).map_err(io_err)?;
            if d == self.root {
                break;
            }
            at = d.parent();
        }
        Ok(dir)
    }

    /// A fresh unique base name for a message of `size` bytes.
    pub fn new_name(&self, size: u64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        name::unique(
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            seq,
            &self.host,
            size,
        )
    }

    /// Writes one message ([`NewFile`]) into a folder (created if missing):
    /// `write` fills the file in `tmp/`, which is then fsynced, given its
    /// internal date as mtime and renamed into `new/` or `cur/` (with
    /// `:2,<letters>`); the directory is fsynced. Returns the
    /// file's name. A `write` that writes another number of bytes than `size`
    /// fails, leaving nothing behind.
    pub fn write_message(
        &self,
        user: &str,
        folder: &str,
        file: NewFile<'_>,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<String, StoreError> {
        let NewFile {
            base,
            size,
            internal_date,
            letters,
        } = file;
        let dir = self.ensure_folder(user, folder)?;
        durable::check_reserve(&dir, self.min_free_bytes).map_err(io_err)?;
        let tmp = dir.join("tmp").join(base);
        let (sub, file_name) = match letters {
            None => ("new", base.to_owned()),
            Some(l) => ("cur", format!("{base}:2,{l}")),
        };
        let result = (|| {
            let mut f = File::options().write(true).create_new(true).open(&tmp)?;
            write(&mut f)?;
            let written = f.metadata()?.len();
            if written != size {
                return Err(io::Error::other(format!(
                    "wrote {written} bytes of a {size}-byte message"
                )));
            }
            if let Some(d) = internal_date {
                f.set_modified(mtime_of(d))?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(sub).join(&file_name))?;
            durable::sync_dir(&dir.join(sub))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        Ok(file_name)
    }

    /// A fresh delivery of `bytes` into the folder's `new/`.
    pub fn deliver(&self, user: &str, folder: &str, bytes: &[u8]) -> Result<String, StoreError> {
        use std::io::Write;
        let size = bytes.len() as u64;
        let base = self.new_name(size);
        let file = NewFile {
            base: &base,
            size,
            internal_date: None,
            letters: None,
        };
        self.write_message(user, folder, file, |f| f.write_all(bytes))
    }

    /// True when the folder holds a file of this base name in `new/` or `cur/`
    /// (whatever its flags are now).
    pub fn contains(&self, user: &str, folder: &str, base: &str) -> Result<bool, StoreError> {
        let dir = self.folder_dir(user, folder)?;
        if dir.join("new").join(base).exists() {
            return Ok(true);
        }
        let cur = match std::fs::read_dir(dir.join("cur")) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        for entry in cur {
            let entry = entry.map_err(io_err)?;
            if entry.file_name().to_str().map(|n| name::parse(n).base) == Some(base) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The folder's keyword table.
    pub fn keywords(&self, user: &str, folder: &str) -> Result<Keywords, StoreError> {
        Keywords::load(&self.folder_dir(user, folder)?).map_err(io_err)
    }

    /// Replaces the folder's keyword table, durably (written aside, renamed).
    pub fn save_keywords(&self, user: &str, folder: &str, k: &Keywords) -> Result<(), StoreError> {
        let dir = self.ensure_folder(user, folder)?;
        durable::write_file(&dir, keywords::FILE, k.render().as_bytes()).map_err(io_err)?;
        durable::sync_dir(&dir).map_err(io_err)
    }

    /// Every user of the tree: `<domain>/<localpart>` directories holding a Maildir.
    pub fn users(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for domain in sorted_entries(&self.root)? {
            let ddir = self.root.join(&domain);
            if domain.starts_with('.') || !ddir.is_dir() {
                continue;
            }
            for local in sorted_entries(&ddir)? {
                if !local.starts_with('.') && ddir.join(&local).join("cur").is_dir() {
                    out.push(format!("{local}@{domain}").to_lowercase());
                }
            }
        }
        Ok(out)
    }

    /// The user's folders: INBOX first, then every `.Name` Maildir, sorted.
    pub fn folders(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.user_dir(user)?;
        let mut out = Vec::new();
        for entry in sorted_entries(&dir)? {
            if let Some(f) = folders::folder_of_dir(&entry)
                && f != INBOX
                && dir.join(&entry).join("cur").is_dir()
            {
                out.push(f);
            }
        }
        out.sort();
        out.insert(0, INBOX.to_owned());
        Ok(out)
    }

    /// The messages of a folder (`new/` then `cur/`), in delivery order
    /// (the seconds their names start with, then the names).
    pub fn messages(&self, user: &str, folder: &str) -> Result<Vec<MaildirMessage>, StoreError> {
        let dir = self.folder_dir(user, folder)?;
        let kw = Keywords::load(&dir).map_err(io_err)?;
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let subdir = dir.join(sub);
            for file in sorted_entries(&subdir)? {
                let path = subdir.join(&file);
                let meta = std::fs::metadata(&path).map_err(io_err)?;
                if !meta.is_file() || file.starts_with('.') {
                    continue;
                }
                let parsed = name::parse(&file);
                let flags = match (sub, parsed.letters) {
                    ("cur", Some(l)) => name::flags(l, |i| kw.name(i)),
                    _ => Vec::new(),
                };
                out.push(MaildirMessage {
                    base: parsed.base.to_owned(),
                    flags,
                    internal_date: meta.modified().map_or(0, secs_of),
                    size: meta.len(),
                    path,
                });
            }
        }
        out.sort_by(|a, b| {
            (name::leading_secs(&a.base), &a.base).cmp(&(name::leading_secs(&b.base), &b.base))
        });
        Ok(out)
    }

    /// The user's subscribed folders (none when there is no file).
    pub fn subscriptions(&self, user: &str) -> Result<Vec<String>, StoreError> {
        match std::fs::read_to_string(self.user_dir(user)?.join(folders::SUBSCRIPTIONS)) {
            Ok(t) => Ok(folders::parse_subscriptions(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Replaces the user's subscriptions file, durably.
    pub fn set_subscriptions(&self, user: &str, names: &[String]) -> Result<(), StoreError> {
        let text = folders::render_subscriptions(names)?;
        let dir = self.ensure_folder(user, INBOX)?;
        durable::write_file(&dir, folders::SUBSCRIPTIONS, text.as_bytes()).map_err(io_err)?;
        durable::sync_dir(&dir).map_err(io_err)
    }
}

/// The UTF-8 names in a directory, sorted; a missing directory is empty.
fn sorted_entries(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        if let Ok(n) = e.map_err(io_err)?.file_name().into_string() {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
