//! The sled backend of the storage seam: `SledStore` implements `MailStore`,
//! `BlobStore` and `ChangeFeed` on one embedded sled database.
//!
//! Layout (all integers big-endian so that key ranges scan in numeric order):
//!
//! | tree          | key                                   | value                          |
//! |---------------|---------------------------------------|--------------------------------|
//! | `blobs`       | sha256 of the bytes (32 raw bytes)    | the bytes                      |
//! | `mailboxes`   | user `\0` mailbox name                | mailbox record (below)         |
//! | `uidvalidity` | user                                  | last UIDVALIDITY given (u32)   |
//! | `messages`    | mailbox id (u64) ++ uid (u32)         | message record (below)         |
//! | `changes`     | mailbox id (u64) ++ modseq (u64)      | uid (u32) ++ kind (u8)         |
//! | `delivered`   | user `\0` message key                 | uid (u32) ++ uidvalidity (u32) |
//! | `accounts`    | see `crate::accounts`                 |                                |
//!
//! Messages are keyed by an internal mailbox id (never reused, from
//! `generate_id`), not by name, so a rename rewrites one record. The
//! `changes` tree holds exactly one entry per uid ever filed: the entry of a
//! live message moves to its new modseq on each change (kind 0), an expunged
//! message leaves a tombstone (kind 1) forever, so `changes_since` is one
//! range scan. Blobs live in their own tree: simple and transactional with
//! the metadata; they are never garbage-collected yet (content-addressed and
//! shared between recipients).
//!
//! The POP3 maildrop locks are kept in memory: they belong to live sessions,
//! and a restart ends every session, so a lock must not survive it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use ::sled::{Db, IVec, Transactional, Tree};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{
    BlobId, BlobStore, Change, ChangeFeed, DELETED, Filed, FlagOp, INBOX, MailStore, MailboxStatus,
    MessageKey, MessageMeta, SEEN, StoreError, StoreFlagsResult, Uid, apply_flags, has_flag,
    normalize_mailbox, normalize_user, same_flags,
};
use crate::accounts::{ACCOUNTS_TREE, Accounts};

type TxError = ConflictableTransactionError<StoreError>;

fn abort<T>(e: StoreError) -> Result<T, TxError> {
    Err(ConflictableTransactionError::Abort(e))
}

fn from_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Backend(e),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

// ---------------------------------------------------------------------------
// Binary records: hand-written fixed layouts, each starting with a version byte.

const RECORD_V1: u8 = 1;
const CHANGE_LIVE: u8 = 0;
const CHANGE_EXPUNGED: u8 = 1;
const MAX_FLAG_LEN: usize = 1000;

/// Minimal cursor over a record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Mailbox record, 33 bytes: version u8 | id u64 | uidvalidity u32 |
/// uidnext u32 | highest_modseq u64 | exists u32 | unseen u32.
#[derive(Debug, Clone, Copy)]
struct MailboxRec {
    id: u64,
    uidvalidity: u32,
    uidnext: Uid,
    highest_modseq: u64,
    exists: u32,
    unseen: u32,
}

impl MailboxRec {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(33);
        v.push(RECORD_V1);
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.uidvalidity.to_be_bytes());
        v.extend_from_slice(&self.uidnext.to_be_bytes());
        v.extend_from_slice(&self.highest_modseq.to_be_bytes());
        v.extend_from_slice(&self.exists.to_be_bytes());
        v.extend_from_slice(&self.unseen.to_be_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(bytes);
        let parse = |r: &mut Reader<'_>| -> Option<Self> {
            if r.u8()? != RECORD_V1 {
                return None;
            }
            let rec = MailboxRec {
                id: r.u64()?,
                uidvalidity: r.u32()?,
                uidnext: r.u32()?,
                highest_modseq: r.u64()?,
                exists: r.u32()?,
                unseen: r.u32()?,
            };
            r.is_empty().then_some(rec)
        };
        parse(&mut r).ok_or_else(|| corrupt("mailbox record"))
    }

    fn status(&self) -> MailboxStatus {
        MailboxStatus {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            exists: self.exists,
            unseen: self.unseen,
            highest_modseq: self.highest_modseq,
        }
    }

    /// Allocates the next modseq.
    fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }
}

/// Message record: version u8 | uid u32 | size u64 | modseq u64 |
/// internal_date i64 | blob sha256 [32] | flag count u16 |
/// per flag: length u16 | UTF-8 bytes.
fn encode_meta(m: &MessageMeta) -> Result<Vec<u8>, StoreError> {
    let blob = blob_key(&m.blob)?;
    let mut v = Vec::with_capacity(64 + m.flags.iter().map(|f| f.len() + 2).sum::<usize>());
    v.push(RECORD_V1);
    v.extend_from_slice(&m.uid.to_be_bytes());
    v.extend_from_slice(&m.size.to_be_bytes());
    v.extend_from_slice(&m.modseq.to_be_bytes());
    v.extend_from_slice(&m.internal_date.to_be_bytes());
    v.extend_from_slice(&blob);
    let count = u16::try_from(m.flags.len())
        .map_err(|_| StoreError::NotAllowed("too many flags on one message".into()))?;
    v.extend_from_slice(&count.to_be_bytes());
    for f in &m.flags {
        let len =
            u16::try_from(f.len()).map_err(|_| StoreError::NotAllowed("flag too long".into()))?;
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(f.as_bytes());
    }
    Ok(v)
}

fn decode_meta(bytes: &[u8]) -> Result<MessageMeta, StoreError> {
    let parse = |r: &mut Reader<'_>| -> Option<MessageMeta> {
        if r.u8()? != RECORD_V1 {
            return None;
        }
        let uid = r.u32()?;
        let size = r.u64()?;
        let modseq = r.u64()?;
        let internal_date = r.i64()?;
        let blob = BlobId(hex::encode(r.take(32)?));
        let count = r.u16()?;
        let mut flags = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = r.u16()?;
            let f = std::str::from_utf8(r.take(usize::from(len))?).ok()?;
            flags.push(f.to_owned());
        }
        r.is_empty().then_some(MessageMeta {
            uid,
            blob,
            size,
            flags,
            modseq,
            internal_date,
        })
    };
    parse(&mut Reader(bytes)).ok_or_else(|| corrupt("message record"))
}

fn change_value(uid: Uid, kind: u8) -> [u8; 5] {
    let mut v = [0u8; 5];
    v[..4].copy_from_slice(&uid.to_be_bytes());
    v[4] = kind;
    v
}

fn decode_change_value(bytes: &[u8]) -> Result<(Uid, u8), StoreError> {
    let mut r = Reader(bytes);
    let parsed = (|| {
        let uid = r.u32()?;
        let kind = r.u8()?;
        r.is_empty().then_some((uid, kind))
    })();
    parsed.ok_or_else(|| corrupt("change record"))
}

fn delivered_value(uid: Uid, uidvalidity: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&uid.to_be_bytes());
    v[4..].copy_from_slice(&uidvalidity.to_be_bytes());
    v
}

fn decode_delivered(bytes: &[u8]) -> Result<(Uid, u32), StoreError> {
    let mut r = Reader(bytes);
    let parsed = (|| {
        let uid = r.u32()?;
        let uv = r.u32()?;
        r.is_empty().then_some((uid, uv))
    })();
    parsed.ok_or_else(|| corrupt("delivery record"))
}

// ---------------------------------------------------------------------------
// Keys.

/// `user \0 rest`: users never contain NUL, so prefixes are unambiguous.
fn user_key(user: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 1 + rest.len());
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(rest.as_bytes());
    k
}

fn message_key(mailbox_id: u64, uid: Uid) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&mailbox_id.to_be_bytes());
    k[8..].copy_from_slice(&uid.to_be_bytes());
    k
}

fn change_key(mailbox_id: u64, modseq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mailbox_id.to_be_bytes());
    k[8..].copy_from_slice(&modseq.to_be_bytes());
    k
}

/// The 32 raw bytes of a blob id; malformed ids are unknown blobs.
fn blob_key(id: &BlobId) -> Result<[u8; 32], StoreError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(&id.0, &mut k).map_err(|_| StoreError::NoSuchBlob)?;
    Ok(k)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_mailbox(mb: &TransactionalTree, key: &[u8], name: &str) -> Result<MailboxRec, TxError> {
    match mb.get(key)? {
        Some(v) => MailboxRec::decode(&v).map_err(ConflictableTransactionError::Abort),
        None => abort(StoreError::NoSuchMailbox(name.to_owned())),
    }
}

/// Creates a mailbox record inside a transaction over (`mailboxes`,
/// `uidvalidity`). UIDVALIDITY = max(now, last given to this user + 1): a
/// re-created mailbox always gets a greater one, and no two mailboxes of a
/// user ever share one.
fn create_in_tx(
    mb: &TransactionalTree,
    uvs: &TransactionalTree,
    user: &str,
    key: &[u8],
) -> Result<MailboxRec, TxError> {
    let last = match uvs.get(user.as_bytes())? {
        Some(v) => {
            let arr: [u8; 4] = v
                .as_ref()
                .try_into()
                .map_err(|_| ConflictableTransactionError::Abort(corrupt("uidvalidity record")))?;
            u32::from_be_bytes(arr)
        }
        None => 0,
    };
    let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
    let Some(next) = last.checked_add(1) else {
        return abort(StoreError::NotAllowed("UIDVALIDITY space exhausted".into()));
    };
    let uidvalidity = now.max(next);
    uvs.insert(user.as_bytes(), &uidvalidity.to_be_bytes())?;
    let rec = MailboxRec {
        id: mb.generate_id()?,
        uidvalidity,
        uidnext: 1,
        highest_modseq: 1,
        exists: 0,
        unseen: 0,
    };
    mb.insert(key, rec.encode())?;
    Ok(rec)
}

// ---------------------------------------------------------------------------
// The store.

#[derive(Debug)]
struct Lock {
    owner: String,
    /// `None`: never expires (ttl too large to represent).
    until: Option<Instant>,
}

/// The sled backend. Cheap to clone; clones share the same database.
#[derive(Clone)]
pub struct SledStore {
    db: Db,
    blobs: Tree,
    mailboxes: Tree,
    uidvalidity: Tree,
    messages: Tree,
    changes: Tree,
    delivered: Tree,
    accounts: Tree,
    locks: Arc<Mutex<HashMap<String, Lock>>>,
    feeds: Arc<Mutex<HashMap<u64, watch::Sender<u64>>>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

fn lock_map<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SledStore {
    /// Opens (or creates) the database in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = ::sled::Config::new().path(path).open()?;
        Self::from_db(db)
    }

    /// Uses an already opened database.
    pub fn from_db(db: Db) -> Result<Self, StoreError> {
        Ok(Self {
            blobs: db.open_tree("blobs")?,
            mailboxes: db.open_tree("mailboxes")?,
            uidvalidity: db.open_tree("uidvalidity")?,
            messages: db.open_tree("messages")?,
            changes: db.open_tree("changes")?,
            delivered: db.open_tree("delivered")?,
            accounts: db.open_tree(ACCOUNTS_TREE)?,
            db,
            locks: Arc::new(Mutex::new(HashMap::new())),
            feeds: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The accounts kept in the same database.
    pub fn accounts(&self) -> Accounts {
        Accounts::from_tree(self.accounts.clone())
    }

    /// Flushes everything to disk (also done by every acknowledging call).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Creates INBOX if the user has none yet.
    fn ensure_inbox(&self, user: &str) -> Result<(), StoreError> {
        let key = user_key(user, INBOX);
        if self.mailboxes.contains_key(&key)? {
            return Ok(());
        }
        (&self.mailboxes, &self.uidvalidity)
            .transaction(|(mb, uvs)| {
                if mb.get(&key)?.is_none() {
                    create_in_tx(mb, uvs, user, &key)?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        self.db.flush()?;
        Ok(())
    }

    /// Normalises user and mailbox, creating INBOX on first use.
    fn names(&self, user: &str, mailbox: &str) -> Result<(String, String), StoreError> {
        let user = normalize_user(user)?;
        let mailbox = normalize_mailbox(mailbox)?;
        if mailbox == INBOX {
            self.ensure_inbox(&user)?;
        }
        Ok((user, mailbox))
    }

    fn mailbox(&self, user: &str, mailbox: &str) -> Result<MailboxRec, StoreError> {
        match self.mailboxes.get(user_key(user, mailbox))? {
            Some(v) => MailboxRec::decode(&v),
            None => Err(StoreError::NoSuchMailbox(mailbox.to_owned())),
        }
    }

    fn notify(&self, mailbox_id: u64, modseq: u64) {
        let mut feeds = lock_map(&self.feeds);
        if let Some(tx) = feeds.get(&mailbox_id) {
            if tx.receiver_count() == 0 {
                feeds.remove(&mailbox_id);
            } else {
                tx.send_if_modified(|v| {
                    let newer = modseq > *v;
                    if newer {
                        *v = modseq;
                    }
                    newer
                });
            }
        }
    }

    /// Removes every message and change entry of a (deleted) mailbox id.
    fn purge(&self, mailbox_id: u64) -> Result<(), StoreError> {
        let prefix = mailbox_id.to_be_bytes();
        for tree in [&self.messages, &self.changes] {
            let mut batch = ::sled::Batch::default();
            for k in tree.scan_prefix(prefix).keys() {
                batch.remove(k?);
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }
}

impl BlobStore for SledStore {
    fn put(&self, bytes: &[u8]) -> Result<BlobId, StoreError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if !self.blobs.contains_key(digest)? {
            self.blobs.insert(digest, bytes)?;
        }
        // Flush even when present: a concurrent put may not have flushed yet.
        self.db.flush()?;
        Ok(BlobId(hex::encode(digest)))
    }

    fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let key = blob_key(id)?;
        let bytes = self.blobs.get(key)?.ok_or(StoreError::NoSuchBlob)?;
        Ok(match range {
            None => bytes.to_vec(),
            Some(r) => {
                let len = bytes.len();
                let end = usize::try_from(r.end).unwrap_or(usize::MAX).min(len);
                let start = usize::try_from(r.start).unwrap_or(usize::MAX).min(end);
                bytes[start..end].to_vec()
            }
        })
    }
}

impl MailStore for SledStore {
    fn file(
        &self,
        key: &MessageKey,
        user: &str,
        mailbox: &str,
        blob: &BlobId,
        size: u64,
        internal_date: i64,
    ) -> Result<Filed, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let blob_raw = blob_key(blob)?;
        let blob = BlobId(hex::encode(blob_raw));
        let dkey = user_key(&user, &key.0);
        let mkey = user_key(&user, &mailbox);
        let (filed, notice) = (
            &self.delivered,
            &self.mailboxes,
            &self.messages,
            &self.changes,
            &self.blobs,
        )
            .transaction(|(delivered, mb, msgs, changes, blobs)| {
                if let Some(v) = delivered.get(&dkey)? {
                    let (uid, uidvalidity) =
                        decode_delivered(&v).map_err(ConflictableTransactionError::Abort)?;
                    let filed = Filed {
                        uid,
                        uidvalidity,
                        duplicate: true,
                    };
                    return Ok((filed, None));
                }
                let Some(bytes) = blobs.get(blob_raw)? else {
                    return abort(StoreError::NoSuchBlob);
                };
                if bytes.len() as u64 != size {
                    return abort(StoreError::Corrupt(format!(
                        "size {size} given for a blob of {} bytes",
                        bytes.len()
                    )));
                }
                let mut rec = read_mailbox(mb, &mkey, &mailbox)?;
                let uid = rec.uidnext;
                let Some(next) = uid.checked_add(1) else {
                    return abort(StoreError::NotAllowed("UID space exhausted".into()));
                };
                rec.uidnext = next;
                let modseq = rec.bump_modseq();
                rec.exists += 1;
                rec.unseen += 1;
                let meta = MessageMeta {
                    uid,
                    blob: blob.clone(),
                    size,
                    flags: Vec::new(),
                    modseq,
                    internal_date,
                };
                let encoded = encode_meta(&meta).map_err(ConflictableTransactionError::Abort)?;
                msgs.insert(&message_key(rec.id, uid), encoded)?;
                changes.insert(&change_key(rec.id, modseq), &change_value(uid, CHANGE_LIVE))?;
                mb.insert(mkey.as_slice(), rec.encode())?;
                delivered.insert(dkey.as_slice(), &delivered_value(uid, rec.uidvalidity))?;
                let filed = Filed {
                    uid,
                    uidvalidity: rec.uidvalidity,
                    duplicate: false,
                };
                Ok((filed, Some((rec.id, modseq))))
            })
            .map_err(from_tx)?;
        // Always flush: a duplicate may race with a first filing not yet flushed.
        self.db.flush()?;
        if let Some((id, modseq)) = notice {
            self.notify(id, modseq);
        }
        Ok(filed)
    }

    fn status(&self, user: &str, mailbox: &str) -> Result<MailboxStatus, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        Ok(self.mailbox(&user, &mailbox)?.status())
    }

    fn list(
        &self,
        user: &str,
        mailbox: &str,
        from_uid: Uid,
        limit: usize,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        let prefix = rec.id.to_be_bytes();
        let mut out = Vec::new();
        for item in self.messages.range(message_key(rec.id, from_uid)..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(decode_meta(&v)?);
        }
        Ok(out)
    }

    fn get(&self, user: &str, mailbox: &str, uid: Uid) -> Result<Option<MessageMeta>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        self.messages
            .get(message_key(rec.id, uid))?
            .map(|v| decode_meta(&v))
            .transpose()
    }

    fn store_flags(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreFlagsResult, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        if let Some(bad) = flags.iter().find(|f| {
            f.len() > MAX_FLAG_LEN || f.chars().any(|c| c.is_control() || c.is_whitespace())
        }) {
            return Err(StoreError::NotAllowed(format!("invalid flag {bad:?}")));
        }
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let mkey = user_key(&user, &mailbox);
        let (result, notice) = (&self.mailboxes, &self.messages, &self.changes)
            .transaction(|(mb, msgs, changes)| {
                let mut rec = read_mailbox(mb, &mkey, &mailbox)?;
                let mut result = StoreFlagsResult::default();
                let mut changed = false;
                for &uid in &uids {
                    let k = message_key(rec.id, uid);
                    let Some(v) = msgs.get(k)? else { continue };
                    let mut meta = decode_meta(&v).map_err(ConflictableTransactionError::Abort)?;
                    if unchanged_since.is_some_and(|since| meta.modseq > since) {
                        result.failed_modified.push(uid);
                        continue;
                    }
                    let new_flags = apply_flags(&meta.flags, op, flags);
                    if same_flags(&new_flags, &meta.flags) {
                        result.updated.push(meta);
                        continue;
                    }
                    let was_seen = has_flag(&meta.flags, SEEN);
                    let now_seen = has_flag(&new_flags, SEEN);
                    if was_seen && !now_seen {
                        rec.unseen += 1;
                    } else if !was_seen && now_seen {
                        rec.unseen = rec.unseen.saturating_sub(1);
                    }
                    changes.remove(&change_key(rec.id, meta.modseq))?;
                    meta.modseq = rec.bump_modseq();
                    meta.flags = new_flags;
                    let encoded =
                        encode_meta(&meta).map_err(ConflictableTransactionError::Abort)?;
                    msgs.insert(&k, encoded)?;
                    changes.insert(
                        &change_key(rec.id, meta.modseq),
                        &change_value(uid, CHANGE_LIVE),
                    )?;
                    result.updated.push(meta);
                    changed = true;
                }
                let notice = if changed {
                    mb.insert(mkey.as_slice(), rec.encode())?;
                    Some((rec.id, rec.highest_modseq))
                } else {
                    None
                };
                Ok((result, notice))
            })
            .map_err(from_tx)?;
        if let Some((id, modseq)) = notice {
            self.db.flush()?;
            self.notify(id, modseq);
        }
        Ok(result)
    }

    fn expunge(
        &self,
        user: &str,
        mailbox: &str,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let only_deleted = uids.is_none();
        let mut candidates = match uids {
            Some(u) => u.to_vec(),
            None => {
                // Find the \Deleted ones outside the transaction (sled
                // transactions cannot scan); they are re-checked inside.
                let rec = self.mailbox(&user, &mailbox)?;
                let mut found = Vec::new();
                for v in self.messages.scan_prefix(rec.id.to_be_bytes()).values() {
                    let meta = decode_meta(&v?)?;
                    if has_flag(&meta.flags, DELETED) {
                        found.push(meta.uid);
                    }
                }
                found
            }
        };
        candidates.sort_unstable();
        candidates.dedup();
        let mkey = user_key(&user, &mailbox);
        let (expunged, notice) = (&self.mailboxes, &self.messages, &self.changes)
            .transaction(|(mb, msgs, changes)| {
                let mut rec = read_mailbox(mb, &mkey, &mailbox)?;
                let mut expunged = Vec::new();
                for &uid in &candidates {
                    let k = message_key(rec.id, uid);
                    let Some(v) = msgs.get(k)? else { continue };
                    let meta = decode_meta(&v).map_err(ConflictableTransactionError::Abort)?;
                    if only_deleted && !has_flag(&meta.flags, DELETED) {
                        continue;
                    }
                    msgs.remove(&k)?;
                    changes.remove(&change_key(rec.id, meta.modseq))?;
                    let modseq = rec.bump_modseq();
                    changes.insert(
                        &change_key(rec.id, modseq),
                        &change_value(uid, CHANGE_EXPUNGED),
                    )?;
                    rec.exists = rec.exists.saturating_sub(1);
                    if !has_flag(&meta.flags, SEEN) {
                        rec.unseen = rec.unseen.saturating_sub(1);
                    }
                    expunged.push(uid);
                }
                let notice = if expunged.is_empty() {
                    None
                } else {
                    mb.insert(mkey.as_slice(), rec.encode())?;
                    Some((rec.id, rec.highest_modseq))
                };
                Ok((expunged, notice))
            })
            .map_err(from_tx)?;
        if let Some((id, modseq)) = notice {
            self.db.flush()?;
            self.notify(id, modseq);
        }
        Ok(expunged)
    }

    fn changes_since(
        &self,
        user: &str,
        mailbox: &str,
        modseq: u64,
    ) -> Result<Vec<Change>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        let prefix = rec.id.to_be_bytes();
        let mut out = Vec::new();
        let Some(start) = modseq.checked_add(1) else {
            return Ok(out);
        };
        for item in self.changes.range(change_key(rec.id, start)..) {
            let (k, v): (IVec, IVec) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let arr: [u8; 8] = k[8..].try_into().map_err(|_| corrupt("change key"))?;
            let at = u64::from_be_bytes(arr);
            let (uid, kind) = decode_change_value(&v)?;
            match kind {
                CHANGE_EXPUNGED => out.push(Change::Expunged { uid, modseq: at }),
                CHANGE_LIVE => {
                    // Not a snapshot: a message changed or expunged meanwhile
                    // shows up again later in this scan, or in the next call.
                    if let Some(m) = self.messages.get(message_key(rec.id, uid))? {
                        let meta = decode_meta(&m)?;
                        if meta.modseq == at {
                            out.push(Change::Updated(meta));
                        }
                    }
                }
                _ => return Err(corrupt("change kind")),
            }
        }
        Ok(out)
    }

    fn create_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError> {
        let (user, name) = self.names(user, name)?;
        let key = user_key(&user, &name);
        (&self.mailboxes, &self.uidvalidity)
            .transaction(|(mb, uvs)| {
                if mb.get(&key)?.is_some() {
                    return abort(StoreError::MailboxExists(name.clone()));
                }
                create_in_tx(mb, uvs, &user, &key)?;
                Ok(())
            })
            .map_err(from_tx)?;
        self.db.flush()?;
        Ok(())
    }

    fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let from = normalize_mailbox(from)?;
        let to = normalize_mailbox(to)?;
        self.ensure_inbox(&user)?;
        let from_key = user_key(&user, &from);
        let to_key = user_key(&user, &to);
        (&self.mailboxes, &self.uidvalidity)
            .transaction(|(mb, uvs)| {
                let Some(rec) = mb.get(&from_key)? else {
                    return abort(StoreError::NoSuchMailbox(from.clone()));
                };
                if mb.get(&to_key)?.is_some() {
                    return abort(StoreError::MailboxExists(to.clone()));
                }
                mb.remove(from_key.as_slice())?;
                mb.insert(to_key.as_slice(), rec)?;
                if from == INBOX {
                    // RFC 3501 §6.3.5: the messages move, INBOX stays (empty).
                    create_in_tx(mb, uvs, &user, &from_key)?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        self.db.flush()?;
        Ok(())
    }

    fn delete_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let name = normalize_mailbox(name)?;
        if name == INBOX {
            return Err(StoreError::NotAllowed("INBOX cannot be deleted".into()));
        }
        let key = user_key(&user, &name);
        let removed = self
            .mailboxes
            .remove(key)?
            .ok_or_else(|| StoreError::NoSuchMailbox(name.clone()))?;
        let rec = MailboxRec::decode(&removed)?;
        // The record is gone, so its messages are unreachable already; if we
        // crash before the purge they are only garbage.
        self.purge(rec.id)?;
        self.db.flush()?;
        lock_map(&self.feeds).remove(&rec.id);
        Ok(())
    }

    fn list_mailboxes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let user = normalize_user(user)?;
        self.ensure_inbox(&user)?;
        let prefix = user_key(&user, "");
        let mut out = Vec::new();
        for k in self.mailboxes.scan_prefix(&prefix).keys() {
            let k = k?;
            let name =
                std::str::from_utf8(&k[prefix.len()..]).map_err(|_| corrupt("mailbox name"))?;
            out.push(name.to_owned());
        }
        Ok(out)
    }

    fn lock_maildrop(&self, user: &str, owner: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let user = normalize_user(user)?;
        let now = Instant::now();
        let mut locks = lock_map(&self.locks);
        let free = match locks.get(&user) {
            None => true,
            Some(l) => l.owner == owner || l.until.is_some_and(|until| until <= now),
        };
        if free {
            let lock = Lock {
                owner: owner.to_owned(),
                until: now.checked_add(Duration::from_secs(ttl_secs)),
            };
            locks.insert(user, lock);
        }
        Ok(free)
    }

    fn unlock_maildrop(&self, user: &str, owner: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let mut locks = lock_map(&self.locks);
        if locks.get(&user).is_some_and(|l| l.owner == owner) {
            locks.remove(&user);
        }
        Ok(())
    }
}

impl ChangeFeed for SledStore {
    fn subscribe(&self, user: &str, mailbox: &str) -> watch::Receiver<u64> {
        let rec = self
            .names(user, mailbox)
            .and_then(|(user, mailbox)| self.mailbox(&user, &mailbox));
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                tracing::debug!(%user, %mailbox, error = %e, "subscribe to an unknown mailbox");
                // A closed channel: `changed()` fails at once.
                let (_tx, rx) = watch::channel(0);
                return rx;
            }
        };
        let mut feeds = lock_map(&self.feeds);
        let tx = feeds
            .entry(rec.id)
            .or_insert_with(|| watch::channel(rec.highest_modseq).0);
        tx.send_if_modified(|v| {
            let newer = rec.highest_modseq > *v;
            if newer {
                *v = rec.highest_modseq;
            }
            newer
        });
        tx.subscribe()
    }
}
