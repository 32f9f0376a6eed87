//! SMTP replies: `Reply`, enhanced status codes (RFC 3463, RFC 2034), rendering
//! (RFC 5321 §4.2) and the client-side incremental `ReplyParser`.

use std::fmt;

/// Why a reply line was refused (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line does not start with a 3-digit code")]
    BadCode,
    #[error("reply code must be 2xx-5xx")]
    CodeOutOfRange,
    #[error("bad separator after the reply code")]
    BadSeparator,
    #[error("lines of a multiline reply carry different codes")]
    CodeMismatch,
    #[error("too many lines in a multiline reply")]
    TooManyLines,
    #[error("invalid enhanced status code")]
    BadEnhancedCode,
}

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses `x.y.z`: class 2, 4 or 5; subject and detail 1 to 3 digits (RFC 3463 §2).
    pub fn parse(s: &str) -> Result<EnhancedCode, ReplyError> {
        let mut it = s.split('.');
        let (Some(c), Some(sub), Some(det), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(ReplyError::BadEnhancedCode);
        };
        let num = |p: &str| -> Result<u16, ReplyError> {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReplyError::BadEnhancedCode);
            }
            p.parse().map_err(|_| ReplyError::BadEnhancedCode)
        };
        let class = match c {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return Err(ReplyError::BadEnhancedCode),
        };
        Ok(EnhancedCode::new(class, num(sub)?, num(det)?))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl std::str::FromStr for EnhancedCode {
    type Err = ReplyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnhancedCode::parse(s)
    }
}

/// What [`Reply::new`] and [`Reply::multi`] take as the enhanced code:
/// `None`, `Some(EnhancedCode)`, an `EnhancedCode`, or a `"5.1.1"` string
/// (an invalid string gives no enhanced code).
pub trait IntoEnhancedCode {
    fn into_enhanced_code(self) -> Option<EnhancedCode>;
}

impl IntoEnhancedCode for Option<EnhancedCode> {
    fn into_enhanced_code(self) -> Option<EnhancedCode> {
        self
    }
}

impl IntoEnhancedCode for EnhancedCode {
    fn into_enhanced_code(self) -> Option<EnhancedCode> {
        Some(self)
    }
}

impl IntoEnhancedCode for &str {
    fn into_enhanced_code(self) -> Option<EnhancedCode> {
        EnhancedCode::parse(self).ok()
    }
}

/// One line of reply text; cannot hold CR, LF or other control characters
/// (they are replaced by spaces; TAB is kept, RFC 5321 §4.2 textstring).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReplyText(String);

impl ReplyText {
    /// Sanitises `s` into one line.
    pub fn new(s: &str) -> ReplyText {
        ReplyText(
            s.chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SMTP reply: a code, an optional enhanced code and one or more text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    lines: Vec<ReplyText>,
}

impl Reply {
    /// A reply whose `text` is split into lines at `\n` (a `\r` before it is
    /// dropped), so `Reply::new(r.code(), r.enhanced(), &r.text())` rebuilds `r`.
    /// A code outside 200..=599 (never valid, RFC 5321 §4.2.1) becomes 451.
    pub fn new(code: u16, enhanced: impl IntoEnhancedCode, text: &str) -> Reply {
        Reply::multi(
            code,
            enhanced,
            text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)),
        )
    }

    /// A reply from explicit lines (each sanitised into one line).
    pub fn multi<I, S>(code: u16, enhanced: impl IntoEnhancedCode, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut lines: Vec<ReplyText> = lines
            .into_iter()
            .map(|l| ReplyText::new(l.as_ref()))
            .collect();
        if lines.is_empty() {
            lines.push(ReplyText::default());
        }
        let code = if (200..=599).contains(&code) {
            code
        } else {
            451
        };
        Reply {
            code,
            enhanced: enhanced.into_enhanced_code(),
            lines,
        }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    pub fn lines(&self) -> &[ReplyText] {
        &self.lines
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 2xx: the command completed.
    pub fn is_completion(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: more input expected (354, 334).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text lines joined by `\n` (without enhanced codes).
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(ReplyText::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Wire form: `250-a\r\n250 b\r\n`, the enhanced code on every line (RFC 2034 §4).
    /// A 334 line always keeps its space (RFC 4954 §4: `"334" SP [base64]`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let last = i + 1 == n;
            let mut s = format!("{:03}", self.code);
            let mut rest = String::new();
            if let Some(e) = self.enhanced {
                rest.push_str(&e.to_string());
                if !line.0.is_empty() {
                    rest.push(' ');
                }
            }
            rest.push_str(&line.0);
            if !last {
                s.push('-');
                s.push_str(&rest);
            } else if !rest.is_empty() || self.code == 334 {
                s.push(' ');
                s.push_str(&rest);
            }
            s.push_str("\r\n");
            out.extend_from_slice(s.as_bytes());
        }
        out
    }
}

impl fmt::Display for Reply {
    /// One line for logs: `550 5.1.1 text` (lines joined by a space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        for l in &self.lines {
            if !l.0.is_empty() {
                write!(f, " {}", l.0)?;
            }
        }
        Ok(())
    }
}

/// Client side: assembles reply lines (without CRLF) into replies.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    max_lines: usize,
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    lines: Vec<ReplyText>,
}

impl Default for ReplyParser {
    fn default() -> Self {
        ReplyParser::new(ReplyParser::DEFAULT_MAX_LINES)
    }
}

impl ReplyParser {
    /// Default cap on the lines of one reply.
    pub const DEFAULT_MAX_LINES: usize = 128;

    pub fn new(max_lines: usize) -> Self {
        ReplyParser {
            max_lines,
            code: None,
            enhanced: None,
            lines: Vec::new(),
        }
    }

    fn reset(&mut self) {
        self.code = None;
        self.enhanced = None;
        self.lines.clear();
    }

    /// Feeds one line; returns the reply once its last line (`xyz text` or bare
    /// `xyz`) arrives. After an error the parser starts afresh.
    pub fn feed(&mut self, line: &[u8]) -> Option<Result<Reply, ReplyError>> {
        let r = self.feed_inner(line);
        if r.is_some() {
            self.reset();
        }
        r
    }

    fn feed_inner(&mut self, line: &[u8]) -> Option<Result<Reply, ReplyError>> {
        let digits = match line.get(..3) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => d,
            _ => return Some(Err(ReplyError::BadCode)),
        };
        let code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        // RFC 5321 §4.2.1: the first digit is 2 to 5.
        if !(200..=599).contains(&code) {
            return Some(Err(ReplyError::CodeOutOfRange));
        }
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Some(Err(ReplyError::BadSeparator)),
        };
        // RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
        if self.code.is_some_and(|c| c != code) {
            return Some(Err(ReplyError::CodeMismatch));
        }
        self.code = Some(code);
        let raw = line.get(4..).unwrap_or_default();
        let text = String::from_utf8_lossy(raw);
        let mut text: &str = &text;
        let owned;
        let (word, rest) = match text.find(' ') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        if let Ok(e) = EnhancedCode::parse(word)
            && u16::from(e.class) == code / 100
        {
            if self.enhanced.is_none() && self.lines.is_empty() {
                self.enhanced = Some(e);
            }
            owned = rest.to_owned();
            text = &owned;
        }
        if self.lines.len() >= self.max_lines {
            return Some(Err(ReplyError::TooManyLines));
        }
        self.lines.push(ReplyText::new(text));
        if !last {
            return None;
        }
        Some(Ok(Reply {
            code,
            enhanced: self.enhanced,
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        for line in bytes.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(r) = p.feed(line) {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn renders() {
        let r = Reply::new(250, Some(EnhancedCode::new(2, 0, 0)), "OK");
        assert_eq!(r.to_bytes(), b"250 2.0.0 OK\r\n");
        let r = Reply::multi(250, None, ["mail.paris.test", "PIPELINING", "SIZE 10"]);
        assert_eq!(
            r.to_bytes(),
            b"250-mail.paris.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        let r = Reply::new(550, EnhancedCode::parse("5.1.1").ok(), "no\r\nsuch user");
        assert_eq!(r.to_bytes(), b"550-5.1.1 no\r\n550 5.1.1 such user\r\n");
        assert_eq!(r.text(), "no\nsuch user");
        assert_eq!(Reply::new(250, None, "").to_bytes(), b"250\r\n");
        assert_eq!(Reply::new(334, None, "").to_bytes(), b"334 \r\n");
        assert_eq!(Reply::new(999, None, "x").code(), 451);
        assert_eq!(r.to_string(), "550 5.1.1 no such user");
        assert_eq!(Reply::new(550, "5.1.1", "no\nsuch user"), r);
        assert_eq!(
            Reply::new(550, EnhancedCode::new(5, 1, 1), "no\nsuch user"),
            r
        );
    }

    #[test]
    fn text_cannot_inject_lines() {
        let r = Reply::multi(250, None, ["a\r\n250 fake", "b\rc"]);
        assert_eq!(r.to_bytes(), b"250-a  250 fake\r\n250 b c\r\n");
    }

    #[test]
    fn classes() {
        assert!(Reply::new(354, None, "go").is_positive());
        assert!(Reply::new(354, None, "go").is_intermediate());
        assert!(Reply::new(421, None, "x").is_transient());
        assert!(Reply::new(554, None, "x").is_permanent());
    }

    #[test]
    fn parses_rfc5321_appendix_d_replies() {
        let got = parse_all(
            b"220 foo.com Simple Mail Transfer Service Ready\r\n\
              250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\n\
              250 OK\r\n550 No such user here\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n\
              221 foo.com Service closing transmission channel\r\n",
        );
        let got: Vec<Reply> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 6);
        assert_eq!(got[1].lines().len(), 5);
        assert_eq!(got[1].lines()[4].as_str(), "HELP");
        assert_eq!(got[3].code(), 550);
        assert_eq!(got[3].enhanced(), None);
    }

    #[test]
    fn parses_enhanced_codes() {
        let got = parse_all(
            b"550-5.1.1 no\r\n550 5.1.1 such user\r\n250 2.0.0\r\n451 5.0.0 class mismatch\r\n",
        );
        assert_eq!(
            got[0],
            Ok(Reply::new(
                550,
                EnhancedCode::parse("5.1.1").ok(),
                "no\nsuch user"
            ))
        );
        assert_eq!(
            got[1],
            Ok(Reply::new(250, Some(EnhancedCode::new(2, 0, 0)), ""))
        );
        assert_eq!(got[2].as_ref().unwrap().enhanced(), None);
        assert_eq!(got[2].as_ref().unwrap().text(), "5.0.0 class mismatch");
    }

    #[test]
    fn parse_errors() {
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"25"), Some(Err(ReplyError::BadCode)));
        assert_eq!(p.feed(b"150 x"), Some(Err(ReplyError::CodeOutOfRange)));
        assert_eq!(p.feed(b"250x"), Some(Err(ReplyError::BadSeparator)));
        assert_eq!(p.feed(b"250-a"), None);
        assert_eq!(p.feed(b"251 b"), Some(Err(ReplyError::CodeMismatch)));
        assert_eq!(p.feed(b"250"), Some(Ok(Reply::new(250, None, ""))));
        let mut p = ReplyParser::new(2);
        assert_eq!(p.feed(b"250-a"), None);
        assert_eq!(p.feed(b"250-a"), None);
        assert_eq!(p.feed(b"250-a"), Some(Err(ReplyError::TooManyLines)));
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        (
            200u16..600,
            proptest::option::of((
                prop_oneof![Just(2u8), Just(4), Just(5)],
                0u16..1000,
                0u16..1000,
            )),
            proptest::collection::vec("[a-zA-Z][a-zA-Z0-9 ]{0,20}", 1..5),
        )
            .prop_map(|(code, e, lines)| {
                let e = e.map(|(_, s, d)| EnhancedCode::new((code / 100) as u8, s, d));
                let e = if (300..400).contains(&code) { None } else { e };
                Reply::multi(code, e, lines)
            })
    }

    proptest! {
        #[test]
        fn reply_round_trips(r in arb_reply()) {
            let got = parse_all(&r.to_bytes());
            prop_assert_eq!(got, vec![Ok(r)]);
        }

        #[test]
        fn parser_never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..10)) {
            let mut p = ReplyParser::default();
            for l in lines { let _ = p.feed(&l); }
        }
    }
}
