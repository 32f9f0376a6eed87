//! IMAP syntax that imap-codec (2.0.0-alpha.10) refuses but clients send:
//! LIST-EXTENDED with LIST-STATUS and SPECIAL-USE (RFC 5258, 5819, 6154),
//! ESEARCH return options (RFC 4731), CREATE with USE (RFC 6154 §3) and
//! MULTIAPPEND (RFC 3502); and the responses imap-types cannot express
//! (LIST with `CHILDINFO`; `* ESEARCH` is written by `search`). No IO here.
//!
//! When imap-next reports a command as malformed, the session hands its bytes
//! (tag to CRLF, literals inline) to [`parse`]. The parser only finds the
//! extension's own parts; whatever is standard syntax (mailbox names, patterns,
//! SEARCH criteria, STATUS items, APPEND messages) is cut out and given back to
//! imap-codec's `CommandCodec`, so it is read exactly as imap-codec reads it.
//!
//! Checked with imap-codec and the features the MAA enables (see the tests):
//! ENABLE IMAP4rev2 / UTF8=ACCEPT / QRESYNC, STATUS with SIZE DELETED
//! HIGHESTMODSEQ (the `ext_status_size` feature of imap-codec), SELECT/EXAMINE
//! with CONDSTORE or QRESYNC, FETCH with CHANGEDSINCE and VANISHED, STORE with
//! UNCHANGEDSINCE, UID EXPUNGE, MOVE, ID, NAMESPACE, APPEND with flags, date and
//! a LITERAL+ literal all parse already; only the forms below need this module.

use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::{CommandCodec, ResponseCodec};
use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{QuotedChar, Tag};
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Data, Response};
use imap_next::imap_types::status::StatusDataItemName;

/// Most items in one parenthesised list, and most patterns, options, messages.
pub(crate) const MAX_ITEMS: usize = 1024;
/// Deepest nesting of parentheses.
pub(crate) const MAX_DEPTH: usize = 64;

/// A command this module parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExtCommand {
    /// LIST with selection options, several patterns or return options.
    List(ListExtended),
    /// SEARCH / UID SEARCH with `RETURN (...)`.
    Search(Esearch),
    /// CREATE with `(USE (...))`.
    Create(CreateUse),
    /// APPEND with more than one message: one imap-codec APPEND per message, in order.
    MultiAppend {
        tag: Tag<'static>,
        appends: Vec<Command<'static>>,
    },
}

/// `LIST [(selection)] reference patterns [RETURN (options)]` (RFC 5258 §3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListExtended {
    pub(crate) tag: Tag<'static>,
    pub(crate) selection: ListSelection,
    pub(crate) reference: Mailbox<'static>,
    /// One or more patterns (at most [`MAX_ITEMS`]).
    pub(crate) patterns: Vec<ListMailbox<'static>>,
    pub(crate) returns: ListReturn,
}

/// LIST selection options. `RECURSIVEMATCH` alone is not allowed (RFC 5258 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListSelection {
    pub(crate) subscribed: bool,
    pub(crate) remote: bool,
    pub(crate) recursive_match: bool,
    pub(crate) special_use: bool,
}

/// LIST return options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListReturn {
    pub(crate) subscribed: bool,
    pub(crate) children: bool,
    pub(crate) special_use: bool,
    /// `STATUS (...)` (RFC 5819): the items, as imap-codec parses them.
    pub(crate) status: Option<Vec<StatusDataItemName>>,
}

/// `[UID] SEARCH RETURN (options) criteria` (RFC 4731 §3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Esearch {
    /// The command without `RETURN (...)`, as imap-codec parses it
    /// (`CommandBody::Search`, tag included).
    pub(crate) command: Command<'static>,
    pub(crate) returns: SearchReturn,
}

/// ESEARCH return options. `RETURN ()` means ALL (RFC 4731 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SearchReturn {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) all: bool,
    pub(crate) count: bool,
    /// SEARCHRES (RFC 5182); not advertised, so the session refuses it.
    pub(crate) save: bool,
}

/// `CREATE mailbox (USE (attributes))` (RFC 6154 §3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateUse {
    pub(crate) tag: Tag<'static>,
    pub(crate) mailbox: Mailbox<'static>,
    /// The special-use attributes, as sent (`\Sent`, `\Archive`, ...).
    pub(crate) uses: Vec<String>,
}

/// Why [`parse`] did not return a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExtError {
    /// Not one of the forms this module reads: the session answers `BAD` as
    /// it does for any malformed command.
    #[error("not an extended command")]
    NotOurs,
    /// One of our forms, but malformed: `BAD` with this tag.
    #[error("{1}")]
    Bad(Tag<'static>, &'static str),
}

// ---------------------------------------------------------------------------
// A small reader over the command bytes

/// One item of a command, by its byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// An atom-like word (list wildcards, `\` and `]` included).
    Word(usize, usize),
    /// A quoted string, quotes included.
    Quoted(usize, usize),
    /// A literal, `{n}` and its data included.
    Literal(usize, usize),
    /// A parenthesised list, parentheses included.
    List(usize, usize),
}

impl Item {
    fn span(self) -> (usize, usize) {
        match self {
            Item::Word(a, b) | Item::Quoted(a, b) | Item::Literal(a, b) | Item::List(a, b) => {
                (a, b)
            }
        }
    }
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

#[derive(Debug)]
struct Malformed(&'static str);

impl<'a> Reader<'a> {
    fn skip_sp(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn bytes(&self, item: Item) -> &'a [u8] {
        let (a, b) = item.span();
        &self.s[a..b]
    }

    /// The next item (after spaces), or `None` at the end.
    fn item(&mut self, depth: usize) -> Result<Option<Item>, Malformed> {
        self.skip_sp();
        let start = self.pos;
        let Some(&b) = self.s.get(self.pos) else {
            return Ok(None);
        };
        match b {
            b'"' => {
                self.pos += 1;
                loop {
                    match self.s.get(self.pos) {
                        None | Some(b'\r' | b'\n') => return Err(Malformed("unterminated string")),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Some(Item::Quoted(start, self.pos)));
                        }
                        Some(b'\\') => self.pos += 2,
                        Some(_) => self.pos += 1,
                    }
                }
            }
            b'{' | b'~' => {
                if b == b'~' {
                    self.pos += 1;
                    if self.s.get(self.pos) != Some(&b'{') {
                        return self.word(start);
                    }
                }
                self.pos += 1;
                let digits_start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let len: usize = std::str::from_utf8(&self.s[digits_start..self.pos])
                    .ok()
                    .and_then(|d| d.parse::<u32>().ok())
                    .ok_or(Malformed("bad literal length"))?
                    as usize;
                if self.s.get(self.pos) == Some(&b'+') || self.s.get(self.pos) == Some(&b'-') {
                    self.pos += 1;
                }
                if self.s.get(self.pos) != Some(&b'}') {
                    return Err(Malformed("bad literal"));
                }
                self.pos += 1;
                if self.s[self.pos..].starts_with(b"\r\n") {
                    self.pos += 2;
                } else if self.s.get(self.pos) == Some(&b'\n') {
                    self.pos += 1;
                } else {
                    return Err(Malformed("literal without CRLF"));
                }
                if self.s.len() - self.pos < len {
                    return Err(Malformed("truncated literal"));
                }
                self.pos += len;
                Ok(Some(Item::Literal(start, self.pos)))
            }
            b'(' => {
                if depth >= MAX_DEPTH {
                    return Err(Malformed("nesting too deep"));
                }
                self.pos += 1;
                let mut n = 0;
                loop {
                    self.skip_sp();
                    match self.s.get(self.pos) {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Some(Item::List(start, self.pos)));
                        }
                        None | Some(b'\r' | b'\n') => return Err(Malformed("unclosed list")),
                        Some(_) => {
                            n += 1;
                            if n > MAX_ITEMS {
                                return Err(Malformed("too many items"));
                            }
                            self.item(depth + 1)?;
                        }
                    }
                }
            }
            b')' => Err(Malformed("unexpected ')'")),
            b'\r' | b'\n' => Ok(None),
            _ => self.word(start),
        }
    }

    fn word(&mut self, start: usize) -> Result<Option<Item>, Malformed> {
        while let Some(&c) = self.s.get(self.pos) {
            if matches!(c, b' ' | b'(' | b')' | b'"' | b'{' | b'\r' | b'\n') || c < 0x20 {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Malformed("unexpected byte"));
        }
        Ok(Some(Item::Word(start, self.pos)))
    }

    /// The items inside a list item.
    fn inner(&self, list: Item) -> Result<Vec<Item>, Malformed> {
        let (a, b) = list.span();
        let mut r = Reader {
            s: &self.s[..b - 1],
            pos: a + 1,
        };
        let mut out = Vec::new();
        while let Some(item) = r.item(1)? {
            out.push(item);
            if out.len() > MAX_ITEMS {
                return Err(Malformed("too many items"));
            }
        }
        Ok(out)
    }
}

fn is_word(r: &Reader<'_>, item: Option<Item>, word: &str) -> bool {
    matches!(item, Some(i @ Item::Word(..)) if r.bytes(i).eq_ignore_ascii_case(word.as_bytes()))
}

/// Decode a rebuilt command with imap-codec.
fn codec(bytes: &[u8]) -> Option<Command<'static>> {
    match CommandCodec::default().decode(bytes) {
        Ok(([], cmd)) => Some(cmd.into_static()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The parser

/// Parse a command imap-next refused (`bytes`: tag to the final CRLF).
pub(crate) fn parse(bytes: &[u8]) -> Result<ExtCommand, ExtError> {
    let body = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    let mut r = Reader { s: body, pos: 0 };
    let Ok(Some(tag_item @ Item::Word(..))) = r.item(0) else {
        return Err(ExtError::NotOurs);
    };
    let tag_bytes = r.bytes(tag_item);
    let Ok(tag) = Tag::try_from(tag_bytes) else {
        return Err(ExtError::NotOurs);
    };
    let tag = tag.into_static();
    let Ok(Some(cmd)) = r.item(0) else {
        return Err(ExtError::NotOurs);
    };
    let bad = |m: Malformed| ExtError::Bad(tag.clone(), m.0);
    if is_word(&r, Some(cmd), "LIST") {
        list(&mut r, tag.clone()).map_err(bad)
    } else if is_word(&r, Some(cmd), "SEARCH") {
        search(&mut r, tag.clone(), tag_bytes, false)
    } else if is_word(&r, Some(cmd), "UID") {
        let sub = r.item(0).ok().flatten();
        if !is_word(&r, sub, "SEARCH") {
            return Err(ExtError::NotOurs);
        }
        search(&mut r, tag.clone(), tag_bytes, true)
    } else if is_word(&r, Some(cmd), "CREATE") {
        create(&mut r, tag.clone(), tag_bytes).map_err(bad)
    } else if is_word(&r, Some(cmd), "APPEND") {
        multiappend(&mut r, tag.clone(), tag_bytes)
    } else {
        Err(ExtError::NotOurs)
    }
}

fn list(r: &mut Reader<'_>, tag: Tag<'static>) -> Result<ExtCommand, Malformed> {
    let mut item = r.item(0)?;
    let mut selection = ListSelection::default();
    if let Some(l @ Item::List(..)) = item {
        for opt in r.inner(l)? {
            let Item::Word(..) = opt else {
                return Err(Malformed("bad selection option"));
            };
            match r.bytes(opt).to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => selection.subscribed = true,
                b"REMOTE" => selection.remote = true,
                b"RECURSIVEMATCH" => selection.recursive_match = true,
                b"SPECIAL-USE" => selection.special_use = true,
                _ => return Err(Malformed("unknown LIST selection option")),
            }
        }
        item = r.item(0)?;
    }
    if selection.recursive_match
        && !(selection.subscribed || selection.special_use || selection.remote)
    {
        return Err(Malformed("RECURSIVEMATCH needs another selection option"));
    }
    let reference = match item {
        Some(i @ (Item::Word(..) | Item::Quoted(..) | Item::Literal(..))) => i,
        _ => return Err(Malformed("missing reference")),
    };
    let patterns_item = r.item(0)?.ok_or(Malformed("missing pattern"))?;
    let pattern_items = match patterns_item {
        Item::List(..) => {
            let p = r.inner(patterns_item)?;
            if p.is_empty() || p.iter().any(|i| matches!(i, Item::List(..))) {
                return Err(Malformed("bad pattern list"));
            }
            p
        }
        single => vec![single],
    };
    let mut returns = ListReturn::default();
    let next = r.item(0)?;
    if next.is_some() {
        if !is_word(r, next, "RETURN") {
            return Err(Malformed("unexpected text after the patterns"));
        }
        let Some(l @ Item::List(..)) = r.item(0)? else {
            return Err(Malformed("RETURN needs a list"));
        };
        let opts = r.inner(l)?;
        let mut i = 0;
        while i < opts.len() {
            let opt = opts[i];
            let Item::Word(..) = opt else {
                return Err(Malformed("bad return option"));
            };
            match r.bytes(opt).to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => returns.subscribed = true,
                b"CHILDREN" => returns.children = true,
                b"SPECIAL-USE" => returns.special_use = true,
                b"STATUS" => {
                    let Some(&items @ Item::List(..)) = opts.get(i + 1) else {
                        return Err(Malformed("STATUS needs a list"));
                    };
                    i += 1;
                    let mut cmd = b"x STATUS INBOX ".to_vec();
                    cmd.extend_from_slice(r.bytes(items));
                    cmd.extend_from_slice(b"\r\n");
                    let Some(Command {
                        body: CommandBody::Status { item_names, .. },
                        ..
                    }) = codec(&cmd)
                    else {
                        return Err(Malformed("bad STATUS items"));
                    };
                    returns.status = Some(item_names.into_owned());
                }
                _ => return Err(Malformed("unknown LIST return option")),
            }
            i += 1;
        }
        if r.item(0)?.is_some() {
            return Err(Malformed("unexpected text after RETURN"));
        }
    }
    // Reference and each pattern are standard syntax: read them with imap-codec.
    let mut reference_mailbox = None;
    let mut patterns = Vec::with_capacity(pattern_items.len());
    for p in pattern_items {
        let mut cmd = b"x LIST ".to_vec();
        cmd.extend_from_slice(r.bytes(reference));
        cmd.push(b' ');
        cmd.extend_from_slice(r.bytes(p));
        cmd.extend_from_slice(b"\r\n");
        let Some(Command {
            body:
                CommandBody::List {
                    reference,
                    mailbox_wildcard,
                },
            ..
        }) = codec(&cmd)
        else {
            return Err(Malformed("bad reference or pattern"));
        };
        reference_mailbox = Some(reference);
        patterns.push(mailbox_wildcard);
    }
    Ok(ExtCommand::List(ListExtended {
        tag,
        selection,
        reference: reference_mailbox.ok_or(Malformed("missing pattern"))?,
        patterns,
        returns,
    }))
}

fn search(
    r: &mut Reader<'_>,
    tag: Tag<'static>,
    tag_bytes: &[u8],
    uid: bool,
) -> Result<ExtCommand, ExtError> {
    let bad = |m: &'static str| ExtError::Bad(tag.clone(), m);
    let first = r.item(0).map_err(|m| bad(m.0))?;
    if !is_word(r, first, "RETURN") {
        return Err(ExtError::NotOurs);
    }
    let Some(l @ Item::List(..)) = r.item(0).map_err(|m| bad(m.0))? else {
        return Err(bad("RETURN needs a list"));
    };
    let mut returns = SearchReturn::default();
    for opt in r.inner(l).map_err(|m| bad(m.0))? {
        let Item::Word(..) = opt else {
            return Err(bad("bad SEARCH return option"));
        };
        match r.bytes(opt).to_ascii_uppercase().as_slice() {
            b"MIN" => returns.min = true,
            b"MAX" => returns.max = true,
            b"ALL" => returns.all = true,
            b"COUNT" => returns.count = true,
            b"SAVE" => returns.save = true,
            _ => return Err(bad("unknown SEARCH return option")),
        }
    }
    if !(returns.min || returns.max || returns.count || returns.save) {
        returns.all = true;
    }
    // The criteria: everything after `RETURN (...)`, read by imap-codec.
    let mut cmd = tag_bytes.to_vec();
    cmd.extend_from_slice(if uid { b" UID SEARCH" } else { b" SEARCH" });
    cmd.extend_from_slice(&r.s[r.pos..]);
    cmd.extend_from_slice(b"\r\n");
    match codec(&cmd) {
        Some(
            command @ Command {
                body: CommandBody::Search { .. },
                ..
            },
        ) => Ok(ExtCommand::Search(Esearch { command, returns })),
        _ => Err(bad("bad SEARCH criteria")),
    }
}

fn create(
    r: &mut Reader<'_>,
    tag: Tag<'static>,
    tag_bytes: &[u8],
) -> Result<ExtCommand, Malformed> {
    let name = match r.item(0)? {
        Some(i @ (Item::Word(..) | Item::Quoted(..) | Item::Literal(..))) => i,
        _ => return Err(Malformed("missing mailbox name")),
    };
    let Some(l @ Item::List(..)) = r.item(0)? else {
        return Err(Malformed("expected CREATE parameters"));
    };
    if r.item(0)?.is_some() {
        return Err(Malformed("unexpected text after CREATE parameters"));
    }
    let params = r.inner(l)?;
    let mut uses = Vec::new();
    let mut i = 0;
    while i < params.len() {
        if !is_word(r, Some(params[i]), "USE") {
            return Err(Malformed("unknown CREATE parameter"));
        }
        let Some(&attrs @ Item::List(..)) = params.get(i + 1) else {
            return Err(Malformed("USE needs a list"));
        };
        for a in r.inner(attrs)? {
            let bytes = r.bytes(a);
            let valid = matches!(a, Item::Word(..))
                && bytes.len() > 1
                && bytes[0] == b'\\'
                && bytes[1..]
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
            if !valid {
                return Err(Malformed("bad special-use attribute"));
            }
            uses.push(String::from_utf8_lossy(bytes).into_owned());
        }
        i += 2;
    }
    let mut cmd = tag_bytes.to_vec();
    cmd.extend_from_slice(b" CREATE ");
    cmd.extend_from_slice(r.bytes(name));
    cmd.extend_from_slice(b"\r\n");
    match codec(&cmd) {
        Some(Command {
            body: CommandBody::Create { mailbox },
            ..
        }) => Ok(ExtCommand::Create(CreateUse { tag, mailbox, uses })),
        _ => Err(Malformed("bad mailbox name")),
    }
}

/// `APPEND mailbox 1*(SP [flags SP] [date SP] literal)`: split into one APPEND
/// per message. A single message is imap-codec's own (or malformed): `NotOurs`.
fn multiappend(
    r: &mut Reader<'_>,
    tag: Tag<'static>,
    tag_bytes: &[u8],
) -> Result<ExtCommand, ExtError> {
    let bad = |m: &'static str| ExtError::Bad(tag.clone(), m);
    let name = match r.item(0).map_err(|m| bad(m.0))? {
        Some(i @ (Item::Word(..) | Item::Quoted(..) | Item::Literal(..))) => i,
        _ => return Err(ExtError::NotOurs),
    };
    let mut messages: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    while let Some(item) = r.item(0).map_err(|m| bad(m.0))? {
        let (a, b) = item.span();
        let s = *start.get_or_insert(a);
        if let Item::Literal(..) = item {
            messages.push((s, b));
            start = None;
            if messages.len() > MAX_ITEMS {
                return Err(bad("too many messages"));
            }
        }
    }
    if messages.len() < 2 || start.is_some() {
        return Err(ExtError::NotOurs);
    }
    let mut appends = Vec::with_capacity(messages.len());
    for (a, b) in messages {
        let mut cmd = tag_bytes.to_vec();
        cmd.extend_from_slice(b" APPEND ");
        cmd.extend_from_slice(r.bytes(name));
        cmd.push(b' ');
        cmd.extend_from_slice(&r.s[a..b]);
        cmd.extend_from_slice(b"\r\n");
        match codec(&cmd) {
            Some(
                c @ Command {
                    body: CommandBody::Append { .. },
                    ..
                },
            ) => appends.push(c),
            _ => return Err(bad("bad APPEND message")),
        }
    }
    Ok(ExtCommand::MultiAppend { tag, appends })
}

// ---------------------------------------------------------------------------
// Responses imap-types cannot express

/// A `* LIST` line with the `CHILDINFO` extended item (RFC 5258 §4), CRLF
/// included: what `Data::List` writes, then ` ("CHILDINFO" ("SUBSCRIBED"))`.
/// Special-use and child attributes need no help: they are
/// `FlagNameAttribute::Extension` values (`\Sent`, `\HasNoChildren`).
pub(crate) fn encode_list_childinfo(
    items: Vec<FlagNameAttribute<'static>>,
    delimiter: Option<QuotedChar>,
    mailbox: Mailbox<'static>,
) -> Vec<u8> {
    let data = Response::Data(Data::List {
        items,
        delimiter,
        mailbox,
    });
    let mut out = ResponseCodec::default().encode(&data).dump();
    if out.ends_with(b"\r\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
    out
}

#[cfg(test)]
mod tests;
