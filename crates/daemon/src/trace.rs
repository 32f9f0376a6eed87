//! Trace fields: the `Received:` header each hop adds (RFC 5321 §4.4, RFC 5322
//! §3.6.7) and RFC 5322 dates. One format for every agent, so `facteur-mua trace`
//! can read the path back.

use std::net::IpAddr;

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An RFC 5322 date-time, e.g. `Mon, 23 Nov 2026 17:36:42 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    mail_builder::headers::date::Date::new(unix).to_rfc822()
}

/// One hop of the path, as it goes into a `Received:` header.
#[derive(Debug, Clone)]
pub struct Hop<'a> {
    /// The name the previous hop gave (EHLO), or its agent name for gRPC.
    pub from_helo: &'a str,
    /// The previous hop's address.
    pub from_ip: Option<IpAddr>,
    /// This hop's host name, e.g. `mail.paris.test`.
    pub by: &'a str,
    /// This agent, e.g. `facteur-mta`: goes in a comment after `by`.
    pub agent: &'a str,
    /// `ESMTPSA`, `ESMTPS`, `LMTP`, `gRPC`, ...
    pub with: &'a str,
    /// The queue id here.
    pub id: &'a str,
    /// The recipient, when there is exactly one.
    pub for_rcpt: Option<&'a str>,
}

impl Hop<'_> {
    /// The whole header field, folded, ending in CRLF.
    pub fn received(&self, unix: i64) -> String {
        let from_ip = self
            .from_ip
            .map(|ip| match ip {
                IpAddr::V4(v4) => format!(" ([{v4}])"),
                IpAddr::V6(v6) => format!(" ([IPv6:{v6}])"),
            })
            .unwrap_or_default();
        let helo: String = self
            .from_helo
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '(' && *c != ')' && *c != ';')
            .take(255)
            .collect();
        let helo = if helo.is_empty() {
            "unknown".to_owned()
        } else {
            helo
        };
        let mut out = format!(
            "Received: from {helo}{from_ip}\r\n\tby {} ({}) with {} id {}",
            self.by, self.agent, self.with, self.id
        );
        if let Some(rcpt) = self.for_rcpt {
            out.push_str(&format!("\r\n\tfor <{rcpt}>"));
        }
        out.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(unix)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header_names_both_ends_and_is_folded() {
        let hop = Hop {
            from_helo: "client.example",
            from_ip: Some("127.0.0.9".parse().unwrap()),
            by: "mail.paris.test",
            agent: "facteur-msa",
            with: "ESMTPSA",
            id: "Q1",
            for_rcpt: Some("andre@lyon.test"),
        };
        let h = hop.received(0);
        assert_eq!(
            h,
            "Received: from client.example ([127.0.0.9])\r\n\tby mail.paris.test (facteur-msa) \
             with ESMTPSA id Q1\r\n\tfor <andre@lyon.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}

/// Counts the `Received:` fields of a message's header as it streams past, for
/// mail-loop detection (RFC 5321 §6.3: a message that has crossed too many hops
/// is refused), and keeps the first `Message-ID:` for the logs. Stops looking at
/// the blank line that ends the header; bounded memory whatever the input.
#[derive(Debug, Clone)]
pub struct HopCounter {
    count: usize,
    /// The first `Message-ID:` field's value, unfolded (at most `MAX_ID` bytes).
    message_id: Vec<u8>,
    /// Inside that field (its first line or a continuation line).
    in_message_id: bool,
    seen_message_id: bool,
    /// Bytes of the current line's start kept to match the field name.
    prefix: Vec<u8>,
    in_header: bool,
    at_line_start: bool,
}

impl Default for HopCounter {
    fn default() -> Self {
        Self {
            count: 0,
            message_id: Vec::new(),
            in_message_id: false,
            seen_message_id: false,
            prefix: Vec::new(),
            in_header: true,
            at_line_start: true,
        }
    }
}

impl HopCounter {
    const FIELD: &'static [u8] = b"received:";
    const MESSAGE_ID: &'static [u8] = b"message-id:";
    /// A line's limit (RFC 5322 §2.1.1): a longer id is cut there.
    const MAX_ID: usize = 998;

    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes of the message.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if !self.in_header {
                return;
            }
            if self.at_line_start {
                self.prefix.clear();
                self.at_line_start = false;
                if b != b' ' && b != b'\t' {
                    // Not a continuation line: the Message-ID field is over.
                    self.in_message_id = false;
                }
                if b == b'\r' || b == b'\n' {
                    // An empty line: the header is over.
                    self.in_header = false;
                    return;
                }
            }
            if b == b'\n' {
                self.at_line_start = true;
                continue;
            }
            if self.in_message_id {
                if b != b'\r' && self.message_id.len() < Self::MAX_ID {
                    self.message_id.push(b);
                }
                continue;
            }
            if self.prefix.len() < Self::MESSAGE_ID.len() {
                self.prefix.push(b.to_ascii_lowercase());
                if self.prefix == Self::FIELD {
                    self.count += 1;
                } else if self.prefix == Self::MESSAGE_ID && !self.seen_message_id {
                    self.seen_message_id = true;
                    self.in_message_id = true;
                }
            }
        }
    }

    /// The first `Message-ID:` field's value, trimmed and unfolded, once its
    /// line is complete; `None` while there is none (yet).
    pub fn message_id(&self) -> Option<String> {
        if !self.seen_message_id || self.in_message_id && self.in_header && !self.at_line_start {
            return None;
        }
        let id = String::from_utf8_lossy(&self.message_id);
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// `Received:` fields seen so far.
    pub fn hops(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod hop_tests {
    use super::HopCounter;

    #[test]
    fn counts_received_fields_in_the_header_only_however_split() {
        let msg = b"Received: a\r\n\tfolded\r\nRECEIVED: b\r\nSubject: Received: no\r\n\r\nReceived: body\r\n";
        for split in 0..msg.len() {
            let mut c = HopCounter::new();
            c.feed(&msg[..split]);
            c.feed(&msg[split..]);
            assert_eq!(c.hops(), 2, "split at {split}");
        }
    }

    #[test]
    fn keeps_the_first_message_id_of_the_header_however_split() {
        let msg = b"Received: a\r\nmessage-ID:\r\n <1@x>\r\nSubject: s\r\nMessage-ID: <2@x>\r\n\r\nMessage-ID: <3@x>\r\n";
        for split in 0..msg.len() {
            let mut c = HopCounter::new();
            c.feed(&msg[..split]);
            c.feed(&msg[split..]);
            assert_eq!(c.message_id().as_deref(), Some("<1@x>"), "split at {split}");
            assert_eq!(c.hops(), 1);
        }
        let mut c = HopCounter::new();
        c.feed(b"Subject: none\r\n\r\nMessage-ID: <body@x>\r\n");
        assert_eq!(c.message_id(), None);
        let mut c = HopCounter::new();
        c.feed(b"Message-ID: <half");
        assert_eq!(c.message_id(), None, "not complete yet");
    }

    #[test]
    fn edge_cases_blank_first_line_and_bare_lf_endings() {
        let mut c = HopCounter::new();
        c.feed(b"\r\nReceived: in the body\r\n");
        assert_eq!(
            c.hops(),
            0,
            "a message starting with a blank line has no header"
        );
        let mut c = HopCounter::new();
        c.feed(b"Received: a\nReceived: b\n\nReceived: body\n");
        assert_eq!(c.hops(), 2, "LF-only line ends");
        let mut c = HopCounter::new();
        c.feed(b"Receive: almost\r\nX-Received: other\r\n\r\n");
        assert_eq!(c.hops(), 0, "only the exact field name counts");
    }
}
