//! Adding and removing messages on the sled backend: the in-transaction
//! steps every write shares (add with a new uid and modseq, expunge with a
//! tombstone, keyword record, flag checks), and IMAP APPEND and COPY/MOVE,
//! each one request on the writer, one batch. Bytes are never copied (the
//! new records point at the same blob); the header index record is copied
//! with the message.

use super::records::*;
use super::refs::{ref_blob, unref_blob};
use super::{SledStore, Tx, read_mailbox};
use crate::blobs::FileBlobs;
use crate::mail::{
    Appended, BlobId, Copied, FlagOp, MessageMeta, StoreError, Uid, apply_flags, has_flag,
};

impl SledStore {
    pub(super) fn append_message(
        &self,
        user: &str,
        mailbox: &str,
        blob: &BlobId,
        size: u64,
        flags: &[String],
        internal_date: i64,
    ) -> Result<Appended, StoreError> {
        let (user, mailbox) = self.names(user, mailbox)?;
        check_flags(flags)?;
        let flags = apply_flags(&[], FlagOp::Replace, flags);
        let (blob, index) = self.checked_blob(blob, size)?;
        let mkey = user_key(MAILBOX, &user, &mailbox);
        let (appended, id, modseq) = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let mut rec = read_mailbox(&tx, &mkey, &mailbox)?;
            let meta = MessageMeta {
                uid: 0,
                blob,
                size,
                flags,
                modseq: 0,
                internal_date,
            };
            let meta = add_in_tx(&mut tx, &st.blobs, &mut rec, meta, index)?;
            tx.insert(&mkey, rec.encode());
            tx.commit(st)?;
            let appended = Appended {
                uidvalidity: rec.uidvalidity,
                uid: meta.uid,
            };
            Ok((appended, rec.id, meta.modseq))
        })?;
        self.notify(id, modseq);
        Ok(appended)
    }

    pub(super) fn copy_messages(
        &self,
        user: &str,
        from: &str,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> Result<Copied, StoreError> {
        let (user, from) = self.names(user, from)?;
        let (_, to) = self.names(&user, to)?;
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let from_key = user_key(MAILBOX, &user, &from);
        let to_key = user_key(MAILBOX, &user, &to);
        let (copied, notices) = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let mut src = read_mailbox(&tx, &from_key, &from)?;
            let same = from_key == to_key;
            let mut dst = if same {
                None
            } else {
                Some(read_mailbox(&tx, &to_key, &to)?)
            };
            let mut sources = Vec::new();
            for uid in uids {
                if let Some(v) = tx.get(&message_key(src.id, uid))? {
                    sources.push(decode_meta(&v)?);
                }
            }
            let src_id = src.id;
            let mut copied = Copied::default();
            {
                let target = dst.as_mut().unwrap_or(&mut src);
                copied.uidvalidity = target.uidvalidity;
                for meta in &sources {
                    // Every message has an index record; an empty one
                    // stands in should the source's be missing.
                    let index = tx
                        .get(&index_key(src_id, meta.uid))?
                        .unwrap_or_else(|| encode_index(&HeaderIndex::default()));
                    let new = add_in_tx(&mut tx, &st.blobs, target, meta.clone(), index)?;
                    copied.uids.push((meta.uid, new.uid));
                }
            }
            if expunge {
                for meta in &sources {
                    expunge_in_tx(&mut tx, &mut src, meta)?;
                }
            }
            let mut notices = Vec::new();
            let changed_src = expunge || same;
            if changed_src && !sources.is_empty() {
                tx.insert(&from_key, src.encode());
                notices.push((src.id, src.highest_modseq));
            }
            if let Some(dst) = dst
                && !sources.is_empty()
            {
                tx.insert(&to_key, dst.encode());
                notices.push((dst.id, dst.highest_modseq));
            }
            tx.commit(st)?;
            Ok((copied, notices))
        })?;
        for (id, modseq) in notices {
            self.notify(id, modseq);
        }
        Ok(copied)
    }
}

/// Flags as given by a client: bounded, no control characters or spaces.
pub(super) fn check_flags(flags: &[String]) -> Result<(), StoreError> {
    match flags
        .iter()
        .find(|f| f.len() > MAX_FLAG_LEN || f.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        Some(bad) => Err(StoreError::NotAllowed(format!("invalid flag {bad:?}"))),
        None => Ok(()),
    }
}

/// Adds the keywords (non-system flags) among `flags` to the mailbox's
/// keyword record, kept sorted, written only when it grows.
pub(super) fn merge_keywords<'a>(
    tx: &mut Tx,
    mailbox_id: u64,
    flags: impl IntoIterator<Item = &'a String>,
) -> Result<(), StoreError> {
    let key = mailbox_prefix(KEYWORDS, mailbox_id);
    let mut words = match tx.get(&key)? {
        Some(v) => decode_keywords(&v)?,
        None => Vec::new(),
    };
    let before = words.len();
    for f in flags {
        if !f.starts_with('\\') && !has_flag(&words, f) {
            words.push(f.clone());
        }
    }
    if words.len() != before {
        words.sort();
        tx.insert(&key, encode_keywords(&words)?);
    }
    Ok(())
}

/// Expunges one message in a transaction: record, change entry and index
/// record go, a tombstone with a new modseq stays, the counters and the
/// blob's reference count follow.
pub(super) fn expunge_in_tx(
    tx: &mut Tx,
    rec: &mut MailboxRec,
    meta: &MessageMeta,
) -> Result<(), StoreError> {
    tx.remove(&message_key(rec.id, meta.uid));
    tx.remove(&index_key(rec.id, meta.uid));
    tx.remove(&change_key(rec.id, meta.modseq));
    let modseq = rec.bump_modseq();
    tx.insert(
        &change_key(rec.id, modseq),
        change_value(meta.uid, CHANGE_EXPUNGED).to_vec(),
    );
    rec.count_out(meta);
    unref_blob(tx, &meta.blob)
}

/// Adds a message to a mailbox in a transaction: a new uid and modseq, the
/// message, change and index records (every message has both: SEARCH by
/// indexed fields scans the index records alone), counters, keywords and
/// the blob's reference count (the blob must exist).
/// `meta.uid` and `meta.modseq` are replaced; the stored metadata is returned.
pub(super) fn add_in_tx(
    tx: &mut Tx,
    blobs: &FileBlobs,
    rec: &mut MailboxRec,
    mut meta: MessageMeta,
    index: Vec<u8>,
) -> Result<MessageMeta, StoreError> {
    let uid = rec.uidnext;
    rec.uidnext = uid
        .checked_add(1)
        .ok_or_else(|| StoreError::NotAllowed("UID space exhausted".into()))?;
    ref_blob(tx, blobs, &meta.blob)?;
    meta.uid = uid;
    meta.modseq = rec.bump_modseq();
    tx.insert(&message_key(rec.id, uid), encode_meta(&meta)?);
    tx.insert(
        &change_key(rec.id, meta.modseq),
        change_value(uid, CHANGE_LIVE).to_vec(),
    );
    tx.insert(&index_key(rec.id, uid), index);
    rec.count_in(&meta);
    merge_keywords(tx, rec.id, &meta.flags)?;
    Ok(meta)
}
