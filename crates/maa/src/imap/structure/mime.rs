//! MIME header values: Content-Type, Content-Disposition,
//! Content-Transfer-Encoding and Content-Language, with RFC 2045 tokens,
//! comments and quoted strings, and RFC 2231 parameter continuations merged.

use super::{ContentType, Param};

/// A cursor over a structured header value, skipping comments (RFC 5322 CFWS).
pub(super) struct Lexer<'a> {
    pub(super) s: &'a [u8],
    pub(super) pos: usize,
}

const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a [u8]) -> Self {
        Lexer { s, pos: 0 }
    }

    pub(super) fn peek(&self) -> Option<u8> {
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
    pub(super) fn comment(&mut self) -> Vec<u8> {
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
    pub(super) fn quoted(&mut self) -> Vec<u8> {
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
pub(super) fn parse_content_type(value: &[u8]) -> Option<ContentType> {
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
pub(super) fn parse_disposition(value: &[u8]) -> Option<(Vec<u8>, Vec<Param>)> {
    let mut lex = Lexer::new(value);
    let r#type = lex.token()?.to_vec();
    Some((r#type, lex.params()))
}

/// Content-Transfer-Encoding: the token, comments dropped; `None` if absent or empty.
pub(super) fn parse_cte(value: &[u8]) -> Option<Vec<u8>> {
    Lexer::new(value).token().map(<[u8]>::to_vec)
}

/// Content-Language: a comma-separated list of tags.
pub(super) fn parse_languages(value: &[u8]) -> Vec<Vec<u8>> {
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
