//! Message bytes as content-addressed files (`<dir>/<sha256 hex>`), for any
//! backend: written through a temporary file and fsynced before the rename,
//! read by byte range without reading the rest (a FETCH of 64 KiB reads
//! 64 KiB, whatever the message size).
//!
//! The directory entry of a new blob is made durable by the owner's writer
//! before the metadata that points at it ([`FileBlobs::sync_if_needed`] in
//! its `before_batch`), so one directory fsync covers every blob of a batch.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// that never finished are removed.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(path);
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
    /// [`FileBlobs::sync_if_needed`].
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, StoreError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let path = self.path(&hex);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == bytes.len() as u64 => {}
            _ => {
                durable::write_file(&self.dir, &hex, bytes).map_err(|e| StoreError::io(&e))?;
            }
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
}
