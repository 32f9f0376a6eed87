//! POP3 responses: `+OK`/`-ERR` status lines (RFC 1939 §3) and multi-line bodies
//! with byte-stuffing (server-side encoder, client-side decoder).
//!
//! The byte-stuffing of RFC 1939 §3 is the dot-stuffing of RFC 5321 §4.5.2, so
//! both directions reuse the SMTP DATA code in [`crate::smtp::data`]: one
//! end-of-data detector for the project.

use std::fmt;

pub use crate::smtp::data::DotStuffer as MultilineEncoder;
use crate::smtp::data::{DataDecoder, DataStep};

/// Why a status line was refused (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("status line starts with neither +OK nor -ERR")]
    BadStatus,
}

/// The status indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Err,
}

/// A status line. The text cannot hold CR, LF or other control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: Status,
    text: String,
}

impl Response {
    /// A status line; control characters in `text` become spaces.
    pub fn new(status: Status, text: &str) -> Response {
        Response {
            status,
            text: text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        }
    }

    pub fn ok(text: &str) -> Response {
        Response::new(Status::Ok, text)
    }

    pub fn err(text: &str) -> Response {
        Response::new(Status::Err, text)
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// `+OK text\r\n` (`+OK\r\n` when the text is empty).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = match self.status {
            Status::Ok => String::from("+OK"),
            Status::Err => String::from("-ERR"),
        };
        if !self.text.is_empty() {
            s.push(' ');
            s.push_str(&self.text);
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// Parses a status line (without CRLF). The indicator is matched
    /// case-insensitively, to be lenient with servers.
    pub fn parse(line: &[u8]) -> Result<Response, ResponseError> {
        let (status, rest) = if line.len() >= 3 && line[..3].eq_ignore_ascii_case(b"+OK") {
            (Status::Ok, &line[3..])
        } else if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"-ERR") {
            (Status::Err, &line[4..])
        } else {
            return Err(ResponseError::BadStatus);
        };
        let text = match rest {
            [] => &[][..],
            [b' ', t @ ..] => t,
            _ => return Err(ResponseError::BadStatus),
        };
        Ok(Response::new(status, &String::from_utf8_lossy(text)))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.status {
            Status::Ok => "+OK",
            Status::Err => "-ERR",
        };
        if self.text.is_empty() {
            f.write_str(s)
        } else {
            write!(f, "{s} {}", self.text)
        }
    }
}

/// A whole multi-line body (RFC 1939 §3): bare LF/CR normalised to CRLF,
/// leading dots doubled, `.` CRLF appended. The status line is sent separately.
pub fn multiline(body: &[u8]) -> Vec<u8> {
    crate::smtp::data::dot_stuff(body)
}

/// A multi-line body from text lines (CAPA, LIST, UIDL listings).
pub fn multiline_lines<I, S>(lines: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut enc = MultilineEncoder::new();
    let mut out = Vec::new();
    for l in lines {
        // a line cannot smuggle a line break
        let l: String = l
            .as_ref()
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        out.extend(enc.encode(l.as_bytes()));
        out.extend(enc.encode(b"\r\n"));
    }
    out.extend(enc.finish());
    out
}

/// Client side: un-stuffs a multi-line body and finds its end (`CRLF.CRLF`,
/// the body start counting as after a CRLF). `max_size` caps the bytes kept.
/// Bare CR/LF from a server do not end the body; they are reported as
/// [`DataEnd::BareLineEnding`](crate::smtp::data::DataEnd) at the end.
#[derive(Debug, Clone)]
pub struct MultilineDecoder(DataDecoder);

impl MultilineDecoder {
    pub fn new(max_size: u64) -> Self {
        MultilineDecoder(DataDecoder::new(max_size))
    }

    /// See [`DataDecoder::decode`]; bytes after the end stay unconsumed.
    pub fn decode(&mut self, input: &[u8]) -> DataStep {
        self.0.decode(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::data::DataEnd;
    use proptest::prelude::*;

    #[test]
    fn status_lines() {
        assert_eq!(Response::ok("2 320").to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(Response::err("").to_bytes(), b"-ERR\r\n");
        assert_eq!(Response::ok("a\r\n+OK b").to_bytes(), b"+OK a  +OK b\r\n");
        let r =
            Response::parse(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>").unwrap();
        assert!(r.is_ok());
        assert_eq!(
            r.text(),
            "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
        );
        let r = Response::parse(b"-ERR no such message, only 2 messages in maildrop").unwrap();
        assert_eq!(r.status(), Status::Err);
        assert_eq!(Response::parse(b"+OK").unwrap(), Response::ok(""));
        assert_eq!(Response::parse(b"-ERR").unwrap(), Response::err(""));
        for bad in [&b""[..], b"+O", b"OK", b"+OKAY", b"-ERROR", b"+ go on"] {
            assert_eq!(
                Response::parse(bad),
                Err(ResponseError::BadStatus),
                "{bad:?}"
            );
        }
        assert_eq!(Response::ok("x").to_string(), "+OK x");
    }

    #[test]
    fn rfc1939_multiline() {
        // RFC 1939 §5 LIST example
        assert_eq!(
            multiline_lines(["1 120", "2 200"]),
            b"1 120\r\n2 200\r\n.\r\n"
        );
        assert_eq!(multiline_lines::<_, &str>([]), b".\r\n");
        assert_eq!(
            multiline(b".hidden\n..\nend"),
            b"..hidden\r\n...\r\nend\r\n.\r\n"
        );
        let mut d = MultilineDecoder::new(u64::MAX);
        let wire = b"..hidden\r\n...\r\nend\r\n.\r\n+OK next";
        let step = d.decode(wire);
        assert_eq!(step.out, b".hidden\r\n..\r\nend\r\n");
        assert_eq!(step.end, Some(DataEnd::Complete));
        assert_eq!(&wire[step.consumed..], b"+OK next");
    }

    proptest! {
        #[test]
        fn multiline_round_trips(lines in proptest::collection::vec("[ -~]{0,20}", 0..10)) {
            let wire = multiline_lines(&lines);
            let step = MultilineDecoder::new(u64::MAX).decode(&wire);
            prop_assert_eq!(step.end, Some(DataEnd::Complete));
            prop_assert_eq!(step.consumed, wire.len());
            let want: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
            prop_assert_eq!(step.out, want.into_bytes());
        }

        #[test]
        fn status_round_trips(ok in any::<bool>(), text in "[ -~]{0,40}") {
            let r = if ok { Response::ok(&text) } else { Response::err(&text) };
            let bytes = r.to_bytes();
            let parsed = Response::parse(&bytes[..bytes.len() - 2]).unwrap();
            prop_assert_eq!(parsed, r);
        }
    }
}
