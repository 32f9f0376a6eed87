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
    MetaView::parse(bytes)?.to_meta()
}

/// A message record read in place, without allocating: what SEARCH needs of
/// most messages (the blob id and the flags as strings only when asked).
#[derive(Debug, Clone, Copy)]
pub(super) struct MetaView<'a> {
    pub(super) uid: Uid,
    pub(super) size: u64,
    pub(super) modseq: u64,
    pub(super) internal_date: i64,
    blob: &'a [u8],
    /// The flag entries (length u16 | bytes, each), checked by `parse`.
    flags: &'a [u8],
}

impl<'a> MetaView<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let parse = |r: &mut Reader<'a>| -> Option<Self> {
            if r.u8()? != RECORD_V1 {
                return None;
            }
            let uid = r.u32()?;
            let size = r.u64()?;
            let modseq = r.u64()?;
            let internal_date = r.i64()?;
            let blob = r.take(32)?;
            let count = r.u16()?;
            let flags = r.0;
            for _ in 0..count {
                let len = r.u16()?;
                r.take(usize::from(len))?;
            }
            r.is_empty().then_some(MetaView {
                uid,
                size,
                modseq,
                internal_date,
                blob,
                flags,
            })
        };
        parse(&mut Reader(bytes)).ok_or_else(|| corrupt("message record"))
    }

    /// The flags, as stored (lengths checked by `parse`).
    fn flag_bytes(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut r = Reader(self.flags);
        std::iter::from_fn(move || {
            let len = r.u16()?;
            r.take(usize::from(len))
        })
    }

    /// Same as [`has_flag`] on the decoded flags.
    pub(super) fn has_flag(&self, flag: &str) -> bool {
        self.flag_bytes()
            .any(|f| f.eq_ignore_ascii_case(flag.as_bytes()))
    }

    pub(super) fn blob(&self) -> BlobId {
        BlobId(hex::encode(self.blob))
    }

    /// The blob's 32 raw bytes (the `r` record's key is made of them).
    pub(super) fn blob_raw(&self) -> &'a [u8] {
        self.blob
    }

    pub(super) fn to_meta(self) -> Result<MessageMeta, StoreError> {
        let flags = self
            .flag_bytes()
            .map(|f| std::str::from_utf8(f).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt("message record"))?;
        Ok(MessageMeta {
            uid: self.uid,
            blob: self.blob(),
            size: self.size,
            flags,
            modseq: self.modseq,
            internal_date: self.internal_date,
        })
    }
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

/// Header index records since SEARCH was made to scan them alone: the
/// lengths come first, so any field is found without reading the others.
/// Version 1 records are not read (no store of that layout was deployed).
pub(super) const INDEX_V2: u8 = 2;
/// The indexed fields, in record order ([`IndexView::field`] takes these).
pub(super) const FROM: usize = 0;
pub(super) const TO: usize = 1;
pub(super) const CC: usize = 2;
pub(super) const BCC: usize = 3;
pub(super) const SUBJECT: usize = 4;
const FIELDS: usize = 5;
/// The length of a field the message does not have.
const ABSENT: u32 = u32::MAX;
/// Bytes before the field texts: version, has date, day, five lengths.
const INDEX_HEAD: usize = 1 + 1 + 8 + 4 * FIELDS;

/// Header index record (v2): version u8 (2) | has date u8 | day i64 |
/// per field (from, to, cc, bcc, subject) length u32 (`u32::MAX`: absent) |
/// the present fields' UTF-8 bytes, one after the other, in that order.
pub(super) fn encode_index(ix: &HeaderIndex) -> Vec<u8> {
    let fields = [&ix.from, &ix.to, &ix.cc, &ix.bcc, &ix.subject];
    // Bounded when built (see `index`), so the lengths fit.
    fn bytes(f: &Option<String>) -> Option<&[u8]> {
        f.as_deref().map(|s| {
            let b = s.as_bytes();
            &b[..b.len().min(ABSENT as usize - 1)]
        })
    }
    let total: usize = fields
        .iter()
        .filter_map(|f| bytes(f))
        .map(<[u8]>::len)
        .sum();
    let mut v = Vec::with_capacity(INDEX_HEAD + total);
    v.push(INDEX_V2);
    v.push(u8::from(ix.sent_day.is_some()));
    v.extend_from_slice(&ix.sent_day.unwrap_or(0).to_be_bytes());
    for f in fields {
        let len = bytes(f).map_or(ABSENT, |b| b.len() as u32);
        v.extend_from_slice(&len.to_be_bytes());
    }
    for b in fields.into_iter().filter_map(bytes) {
        v.extend_from_slice(b);
    }
    v
}

/// A header index record read in place, without allocating or decoding
/// UTF-8: the field texts as the bytes written.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct IndexView<'a> {
    fields: [Option<&'a [u8]>; FIELDS],
    pub(super) sent_day: Option<i64>,
}

impl<'a> IndexView<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let parse = |r: &mut Reader<'a>| -> Option<Self> {
            if r.u8()? != INDEX_V2 {
                return None;
            }
            let has_date = r.u8()? == 1;
            let day = r.i64()?;
            let mut lens = [ABSENT; FIELDS];
            for len in &mut lens {
                *len = r.u32()?;
            }
            let mut fields = [None; FIELDS];
            for (field, len) in fields.iter_mut().zip(lens) {
                if len != ABSENT {
                    *field = Some(r.take(usize::try_from(len).ok()?)?);
                }
            }
            r.is_empty().then_some(IndexView {
                fields,
                sent_day: has_date.then_some(day),
            })
        };
        parse(&mut Reader(bytes)).ok_or_else(|| corrupt("header index record"))
    }

    /// The text of field `k` ([`FROM`] ... [`SUBJECT`]); `None`: absent.
    pub(super) fn field(&self, k: usize) -> Option<&'a [u8]> {
        self.fields.get(k).copied().flatten()
    }
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
pub(super) const MAILDIR_DELIVERY: u8 = b'x';
pub(super) const MAILDIR_IMPORT: u8 = b'i';
pub(super) const BLOB_REFS: u8 = b'r';
/// The one key saying the `r` records were counted (a store older than them
/// gets them counted once, at open).
pub(super) const REFS_COUNTED: &[u8] = b"R";

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

/// `r` ++ the blob's 32 raw bytes: how many messages point at the blob.
pub(super) fn refs_key(raw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + raw.len());
    k.push(BLOB_REFS);
    k.extend_from_slice(raw);
    k
}

pub(super) fn decode_count(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt("blob reference count"))?;
    Ok(u64::from_be_bytes(arr))
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_records_are_read_in_place() {
        let ix = HeaderIndex {
            from: Some("andré <a@b.test>".into()),
            to: None,
            cc: Some(String::new()),
            bcc: None,
            subject: Some("café au lait".into()),
            sent_day: Some(86_400),
        };
        let bytes = encode_index(&ix);
        let view = IndexView::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view.field(FROM), Some("andré <a@b.test>".as_bytes()));
        assert_eq!(view.field(TO), None);
        assert_eq!(view.field(CC), Some(&b""[..]));
        assert_eq!(view.field(BCC), None);
        assert_eq!(view.field(SUBJECT), Some("café au lait".as_bytes()));
        assert_eq!(view.sent_day, Some(86_400));
        let none = encode_index(&HeaderIndex::default());
        let view = IndexView::parse(&none).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((view.field(SUBJECT), view.sent_day), (None, None));
        // Cut short, or one byte too many: refused, not misread.
        assert!(IndexView::parse(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert!(IndexView::parse(&longer).is_err());
    }

    #[test]
    fn message_records_are_read_in_place() {
        let meta = MessageMeta {
            uid: 7,
            blob: BlobId("ab".repeat(32)),
            size: 1234,
            flags: vec!["\\Seen".into(), "$Label1".into()],
            modseq: 9,
            internal_date: 1_700_000_000,
        };
        let bytes = encode_meta(&meta).unwrap_or_else(|e| panic!("{e}"));
        let view = MetaView::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(view.has_flag("\\seen") && view.has_flag("$label1"));
        assert!(!view.has_flag("\\Deleted"));
        assert_eq!(view.to_meta().unwrap_or_else(|e| panic!("{e}")), meta);
        assert!(MetaView::parse(&bytes[..bytes.len() - 1]).is_err());
    }
}
