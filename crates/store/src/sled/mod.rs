//! The sled backend of the storage seam: `SledStore` implements `MailStore`,
//! `BlobStore`, `ChangeFeed` and `AccountStore` on one embedded sled database
//! (`<dir>/db`) and a directory of blob files (`<dir>/blobs`).
//!
//! One writer: every write is a request to the store's [`Writer`] thread,
//! which applies a batch of requests, makes it durable once and then answers
//! each (group commit). No two sled writes ever run at once, so there are no
//! sled transactions at all: every record lives in ONE tree under a key
//! prefix ([`records`]), and each request is one atomic `Batch` on it (its
//! own reads see its own writes through [`Tx`]). Reads go straight to the
//! tree from the caller's (blocking) thread.
//!
//! Layout (integers big-endian; `M`, `V`, ... are the prefix bytes):
//!
//! | key                                 | value                          |
//! |-------------------------------------|--------------------------------|
//! | `M` user `\0` mailbox name          | mailbox record (role, counters)|
//! | `V` user                            | last UIDVALIDITY given (u32)   |
//! | `S` user `\0` mailbox name          | (empty): subscribed            |
//! | `m` mailbox id (u64) ++ uid (u32)   | message record                 |
//! | `h` mailbox id (u64) ++ uid (u32)   | header index record (v2, below)|
//! | `c` mailbox id (u64) ++ modseq (u64)| uid (u32) ++ kind (u8)         |
//! | `k` mailbox id (u64)                | every keyword ever set         |
//! | `d` user `\0` message key           | uid (u32) ++ uidvalidity (u32) |
//! | `a` user                            | PHC string of the password     |
//! | `x` user `\0` message key           | Maildir delivery state (marks) |
//! | `i` user `\0` folder `\0` base name  | (empty): Maildir file imported |
//! | `r` blob sha256 (32 bytes)          | messages pointing at it (u64)  |
//! | `R`                                 | (1): the `r` records are counted|
//!
//! Messages are keyed by an internal mailbox id (never reused), not by name,
//! so a rename rewrites the mailbox records only (the mailbox's and its
//! children's, [`folders`]). The `c` entries hold exactly one entry
//! per uid ever filed: a live message's entry moves to its new modseq on each
//! change, an expunged message leaves a tombstone forever, so
//! `changes_since` is one range scan. Subscriptions (`S`) are names, not
//! mailboxes: they outlive a deleted mailbox and may name none (RFC 9051
//! §6.3.7). The mailbox record counts exists, unseen, size and `\Deleted`
//! in the same batch as every change, so STATUS is one read.
//!
//! Every message has both its `m` and its `h` record (written, copied and
//! removed together). The `h` record (v2, [`records::encode_index`]) starts
//! with the five field lengths, so a field is found without reading the
//! others: version u8 | has date u8 | day i64 | from, to, cc, bcc, subject
//! lengths u32 each (`u32::MAX`: no such field) | their bytes in that order.
//!
//! SEARCH ([`search`]) at 100k messages: a query of indexed keys only
//! (FROM/TO/CC/BCC/SUBJECT, decoded and lowercased at filing, [`index`];
//! SENTBEFORE/SENTSINCE; uids) is one forward range scan of the `h`
//! records, matched in place with a prepared `memmem` finder, nothing
//! allocated per message. Other queries walk the `m` and `h` records
//! together (both keyed by uid), so uid/flag/size/date/modseq keys never
//! read a blob either. Only messages the rest of the query leaves possible
//! are read, one at a time: the header block (at most 64 KiB) for other
//! header fields, the whole message for BODY/TEXT. A BODY/TEXT search over
//! a large mailbox is thus a bounded sequential scan; a body index (e.g. a
//! token index beside `h`) can come behind the same trait method later
//! without changing callers.
//!
//! Durability, per batch, in this order: (1) the blob directory is fsynced
//! if a blob was added (the blob files themselves were fsynced by the
//! callers before their requests were sent); (2) the requests are applied;
//! (3) `Db::flush`, then an fsync of sled's files ([`SledFiles`]); (4) the
//! answers go out. A reader may see a write between (2) and (4): that write
//! is not acknowledged yet, and is lost only if the process dies before (3),
//! in which case its sender was never told it succeeded.
//!
//! Blobs are shared (a COPY adds a reference, never bytes) and counted in
//! the `r` records; a blob with none is removed by a later collection
//! ([`refs`], behind `Housekeeping`), never by the expunge itself.
//!
//! The POP3 maildrop locks are kept in memory: they belong to live sessions,
//! and a restart ends every session, so a lock must not survive it.

mod accounts;
mod folders;
mod index;
mod marks;
mod messages;
mod records;
mod refs;
mod search;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::sled::{Batch, IVec, Tree};
use tokio::sync::watch;

use self::messages::{add_in_tx, check_flags, expunge_in_tx, merge_keywords};
use self::records::*;
use crate::blobs::FileBlobs;
use crate::durable::{self, SledDb};
use crate::mail::{
    Appended, BlobId, BlobStore, Change, ChangeFeed, Copied, DELETED, Filed, FlagOp, INBOX,
    MailStore, MailboxInfo, MailboxStatus, MessageKey, MessageMeta, Query, Role, StoreError,
    StoreFlagsResult, Uid, apply_flags, has_flag, normalize_mailbox, normalize_user, same_flags,
};
use crate::writer::{Owned, Writer, WriterOptions};

fn backend(e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Io(io) => StoreError::io(&io),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Options of a [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// New mail is refused (temporarily) when fewer bytes are free on the
    /// store's disk; flag changes and expunges still work. 0 = no reserve.
    pub min_free_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The tree readers use; replaced by the writer when it reopens the database.
type SharedTree = Arc<std::sync::RwLock<Tree>>;

fn read_tree(shared: &SharedTree) -> Tree {
    shared
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// What the writer thread owns.
struct State {
    db: SledDb,
    /// The tree readers use, swapped when `db` is reopened.
    shared: SharedTree,
    blobs: FileBlobs,
}

impl State {
    fn tree(&self) -> Tree {
        self.db.tree().clone()
    }
}

impl Owned for State {
    fn before_batch(&mut self) -> std::io::Result<()> {
        let shared = &self.shared;
        self.db.prepare(|tree| {
            *shared.write().unwrap_or_else(|p| p.into_inner()) = tree.clone();
        })?;
        self.blobs.sync_if_needed()
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.db.sync()
    }
}

/// One request's writes: a sled `Batch` plus an overlay so the request reads
/// its own writes. Applied atomically by [`Tx::commit`].
struct Tx {
    tree: Tree,
    batch: Batch,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Tx {
    fn new(tree: Tree) -> Self {
        Self {
            tree,
            batch: Batch::default(),
            overlay: HashMap::new(),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(key, value.as_slice());
        self.overlay.insert(key.to_vec(), Some(value));
    }

    fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.overlay.insert(key.to_vec(), None);
    }

    fn commit(self, state: &mut State) -> Result<(), StoreError> {
        if self.overlay.is_empty() {
            return Ok(());
        }
        self.tree.apply_batch(self.batch).map_err(backend)?;
        state.db.written();
        Ok(())
    }
}

fn read_mailbox(tx: &Tx, key: &[u8], name: &str) -> Result<MailboxRec, StoreError> {
    match tx.get(key)? {
        Some(v) => MailboxRec::decode(&v),
        None => Err(StoreError::NoSuchMailbox(name.to_owned())),
    }
}

/// Creates a mailbox record. UIDVALIDITY is the greater of now and one more
/// than the last given to this user: a re-created mailbox always gets a
/// greater one, and no two mailboxes of a user ever share one.
fn create_in_tx(
    tx: &mut Tx,
    db: &SledDb,
    user: &str,
    key: &[u8],
    role: Option<Role>,
) -> Result<MailboxRec, StoreError> {
    let uv_key = plain_user_key(UIDVALIDITY, user);
    let last = match tx.get(&uv_key)? {
        Some(v) => {
            let arr: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("uidvalidity record"))?;
            u32::from_be_bytes(arr)
        }
        None => 0,
    };
    let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
    let next = last
        .checked_add(1)
        .ok_or_else(|| StoreError::NotAllowed("UIDVALIDITY space exhausted".into()))?;
    let uidvalidity = now.max(next);
    tx.insert(&uv_key, uidvalidity.to_be_bytes().to_vec());
    let rec = MailboxRec {
        id: db.generate_id().map_err(backend)?,
        uidvalidity,
        uidnext: 1,
        highest_modseq: 1,
        exists: 0,
        unseen: 0,
        size: 0,
        deleted: 0,
        role,
    };
    tx.insert(key, rec.encode());
    Ok(rec)
}

#[derive(Debug)]
struct Lock {
    owner: String,
    /// `None`: never expires (ttl too large to represent).
    until: Option<Instant>,
}

struct Inner {
    /// Read handle on the one tree (writes go through `writer`).
    tree: SharedTree,
    blobs: FileBlobs,
    writer: Writer<State>,
    dir: PathBuf,
    options: SledOptions,
    locks: Mutex<HashMap<String, Lock>>,
    feeds: Mutex<HashMap<u64, watch::Sender<u64>>>,
}

/// The sled backend. Cheap to clone; clones share the same database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn lock_map<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` with default options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: &Path, options: SledOptions) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| StoreError::io(&e);
        std::fs::create_dir_all(path).map_err(io)?;
        // The store (mail, account hashes) is the agent's alone.
        std::fs::set_permissions(
            path,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .map_err(io)?;
        let db_dir = path.join("db");
        if db_dir.is_file() {
            // Before the one-writer store, sled's own files sat in `path`.
            return Err(StoreError::Unavailable(format!(
                "{} holds a mailbox store of an older layout (sled files directly in it); \
                 move it aside and start with an empty directory",
                path.display()
            )));
        }
        // Nothing is flushed behind the writer's back: durability is the
        // writer's sync, once per batch.
        let db = SledDb::open(&db_dir, "mail").map_err(io)?;
        let blobs = FileBlobs::open(&path.join("blobs")).map_err(io)?;
        durable::sync_dir(path).map_err(io)?;
        let shared: SharedTree = Arc::new(std::sync::RwLock::new(db.tree().clone()));
        let state = State {
            db,
            shared: Arc::clone(&shared),
            blobs: blobs.clone(),
        };
        let writer = Writer::spawn(WriterOptions::named("store-writer"), state).map_err(io)?;
        let store = Self {
            inner: Arc::new(Inner {
                tree: shared,
                blobs,
                writer,
                dir: path.to_path_buf(),
                options,
                locks: Mutex::new(HashMap::new()),
                feeds: Mutex::new(HashMap::new()),
            }),
        };
        store.count_refs_once()?;
        Ok(store)
    }

    /// The current read handle.
    fn tree(&self) -> Tree {
        read_tree(&self.inner.tree)
    }

    /// Runs one write request on the writer thread; returns once durable.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.writer.call_blocking(f)?
    }

    /// New mail needs room: a temporary refusal below the reserve.
    fn check_room(&self) -> Result<(), StoreError> {
        durable::check_reserve(self.inner.blobs.dir(), self.inner.options.min_free_bytes)
            .map_err(|e| StoreError::io(&e))
    }

    /// Creates INBOX (subscribed) if the user has none yet.
    fn ensure_inbox(&self, user: &str) -> Result<(), StoreError> {
        let key = user_key(MAILBOX, user, INBOX);
        if self.tree().contains_key(&key).map_err(backend)? {
            return Ok(());
        }
        let user = user.to_owned();
        self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            if tx.get(&key)?.is_none() {
                create_in_tx(&mut tx, &st.db, &user, &key, None)?;
                tx.insert(&user_key(SUBSCRIPTION, &user, INBOX), Vec::new());
            }
            tx.commit(st)
        })
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
        match self
            .tree()
            .get(user_key(MAILBOX, user, mailbox))
            .map_err(backend)?
        {
            Some(v) => MailboxRec::decode(&v),
            None => Err(StoreError::NoSuchMailbox(mailbox.to_owned())),
        }
    }

    /// The canonical id of a blob that must exist with exactly `size` bytes,
    /// and its header index record (read here, on the caller's thread, so
    /// the writer never reads blobs).
    fn checked_blob(&self, blob: &BlobId, size: u64) -> Result<(BlobId, Vec<u8>), StoreError> {
        let blob = BlobId(hex::encode(blob_key(blob)?));
        let actual = match self.inner.blobs.len(&blob) {
            // A collection may have the file set aside for an instant while
            // it sees that it was just put (`blobs`): look once more.
            Err(StoreError::NoSuchBlob) => {
                std::thread::sleep(Duration::from_millis(20));
                self.inner.blobs.len(&blob)?
            }
            other => other?,
        };
        if actual != size {
            return Err(StoreError::Corrupt(format!(
                "size {size} given for a blob of {actual} bytes"
            )));
        }
        let head = index::read_head(&self.inner.blobs, &blob)?;
        Ok((blob, encode_index(&index::index_head(&head))))
    }

    fn notify(&self, mailbox_id: u64, modseq: u64) {
        let mut feeds = lock_map(&self.inner.feeds);
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

    /// Scans `prefix` in the tree from `start`, calling `f` on each entry
    /// until it returns false.
    fn scan(
        tree: &Tree,
        prefix: &[u8],
        start: &[u8],
        mut f: impl FnMut(&[u8], IVec) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for item in tree.range(start..) {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) || !f(&k, v)? {
                break;
            }
        }
        Ok(())
    }
}

/// Wanted uids at most this far apart are read by one range scan in
/// [`MailStore::metas`] (skipping the few records between them is cheaper
/// than a lookup each).
const SCAN_GAP: Uid = 32;

impl BlobStore for SledStore {
    fn put(&self, bytes: &[u8]) -> Result<BlobId, StoreError> {
        self.check_room()?;
        self.inner.blobs.put(bytes)
    }

    fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.blobs.get(id, range)
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
        let (blob, index) = self.checked_blob(blob, size)?;
        let dkey = user_key(DELIVERED, &user, &key.0);
        let mkey = user_key(MAILBOX, &user, &mailbox);
        let (filed, notice) = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            if let Some(v) = tx.get(&dkey)? {
                let (uid, uidvalidity) = decode_delivered(&v)?;
                let filed = Filed {
                    uid,
                    uidvalidity,
                    duplicate: true,
                };
                // Answered after this batch's sync: a duplicate of a filing
                // not yet durable is only acknowledged once it is.
                return Ok((filed, None));
            }
            let mut rec = read_mailbox(&tx, &mkey, &mailbox)?;
            let meta = MessageMeta {
                uid: 0,
                blob,
                size,
                flags: Vec::new(),
                modseq: 0,
                internal_date,
            };
            let meta = add_in_tx(&mut tx, &st.blobs, &mut rec, meta, index)?;
            tx.insert(&mkey, rec.encode());
            tx.insert(&dkey, delivered_value(meta.uid, rec.uidvalidity).to_vec());
            tx.commit(st)?;
            let filed = Filed {
                uid: meta.uid,
                uidvalidity: rec.uidvalidity,
                duplicate: false,
            };
            Ok((filed, Some((rec.id, meta.modseq))))
        })?;
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
        let mut out = Vec::new();
        Self::scan(
            &self.tree(),
            &mailbox_prefix(MESSAGE, rec.id),
            &message_key(rec.id, from_uid),
            |_, v| {
                if out.len() >= limit {
                    return Ok(false);
                }
                out.push(decode_meta(&v)?);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    fn get(&self, user: &str, mailbox: &str, uid: Uid) -> Result<Option<MessageMeta>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        self.tree()
            .get(message_key(rec.id, uid))
            .map_err(backend)?
            .map(|v| decode_meta(&v))
            .transpose()
    }

    fn metas(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<MessageMeta>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let tree = self.tree();
        let mut out = Vec::with_capacity(wanted.len());
        // Uids close together are one range scan; the records in the range
        // that were not asked for are skipped without decoding.
        for run in wanted.chunk_by(|a, b| b - a <= SCAN_GAP) {
            let (Some(&lo), Some(&hi)) = (run.first(), run.last()) else {
                continue;
            };
            let mut want = run.iter().copied().peekable();
            for item in tree.range(message_key(rec.id, lo)..=message_key(rec.id, hi)) {
                let (k, v) = item.map_err(backend)?;
                let uid = uid_of_key(&k)?;
                while want.next_if(|&w| w < uid).is_some() {}
                if want.next_if_eq(&uid).is_some() {
                    out.push(decode_meta(&v)?);
                }
            }
        }
        Ok(out)
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
        check_flags(flags)?;
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let flags = flags.to_vec();
        let mkey = user_key(MAILBOX, &user, &mailbox);
        let (result, notice) = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let mut rec = read_mailbox(&tx, &mkey, &mailbox)?;
            let mut result = StoreFlagsResult::default();
            let mut changed = false;
            for &uid in &uids {
                let k = message_key(rec.id, uid);
                let Some(v) = tx.get(&k)? else { continue };
                let mut meta = decode_meta(&v)?;
                if unchanged_since.is_some_and(|since| meta.modseq > since) {
                    result.failed_modified.push(uid);
                    continue;
                }
                let new_flags = apply_flags(&meta.flags, op, &flags);
                if same_flags(&new_flags, &meta.flags) {
                    result.updated.push(meta);
                    continue;
                }
                rec.count_out(&meta);
                tx.remove(&change_key(rec.id, meta.modseq));
                meta.modseq = rec.bump_modseq();
                meta.flags = new_flags;
                rec.count_in(&meta);
                merge_keywords(&mut tx, rec.id, &meta.flags)?;
                tx.insert(&k, encode_meta(&meta)?);
                tx.insert(
                    &change_key(rec.id, meta.modseq),
                    change_value(uid, CHANGE_LIVE).to_vec(),
                );
                result.updated.push(meta);
                changed = true;
            }
            let notice = if changed {
                tx.insert(&mkey, rec.encode());
                Some((rec.id, rec.highest_modseq))
            } else {
                None
            };
            tx.commit(st)?;
            Ok((result, notice))
        })?;
        if let Some((id, modseq)) = notice {
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
        let given = uids.map(|u| {
            let mut u = u.to_vec();
            u.sort_unstable();
            u.dedup();
            u
        });
        let mkey = user_key(MAILBOX, &user, &mailbox);
        let (expunged, notice) = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let mut rec = read_mailbox(&tx, &mkey, &mailbox)?;
            let only_deleted = given.is_none();
            let candidates = match given {
                Some(u) => u,
                None => {
                    let mut found = Vec::new();
                    let prefix = mailbox_prefix(MESSAGE, rec.id);
                    Self::scan(&st.tree(), &prefix, &prefix, |_, v| {
                        let meta = decode_meta(&v)?;
                        if has_flag(&meta.flags, DELETED) {
                            found.push(meta.uid);
                        }
                        Ok(true)
                    })?;
                    found
                }
            };
            let mut expunged = Vec::new();
            for uid in candidates {
                let k = message_key(rec.id, uid);
                let Some(v) = tx.get(&k)? else { continue };
                let meta = decode_meta(&v)?;
                if only_deleted && !has_flag(&meta.flags, DELETED) {
                    continue;
                }
                expunge_in_tx(&mut tx, &mut rec, &meta)?;
                expunged.push(uid);
            }
            let notice = if expunged.is_empty() {
                None
            } else {
                tx.insert(&mkey, rec.encode());
                Some((rec.id, rec.highest_modseq))
            };
            tx.commit(st)?;
            Ok((expunged, notice))
        })?;
        if let Some((id, modseq)) = notice {
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
        let mut out = Vec::new();
        let Some(start) = modseq.checked_add(1) else {
            return Ok(out);
        };
        let tree = &self.tree();
        Self::scan(
            tree,
            &mailbox_prefix(CHANGE, rec.id),
            &change_key(rec.id, start),
            |k, v| {
                let arr: [u8; 8] = k[9..].try_into().map_err(|_| corrupt("change key"))?;
                let at = u64::from_be_bytes(arr);
                let (uid, kind) = decode_change_value(&v)?;
                match kind {
                    CHANGE_EXPUNGED => out.push(Change::Expunged { uid, modseq: at }),
                    CHANGE_LIVE => {
                        // Not a snapshot: a message changed or expunged meanwhile
                        // shows up again later in this scan, or in the next call.
                        if let Some(m) = tree.get(message_key(rec.id, uid)).map_err(backend)? {
                            let meta = decode_meta(&m)?;
                            if meta.modseq == at {
                                out.push(Change::Updated(meta));
                            }
                        }
                    }
                    _ => return Err(corrupt("change kind")),
                }
                Ok(true)
            },
        )?;
        Ok(out)
    }

    fn create_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError> {
        self.create_folder(user, name, None)
    }

    fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> Result<(), StoreError> {
        self.rename_folder(user, from, to)
    }

    fn delete_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError> {
        self.delete_folder(user, name)
    }

    fn list_mailboxes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.folders(user)?.into_iter().map(|m| m.name).collect())
    }

    fn mailboxes(&self, user: &str) -> Result<Vec<MailboxInfo>, StoreError> {
        self.folders(user)
    }

    fn prepare_user(&self, user: &str) -> Result<(), StoreError> {
        self.prepare_folders(user)
    }

    fn create_mailbox_with_role(
        &self,
        user: &str,
        name: &str,
        role: Option<Role>,
    ) -> Result<(), StoreError> {
        self.create_folder(user, name, role)
    }

    fn set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> Result<(), StoreError> {
        self.subscribe_folder(user, name, subscribed)
    }

    fn subscriptions(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.subscribed_names(user)
    }

    fn append(
        &self,
        user: &str,
        mailbox: &str,
        blob: &BlobId,
        size: u64,
        flags: &[String],
        internal_date: i64,
    ) -> Result<Appended, StoreError> {
        self.append_message(user, mailbox, blob, size, flags, internal_date)
    }

    fn copy(
        &self,
        user: &str,
        from: &str,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> Result<Copied, StoreError> {
        self.copy_messages(user, from, uids, to, expunge)
    }

    fn search(&self, user: &str, mailbox: &str, query: &Query) -> Result<Vec<Uid>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        search::search(&self.tree(), &self.inner.blobs, rec.id, query)
    }

    fn uids(&self, user: &str, mailbox: &str) -> Result<Vec<Uid>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        self.tree()
            .scan_prefix(mailbox_prefix(MESSAGE, rec.id))
            .keys()
            .map(|k| uid_of_key(&k.map_err(backend)?))
            .collect()
    }

    fn keywords(&self, user: &str, mailbox: &str) -> Result<Vec<String>, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        let rec = self.mailbox(&user, &mailbox)?;
        match self
            .tree()
            .get(mailbox_prefix(KEYWORDS, rec.id))
            .map_err(backend)?
        {
            Some(v) => decode_keywords(&v),
            None => Ok(Vec::new()),
        }
    }

    fn lock_maildrop(&self, user: &str, owner: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let user = normalize_user(user)?;
        let now = Instant::now();
        let mut locks = lock_map(&self.inner.locks);
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
        let mut locks = lock_map(&self.inner.locks);
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
        let mut feeds = lock_map(&self.inner.feeds);
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
