//! The user's local Maildir (`fetch --maildir`, `list`, `read`): messages written
//! the safe way (a unique name in `tmp/`, written and fsynced, renamed into
//! `new/`, the directory fsynced), numbered oldest first for `list` and `read`,
//! marked seen (`cur/…:2,S`) once read; and the fetch state beside them
//! (`.facteur-mua-state`): which POP3 UIDLs and which IMAP UIDs are already here.
//!
//! Written here rather than with the `maildir` crate because a POP3 fetch
//! deletes from the server only once the copy is durable, so every write must
//! end in fsyncs of the file and of the directory, and because `list`/`read`
//! need a stable numbering; both are a few lines over `std::fs`. Directories are
//! created 0700 and files 0600: mail is private.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

const STATE: &str = ".facteur-mua-state";

/// A Maildir: the directory holding `tmp/`, `new/` and `cur/`.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

/// One message of the Maildir.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    /// Read already (in `cur/` with the `S` flag).
    pub seen: bool,
    pub size: u64,
    modified: SystemTime,
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

fn write_durably(
    dir: &Path,
    tmp_name: &str,
    final_path: &Path,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, final_path)
        .with_context(|| format!("renaming into {}", final_path.display()))?;
    if let Some(parent) = final_path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

impl Maildir {
    /// Open the Maildir at `root`, creating it (0700) if it is not there.
    pub fn create(root: &Path) -> anyhow::Result<Maildir> {
        for sub in ["tmp", "new", "cur"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join(sub))
                .with_context(|| format!("creating the Maildir {}", root.display()))?;
        }
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    /// Open an existing Maildir.
    pub fn open(root: &Path) -> anyhow::Result<Maildir> {
        if !root.join("cur").is_dir() || !root.join("new").is_dir() {
            bail!(
                "{} is not a Maildir (no cur/ and new/): fetch into it first (fetch --maildir)",
                root.display()
            );
        }
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Store one message in `new/`; returns its path once it is durable.
    pub fn deliver(&self, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // The host part keeps names unique across machines sharing the Maildir.
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(['/', ':', '.'], "_"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let name = format!(
            "{}.M{}P{}Q{}.{host},S={}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            bytes.len()
        );
        let path = self.root.join("new").join(&name);
        write_durably(&self.root.join("tmp"), &name, &path, bytes)?;
        Ok(path)
    }

    /// Every message, oldest first (by file time, then name): `list`'s numbers.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let meta = e.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                let seen = sub == "cur"
                    && name
                        .rsplit_once(":2,")
                        .is_some_and(|(_, flags)| flags.contains('S'));
                out.push(Entry {
                    path: e.path(),
                    seen,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(UNIX_EPOCH),
                });
            }
        }
        out.sort_by(|a, b| (a.modified, a.path.file_name()).cmp(&(b.modified, b.path.file_name())));
        Ok(out)
    }

    /// Message `n` (1 is the oldest).
    pub fn get(&self, n: usize) -> anyhow::Result<Entry> {
        let all = self.entries()?;
        let count = all.len();
        n.checked_sub(1)
            .and_then(|i| all.into_iter().nth(i))
            .with_context(|| format!("no message {n}: {} holds {count}", self.root.display()))
    }

    /// Mark a message seen: moved to `cur/` with the `S` flag (the file keeps its
    /// time, so its number does not change).
    pub fn mark_seen(&self, entry: &Entry) -> anyhow::Result<PathBuf> {
        if entry.seen {
            return Ok(entry.path.clone());
        }
        let name = entry
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let new_name = match name.rsplit_once(":2,") {
            Some((base, flags)) => {
                let mut f: BTreeSet<char> = flags.chars().collect();
                f.insert('S');
                format!("{base}:2,{}", f.into_iter().collect::<String>())
            }
            None => format!("{name}:2,S"),
        };
        let to = self.root.join("cur").join(new_name);
        fs::rename(&entry.path, &to).with_context(|| format!("marking {} seen", name))?;
        Ok(to)
    }

    /// The fetch state of `source` (`pop3 user@host:port` …): its lines.
    pub fn state(&self, source: &str) -> anyhow::Result<Vec<String>> {
        let path = self.root.join(STATE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let prefix = format!("{source}\t");
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect())
    }

    /// Replace the state of `source` with `lines`, durably (other sources kept).
    pub fn set_state(&self, source: &str, lines: &[String]) -> anyhow::Result<()> {
        let path = self.root.join(STATE);
        let old = fs::read_to_string(&path).unwrap_or_default();
        let prefix = format!("{source}\t");
        let mut text: String = old
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        for l in lines {
            text.push_str(&format!("{prefix}{l}\n"));
        }
        let tmp = format!("state.{}", std::process::id());
        write_durably(&self.root.join("tmp"), &tmp, &path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn delivered_mail_is_numbered_read_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(&dir.path().join("Mail")).unwrap();
        let a = md.deliver(b"Subject: one\r\n\r\n1\r\n").unwrap();
        let b = md.deliver(b"Subject: two\r\n\r\n2\r\n").unwrap();
        assert!(a.starts_with(md.root().join("new")));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a), 0o600);
        assert_eq!(mode(&md.root().join("cur")), 0o700);
        let all = md.entries().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].path, a);
        assert_eq!(all[1].path, b);
        let read = md.mark_seen(&md.get(1).unwrap()).unwrap();
        assert!(read.to_string_lossy().ends_with(":2,S"), "{read:?}");
        let all = md.entries().unwrap();
        assert_eq!(all[0].path, read, "numbers stay after reading");
        assert!(all[0].seen && !all[1].seen);
        assert!(md.get(3).is_err());
        assert!(md.get(0).is_err());
    }

    #[test]
    fn state_is_kept_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path()).unwrap();
        md.set_state("pop3 a@h:1", &["u1".into(), "u2".into()])
            .unwrap();
        md.set_state("imap a@h:2 INBOX", &["uidvalidity 7 last 3".into()])
            .unwrap();
        md.set_state("pop3 a@h:1", &["u3".into()]).unwrap();
        assert_eq!(md.state("pop3 a@h:1").unwrap(), vec!["u3".to_owned()]);
        assert_eq!(
            md.state("imap a@h:2 INBOX").unwrap(),
            vec!["uidvalidity 7 last 3".to_owned()]
        );
        assert!(md.state("pop3 other@h:1").unwrap().is_empty());
    }
}
