//! The MIME tree walk: a message's bytes to [`Entity`] nodes (header, body,
//! multipart children, the message inside message/rfc822), within the depth
//! and part budgets, and part numbers back to nodes.

use std::num::NonZeroU32;

use super::header::field;
use super::mime::parse_content_type;
use super::{ContentType, Entity, Kind, MAX_DEPTH, MAX_PARTS};

/// Parse a message into its MIME tree. Never fails: anything malformed ends up
/// as a leaf (or an empty part), as IMAP servers commonly do.
pub(crate) fn parse(msg: &[u8]) -> Entity<'_> {
    let mut budget = MAX_PARTS;
    entity(msg, ContentType::text_plain(), 0, &mut budget)
}

fn entity<'a>(
    data: &'a [u8],
    default: ContentType,
    depth: usize,
    budget: &mut usize,
) -> Entity<'a> {
    let (header, body) = split_header(data);
    let ctype = field(header, "content-type")
        .and_then(|v| parse_content_type(&v))
        .unwrap_or(default);
    let opaque = depth >= MAX_DEPTH || *budget == 0;
    *budget = budget.saturating_sub(1);
    let is_message = ctype.is("message", "rfc822") || ctype.is("message", "global");
    let is_multipart = ctype.is_type("multipart");
    let (kind, ctype) = if opaque && (is_multipart || is_message) {
        // Too deep or too many parts: an opaque leaf, which must not be written
        // as a multipart or message body.
        let octets = ContentType {
            r#type: b"application".to_vec(),
            subtype: b"octet-stream".to_vec(),
            params: Vec::new(),
        };
        (Kind::Leaf, octets)
    } else if is_multipart {
        match ctype.param("boundary").filter(|b| !b.is_empty()) {
            Some(boundary) => {
                let child_default = if ctype.is("multipart", "digest") {
                    ContentType::message_rfc822()
                } else {
                    ContentType::text_plain()
                };
                let children = split_multipart(body, boundary, (*budget).max(1))
                    .into_iter()
                    .map(|part| entity(part, child_default.clone(), depth + 1, budget))
                    .collect();
                (Kind::Multipart(children), ctype)
            }
            // A multipart without a boundary is read as text (as mail-parser does).
            None => (Kind::Leaf, ContentType::text_plain()),
        }
    } else if is_message {
        let inner = entity(body, ContentType::text_plain(), depth + 1, budget);
        (Kind::Message(Box::new(inner)), ctype)
    } else {
        (Kind::Leaf, ctype)
    };
    Entity {
        header,
        body,
        ctype,
        kind,
    }
}

/// The lines of `data`, each with its line break.
pub(super) fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let start = pos;
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| start + i + 1);
        pos = end;
        Some((start, &data[start..end]))
    })
}

pub(super) fn is_blank_line(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// Where the header ends: after the first empty line, or at the end when there
/// is none (then the body is empty).
fn header_end(data: &[u8]) -> usize {
    facteur_store::header::header_end(data).unwrap_or(data.len())
}

/// The header (with its empty line) and the body.
pub(crate) fn split_header(data: &[u8]) -> (&[u8], &[u8]) {
    data.split_at(header_end(data))
}

/// The body parts of a multipart body: what lies between its delimiter lines,
/// without the line break before each delimiter. Preamble and epilogue are
/// dropped; a missing close delimiter ends the last part at the end of the body.
/// At most `max` parts: the last one then runs to the end of the body.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut current: Option<usize> = None; // start of the part being read
    for (start, line) in lines(body) {
        let Some(close) = delimiter(line, boundary) else {
            continue;
        };
        if let Some(part_start) = current {
            // The line break before the delimiter belongs to the delimiter.
            let mut end = start;
            if end > part_start && body[end - 1] == b'\n' {
                end -= 1;
                if end > part_start && body[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(&body[part_start..end]);
        }
        if close {
            return parts;
        }
        current = Some(start + line.len());
        if parts.len() + 1 >= max {
            break;
        }
    }
    if let Some(part_start) = current {
        parts.push(&body[part_start..]);
    }
    parts
}

/// Is `line` a delimiter line of `boundary`? `Some(true)` for the close delimiter.
/// After `--boundary` only `--` (close) or white space may follow (RFC 2046 §5.1.1),
/// so a boundary that is a prefix of another one is not mistaken for it.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    if rest.starts_with(b"--") {
        return Some(true);
    }
    rest.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(false)
}

impl<'a> Entity<'a> {
    /// The entity a part number path leads to (RFC 9051 §6.4.5): the parts of a
    /// multipart are numbered from 1; part 1 of a non-multipart is the entity
    /// itself; a number after a message/rfc822 part goes into its message.
    pub(super) fn find(&self, path: &[NonZeroU32]) -> Option<&Entity<'a>> {
        let mut cur = self;
        for (i, n) in path.iter().enumerate() {
            let n = n.get() as usize;
            cur = match &cur.kind {
                Kind::Multipart(children) => children.get(n - 1)?,
                _ if n == 1 => cur,
                _ => return None,
            };
            if i + 1 < path.len()
                && let Kind::Message(inner) = &cur.kind
            {
                cur = inner;
            }
        }
        Some(cur)
    }

    /// The message a HEADER/TEXT specifier applies to: the message inside a
    /// message/rfc822 part, else the part itself (lenient, as Dovecot).
    pub(super) fn message(&self) -> &Entity<'a> {
        match &self.kind {
            Kind::Message(inner) => inner,
            _ => self,
        }
    }
}
