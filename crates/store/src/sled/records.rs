//! Binary records and keys of the sled backend: hand-written fixed layouts,
//! each record starting with a version byte; integers big-endian so that key
//! ranges scan in numeric order.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::mail::{
    BlobId, DELETED, MailboxStatus, MessageMeta, Role, SEEN, StoreError, Uid, has_flag,
};

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

// ---------------------------------------------------------------------------
// Binary records: hand-written fixed layouts, each starting with a version byte.

pub(super) const RECORD_V1: u8 = 1;
/// Mailbox records since [imap] (role, size, deleted). Version 1 mailbox
/// records are not read: no store of that layout was ever deployed.
pub(super) const MAILBOX_V2: u8 = 2;
pub(super) const CHANGE_LIVE: u8 = 0;
pub(super) const CHANGE_EXPUNGED: u8 = 1;
pub(super) const MAX_FLAG_LEN: usize = 1000;

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

/// Mailbox record, 46 bytes: version u8 (2) | id u64 | uidvalidity u32 |
/// uidnext u32 | highest_modseq u64 | exists u32 | unseen u32 | size u64 |
/// deleted u32 | role u8 (0 = none, see [`role_code`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct MailboxRec {
    pub(super) id: u64,
    pub(super) uidvalidity: u32,
    pub(super) uidnext: Uid,
    pub(super) highest_modseq: u64,
    pub(super) exists: u32,
    pub(super) unseen: u32,
    /// Sum of the messages' sizes.
    pub(super) size: u64,
    /// Messages flagged `\Deleted`.
    pub(super) deleted: u32,
    pub(super) role: Option<Role>,
}

impl MailboxRec {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(46);
        v.push(MAILBOX_V2);
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.uidvalidity.to_be_bytes());
        v.extend_from_slice(&self.uidnext.to_be_bytes());
        v.extend_from_slice(&self.highest_modseq.to_be_bytes());
        v.extend_from_slice(&self.exists.to_be_bytes());
        v.extend_from_slice(&self.unseen.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.deleted.to_be_bytes());
        v.push(role_code(self.role));
        v
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(bytes);
        let parse = |r: &mut Reader<'_>| -> Option<Self> {
            if r.u8()? != MAILBOX_V2 {
                return None;
            }
            let rec = MailboxRec {
                id: r.u64()?,
                uidvalidity: r.u32()?,
                uidnext: r.u32()?,
                highest_modseq: r.u64()?,
                exists: r.u32()?,
                unseen: r.u32()?,
                size: r.u64()?,
                deleted: r.u32()?,
                role: role_of_code(r.u8()?)?,
            };
            r.is_empty().then_some(rec)
        };
        if bytes.first() == Some(&RECORD_V1) {
            return Err(corrupt(
                "mailbox record of the layout before [imap] (v1); start with an empty store",
            ));
        }
        parse(&mut r).ok_or_else(|| corrupt("mailbox record"))
    }

    pub(super) fn status(&self) -> MailboxStatus {
        MailboxStatus {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            exists: self.exists,
            unseen: self.unseen,
            highest_modseq: self.highest_modseq,
            size: self.size,
            deleted: self.deleted,
        }
    }

    /// Counts a message in (exists, unseen, size, deleted).
    pub(super) fn count_in(&mut self, m: &MessageMeta) {
        self.exists = self.exists.saturating_add(1);
        if !has_flag(&m.flags, SEEN) {
            self.unseen = self.unseen.saturating_add(1);
        }
        if has_flag(&m.flags, DELETED) {
            self.deleted = self.deleted.saturating_add(1);
        }
        self.size = self.size.saturating_add(m.size);
    }

    /// Counts a message out: the reverse of [`MailboxRec::count_in`]. A flag
    /// change is a `count_out` of the old metadata and a `count_in` of the new.
    pub(super) fn count_out(&mut self, m: &MessageMeta) {
        self.exists = self.exists.saturating_sub(1);
        if !has_flag(&m.flags, SEEN) {
            self.unseen = self.unseen.saturating_sub(1);
        }
        if has_flag(&m.flags, DELETED) {
            self.deleted = self.deleted.saturating_sub(1);
        }
        self.size = self.size.saturating_sub(m.size);
    }

    /// Allocates the next modseq.
    pub(super) fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }
}

/// Message record: version u8 | uid u32 | size u64 | modseq u64 |
/// internal_date i64 | blob sha256 [32] | flag count u16 |
/// per flag: length u16 | UTF-8 bytes.
pub(super) fn encode_meta(m: &MessageMeta) -> Result<Vec<u8>, StoreError> {
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

pub(super) fn decode_meta(bytes: &[u8]) -> Result<MessageMeta, StoreError> {
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

pub(super) fn change_value(uid: Uid, kind: u8) -> [u8; 5] {
    let mut v = [0u8; 5];
    v[..4].copy_from_slice(&uid.to_be_bytes());
    v[4] = kind;
    v
}

pub(super) fn decode_change_value(bytes: &[u8]) -> Result<(Uid, u8), StoreError> {
    let mut r = Reader(bytes);
    let parsed = (|| {
        let uid = r.u32()?;
        let kind = r.u8()?;
        r.is_empty().then_some((uid, kind))
    })();
    parsed.ok_or_else(|| corrupt("change record"))
}

pub(super) fn delivered_value(uid: Uid, uidvalidity: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&uid.to_be_bytes());
    v[4..].copy_from_slice(&uidvalidity.to_be_bytes());
    v
}

pub(super) fn decode_delivered(bytes: &[u8]) -> Result<(Uid, u32), StoreError> {
    let mut r = Reader(bytes);
    let parsed = (|| {
        let uid = r.u32()?;
        let uv = r.u32()?;
        r.is_empty().then_some((uid, uv))
    })();
    parsed.ok_or_else(|| corrupt("delivery record"))
}

/// The byte of a role in the mailbox record (0 = none).
pub(super) fn role_code(role: Option<Role>) -> u8 {
    match role {
        None => 0,
        Some(Role::Sent) => 1,
        Some(Role::Drafts) => 2,
        Some(Role::Trash) => 3,
        Some(Role::Junk) => 4,
        Some(Role::Archive) => 5,
    }
}

/// The role of a byte; `None` (outer) for an unknown byte.
pub(super) fn role_of_code(code: u8) -> Option<Option<Role>> {
    Some(match code {
        0 => None,
        1 => Some(Role::Sent),
        2 => Some(Role::Drafts),
        3 => Some(Role::Trash),
        4 => Some(Role::Junk),
        5 => Some(Role::Archive),
        _ => return None,
    })
}

/// Keyword record (every keyword ever set in a mailbox): version u8 |
/// count u16 | per keyword: length u16 | UTF-8 bytes. Sorted.
pub(super) fn encode_keywords(words: &[String]) -> Result<Vec<u8>, StoreError> {
    let mut v = vec![RECORD_V1];
    let count = u16::try_from(words.len())
        .map_err(|_| StoreError::NotAllowed("too many keywords in one mailbox".into()))?;
    v.extend_from_slice(&count.to_be_bytes());
    for w in words {
        let len = u16::try_from(w.len())
            .map_err(|_| StoreError::NotAllowed("keyword too long".into()))?;
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(w.as_bytes());
    }
    Ok(v)
}

pub(super) fn decode_keywords(bytes: &[u8]) -> Result<Vec<String>, StoreError> {
    let parse = |r: &mut Reader<'_>| -> Option<Vec<String>> {
        if r.u8()? != RECORD_V1 {
            return None;
        }
        let count = r.u16()?;
        let mut out = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = r.u16()?;
            out.push(
                std::str::from_utf8(r.take(usize::from(len))?)
                    .ok()?
                    .to_owned(),
            );
        }
        r.is_empty().then_some(out)
    };
    parse(&mut Reader(bytes)).ok_or_else(|| corrupt("keyword record"))
}

/// What SEARCH needs of a message's header without reading its blob, written
/// at filing: the decoded, lowercased FROM/TO/CC/BCC/SUBJECT (`None`: no such
/// field) and the `Date:` day as unix seconds of its UTC start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct HeaderIndex {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) cc: Option<String>,
    pub(super) bcc: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) sent_day: Option<i64>,
}

/// Header index record: version u8 | has date u8 | day i64 | per field
/// (from, to, cc, bcc, subject): present u8 | length u32 | UTF-8 bytes.
pub(super) fn encode_index(ix: &HeaderIndex) -> Vec<u8> {
    let mut v = vec![RECORD_V1, u8::from(ix.sent_day.is_some())];
    v.extend_from_slice(&ix.sent_day.unwrap_or(0).to_be_bytes());
    for f in [&ix.from, &ix.to, &ix.cc, &ix.bcc, &ix.subject] {
        match f {
            None => v.push(0),
            Some(s) => {
                // Bounded when built (see `index`), so the length fits.
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                v.push(1);
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&s.as_bytes()[..len as usize]);
            }
        }
    }
    v
}

pub(super) fn decode_index(bytes: &[u8]) -> Result<HeaderIndex, StoreError> {
    let parse = |r: &mut Reader<'_>| -> Option<HeaderIndex> {
        if r.u8()? != RECORD_V1 {
            return None;
        }
        let has_date = r.u8()? == 1;
        let day = r.i64()?;
        let mut field = || -> Option<Option<String>> {
            if r.u8()? == 0 {
                return Some(None);
            }
            let len = usize::try_from(r.u32()?).ok()?;
            Some(Some(std::str::from_utf8(r.take(len)?).ok()?.to_owned()))
        };
        let ix = HeaderIndex {
            from: field()?,
            to: field()?,
            cc: field()?,
            bcc: field()?,
            subject: field()?,
            sent_day: has_date.then_some(day),
        };
        r.is_empty().then_some(ix)
    };
    parse(&mut Reader(bytes)).ok_or_else(|| corrupt("header index record"))
}

// ---------------------------------------------------------------------------
// Keys.

/// Key prefixes: every record lives in one sled tree, so that one request is
/// one atomic `Batch` (no multi-tree transactions, see `super`).
pub(super) const MAILBOX: u8 = b'M';
pub(super) const UIDVALIDITY: u8 = b'V';
pub(super) const MESSAGE: u8 = b'm';
pub(super) const CHANGE: u8 = b'c';
pub(super) const DELIVERED: u8 = b'd';
pub(super) const ACCOUNT: u8 = b'a';
pub(super) const SUBSCRIPTION: u8 = b'S';
pub(super) const HEADER_INDEX: u8 = b'h';
pub(super) const KEYWORDS: u8 = b'k';

/// `prefix user \0 rest`: users never contain NUL, so prefixes are unambiguous.
pub(super) fn user_key(prefix: u8, user: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + user.len() + rest.len());
    k.push(prefix);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(rest.as_bytes());
    k
}

/// `prefix user`.
pub(super) fn plain_user_key(prefix: u8, user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + user.len());
    k.push(prefix);
    k.extend_from_slice(user.as_bytes());
    k
}

/// `prefix mailbox id`: the start of a mailbox's messages or changes.
pub(super) fn mailbox_prefix(prefix: u8, mailbox_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&mailbox_id.to_be_bytes());
    k
}

pub(super) fn message_key(mailbox_id: u64, uid: Uid) -> [u8; 13] {
    uid_key(MESSAGE, mailbox_id, uid)
}

pub(super) fn index_key(mailbox_id: u64, uid: Uid) -> [u8; 13] {
    uid_key(HEADER_INDEX, mailbox_id, uid)
}

/// `prefix mailbox id ++ uid`.
fn uid_key(prefix: u8, mailbox_id: u64, uid: Uid) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..9].copy_from_slice(&mailbox_prefix(prefix, mailbox_id));
    k[9..].copy_from_slice(&uid.to_be_bytes());
    k
}

/// The uid at the end of a `message_key`/`index_key`.
pub(super) fn uid_of_key(key: &[u8]) -> Result<Uid, StoreError> {
    let arr: [u8; 4] = key
        .get(9..13)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("message key"))?;
    Ok(Uid::from_be_bytes(arr))
}

pub(super) fn change_key(mailbox_id: u64, modseq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&mailbox_prefix(CHANGE, mailbox_id));
    k[9..].copy_from_slice(&modseq.to_be_bytes());
    k
}

/// The 32 raw bytes of a blob id; malformed ids are unknown blobs.
pub(super) fn blob_key(id: &BlobId) -> Result<[u8; 32], StoreError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(&id.0, &mut k).map_err(|_| StoreError::NoSuchBlob)?;
    Ok(k)
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
