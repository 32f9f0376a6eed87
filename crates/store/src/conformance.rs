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
    AccountStore, BlobId, BlobStore, Change, ChangeFeed, Field, FlagOp, MailStore, MailboxInfo,
    MessageKey, Query, Role, StoreError,
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

pub fn metas_reads_the_asked_uids_that_exist<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_mailbox(U, "A").unwrap();
    for i in 1..=200 {
        deliver(&s, &format!("k{i}"), U, "INBOX", &format!("m{i}"));
    }
    deliver(&s, "a1", U, "A", "x");
    deliver(&s, "o1", U2, "INBOX", "x");
    s.expunge(U, "INBOX", Some(&[5, 6, 7, 150])).unwrap();
    s.store_flags(
        U,
        "INBOX",
        &[3, 100],
        FlagOp::Add,
        &flags(&["\\Seen", "work"]),
        None,
    )
    .unwrap();
    // Unsorted, repeated, expunged, far apart and past the end.
    let asked = [100, 3, 4, 5, 3, 150, 151, 2, 199, 200, 201, 9999, 1];
    let got = s.metas(U, "INBOX", &asked).unwrap();
    let uids: Vec<u32> = got.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![1, 2, 3, 4, 100, 151, 199, 200]);
    for m in &got {
        assert_eq!(
            Some(m),
            MailStore::get(&s, U, "INBOX", m.uid).unwrap().as_ref(),
            "uid {}",
            m.uid
        );
    }
    assert_eq!(got[2].flags, flags(&["\\Seen", "work"]));
    // Every message, and none of another mailbox or user.
    let all: Vec<u32> = (0..=300).collect();
    assert_eq!(s.metas(U, "INBOX", &all).unwrap().len(), 196);
    assert_eq!(s.metas(U, "inbox", &[1, 2]).unwrap().len(), 2);
    let a = s.metas(U, "A", &all).unwrap();
    assert_eq!(a.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![1]);
    assert_eq!(s.metas(U2, "INBOX", &[1, 2]).unwrap().len(), 1);
    assert!(s.metas(U, "INBOX", &[]).unwrap().is_empty());
    assert!(matches!(
        s.metas(U, "Nope", &[1]),
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

/// Puts a blob and appends it; returns the uid.
fn append<S: Backend>(s: &S, mailbox: &str, body: &str, fl: &[&str], date: i64) -> u32 {
    let blob = s.put(body.as_bytes()).unwrap();
    s.append(U, mailbox, &blob, body.len() as u64, &flags(fl), date)
        .unwrap()
        .uid
}

fn info(name: &str, role: Option<Role>, subscribed: bool) -> MailboxInfo {
    MailboxInfo {
        name: name.to_owned(),
        role,
        subscribed,
    }
}

pub fn prepare_user_creates_roles_once<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.prepare_user("Pierre@Paris.test").unwrap();
    let expected = vec![
        info("Archive", Some(Role::Archive), true),
        info("Drafts", Some(Role::Drafts), true),
        info("INBOX", None, true),
        info("Junk", Some(Role::Junk), true),
        info("Sent", Some(Role::Sent), true),
        info("Trash", Some(Role::Trash), true),
    ];
    assert_eq!(s.mailboxes(U).unwrap(), expected);
    let uv = s.status(U, "Sent").unwrap().uidvalidity;
    s.prepare_user(U).unwrap();
    assert_eq!(s.mailboxes(U).unwrap(), expected, "idempotent");
    assert_eq!(
        s.status(U, "Sent").unwrap().uidvalidity,
        uv,
        "not re-created"
    );
    // a role already held by another mailbox is not created again; a
    // mailbox of the default name without a role gets the role
    s.create_mailbox(U2, "Sent").unwrap();
    let sent_uv = s.status(U2, "Sent").unwrap().uidvalidity;
    s.create_mailbox_with_role(U2, "Corbeille", Some(Role::Trash))
        .unwrap();
    s.prepare_user(U2).unwrap();
    let got = s.mailboxes(U2).unwrap();
    let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["Archive", "Corbeille", "Drafts", "INBOX", "Junk", "Sent"]
    );
    assert_eq!(got[1], info("Corbeille", Some(Role::Trash), false));
    assert_eq!(got[5].role, Some(Role::Sent));
    assert_eq!(s.status(U2, "Sent").unwrap().uidvalidity, sent_uv);
    // the role follows a rename
    s.rename_mailbox(U2, "Corbeille", "Old/Bin").unwrap();
    let moved = s.mailboxes(U2).unwrap();
    assert!(
        moved
            .iter()
            .any(|m| m.name == "Old/Bin" && m.role == Some(Role::Trash))
    );
    assert!(matches!(
        s.create_mailbox_with_role(U2, "Sent", Some(Role::Sent)),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        s.prepare_user("not an address"),
        Err(StoreError::InvalidUser(_))
    ));
}

pub fn subscriptions_are_independent_of_mailboxes<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.set_subscribed(U, "Ghost", true).unwrap();
    s.set_subscribed(U, "Ghost", true).unwrap();
    s.set_subscribed(U, "inbox", true).unwrap();
    assert_eq!(s.subscriptions(U).unwrap(), vec!["Ghost", "INBOX"]);
    assert!(
        s.mailboxes(U).unwrap().iter().all(|m| m.name != "Ghost"),
        "a subscription is not a mailbox"
    );
    s.create_mailbox(U, "Ghost").unwrap();
    s.create_mailbox(U, "Plain").unwrap();
    assert_eq!(
        s.mailboxes(U).unwrap(),
        vec![
            info("Ghost", None, true),
            info("INBOX", None, true),
            info("Plain", None, false),
        ]
    );
    s.delete_mailbox(U, "Ghost").unwrap();
    assert_eq!(
        s.subscriptions(U).unwrap(),
        vec!["Ghost", "INBOX"],
        "deleting a mailbox keeps its subscription"
    );
    s.set_subscribed(U, "Ghost", false).unwrap();
    s.set_subscribed(U, "Never", false).unwrap();
    assert_eq!(s.subscriptions(U).unwrap(), vec!["INBOX"]);
    assert!(s.subscriptions(U2).unwrap().is_empty());
    assert!(matches!(
        s.set_subscribed(U, "", true),
        Err(StoreError::InvalidMailboxName(_))
    ));
}

pub fn append_sets_flags_date_and_uid<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let body = "Subject: draft\r\n\r\nhello";
    let blob = s.put(body.as_bytes()).unwrap();
    assert!(matches!(
        s.append(U, "Drafts", &blob, body.len() as u64, &[], 5),
        Err(StoreError::NoSuchMailbox(_))
    ));
    s.create_mailbox(U, "Drafts").unwrap();
    let before = s.status(U, "Drafts").unwrap();
    let a = s
        .append(
            U,
            "Drafts",
            &blob,
            body.len() as u64,
            &flags(&["\\draft", "\\SEEN", "$Label", "\\Recent", "$label"]),
            1_600_000_000,
        )
        .unwrap();
    assert_eq!((a.uid, a.uidvalidity), (before.uidnext, before.uidvalidity));
    let m = MailStore::get(&s, U, "Drafts", a.uid).unwrap().unwrap();
    assert_eq!(m.flags, flags(&["\\Draft", "\\Seen", "$Label"]));
    assert_eq!(
        (m.blob.clone(), m.size, m.internal_date),
        (blob.clone(), body.len() as u64, 1_600_000_000)
    );
    let st = s.status(U, "Drafts").unwrap();
    assert_eq!((st.exists, st.unseen, st.uidnext), (1, 0, a.uid + 1));
    assert!(st.highest_modseq > before.highest_modseq);
    assert_eq!(m.modseq, st.highest_modseq);
    let b = s
        .append(U, "Drafts", &blob, body.len() as u64, &[], 0)
        .unwrap();
    assert_eq!(b.uid, a.uid + 1);
    assert_eq!(
        s.status(U, "Drafts").unwrap().unseen,
        1,
        "not \\Seen: unseen"
    );
    assert_eq!(s.keywords(U, "Drafts").unwrap(), vec!["$Label"]);
    // refused: bad flags, wrong size, unknown blob; nothing is added
    assert!(
        s.append(
            U,
            "Drafts",
            &blob,
            body.len() as u64,
            &flags(&["bad flag"]),
            0
        )
        .is_err()
    );
    assert!(s.append(U, "Drafts", &blob, 3, &[], 0).is_err());
    assert!(matches!(
        s.append(U, "Drafts", &BlobId("cd".repeat(32)), 3, &[], 0),
        Err(StoreError::NoSuchBlob)
    ));
    assert_eq!(s.status(U, "Drafts").unwrap().exists, 2);
    // INBOX is created on first use, as for filing
    assert_eq!(append(&s, "inbox", body, &[], 0), 1);
}

pub fn copy_shares_blobs_and_allocates_ascending_uids<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=3 {
        deliver(
            &s,
            &format!("k{i}"),
            U,
            "INBOX",
            &format!("Subject: m{i}\r\n\r\nbody {i}"),
        );
    }
    s.store_flags(
        U,
        "INBOX",
        &[3],
        FlagOp::Add,
        &flags(&["\\Seen", "$Work"]),
        None,
    )
    .unwrap();
    s.create_mailbox(U, "Work").unwrap();
    deliver(&s, "w", U, "Work", "Subject: w\r\n\r\nw");
    let src_before = s.status(U, "INBOX").unwrap();
    let dst_before = s.status(U, "Work").unwrap();
    let c = s.copy(U, "INBOX", &[3, 1, 99, 3], "Work", false).unwrap();
    assert_eq!(c.uidvalidity, dst_before.uidvalidity);
    assert_eq!(
        c.uids,
        vec![(1, 2), (3, 3)],
        "ascending source order, new uids"
    );
    assert_eq!(
        s.status(U, "INBOX").unwrap(),
        src_before,
        "COPY leaves the source"
    );
    for (from, to) in &c.uids {
        let a = MailStore::get(&s, U, "INBOX", *from).unwrap().unwrap();
        let b = MailStore::get(&s, U, "Work", *to).unwrap().unwrap();
        assert_eq!(a.blob, b.blob, "the bytes are never copied");
        assert_eq!(
            (a.size, &a.flags, a.internal_date),
            (b.size, &b.flags, b.internal_date)
        );
        assert!(b.modseq > dst_before.highest_modseq);
    }
    let st = s.status(U, "Work").unwrap();
    assert_eq!((st.exists, st.unseen, st.uidnext), (3, 2, 4));
    assert_eq!(s.keywords(U, "Work").unwrap(), vec!["$Work"]);
    assert_eq!(
        s.search(U, "Work", &Query::Header(Field::Subject, "m3".into()))
            .unwrap(),
        vec![3],
        "the header index is copied too"
    );
    // onto itself: new uids at the end
    let c = s.copy(U, "INBOX", &[1], "INBOX", false).unwrap();
    assert_eq!(c.uids, vec![(1, 4)]);
    assert_eq!(s.status(U, "INBOX").unwrap().exists, 4);
    // unknown destination or source: nothing happens
    assert!(matches!(
        s.copy(U, "INBOX", &[1], "Nope", false),
        Err(StoreError::NoSuchMailbox(_))
    ));
    assert!(matches!(
        s.copy(U, "Nope", &[1], "INBOX", true),
        Err(StoreError::NoSuchMailbox(_))
    ));
    assert_eq!(s.status(U, "INBOX").unwrap().exists, 4);
    let none = s.copy(U, "INBOX", &[42], "Work", false).unwrap();
    assert!(none.uids.is_empty());
    assert_eq!(
        s.status(U, "Work").unwrap(),
        st,
        "nothing copied, nothing changed"
    );
}

pub fn move_leaves_tombstones_and_wakes_both<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=3 {
        deliver(
            &s,
            &format!("k{i}"),
            U,
            "INBOX",
            &format!("Subject: m{i}\r\n\r\nbody"),
        );
    }
    s.store_flags(U, "INBOX", &[2], FlagOp::Add, &flags(&["\\Deleted"]), None)
        .unwrap();
    s.create_mailbox(U, "Trash").unwrap();
    let mut src_rx = s.subscribe(U, "INBOX");
    let mut dst_rx = s.subscribe(U, "Trash");
    src_rx.borrow_and_update();
    dst_rx.borrow_and_update();
    let mark = highest(&s, "INBOX");
    let blob2 = MailStore::get(&s, U, "INBOX", 2).unwrap().unwrap().blob;
    let c = s.copy(U, "INBOX", &[2, 3], "Trash", true).unwrap();
    assert_eq!(c.uids, vec![(2, 1), (3, 2)]);
    assert_eq!(s.uids(U, "INBOX").unwrap(), vec![1]);
    assert_eq!(s.uids(U, "Trash").unwrap(), vec![1, 2]);
    let moved = MailStore::get(&s, U, "Trash", 1).unwrap().unwrap();
    assert_eq!(moved.blob, blob2);
    assert_eq!(
        moved.flags,
        flags(&["\\Deleted"]),
        "flags move with the message"
    );
    let tombs: Vec<u32> = s
        .changes_since(U, "INBOX", mark)
        .unwrap()
        .iter()
        .map(|c| match c {
            Change::Expunged { uid, .. } => *uid,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tombs, vec![2, 3]);
    assert!(src_rx.has_changed().unwrap(), "the source is notified");
    assert!(dst_rx.has_changed().unwrap(), "the destination is notified");
    assert_eq!(*dst_rx.borrow_and_update(), highest(&s, "Trash"));
    assert_eq!(*src_rx.borrow_and_update(), highest(&s, "INBOX"));
    let src = s.status(U, "INBOX").unwrap();
    assert_eq!((src.exists, src.unseen, src.deleted), (1, 1, 0));
    let dst = s.status(U, "Trash").unwrap();
    assert_eq!((dst.exists, dst.unseen, dst.deleted), (2, 2, 1));
    assert!(
        s.search(U, "INBOX", &Query::Header(Field::Subject, "m3".into()))
            .unwrap()
            .is_empty(),
        "the source's index entries go with the messages"
    );
    // MOVE within the mailbox: new uids, old ones expunged
    let c = s.copy(U, "Trash", &[1], "Trash", true).unwrap();
    assert_eq!(c.uids, vec![(1, 3)]);
    assert_eq!(s.uids(U, "Trash").unwrap(), vec![2, 3]);
    assert_eq!(s.status(U, "Trash").unwrap().exists, 2);
}

/// Three messages for the search cases, appended with distinct flags,
/// sizes and internal dates.
fn search_fixture<S: Backend>(s: &S) -> [u64; 3] {
    let m1 = "From: =?UTF-8?Q?Andr=C3=A9?= Dupont <andre@lyon.test>\r\n\
              To: Pierre <pierre@paris.test>\r\n\
              Cc: jacques@paris.test\r\n\
              Subject: =?UTF-8?Q?caf=C3=A9?= demain\r\n\
              Date: Mon, 2 Jan 2023 23:30:00 -0500\r\n\
              X-Mailer: Facteur 1.0\r\n\
              MIME-Version: 1.0\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Transfer-Encoding: base64\r\n\
              \r\n\
              TGUgcmVuZGV6LXZvdXMgZXN0IMOgIEx5b24sIHByw6hzIGRlIGxhIGdhcmUuCg==\r\n";
    let m2 = "From: Jacques <jacques@paris.test>\r\n\
              To: andre@lyon.test\r\n\
              Bcc: secret@lyon.test\r\n\
              Subject: Budget 2024\r\n\
              Date: Fri, 15 Mar 2024 08:00:00 +0100\r\n\
              MIME-Version: 1.0\r\n\
              Content-Type: multipart/alternative; boundary=\"b\"\r\n\
              \r\n\
              --b\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Transfer-Encoding: quoted-printable\r\n\
              \r\n\
              R=C3=A9union budg=C3=A9taire jeudi\r\n\
              --b\r\n\
              Content-Type: text/html; charset=utf-8\r\n\
              \r\n\
              <p>Ordre du jour</p>\r\n\
              --b--\r\n";
    let m3 = "From: nobody@paris.test\r\n\r\nnothing special here, nothing at all\r\n";
    assert_eq!(append(s, "INBOX", m1, &["\\Seen"], 1_600_000_000), 1);
    assert_eq!(append(s, "INBOX", m2, &[], 1_700_000_000), 2);
    assert_eq!(
        append(s, "INBOX", m3, &["\\Flagged", "$Work"], 1_800_000_000),
        3
    );
    [m1.len() as u64, m2.len() as u64, m3.len() as u64]
}

fn found<S: Backend>(s: &S, q: Query) -> Vec<u32> {
    s.search(U, "INBOX", &q).unwrap()
}

fn hdr(f: Field, v: &str) -> Query {
    Query::Header(f, v.to_owned())
}

pub fn search_record_keys_and_combinators<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let sizes = search_fixture(&s);
    assert_eq!(found(&s, Query::All), vec![1, 2, 3]);
    assert_eq!(found(&s, Query::And(vec![])), vec![1, 2, 3]);
    assert_eq!(found(&s, Query::Uids(vec![(2, 2), (3, 9)])), vec![2, 3]);
    assert!(found(&s, Query::Uids(vec![(4, 9)])).is_empty());
    assert_eq!(found(&s, Query::Flag("\\seen".into())), vec![1]);
    assert_eq!(found(&s, Query::Flag("$work".into())), vec![3]);
    assert_eq!(
        found(&s, Query::Not(Box::new(Query::Flag("\\Seen".into())))),
        vec![2, 3]
    );
    assert_eq!(found(&s, Query::Larger(sizes[2])), vec![1, 2]);
    assert_eq!(found(&s, Query::Smaller(sizes[2])), Vec::<u32>::new());
    assert_eq!(found(&s, Query::Smaller(sizes[2] + 1)), vec![3]);
    assert_eq!(found(&s, Query::Before(1_700_000_000)), vec![1]);
    assert_eq!(found(&s, Query::Since(1_700_000_000)), vec![2, 3]);
    let m2 = MailStore::get(&s, U, "INBOX", 2).unwrap().unwrap();
    assert_eq!(found(&s, Query::ModSeq(m2.modseq)), vec![2, 3]);
    s.store_flags(U, "INBOX", &[1], FlagOp::Add, &flags(&["\\Answered"]), None)
        .unwrap();
    let m1 = MailStore::get(&s, U, "INBOX", 1).unwrap().unwrap();
    assert_eq!(found(&s, Query::ModSeq(m1.modseq)), vec![1]);
    assert_eq!(
        found(
            &s,
            Query::Or(
                Box::new(Query::Flag("\\Answered".into())),
                Box::new(Query::Larger(sizes[0].max(sizes[1])))
            )
        ),
        vec![1]
    );
    // And/Or/Not nested, mixing record, index and content keys
    assert_eq!(
        found(
            &s,
            Query::And(vec![
                Query::Not(Box::new(Query::Flag("\\Flagged".into()))),
                Query::Or(
                    Box::new(hdr(Field::Subject, "budget")),
                    Box::new(Query::Text("rendez-vous".into()))
                ),
            ])
        ),
        vec![1, 2]
    );
    assert_eq!(
        found(
            &s,
            Query::Not(Box::new(Query::Or(
                Box::new(Query::Uids(vec![(1, 1)])),
                Box::new(Query::And(vec![
                    Query::Larger(0),
                    Query::Body("nothing".into())
                ]))
            )))
        ),
        vec![2]
    );
    assert_eq!(
        found(
            &s,
            Query::Or(
                Box::new(Query::Body("réunion".into())),
                Box::new(Query::Flag("$Work".into()))
            )
        ),
        vec![2, 3]
    );
    assert!(matches!(
        s.search(U, "Nope", &Query::All),
        Err(StoreError::NoSuchMailbox(_))
    ));
    // an empty mailbox finds nothing
    s.create_mailbox(U, "Empty").unwrap();
    assert!(s.search(U, "Empty", &Query::All).unwrap().is_empty());
}

pub fn search_header_fields_and_sent_dates<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        search_fixture(&s);
    }
    // the index is durable: searched after a reopen
    let s = open(dir.path());
    assert_eq!(
        found(&s, hdr(Field::Subject, "CAFÉ")),
        vec![1],
        "encoded word, any case"
    );
    assert_eq!(found(&s, hdr(Field::Subject, "budget 20")), vec![2]);
    assert_eq!(
        found(&s, hdr(Field::Subject, "")),
        vec![1, 2],
        "the field exists"
    );
    assert_eq!(found(&s, hdr(Field::From, "andré dupont")), vec![1]);
    assert_eq!(found(&s, hdr(Field::From, "ANDRE@LYON.TEST")), vec![1]);
    assert_eq!(found(&s, hdr(Field::To, "andre@lyon")), vec![2]);
    assert_eq!(found(&s, hdr(Field::To, "pierre")), vec![1]);
    assert_eq!(found(&s, hdr(Field::Cc, "")), vec![1]);
    assert_eq!(found(&s, hdr(Field::Cc, "jacques")), vec![1]);
    assert_eq!(found(&s, hdr(Field::Bcc, "secret")), vec![2]);
    assert!(found(&s, hdr(Field::Subject, "absent")).is_empty());
    // indexed keys alone, negated, and mixed with message-record keys
    assert_eq!(
        found(&s, Query::Not(Box::new(hdr(Field::Subject, "café")))),
        vec![2, 3],
        "no Subject: does not contain it"
    );
    assert_eq!(
        found(
            &s,
            Query::And(vec![
                Query::Uids(vec![(2, 3)]),
                Query::Not(Box::new(hdr(Field::Subject, "")))
            ])
        ),
        vec![3]
    );
    assert_eq!(
        found(
            &s,
            Query::Or(
                Box::new(hdr(Field::Subject, "budget")),
                Box::new(Query::Flag("\\flagged".into()))
            )
        ),
        vec![2, 3]
    );
    assert_eq!(
        found(
            &s,
            Query::And(vec![
                hdr(Field::From, "andre"),
                Query::Not(Box::new(Query::Flag("\\Seen".into())))
            ])
        ),
        Vec::<u32>::new()
    );
    // Date: day as written (2023-01-02 -0500, 2024-03-15 +0100); no Date: never
    let jan2 = 1_672_617_600;
    let jan3 = 1_672_704_000;
    let mar15 = 1_710_460_800;
    assert_eq!(found(&s, Query::SentBefore(jan3)), vec![1]);
    assert!(found(&s, Query::SentBefore(jan2)).is_empty());
    assert_eq!(found(&s, Query::SentSince(jan2)), vec![1, 2]);
    assert_eq!(found(&s, Query::SentSince(jan3)), vec![2]);
    assert_eq!(
        found(
            &s,
            Query::And(vec![
                Query::SentSince(mar15),
                Query::SentBefore(mar15 + 86_400)
            ])
        ),
        vec![2],
        "SENTON"
    );
    assert_eq!(
        found(&s, Query::Not(Box::new(Query::SentSince(0)))),
        vec![3]
    );
}

pub fn search_bodies_and_other_headers<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    search_fixture(&s);
    assert_eq!(
        found(&s, Query::Body("PRÈS DE LA GARE".into())),
        vec![1],
        "base64 part"
    );
    assert_eq!(
        found(&s, Query::Body("réunion budgétaire".into())),
        vec![2],
        "quoted-printable"
    );
    assert_eq!(
        found(&s, Query::Body("ordre du jour".into())),
        vec![2],
        "html part"
    );
    assert_eq!(found(&s, Query::Body("nothing".into())), vec![3]);
    assert!(
        found(&s, Query::Body("demain".into())).is_empty(),
        "the subject is no body"
    );
    assert_eq!(
        found(&s, Query::Text("demain".into())),
        vec![1],
        "TEXT sees headers"
    );
    assert_eq!(found(&s, Query::Text("café".into())), vec![1]);
    assert_eq!(found(&s, Query::Text("JEUDI".into())), vec![2]);
    assert_eq!(found(&s, Query::Text("paris.test".into())), vec![1, 2, 3]);
    assert_eq!(
        found(&s, hdr(Field::Other("X-Mailer".into()), "facteur 1")),
        vec![1]
    );
    assert_eq!(found(&s, hdr(Field::Other("x-mailer".into()), "")), vec![1]);
    assert_eq!(
        found(
            &s,
            hdr(Field::Other("Content-Transfer-Encoding".into()), "quoted")
        ),
        Vec::<u32>::new(),
        "only the message header, not a part's"
    );
    assert_eq!(
        found(&s, hdr(Field::Other("Subject".into()), "café")),
        vec![1]
    );
    assert!(found(&s, hdr(Field::Other("X-Absent".into()), "")).is_empty());
    // a forwarded message (message/rfc822): its header and text are body
    s.create_mailbox(U, "Fwd").unwrap();
    let fwd = "Subject: Fwd\r\n\
               MIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=\"o\"\r\n\
               \r\n\
               --o\r\n\
               Content-Type: text/plain\r\n\
               \r\n\
               see below\r\n\
               --o\r\n\
               Content-Type: message/rfc822\r\n\
               \r\n\
               Subject: =?UTF-8?B?w4l0w6k=?=\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\
               \r\n\
               Vacances =C3=A0 Nice\r\n\
               --o--\r\n";
    append(&s, "Fwd", fwd, &[], 0);
    let in_fwd = |q: Query| s.search(U, "Fwd", &q).unwrap();
    assert_eq!(in_fwd(Query::Body("vacances à nice".into())), vec![1]);
    assert_eq!(in_fwd(Query::Body("été".into())), vec![1], "nested subject");
    assert!(
        in_fwd(hdr(Field::Subject, "été")).is_empty(),
        "not the outer subject"
    );
}

pub fn rename_moves_children<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for name in ["Work", "Work/A", "Work/A/B", "Workshop"] {
        s.create_mailbox(U, name).unwrap();
    }
    deliver(&s, "a1", U, "Work/A", "a");
    let uv = s.status(U, "Work/A").unwrap().uidvalidity;
    s.set_subscribed(U, "Work/A", true).unwrap();
    s.rename_mailbox(U, "Work", "Projects").unwrap();
    assert_eq!(
        s.list_mailboxes(U).unwrap(),
        vec![
            "INBOX",
            "Projects",
            "Projects/A",
            "Projects/A/B",
            "Workshop"
        ]
    );
    let st = s.status(U, "Projects/A").unwrap();
    assert_eq!(
        (st.exists, st.uidvalidity),
        (1, uv),
        "children keep their messages"
    );
    assert_eq!(
        s.subscriptions(U).unwrap(),
        vec!["INBOX", "Projects/A"],
        "subscriptions follow the names"
    );
    // a child's new name taken: nothing moves
    for name in ["X", "X/A", "Y/A"] {
        s.create_mailbox(U, name).unwrap();
    }
    assert!(matches!(
        s.rename_mailbox(U, "X", "Y"),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(s.status(U, "X/A").is_ok() && s.status(U, "Y").is_err());
    assert!(matches!(
        s.rename_mailbox(U, "Projects", "Projects/Sub"),
        Err(StoreError::NotAllowed(_))
    ));
    // renaming a child alone, then deleting a parent: children stay
    s.rename_mailbox(U, "Projects/A/B", "Projects/C").unwrap();
    s.delete_mailbox(U, "Projects").unwrap();
    assert_eq!(s.status(U, "Projects/A").unwrap().exists, 1);
    assert!(s.status(U, "Projects/C").is_ok());
    // INBOX: its messages move, its children stay
    s.create_mailbox(U, "INBOX/Sub").unwrap();
    deliver(&s, "i1", U, "INBOX", "i");
    s.rename_mailbox(U, "INBOX", "Old").unwrap();
    assert_eq!(s.status(U, "Old").unwrap().exists, 1);
    assert_eq!(s.status(U, "INBOX").unwrap().exists, 0);
    assert!(s.status(U, "INBOX/Sub").is_ok());
    assert!(s.status(U, "Old/Sub").is_err());
    assert!(s.subscriptions(U).unwrap().contains(&"INBOX".to_owned()));
}

pub fn keywords_are_every_keyword_ever_set<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(s.keywords(U, "INBOX").unwrap().is_empty());
    deliver(&s, "k1", U, "INBOX", "m");
    deliver(&s, "k2", U, "INBOX", "m");
    s.store_flags(
        U,
        "INBOX",
        &[1],
        FlagOp::Add,
        &flags(&["\\Seen", "Zeta", "$Work"]),
        None,
    )
    .unwrap();
    s.store_flags(
        U,
        "INBOX",
        &[2],
        FlagOp::Add,
        &flags(&["$work", "Alpha"]),
        None,
    )
    .unwrap();
    assert_eq!(
        s.keywords(U, "INBOX").unwrap(),
        vec!["$Work", "Alpha", "Zeta"]
    );
    s.store_flags(U, "INBOX", &[1, 2], FlagOp::Replace, &[], None)
        .unwrap();
    assert_eq!(
        s.keywords(U, "INBOX").unwrap(),
        vec!["$Work", "Alpha", "Zeta"],
        "a keyword once set stays defined"
    );
    s.create_mailbox(U, "Other").unwrap();
    assert!(s.keywords(U, "Other").unwrap().is_empty(), "per mailbox");
    assert!(matches!(
        s.keywords(U, "Nope"),
        Err(StoreError::NoSuchMailbox(_))
    ));
}

pub fn status_counts_size_and_deleted<S: Backend>(open: &dyn Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    deliver(&s, "k1", U, "INBOX", "a");
    deliver(&s, "k2", U, "INBOX", "bb");
    deliver(&s, "k3", U, "INBOX", "ccc");
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.size, st.deleted), (6, 0));
    s.store_flags(
        U,
        "INBOX",
        &[2, 3],
        FlagOp::Add,
        &flags(&["\\Deleted"]),
        None,
    )
    .unwrap();
    assert_eq!(s.status(U, "INBOX").unwrap().deleted, 2);
    s.store_flags(
        U,
        "INBOX",
        &[3],
        FlagOp::Remove,
        &flags(&["\\Deleted"]),
        None,
    )
    .unwrap();
    assert_eq!(s.status(U, "INBOX").unwrap().deleted, 1);
    assert_eq!(s.expunge(U, "INBOX", None).unwrap(), vec![2]);
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.size, st.deleted), (2, 4, 0));
    assert_eq!(s.uids(U, "INBOX").unwrap(), vec![1, 3]);
    drop(s);
    let s = open(dir.path());
    let st = s.status(U, "INBOX").unwrap();
    assert_eq!((st.exists, st.size, st.deleted), (2, 4, 0), "durable");
    assert!(matches!(
        s.uids(U, "Nope"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    s.create_mailbox(U, "Empty").unwrap();
    assert!(s.uids(U, "Empty").unwrap().is_empty());
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
                metas_reads_the_asked_uids_that_exist,
                mailbox_lifecycle,
                uidvalidity_from_clock,
                data_survives_reopen,
                concurrent_filing_is_serialized,
                maildrop_lock,
                change_feed_hints,
                accounts_lifecycle,
                prepare_user_creates_roles_once,
                subscriptions_are_independent_of_mailboxes,
                append_sets_flags_date_and_uid,
                copy_shares_blobs_and_allocates_ascending_uids,
                move_leaves_tombstones_and_wakes_both,
                search_record_keys_and_combinators,
                search_header_fields_and_sent_dates,
                search_bodies_and_other_headers,
                rename_moves_children,
                keywords_are_every_keyword_ever_set,
                status_counts_size_and_deleted,
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
