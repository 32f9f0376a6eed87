//! Submission fix-ups of the header block (RFC 6409 §8): add `Message-ID:` and
//! `Date:` when missing, remove `Bcc:`, drop a client's `Return-Path:` (only the
//! final delivery writes it, RFC 5321 §4.4; the MDA does), and put this hop's
//! `Received:` on top. A client's own `Received:` lines are kept: they are its
//! trace, shown to readers, and the MTA only counts them (loops), never routes
//! or trusts by them. The header block is also kept for the `From:` check.
//!
//! Hand-written rather than mail-parser: we must rewrite the raw header bytes and
//! keep every other byte as the client sent it, which a parser does not promise.

/// Accumulates the header block, then yields it rewritten; the body passes through.
pub struct HeaderFixer {
    head: Vec<u8>,
    done: bool,
    max: usize,
    /// The addresses of the `From:` field, once the header block is complete.
    from: Option<Vec<String>>,
}

/// What the fixer needs to write new fields.
pub struct Fixes<'a> {
    pub received: &'a str,
    pub message_id: &'a str,
    pub date: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("header block larger than {0} bytes")]
pub struct HeaderTooBig(pub usize);

impl HeaderFixer {
    pub fn new(max: usize) -> Self {
        Self {
            head: Vec::new(),
            done: false,
            max,
            from: None,
        }
    }

    /// The `From:` addresses, once the header block has been read (empty when
    /// there is no `From:`).
    pub fn from_addresses(&self) -> Option<&[String]> {
        self.from.as_deref()
    }

    /// Feed message bytes; returns bytes ready to send on.
    pub fn push(&mut self, chunk: &[u8], fixes: &Fixes<'_>) -> Result<Vec<u8>, HeaderTooBig> {
        if self.done {
            return Ok(chunk.to_vec());
        }
        self.head.extend_from_slice(chunk);
        let end = if self.head.starts_with(b"\r\n") {
            Some(0)
        } else {
            self.head
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 2)
        };
        match end {
            Some(end) => {
                self.done = true;
                let head = std::mem::take(&mut self.head);
                self.from = Some(from_addresses(&head[..end]));
                let mut out = rewrite(&head[..end], fixes);
                out.extend_from_slice(&head[end..]);
                Ok(out)
            }
            None if self.head.len() > self.max => Err(HeaderTooBig(self.max)),
            None => Ok(Vec::new()),
        }
    }

    /// End of message: a message with no body at all is all header.
    pub fn finish(&mut self, fixes: &Fixes<'_>) -> Vec<u8> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut head = std::mem::take(&mut self.head);
        if !head.is_empty() && !head.ends_with(b"\r\n") {
            head.extend_from_slice(b"\r\n");
        }
        rewrite(&head, fixes)
    }
}

/// The fields of a header block, each with its continuation lines.
fn fields(head: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        if head[i] == b'\n' {
            let next = head.get(i + 1).copied();
            // RFC 5322 §2.2.3: a line starting with WSP continues the field.
            if !matches!(next, Some(b' ' | b'\t')) {
                out.push(&head[start..=i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    if start < head.len() {
        out.push(&head[start..]);
    }
    out
}

fn name_of(field: &[u8]) -> &[u8] {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    field[..colon].trim_ascii()
}

/// Every address of the `From:` fields (mail-parser reads the groups, comments
/// and encodings); an unparsable `From:` yields its raw text, which matches no
/// user.
fn from_addresses(head: &[u8]) -> Vec<String> {
    let mut block = head.to_vec();
    block.extend_from_slice(b"\r\n");
    let Some(message) = mail_parser::MessageParser::default().parse_headers(&block) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for h in message.headers() {
        if !h.name().eq_ignore_ascii_case("from") {
            continue;
        }
        match h.value().as_address() {
            Some(a) => out.extend(a.iter().map(|m| m.address().unwrap_or_default().to_owned())),
            None => out.push(
                String::from_utf8_lossy(&block[h.offset_start() as usize..h.offset_end() as usize])
                    .trim()
                    .to_owned(),
            ),
        }
    }
    out
}

fn rewrite(head: &[u8], fixes: &Fixes<'_>) -> Vec<u8> {
    let fields = fields(head);
    let has = |name: &str| {
        fields
            .iter()
            .any(|f| name_of(f).eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut out = Vec::with_capacity(head.len() + 256);
    out.extend_from_slice(fixes.received.as_bytes());
    for f in &fields {
        // RFC 5322 §3.6.3: Bcc recipients must not be shown to the others.
        // RFC 5321 §4.4: Return-Path is the final delivery's to write.
        let name = name_of(f);
        if name.eq_ignore_ascii_case(b"bcc") || name.eq_ignore_ascii_case(b"return-path") {
            continue;
        }
        out.extend_from_slice(f);
    }
    if !has("message-id") {
        out.extend_from_slice(format!("Message-ID: {}\r\n", fixes.message_id).as_bytes());
    }
    if !has("date") {
        out.extend_from_slice(format!("Date: {}\r\n", fixes.date).as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXES: Fixes<'static> = Fixes {
        received: "Received: x\r\n",
        message_id: "<1@h>",
        date: "D",
    };

    fn run(input: &[u8], split: usize) -> Vec<u8> {
        let mut f = HeaderFixer::new(1 << 20);
        let mut out = f.push(&input[..split], &FIXES).unwrap();
        out.extend(f.push(&input[split..], &FIXES).unwrap());
        out.extend(f.finish(&FIXES));
        out
    }

    #[test]
    fn adds_missing_fields_strips_bcc_and_keeps_the_body_intact() {
        let input =
            b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nSubject: s\r\n\r\nBcc: body line\r\n";
        for split in 0..input.len() {
            let out = run(input, split);
            assert_eq!(
                out,
                b"Received: x\r\nFrom: a@x\r\nSubject: s\r\nMessage-ID: <1@h>\r\nDate: D\r\n\r\nBcc: body line\r\n",
                "split at {split}"
            );
        }
    }

    #[test]
    fn drops_return_path_keeps_received_and_reads_from() {
        let input = b"Return-Path: <evil@x>\r\nReceived: from trusted.example\r\nFrom: \"P\" <p@x>, q@y\r\nSubject: s\r\n\r\nbody\r\n";
        let mut f = HeaderFixer::new(1 << 16);
        let out = f.push(input, &FIXES).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Return-Path"), "{text}");
        assert!(
            text.contains("Received: from trusted.example\r\n"),
            "{text}"
        );
        assert_eq!(
            f.from_addresses(),
            Some(&["p@x".to_owned(), "q@y".to_owned()][..])
        );
    }

    #[test]
    fn keeps_existing_message_id_and_date() {
        let input = b"Message-ID: <m@c>\r\ndate: Mon\r\n\r\nbody\r\n";
        let out = run(input, 3);
        assert_eq!(
            out,
            b"Received: x\r\nMessage-ID: <m@c>\r\ndate: Mon\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn a_huge_header_is_refused() {
        let mut f = HeaderFixer::new(10);
        assert!(f.push(b"Subject: aaaaaaaaaaaaaaaaaaaaa", &FIXES).is_err());
    }
}
