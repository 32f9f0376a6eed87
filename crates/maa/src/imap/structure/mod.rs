//! The MIME tree of a message, and what IMAP derives from it: ENVELOPE, BODY and
//! BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501 §7.4.2), the bytes of `BODY[section]`
//! (§6.4.5) and the decoded bytes of `BINARY[section]` (RFC 3516). No IO here.
//!
//! The tree is walked by hand over the raw bytes rather than taken from
//! mail-parser's `Message`, because IMAP needs the raw view: the envelope carries
//! header text as sent (encoded words stay encoded, as Dovecot sends them),
//! RFC 2231 parameters pass through as parameters (continuations merged, values
//! still percent-encoded, as Dovecot's `rfc2231_parse`), part sizes and line
//! counts are those of the exact body bytes, and section numbers must match the
//! structure one for one at any depth (mail-parser decodes header values, merges
//! and decodes parameters, accepts a boundary in mid-line and stops parsing
//! message/rfc822 parts three levels down). mail-parser does the transfer
//! decoding for BINARY (its base64 and quoted-printable decoders).
//!
//! Sizes are octets of the stored bytes (Dovecot counts a bare LF as CRLF; the
//! bytes we store came over SMTP or APPEND with CRLF line ends, so the two agree),
//! and line counts are the number of LFs in the part's body, the line break
//! before a boundary delimiter belonging to the delimiter (RFC 2046 §5.1.1), as
//! in Dovecot's message parser.
//!
//! Map: this file holds the tree's types; `tree` walks the MIME structure;
//! `header` reads header fields; `mime` reads Content-* values and RFC 2231
//! parameters; `address` reads address lists; `envelope`, `bodystructure`,
//! `section` and `binary` build the FETCH answers from the tree.

mod address;
mod binary;
mod bodystructure;
mod envelope;
mod header;
mod mime;
mod section;
mod tree;

use imap_next::imap_types::core::{IString, NString};

pub(crate) use binary::BinaryError;
pub(crate) use tree::{parse, split_header};

/// Deepest nesting of multiparts and message/rfc822 parts that is parsed;
/// deeper composites are shown as opaque leaves (Dovecot stops at 100).
const MAX_DEPTH: usize = 64;
/// Most parts parsed in one message (Dovecot: 10000); the rest are opaque.
const MAX_PARTS: usize = 10_000;

/// One entity of the MIME tree: the message itself, a body part, or the message
/// inside a message/rfc822 part.
#[derive(Debug)]
pub(crate) struct Entity<'a> {
    /// The header, with the empty line that ends it (if there is one).
    header: &'a [u8],
    /// The body: what follows the header, up to (not including) the line break
    /// before the next boundary delimiter.
    body: &'a [u8],
    ctype: ContentType,
    kind: Kind<'a>,
}

#[derive(Debug)]
enum Kind<'a> {
    Leaf,
    Multipart(Vec<Entity<'a>>),
    Message(Box<Entity<'a>>),
}

/// A MIME parameter: name and value, as bytes (values may be 8-bit).
type Param = (Vec<u8>, Vec<u8>);

/// A parsed Content-Type (or its default).
#[derive(Debug, Clone)]
struct ContentType {
    r#type: Vec<u8>,
    subtype: Vec<u8>,
    params: Vec<Param>,
}

impl ContentType {
    fn text_plain() -> Self {
        ContentType {
            r#type: b"text".to_vec(),
            subtype: b"plain".to_vec(),
            params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        }
    }

    fn message_rfc822() -> Self {
        ContentType {
            r#type: b"message".to_vec(),
            subtype: b"rfc822".to_vec(),
            params: Vec::new(),
        }
    }

    fn is(&self, t: &str, s: &str) -> bool {
        self.r#type.eq_ignore_ascii_case(t.as_bytes())
            && self.subtype.eq_ignore_ascii_case(s.as_bytes())
    }

    fn is_type(&self, t: &str) -> bool {
        self.r#type.eq_ignore_ascii_case(t.as_bytes())
    }

    fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

/// Bytes as an IMAP string: quoted when possible, else a literal. NUL, which no
/// IMAP string may hold, becomes 0x80 (as Dovecot does).
fn istring(bytes: &[u8]) -> IString<'static> {
    let clean: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    IString::try_from(clean).unwrap_or_else(|_| {
        // Unreachable: without NUL every byte string is a valid literal.
        IString::try_from("").unwrap_or_else(|_| unreachable!())
    })
}

fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(istring))
}

#[cfg(test)]
mod tests;
