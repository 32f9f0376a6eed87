//! Keeping a store's disk bounded: collecting the blobs no message points
//! at any more (after a grace period, so bytes put for a filing still on its
//! way are never taken) and the report behind `facteur-mda store check`.
//!
//! Like Dovecot's single-instance storage (`doveadm purge`) and Stalwart's
//! blob purge, deletion never removes bytes at once: an expunge drops a
//! reference, and a periodic collection removes what has had none for the
//! grace period.

use std::fmt;
use std::time::Duration;

use crate::mail::{BlobId, StoreError};

/// A store whose unreferenced bytes can be collected and whose size can be told.
pub trait Housekeeping: Send + Sync + 'static {
    /// Removes every blob that no message references and that was last put
    /// more than `grace` ago. Safe while mail is being filed.
    fn collect_blobs(&self, grace: Duration) -> Result<Collected, StoreError>;

    /// Counts what the store holds and checks its references against its
    /// messages; `grace` says which unreferenced blobs a collection would take.
    /// On a store in use, blobs of filings in progress show as unreferenced
    /// (recent ones, which a collection leaves).
    fn check(&self, grace: Duration) -> Result<StoreReport, StoreError>;
}

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blob files looked at, and their bytes.
    pub examined: u64,
    pub examined_bytes: u64,
    /// Blobs removed, and their bytes.
    pub removed: u64,
    pub removed_bytes: u64,
    /// Unreferenced blobs left because they were put within the grace period.
    pub recent: u64,
}

impl Collected {
    /// The bytes of the blobs left after the collection.
    pub fn kept_bytes(&self) -> u64 {
        self.examined_bytes.saturating_sub(self.removed_bytes)
    }
}

impl fmt::Display for Collected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blobs examined, {} removed ({} bytes freed), {} unreferenced but recent kept",
            self.examined, self.removed, self.removed_bytes, self.recent
        )
    }
}

/// What a store holds, as `facteur-mda store check` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Bytes of the metadata database's files.
    pub db_bytes: u64,
    /// Messages in every mailbox of every user.
    pub messages: u64,
    /// Blob files and their bytes.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Blobs no message references, their bytes, and how many of them a
    /// collection with this grace period would remove.
    pub unreferenced: u64,
    pub unreferenced_bytes: u64,
    pub collectable: u64,
    pub collectable_bytes: u64,
    /// Blobs a message references whose file is gone (mail lost on disk).
    pub missing: Vec<BlobId>,
    /// Blobs whose recorded reference count differs from the messages that
    /// point at them (the store's bookkeeping is wrong).
    pub miscounted: Vec<BlobId>,
}

impl StoreReport {
    /// Nothing missing, nothing miscounted.
    pub fn is_healthy(&self) -> bool {
        self.missing.is_empty() && self.miscounted.is_empty()
    }

    /// The disk the store takes, metadata and blobs.
    pub fn total_bytes(&self) -> u64 {
        self.db_bytes + self.blob_bytes
    }
}

impl fmt::Display for StoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store size:    {} bytes", self.total_bytes())?;
        writeln!(f, "  metadata:    {} bytes", self.db_bytes)?;
        writeln!(
            f,
            "  blobs:       {} ({} bytes)",
            self.blobs, self.blob_bytes
        )?;
        writeln!(f, "messages:      {}", self.messages)?;
        writeln!(
            f,
            "unreferenced:  {} blobs ({} bytes), {} collectable ({} bytes)",
            self.unreferenced, self.unreferenced_bytes, self.collectable, self.collectable_bytes
        )?;
        writeln!(f, "missing:       {}", self.missing.len())?;
        for id in &self.missing {
            writeln!(f, "  missing blob {}", id.0)?;
        }
        writeln!(f, "miscounted:    {}", self.miscounted.len())?;
        for id in &self.miscounted {
            writeln!(f, "  miscounted blob {}", id.0)?;
        }
        write!(
            f,
            "status:        {}",
            if self.is_healthy() { "ok" } else { "DAMAGED" }
        )
    }
}
