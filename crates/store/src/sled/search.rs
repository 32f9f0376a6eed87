//! SEARCH on the sled backend, in three layers per message, in uid order:
//! 1. [`cheap`]: what the message record (uid, flags, size, dates, modseq)
//!    and the header index record decide; content keys answer "maybe";
//! 2. only for a "maybe": [`Content`] reads the blob, the header block alone
//!    (bounded, [`HEAD_LIMIT`]) when only `Header(Other)` needs it, the whole
//!    message, decoded by mail-parser, for `Body`/`Text`;
//! 3. [`full`]: the query again, with the content at hand.
//!
//! A query of indexed keys only (FROM/TO/CC/BCC/SUBJECT, SENTBEFORE/SINCE,
//! uids) scans the header index records alone: every message has one, keyed
//! by uid. Records are read in place ([`MetaView`], [`IndexView`]): nothing
//! is allocated per message that the rest of the query rules out, and the
//! strings of indexed keys are found with a prepared `memmem` finder in the
//! record's bytes (lowercased UTF-8 in both, so a byte match is a text match).
//!
//! One message's content is in memory at a time. Strings match as
//! case-insensitive substrings of decoded text (both sides lowercased).

use ::sled::Tree;
use mail_parser::{Message, MessageParser, PartType};
use memchr::memmem::Finder;

use super::backend;
use super::index::{HEAD_LIMIT, field_texts, parser, read_head};
use super::records::*;
use crate::blobs::FileBlobs;
use crate::mail::{BlobId, Field, Query, StoreError, Uid};

/// The answer of the cheap layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    /// Needs the message content.
    Maybe,
}

impl Verdict {
    fn of(b: bool) -> Self {
        if b { Verdict::Yes } else { Verdict::No }
    }
}

/// A [`Query`] made ready to run: strings lowercased once, indexed fields as
/// record slots with their finder.
enum Key {
    All,
    And(Vec<Key>),
    Or(Box<Key>, Box<Key>),
    Not(Box<Key>),
    Uids(Vec<(Uid, Uid)>),
    Flag(String),
    Larger(u64),
    Smaller(u64),
    Before(i64),
    Since(i64),
    SentBefore(i64),
    SentSince(i64),
    ModSeq(u64),
    /// An indexed field ([`FROM`] ... [`SUBJECT`]) contains the string.
    Indexed(usize, Box<Finder<'static>>),
    /// `HEADER name string`, both lowercased.
    Other(String, String),
    Body(String),
    Text(String),
}

impl Key {
    fn new(q: &Query) -> Self {
        match q {
            Query::All => Key::All,
            Query::And(qs) => Key::And(qs.iter().map(Key::new).collect()),
            Query::Or(a, b) => Key::Or(Box::new(Key::new(a)), Box::new(Key::new(b))),
            Query::Not(a) => Key::Not(Box::new(Key::new(a))),
            Query::Uids(r) => Key::Uids(r.clone()),
            Query::Flag(f) => Key::Flag(f.clone()),
            Query::Larger(n) => Key::Larger(*n),
            Query::Smaller(n) => Key::Smaller(*n),
            Query::Before(t) => Key::Before(*t),
            Query::Since(t) => Key::Since(*t),
            Query::SentBefore(t) => Key::SentBefore(*t),
            Query::SentSince(t) => Key::SentSince(*t),
            Query::ModSeq(n) => Key::ModSeq(*n),
            Query::Header(f, s) => {
                let slot = match f {
                    Field::From => FROM,
                    Field::To => TO,
                    Field::Cc => CC,
                    Field::Bcc => BCC,
                    Field::Subject => SUBJECT,
                    Field::Other(name) => return Key::Other(name.to_lowercase(), s.to_lowercase()),
                };
                Key::Indexed(
                    slot,
                    Box::new(Finder::new(s.to_lowercase().as_bytes()).into_owned()),
                )
            }
            Query::Body(s) => Key::Body(s.to_lowercase()),
            Query::Text(s) => Key::Text(s.to_lowercase()),
        }
    }

    /// True when some key reads the header index record.
    fn uses_index(&self) -> bool {
        match self {
            Key::And(ks) => ks.iter().any(Key::uses_index),
            Key::Or(a, b) => a.uses_index() || b.uses_index(),
            Key::Not(a) => a.uses_index(),
            Key::Indexed(..) | Key::SentBefore(_) | Key::SentSince(_) => true,
            _ => false,
        }
    }

    /// True when some key reads the message record (or the content).
    fn uses_message(&self) -> bool {
        match self {
            Key::And(ks) => ks.iter().any(Key::uses_message),
            Key::Or(a, b) => a.uses_message() || b.uses_message(),
            Key::Not(a) => a.uses_message(),
            Key::All | Key::Uids(_) | Key::Indexed(..) | Key::SentBefore(_) | Key::SentSince(_) => {
                false
            }
            Key::Flag(_)
            | Key::Larger(_)
            | Key::Smaller(_)
            | Key::Before(_)
            | Key::Since(_)
            | Key::ModSeq(_)
            | Key::Other(..)
            | Key::Body(_)
            | Key::Text(_) => true,
        }
    }
}

/// What the records say of one message.
struct Rec<'a> {
    uid: Uid,
    /// The message record; `None` when the query does not read it.
    meta: Option<MetaView<'a>>,
    /// The index record (empty when none or not needed).
    ix: IndexView<'a>,
}

/// The uids of the mailbox `mailbox_id` matching `query`, ascending.
pub(super) fn search(
    tree: &Tree,
    blobs: &FileBlobs,
    mailbox_id: u64,
    query: &Query,
) -> Result<Vec<Uid>, StoreError> {
    let key = Key::new(query);
    if key.uses_index() && !key.uses_message() {
        return search_index(tree, mailbox_id, &key);
    }
    let parser = parser();
    let mut index = IndexCursor::new(tree, mailbox_id, key.uses_index());
    let mut out = Vec::new();
    for item in tree.scan_prefix(mailbox_prefix(MESSAGE, mailbox_id)) {
        let (_, v) = item.map_err(backend)?;
        let meta = MetaView::parse(&v)?;
        let ixv = index.at(meta.uid)?;
        let rec = Rec {
            uid: meta.uid,
            meta: Some(meta),
            ix: match &ixv {
                Some(v) => IndexView::parse(v)?,
                None => IndexView::default(),
            },
        };
        let hit = match cheap(&key, &rec) {
            Verdict::Yes => true,
            Verdict::No => false,
            Verdict::Maybe => {
                let mut content = Content::new(blobs, &meta, &parser);
                full(&key, &rec, &mut content)?
            }
        };
        if hit {
            out.push(meta.uid);
        }
    }
    Ok(out)
}

/// A query of indexed keys: the index records alone, one range scan.
fn search_index(tree: &Tree, mailbox_id: u64, key: &Key) -> Result<Vec<Uid>, StoreError> {
    let mut out = Vec::new();
    for item in tree.scan_prefix(mailbox_prefix(HEADER_INDEX, mailbox_id)) {
        let (k, v) = item.map_err(backend)?;
        let rec = Rec {
            uid: uid_of_key(&k)?,
            meta: None,
            ix: IndexView::parse(&v)?,
        };
        if cheap(key, &rec) == Verdict::Yes {
            out.push(rec.uid);
        }
    }
    Ok(out)
}

/// The header index records of a mailbox, read alongside the messages (both
/// are keyed by uid, so it is one forward range scan, not a lookup each).
struct IndexCursor {
    iter: Option<std::iter::Peekable<::sled::Iter>>,
}

impl IndexCursor {
    fn new(tree: &Tree, mailbox_id: u64, needed: bool) -> Self {
        let iter = needed.then(|| {
            tree.scan_prefix(mailbox_prefix(HEADER_INDEX, mailbox_id))
                .peekable()
        });
        Self { iter }
    }

    /// The index record of `uid` (`None` when none or not needed); uids must
    /// be asked in ascending order.
    fn at(&mut self, uid: Uid) -> Result<Option<::sled::IVec>, StoreError> {
        let Some(iter) = self.iter.as_mut() else {
            return Ok(None);
        };
        while let Some(item) = iter.peek() {
            let (k, _) = item.as_ref().map_err(|e| backend(e.clone()))?;
            let at = uid_of_key(k)?;
            if at > uid {
                break;
            }
            let Some(Ok((_, v))) = iter.next() else {
                break;
            };
            if at == uid {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// Layer 1: the message and index records; content keys are `Maybe`.
fn cheap(q: &Key, r: &Rec<'_>) -> Verdict {
    match q {
        Key::And(qs) => {
            let mut out = Verdict::Yes;
            for q in qs {
                match cheap(q, r) {
                    Verdict::No => return Verdict::No,
                    Verdict::Maybe => out = Verdict::Maybe,
                    Verdict::Yes => {}
                }
            }
            out
        }
        Key::Or(a, b) => match (cheap(a, r), cheap(b, r)) {
            (Verdict::Yes, _) | (_, Verdict::Yes) => Verdict::Yes,
            (Verdict::No, Verdict::No) => Verdict::No,
            _ => Verdict::Maybe,
        },
        Key::Not(a) => match cheap(a, r) {
            Verdict::Yes => Verdict::No,
            Verdict::No => Verdict::Yes,
            Verdict::Maybe => Verdict::Maybe,
        },
        Key::Other(..) | Key::Body(_) | Key::Text(_) => Verdict::Maybe,
        leaf => Verdict::of(record_leaf(leaf, r)),
    }
}

/// A key the records answer alone (not a combinator, not a content key).
fn record_leaf(q: &Key, r: &Rec<'_>) -> bool {
    let m = r.meta.as_ref();
    match q {
        Key::All => true,
        Key::Uids(ranges) => ranges.iter().any(|&(a, b)| a <= r.uid && r.uid <= b),
        Key::Flag(f) => m.is_some_and(|m| m.has_flag(f)),
        Key::Larger(n) => m.is_some_and(|m| m.size > *n),
        Key::Smaller(n) => m.is_some_and(|m| m.size < *n),
        Key::Before(t) => m.is_some_and(|m| m.internal_date < *t),
        Key::Since(t) => m.is_some_and(|m| m.internal_date >= *t),
        Key::SentBefore(t) => r.ix.sent_day.is_some_and(|d| d < *t),
        Key::SentSince(t) => r.ix.sent_day.is_some_and(|d| d >= *t),
        Key::ModSeq(n) => m.is_some_and(|m| m.modseq >= *n),
        Key::Indexed(slot, finder) => r.ix.field(*slot).is_some_and(|v| finder.find(v).is_some()),
        Key::And(_) | Key::Or(..) | Key::Not(_) | Key::Other(..) | Key::Body(_) | Key::Text(_) => {
            false
        }
    }
}

/// Layer 3: the query with the content at hand (read on first need).
fn full(q: &Key, r: &Rec<'_>, c: &mut Content<'_>) -> Result<bool, StoreError> {
    Ok(match q {
        Key::And(qs) => {
            for q in qs {
                if !full(q, r, c)? {
                    return Ok(false);
                }
            }
            true
        }
        Key::Or(a, b) => full(a, r, c)? || full(b, r, c)?,
        Key::Not(a) => !full(a, r, c)?,
        Key::Other(name, s) => c
            .fields()?
            .iter()
            .any(|(n, text)| n == name && text.contains(s.as_str())),
        Key::Body(s) => c.whole()?.body.contains(s.as_str()),
        Key::Text(s) => {
            let w = c.whole()?;
            w.header.contains(s.as_str()) || w.body.contains(s.as_str())
        }
        leaf => record_leaf(leaf, r),
    })
}

/// The decoded text of a whole message, lowercased.
struct Whole {
    /// Every header field as `name: text` lines.
    header: String,
    /// Every text part (nested messages' headers and texts included).
    body: String,
    fields: Vec<(String, String)>,
}

/// A message's content, read from its blob on first need.
struct Content<'a> {
    blobs: &'a FileBlobs,
    uid: Uid,
    size: u64,
    blob: BlobId,
    parser: &'a MessageParser,
    fields: Option<Vec<(String, String)>>,
    whole: Option<Whole>,
}

impl<'a> Content<'a> {
    fn new(blobs: &'a FileBlobs, meta: &MetaView<'_>, parser: &'a MessageParser) -> Self {
        Self {
            blobs,
            uid: meta.uid,
            size: meta.size,
            blob: meta.blob(),
            parser,
            fields: None,
            whole: None,
        }
    }

    /// The header fields: from the whole message if read, else from the
    /// header block alone.
    fn fields(&mut self) -> Result<&[(String, String)], StoreError> {
        if let Some(w) = &self.whole {
            return Ok(&w.fields);
        }
        if self.fields.is_none() {
            let head = if self.size <= HEAD_LIMIT {
                self.blobs.get(&self.blob, None)
            } else {
                read_head(self.blobs, &self.blob)
            };
            let head = self.tolerate_missing(head)?;
            let fields = self
                .parser
                .parse_headers(&head)
                .map(|msg| field_texts(&msg, &head))
                .unwrap_or_default();
            self.fields = Some(fields);
        }
        Ok(self.fields.as_deref().unwrap_or_default())
    }

    /// A message whose blob is gone has no content (and matches no content
    /// key) rather than failing the whole search.
    fn tolerate_missing(&self, read: Result<Vec<u8>, StoreError>) -> Result<Vec<u8>, StoreError> {
        match read {
            Err(StoreError::NoSuchBlob) => {
                tracing::warn!(uid = self.uid, blob = %self.blob.0, "search: message blob missing");
                Ok(Vec::new())
            }
            other => other,
        }
    }

    fn whole(&mut self) -> Result<&Whole, StoreError> {
        if self.whole.is_none() {
            let bytes = self.tolerate_missing(self.blobs.get(&self.blob, None))?;
            let whole = match self.parser.parse(&bytes) {
                Some(msg) => whole_text(&msg, &bytes),
                // Not a message mail-parser reads: the bytes as text.
                None => Whole {
                    header: String::new(),
                    body: String::from_utf8_lossy(&bytes).to_lowercase(),
                    fields: Vec::new(),
                },
            };
            self.whole = Some(whole);
        }
        self.whole.as_ref().ok_or_else(|| corrupt("search content"))
    }
}

fn whole_text(msg: &Message<'_>, raw: &[u8]) -> Whole {
    let fields = field_texts(msg, raw);
    let header = fields_block(&fields);
    let mut body = String::new();
    body_text(msg, &mut body);
    Whole {
        header,
        body: body.to_lowercase(),
        fields,
    }
}

fn fields_block(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, text) in fields {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// Appends the decoded text parts of a message (and of the messages nested
/// in it, header included) to `out`.
fn body_text(msg: &Message<'_>, out: &mut String) {
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(nested) => {
                out.push_str(&fields_block(&field_texts(nested, nested.raw_message())));
                body_text(nested, out);
            }
            PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Multipart(_) => {}
        }
    }
}
