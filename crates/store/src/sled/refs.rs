//! Blob references on the sled backend: how many messages point at each blob
//! (`r` ++ the blob's raw id → count u64, kept in the same batch as every
//! message added or removed), counted once for a store older than them, the
//! collection of blobs nothing points at, and the store's report.
//!
//! Why collection is safe while mail is filed: a reference is only ever made
//! on the writer thread, which checks there that the blob file exists when
//! its count goes from 0 to 1 ([`ref_blob`]), and a blob is only removed on
//! the writer thread after it found no reference ([`SledStore::collect_blobs`]).
//! So no committed message ever points at a removed blob. The bytes a filing
//! put but has not referenced yet are kept by the grace period (`put`
//! refreshes a blob's mtime, see `blobs`); should a filing ever lose that
//! race (it would have to wait longer than the grace period between its
//! `put` and its request), it fails with a temporary error and is retried
//! by its sender, as nothing was acknowledged.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::records::*;
use super::{SledStore, Tx, backend};
use crate::blobs::FileBlobs;
use crate::housekeeping::{Collected, Housekeeping, StoreReport};
use crate::mail::{BlobId, StoreError};

/// Blobs removed per writer request, so filings interleave with a collection.
const COLLECT_BATCH: usize = 128;

/// One more message points at `blob`. The first reference checks that the
/// file is there (on the writer thread, where no collection can run meanwhile).
pub(super) fn ref_blob(tx: &mut Tx, blobs: &FileBlobs, blob: &BlobId) -> Result<(), StoreError> {
    let key = refs_key(&blob_key(blob)?);
    let count = match tx.get(&key)? {
        Some(v) => decode_count(&v)?,
        None => {
            // Collected since the caller put it (see the module comment):
            // temporary, the sender puts it again when it retries.
            blobs.len(blob).map_err(|e| match e {
                StoreError::NoSuchBlob => StoreError::Unavailable(
                    "the message's bytes were collected meanwhile; try again".into(),
                ),
                other => other,
            })?;
            0
        }
    };
    tx.insert(&key, (count + 1).to_be_bytes().to_vec());
    Ok(())
}

/// One message less points at `blob`; at none, its record goes and the blob
/// waits for the next collection.
pub(super) fn unref_blob(tx: &mut Tx, blob: &BlobId) -> Result<(), StoreError> {
    let key = refs_key(&blob_key(blob)?);
    let count = match tx.get(&key)? {
        Some(v) => decode_count(&v)?,
        None => 0,
    };
    if count <= 1 {
        tx.remove(&key);
    } else {
        tx.insert(&key, (count - 1).to_be_bytes().to_vec());
    }
    Ok(())
}

/// How many messages point at each blob, from the message records.
fn count_refs(tree: &::sled::Tree) -> Result<(u64, HashMap<Vec<u8>, u64>), StoreError> {
    let mut messages = 0;
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    for item in tree.scan_prefix([MESSAGE]) {
        let (_, v) = item.map_err(backend)?;
        let view = MetaView::parse(&v)?;
        messages += 1;
        *counts.entry(refs_key(view.blob_raw())).or_default() += 1;
    }
    Ok((messages, counts))
}

/// The bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn older_than(modified: SystemTime, grace: Duration) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= grace)
}

impl SledStore {
    /// Counts the `r` records of a store written before them (once: the
    /// `R` key then says they are counted). One request, one batch.
    pub(super) fn count_refs_once(&self) -> Result<(), StoreError> {
        if self.tree().contains_key(REFS_COUNTED).map_err(backend)? {
            return Ok(());
        }
        self.write(|st| {
            let tree = st.tree();
            let mut tx = Tx::new(tree.clone());
            let (messages, counts) = count_refs(&tree)?;
            for (key, count) in counts {
                tx.insert(&key, count.to_be_bytes().to_vec());
            }
            tx.insert(REFS_COUNTED, vec![1]);
            tx.commit(st)?;
            if messages > 0 {
                tracing::info!(messages, "counted the blob references of an older store");
            }
            Ok(())
        })
    }
}

impl Housekeeping for SledStore {
    fn collect_blobs(&self, grace: Duration) -> Result<Collected, StoreError> {
        let tree = self.tree();
        let mut done = Collected::default();
        let mut candidates = Vec::new();
        let mut failed = None;
        // A first look from the caller's thread: old files with no reference.
        self.inner
            .blobs
            .for_each(|b| {
                done.examined += 1;
                done.examined_bytes += b.len;
                let referenced = blob_key(&b.id)
                    .map(|raw| tree.contains_key(refs_key(&raw)))
                    .map(|r| r.map_err(backend));
                match referenced {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) if older_than(b.modified, grace) => candidates.push(b.id),
                    Ok(Ok(false)) => done.recent += 1,
                    Ok(Err(e)) | Err(e) => failed = Some(e),
                }
            })
            .map_err(|e| StoreError::io(&e))?;
        if let Some(e) = failed {
            return Err(e);
        }
        // The decision on the writer thread, where no reference can be made meanwhile.
        for chunk in candidates.chunks(COLLECT_BATCH) {
            let chunk = chunk.to_vec();
            let (removed, bytes, recent) = self.write(move |st| {
                let tree = st.tree();
                let (mut removed, mut bytes, mut recent) = (0, 0, 0);
                for id in chunk {
                    if tree
                        .contains_key(refs_key(&blob_key(&id)?))
                        .map_err(backend)?
                    {
                        continue;
                    }
                    match st
                        .blobs
                        .collect(&id, grace)
                        .map_err(|e| StoreError::io(&e))?
                    {
                        Some(n) => {
                            removed += 1;
                            bytes += n;
                        }
                        None => recent += 1,
                    }
                }
                Ok((removed, bytes, recent))
            })?;
            done.removed += removed;
            done.removed_bytes += bytes;
            done.recent += recent;
        }
        Ok(done)
    }

    fn check(&self, grace: Duration) -> Result<StoreReport, StoreError> {
        let tree = self.tree();
        let io = |e: std::io::Error| StoreError::io(&e);
        let (messages, counts) = count_refs(&tree)?;
        let mut report = StoreReport {
            db_bytes: dir_bytes(&self.inner.dir.join("db")).map_err(io)?,
            messages,
            ..StoreReport::default()
        };
        let mut on_disk = std::collections::HashSet::new();
        self.inner
            .blobs
            .for_each(|b| {
                report.blobs += 1;
                report.blob_bytes += b.len;
                let Ok(raw) = blob_key(&b.id) else { return };
                let key = refs_key(&raw);
                if !counts.contains_key(&key) {
                    report.unreferenced += 1;
                    report.unreferenced_bytes += b.len;
                    if older_than(b.modified, grace) {
                        report.collectable += 1;
                        report.collectable_bytes += b.len;
                    }
                }
                on_disk.insert(key);
            })
            .map_err(io)?;
        let id_of = |key: &[u8]| BlobId(hex::encode(&key[1..]));
        for (key, &count) in &counts {
            if !on_disk.contains(key) {
                report.missing.push(id_of(key));
            }
            let recorded = tree.get(key).map_err(backend)?;
            if recorded.map(|v| decode_count(&v)).transpose()? != Some(count) {
                report.miscounted.push(id_of(key));
            }
        }
        // Records for blobs no message points at.
        for item in tree.scan_prefix([BLOB_REFS]) {
            let (key, _) = item.map_err(backend)?;
            if !counts.contains_key(key.as_ref()) {
                report.miscounted.push(id_of(&key));
            }
        }
        report.missing.sort();
        report.miscounted.sort();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{BlobStore, MailStore, MessageKey};

    const GONE: Duration = Duration::ZERO;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SledStore::open_with(dir.path(), crate::SledOptions { min_free_bytes: 0 }).unwrap();
        (dir, store)
    }

    fn deliver(store: &SledStore, user: &str, key: &str, body: &[u8]) -> u32 {
        let blob = store.put(body).unwrap();
        let key = MessageKey(key.into());
        let filed = store
            .file(&key, user, "INBOX", &blob, body.len() as u64, 0)
            .unwrap();
        filed.uid
    }

    fn message(n: usize) -> Vec<u8> {
        format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes()
    }

    #[test]
    fn a_blob_goes_when_its_last_message_does_and_not_before() {
        let (_d, store) = store();
        let body = message(1);
        // One message for two users (one blob), and a copy in a folder.
        let a = deliver(&store, "a@x.test", "k1", &body);
        let b = deliver(&store, "b@x.test", "k1", &body);
        store.create_mailbox("a@x.test", "Keep").unwrap();
        store
            .copy("a@x.test", "INBOX", &[a], "Keep", false)
            .unwrap();
        let report = store.check(GONE).unwrap();
        assert_eq!(
            (report.messages, report.blobs, report.unreferenced),
            (3, 1, 0)
        );
        assert!(report.is_healthy(), "{report}");

        store.expunge("a@x.test", "INBOX", Some(&[a])).unwrap();
        store.expunge("b@x.test", "INBOX", Some(&[b])).unwrap();
        assert_eq!(store.collect_blobs(GONE).unwrap().removed, 0);
        assert_eq!(
            BlobStore::get(&store, &store.put(&body).unwrap(), None).unwrap(),
            body
        );

        // The folder with the last reference goes: the blob is garbage now.
        store.delete_mailbox("a@x.test", "Keep").unwrap();
        let report = store.check(GONE).unwrap();
        assert_eq!(
            (report.messages, report.unreferenced, report.collectable),
            (0, 1, 1)
        );
        assert_eq!(report.unreferenced_bytes, body.len() as u64);
        // Within the grace period nothing is taken.
        let kept = store.collect_blobs(Duration::from_secs(3600)).unwrap();
        assert_eq!((kept.removed, kept.recent), (0, 1));
        let done = store.collect_blobs(GONE).unwrap();
        assert_eq!((done.removed, done.removed_bytes), (1, body.len() as u64));
        let report = store.check(GONE).unwrap();
        assert_eq!((report.blobs, report.blob_bytes), (0, 0));
        assert!(report.is_healthy(), "{report}");
    }

    #[test]
    fn a_store_from_before_the_counts_gets_them_counted_at_open() {
        let (dir, store) = store();
        let uid = deliver(&store, "a@x.test", "k1", &message(1));
        deliver(&store, "a@x.test", "k2", &message(2));
        // Take the counts away, as a store written before them has none.
        store
            .write(|st| {
                let tree = st.tree();
                let mut tx = Tx::new(tree.clone());
                for item in tree.scan_prefix([BLOB_REFS]) {
                    tx.remove(&item.map_err(backend)?.0);
                }
                tx.remove(REFS_COUNTED);
                tx.commit(st)
            })
            .unwrap();
        assert!(!store.check(GONE).unwrap().is_healthy());
        drop(store);
        let store =
            SledStore::open_with(dir.path(), crate::SledOptions { min_free_bytes: 0 }).unwrap();
        let report = store.check(GONE).unwrap();
        assert!(report.is_healthy(), "{report}");
        // And they are right: expunging one message frees exactly its blob.
        store.expunge("a@x.test", "INBOX", Some(&[uid])).unwrap();
        assert_eq!(store.collect_blobs(GONE).unwrap().removed, 1);
        assert_eq!(store.check(GONE).unwrap().blobs, 1);
    }

    #[test]
    fn a_missing_blob_is_reported() {
        let (dir, store) = store();
        let body = message(7);
        deliver(&store, "a@x.test", "k1", &body);
        let id = store.put(&body).unwrap();
        std::fs::remove_file(dir.path().join("blobs").join(&id.0)).unwrap();
        let report = store.check(GONE).unwrap();
        assert_eq!(report.missing, vec![id]);
        assert!(report.to_string().contains("DAMAGED"), "{report}");
    }

    /// Filings, expunges and collections with no grace period at all, at once:
    /// a filing may be refused (its blob was collected under it, and its
    /// sender retries), but no filed message ever lacks its bytes.
    #[test]
    fn collecting_while_filing_never_leaves_a_message_without_its_bytes() {
        let (_d, store) = store();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    store.collect_blobs(GONE).unwrap();
                    runs += 1;
                }
                runs
            })
        };
        let mut writers = Vec::new();
        for t in 0..3 {
            let store = store.clone();
            writers.push(std::thread::spawn(move || {
                let user = format!("u{t}@x.test");
                let mut refused = 0;
                for i in 0..150 {
                    // Few distinct bodies, shared between the threads.
                    let body = message(i % 5);
                    let blob = store.put(&body).unwrap();
                    let key = MessageKey(format!("{t}-{i}"));
                    match store.file(&key, &user, "INBOX", &blob, body.len() as u64, 0) {
                        Ok(filed) if i % 2 == 0 => {
                            store.expunge(&user, "INBOX", Some(&[filed.uid])).unwrap();
                        }
                        Ok(_) => {}
                        Err(StoreError::Unavailable(_) | StoreError::NoSuchBlob) => refused += 1,
                        Err(e) => panic!("filing failed: {e}"),
                    }
                }
                refused
            }));
        }
        let refused: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let runs = collector.join().unwrap();
        assert!(runs > 0);
        let report = store.check(GONE).unwrap();
        assert!(report.is_healthy(), "{report}");
        for t in 0..3 {
            let user = format!("u{t}@x.test");
            for meta in store.list(&user, "INBOX", 1, usize::MAX).unwrap() {
                let bytes = BlobStore::get(&store, &meta.blob, None).unwrap();
                assert_eq!(bytes.len() as u64, meta.size);
            }
        }
        // Most filings went through.
        assert!(refused < 225, "{refused} of 450 filings refused");
    }
}
