//! The durable queue: one spool file per message (its envelope in a header
//! record, then the bytes), and an index in one sled tree owned by one writer
//! thread (`facteur_store::Writer`). The fsynced spool file is the truth; the
//! index (entries, idempotency keys, schedule) is rebuilt from it at start.
//!
//! Order of writes and syncs for a message (RFC 5321 §6.1: a 250 is a promise):
//! 1. the intake task writes `ID.tmp`: the header record (envelope: key,
//!    sender, recipients, flags), then the message as it streams in;
//! 2. it `fsync`s `ID.tmp` and renames it to `ID.eml` (complete, or absent);
//! 3. it marks the spool directory dirty and sends the commit request;
//! 4. the writer, before applying its batch, `fsync`s the spool directory
//!    once for every rename marked before (the name is durable);
//! 5. it applies each request as one atomic sled `Batch` (entry `e/ID`, key
//!    `k/KEY`, schedule slot `s/TIME ID`), or finds the key already queued
//!    (a retried submission: the new file is removed, the first copy kept);
//! 6. once per batch: `Db::flush`, then `SledFiles::sync` (fsync of sled's log,
//!    new files and directory: sled's own flush ends in `sync_file_range`);
//! 7. only then is every request of the batch answered: 250 / the gRPC reply.
//!
//! Removing a delivered message: unlink `ID.eml`, mark the directory dirty,
//! then the writer's batch fsyncs the directory before it deletes the index
//! entry. So at start: a spool file without an entry is rebuilt from its
//! header (or removed if its key belongs to another message: a duplicate); an
//! entry without a spool file was delivered and is dropped; `*.tmp` files were
//! never acknowledged and are removed.
//!
//! Disk full: intake refuses new mail (452 4.3.1) while less than
//! `queue.min_free_bytes` is free, so sled keeps room for the state of what
//! was acknowledged. If a sled flush fails anyway (ENOSPC), sled keeps the
//! error for good (its global error), so the writer reopens the database
//! before the next batch: the queue recovers by itself once space returns.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use facteur_store::durable::{self, SledDb};
use facteur_store::{Owned, WriteError, Writer, WriterOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue i/o: {0}")]
    Io(io::Error),
    /// The disk is full or below the reserve: a transient refusal (452 4.3.1).
    #[error("queue disk full: {0}")]
    Full(String),
    #[error("queue database: {0}")]
    Db(sled::Error),
    #[error("queue record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("message larger than {0} bytes")]
    TooBig(u64),
    #[error("a queue record cannot be read")]
    Corrupt,
    #[error("the queue writer has stopped")]
    Stopped,
}

impl From<io::Error> for QueueError {
    fn from(e: io::Error) -> Self {
        if durable::is_disk_full(&e) {
            QueueError::Full(e.to_string())
        } else {
            QueueError::Io(e)
        }
    }
}

impl From<sled::Error> for QueueError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) => e.into(),
            other => QueueError::Db(other),
        }
    }
}

impl From<WriteError> for QueueError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Sync(e) if durable::is_disk_full(&e) => QueueError::Full(e.to_string()),
            WriteError::Sync(e) => QueueError::Io(io::Error::new(e.kind(), e.to_string())),
            WriteError::Stopped => QueueError::Stopped,
        }
    }
}

impl QueueError {
    /// A full disk (or one below the reserve): answer 452 4.3.1, retry later.
    pub fn is_full(&self) -> bool {
        matches!(self, QueueError::Full(_))
    }
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
    /// Where the message starts in the spool file (after the header record;
    /// 0 for files spooled before the header existed).
    #[serde(default)]
    pub offset: u64,
    /// On hold (`facteur-mta queue hold`): never delivered until released.
    /// Held entries have no schedule slot. Absent in records written before
    /// holds existed: those read as not held.
    #[serde(default)]
    pub held: bool,
}

impl Entry {
    pub fn is_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.status != RcptStatus::Pending)
    }
}

/// The envelope of a message, as the header record of its spool file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Envelope {
    /// Idempotency key; `None`: derived from the queue id (SMTP has no key).
    pub key: Option<String>,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default)]
    pub eight_bit: bool,
    #[serde(default)]
    pub created: i64,
}

/// The first line of a spool file: magic, version, length of the JSON record.
const MAGIC: &str = "FACTEUR-QUEUE 1 ";
/// A header record larger than this is not ours.
const MAX_HEADER: u64 = 64 * 1024 * 1024;

fn header_record(env: &Envelope) -> Result<Vec<u8>, QueueError> {
    let json = serde_json::to_vec(env)?;
    let mut out = format!("{MAGIC}{}\r\n", json.len()).into_bytes();
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// Reads the header record of a spool file: the envelope and where the
/// message starts. `None` when the file has no (valid) header.
fn read_header(path: &Path) -> io::Result<Option<(Envelope, u64)>> {
    use std::io::{BufRead, Read};
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = Vec::new();
    (&mut f).take(64).read_until(b'\n', &mut line)?;
    let Some(len) = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix(MAGIC))
        .and_then(|l| l.strip_suffix("\r\n"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n <= MAX_HEADER)
    else {
        return Ok(None);
    };
    let mut json = Vec::new();
    (&mut f).take(len + 2).read_to_end(&mut json)?;
    if json.len() as u64 != len + 2 || !json.ends_with(b"\r\n") {
        return Ok(None);
    }
    json.truncate(len as usize);
    Ok(serde_json::from_slice(&json)
        .ok()
        .map(|env| (env, line.len() as u64 + len + 2)))
}

/// Options of the queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// New mail is refused while less than this is free on the queue's disk.
    pub min_free_bytes: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Writer<Index>,
    spool: PathBuf,
    /// Set after a spool rename or unlink, before the request that needs it
    /// durable is sent; the writer fsyncs the directory once for all of them.
    spool_dirty: Arc<AtomicBool>,
    notify: Notify,
    min_free: u64,
}

/// What the queue gauges show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: usize,
    /// Unix time the oldest entry was queued; none when the queue is empty.
    pub oldest_created: Option<i64>,
}

/// Key prefixes of the one index tree.
const ENTRY: &[u8] = b"e/";
const KEY: &[u8] = b"k/";
const SLOT: &[u8] = b"s/";

fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + rest.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(rest);
    k
}

/// The schedule key: `s/`, the time (order-preserving big-endian), the id.
fn slot(at: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(SLOT.len() + 8 + id.len());
    k.extend_from_slice(SLOT);
    k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn unslot(k: &[u8]) -> (i64, &[u8]) {
    let body = &k[SLOT.len().min(k.len())..];
    let mut t = [0u8; 8];
    let n = 8.min(body.len());
    t[..n].copy_from_slice(&body[..n]);
    ((u64::from_be_bytes(t) ^ (1 << 63)) as i64, &body[n..])
}

/// The index, owned by the writer thread: the only code that touches sled.
struct Index {
    db: SledDb,
    spool: PathBuf,
    spool_dirty: Arc<AtomicBool>,
    min_free: u64,
}

impl Index {
    fn tree(&self) -> Result<&sled::Tree, QueueError> {
        Ok(self.db.tree())
    }

    fn get(&self, id: &str) -> Result<Option<Entry>, QueueError> {
        match self.tree()?.get(prefixed(ENTRY, id.as_bytes()))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Queue `entry` under its key, or return the id the key already has.
    fn commit(&mut self, entry: &Entry, check_space: bool) -> Result<(String, bool), QueueError> {
        let tree = self.tree()?;
        if let Some(first) = tree.get(prefixed(KEY, entry.key.as_bytes()))? {
            return Ok((String::from_utf8_lossy(&first).into_owned(), true));
        }
        // Keep sled's own room: below a quarter of the reserve nothing new is
        // added, whatever the intake saw when the message started.
        if check_space && self.min_free > 0 {
            durable::check_reserve(&self.spool, self.min_free / 4)?;
        }
        let mut batch = sled::Batch::default();
        batch.insert(prefixed(KEY, entry.key.as_bytes()), entry.id.as_bytes());
        batch.insert(
            prefixed(ENTRY, entry.id.as_bytes()),
            serde_json::to_vec(entry)?,
        );
        if !entry.held {
            batch.insert(slot(entry.next_attempt, &entry.id), &[]);
        }
        tree.apply_batch(batch)?;
        self.db.written();
        Ok((entry.id.clone(), false))
    }

    /// Save an entry's new state, moving its slot; a removed entry stays removed.
    /// The hold flag is the stored one: only [`Index::set_held`] changes it, so
    /// an attempt that was in flight when the entry was held does not undo it.
    fn update(&mut self, entry: &Entry) -> Result<(), QueueError> {
        let Some(old) = self.get(&entry.id)? else {
            return Ok(());
        };
        let entry = Entry {
            held: old.held,
            ..entry.clone()
        };
        self.put(&old, &entry)
    }

    /// Replace `old` by `new` (same id) in one batch, with its slot (none when held).
    fn put(&mut self, old: &Entry, new: &Entry) -> Result<(), QueueError> {
        let mut batch = sled::Batch::default();
        batch.remove(slot(old.next_attempt, &old.id));
        batch.insert(prefixed(ENTRY, new.id.as_bytes()), serde_json::to_vec(new)?);
        if !new.held {
            batch.insert(slot(new.next_attempt, &new.id), &[]);
        }
        self.tree()?.apply_batch(batch)?;
        self.db.written();
        Ok(())
    }

    /// Hold or release an entry; a released one is due at `now`. `None`: no such entry.
    fn set_held(&mut self, id: &str, held: bool, now: i64) -> Result<Option<Entry>, QueueError> {
        let Some(old) = self.get(id)? else {
            return Ok(None);
        };
        let mut new = old.clone();
        new.held = held;
        if !held && old.held {
            new.next_attempt = now;
        }
        self.put(&old, &new)?;
        Ok(Some(new))
    }

    /// Make `id` (or every entry) due at `now`; held entries are left alone.
    /// Returns (made due, held), or `None` when `id` names no entry.
    fn flush(&mut self, id: Option<&str>, now: i64) -> Result<Option<(u32, u32)>, QueueError> {
        let entries = match id {
            Some(id) => match self.get(id)? {
                Some(e) => vec![e],
                None => return Ok(None),
            },
            None => self.list()?,
        };
        let (mut flushed, mut held) = (0, 0);
        for old in entries {
            if old.held {
                held += 1;
                continue;
            }
            let new = Entry {
                next_attempt: now.min(old.next_attempt),
                ..old.clone()
            };
            self.put(&old, &new)?;
            flushed += 1;
        }
        Ok(Some((flushed, held)))
    }

    /// Delete an entry and its slot; with `key`, its idempotency key too (a
    /// commit that was not acknowledged).
    fn remove(&mut self, id: &str, key: Option<&str>) -> Result<(), QueueError> {
        let old = self.get(id).ok().flatten();
        let tree = self.tree()?;
        let mut batch = sled::Batch::default();
        if let Some(old) = &old {
            batch.remove(slot(old.next_attempt, &old.id));
        }
        batch.remove(prefixed(ENTRY, id.as_bytes()));
        if let Some(key) = key
            && tree.get(prefixed(KEY, key.as_bytes()))?.as_deref() == Some(id.as_bytes())
        {
            batch.remove(prefixed(KEY, key.as_bytes()));
        }
        tree.apply_batch(batch)?;
        self.db.written();
        Ok(())
    }

    fn due(&self, now: i64, limit: usize) -> Result<Vec<Entry>, QueueError> {
        let end = slot(now.saturating_add(1), "");
        let mut out = Vec::new();
        for kv in self.tree()?.range(SLOT.to_vec()..end) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let (_, id) = unslot(&k);
            let id = String::from_utf8_lossy(id);
            // Every slot is written in the same batch as its entry; a
            // mismatch would be a bug, so it is skipped, not trusted.
            if let Some(e) = self.get(&id)?
                && slot(e.next_attempt, &e.id) == k.as_ref()
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn next_due(&self) -> Result<Option<i64>, QueueError> {
        let mut range = self.tree()?.range(SLOT.to_vec()..prefixed(b"s0", b""));
        Ok(range.next().transpose()?.map(|(k, _)| unslot(&k).0))
    }

    /// How many entries, and when the oldest was queued (ids are time-ordered).
    fn stats(&self) -> Result<QueueStats, QueueError> {
        let tree = self.tree()?;
        let mut messages = 0;
        for k in tree.scan_prefix(ENTRY).keys() {
            k?;
            messages += 1;
        }
        let oldest_created = match tree.scan_prefix(ENTRY).next().transpose()? {
            Some((_, v)) => Some(serde_json::from_slice::<Entry>(&v)?.created),
            None => None,
        };
        Ok(QueueStats {
            messages,
            oldest_created,
        })
    }

    fn list(&self) -> Result<Vec<Entry>, QueueError> {
        let mut out = Vec::new();
        for kv in self.tree()?.scan_prefix(ENTRY) {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// At start: make the index agree with the spool (see the module header).
    fn recover(&mut self) -> Result<(), QueueError> {
        self.migrate()?;
        let tree = self.tree()?.clone();
        let mut seen = std::collections::HashSet::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for f in std::fs::read_dir(&self.spool)? {
            files.push(f?.path());
        }
        files.sort();
        let now = facteur_daemon::trace::now_unix();
        for p in files {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.ends_with(".tmp") {
                // Never complete, never acknowledged.
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let Some(id) = name.strip_suffix(".eml") else {
                continue;
            };
            if self.get(id)?.is_some() {
                seen.insert(id.to_owned());
                continue;
            }
            match read_header(&p)? {
                Some((env, offset)) => {
                    let size = std::fs::metadata(&p)?.len().saturating_sub(offset);
                    let entry = entry_of(id, &env, size, offset, now);
                    let (first, dup) = self.commit(&entry, false)?;
                    if dup && first != id {
                        // A retried submission whose first copy is queued.
                        tracing::info!(%id, %first, "duplicate spool file removed");
                        let _ = std::fs::remove_file(&p);
                    } else {
                        if dup {
                            // The key is ours: only the entry was missing.
                            let mut batch = sled::Batch::default();
                            batch.insert(
                                prefixed(ENTRY, id.as_bytes()),
                                serde_json::to_vec(&entry)?,
                            );
                            batch.insert(slot(entry.next_attempt, id), &[]);
                            tree.apply_batch(batch)?;
                        }
                        tracing::warn!(%id, "queue entry rebuilt from its spool file");
                        seen.insert(id.to_owned());
                    }
                }
                None => {
                    // No envelope and no entry: not a message of ours (or a
                    // legacy file that was never acknowledged). Set aside.
                    tracing::error!(%id, "spool file without envelope or entry set aside");
                    let _ = std::fs::rename(&p, p.with_extension("bad"));
                }
            }
        }
        // An entry whose spool file is gone was delivered (the unlink comes
        // first); the schedule is rebuilt from the entries.
        let mut batch = sled::Batch::default();
        for kv in tree.scan_prefix(SLOT) {
            batch.remove(kv?.0);
        }
        for kv in tree.scan_prefix(ENTRY) {
            let (k, v) = kv?;
            let id = String::from_utf8_lossy(&k[ENTRY.len()..]).into_owned();
            if !seen.contains(&id) {
                tracing::info!(%id, "queue entry without spool file dropped (delivered)");
                batch.remove(k);
                continue;
            }
            match serde_json::from_slice::<Entry>(&v) {
                Ok(e) if e.held => {}
                Ok(e) => batch.insert(slot(e.next_attempt, &e.id), &[]),
                Err(err) => {
                    tracing::error!(%id, error = %err, "unreadable queue entry left aside");
                }
            }
        }
        tree.apply_batch(batch)?;
        self.db.written();
        durable::sync_dir(&self.spool)?;
        self.sync()?;
        Ok(())
    }

    /// Moves a queue of the three-tree layout into the one tree.
    fn migrate(&mut self) -> Result<(), QueueError> {
        let (db, tree) = (self.db.db(), self.db.tree());
        let names = db.tree_names();
        for (old, prefix) in [("entries", ENTRY), ("keys", KEY)] {
            if !names.iter().any(|n| n.as_ref() == old.as_bytes()) {
                continue;
            }
            let t = db.open_tree(old)?;
            let mut batch = sled::Batch::default();
            for kv in t.iter() {
                let (k, v) = kv?;
                batch.insert(prefixed(prefix, &k), v);
            }
            tree.apply_batch(batch)?;
            db.flush()?;
            db.drop_tree(old)?;
        }
        if names.iter().any(|n| n.as_ref() == b"schedule") {
            db.drop_tree("schedule")?;
        }
        self.db.written();
        Ok(())
    }
}

impl Owned for Index {
    fn before_batch(&mut self) -> io::Result<()> {
        // Reads go through the writer too: no reader holds the tree.
        self.db.prepare(|_| {})?;
        if self.spool_dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = durable::sync_dir(&self.spool)
        {
            self.spool_dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.db.sync()
    }
}

fn entry_of(id: &str, env: &Envelope, size: u64, offset: u64, now: i64) -> Entry {
    let created = if env.created > 0 { env.created } else { now };
    Entry {
        id: id.to_owned(),
        key: env.key.clone().unwrap_or_else(|| format!("smtp-{id}")),
        mail_from: env.mail_from.clone(),
        rcpts: env
            .rcpts
            .iter()
            .map(|r| Rcpt {
                addr: r.clone(),
                status: RcptStatus::Pending,
                last_error: String::new(),
            })
            .collect(),
        created,
        attempts: 0,
        next_attempt: now,
        size,
        smtputf8: env.smtputf8,
        eight_bit: env.eight_bit,
        offset,
        held: false,
    }
}

/// A message being received into the spool.
pub struct SpoolWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    id: String,
    envelope: Envelope,
    offset: u64,
    size: u64,
    max: u64,
    too_big: bool,
    preamble: u64,
    /// Where the key placeholder sits in the header record, for a key known
    /// only at the end ([`SpoolWriter::set_key`]).
    key_at: Option<u64>,
}

/// The idempotency key given when the real one is known only once the whole
/// message is in (SMTP intake: `smtp:` and a SHA-256): the header record
/// keeps a slot of the same length, overwritten before the file is fsynced,
/// so a spool file rebuilt into a lost index keeps its key.
pub const LATE_KEY: &str = "smtp:0000000000000000000000000000000000000000000000000000000000000000";

impl SpoolWriter {
    /// The queue id this message will get.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Append bytes; past the size limit the rest is discarded and `commit` fails.
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

    /// Sets the idempotency key once the message is known (SMTP intake keys a
    /// message by its content, see `intake::content_key`); the writer must
    /// have been made with [`LATE_KEY`] and `key` must be as long. The spool
    /// header gets it too at [`Queue::commit`].
    pub fn set_key(&mut self, key: String) {
        self.envelope.key = Some(key);
    }

    /// Mark what was written so far as ours (trace headers), not the sender's:
    /// it does not count toward the size limit the sender was promised (SIZE).
    pub fn end_preamble(&mut self) {
        self.preamble = self.size;
        self.max = self.max.saturating_add(self.size);
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

impl Queue {
    /// Open (or create) the queue under `dir` (`dir/db`, `dir/spool`) and
    /// recover the index from the spool. Blocking: call it off the async
    /// workers. sled's lock is taken first: a second process fails here.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<Self, QueueError> {
        let spool = dir.join("spool");
        facteur_daemon::files::private_dir(dir)?;
        facteur_daemon::files::private_dir(&spool)?;
        let db_dir = dir.join("db");
        let spool_dirty = Arc::new(AtomicBool::new(false));
        let mut index = Index {
            db: SledDb::open(&db_dir, "queue")?,
            spool: spool.clone(),
            spool_dirty: Arc::clone(&spool_dirty),
            min_free: opts.min_free_bytes,
        };
        index.recover()?;
        let writer = Writer::spawn(WriterOptions::named("mta-queue"), index)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                spool,
                spool_dirty,
                notify: Notify::new(),
                min_free: opts.min_free_bytes,
            }),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.inner.spool.join(format!("{id}.eml"))
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Index) -> Result<R, QueueError> + Send + 'static,
    ) -> Result<R, QueueError> {
        self.inner.writer.call(f).await?
    }

    /// Fails with [`QueueError::Full`] while the queue's disk is below the
    /// reserve (`queue.min_free_bytes`): new mail gets 452 4.3.1.
    pub async fn check_space(&self) -> Result<(), QueueError> {
        let spool = self.inner.spool.clone();
        let reserve = self.inner.min_free;
        tokio::task::spawn_blocking(move || durable::check_reserve(&spool, reserve))
            .await
            .map_err(|_| QueueError::Stopped)??;
        Ok(())
    }

    /// Start receiving a message, at most `max` bytes, with its envelope:
    /// the spool file begins with the envelope's header record.
    pub async fn writer(
        &self,
        max: u64,
        mut envelope: Envelope,
    ) -> Result<SpoolWriter, QueueError> {
        self.check_space().await?;
        let id = new_id();
        if envelope.created == 0 {
            envelope.created = facteur_daemon::trace::now_unix();
        }
        let header = header_record(&envelope)?;
        let key_at = (envelope.key.as_deref() == Some(LATE_KEY))
            .then(|| {
                header
                    .windows(LATE_KEY.len())
                    .position(|w| w == LATE_KEY.as_bytes())
            })
            .flatten()
            .map(|at| at as u64);
        let tmp = self.inner.spool.join(format!("{id}.tmp"));
        let file = tokio::fs::File::create(&tmp).await?;
        let mut writer = SpoolWriter {
            file,
            tmp,
            id,
            envelope,
            offset: header.len() as u64,
            size: 0,
            max,
            too_big: false,
            preamble: 0,
            key_at,
        };
        writer.file.write_all(&header).await?;
        Ok(writer)
    }

    /// Make the message durable and queue it. Returns `(queue id, duplicate)`:
    /// if its key was queued before, the first id is returned and nothing is
    /// added. Answered only once the index is synced (group commit).
    pub async fn commit(&self, mut writer: SpoolWriter) -> Result<(String, bool), QueueError> {
        if writer.too_big {
            return Err(QueueError::TooBig(writer.max - writer.preamble));
        }
        if let (Some(at), Some(key)) = (writer.key_at, writer.envelope.key.as_deref()) {
            if key.len() != LATE_KEY.len() || key == LATE_KEY {
                return Err(QueueError::Io(io::Error::other("late key not set")));
            }
            writer.file.seek(std::io::SeekFrom::Start(at)).await?;
            writer.file.write_all(key.as_bytes()).await?;
        }
        writer.file.flush().await?;
        writer.file.sync_all().await?;
        let final_path = self.path(&writer.id);
        tokio::fs::rename(&writer.tmp, &final_path).await?;
        self.inner.spool_dirty.store(true, Ordering::Release);
        let now = facteur_daemon::trace::now_unix();
        let entry = entry_of(
            &writer.id,
            &writer.envelope,
            writer.size,
            writer.offset,
            now,
        );
        let id = entry.id.clone();
        let key = entry.key.clone();
        let result = self.call(move |ix| ix.commit(&entry, true)).await;
        match result {
            Ok((first, true)) => {
                // The first copy is kept; this one was never acknowledged.
                let _ = tokio::fs::remove_file(&final_path).await;
                Ok((first, true))
            }
            Ok((id, false)) => {
                self.inner.notify.notify_one();
                Ok((id, false))
            }
            Err(e) => {
                // Not acknowledged: the file goes (else the next start would
                // queue a message the sender was told to retry), and the
                // index forgets it if the failed batch reached the disk.
                let _ = tokio::fs::remove_file(&final_path).await;
                self.inner.spool_dirty.store(true, Ordering::Release);
                let _ = self.call(move |ix| ix.remove(&id, Some(&key))).await;
                Err(e)
            }
        }
    }

    /// Up to `limit` entries whose next attempt is due at `now`, earliest first.
    pub async fn due(&self, now: i64, limit: usize) -> Result<Vec<Entry>, QueueError> {
        self.call(move |ix| ix.due(now, limit)).await
    }

    /// The earliest next attempt of any entry.
    pub async fn next_due(&self) -> Result<Option<i64>, QueueError> {
        self.call(|ix| ix.next_due()).await
    }

    /// One entry as stored now.
    pub async fn get(&self, id: &str) -> Result<Option<Entry>, QueueError> {
        let id = id.to_owned();
        self.call(move |ix| ix.get(&id)).await
    }

    /// How many messages are queued and when the oldest came (for the gauges).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.call(|ix| ix.stats()).await
    }

    /// Every entry (for `facteur-mta queue list`).
    pub async fn list(&self) -> Result<Vec<Entry>, QueueError> {
        self.call(|ix| ix.list()).await
    }

    /// Put an entry on hold (`true`) or release it (`false`: due now). `None`:
    /// no such entry. Durable before it returns.
    pub async fn set_held(&self, id: &str, held: bool) -> Result<Option<Entry>, QueueError> {
        let id = id.to_owned();
        let now = facteur_daemon::trace::now_unix();
        let entry = self.call(move |ix| ix.set_held(&id, held, now)).await?;
        if !held {
            self.kick();
        }
        Ok(entry)
    }

    /// Make one entry (or all) due now and wake the delivery loop; held
    /// entries stay held. Returns (made due, held); `None`: no such entry.
    pub async fn flush(&self, id: Option<&str>) -> Result<Option<(u32, u32)>, QueueError> {
        let id = id.map(str::to_owned);
        let now = facteur_daemon::trace::now_unix();
        let counts = self.call(move |ix| ix.flush(id.as_deref(), now)).await?;
        self.kick();
        Ok(counts)
    }

    /// Save an entry's new state durably, moving it in the schedule.
    pub async fn update(&self, entry: &Entry) -> Result<(), QueueError> {
        let entry = entry.clone();
        self.call(move |ix| ix.update(&entry)).await
    }

    /// Remove a finished entry: its spool file first (made durable by the
    /// writer's directory fsync), then the index entry. The idempotency key
    /// stays, so a very late retry of the same submission is still recognised.
    pub async fn remove(&self, id: &str) -> Result<(), QueueError> {
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.spool_dirty.store(true, Ordering::Release);
        let id = id.to_owned();
        self.call(move |ix| ix.remove(&id, None)).await
    }

    /// Open the spooled message for reading, positioned at its first byte.
    /// `NotFound` means the message was removed (delivered).
    pub async fn open_message(&self, entry: &Entry) -> Result<tokio::fs::File, QueueError> {
        let mut f = tokio::fs::File::open(self.path(&entry.id)).await?;
        if entry.offset > 0 {
            f.seek(SeekFrom::Start(entry.offset)).await?;
        }
        Ok(f)
    }

    /// Is the message's spool file still there? (It goes first on removal.)
    pub async fn spooled(&self, entry: &Entry) -> bool {
        // An error other than "not found" counts as there: never drop on doubt.
        !matches!(
            tokio::fs::metadata(self.path(&entry.id)).await,
            Err(e) if e.kind() == io::ErrorKind::NotFound
        )
    }

    /// The header block of a spooled message (at most 64 KiB).
    pub async fn headers(&self, entry: &Entry) -> Vec<u8> {
        let Ok(file) = self.open_message(entry).await else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        let _ = file.take(64 * 1024).read_to_end(&mut buf).await;
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end + 2);
        }
        buf
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
    use std::time::{Duration, Instant};

    fn opts() -> QueueOptions {
        QueueOptions { min_free_bytes: 0 }
    }

    /// Reopen in the same process, retrying briefly: sled's flusher thread may
    /// hold the file lock a moment after the previous `Db` is dropped.
    fn reopen(dir: &Path) -> Queue {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Queue::open(dir, opts()) {
                Ok(q) => return q,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("reopening the queue: {e}"),
            }
        }
    }

    /// The index database itself, for tests that play a crash.
    fn raw_index(dir: &Path) -> (sled::Db, sled::Tree) {
        let db = SledDb::open(&dir.join("db"), "queue").unwrap();
        (db.db().clone(), db.tree().clone())
    }

    fn env(key: &str, rcpt: &str) -> Envelope {
        Envelope {
            key: Some(key.into()),
            mail_from: "a@x.test".into(),
            rcpts: vec![rcpt.into()],
            ..Envelope::default()
        }
    }

    async fn queue_one(q: &Queue, key: &str, body: &[u8]) -> (String, bool) {
        let mut w = q.writer(1000, env(key, "b@y.test")).await.unwrap();
        w.write(body).await.unwrap();
        q.commit(w).await.unwrap()
    }

    async fn body(q: &Queue, e: &Entry) -> Vec<u8> {
        let mut f = q.open_message(e).await.unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).await.unwrap();
        out
    }

    fn spool_names(dir: &Path) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        left
    }

    #[tokio::test]
    async fn committed_messages_survive_reopen_and_keys_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let (id, dup) = queue_one(&q, "k1", b"Subject: hi\r\n\r\nbody\r\n").await;
        assert!(!dup);
        let (id2, dup) = queue_one(&q, "k1", b"again").await;
        assert!(dup);
        assert_eq!(id, id2);
        // The duplicate's spool file is gone, the first copy kept.
        assert_eq!(spool_names(dir.path()), vec![format!("{id}.eml")]);
        drop(q);
        let q = reopen(dir.path());
        let all = q.list().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].rcpts[0].addr, "b@y.test");
        assert_eq!(all[0].size, 21);
        assert_eq!(body(&q, &all[0]).await, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(q.headers(&all[0]).await, b"Subject: hi\r\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_commits_updates_and_removes_all_complete() {
        // The shape that deadlocked sled transactions on the async workers.
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let (id, _) = queue_one(&q, &format!("k{i}"), b"x\r\n").await;
                let mut e = q.get(&id).await.unwrap().unwrap();
                e.attempts += 1;
                q.update(&e).await.unwrap();
                if i % 2 == 0 {
                    q.remove(&id).await.unwrap();
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("no hang")
                .unwrap();
        }
        let all = q.list().await.unwrap();
        assert_eq!(all.len(), 100);
        assert!(all.iter().all(|e| e.attempts == 1));
        assert_eq!(spool_names(dir.path()).len(), 100);
    }

    #[tokio::test]
    async fn the_schedule_hands_out_due_entries_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let mut ids = Vec::new();
        // Three entries due at 3000, 1000 and 2000 (explicit times, not the clock).
        for (k, at) in [("a", 3000), ("b", 1000), ("c", 2000)] {
            let id = queue_one(&q, k, b"x").await.0;
            let mut e = q.get(&id).await.unwrap().unwrap();
            e.next_attempt = at;
            q.update(&e).await.unwrap();
            ids.push(id);
        }
        let order = async |now, limit| -> Vec<String> {
            q.due(now, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(order(999, 10).await, Vec::<String>::new());
        assert_eq!(order(2000, 10).await, vec![ids[1].clone(), ids[2].clone()]);
        assert_eq!(
            order(5000, 10).await,
            vec![ids[1].clone(), ids[2].clone(), ids[0].clone()]
        );
        assert_eq!(
            order(5000, 1).await,
            vec![ids[1].clone()],
            "the limit holds"
        );
        assert_eq!(q.next_due().await.unwrap(), Some(1000));
        // Moving an entry moves its slot; removing it removes the slot.
        let mut b = q.get(&ids[1]).await.unwrap().unwrap();
        b.next_attempt = 4000;
        q.update(&b).await.unwrap();
        assert_eq!(order(3500, 10).await, vec![ids[2].clone(), ids[0].clone()]);
        q.remove(&ids[2]).await.unwrap();
        assert_eq!(order(5000, 10).await, vec![ids[0].clone(), ids[1].clone()]);
        // A removed entry stays removed: a late update does not bring it back.
        let c = Entry {
            id: ids[2].clone(),
            ..b.clone()
        };
        q.update(&c).await.unwrap();
        assert!(q.get(&ids[2]).await.unwrap().is_none());
        drop(q);
        let q = reopen(dir.path());
        assert_eq!(q.next_due().await.unwrap(), Some(3000));
        assert_eq!(q.due(5000, 10).await.unwrap().len(), 2);
        assert_eq!(q.get(&ids[1]).await.unwrap().unwrap().next_attempt, 4000);
    }

    #[tokio::test]
    async fn a_missing_index_entry_is_rebuilt_from_the_spool_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let (lost, _) = queue_one(&q, "lost", b"Subject: lost\r\n\r\nx\r\n").await;
        let (orphan, _) = queue_one(&q, "orphan", b"Subject: orphan\r\n\r\ny\r\n").await;
        let (kept, _) = queue_one(&q, "kept", b"kept").await;
        drop(q);
        // A crash after the spool file was durable, before its index entry:
        // `lost` has neither entry nor key, `orphan` keeps only its key.
        {
            let (db, tree) = raw_index(dir.path());
            for k in [
                prefixed(ENTRY, lost.as_bytes()),
                prefixed(KEY, b"lost"),
                prefixed(ENTRY, orphan.as_bytes()),
            ] {
                tree.remove(k).unwrap();
            }
            db.flush().unwrap();
        }
        let q = reopen(dir.path());
        let mut all = q.list().await.unwrap();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["kept", "lost", "orphan"]);
        let rebuilt = all.iter().find(|e| e.id == lost).unwrap();
        assert_eq!(rebuilt.mail_from, "a@x.test");
        assert_eq!(rebuilt.rcpts[0].addr, "b@y.test");
        assert_eq!(rebuilt.rcpts[0].status, RcptStatus::Pending);
        assert_eq!(body(&q, rebuilt).await, b"Subject: lost\r\n\r\nx\r\n");
        // Rebuilt entries are due, and their key is known again.
        assert_eq!(q.due(i64::MAX - 1, 10).await.unwrap().len(), 3);
        let (again, dup) = queue_one(&q, "lost", b"retry").await;
        assert!(dup);
        assert_eq!(again, lost);
        let mut want = vec![
            format!("{kept}.eml"),
            format!("{lost}.eml"),
            format!("{orphan}.eml"),
        ];
        want.sort();
        assert_eq!(spool_names(dir.path()), want);
    }

    #[tokio::test]
    async fn a_key_known_only_at_the_end_is_in_the_spool_and_survives_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let late = format!("smtp:{}", "ab".repeat(32));
        let mut w = q.writer(1000, env(LATE_KEY, "b@y.test")).await.unwrap();
        w.write(b"Subject: late\r\n\r\nz\r\n").await.unwrap();
        w.set_key(late.clone());
        let (id, dup) = q.commit(w).await.unwrap();
        assert!(!dup);
        assert_eq!(q.get(&id).await.unwrap().unwrap().key, late);
        // Without its key the message is refused rather than queued unkeyed.
        let w = q.writer(1000, env(LATE_KEY, "b@y.test")).await.unwrap();
        assert!(q.commit(w).await.is_err());
        drop(q);
        // Lose the index entry and its key, as a crash before the commit would.
        {
            let (db, tree) = raw_index(dir.path());
            tree.remove(prefixed(ENTRY, id.as_bytes())).unwrap();
            tree.remove(prefixed(KEY, late.as_bytes())).unwrap();
            db.flush().unwrap();
        }
        let q = reopen(dir.path());
        let rebuilt = q.get(&id).await.unwrap().unwrap();
        assert_eq!(rebuilt.key, late, "the rebuilt entry keeps the late key");
        assert_eq!(body(&q, &rebuilt).await, b"Subject: late\r\n\r\nz\r\n");
        // So the same message sent again maps to it.
        let mut w = q.writer(1000, env(LATE_KEY, "b@y.test")).await.unwrap();
        w.write(b"Subject: late\r\n\r\nz\r\n").await.unwrap();
        w.set_key(late);
        assert_eq!(q.commit(w).await.unwrap(), (id, true));
    }

    #[tokio::test]
    async fn at_start_duplicates_temp_files_and_removed_messages_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let (first, _) = queue_one(&q, "k", b"first").await;
        let (done, _) = queue_one(&q, "done", b"delivered").await;
        drop(q);
        let spool = dir.path().join("spool");
        // A second copy of `k` whose commit found the key taken, and the
        // process died before removing it.
        std::fs::copy(
            spool.join(format!("{first}.eml")),
            spool.join("0000000000000000001.eml"),
        )
        .unwrap();
        std::fs::write(spool.join("CAFE.tmp"), b"half written").unwrap();
        std::fs::write(spool.join("BEEF.eml"), b"no envelope").unwrap();
        // A removal that unlinked the spool file, then died.
        std::fs::remove_file(spool.join(format!("{done}.eml"))).unwrap();
        let q = reopen(dir.path());
        let mut want = vec!["BEEF.bad".to_owned(), format!("{first}.eml")];
        want.sort();
        assert_eq!(spool_names(dir.path()), want);
        let all = q.list().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, first);
    }

    #[tokio::test]
    async fn held_entries_are_never_due_survive_reopen_and_flush_skips_them() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let (held, _) = queue_one(&q, "h", b"x").await;
        let (free, _) = queue_one(&q, "f", b"y").await;
        for id in [&held, &free] {
            let mut e = q.get(id).await.unwrap().unwrap();
            e.next_attempt = i64::MAX / 4;
            q.update(&e).await.unwrap();
        }
        assert!(q.set_held(&held, true).await.unwrap().unwrap().held);
        assert!(q.set_held("nope", true).await.unwrap().is_none());
        // An attempt that was in flight saves its copy: the hold stays.
        let mut stale = q.get(&held).await.unwrap().unwrap();
        stale.held = false;
        stale.attempts = 3;
        q.update(&stale).await.unwrap();
        let now = q.get(&held).await.unwrap().unwrap();
        assert!(now.held);
        assert_eq!(now.attempts, 3);
        assert!(
            q.due(facteur_daemon::trace::now_unix(), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(q.flush(None).await.unwrap(), Some((1, 1)));
        assert_eq!(q.flush(Some("nope")).await.unwrap(), None);
        let due: Vec<String> = q
            .due(i64::MAX - 1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(due, vec![free.clone()]);
        drop(q);
        let q = reopen(dir.path());
        assert!(q.get(&held).await.unwrap().unwrap().held);
        assert_eq!(
            q.due(facteur_daemon::trace::now_unix(), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        let released = q.set_held(&held, false).await.unwrap().unwrap();
        assert!(!released.held);
        let due_now = q.due(facteur_daemon::trace::now_unix(), 10).await.unwrap();
        assert_eq!(due_now.len(), 2, "released and flushed entries are due now");
    }

    #[test]
    fn a_record_written_before_holds_existed_reads_as_not_held() {
        let old = r#"{"id":"A","key":"k","mail_from":"a@x.test","rcpts":[{"addr":"b@y.test","status":"Pending","last_error":""}],"created":1,"attempts":0,"next_attempt":1,"size":3,"smtputf8":false,"eight_bit":false,"offset":0}"#;
        let e: Entry = serde_json::from_str(old).unwrap();
        assert!(!e.held);
        assert_eq!(e.rcpts[0].addr, "b@y.test");
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let mut w = q.writer(4, env("k", "b@y.test")).await.unwrap();
        w.write(b"12345").await.unwrap();
        assert!(matches!(q.commit(w).await, Err(QueueError::TooBig(4))));
        assert!(q.list().await.unwrap().is_empty());
        assert!(spool_names(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn below_the_reserve_new_mail_is_refused_as_disk_full() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(
            dir.path(),
            QueueOptions {
                min_free_bytes: u64::MAX,
            },
        )
        .unwrap();
        let err = q.writer(100, env("k", "b@y.test")).await.err().unwrap();
        assert!(err.is_full(), "{err}");
        assert!(spool_names(dir.path()).is_empty());
    }
}
