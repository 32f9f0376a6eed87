//! IMAP APPEND and COPY/MOVE on the sled backend: each one request on the
//! writer, one batch; bytes are never copied (the new records point at the
//! same blob), the header index record is copied with the message.

use super::records::*;
use super::{SledStore, Tx, add_in_tx, check_flags, expunge_in_tx, read_mailbox};
use crate::mail::{Appended, BlobId, Copied, FlagOp, MessageMeta, StoreError, Uid, apply_flags};

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
            let meta = add_in_tx(&mut tx, &mut rec, meta, Some(index))?;
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
                    let index = tx.get(&index_key(src_id, meta.uid))?;
                    let new = add_in_tx(&mut tx, target, meta.clone(), index)?;
                    copied.uids.push((meta.uid, new.uid));
                }
            }
            if expunge {
                for meta in &sources {
                    expunge_in_tx(&mut tx, &mut src, meta);
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
