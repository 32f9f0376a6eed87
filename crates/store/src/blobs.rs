//! Message bytes as content-addressed files (`<dir>/<sha256 hex>`), for any
//! backend: written through a temporary file and fsynced before the rename,
//! read by byte range without reading the rest (a FETCH of 64 KiB reads
//! 64 KiB, whatever the message size).
//!
//! The directory entry of a new blob is made durable by the owner's writer
//! before the metadata that points at it ([`FileBlobs::sync_if_needed`] in
//! its `before_batch`), so one directory fsync covers every blob of a batch.
//!
//! Collection (the owner decides a blob is referenced by nothing): a blob's
//! mtime is the last time it was put, so [`FileBlobs::put`] of bytes already
//! there refreshes it. [`FileBlobs::collect`] first renames the file aside,
//! then looks at its mtime: put within the grace period, it goes back;
//! otherwise it is removed. A `put` racing with it either refreshed the mtime
//! before the rename (the blob is kept) or found no file after it (and
//! writes the blob again), so bytes that were just put are never lost.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::durable;
use crate::mail::{BlobId, StoreError};

/// A directory of blobs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FileBlobs {
    dir: PathBuf,
    /// A blob was renamed into place since the last directory fsync.
    unsynced: Arc<AtomicBool>,
}

/// The id's hex, checked (64 lowercase hex digits), or `NoSuchBlob`.
fn checked(id: &BlobId) -> Result<&str, StoreError> {
    let ok = id.0.len() == 64
        && id
            .0
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(&id.0)
    } else {
        Err(StoreError::NoSuchBlob)
    }
}

fn not_found_is_no_blob(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NoSuchBlob
    } else {
        StoreError::io(&e)
    }
}

impl FileBlobs {
    /// Opens (creating) the directory; leftover temporary files of writes
    /// that never finished are removed, and a blob set aside by a
    /// collection that never finished is put back (the next one decides again).
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(path);
            } else if path.extension().is_some_and(|e| e == ASIDE) {
                let blob = path.with_extension("");
                if blob.exists() {
                    let _ = std::fs::remove_file(&path);
                } else {
                    std::fs::rename(&path, &blob)?;
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            unsynced: Arc::new(AtomicBool::new(false)),
        })
    }

    fn path(&self, hex: &str) -> PathBuf {
        self.dir.join(hex)
    }

    /// Stores `bytes` (idempotent: same bytes, same file) and returns the id.
    /// The file is fsynced; its name becomes durable at the next
    /// [`FileBlobs::sync_if_needed`]. A blob already there has its mtime
    /// refreshed, which keeps it from [`FileBlobs::collect`] for the grace period.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, StoreError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let path = self.path(&hex);
        if !refreshed(&path, bytes.len() as u64) {
            durable::write_file(&self.dir, &hex, bytes).map_err(|e| StoreError::io(&e))?;
        }
        // Even when the file was there: its name may not be durable yet.
        self.unsynced.store(true, Ordering::SeqCst);
        Ok(BlobId(hex))
    }

    /// The size of a blob.
    pub fn len(&self, id: &BlobId) -> Result<u64, StoreError> {
        let hex = checked(id)?;
        Ok(std::fs::metadata(self.path(hex))
            .map_err(not_found_is_no_blob)?
            .len())
    }

    /// The bytes of a blob, or of `range` of them (clamped to the blob).
    pub fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let hex = checked(id)?;
        let mut f = File::open(self.path(hex)).map_err(not_found_is_no_blob)?;
        let len = f.metadata().map_err(|e| StoreError::io(&e))?.len();
        let (start, end) = match range {
            None => (0, len),
            Some(r) => {
                let end = r.end.min(len);
                (r.start.min(end), end)
            }
        };
        let want = usize::try_from(end - start).map_err(|_| StoreError::NoSuchBlob)?;
        let mut out = vec![0u8; want];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut out))
            .map_err(|e| StoreError::io(&e))?;
        Ok(out)
    }

    /// fsyncs the directory if a blob was added since the last call.
    pub fn sync_if_needed(&self) -> io::Result<()> {
        if self.unsynced.swap(false, Ordering::SeqCst)
            && let Err(e) = durable::sync_dir(&self.dir)
        {
            self.unsynced.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// The directory (for free-space checks).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Calls `f` with every blob in the directory (anything else there is
    /// skipped): its id, size and the last time it was put.
    pub fn for_each(&self, mut f: impl FnMut(BlobFile)) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let id = BlobId(name.to_owned());
            if checked(&id).is_err() {
                continue;
            }
            // Gone since the listing (collected, or never finished): skipped.
            let Ok(meta) = entry.metadata() else { continue };
            f(BlobFile {
                id,
                len: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(())
    }

    /// Removes a blob the owner found unreferenced, unless it was put within
    /// `grace`. Returns the bytes freed, or `None` when the blob stays (or was
    /// not there). The owner must call this where no new reference to the
    /// blob can be made meanwhile (its writer); see the module comment for
    /// why a concurrent `put` is safe.
    pub fn collect(&self, id: &BlobId, grace: Duration) -> io::Result<Option<u64>> {
        let Ok(hex) = checked(id) else {
            return Ok(None);
        };
        let path = self.path(hex);
        let aside = path.with_extension(ASIDE);
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let meta = std::fs::metadata(&aside)?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok());
        // A future mtime (clock stepped back) counts as just put.
        if age.is_none_or(|age| age < grace) {
            if path.exists() {
                // Put again meanwhile: the new file holds the same bytes.
                std::fs::remove_file(&aside)?;
            } else {
                std::fs::rename(&aside, &path)?;
            }
            return Ok(None);
        }
        std::fs::remove_file(&aside)?;
        self.unsynced.store(true, Ordering::SeqCst);
        Ok(Some(meta.len()))
    }
}

/// A blob collection sets aside as `<hex>.gc` before deciding.
const ASIDE: &str = "gc";

/// One blob file, as [`FileBlobs::for_each`] finds it.
#[derive(Debug, Clone)]
pub struct BlobFile {
    pub id: BlobId,
    pub len: u64,
    /// The last time it was put.
    pub modified: SystemTime,
}

/// Refreshes the mtime of the blob at `path` if it is there with `len`
/// bytes; false when it must be written (absent, set aside by a collection,
/// or cut short).
fn refreshed(path: &Path, len: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(f) = File::options().append(true).open(path) else {
        return false;
    };
    let Ok(meta) = f.metadata() else { return false };
    if meta.len() != len || f.set_modified(SystemTime::now()).is_err() {
        return false;
    }
    // Still under its name after the refresh: a collection that set it aside
    // before now saw the new mtime and puts it back; one that removed it
    // had set it aside already, and this finds no file (or another inode).
    std::fs::metadata(path).is_ok_and(|now| now.ino() == meta.ino() && now.dev() == meta.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (tempfile::TempDir, FileBlobs) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::open(&dir.path().join("blobs")).unwrap();
        (dir, blobs)
    }

    fn age(blobs: &FileBlobs, id: &BlobId, by: Duration) {
        let f = File::options()
            .append(true)
            .open(blobs.path(&id.0))
            .unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn a_blob_put_within_the_grace_period_is_kept_an_older_one_goes() {
        let (_d, blobs) = blobs();
        let id = blobs.put(b"hello").unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(blobs.collect(&id, hour).unwrap(), None);
        assert_eq!(blobs.get(&id, None).unwrap(), b"hello");
        age(&blobs, &id, 2 * hour);
        assert_eq!(blobs.collect(&id, hour).unwrap(), Some(5));
        assert!(matches!(blobs.get(&id, None), Err(StoreError::NoSuchBlob)));
        // Gone already: nothing to do.
        assert_eq!(blobs.collect(&id, hour).unwrap(), None);
    }

    #[test]
    fn putting_old_bytes_again_refreshes_them_and_a_collected_blob_is_written_again() {
        let (_d, blobs) = blobs();
        let hour = Duration::from_secs(3600);
        let id = blobs.put(b"again").unwrap();
        age(&blobs, &id, 2 * hour);
        // Put again: the mtime is now, so the collection keeps it.
        assert_eq!(blobs.put(b"again").unwrap(), id);
        assert_eq!(blobs.collect(&id, hour).unwrap(), None);
        // Collected, then put: the bytes are there again.
        assert_eq!(blobs.collect(&id, Duration::ZERO).unwrap(), Some(5));
        assert_eq!(blobs.put(b"again").unwrap(), id);
        assert_eq!(blobs.get(&id, None).unwrap(), b"again");
    }

    #[test]
    fn a_blob_set_aside_by_an_unfinished_collection_is_put_back_at_open() {
        let (d, blobs) = blobs();
        let id = blobs.put(b"aside").unwrap();
        let path = blobs.path(&id.0);
        std::fs::rename(&path, path.with_extension(ASIDE)).unwrap();
        drop(blobs);
        let blobs = FileBlobs::open(&d.path().join("blobs")).unwrap();
        assert_eq!(blobs.get(&id, None).unwrap(), b"aside");
        let mut seen = Vec::new();
        blobs.for_each(|b| seen.push((b.id, b.len))).unwrap();
        assert_eq!(seen, vec![(id, 5)]);
    }
}
