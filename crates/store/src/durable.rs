//! Making writes durable on a real disk: fsync of files and directories, the
//! fsync that sled 0.34 leaves out, and the free-space reserve.
//!
//! sled's `flush()` ends in `sync_file_range`, which writes the pages but
//! neither the file's metadata nor the device cache, and sled never fsyncs
//! its blob files (values over about 128 KiB) or its directory. [`SledFiles`]
//! closes that gap: after each flush it fsyncs the log file through its own
//! handle, and any file or directory entry sled created since the last sync.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// fsyncs a directory, so that the entries created or renamed in it survive
/// a power cut (POSIX: a file's fsync does not cover its name).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` through a temporary file: written, fsynced,
/// then renamed into place, so a reader never sees a partial file. The
/// directory is NOT fsynced here: the caller does it once for many files
/// (see [`crate::writer::Owned::before_batch`]).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let final_path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{:08x}.tmp", rand_u32()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &final_path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| final_path)
}

/// A cheap process-local random suffix for temporary names (not a secret).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// The files of one sled database directory, fsynced after each flush.
pub struct SledFiles {
    dir: PathBuf,
    log: File,
    /// Entries of the directory (and of `blobs/`) already fsynced.
    known: HashSet<OsString>,
}

impl SledFiles {
    /// Takes its own handle on the database files in `dir` (sled must have
    /// opened the database there already).
    pub fn new(dir: &Path) -> io::Result<Self> {
        let mut files = Self {
            dir: dir.to_path_buf(),
            log: File::open(dir.join("db"))?,
            known: HashSet::new(),
        };
        files.sync_new_entries(true)?;
        Ok(files)
    }

    /// Call right after `Db::flush()`: fsyncs the log, then every file sled
    /// created since the last call, then the directories that name them.
    pub fn sync(&mut self) -> io::Result<()> {
        self.log.sync_data()?;
        self.sync_new_entries(false)
    }

    fn sync_new_entries(&mut self, all: bool) -> io::Result<()> {
        let mut dirs_changed: Vec<PathBuf> = Vec::new();
        let blobs = self.dir.join("blobs");
        for dir in [self.dir.clone(), blobs] {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut changed = false;
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let key = path.clone().into_os_string();
                if !all && self.known.contains(&key) {
                    continue;
                }
                let ty = entry.file_type()?;
                if ty.is_file() {
                    File::open(&path)?.sync_all()?;
                }
                self.known.insert(key);
                changed = true;
            }
            if changed || all {
                dirs_changed.push(dir);
            }
        }
        for dir in dirs_changed {
            sync_dir(&dir)?;
        }
        Ok(())
    }
}

/// One sled database owned by a writer thread (see [`crate::writer`]): opened
/// with no background flushing (durability is the writer's sync, once per
/// batch), flushed and fsynced by [`SledDb::sync`], and reopened from disk by
/// [`SledDb::prepare`] after a failed flush, since sled 0.34 keeps a flush
/// error for good. The MTA's queue and the MDA's store both sit on it.
pub struct SledDb {
    dir: PathBuf,
    tree_name: String,
    db: sled::Db,
    tree: sled::Tree,
    files: SledFiles,
    /// Written since the last successful sync.
    dirty: bool,
    /// A flush failed: reopen before the next batch.
    broken: bool,
}

fn sled_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Opens sled in `dir`. sled releases the file lock of a dropped database
/// from its own threads a moment later, so a reopen in the same process (a
/// restart after an error, tests) waits briefly for it; another process
/// holding the lock is reported after that wait.
fn open_sled(dir: &Path) -> io::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            // sled reports its lock as `Other` with the cause in the text.
            Err(sled::Error::Io(e))
                if (e.kind() == io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(sled_io(e)),
        }
    }
}

impl SledDb {
    /// Opens (or creates) the database in `dir` and its tree `tree`.
    pub fn open(dir: &Path, tree: &str) -> io::Result<Self> {
        let db = open_sled(dir)?;
        let t = db.open_tree(tree).map_err(sled_io)?;
        Ok(Self {
            files: SledFiles::new(dir)?,
            dir: dir.to_path_buf(),
            tree_name: tree.to_owned(),
            db,
            tree: t,
            dirty: false,
            broken: false,
        })
    }

    /// The tree; after a reopen, handles taken before are stale.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The database itself (migrations between layouts).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// A fresh id, unique in this database (sled's `generate_id`).
    pub fn generate_id(&self) -> sled::Result<u64> {
        self.db.generate_id()
    }

    /// Records that something was written, for the next [`SledDb::sync`].
    pub fn written(&mut self) {
        self.dirty = true;
    }

    /// Call in `before_batch`: reopens the database if a flush failed (what
    /// the failed batch applied and never acknowledged is dropped with it).
    /// `handout` is called with each tree readers should use from then on:
    /// first a placeholder (readers must let go of the failed instance, whose
    /// file lock the reopen needs), then the reopened tree.
    pub fn prepare(&mut self, mut handout: impl FnMut(&sled::Tree)) -> io::Result<()> {
        if !self.broken {
            return Ok(());
        }
        tracing::warn!(dir = %self.dir.display(), "reopening a sled database after a failed flush");
        // Let go of the failed instance first: sled holds a file lock, and a
        // database cannot be dropped while `self` must stay usable.
        let placeholder = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(sled_io)?;
        self.tree = placeholder.open_tree(&self.tree_name).map_err(sled_io)?;
        self.db = placeholder;
        handout(&self.tree);
        let db = open_sled(&self.dir)?;
        self.tree = db.open_tree(&self.tree_name).map_err(sled_io)?;
        self.db = db;
        self.files = SledFiles::new(&self.dir)?;
        handout(&self.tree);
        self.broken = false;
        self.dirty = false;
        Ok(())
    }

    /// Call in `sync`: flushes and fsyncs what was written since the last
    /// successful sync; a failure marks the database for a reopen.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let result = self
            .db
            .flush()
            .map_err(sled_io)
            .and_then(|_| self.files.sync());
        match result {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }
}

/// Bytes available to an unprivileged writer on the filesystem of `path`.
pub fn available_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fails with [`io::ErrorKind::StorageFull`] when fewer than `reserve` bytes
/// are free on the filesystem of `path` (Postfix's `queue_minfree`): refusing
/// new work early keeps room for what was already acknowledged.
pub fn check_reserve(path: &Path, reserve: u64) -> io::Result<()> {
    if reserve == 0 {
        return Ok(());
    }
    let free = available_space(path)?;
    if free < reserve {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("only {free} bytes free on the store's disk (reserve {reserve})"),
        ));
    }
    Ok(())
}

/// True when an I/O error means the disk (or quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_leaves_only_the_final_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "a.eml", b"hello").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        sync_dir(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("a.eml")]);
    }

    #[test]
    fn reserve_is_checked_against_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_space(dir.path()).unwrap();
        assert!(free > 0);
        check_reserve(dir.path(), 1).unwrap();
        let err = check_reserve(dir.path(), u64::MAX).unwrap_err();
        assert!(is_disk_full(&err), "{err}");
    }

    #[test]
    fn a_sled_db_marked_broken_is_reopened_from_disk_before_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = SledDb::open(dir.path(), "t").unwrap();
        db.tree().insert(b"k1", b"v1").unwrap();
        db.written();
        db.sync().unwrap();
        db.prepare(|_| panic!("nothing to reopen")).unwrap();
        // As after a failed flush: the next batch reopens, handing out first
        // a placeholder (so readers let go of the lock), then the new tree.
        db.broken = true;
        let mut handed = Vec::new();
        db.prepare(|t| handed.push(t.get(b"k1").unwrap().is_some()))
            .unwrap();
        assert_eq!(handed, vec![false, true]);
        assert_eq!(db.tree().get(b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
        // A second handle on a held database waits, then says so.
        let err = SledDb::open(dir.path(), "t").err().unwrap();
        assert!(err.to_string().contains("lock"), "{err}");
    }

    #[test]
    fn sled_files_sync_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut files = SledFiles::new(dir.path()).unwrap();
        db.insert(b"k", vec![7u8; 300 * 1024]).unwrap();
        db.flush().unwrap();
        files.sync().unwrap();
        assert!(!files.known.is_empty());
    }
}
