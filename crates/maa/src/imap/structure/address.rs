//! Address lists (RFC 5322 §3.4, with the obsolete forms clients still send)
//! for ENVELOPE: groups, route addresses, display names and comments.

use super::mime::Lexer;

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
pub(super) struct Addr {
    pub(super) name: Option<Vec<u8>>,
    pub(super) adl: Option<Vec<u8>>,
    pub(super) mailbox: Option<Vec<u8>>,
    pub(super) host: Option<Vec<u8>>,
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

pub(super) fn parse_addresses(value: &[u8]) -> Vec<Addr> {
    let mut p = AddrParser {
        toks: tokenize(value),
        pos: 0,
    };
    p.list()
}
