//! The durable queue: message bytes in spool files, envelopes and delivery state
//! in sled. Nothing is acknowledged before both are on disk.
//!
//! Commit order (RFC 5321 §6.1: a 250 is a promise to deliver):
//! 1. the spool file is written, `fsync`ed and renamed to its final name;
//! 2. the spool directory is `fsync`ed (the rename is durable);
//! 3. the envelope is inserted in one sled transaction together with the
//!    idempotency key (so a retried submission maps to the first queue id);
//! 4. sled is flushed. Only then does the caller answer 250 / the gRPC reply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("queue database: {0}")]
    Db(#[from] sled::Error),
    #[error("queue record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("message larger than {0} bytes")]
    TooBig(u64),
    #[error("a queue record cannot be read")]
    Corrupt,
}

/// Where a recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    Pending,
    Delivered { reply: String },
    Failed { reply: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rcpt {
    pub addr: String,
    pub status: RcptStatus,
    /// Last transient failure, for the bounce and the logs.
    #[serde(default)]
    pub last_error: String,
}

/// One queued message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub key: String,
    /// Reverse-path without brackets; empty for the null sender (bounces).
    pub mail_from: String,
    pub rcpts: Vec<Rcpt>,
    pub created: i64,
    pub attempts: u32,
    pub next_attempt: i64,
    pub size: u64,
    /// Needs SMTPUTF8 from the next hop (RFC 6531): UTF-8 addresses or headers.
    #[serde(default)]
    pub smtputf8: bool,
    /// Has 8-bit content: relayed with BODY=8BITMIME (RFC 6152).
    #[serde(default)]
    pub eight_bit: bool,
}

impl Entry {
    pub fn is_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.status != RcptStatus::Pending)
    }
}

/// The queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    entries: sled::Tree,
    keys: sled::Tree,
    /// `(next_attempt, id)` → (): due messages in time order without reading
    /// every entry; kept in the same transactions as `entries`.
    schedule: sled::Tree,
    spool: PathBuf,
    notify: Notify,
}

/// A message being received into the spool.
pub struct SpoolWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    id: String,
    size: u64,
    max: u64,
    too_big: bool,
    preamble: u64,
    smtputf8: bool,
    eight_bit: bool,
}

impl SpoolWriter {
    /// The queue id this message will get.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Append bytes; past the size limit the rest is discarded and `finish` fails.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        // Count everything, even past the limit: the sender's end marker is checked
        // against the full count, then the message is refused as too big.
        self.size += bytes.len() as u64;
        if self.too_big {
            return Ok(());
        }
        if self.size > self.max {
            self.too_big = true;
            self.file.set_len(0).await?;
            return Ok(());
        }
        self.file.write_all(bytes).await?;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Mark what was written so far as ours (trace headers), not the sender's:
    /// it does not count toward the size limit the sender was promised (SIZE).
    pub fn end_preamble(&mut self) {
        self.preamble = self.size;
        self.max = self.max.saturating_add(self.size);
    }

    /// What the sender declared: SMTPUTF8 and BODY=8BITMIME (kept for the relay).
    pub fn declare(&mut self, smtputf8: bool, eight_bit: bool) {
        self.smtputf8 = smtputf8;
        self.eight_bit = eight_bit;
    }

    /// Bytes written before [`SpoolWriter::end_preamble`].
    pub fn preamble(&self) -> u64 {
        self.preamble
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        // A writer dropped before `commit` leaves no temp file behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn new_id() -> String {
    // Time-ordered so the spool lists in arrival order, random so ids never clash.
    format!(
        "{:011x}{:08x}",
        facteur_daemon::trace::now_unix(),
        rand::random::<u32>()
    )
    .to_ascii_uppercase()
}

/// The schedule key: the time, order-preserving big-endian, then the id.
fn slot(at: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn unslot(k: &[u8]) -> i64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&k[..8.min(k.len())]);
    (u64::from_be_bytes(t) ^ (1 << 63)) as i64
}

fn finish(result: Result<(), TransactionError<()>>) -> Result<(), QueueError> {
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Storage(e)) => Err(e.into()),
        Err(TransactionError::Abort(())) => Err(QueueError::Corrupt),
    }
}

impl Queue {
    /// Open (or create) the queue under `dir` (`dir/db`, `dir/spool`).
    ///
    /// sled's lock is taken first: a second process (e.g. `facteur-mta queue`
    /// while the daemon runs) fails here and touches nothing.
    pub fn open(dir: &Path) -> Result<Self, QueueError> {
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool)?;
        let db = sled::open(dir.join("db"))?;
        let entries = db.open_tree("entries")?;
        // Temp files were never acknowledged; a spool file no entry points at was
        // never acknowledged either (the process died between the rename and the
        // commit, or the commit found a duplicate).
        for f in std::fs::read_dir(&spool)? {
            let p = f?.path();
            let stale = match p.extension().and_then(|e| e.to_str()) {
                Some("tmp") => true,
                Some("eml") => p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|id| !entries.contains_key(id.as_bytes()).unwrap_or(true)),
                _ => false,
            };
            if stale {
                let _ = std::fs::remove_file(p);
            }
        }
        let keys = db.open_tree("keys")?;
        // The schedule is derived from the entries: rebuilt at every start, so it
        // can never disagree with them for long (one read of the queue).
        let schedule = db.open_tree("schedule")?;
        schedule.clear()?;
        for kv in entries.iter() {
            let (k, v) = kv?;
            match serde_json::from_slice::<Entry>(&v) {
                Ok(e) => {
                    schedule.insert(slot(e.next_attempt, &e.id), &[])?;
                }
                Err(err) => tracing::error!(
                    id = %String::from_utf8_lossy(&k), error = %err,
                    "unreadable queue entry left aside"
                ),
            }
        }
        db.flush()?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                entries,
                keys,
                schedule,
                spool,
                notify: Notify::new(),
            }),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.inner.spool.join(format!("{id}.eml"))
    }

    /// Start receiving a message, at most `max` bytes.
    pub async fn writer(&self, max: u64) -> Result<SpoolWriter, QueueError> {
        let id = new_id();
        let tmp = self.inner.spool.join(format!("{id}.tmp"));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(SpoolWriter {
            file,
            tmp,
            id,
            size: 0,
            max,
            too_big: false,
            preamble: 0,
            smtputf8: false,
            eight_bit: false,
        })
    }

    /// Make the message durable and queue it. Returns `(queue id, duplicate)`:
    /// if `key` was queued before, the first id is returned and nothing is added.
    pub async fn commit(
        &self,
        mut writer: SpoolWriter,
        key: &str,
        mail_from: &str,
        rcpts: &[String],
    ) -> Result<(String, bool), QueueError> {
        if writer.too_big {
            return Err(QueueError::TooBig(writer.max - writer.preamble));
        }
        writer.file.flush().await?;
        writer.file.sync_all().await?;
        let final_path = self.path(&writer.id);
        tokio::fs::rename(&writer.tmp, &final_path).await?;
        let spool = self.inner.spool.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(spool)?.sync_all())
            .await
            .map_err(std::io::Error::other)??;
        let now = facteur_daemon::trace::now_unix();
        let entry = Entry {
            id: writer.id.clone(),
            key: key.to_owned(),
            mail_from: mail_from.to_owned(),
            rcpts: rcpts
                .iter()
                .map(|r| Rcpt {
                    addr: r.clone(),
                    status: RcptStatus::Pending,
                    last_error: String::new(),
                })
                .collect(),
            created: now,
            attempts: 0,
            next_attempt: now,
            size: writer.size,
            smtputf8: writer.smtputf8,
            eight_bit: writer.eight_bit,
        };
        let record = serde_json::to_vec(&entry)?;
        let inner = &self.inner;
        let id = writer.id.clone();
        let at = slot(entry.next_attempt, &id);
        let outcome = (&inner.entries, &inner.keys, &inner.schedule).transaction(
            |(entries, keys, schedule)| {
                if let Some(existing) = keys.get(key.as_bytes())? {
                    return Ok(Some(String::from_utf8_lossy(&existing).into_owned()));
                }
                keys.insert(key.as_bytes(), id.as_bytes())?;
                entries.insert(id.as_bytes(), record.clone())?;
                schedule.insert(at.clone(), &[])?;
                Ok::<_, ConflictableTransactionError<()>>(None)
            },
        );
        let existing = match outcome {
            Ok(x) => x,
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => None,
        };
        if let Some(first) = existing {
            let _ = tokio::fs::remove_file(&final_path).await;
            return Ok((first, true));
        }
        self.inner.db.flush_async().await?;
        self.inner.notify.notify_one();
        Ok((entry.id, false))
    }

    /// Up to `limit` entries whose next attempt is due at `now`, earliest first.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Entry>, QueueError> {
        let end = slot(now.saturating_add(1), "");
        let mut out = Vec::new();
        for kv in self.inner.schedule.range(..end) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let current = match self.inner.entries.get(&k[8..])? {
                Some(v) => serde_json::from_slice::<Entry>(&v).ok(),
                None => None,
            };
            match current {
                Some(e) if slot(e.next_attempt, &e.id) == k.as_ref() => out.push(e),
                // A slot that no longer matches its entry: drop it, do not count it.
                _ => {
                    self.inner.schedule.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    /// The earliest next attempt of any entry.
    pub fn next_due(&self) -> Result<Option<i64>, QueueError> {
        Ok(self.inner.schedule.first()?.map(|(k, _)| unslot(&k)))
    }

    /// One entry as stored now.
    pub fn get(&self, id: &str) -> Result<Option<Entry>, QueueError> {
        match self.inner.entries.get(id.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Every entry (for `facteur-mta queue`).
    pub fn list(&self) -> Result<Vec<Entry>, QueueError> {
        let mut out = Vec::new();
        for kv in self.inner.entries.iter() {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// Save an entry's new state durably, moving it in the schedule.
    pub async fn update(&self, entry: &Entry) -> Result<(), QueueError> {
        let record = serde_json::to_vec(entry)?;
        let inner = &self.inner;
        let id = entry.id.as_bytes();
        let at = slot(entry.next_attempt, &entry.id);
        let result = (&inner.entries, &inner.schedule).transaction(|(entries, schedule)| {
            if let Some(old) = entries.get(id)? {
                let old: Entry = serde_json::from_slice(&old)
                    .map_err(|_| ConflictableTransactionError::Abort(()))?;
                schedule.remove(slot(old.next_attempt, &old.id))?;
            }
            entries.insert(id, record.clone())?;
            schedule.insert(at.clone(), &[])?;
            Ok(())
        });
        finish(result)?;
        self.inner.db.flush_async().await?;
        Ok(())
    }

    /// Remove a finished entry and its spool file. The idempotency key stays, so
    /// a very late retry of the same submission is still recognised.
    pub async fn remove(&self, id: &str) -> Result<(), QueueError> {
        let inner = &self.inner;
        let result = (&inner.entries, &inner.schedule).transaction(|(entries, schedule)| {
            if let Some(old) = entries.remove(id.as_bytes())? {
                let old: Entry = serde_json::from_slice(&old)
                    .map_err(|_| ConflictableTransactionError::Abort(()))?;
                schedule.remove(slot(old.next_attempt, &old.id))?;
            }
            Ok(())
        });
        finish(result)?;
        self.inner.db.flush_async().await?;
        let _ = tokio::fs::remove_file(self.path(id)).await;
        Ok(())
    }

    /// Open the spooled message for reading.
    pub async fn open_message(&self, id: &str) -> Result<tokio::fs::File, QueueError> {
        Ok(tokio::fs::File::open(self.path(id)).await?)
    }

    /// Wake the delivery loop (a new message, or a manual flush).
    pub fn kick(&self) {
        self.inner.notify.notify_one();
    }

    /// Wait for a kick.
    pub async fn kicked(&self) {
        self.inner.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reopen in the same process, retrying briefly: sled's flusher thread may
    /// hold the file lock a moment after the previous `Db` is dropped.
    fn reopen(dir: &Path) -> Queue {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Queue::open(dir) {
                Ok(q) => return q,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("reopening the queue: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn committed_messages_survive_reopen_and_keys_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let mut w = q.writer(1000).await.unwrap();
        w.write(b"Subject: hi\r\n\r\nbody\r\n").await.unwrap();
        let (id, dup) = q
            .commit(w, "k1", "a@x.test", &["b@y.test".into()])
            .await
            .unwrap();
        assert!(!dup);
        let mut w = q.writer(1000).await.unwrap();
        w.write(b"again").await.unwrap();
        let (id2, dup) = q
            .commit(w, "k1", "a@x.test", &["b@y.test".into()])
            .await
            .unwrap();
        assert!(dup);
        assert_eq!(id, id2);
        drop(q);
        let q = reopen(dir.path());
        let all = q.list().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].rcpts[0].addr, "b@y.test");
        let bytes = std::fs::read(dir.path().join("spool").join(format!("{id}.eml"))).unwrap();
        assert_eq!(bytes, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[tokio::test]
    async fn the_schedule_hands_out_due_entries_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        // Three entries due at 3000, 1000 and 2000 (explicit times, not the clock).
        for (k, at) in [("a", 3000), ("b", 1000), ("c", 2000)] {
            let w = q.writer(100).await.unwrap();
            let id = q.commit(w, k, "", &["x@y.test".into()]).await.unwrap().0;
            let mut e = q.get(&id).unwrap().unwrap();
            e.next_attempt = at;
            q.update(&e).await.unwrap();
            ids.push(id);
        }
        let order = |now, limit| -> Vec<String> {
            q.due(now, limit)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(order(999, 10), Vec::<String>::new());
        assert_eq!(order(2000, 10), vec![ids[1].clone(), ids[2].clone()]);
        assert_eq!(
            order(5000, 10),
            vec![ids[1].clone(), ids[2].clone(), ids[0].clone()]
        );
        assert_eq!(order(5000, 1), vec![ids[1].clone()], "the limit holds");
        assert_eq!(q.next_due().unwrap(), Some(1000));
        // Moving an entry moves its slot; removing it removes the slot.
        let mut b = q.get(&ids[1]).unwrap().unwrap();
        b.next_attempt = 4000;
        q.update(&b).await.unwrap();
        assert_eq!(order(3500, 10), vec![ids[2].clone(), ids[0].clone()]);
        q.remove(&ids[2]).await.unwrap();
        assert_eq!(order(5000, 10), vec![ids[0].clone(), ids[1].clone()]);
        // A stale slot (as a crash between trees would leave) is dropped, not
        // counted against the limit, and the index is rebuilt on reopen.
        q.inner.schedule.insert(slot(10, &ids[0]), &[]).unwrap();
        assert_eq!(order(5000, 2), vec![ids[0].clone(), ids[1].clone()]);
        drop(q);
        let q = reopen(dir.path());
        assert_eq!(q.next_due().unwrap(), Some(3000));
        assert_eq!(q.due(5000, 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn opening_sweeps_spool_files_no_entry_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let w = q.writer(100).await.unwrap();
        let (kept, _) = q.commit(w, "k", "", &["x@y.test".into()]).await.unwrap();
        drop(q);
        let spool = dir.path().join("spool");
        std::fs::write(spool.join("DEADBEEF.eml"), b"never acknowledged").unwrap();
        std::fs::write(spool.join("CAFE.tmp"), b"half written").unwrap();
        let _q = reopen(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{kept}.eml")]);
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let mut w = q.writer(4).await.unwrap();
        w.write(b"12345").await.unwrap();
        assert!(matches!(
            q.commit(w, "k", "", &["b@y.test".into()]).await,
            Err(QueueError::TooBig(4))
        ));
        assert!(q.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }
}
