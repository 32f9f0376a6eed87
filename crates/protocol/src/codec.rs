//! tokio-util `Decoder`/`Encoder` adapters for the client sides: SMTP replies and
//! POP3 responses (feature `codec`). Thin wrappers over the sans-IO types.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::pop3::{self, MultilineDecoder, Response, ResponseError};
use crate::smtp::data::DataEnd;
use crate::smtp::{self, Reply, ReplyError, ReplyParser};

/// Errors of the codecs.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer sent a line over the limit; the connection should be dropped.
    #[error("line too long")]
    LineTooLong,
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error(transparent)]
    Response(#[from] ResponseError),
}

/// Splits one line (without its LF / CRLF) off `src`, under `max` octets
/// including the line ending.
fn take_line(src: &mut BytesMut, max: usize) -> Result<Option<Vec<u8>>, CodecError> {
    match src.iter().position(|&b| b == b'\n') {
        Some(i) if i + 1 > max => Err(CodecError::LineTooLong),
        Some(i) => {
            let mut line = src.split_to(i + 1).to_vec();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Ok(Some(line))
        }
        None if src.len() > max => Err(CodecError::LineTooLong),
        None => Ok(None),
    }
}

/// SMTP client codec: decodes [`Reply`]s (multi-line assembled), encodes
/// [`smtp::Command`]s and raw bytes (already dot-stuffed DATA, BDAT chunks, SASL lines).
#[derive(Debug, Clone)]
pub struct SmtpReplyCodec {
    max_line: usize,
    parser: ReplyParser,
}

impl SmtpReplyCodec {
    /// `max_line` counts CRLF (RFC 5321 §4.5.3.1.5 says replies fit in 512).
    pub fn new(max_line: usize) -> Self {
        SmtpReplyCodec {
            max_line,
            parser: ReplyParser::default(),
        }
    }
}

impl Default for SmtpReplyCodec {
    fn default() -> Self {
        SmtpReplyCodec::new(2048)
    }
}

impl Decoder for SmtpReplyCodec {
    type Item = Reply;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, CodecError> {
        while let Some(line) = take_line(src, self.max_line)? {
            if let Some(reply) = self.parser.feed(&line) {
                return Ok(Some(reply?));
            }
        }
        Ok(None)
    }
}

impl Encoder<smtp::Command> for SmtpReplyCodec {
    type Error = CodecError;

    fn encode(&mut self, item: smtp::Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item.to_line());
        Ok(())
    }
}

impl Encoder<&[u8]> for SmtpReplyCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(item);
        Ok(())
    }
}

/// What the POP3 client codec yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3Frame {
    /// A `+OK` / `-ERR` status line.
    Status(Response),
    /// A SASL continuation `+ base64` (RFC 5034 §4), text after `+ `.
    Continuation(String),
    /// Un-stuffed bytes of a multi-line body, in order.
    Body(Vec<u8>),
    /// The end of a multi-line body, and how it ended (`TooBig`: bytes past
    /// `max_body` were dropped; `BareLineEnding`: the server sent bare CR/LF).
    BodyEnd(DataEnd),
}

/// POP3 client codec. Encoding a [`pop3::Command`] records whether its `+OK`
/// is followed by a multi-line body ([`pop3::Command::expects_multiline`]), so
/// pipelined commands are matched in order. Status lines that arrive with no
/// command outstanding (the greeting) are single-line.
#[derive(Debug, Clone)]
pub struct Pop3ClientCodec {
    max_line: usize,
    max_body: u64,
    expect: VecDeque<bool>,
    body: Option<MultilineDecoder>,
    end: Option<DataEnd>,
}

impl Pop3ClientCodec {
    pub fn new(max_line: usize, max_body: u64) -> Self {
        Pop3ClientCodec {
            max_line,
            max_body,
            expect: VecDeque::new(),
            body: None,
            end: None,
        }
    }

    /// Marks the next status line as one that opens a multi-line body when
    /// positive (for commands sent without this codec's encoder).
    pub fn expect_multiline(&mut self) {
        self.expect.push_back(true);
    }
}

impl Default for Pop3ClientCodec {
    fn default() -> Self {
        Pop3ClientCodec::new(pop3::MAX_RESPONSE_LINE, u64::MAX)
    }
}

impl Decoder for Pop3ClientCodec {
    type Item = Pop3Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pop3Frame>, CodecError> {
        if let Some(end) = self.end.take() {
            return Ok(Some(Pop3Frame::BodyEnd(end)));
        }
        if let Some(dec) = self.body.as_mut() {
            if src.is_empty() {
                return Ok(None);
            }
            let step = dec.decode(src);
            src.advance(step.consumed);
            if let Some(end) = step.end {
                self.body = None;
                if step.out.is_empty() {
                    return Ok(Some(Pop3Frame::BodyEnd(end)));
                }
                self.end = Some(end);
            }
            if step.out.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Pop3Frame::Body(step.out)));
        }
        let Some(line) = take_line(src, self.max_line)? else {
            return Ok(None);
        };
        if line == b"+" || line.starts_with(b"+ ") {
            let text = String::from_utf8_lossy(line.get(2..).unwrap_or_default()).into_owned();
            return Ok(Some(Pop3Frame::Continuation(text)));
        }
        let resp = Response::parse(&line)?;
        if self.expect.pop_front().unwrap_or(false) && resp.is_ok() {
            self.body = Some(MultilineDecoder::new(self.max_body));
        }
        Ok(Some(Pop3Frame::Status(resp)))
    }
}

impl Encoder<pop3::Command> for Pop3ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, item: pop3::Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        // A SASL exchange has no status line per command; AUTH gets its one
        // status line at the end, like any single-line command.
        self.expect.push_back(item.expects_multiline());
        dst.extend_from_slice(&item.to_line());
        Ok(())
    }
}

impl Encoder<&[u8]> for Pop3ClientCodec {
    type Error = CodecError;

    /// Raw bytes (SASL responses): no status line is expected for them.
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::EnhancedCode;

    #[test]
    fn smtp_replies_across_reads() {
        let mut c = SmtpReplyCodec::default();
        let mut buf =
            BytesMut::from(&b"220 mail.paris.test ESMTP\r\n250-mail.paris.test\r\n250-PIPE"[..]);
        let r = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(r.code(), 220);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"LINING\r\n250 2.0.0 SIZE 10\r\n354 go\r\n");
        let r = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(r.lines().len(), 3);
        assert_eq!(r.lines()[1].as_str(), "PIPELINING");
        assert_eq!(r.enhanced(), None);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().code(), 354);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());

        buf.extend_from_slice(b"550 5.1.1 nope\r\n");
        let r = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(r.enhanced(), Some(EnhancedCode::new(5, 1, 1)));

        let mut c = SmtpReplyCodec::new(16);
        let mut buf = BytesMut::from(&b"250 this line is far too long\r\n"[..]);
        assert!(matches!(c.decode(&mut buf), Err(CodecError::LineTooLong)));
        let mut buf = BytesMut::from(&b"250 this line is far too long"[..]);
        assert!(matches!(c.decode(&mut buf), Err(CodecError::LineTooLong)));
        let mut buf = BytesMut::from(&b"hello\r\n"[..]);
        assert!(matches!(c.decode(&mut buf), Err(CodecError::Reply(_))));
    }

    #[test]
    fn smtp_encodes_commands() {
        let mut c = SmtpReplyCodec::default();
        let mut dst = BytesMut::new();
        c.encode(smtp::Command::Ehlo("x".into()), &mut dst).unwrap();
        c.encode(&b".\r\n"[..], &mut dst).unwrap();
        assert_eq!(&dst[..], b"EHLO x\r\n.\r\n");
    }

    #[test]
    fn pop3_status_and_bodies() {
        let mut c = Pop3ClientCodec::default();
        let mut out = BytesMut::new();
        let mut buf = BytesMut::from(&b"+OK POP3 server ready\r\n"[..]);
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::ok("POP3 server ready")))
        );
        c.encode(pop3::Command::Retr(1), &mut out).unwrap();
        c.encode(pop3::Command::Retr(9), &mut out).unwrap();
        c.encode(pop3::Command::List(None), &mut out).unwrap();
        c.encode(pop3::Command::Quit, &mut out).unwrap();
        assert_eq!(&out[..], b"RETR 1\r\nRETR 9\r\nLIST\r\nQUIT\r\n");
        buf.extend_from_slice(b"+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r");
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::ok("120 octets")))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Body(b"Subject: x\r\n\r\n.dot".to_vec()))
        );
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\n.\r\n-ERR no such message\r\n+OK 1 message\r\n");
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Body(b"\r\n".to_vec()))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::BodyEnd(DataEnd::Complete))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::err("no such message")))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::ok("1 message")))
        );
        buf.extend_from_slice(b".\r\n+OK bye\r\n");
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::BodyEnd(DataEnd::Complete))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::ok("bye")))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn pop3_continuations_and_errors() {
        let mut c = Pop3ClientCodec::default();
        let mut buf = BytesMut::from(&b"+ \r\n+OK\r\n* nope\r\n"[..]);
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Continuation(String::new()))
        );
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Pop3Frame::Status(Response::ok("")))
        );
        assert!(matches!(c.decode(&mut buf), Err(CodecError::Response(_))));
    }
}
