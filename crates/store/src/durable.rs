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
