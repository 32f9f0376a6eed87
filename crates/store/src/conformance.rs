//! The conformance suite of the storage seam: one set of tests, generic over
//! `MailStore + BlobStore + ChangeFeed`, that every backend must pass. Each
//! case takes an `open` function mapping a fresh directory to a store, so that
//! persistence can be tested by dropping and reopening.
//!
//! Instantiate it for a backend with
//! `facteur_store::conformance_tests!(module, open_fn)` (feature `conformance`).
//! The test functions unwrap freely: they are tests.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::{
    AccountStore, BlobId, BlobStore, Change, ChangeFeed, FlagOp, MailStore, MessageKey, StoreError,
};

/// Everything a full backend implements.
pub trait Backend: MailStore + BlobStore + ChangeFeed + AccountStore {}
impl<T: MailStore + BlobStore + ChangeFeed + AccountStore> Backend for T {}

const U: &str = "pierre@paris.test";
const U2: &str = "jacques@paris.test";

fn flags(x: &[&str]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
}

fn key(s: &str) -> MessageKey {
    MessageKey(s.to_owned())
}

/// Puts a blob and files it; returns the uid.
fn deliver<S: Backend>(s: &S, k: &str, user: &str, mailbox: &str, body: &str) -> u32 {
    let blob = s.put(body.as_bytes()).unwrap();
    let filed = MailStore::file(
        s,
        &key(k),
        user,
        mailbox,
        &blob,
        body.len() as u64,
        1_700_000_000,
    )
    .unwrap();
    assert!(!filed.duplicate, "{k} filed as duplicate");
    filed.uid
}

fn highest<S: Backend>(s: &S, mailbox: &str) -> u64 {
    s.status(U, mailbox).unwrap().highest_modseq
}

pub fn blobs_are_content_addressed<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let id = s.put(b"hello world").unwrap();
    assert_eq!(
        id.0,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(s.put(b"hello world").unwrap(), id, "put is idempotent");
    assert_eq!(BlobStore::get(&s, &id, None).unwrap(), b"hello world");
    assert_eq!(BlobStore::get(&s, &id, Some(0..5)).unwrap(), b"hello");
    assert_eq!(BlobStore::get(&s, &id, Some(6..100)).unwrap(), b"world");
    assert_eq!(BlobStore::get(&s, &id, Some(50..100)).unwrap(), b"");
    let empty = s.put(b"").unwrap();
    assert_eq!(BlobStore::get(&s, &empty, None).unwrap(), b"");
    let unknown = BlobId("00".repeat(32));
    assert!(matches!(
        BlobStore::get(&s, &unknown, None),
        Err(StoreError::NoSuchBlob)
    ));
    let malformed = BlobId("not hex".into());
    assert!(matches!(
        BlobStore::get(&s, &malformed, None),
        Err(StoreError::NoSuchBlob)
    ));
}

pub fn filing_creates_inbox_and_allocates_ascending_uids<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.unseen, st.uidnext), (0, 0, 1));
    assert!(
        st.highest_modseq >= 1,
        "RFC 7162 wants a non-zero HIGHESTMODSEQ"
    );
    assert_eq!(s.list_mailboxes(U2).unwrap(), vec!["INBOX"]);
    let uids: Vec<u32> = (0..3)
        .map(|i| deliver(&s, &format!("k{i}"), U2, "INBOX", &format!("body {i}")))
        .collect();
    assert_eq!(uids, vec![1, 2, 3]);
    let st = s.status(U2, "INBOX").unwrap();
    assert_eq!((st.exists, st.unseen, st.uidnext), (3, 3, 4));
    let m = MailStore::get(&s, U2, "INBOX", 2).unwrap().unwrap();
    assert_eq!(m.uid, 2);
    assert_eq!(m.size, 6);
    assert_eq!(m.internal_date, 1_700_000_000);
    assert!(m.flags.is_empty());
    assert_eq!(BlobStore::get(&s, &m.blob, None).unwrap(), b"body 1");
    assert!(MailStore::get(&s, U2, "INBOX", 9).unwrap().is_none());
}

pub fn filing_is_idempotent_per_key_and_user<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let blob = s.put(b"once").unwrap();
    let first = s.file(&key("k1"), U, "INBOX", &blob, 4, 0).unwrap();
    assert!(!first.duplicate);
    let again = s.file(&key("k1"), U, "inbox", &blob, 4, 0).unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.uid, again.uidvalidity),
        (first.uid, first.uidvalidity)
    );
    // same key, same user, another mailbox: still once per (key, user)
    s.create_mailbox(U, "Other").unwrap();
    assert!(
        s.file(&key("k1"), U, "Other", &blob, 4, 0)
            .unwrap()
            .duplicate
    );
    assert_eq!(s.status(U, "Other").unwrap().exists, 0);
    // same key, another user: filed for that user
    let other = s.file(&key("k1"), U2, "INBOX", &blob, 4, 0).unwrap();
    assert!(!other.duplicate);
    assert_eq!(s.status(U, "INBOX").unwrap().exists, 1);
    assert_eq!(s.status(U2, "INBOX").unwrap().exists, 1);
    // another key files again
    let second = s.file(&key("k2"), U, "INBOX", &blob, 4, 0).unwrap();
    assert_eq!(second.uid, first.uid + 1);
}

pub fn filing_checks_blob_size_and_mailbox<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let unknown = BlobId("ab".repeat(32));
    assert!(matches!(
        s.file(&key("a"), U, "INBOX", &unknown, 3, 0),
        Err(StoreError::NoSuchBlob)
    ));
    let blob = s.put(b"abc").unwrap();
    assert!(
        s.file(&key("b"), U, "INBOX", &blob, 4, 0).is_err(),
        "size mismatch"
    );
    assert!(matches!(
        s.file(&key("c"), U, "Nope", &blob, 3, 0),
        Err(StoreError::NoSuchMailbox(_))
    ));
    assert!(matches!(
        s.file(&key("d"), "not an address", "INBOX", &blob, 3, 0),
        Err(StoreError::InvalidUser(_))
    ));
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!(
        (st.exists, st.uidnext),
        (0, 1),
        "failed filings leave no trace"
    );
    // the failed keys were not consumed
    assert!(
        !s.file(&key("a"), U, "INBOX", &blob, 3, 0)
            .unwrap()
            .duplicate
    );
    assert!(
        !s.file(&key("c"), U, "INBOX", &blob, 3, 0)
            .unwrap()
            .duplicate
    );
}

pub fn names_inbox_case_insensitive_users_lowercased<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    deliver(&s, "k", "Pierre@PARIS.test", "inbox", "x");
    assert_eq!(s.status(U, "InBoX").unwrap().exists, 1);
    assert_eq!(s.status("PIERRE@paris.test", "INBOX").unwrap().exists, 1);
    assert!(matches!(
        s.create_mailbox(U, "Inbox"),
        Err(StoreError::MailboxExists(_))
    ));
    s.create_mailbox(U, "Sent").unwrap();
    s.create_mailbox(U, "sent").unwrap();
    assert!(matches!(
        s.create_mailbox(U, "Sent"),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        s.status(U, "SENT"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    assert_eq!(s.list_mailboxes(U).unwrap(), vec!["INBOX", "Sent", "sent"]);
    assert!(matches!(
        s.create_mailbox(U, ""),
        Err(StoreError::InvalidMailboxName(_))
    ));
    assert!(matches!(
        s.create_mailbox(U, "a\r\nb"),
        Err(StoreError::InvalidMailboxName(_))
    ));
}

pub fn uids_never_reused<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=3 {
        assert_eq!(deliver(&s, &format!("k{i}"), U, "INBOX", "m"), i);
    }
    assert_eq!(s.expunge(U, "INBOX", Some(&[3])).unwrap(), vec![3]);
    assert_eq!(deliver(&s, "k4", U, "INBOX", "m"), 4);
    assert_eq!(
        s.expunge(U, "INBOX", Some(&[1, 2, 4])).unwrap(),
        vec![1, 2, 4]
    );
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.uidnext), (0, 5));
    assert_eq!(deliver(&s, "k5", U, "INBOX", "m"), 5);
}

pub fn modseq_strictly_ascending<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut last = highest(&s, "INBOX");
    let mut step = |what: &str, s: &S| {
        let now = highest(s, "INBOX");
        assert!(now > last, "{what}: {now} <= {last}");
        last = now;
    };
    deliver(&s, "a", U, "INBOX", "a");
    step("file", &s);
    deliver(&s, "b", U, "INBOX", "b");
    step("file", &s);
    s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    step("flags", &s);
    let r = s
        .store_flags(
            U,
            "INBOX",
            &[1, 2],
            FlagOp::Add,
            &flags(&["\\Flagged"]),
            None,
        )
        .unwrap();
    assert_ne!(r.updated[0].modseq, r.updated[1].modseq);
    step("flags", &s);
    s.expunge(U, "INBOX", Some(&[1])).unwrap();
    step("expunge", &s);
    let before = highest(&s, "INBOX");
    s.expunge(U, "INBOX", None).unwrap();
    assert_eq!(highest(&s, "INBOX"), before, "no-op expunge does not bump");
    // each message's modseq is at most the mailbox's highest
    let m = MailStore::get(&s, U, "INBOX", 2).unwrap().unwrap();
    assert!(m.modseq <= highest(&s, "INBOX"));
}

pub fn store_flags_semantics<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=3 {
        deliver(&s, &format!("k{i}"), U, "INBOX", "m");
    }
    let r = s
        .store_flags(
            U,
            "INBOX",
            &[2, 1, 99],
            FlagOp::Add,
            &flags(&["\\seen", "$Work"]),
            None,
        )
        .unwrap();
    assert!(r.failed_modified.is_empty());
    assert_eq!(
        r.updated.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(r.updated[0].flags, flags(&["\\Seen", "$Work"]));
    assert_eq!(s.status(U, "INBOX").unwrap().unseen, 1);
    // no-op change: reported, no new modseq
    let h = highest(&s, "INBOX");
    let r = s
        .store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    assert_eq!(r.updated.len(), 1);
    assert_eq!(highest(&s, "INBOX"), h);
    // remove and replace
    let r = s
        .store_flags(U, "INBOX", &[1], FlagOp::Remove, &flags(&["\\SEEN"]), None)
        .unwrap();
    assert_eq!(r.updated[0].flags, flags(&["$Work"]));
    assert_eq!(s.status(U, "INBOX").unwrap().unseen, 2);
    let r = s
        .store_flags(
            U,
            "INBOX",
            &[1],
            FlagOp::Replace,
            &flags(&["\\Answered"]),
            None,
        )
        .unwrap();
    assert_eq!(r.updated[0].flags, flags(&["\\Answered"]));
    // UNCHANGEDSINCE (RFC 7162 §3.2)
    let m1 = MailStore::get(&s, U, "INBOX", 1).unwrap().unwrap();
    let m3 = MailStore::get(&s, U, "INBOX", 3).unwrap().unwrap();
    assert!(m3.modseq < m1.modseq);
    let since = m3.modseq;
    let r = s
        .store_flags(
            U,
            "INBOX",
            &[1, 3],
            FlagOp::Add,
            &flags(&["\\Flagged"]),
            Some(since),
        )
        .unwrap();
    assert_eq!(r.failed_modified, vec![1]);
    assert_eq!(r.updated.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![3]);
    assert!(r.updated[0].modseq > since);
    let still = MailStore::get(&s, U, "INBOX", 1).unwrap().unwrap();
    assert_eq!(still, m1, "a failed message is untouched");
    let r = s
        .store_flags(U, "INBOX", &[1, 2, 3], FlagOp::Add, &flags(&["x"]), Some(0))
        .unwrap();
    assert_eq!(
        r.failed_modified,
        vec![1, 2, 3],
        "UNCHANGEDSINCE 0 always fails"
    );
    assert!(matches!(
        s.store_flags(U, "Nope", &[1], FlagOp::Add, &flags(&["x"]), None),
        Err(StoreError::NoSuchMailbox(_))
    ));
    assert!(
        s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["bad flag"]), None)
            .is_err()
    );
}

pub fn expunge_and_tombstones<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=5 {
        deliver(&s, &format!("k{i}"), U, "INBOX", "m");
    }
    s.store_flags(
        U,
        "INBOX",
        &[2, 4],
        FlagOp::Add,
        &flags(&["\\Deleted"]),
        None,
    )
    .unwrap();
    s.store_flags(U, "INBOX", &[4], FlagOp::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    let mark = highest(&s, "INBOX");
    assert_eq!(s.expunge(U, "INBOX", None).unwrap(), vec![2, 4]);
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.unseen), (3, 3));
    // POP3: exactly these uids, \Deleted or not; unknown ones ignored
    assert_eq!(s.expunge(U, "INBOX", Some(&[5, 2, 5])).unwrap(), vec![5]);
    let changes = s.changes_since(U, "INBOX", mark).unwrap();
    let tomb: Vec<(u32, u64)> = changes
        .iter()
        .map(|c| match c {
            Change::Expunged { uid, modseq } => (*uid, *modseq),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tomb.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 4, 5]);
    assert!(tomb.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(tomb[2].1, highest(&s, "INBOX"));
    assert!(tomb[0].1 > mark);
    // list skips expunged messages
    let live: Vec<u32> = s
        .list(U, "INBOX", 1, 100)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(live, vec![1, 3]);
    assert!(MailStore::get(&s, U, "INBOX", 2).unwrap().is_none());
}

pub fn changes_since_reports_each_uid_once<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let start = highest(&s, "INBOX");
    for i in 1..=3 {
        deliver(&s, &format!("k{i}"), U, "INBOX", "m");
    }
    let all = s.changes_since(U, "INBOX", start).unwrap();
    let uids: Vec<u32> = all
        .iter()
        .map(|c| match c {
            Change::Updated(m) => m.uid,
            Change::Expunged { uid, .. } => *uid,
        })
        .collect();
    assert_eq!(uids, vec![1, 2, 3]);
    let mark = highest(&s, "INBOX");
    assert!(s.changes_since(U, "INBOX", mark).unwrap().is_empty());
    s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Flagged"]), None)
        .unwrap();
    s.expunge(U, "INBOX", Some(&[2])).unwrap();
    let ch = s.changes_since(U, "INBOX", mark).unwrap();
    assert_eq!(ch.len(), 2, "{ch:?}");
    match &ch[0] {
        Change::Updated(m) => {
            assert_eq!(m.uid, 1);
            assert_eq!(m.flags, flags(&["\\Seen", "\\Flagged"]));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(ch[1], Change::Expunged { uid: 2, .. }));
    // from the beginning: every uid once, ascending modseq
    let all = s.changes_since(U, "INBOX", 0).unwrap();
    let seqs: Vec<(u32, u64)> = all
        .iter()
        .map(|c| match c {
            Change::Updated(m) => (m.uid, m.modseq),
            Change::Expunged { uid, modseq } => (*uid, *modseq),
        })
        .collect();
    assert_eq!(seqs.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 1, 2]);
    assert!(seqs.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(s.changes_since(U, "INBOX", u64::MAX).unwrap().is_empty());
}

pub fn list_is_paged_and_per_mailbox<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_mailbox(U, "A").unwrap();
    for i in 1..=25 {
        deliver(&s, &format!("k{i}"), U, "INBOX", &format!("m{i}"));
    }
    deliver(&s, "a1", U, "A", "x");
    deliver(&s, "o1", U2, "INBOX", "x");
    let page = |from, limit| -> Vec<u32> {
        s.list(U, "INBOX", from, limit)
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect()
    };
    assert_eq!(page(1, 10), (1..=10).collect::<Vec<_>>());
    assert_eq!(page(11, 10), (11..=20).collect::<Vec<_>>());
    assert_eq!(page(21, 10), (21..=25).collect::<Vec<_>>());
    assert!(page(26, 10).is_empty());
    assert!(page(1, 0).is_empty());
    s.expunge(U, "INBOX", Some(&[5, 6, 7])).unwrap();
    assert_eq!(page(5, 2), vec![8, 9]);
    assert_eq!(page(0, 3), vec![1, 2, 3]);
    assert_eq!(s.list(U, "A", 1, 100).unwrap().len(), 1);
    assert_eq!(s.list(U2, "INBOX", 1, 100).unwrap().len(), 1);
    assert!(matches!(
        s.list(U, "Nope", 1, 10),
        Err(StoreError::NoSuchMailbox(_))
    ));
}

pub fn mailbox_lifecycle<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_mailbox(U, "Work").unwrap();
    let uv1 = s.status(U, "Work").unwrap().uidvalidity;
    deliver(&s, "w1", U, "Work", "w");
    s.rename_mailbox(U, "Work", "Archive").unwrap();
    assert!(matches!(
        s.status(U, "Work"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    let st = s.status(U, "Archive").unwrap();
    assert_eq!(
        (st.exists, st.uidvalidity),
        (1, uv1),
        "rename keeps messages and UIDs"
    );
    assert!(matches!(
        s.rename_mailbox(U, "Work", "X"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    s.create_mailbox(U, "X").unwrap();
    assert!(matches!(
        s.rename_mailbox(U, "Archive", "X"),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        s.rename_mailbox(U, "Archive", "inbox"),
        Err(StoreError::MailboxExists(_))
    ));
    // re-created mailbox: greater UIDVALIDITY, empty, uids from 1
    s.create_mailbox(U, "Work").unwrap();
    let uv2 = s.status(U, "Work").unwrap().uidvalidity;
    assert!(uv2 > uv1);
    s.delete_mailbox(U, "Archive").unwrap();
    assert!(matches!(
        s.delete_mailbox(U, "Archive"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    s.create_mailbox(U, "Archive").unwrap();
    let st = s.status(U, "Archive").unwrap();
    assert_eq!((st.exists, st.uidnext), (0, 1));
    assert!(st.uidvalidity > uv2);
    assert!(s.list(U, "Archive", 1, 10).unwrap().is_empty());
    assert!(matches!(
        s.delete_mailbox(U, "inbox"),
        Err(StoreError::NotAllowed(_))
    ));
    assert_eq!(
        s.list_mailboxes(U).unwrap(),
        vec!["Archive", "INBOX", "Work", "X"]
    );
    assert_eq!(s.list_mailboxes(U2).unwrap(), vec!["INBOX"]);
    // renaming INBOX moves its messages and leaves a new, empty INBOX
    deliver(&s, "i1", U, "INBOX", "i");
    let inbox_uv = s.status(U, "INBOX").unwrap().uidvalidity;
    s.rename_mailbox(U, "Inbox", "Old").unwrap();
    assert_eq!(s.status(U, "Old").unwrap().exists, 1);
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.uidnext), (0, 1));
    assert!(st.uidvalidity > inbox_uv);
    assert_eq!(deliver(&s, "i2", U, "INBOX", "i"), 1);
}

pub fn uidvalidity_from_clock<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let uv = s.status(U, "INBOX").unwrap().uidvalidity;
    assert!(uv >= now && uv <= now + 60, "{uv} vs {now}");
    let mut last = uv;
    for i in 0..5 {
        let name = format!("M{i}");
        s.create_mailbox(U, &name).unwrap();
        let uv = s.status(U, &name).unwrap().uidvalidity;
        assert!(uv > last);
        last = uv;
    }
}

pub fn data_survives_reopen<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let (uv, blob, mark) = {
        let s = open(dir.path());
        deliver(&s, "k1", U, "INBOX", "first");
        deliver(&s, "k2", U, "INBOX", "second");
        s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Seen"]), None)
            .unwrap();
        s.expunge(U, "INBOX", Some(&[2])).unwrap();
        s.create_mailbox(U, "Kept").unwrap();
        let blob = s.put(b"standalone").unwrap();
        let st = s.status(U, "INBOX").unwrap();
        (st.uidvalidity, blob, st.highest_modseq)
    };
    let s = open(dir.path());
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!(
        (st.uidvalidity, st.uidnext, st.exists, st.unseen),
        (uv, 3, 1, 0)
    );
    assert_eq!(st.highest_modseq, mark);
    assert_eq!(s.list_mailboxes(U).unwrap(), vec!["INBOX", "Kept"]);
    let m = MailStore::get(&s, U, "INBOX", 1).unwrap().unwrap();
    assert_eq!(m.flags, flags(&["\\Seen"]));
    assert_eq!(BlobStore::get(&s, &m.blob, None).unwrap(), b"first");
    assert_eq!(BlobStore::get(&s, &blob, None).unwrap(), b"standalone");
    assert!(matches!(
        s.changes_since(U, "INBOX", 0).unwrap().last(),
        Some(Change::Expunged { uid: 2, .. })
    ));
    // idempotency survives, and uids continue
    let b = s.put(b"first").unwrap();
    let again = s.file(&key("k1"), U, "INBOX", &b, 5, 0).unwrap();
    assert!(again.duplicate && again.uid == 1);
    assert_eq!(deliver(&s, "k3", U, "INBOX", "third"), 3);
    assert!(highest(&s, "INBOX") > mark);
}

pub fn concurrent_filing_is_serialized<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let blob = s.put(b"same").unwrap();
    let results: Vec<(bool, u32)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = &s;
                let blob = &blob;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..10 {
                        // each key is filed by two threads at once
                        let k = key(&format!("k{}-{i}", t / 2));
                        let f = s.file(&k, U, "INBOX", blob, 4, 0).unwrap();
                        out.push((f.duplicate, f.uid));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut fresh: Vec<u32> = results.iter().filter(|r| !r.0).map(|r| r.1).collect();
    fresh.sort_unstable();
    assert_eq!(
        fresh,
        (1..=40).collect::<Vec<_>>(),
        "exactly once, no gaps, no reuse"
    );
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.uidnext), (40, 41));
    // commit order = UID order: modseq (allocated at commit) ascends with uid
    let all = s.list(U, "INBOX", 1, 100).unwrap();
    assert!(
        all.windows(2)
            .all(|w| w[0].uid < w[1].uid && w[0].modseq < w[1].modseq)
    );
}

pub fn maildrop_lock<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(s.lock_maildrop(U, "a", 600).unwrap());
    assert!(s.lock_maildrop(U, "a", 600).unwrap(), "already ours");
    assert!(!s.lock_maildrop("PIERRE@paris.test", "b", 600).unwrap());
    assert!(s.lock_maildrop(U2, "b", 600).unwrap(), "per user");
    s.unlock_maildrop(U, "b").unwrap();
    assert!(
        !s.lock_maildrop(U, "b", 600).unwrap(),
        "only the owner unlocks"
    );
    s.unlock_maildrop(U, "a").unwrap();
    assert!(s.lock_maildrop(U, "b", 0).unwrap());
    // ttl 0: already expired, anyone may take it
    assert!(s.lock_maildrop(U, "c", 600).unwrap());
    assert!(!s.lock_maildrop(U, "b", 600).unwrap());
}

pub fn change_feed_hints<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut rx = s.subscribe(U, "inbox");
    assert_eq!(*rx.borrow_and_update(), highest(&s, "INBOX"));
    assert!(!rx.has_changed().unwrap());
    deliver(&s, "k1", U, "INBOX", "m");
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), highest(&s, "INBOX"));
    s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), highest(&s, "INBOX"));
    s.expunge(U, "INBOX", Some(&[1])).unwrap();
    assert_eq!(*rx.borrow_and_update(), highest(&s, "INBOX"));
    // other mailboxes do not wake this one
    s.create_mailbox(U, "Other").unwrap();
    let mut other = s.subscribe(U, "Other");
    other.borrow_and_update();
    deliver(&s, "k2", U2, "INBOX", "m");
    deliver(&s, "k3", U, "Other", "m");
    assert!(!rx.has_changed().unwrap());
    assert!(other.has_changed().unwrap());
    // a watcher that missed hints catches up by modseq
    let late = s.subscribe(U, "INBOX");
    assert_eq!(*late.borrow(), highest(&s, "INBOX"));
    // unknown mailbox: closed at once
    assert!(s.subscribe(U, "Nope").has_changed().is_err());
}

pub fn accounts_lifecycle<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.password_hash(U).unwrap(), None);
    s.add_user("Pierre@Paris.test", "$argon2id$one").unwrap();
    assert_eq!(
        s.password_hash(U).unwrap().as_deref(),
        Some("$argon2id$one")
    );
    assert!(matches!(
        s.add_user(U, "$argon2id$two"),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(
        s.password_hash(U).unwrap().as_deref(),
        Some("$argon2id$one")
    );
    s.set_password_hash("PIERRE@paris.test", "$argon2id$two")
        .unwrap();
    assert_eq!(
        s.password_hash(U).unwrap().as_deref(),
        Some("$argon2id$two")
    );
    assert!(matches!(
        s.set_password_hash(U2, "x"),
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_user("andre@lyon.test", "$h").unwrap();
    s.add_user(U2, "$h").unwrap();
    assert_eq!(
        s.list_users().unwrap(),
        vec!["andre@lyon.test", U2, U],
        "sorted, lowercased"
    );
    s.delete_user(U2).unwrap();
    assert!(matches!(s.delete_user(U2), Err(StoreError::NoSuchUser(_))));
    assert_eq!(s.password_hash(U2).unwrap(), None);
    assert!(matches!(
        s.add_user("not an address", "$h"),
        Err(StoreError::InvalidUser(_))
    ));
    assert_eq!(s.password_hash("not an address").unwrap(), None);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.list_users().unwrap(), vec!["andre@lyon.test", U]);
    assert_eq!(
        s.password_hash(U).unwrap().as_deref(),
        Some("$argon2id$two")
    );
}

/// Generates one `#[test]` per conformance case for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $open:expr) => {
        mod $module {
            $crate::conformance_tests!(@cases $open;
                blobs_are_content_addressed,
                filing_creates_inbox_and_allocates_ascending_uids,
                filing_is_idempotent_per_key_and_user,
                filing_checks_blob_size_and_mailbox,
                names_inbox_case_insensitive_users_lowercased,
                uids_never_reused,
                modseq_strictly_ascending,
                store_flags_semantics,
                expunge_and_tombstones,
                changes_since_reports_each_uid_once,
                list_is_paged_and_per_mailbox,
                mailbox_lifecycle,
                uidvalidity_from_clock,
                data_survives_reopen,
                concurrent_filing_is_serialized,
                maildrop_lock,
                change_feed_hints,
                accounts_lifecycle,
            );
        }
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case(&$open);
            }
        )*
    };
}

#[cfg(test)]
mod sled_backend {
    use std::path::Path;

    use crate::{BlobStore, SledOptions, SledStore, StoreError};

    /// Opens the sled store. The writer thread is joined when the last handle
    /// is dropped, so an immediate reopen finds the files free.
    fn open_sled(p: &Path) -> SledStore {
        SledStore::open(p).unwrap()
    }

    crate::conformance_tests!(cases, super::open_sled);

    #[test]
    fn below_the_reserve_new_mail_is_refused_temporarily() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open_with(
            dir.path(),
            SledOptions {
                min_free_bytes: u64::MAX,
            },
        )
        .unwrap();
        let err = s.put(b"message").unwrap_err();
        assert!(matches!(err, StoreError::Full(_)), "{err}");
        assert!(err.is_transient());
    }
}
