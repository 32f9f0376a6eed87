//! [`StoreMda`]: the [`Mda`] trait over the real sled store in process, with a
//! fixed map of passwords: what POP3 and IMAP session tests run against (no
//! TCP, no fake MDA). Only tests open a store in the MAA; production reaches
//! the MDA over gRPC ([`super::GrpcMda`]). Every store call runs in
//! `spawn_blocking`, as it does in the MDA.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use facteur_store::mail::{BlobStore, ChangeFeed, MailStore, StoreError};
use facteur_store::sled::SledStore;
use tokio::sync::{mpsc, watch};

use super::{
    Appended, BoxStream, Change, Changes, Copied, Fetched, FlagOp, MailboxInfo, MailboxRef,
    MailboxStatus, Mda, MdaError, MessageMeta, Part, Query, Role, StoreFlagsResult, Uid, Verdict,
};

/// Bytes read from a blob at a time.
const CHUNK: u64 = 64 * 1024;

/// The store in process. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct StoreMda {
    store: SledStore,
    /// Lowercased user → password.
    passwords: Arc<HashMap<String, String>>,
}

impl StoreMda {
    /// Opens (creating) the store in `dir` (blocking: call it before the
    /// runtime's work or in tests) with these (user, password) accounts.
    pub fn open(dir: &Path, users: &[(&str, &str)]) -> Result<Self, MdaError> {
        let store = SledStore::open(dir).map_err(error)?;
        let passwords = users
            .iter()
            .map(|(u, p)| (u.to_lowercase(), (*p).to_owned()))
            .collect();
        Ok(Self {
            store,
            passwords: Arc::new(passwords),
        })
    }

    /// The store itself, e.g. to file mail as the MDA would.
    pub fn store(&self) -> &SledStore {
        &self.store
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MdaError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(error),
            Err(e) => Err(MdaError::Unavailable(format!("store task failed: {e}"))),
        }
    }
}

/// A store error as the MDA (over gRPC) would report it.
fn error(e: StoreError) -> MdaError {
    match e {
        StoreError::NoSuchMailbox(m) => MdaError::NoSuchMailbox(m),
        StoreError::MailboxExists(m) => MdaError::Exists(m),
        StoreError::InvalidMailboxName(_) | StoreError::InvalidUser(_) => {
            MdaError::Invalid(e.to_string())
        }
        StoreError::NotAllowed(m) => MdaError::NotAllowed(m),
        StoreError::Full(_) => MdaError::Full,
        other => MdaError::Unavailable(other.to_string()),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sends one message of a fetch from a blocking thread: meta, data, end.
/// False when the receiver is gone.
fn send_message(
    store: &SledStore,
    mailbox: &MailboxRef,
    uid: Uid,
    part: Part,
    tx: &mpsc::Sender<Result<Fetched, MdaError>>,
) -> Result<bool, StoreError> {
    let send = |f: Fetched| tx.blocking_send(Ok(f)).is_ok();
    let Some(m) = MailStore::get(store, &mailbox.user, &mailbox.mailbox, uid)? else {
        return Ok(send(Fetched::Missing(uid)));
    };
    let (blob, size) = (m.blob.clone(), m.size);
    if !send(Fetched::Meta(m)) {
        return Ok(false);
    }
    if part == Part::Header {
        let head = facteur_store::header::read_header(store, &blob, size)?;
        for piece in head.chunks(CHUNK as usize) {
            if !send(Fetched::Data(bytes::Bytes::copy_from_slice(piece))) {
                return Ok(false);
            }
        }
        return Ok(send(Fetched::End));
    }
    let end = if part == Part::Whole { size } else { 0 };
    let mut at = 0;
    while at < end {
        let to = (at + CHUNK).min(end);
        let data = BlobStore::get(store, &blob, Some(at..to))?;
        if !send(Fetched::Data(data.into())) {
            return Ok(false);
        }
        at = to;
    }
    Ok(send(Fetched::End))
}

/// The receiver's value now, then each time it changes, until its sender closes.
fn watch_stream(rx: watch::Receiver<u64>) -> BoxStream<u64> {
    Box::pin(futures::stream::unfold(
        (rx, true),
        |(mut rx, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let v = *rx.borrow_and_update();
            Some((Ok(v), (rx, false)))
        },
    ))
}

impl Mda for StoreMda {
    async fn verify(
        &self,
        user: &str,
        password: &str,
        _service: &str,
        _remote_addr: &str,
    ) -> Result<Verdict, MdaError> {
        let user = user.to_lowercase();
        Ok(match self.passwords.get(&user) {
            Some(p) if p == password => Verdict::Ok(user),
            _ => Verdict::Failed,
        })
    }

    async fn prepare_user(&self, user: &str) -> Result<(), MdaError> {
        let user = user.to_owned();
        self.run(move |s| s.prepare_user(&user)).await
    }

    async fn mailboxes(&self, user: &str) -> Result<(Vec<MailboxInfo>, Vec<String>), MdaError> {
        let user = user.to_owned();
        self.run(move |s| {
            let infos = s.mailboxes(&user)?;
            let only = s
                .subscriptions(&user)?
                .into_iter()
                .filter(|n| !infos.iter().any(|i| &i.name == n))
                .collect();
            Ok((infos, only))
        })
        .await
    }

    async fn create(&self, mailbox: &MailboxRef, role: Option<Role>) -> Result<(), MdaError> {
        let m = mailbox.clone();
        self.run(move |s| s.create_mailbox_with_role(&m.user, &m.mailbox, role))
            .await
    }

    async fn rename(&self, user: &str, from: &str, to: &str) -> Result<(), MdaError> {
        let (user, from, to) = (user.to_owned(), from.to_owned(), to.to_owned());
        self.run(move |s| s.rename_mailbox(&user, &from, &to)).await
    }

    async fn delete(&self, mailbox: &MailboxRef) -> Result<(), MdaError> {
        let m = mailbox.clone();
        self.run(move |s| s.delete_mailbox(&m.user, &m.mailbox))
            .await
    }

    async fn subscribe(&self, mailbox: &MailboxRef, subscribed: bool) -> Result<(), MdaError> {
        let m = mailbox.clone();
        self.run(move |s| s.set_subscribed(&m.user, &m.mailbox, subscribed))
            .await
    }

    async fn status(&self, mailbox: &MailboxRef) -> Result<(MailboxStatus, Vec<String>), MdaError> {
        let m = mailbox.clone();
        self.run(move |s| {
            Ok((
                s.status(&m.user, &m.mailbox)?,
                s.keywords(&m.user, &m.mailbox)?,
            ))
        })
        .await
    }

    async fn uids(&self, mailbox: &MailboxRef) -> Result<Vec<Uid>, MdaError> {
        let m = mailbox.clone();
        self.run(move |s| s.uids(&m.user, &m.mailbox)).await
    }

    async fn metas(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
    ) -> Result<Vec<MessageMeta>, MdaError> {
        let m = mailbox.clone();
        let uids = uids.to_vec();
        self.run(move |s| s.metas(&m.user, &m.mailbox, &uids)).await
    }

    async fn fetch(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        part: Part,
    ) -> Result<BoxStream<Fetched>, MdaError> {
        let m = mailbox.clone();
        // A bad mailbox is an error, not an empty stream.
        self.run(move |s| s.status(&m.user, &m.mailbox)).await?;
        let (tx, rx) = mpsc::channel(4);
        let (store, m, uids) = (self.store.clone(), mailbox.clone(), uids.to_vec());
        tokio::task::spawn_blocking(move || {
            for uid in uids {
                match send_message(&store, &m, uid, part, &tx) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(error(e)));
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn read(&self, mailbox: &MailboxRef, uid: Uid) -> Result<Option<Vec<u8>>, MdaError> {
        let m = mailbox.clone();
        self.run(
            move |s| match MailStore::get(s, &m.user, &m.mailbox, uid)? {
                Some(meta) => BlobStore::get(s, &meta.blob, None).map(Some),
                None => Ok(None),
            },
        )
        .await
    }

    async fn store_flags(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreFlagsResult, MdaError> {
        let (m, uids, flags) = (mailbox.clone(), uids.to_vec(), flags.to_vec());
        self.run(move |s| s.store_flags(&m.user, &m.mailbox, &uids, op, &flags, unchanged_since))
            .await
    }

    async fn expunge(
        &self,
        mailbox: &MailboxRef,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, MdaError> {
        let (m, uids) = (mailbox.clone(), uids.map(<[Uid]>::to_vec));
        self.run(move |s| s.expunge(&m.user, &m.mailbox, uids.as_deref()))
            .await
    }

    async fn append(
        &self,
        mailbox: &MailboxRef,
        flags: &[String],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<Appended, MdaError> {
        let (m, flags) = (mailbox.clone(), flags.to_vec());
        let date = internal_date.unwrap_or_else(now);
        self.run(move |s| {
            // The blob before the metadata that points at it.
            let blob = BlobStore::put(s, &message)?;
            s.append(
                &m.user,
                &m.mailbox,
                &blob,
                message.len() as u64,
                &flags,
                date,
            )
        })
        .await
    }

    async fn copy(
        &self,
        from: &MailboxRef,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> Result<Copied, MdaError> {
        let (m, uids, to) = (from.clone(), uids.to_vec(), to.to_owned());
        self.run(move |s| s.copy(&m.user, &m.mailbox, &uids, &to, expunge))
            .await
    }

    async fn search(
        &self,
        mailbox: &MailboxRef,
        query: &Query,
    ) -> Result<(Vec<Uid>, u64), MdaError> {
        let (m, q) = (mailbox.clone(), query.clone());
        self.run(move |s| {
            let uids = s.search(&m.user, &m.mailbox, &q)?;
            let mut highest = 0;
            if facteur_rpc::convert::uses_modseq(&q) {
                for meta in s.metas(&m.user, &m.mailbox, &uids)? {
                    highest = highest.max(meta.modseq);
                }
            }
            Ok((uids, highest))
        })
        .await
    }

    async fn changes(&self, mailbox: &MailboxRef, since: u64) -> Result<Changes, MdaError> {
        let m = mailbox.clone();
        self.run(move |s| {
            // Status first: a change landing between the two calls is then
            // reported again later rather than missed.
            let mut highest = s.status(&m.user, &m.mailbox)?.highest_modseq;
            let mut out = Changes::default();
            for c in s.changes_since(&m.user, &m.mailbox, since)? {
                match c {
                    Change::Updated(meta) => {
                        highest = highest.max(meta.modseq);
                        out.updated.push(meta);
                    }
                    Change::Expunged { uid, modseq } => {
                        highest = highest.max(modseq);
                        out.expunged.push(uid);
                    }
                }
            }
            out.updated.sort_by_key(|m| m.uid);
            out.expunged.sort_unstable();
            out.highest_modseq = highest;
            Ok(out)
        })
        .await
    }

    async fn watch(&self, mailbox: &MailboxRef) -> Result<BoxStream<u64>, MdaError> {
        let m = mailbox.clone();
        let rx = self
            .run(move |s| Ok(ChangeFeed::subscribe(s, &m.user, &m.mailbox)))
            .await?;
        // The feed of a mailbox that does not exist is closed from the start.
        if rx.has_changed().is_err() {
            return Err(MdaError::NoSuchMailbox(mailbox.mailbox.clone()));
        }
        Ok(watch_stream(rx))
    }

    async fn lock(&self, user: &str, owner: &str, ttl_secs: u64) -> Result<bool, MdaError> {
        let (user, owner) = (user.to_owned(), owner.to_owned());
        self.run(move |s| s.lock_maildrop(&user, &owner, ttl_secs.max(1)))
            .await
    }

    async fn unlock(&self, user: &str, owner: &str) -> Result<(), MdaError> {
        let (user, owner) = (user.to_owned(), owner.to_owned());
        self.run(move |s| s.unlock_maildrop(&user, &owner)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn inbox() -> MailboxRef {
        MailboxRef::new("andre@lyon.test", "INBOX")
    }

    fn open() -> (tempfile::TempDir, StoreMda) {
        let dir = tempfile::tempdir().unwrap();
        let mda = StoreMda::open(dir.path(), &[("Andre@lyon.test", "pw")]).unwrap();
        (dir, mda)
    }

    const MSG: &[u8] =
        b"From: pierre@paris.test\r\nSubject: Lunch on Friday\r\n\r\nSee you at noon.\r\n";

    async fn collect(mut s: BoxStream<Fetched>) -> Vec<Fetched> {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            out.push(item.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn passwords_are_checked_and_the_account_name_is_canonical() {
        let (_dir, mda) = open();
        assert_eq!(
            mda.verify("ANDRE@lyon.test", "pw", "imap", "127.0.0.1")
                .await
                .unwrap(),
            Verdict::Ok("andre@lyon.test".into())
        );
        assert_eq!(
            mda.verify("andre@lyon.test", "nope", "imap", "127.0.0.1")
                .await
                .unwrap(),
            Verdict::Failed
        );
    }

    #[tokio::test]
    async fn an_appended_message_is_fetched_back_whole_header_or_meta_only() {
        let (_dir, mda) = open();
        mda.prepare_user("andre@lyon.test").await.unwrap();
        let a = mda
            .append(
                &inbox(),
                &["\\Seen".into()],
                Some(1_700_000_000),
                MSG.to_vec(),
            )
            .await
            .unwrap();
        let whole = collect(
            mda.fetch(&inbox(), &[a.uid, a.uid + 5], Part::Whole)
                .await
                .unwrap(),
        )
        .await;
        let Fetched::Meta(meta) = &whole[0] else {
            panic!("meta first: {whole:?}")
        };
        assert_eq!(meta.uid, a.uid);
        assert_eq!(meta.size, MSG.len() as u64);
        assert_eq!(meta.internal_date, 1_700_000_000);
        assert_eq!(meta.flags, vec!["\\Seen".to_owned()]);
        assert_eq!(whole[1], Fetched::Data(MSG.to_vec().into()));
        assert_eq!(whole[2..], [Fetched::End, Fetched::Missing(a.uid + 5)]);

        let header = collect(mda.fetch(&inbox(), &[a.uid], Part::Header).await.unwrap()).await;
        let head_len = MSG.len() - b"See you at noon.\r\n".len();
        assert_eq!(header[1], Fetched::Data(MSG[..head_len].to_vec().into()));
        let none = collect(mda.fetch(&inbox(), &[a.uid], Part::None).await.unwrap()).await;
        assert!(
            matches!(none[..], [Fetched::Meta(_), Fetched::End]),
            "{none:?}"
        );

        assert_eq!(
            mda.read(&inbox(), a.uid).await.unwrap().as_deref(),
            Some(MSG)
        );
        assert_eq!(mda.read(&inbox(), a.uid + 1).await.unwrap(), None);
        let (status, _) = mda.status(&inbox()).await.unwrap();
        assert_eq!(
            (status.exists, status.unseen, status.size),
            (1, 0, MSG.len() as u64)
        );
    }

    #[tokio::test]
    async fn search_finds_by_subject_and_not_by_absent_words() {
        let (_dir, mda) = open();
        let a = mda.append(&inbox(), &[], None, MSG.to_vec()).await.unwrap();
        mda.append(&inbox(), &[], None, b"Subject: other\r\n\r\nx\r\n".to_vec())
            .await
            .unwrap();
        let q = Query::Header(facteur_store::mail::Field::Subject, "lunch".into());
        let (uids, highest) = mda.search(&inbox(), &q).await.unwrap();
        assert_eq!(uids, vec![a.uid]);
        assert_eq!(highest, 0, "no MODSEQ key, no highest modseq");
        let (uids, highest) = mda
            .search(&inbox(), &Query::And(vec![q, Query::ModSeq(1)]))
            .await
            .unwrap();
        assert_eq!(uids, vec![a.uid]);
        let metas = mda.metas(&inbox(), &[a.uid]).await.unwrap();
        assert_eq!(highest, metas[0].modseq);
    }

    #[tokio::test]
    async fn watch_sees_the_current_modseq_then_an_append() {
        let (_dir, mda) = open();
        mda.prepare_user("andre@lyon.test").await.unwrap();
        let (status, _) = mda.status(&inbox()).await.unwrap();
        let mut w = mda.watch(&inbox()).await.unwrap();
        assert_eq!(w.next().await.unwrap().unwrap(), status.highest_modseq);
        mda.append(&inbox(), &[], None, MSG.to_vec()).await.unwrap();
        let next = w.next().await.unwrap().unwrap();
        assert!(next > status.highest_modseq);
        let missing = MailboxRef::new("andre@lyon.test", "Nope");
        assert!(matches!(
            mda.watch(&missing).await,
            Err(MdaError::NoSuchMailbox(_))
        ));
    }

    #[tokio::test]
    async fn changes_after_an_expunge_report_the_tombstone() {
        let (_dir, mda) = open();
        let a = mda.append(&inbox(), &[], None, MSG.to_vec()).await.unwrap();
        let b = mda.append(&inbox(), &[], None, MSG.to_vec()).await.unwrap();
        let (before, _) = mda.status(&inbox()).await.unwrap();
        assert_eq!(
            mda.expunge(&inbox(), Some(&[a.uid])).await.unwrap(),
            vec![a.uid]
        );
        let c = mda.changes(&inbox(), before.highest_modseq).await.unwrap();
        assert_eq!(c.expunged, vec![a.uid]);
        assert!(c.updated.is_empty());
        assert!(c.highest_modseq > before.highest_modseq);
        assert_eq!(mda.uids(&inbox()).await.unwrap(), vec![b.uid]);
    }
}
