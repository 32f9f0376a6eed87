//! SEARCH on the sled backend, in three layers per message, in uid order:
//! 1. [`cheap`]: what the message record (uid, flags, size, dates, modseq)
//!    and the header index record decide; content keys answer "maybe";
//! 2. only for a "maybe": [`Content`] reads the blob, the header block alone
//!    (bounded, [`HEAD_LIMIT`]) when only `Header(Other)` needs it, the whole
//!    message, decoded by mail-parser, for `Body`/`Text`;
//! 3. [`full`]: the query again, with the content at hand.
//!
//! One message's content is in memory at a time. Strings match as
//! case-insensitive substrings of decoded text (both sides lowercased).

use ::sled::Tree;
use mail_parser::{Message, MessageParser, PartType};

use super::backend;
use super::index::{HEAD_LIMIT, field_texts, parser, read_head};
use super::records::*;
use crate::blobs::FileBlobs;
use crate::mail::{Field, MessageMeta, Query, StoreError, Uid, has_flag};

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

/// The uids of the mailbox `mailbox_id` matching `query`, ascending.
pub(super) fn search(
    tree: &Tree,
    blobs: &FileBlobs,
    mailbox_id: u64,
    query: &Query,
) -> Result<Vec<Uid>, StoreError> {
    let query = lowered(query);
    let parser = parser();
    let mut index = IndexCursor::new(tree, mailbox_id, uses_index(&query));
    let mut out = Vec::new();
    for item in tree.scan_prefix(mailbox_prefix(MESSAGE, mailbox_id)) {
        let (_, v) = item.map_err(backend)?;
        let meta = decode_meta(&v)?;
        let ix = index.at(meta.uid)?;
        let hit = match cheap(&query, &meta, &ix) {
            Verdict::Yes => true,
            Verdict::No => false,
            Verdict::Maybe => {
                let mut content = Content::new(blobs, &meta, &parser);
                full(&query, &meta, &ix, &mut content)?
            }
        };
        if hit {
            out.push(meta.uid);
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

    /// The index record of `uid` (empty when none or not needed); uids must
    /// be asked in ascending order.
    fn at(&mut self, uid: Uid) -> Result<HeaderIndex, StoreError> {
        let Some(iter) = self.iter.as_mut() else {
            return Ok(HeaderIndex::default());
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
                return decode_index(&v);
            }
        }
        Ok(HeaderIndex::default())
    }
}

/// The query with every string lowercased once.
fn lowered(q: &Query) -> Query {
    match q {
        Query::And(qs) => Query::And(qs.iter().map(lowered).collect()),
        Query::Or(a, b) => Query::Or(Box::new(lowered(a)), Box::new(lowered(b))),
        Query::Not(a) => Query::Not(Box::new(lowered(a))),
        Query::Header(f, s) => {
            let f = match f {
                Field::Other(name) => Field::Other(name.to_lowercase()),
                other => other.clone(),
            };
            Query::Header(f, s.to_lowercase())
        }
        Query::Body(s) => Query::Body(s.to_lowercase()),
        Query::Text(s) => Query::Text(s.to_lowercase()),
        other => other.clone(),
    }
}

/// True when some key reads the header index.
fn uses_index(q: &Query) -> bool {
    match q {
        Query::And(qs) => qs.iter().any(uses_index),
        Query::Or(a, b) => uses_index(a) || uses_index(b),
        Query::Not(a) => uses_index(a),
        Query::Header(f, _) => !matches!(f, Field::Other(_)),
        Query::SentBefore(_) | Query::SentSince(_) => true,
        _ => false,
    }
}

/// Layer 1: the message and index records; content keys are `Maybe`.
fn cheap(q: &Query, m: &MessageMeta, ix: &HeaderIndex) -> Verdict {
    match q {
        Query::And(qs) => {
            let mut out = Verdict::Yes;
            for q in qs {
                match cheap(q, m, ix) {
                    Verdict::No => return Verdict::No,
                    Verdict::Maybe => out = Verdict::Maybe,
                    Verdict::Yes => {}
                }
            }
            out
        }
        Query::Or(a, b) => match (cheap(a, m, ix), cheap(b, m, ix)) {
            (Verdict::Yes, _) | (_, Verdict::Yes) => Verdict::Yes,
            (Verdict::No, Verdict::No) => Verdict::No,
            _ => Verdict::Maybe,
        },
        Query::Not(a) => match cheap(a, m, ix) {
            Verdict::Yes => Verdict::No,
            Verdict::No => Verdict::Yes,
            Verdict::Maybe => Verdict::Maybe,
        },
        Query::Header(Field::Other(_), _) | Query::Body(_) | Query::Text(_) => Verdict::Maybe,
        leaf => Verdict::of(record_leaf(leaf, m, ix)),
    }
}

/// A key the records answer alone (not a combinator, not a content key).
fn record_leaf(q: &Query, m: &MessageMeta, ix: &HeaderIndex) -> bool {
    match q {
        Query::All => true,
        Query::Uids(ranges) => ranges.iter().any(|&(a, b)| a <= m.uid && m.uid <= b),
        Query::Flag(f) => has_flag(&m.flags, f),
        Query::Larger(n) => m.size > *n,
        Query::Smaller(n) => m.size < *n,
        Query::Before(t) => m.internal_date < *t,
        Query::Since(t) => m.internal_date >= *t,
        Query::SentBefore(t) => ix.sent_day.is_some_and(|d| d < *t),
        Query::SentSince(t) => ix.sent_day.is_some_and(|d| d >= *t),
        Query::ModSeq(n) => m.modseq >= *n,
        Query::Header(f, s) => {
            let value = match f {
                Field::From => &ix.from,
                Field::To => &ix.to,
                Field::Cc => &ix.cc,
                Field::Bcc => &ix.bcc,
                Field::Subject => &ix.subject,
                Field::Other(_) => return false,
            };
            value.as_deref().is_some_and(|v| v.contains(s.as_str()))
        }
        Query::And(_) | Query::Or(..) | Query::Not(_) | Query::Body(_) | Query::Text(_) => false,
    }
}

/// Layer 3: the query with the content at hand (read on first need).
fn full(
    q: &Query,
    m: &MessageMeta,
    ix: &HeaderIndex,
    c: &mut Content<'_>,
) -> Result<bool, StoreError> {
    Ok(match q {
        Query::And(qs) => {
            for q in qs {
                if !full(q, m, ix, c)? {
                    return Ok(false);
                }
            }
            true
        }
        Query::Or(a, b) => full(a, m, ix, c)? || full(b, m, ix, c)?,
        Query::Not(a) => !full(a, m, ix, c)?,
        Query::Header(Field::Other(name), s) => c
            .fields()?
            .iter()
            .any(|(n, text)| n == name && text.contains(s.as_str())),
        Query::Body(s) => c.whole()?.body.contains(s.as_str()),
        Query::Text(s) => {
            let w = c.whole()?;
            w.header.contains(s.as_str()) || w.body.contains(s.as_str())
        }
        leaf => record_leaf(leaf, m, ix),
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
    meta: &'a MessageMeta,
    parser: &'a MessageParser,
    fields: Option<Vec<(String, String)>>,
    whole: Option<Whole>,
}

impl<'a> Content<'a> {
    fn new(blobs: &'a FileBlobs, meta: &'a MessageMeta, parser: &'a MessageParser) -> Self {
        Self {
            blobs,
            meta,
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
            let head = if self.meta.size <= HEAD_LIMIT {
                self.blobs.get(&self.meta.blob, None)
            } else {
                read_head(self.blobs, &self.meta.blob)
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
                tracing::warn!(uid = self.meta.uid, blob = %self.meta.blob.0, "search: message blob missing");
                Ok(Vec::new())
            }
            other => other,
        }
    }

    fn whole(&mut self) -> Result<&Whole, StoreError> {
        if self.whole.is_none() {
            let bytes = self.tolerate_missing(self.blobs.get(&self.meta.blob, None))?;
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
