//! Session transcripts: what crossed the wire, as `C:`/`S:` lines a student can
//! read, made from the raw bytes of either side of an SMTP, LMTP, POP3 or IMAP
//! connection (server or client end alike).
//!
//! Sans-IO: the connection loop hands over what it read and what it wrote; the
//! [`Transcript`] splits lines, masks secrets (the arguments of `AUTH`, `PASS`,
//! `APOP`, `LOGIN`, `AUTHENTICATE` and every SASL response after a `334`/`+`
//! challenge), replaces message bodies by one line with their size and
//! Message-ID (SMTP `DATA`/`BDAT`, POP3 `RETR`/`TOP`, IMAP literals either way),
//! and stays bounded ([`Limits`]) whatever the peer sends. The Message-IDs it
//! saw are what ties a connection's record to the message a demo follows.

use std::collections::VecDeque;
use std::time::Instant;

/// Which protocol the bytes speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Lmtp,
    Pop3,
    Imap,
}

/// Who said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Dir {
    /// The client (`C:`).
    #[serde(rename = "C")]
    Client,
    /// The server (`S:`).
    #[serde(rename = "S")]
    Server,
    /// Not on this wire: what the agent did around it (a DNS lookup, a gRPC call).
    #[serde(rename = "*")]
    Note,
}

impl Dir {
    /// `C:`, `S:` or `*`, as a transcript prints it.
    pub fn prefix(self) -> &'static str {
        match self {
            Dir::Client => "C:",
            Dir::Server => "S:",
            Dir::Note => "*",
        }
    }
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    /// Milliseconds since the transcript started.
    pub ms: u64,
    pub dir: Dir,
    /// The line without its CRLF, control characters escaped, secrets masked.
    pub text: String,
}

/// How much one transcript keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lines kept; later ones are counted in [`Transcript::dropped`].
    pub max_lines: usize,
    /// Characters kept of one line.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_lines: 400,
            max_line: 300,
        }
    }
}

/// What replaces a secret.
pub const MASK: &str = "********";
/// How much of a message body is searched for its Message-ID (the header).
const HEADER_SCAN: usize = 16 * 1024;
/// A partial line longer than this is cut (its rest is not a line worth reading).
const MAX_PARTIAL: usize = 4096;

/// What the next bytes of one direction are.
#[derive(Debug)]
enum Mode {
    /// Command or reply lines.
    Lines,
    /// A body ending with `CRLF.CRLF` (SMTP DATA, POP3 RETR/TOP).
    DotBody(Body),
    /// A body of a known length (BDAT, IMAP literal); `left` octets to go.
    Counted { body: Body, left: u64 },
}

#[derive(Debug, Default)]
struct Body {
    octets: u64,
    head: Vec<u8>,
    /// The last bytes seen, to find `CRLF.CRLF` across reads.
    tail: [u8; 4],
}

impl Body {
    fn take(&mut self, bytes: &[u8]) {
        self.octets += bytes.len() as u64;
        let room = HEADER_SCAN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// One direction's state.
#[derive(Debug)]
struct Side {
    partial: Vec<u8>,
    mode: Mode,
}

impl Side {
    fn new() -> Self {
        Self {
            partial: Vec::new(),
            mode: Mode::Lines,
        }
    }
}

/// What a client command makes the server's reply be (POP3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pop3Reply {
    /// One line.
    Single,
    /// `+OK` then lines to a lone `.` (CAPA, LIST, UIDL without argument).
    Multi,
    /// `+OK` then a message to a lone `.` (RETR, TOP).
    Message,
}

/// The transcript of one connection.
#[derive(Debug)]
pub struct Transcript {
    proto: Proto,
    limits: Limits,
    started: Instant,
    lines: Vec<Line>,
    dropped: usize,
    client: Side,
    server: Side,
    /// The next client line answers a SASL challenge.
    mask_next: bool,
    /// The client said AUTH/AUTHENTICATE and the exchange is not over.
    in_sasl: bool,
    /// POP3: the replies still owed, in order (pipelining).
    pop3_owed: VecDeque<Pop3Reply>,
    /// POP3: inside a multi-line listing.
    pop3_multi: bool,
    message_ids: Vec<String>,
    /// The header of the first message that crossed, as its lines.
    headers: Vec<String>,
}

/// A finished transcript.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub lines: Vec<Line>,
    pub message_ids: Vec<String>,
    /// The header lines of the first message that crossed (bounded).
    pub headers: Vec<String>,
    /// Lines left out over the limit.
    pub dropped: usize,
}

/// Header lines kept of a message.
const MAX_HEADER_LINES: usize = 60;

/// The header lines of a message's first bytes (to the blank line), clipped.
pub fn header_lines(head: &[u8], max_line: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || out.len() == MAX_HEADER_LINES {
            break;
        }
        let mut clipped: String = line
            .chars()
            .take(max_line)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if line.chars().count() > max_line {
            clipped.push('…');
        }
        out.push(clipped);
    }
    out
}

impl Transcript {
    pub fn new(proto: Proto, limits: Limits) -> Self {
        Self {
            proto,
            limits,
            started: Instant::now(),
            lines: Vec::new(),
            dropped: 0,
            client: Side::new(),
            server: Side::new(),
            mask_next: false,
            in_sasl: false,
            pop3_owed: VecDeque::new(),
            pop3_multi: false,
            message_ids: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// Bytes the client sent.
    pub fn client(&mut self, bytes: &[u8]) {
        self.feed(Dir::Client, bytes);
    }

    /// Bytes the server sent.
    pub fn server(&mut self, bytes: &[u8]) {
        self.feed(Dir::Server, bytes);
    }

    /// A line about the connection that did not cross it (DNS, gRPC, a decision).
    pub fn note(&mut self, text: &str) {
        let text = self.clip(text.as_bytes());
        self.push(Dir::Note, text);
    }

    /// The lines kept so far.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Lines not kept (over [`Limits::max_lines`]).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The Message-IDs of the messages that crossed, in order, each once.
    pub fn message_ids(&self) -> &[String] {
        &self.message_ids
    }

    /// A message this connection carried, known otherwise than from its bytes.
    pub fn message_id(&mut self, id: &str) {
        if !self.message_ids.iter().any(|m| m == id) {
            self.message_ids.push(id.to_owned());
        }
    }

    /// The header lines of the first message that crossed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Everything kept, ending the transcript.
    pub fn finish(mut self) -> Finished {
        for dir in [Dir::Client, Dir::Server] {
            let side = self.side(dir);
            if !side.partial.is_empty() {
                let rest = std::mem::take(&mut side.partial);
                let text = self.clip(&rest);
                self.push(dir, text);
            }
        }
        Finished {
            lines: self.lines,
            message_ids: self.message_ids,
            headers: self.headers,
            dropped: self.dropped,
        }
    }

    fn side(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::Server => &mut self.server,
            _ => &mut self.client,
        }
    }

    fn feed(&mut self, dir: Dir, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let side = self.side(dir);
            match &mut side.mode {
                Mode::Lines => {
                    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                        if side.partial.len() < MAX_PARTIAL {
                            let room = MAX_PARTIAL - side.partial.len();
                            side.partial
                                .extend_from_slice(&bytes[..bytes.len().min(room)]);
                        }
                        return;
                    };
                    if side.partial.len() < MAX_PARTIAL {
                        let room = MAX_PARTIAL - side.partial.len();
                        side.partial.extend_from_slice(&bytes[..nl.min(room)]);
                    }
                    let mut line = std::mem::take(&mut side.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    bytes = &bytes[nl + 1..];
                    self.line(dir, &line);
                }
                Mode::Counted { body, left } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    body.take(&bytes[..n]);
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.end_body(dir, false);
                    }
                }
                Mode::DotBody(body) => {
                    // The end is CRLF "." CRLF; the CRLF before the dot may have
                    // come in an earlier read (or be the body's start, for an
                    // empty body right after the 354 / +OK line).
                    let mut end = None;
                    for (i, &b) in bytes.iter().enumerate() {
                        body.tail = [body.tail[1], body.tail[2], body.tail[3], b];
                        if body.tail == *b"\n.\r\n" {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    let n = end.unwrap_or(bytes.len());
                    body.take(&bytes[..n]);
                    bytes = &bytes[n..];
                    if end.is_some() {
                        self.end_body(dir, true);
                    }
                }
            }
        }
    }

    /// A body ended: one line for it, and its Message-ID remembered.
    fn end_body(&mut self, dir: Dir, dotted: bool) {
        let side = self.side(dir);
        let (Mode::DotBody(body) | Mode::Counted { body, .. }) =
            std::mem::replace(&mut side.mode, Mode::Lines)
        else {
            return;
        };
        // The dot line and its CRLF are framing, not message.
        let octets = if dotted {
            body.octets.saturating_sub(3)
        } else {
            body.octets
        };
        let id = message_id(&body.head);
        if self.headers.is_empty() && id.is_some() {
            self.headers = header_lines(&body.head, self.limits.max_line);
        }
        let text = match &id {
            Some(id) => format!("({octets} octets of message, Message-ID: {id})"),
            None => format!("({octets} octets)"),
        };
        self.push(dir, text);
        if dotted {
            self.push(dir, ".".into());
        }
        if let Some(id) = id
            && !self.message_ids.contains(&id)
        {
            self.message_ids.push(id);
        }
    }

    fn line(&mut self, dir: Dir, line: &[u8]) {
        let text = match dir {
            Dir::Client => self.client_line(line),
            _ => self.server_line(line),
        };
        self.push(dir, text);
    }

    fn client_line(&mut self, line: &[u8]) -> String {
        if std::mem::take(&mut self.mask_next) {
            // A SASL response ("*" cancels, and says so).
            return if line == b"*" {
                "*".into()
            } else {
                MASK.into()
            };
        }
        let text = self.clip(line);
        let words: Vec<&str> = text.split(' ').collect();
        let verb = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
        match self.proto {
            Proto::Smtp | Proto::Lmtp => match verb(0).as_deref() {
                Some("AUTH") => {
                    self.in_sasl = true;
                    keep_words(&words, 2)
                }
                Some("BDAT") => {
                    if let Some(n) = words.get(1).and_then(|n| n.parse::<u64>().ok()) {
                        self.start_counted(Dir::Client, n);
                    }
                    text
                }
                _ => text,
            },
            Proto::Pop3 => {
                let owed = match verb(0).as_deref() {
                    Some("PASS") => return keep_words(&words, 1),
                    Some("APOP") => return keep_words(&words, 2),
                    Some("AUTH") if words.len() > 1 => {
                        self.in_sasl = true;
                        self.pop3_owed.push_back(Pop3Reply::Single);
                        return keep_words(&words, 2);
                    }
                    Some("RETR" | "TOP") => Pop3Reply::Message,
                    Some("CAPA") => Pop3Reply::Multi,
                    // AUTH alone lists the mechanisms (RFC 5034 §4 allows it).
                    Some("LIST" | "UIDL" | "AUTH") if words.len() == 1 => Pop3Reply::Multi,
                    _ => Pop3Reply::Single,
                };
                self.pop3_owed.push_back(owed);
                text
            }
            Proto::Imap => {
                let out = match verb(1).as_deref() {
                    Some("LOGIN") => keep_words(&words, 3),
                    Some("AUTHENTICATE") => {
                        self.in_sasl = true;
                        keep_words(&words, 3)
                    }
                    _ => text,
                };
                if let Some(n) = literal_len(line) {
                    self.start_counted(Dir::Client, n);
                }
                out
            }
        }
    }

    fn server_line(&mut self, line: &[u8]) -> String {
        let text = self.clip(line);
        match self.proto {
            Proto::Smtp | Proto::Lmtp => {
                if line.starts_with(b"334") && self.in_sasl {
                    self.mask_next = true;
                } else if line.get(3) == Some(&b' ') {
                    self.in_sasl = false;
                }
                if line.starts_with(b"354") {
                    self.side(Dir::Client).mode = Mode::DotBody(dot_body_start());
                }
            }
            Proto::Pop3 => {
                if self.pop3_multi {
                    if line == b"." {
                        self.pop3_multi = false;
                    }
                    return text;
                }
                if line.starts_with(b"+ ") || line == b"+" {
                    if self.in_sasl {
                        self.mask_next = true;
                    }
                    return text;
                }
                // The greeting owes nothing; a reply pays for the oldest command.
                let owed = self.pop3_owed.pop_front().unwrap_or(Pop3Reply::Single);
                self.in_sasl = false;
                if line.starts_with(b"+OK") {
                    match owed {
                        Pop3Reply::Multi => self.pop3_multi = true,
                        Pop3Reply::Message => {
                            self.side(Dir::Server).mode = Mode::DotBody(dot_body_start());
                        }
                        Pop3Reply::Single => {}
                    }
                }
            }
            Proto::Imap => {
                if line.starts_with(b"+") {
                    if self.in_sasl {
                        self.mask_next = true;
                    }
                } else if !line.starts_with(b"*") {
                    self.in_sasl = false;
                }
                if let Some(n) = literal_len(line) {
                    self.start_counted(Dir::Server, n);
                }
            }
        }
        text
    }

    fn start_counted(&mut self, dir: Dir, n: u64) {
        let side = self.side(dir);
        side.mode = if n == 0 {
            Mode::Lines
        } else {
            Mode::Counted {
                body: Body::default(),
                left: n,
            }
        };
    }

    /// Printable text: control characters escaped, bounded in length.
    fn clip(&self, bytes: &[u8]) -> String {
        let mut out = String::new();
        for c in String::from_utf8_lossy(bytes).chars() {
            if out.chars().count() >= self.limits.max_line {
                out.push('…');
                break;
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out
    }

    fn push(&mut self, dir: Dir, text: String) {
        if self.lines.len() >= self.limits.max_lines {
            self.dropped += 1;
            return;
        }
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.lines.push(Line { ms, dir, text });
    }
}

/// A dot-terminated body starts right after a line's CRLF.
fn dot_body_start() -> Body {
    Body {
        tail: [0, 0, b'\r', b'\n'],
        ..Body::default()
    }
}

/// The first `keep` words, and the mask if there were more.
fn keep_words(words: &[&str], keep: usize) -> String {
    let mut out = words[..words.len().min(keep)].join(" ");
    if words.len() > keep {
        out.push(' ');
        out.push_str(MASK);
    }
    out
}

/// The length of the IMAP literal a line ends with: `{12}`, `{12+}`, `~{12}`.
fn literal_len(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    let digits = digits.strip_suffix(b"-").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The Message-ID in a message's header (the first bytes of the message), as
/// `<local@domain>`; folded and in any case.
pub fn message_id(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None; // end of the header
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim_end().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.to_owned();
        // A folded value continues on lines that start with white space.
        for more in lines.by_ref() {
            if more.starts_with([' ', '\t']) {
                value.push_str(more);
            } else {
                break;
            }
        }
        let start = value.find('<')?;
        let end = start + value[start..].find('>')?;
        let id = &value[start..=end];
        return (id.len() > 2 && !id.contains(char::is_whitespace)).then(|| id.to_owned());
    }
    None
}

#[cfg(test)]
mod tests;
