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

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_next::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_next::imap_types::core::{AString, IString, NString, Vec1};
use imap_next::imap_types::envelope::{Address, Envelope};
use imap_next::imap_types::fetch::{Part, Section};

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
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
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

fn is_blank_line(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// Where the header ends: after the first empty line, or at the end when there
/// is none (then the body is empty).
pub(crate) fn header_end(data: &[u8]) -> usize {
    for (start, line) in lines(data) {
        if is_blank_line(line) {
            return start + line.len();
        }
    }
    data.len()
}

fn split_header(data: &[u8]) -> (&[u8], &[u8]) {
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

// ---------------------------------------------------------------------------
// Header fields

/// The header fields: name and raw value (folding included, line break excluded).
fn fields(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = header;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            // One field: its first line plus continuation lines.
            let mut end = 0;
            for (start, line) in lines(rest) {
                if start > 0 && !line.starts_with(b" ") && !line.starts_with(b"\t") {
                    break;
                }
                end = start + line.len();
            }
            let field = &rest[..end];
            rest = &rest[end..];
            if is_blank_line(field) {
                return None;
            }
            let Some(colon) = field.iter().position(|&b| b == b':') else {
                continue; // not a header field; skipped
            };
            let name = field[..colon].trim_ascii();
            if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
                continue;
            }
            let mut value = &field[colon + 1..];
            while let Some(v) = value
                .strip_suffix(b"\n")
                .map(|v| v.strip_suffix(b"\r").unwrap_or(v))
            {
                value = v;
            }
            return Some((name, value));
        }
    })
}

/// Remove the line breaks of a folded value (keeping the white space after them),
/// and the white space around it.
fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect::<Vec<u8>>()
        .trim_ascii()
        .to_vec()
}

/// The unfolded value of the first field called `name`.
fn field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(header)
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| unfold(v))
}

// ---------------------------------------------------------------------------
// MIME header values: Content-Type, Content-Disposition, parameters

/// A cursor over a structured header value, skipping comments (RFC 5322 CFWS).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8]) -> Self {
        Lexer { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skip white space and comments (nested, with quoted pairs).
    fn skip_cfws(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'(') => {
                    self.comment();
                }
                _ => return,
            }
        }
    }

    /// Read a comment at the cursor (which is on `(`) and return its text.
    fn comment(&mut self) -> Vec<u8> {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    if depth > 0 {
                        text.push(b);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return text;
                    }
                    text.push(b);
                }
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        text.push(next);
                    }
                }
                _ => text.push(b),
            }
        }
        text
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_cfws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A MIME token (RFC 2045): anything but space, controls and tspecials.
    fn token(&mut self) -> Option<&'a [u8]> {
        self.skip_cfws();
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b <= b' ' || b == 0x7f || TSPECIALS.contains(&b) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A quoted string at the cursor (on `"`), unescaped.
    fn quoted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => return out,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        out.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        out
    }

    /// A parameter value: a quoted string or a token; lenient about 8-bit bytes
    /// and stray specials up to the next `;`.
    fn value(&mut self) -> Vec<u8> {
        self.skip_cfws();
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b';' || b == b' ' || b == b'\t' || b == b'(' || b == b'"' {
                break;
            }
            self.pos += 1;
        }
        self.s[start..self.pos].to_vec()
    }

    /// `*(";" attribute "=" value)`, RFC 2231 continuations merged.
    fn params(&mut self) -> Vec<Param> {
        let mut raw = Vec::new();
        while self.eat(b';') {
            let Some(name) = self.token() else {
                // Skip the junk up to the next parameter.
                while let Some(b) = self.peek() {
                    if b == b';' {
                        break;
                    }
                    self.pos += 1;
                }
                continue;
            };
            if !self.eat(b'=') {
                continue;
            }
            let value = self.value();
            raw.push((name.to_vec(), value));
            if raw.len() >= 1024 {
                break;
            }
        }
        merge_rfc2231(raw)
    }
}

/// `type "/" subtype *(";" parameter)`; `None` when malformed (the default applies).
fn parse_content_type(value: &[u8]) -> Option<ContentType> {
    let mut lex = Lexer::new(value);
    let r#type = lex.token()?.to_vec();
    if !lex.eat(b'/') {
        return None;
    }
    let subtype = lex.token()?.to_vec();
    let params = lex.params();
    Some(ContentType {
        r#type,
        subtype,
        params,
    })
}

/// Content-Disposition: `type *(";" parameter)`.
fn parse_disposition(value: &[u8]) -> Option<(Vec<u8>, Vec<Param>)> {
    let mut lex = Lexer::new(value);
    let r#type = lex.token()?.to_vec();
    Some((r#type, lex.params()))
}

/// Content-Transfer-Encoding: the token, comments dropped; `None` if absent or empty.
fn parse_cte(value: &[u8]) -> Option<Vec<u8>> {
    Lexer::new(value).token().map(<[u8]>::to_vec)
}

/// Content-Language: a comma-separated list of tags.
fn parse_languages(value: &[u8]) -> Vec<Vec<u8>> {
    let mut lex = Lexer::new(value);
    let mut out = Vec::new();
    loop {
        lex.skip_cfws();
        let start = lex.pos;
        while let Some(b) = lex.peek() {
            if b == b',' || b == b' ' || b == b'\t' || b == b'(' {
                break;
            }
            lex.pos += 1;
        }
        if lex.pos > start {
            out.push(value[start..lex.pos].to_vec());
        }
        lex.skip_cfws();
        match lex.peek() {
            Some(b',') => lex.pos += 1,
            Some(_) => lex.pos += 1, // junk: skip a byte
            None => return out,
        }
    }
}

/// Merge RFC 2231 continuations (`name*0`, `name*1*`, ...) into one parameter,
/// `name*` when any segment is extended (value left percent-encoded, plain
/// segments escaped to match), as Dovecot's `rfc2231_parse` does. Segments
/// with gaps in their numbering pass through unmerged.
fn merge_rfc2231(raw: Vec<Param>) -> Vec<Param> {
    struct Segment {
        key: Vec<u8>,
        index: u32,
        extended: bool,
        value: Vec<u8>,
        order: usize,
    }
    let mut out: Vec<(usize, Param)> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    for (order, (key, value)) in raw.into_iter().enumerate() {
        let Some(star) = key.iter().position(|&b| b == b'*') else {
            out.push((order, (key, value)));
            continue;
        };
        let rest = &key[star + 1..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let tail = &rest[digits..];
        // `name*` (extended, one segment), `name*N` or `name*N*`.
        let (index, extended, well_formed) = if digits == 0 {
            (Some(0), true, tail.is_empty())
        } else {
            let index = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse::<u32>().ok());
            (index, tail == b"*", tail.is_empty() || tail == b"*")
        };
        match index {
            Some(index) if well_formed => segments.push(Segment {
                key: key[..star].to_vec(),
                index,
                extended,
                value,
                order,
            }),
            _ => out.push((order, (key, value))),
        }
    }
    segments.sort_by(|a, b| {
        a.key
            .to_ascii_lowercase()
            .cmp(&b.key.to_ascii_lowercase())
            .then(a.index.cmp(&b.index))
    });
    let mut i = 0;
    while i < segments.len() {
        let mut j = i;
        let mut contiguous = true;
        let mut any_extended = false;
        while j < segments.len() && segments[j].key.eq_ignore_ascii_case(&segments[i].key) {
            contiguous &= segments[j].index as usize == j - i;
            any_extended |= segments[j].extended;
            j += 1;
        }
        let group = &segments[i..j];
        let order = group.iter().map(|s| s.order).min().unwrap_or(0);
        if contiguous {
            let mut value = Vec::new();
            if any_extended && !group[0].extended {
                value.extend_from_slice(b"''");
            }
            for s in group {
                if any_extended && !s.extended {
                    rfc2231_escape(&s.value, &mut value);
                } else {
                    value.extend_from_slice(&s.value);
                }
            }
            let mut key = group[0].key.clone();
            if any_extended {
                key.push(b'*');
            }
            out.push((order, (key, value)));
        } else {
            for s in group {
                let key = format!(
                    "{}*{}{}",
                    String::from_utf8_lossy(&s.key),
                    s.index,
                    if s.extended { "*" } else { "" }
                );
                out.push((s.order, (key.into_bytes(), s.value.clone())));
            }
        }
        i = j;
    }
    out.sort_by_key(|(order, _)| *order);
    out.into_iter().map(|(_, p)| p).collect()
}

fn rfc2231_escape(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if b <= b' ' || b >= 0x7f || b == b'*' || b == b'\'' || b == b'%' || TSPECIALS.contains(&b)
        {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

// ---------------------------------------------------------------------------
// Addresses (RFC 5322 §3.4, with the obsolete forms clients still send)

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An atom (dots included: dot-atoms and `obs-phrase` words).
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    /// A domain literal, brackets included.
    Literal(Vec<u8>),
    Comment(Vec<u8>),
    Special(u8),
}

fn tokenize(value: &[u8]) -> Vec<Token> {
    let mut lex = Lexer::new(value);
    let mut out = Vec::new();
    while let Some(b) = lex.peek() {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => lex.pos += 1,
            b'(' => out.push(Token::Comment(lex.comment())),
            b'"' => out.push(Token::Quoted(lex.quoted())),
            b'[' => {
                let start = lex.pos;
                while let Some(c) = lex.peek() {
                    lex.pos += 1;
                    if c == b']' {
                        break;
                    }
                    if c == b'\\' && lex.peek().is_some() {
                        lex.pos += 1;
                    }
                }
                out.push(Token::Literal(value[start..lex.pos].to_vec()));
            }
            b'<' | b'>' | b'@' | b',' | b':' | b';' | b'\\' | b']' | b')' => {
                lex.pos += 1;
                out.push(Token::Special(b));
            }
            _ => {
                let start = lex.pos;
                while let Some(c) = lex.peek() {
                    if matches!(
                        c,
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b')'
                            | b'"'
                            | b'['
                            | b']'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b':'
                            | b';'
                            | b'\\'
                    ) {
                        break;
                    }
                    lex.pos += 1;
                }
                out.push(Token::Atom(value[start..lex.pos].to_vec()));
            }
        }
        if out.len() > 100_000 {
            break;
        }
    }
    out
}

/// One address of an envelope list, before it becomes imap-types values.
#[derive(Debug, Clone, PartialEq, Default)]
struct Addr {
    name: Option<Vec<u8>>,
    adl: Option<Vec<u8>>,
    mailbox: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
}

struct AddrParser {
    toks: Vec<Token>,
    pos: usize,
}

impl AddrParser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn special(&self) -> Option<u8> {
        match self.peek() {
            Some(Token::Special(c)) => Some(*c),
            _ => None,
        }
    }

    fn skip_comments(&mut self) -> Option<Vec<u8>> {
        let mut last = None;
        while let Some(Token::Comment(c)) = self.peek() {
            last = Some(c.clone());
            self.pos += 1;
        }
        last
    }

    /// Words (atoms, quoted strings) up to the next special; with the last comment seen.
    fn words(&mut self) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let mut words = Vec::new();
        let mut comment = None;
        while let Some(t) = self.peek() {
            match t {
                Token::Atom(w) | Token::Quoted(w) => words.push(w.clone()),
                Token::Comment(c) => comment = Some(c.clone()),
                Token::Literal(l) => words.push(l.clone()),
                Token::Special(_) => break,
            }
            self.pos += 1;
        }
        (words, comment)
    }

    /// A domain after `@`: atoms and literals up to a special.
    fn domain(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Token::Atom(w) | Token::Literal(w) => out.extend_from_slice(w),
                Token::Comment(_) | Token::Quoted(_) | Token::Special(_) => break,
            }
            self.pos += 1;
        }
        (!out.is_empty()).then_some(out)
    }

    /// `<[route:]local@domain>` with the cursor after `<`.
    fn angle(&mut self, name: Option<Vec<u8>>) -> Addr {
        let mut adl = Vec::new();
        // obs-route: "@a,@b:" before the addr-spec.
        while self.special() == Some(b'@') {
            self.pos += 1;
            if !adl.is_empty() {
                adl.push(b',');
            }
            adl.push(b'@');
            adl.extend(self.domain().unwrap_or_default());
            while self.special() == Some(b',') {
                self.pos += 1;
            }
            if self.special() == Some(b':') {
                self.pos += 1;
                break;
            }
        }
        let (local, _) = self.words();
        let mut addr = Addr {
            name,
            adl: (!adl.is_empty()).then_some(adl),
            mailbox: Some(local.join(&b"."[..])),
            host: None,
        };
        if self.special() == Some(b'@') {
            self.pos += 1;
            addr.host = self.domain();
        }
        // Whatever is left up to `>`.
        while let Some(t) = self.peek() {
            match t {
                Token::Special(b',' | b';') => break,
                Token::Special(b'>') => {
                    self.pos += 1;
                    break;
                }
                _ => self.pos += 1,
            }
        }
        addr
    }

    /// One mailbox (not a group), or `None` at a list separator with nothing in it.
    /// A mailbox always has a host in an envelope (a NIL host marks a group), so a
    /// missing local part or domain gets Dovecot's placeholder.
    fn mailbox(&mut self, words: Vec<Vec<u8>>, comment: Option<Vec<u8>>) -> Option<Addr> {
        let mut addr = self.mailbox_raw(words, comment)?;
        if addr.mailbox.as_ref().is_none_or(|m| m.is_empty()) {
            addr.mailbox = Some(b"MISSING_MAILBOX".to_vec());
        }
        if addr.host.is_none() {
            addr.host = Some(b"MISSING_DOMAIN".to_vec());
        }
        Some(addr)
    }

    fn mailbox_raw(&mut self, words: Vec<Vec<u8>>, comment: Option<Vec<u8>>) -> Option<Addr> {
        match self.special() {
            Some(b'<') => {
                self.pos += 1;
                let name = (!words.is_empty()).then(|| words.join(&b" "[..]));
                let mut addr = self.angle(name);
                let trailing = self.skip_comments();
                if addr.name.is_none() {
                    addr.name = trailing.or(comment);
                }
                Some(addr)
            }
            Some(b'@') => {
                self.pos += 1;
                let host = self.domain();
                let trailing = self.skip_comments();
                Some(Addr {
                    name: trailing.or(comment),
                    adl: None,
                    mailbox: Some(words.join(&b"."[..])),
                    host,
                })
            }
            _ if words.is_empty() => None,
            _ => Some(Addr {
                name: comment,
                adl: None,
                mailbox: Some(words.join(&b" "[..])),
                host: None,
            }),
        }
    }

    fn list(&mut self) -> Vec<Addr> {
        let mut out = Vec::new();
        let mut in_group = false;
        while self.pos < self.toks.len() && out.len() < 10_000 {
            let (words, comment) = self.words();
            match self.special() {
                Some(b':') if !in_group => {
                    self.pos += 1;
                    in_group = true;
                    out.push(Addr {
                        mailbox: Some(words.join(&b" "[..])),
                        ..Addr::default()
                    });
                    continue;
                }
                Some(b';') if in_group => {
                    self.pos += 1;
                    if let Some(a) = self.mailbox(words, comment) {
                        out.push(a);
                    }
                    in_group = false;
                    out.push(Addr::default());
                    continue;
                }
                _ => {}
            }
            if let Some(a) = self.mailbox(words, comment) {
                out.push(a);
            }
            // Up to the next separator.
            match self.special() {
                Some(b',') => self.pos += 1,
                Some(b';') if in_group => {}
                Some(_) => self.pos += 1, // stray special: skip it
                None if self.pos < self.toks.len() => self.pos += 1,
                None => {}
            }
        }
        if in_group {
            out.push(Addr::default()); // close an unterminated group
        }
        out
    }
}

fn parse_addresses(value: &[u8]) -> Vec<Addr> {
    let mut p = AddrParser {
        toks: tokenize(value),
        pos: 0,
    };
    p.list()
}

// ---------------------------------------------------------------------------
// imap-types values

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

fn address(a: &Addr) -> Address<'static> {
    let n = |v: &Option<Vec<u8>>| nstring(v.as_deref().filter(|v| !v.is_empty()));
    Address {
        name: n(&a.name),
        adl: n(&a.adl),
        mailbox: nstring(a.mailbox.as_deref()),
        host: nstring(a.host.as_deref()),
    }
}

impl<'a> Entity<'a> {
    /// ENVELOPE of the message whose header this entity has.
    pub(crate) fn envelope(&self) -> Envelope<'static> {
        let h = self.header;
        let raw = |name| field(h, name);
        let list = |name| {
            raw(name)
                .map(|v| parse_addresses(&v))
                .unwrap_or_default()
                .iter()
                .map(address)
                .collect::<Vec<_>>()
        };
        let from = list("from");
        let mut sender = list("sender");
        let mut reply_to = list("reply-to");
        if sender.is_empty() {
            sender = from.clone();
        }
        if reply_to.is_empty() {
            reply_to = from.clone();
        }
        Envelope {
            date: nstring(raw("date").as_deref()),
            subject: nstring(raw("subject").as_deref()),
            from,
            sender,
            reply_to,
            to: list("to"),
            cc: list("cc"),
            bcc: list("bcc"),
            in_reply_to: nstring(raw("in-reply-to").as_deref()),
            message_id: nstring(raw("message-id").as_deref()),
        }
    }

    /// BODYSTRUCTURE (`extended`) or BODY of this entity.
    pub(crate) fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        match &self.kind {
            Kind::Multipart(children) => {
                let bodies: Vec<BodyStructure<'static>> = children
                    .iter()
                    .map(|c| c.body_structure(extended))
                    .collect();
                let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_part()));
                BodyStructure::Multi {
                    bodies,
                    subtype: istring(&self.ctype.subtype),
                    extension_data: extended.then(|| MultiPartExtensionData {
                        parameter_list: params(&self.ctype.params),
                        tail: Some(self.disposition()),
                    }),
                }
            }
            Kind::Leaf | Kind::Message(_) => BodyStructure::Single {
                body: self.single(extended),
                extension_data: extended.then(|| SinglePartExtensionData {
                    md5: nstring(field(self.header, "content-md5").as_deref()),
                    tail: Some(self.disposition()),
                }),
            },
        }
    }

    fn single(&self, extended: bool) -> Body<'static> {
        let h = self.header;
        let mut parameter_list = params(&self.ctype.params);
        let is_text = self.ctype.is_type("text") && matches!(self.kind, Kind::Leaf);
        if is_text && self.ctype.param("charset").is_none() {
            parameter_list.push((istring(b"charset"), istring(b"us-ascii")));
        }
        let cte = field(h, "content-transfer-encoding")
            .and_then(|v| parse_cte(&v))
            .unwrap_or_else(|| b"7bit".to_vec());
        let basic = BasicFields {
            parameter_list,
            id: nstring(field(h, "content-id").as_deref()),
            description: nstring(field(h, "content-description").as_deref()),
            content_transfer_encoding: istring(&cte),
            size: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
        };
        let lines =
            u32::try_from(self.body.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX);
        let specific = match &self.kind {
            Kind::Message(inner) => SpecificFields::Message {
                envelope: Box::new(inner.envelope()),
                body_structure: Box::new(inner.body_structure(extended)),
                number_of_lines: lines,
            },
            _ if is_text => SpecificFields::Text {
                subtype: istring(&self.ctype.subtype),
                number_of_lines: lines,
            },
            _ => SpecificFields::Basic {
                r#type: istring(&self.ctype.r#type),
                subtype: istring(&self.ctype.subtype),
            },
        };
        Body { basic, specific }
    }

    /// Disposition, language and location (the extension data after md5/params).
    fn disposition(&self) -> Disposition<'static> {
        let h = self.header;
        let disposition = field(h, "content-disposition")
            .and_then(|v| parse_disposition(&v))
            .map(|(t, p)| (istring(&t), params(&p)));
        let language = field(h, "content-language")
            .map(|v| parse_languages(&v))
            .unwrap_or_default()
            .iter()
            .map(|l| istring(l))
            .collect();
        Disposition {
            disposition,
            tail: Some(Language {
                language,
                tail: Some(Location {
                    location: nstring(field(h, "content-location").as_deref()),
                    extensions: Vec::new(),
                }),
            }),
        }
    }

    /// The entity a part number path leads to (RFC 9051 §6.4.5): the parts of a
    /// multipart are numbered from 1; part 1 of a non-multipart is the entity
    /// itself; a number after a message/rfc822 part goes into its message.
    fn find(&self, path: &[NonZeroU32]) -> Option<&Entity<'a>> {
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
    fn message(&self) -> &Entity<'a> {
        match &self.kind {
            Kind::Message(inner) => inner,
            _ => self,
        }
    }

    /// The bytes of `BODY[section]` (`None`: the whole message, `BODY[]`), or
    /// `None` when the section names no part (the answer is then NIL).
    pub(crate) fn section(
        &self,
        whole: &'a [u8],
        section: Option<&Section<'_>>,
    ) -> Option<Cow<'a, [u8]>> {
        let top = |p: &Option<Part>| -> Option<&Entity<'a>> {
            match p {
                None => Some(self),
                Some(p) => self.find(p.0.as_ref()).map(Entity::message),
            }
        };
        Some(match section {
            None => Cow::Borrowed(whole),
            Some(Section::Part(p)) => Cow::Borrowed(self.find(p.0.as_ref())?.body),
            Some(Section::Header(p)) => Cow::Borrowed(top(p)?.header),
            Some(Section::Text(p)) => Cow::Borrowed(top(p)?.body),
            Some(Section::Mime(p)) => Cow::Borrowed(self.find(p.0.as_ref())?.header),
            Some(Section::HeaderFields(p, names)) => {
                Cow::Owned(header_fields(top(p)?.header, names.as_ref(), false))
            }
            Some(Section::HeaderFieldsNot(p, names)) => {
                Cow::Owned(header_fields(top(p)?.header, names.as_ref(), true))
            }
        })
    }

    /// The decoded bytes of `BINARY[section]` (empty section: the whole message,
    /// undecoded), `Ok(None)` when the section names no part.
    pub(crate) fn binary(
        &self,
        whole: &'a [u8],
        section: &[NonZeroU32],
    ) -> Result<Option<Cow<'a, [u8]>>, BinaryError> {
        if section.is_empty() {
            return Ok(Some(Cow::Borrowed(whole)));
        }
        let Some(part) = self.find(section) else {
            return Ok(None);
        };
        if !matches!(part.kind, Kind::Leaf) {
            return Ok(Some(Cow::Borrowed(part.body)));
        }
        let cte = field(part.header, "content-transfer-encoding")
            .and_then(|v| parse_cte(&v))
            .unwrap_or_default()
            .to_ascii_lowercase();
        match cte.as_slice() {
            b"" | b"7bit" | b"8bit" | b"binary" => Ok(Some(Cow::Borrowed(part.body))),
            b"base64" => mail_parser::decoders::base64::base64_decode(part.body)
                .map(|v| Some(Cow::Owned(v)))
                .ok_or(BinaryError::Corrupt),
            b"quoted-printable" => {
                mail_parser::decoders::quoted_printable::quoted_printable_decode(part.body)
                    .map(|v| Some(Cow::Owned(v)))
                    .ok_or(BinaryError::Corrupt)
            }
            other => Err(BinaryError::UnknownCte(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }
}

/// Why a BINARY fetch cannot be answered (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one we decode.
    #[error("unknown Content-Transfer-Encoding {0:?}")]
    UnknownCte(String),
    /// The part's content does not decode with its transfer encoding.
    #[error("content does not decode with its Content-Transfer-Encoding")]
    Corrupt,
}

/// What Dovecot writes for a multipart that has no parts (none is allowed).
fn empty_part() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring(b"charset"), istring(b"us-ascii"))],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring(b"7bit"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring(b"plain"),
                number_of_lines: 0,
            },
        },
        extension_data: None,
    }
}

fn params(p: &[Param]) -> Vec<(IString<'static>, IString<'static>)> {
    p.iter().map(|(k, v)| (istring(k), istring(v))).collect()
}

/// The header fields named (or, with `not`, all others) with their folded lines,
/// then the empty line (RFC 9051 §6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT).
pub(crate) fn header_fields(header: &[u8], names: &[AString<'_>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for (_, line) in lines(header) {
        if is_blank_line(line) {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let listed = names
                .iter()
                .any(|n| n.as_ref().eq_ignore_ascii_case(name.trim_ascii()));
            keep = line.contains(&b':') && listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests;
