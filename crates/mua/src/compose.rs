//! Composing a message with mail-builder: From, To, Cc, Subject, Date,
//! Message-ID, a text body and attachments. Bcc never goes into the headers; it
//! only adds envelope recipients.

use std::path::Path;

use anyhow::{Context, bail};
use facteur_protocol::address::Mailbox;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;

/// One attachment, read into memory.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

impl Attachment {
    /// Read a file; its type is guessed from the extension.
    pub fn read(path: &Path) -> anyhow::Result<Attachment> {
        let data = std::fs::read(path)
            .with_context(|| format!("reading attachment {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_owned());
        Ok(Attachment {
            content_type: content_type_for(&name).to_owned(),
            name,
            data,
        })
    }
}

/// A message to compose. Addresses are `addr` or `Name <addr>`.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: Option<String>,
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Seconds since the epoch for the Date header.
    pub date: i64,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
}

/// `Name <addr>` → (Some(Name), addr); `addr` or `<addr>` → (None, addr).
pub fn split_mailbox(s: &str) -> (Option<String>, String) {
    let s = s.trim();
    if let (Some(open), true) = (s.rfind('<'), s.ends_with('>')) {
        let name = s[..open].trim().trim_matches('"').trim();
        let addr = s[open + 1..s.len() - 1].trim();
        let name = (!name.is_empty()).then(|| name.to_owned());
        return (name, addr.to_owned());
    }
    (None, s.to_owned())
}

/// The bare address of `addr` / `Name <addr>`, checked as an RFC 5321 mailbox.
pub fn envelope_address(s: &str) -> anyhow::Result<String> {
    let (_, addr) = split_mailbox(s);
    let mailbox = Mailbox::parse(&addr).map_err(|e| anyhow::anyhow!("bad address {s:?}: {e}"))?;
    Ok(mailbox.to_string())
}

fn address(s: &str) -> Address<'static> {
    let (name, addr) = split_mailbox(s);
    Address::new_address(name, addr)
}

fn address_list(list: &[String]) -> Address<'static> {
    Address::new_list(list.iter().map(|s| address(s)).collect())
}

/// A fresh Message-ID in the sender's domain.
pub fn new_message_id(from: &str) -> String {
    let (_, addr) = split_mailbox(from);
    let domain = addr
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
        .to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}.{}@{domain}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

/// The envelope recipients: To, Cc and Bcc, each once, in that order.
pub fn envelope_recipients(draft: &Draft) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in draft.to.iter().chain(&draft.cc).chain(&draft.bcc) {
        let addr = envelope_address(r)?;
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&addr)) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        bail!("no recipients");
    }
    Ok(out)
}

/// The message bytes (CRLF line endings).
pub fn compose(draft: &Draft) -> anyhow::Result<Vec<u8>> {
    let mut builder = MessageBuilder::new()
        .from(address(&draft.from))
        .message_id(draft.message_id.clone())
        .date(draft.date)
        .text_body(draft.body.clone());
    if !draft.to.is_empty() {
        builder = builder.to(address_list(&draft.to));
    }
    if !draft.cc.is_empty() {
        builder = builder.cc(address_list(&draft.cc));
    }
    if let Some(subject) = &draft.subject {
        builder = builder.subject(subject.clone());
    }
    for a in &draft.attachments {
        builder = builder.attachment(a.content_type.clone(), a.name.clone(), a.data.clone());
    }
    builder.write_to_vec().context("composing the message")
}

/// A content type from a file name's extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from: "Pierre <pierre@paris.test>".into(),
            to: vec!["andre@lyon.test".into()],
            cc: vec!["jacques@paris.test".into()],
            bcc: vec!["secret@lyon.test".into(), "andre@lyon.test".into()],
            subject: Some("Bonjour".into()),
            body: "Salut André\n.\nfin".into(),
            attachments: vec![Attachment {
                name: "notes.txt".into(),
                content_type: "text/plain".into(),
                data: b"hello".to_vec(),
            }],
            date: 0,
            message_id: "1.2.3@paris.test".into(),
        }
    }

    #[test]
    fn headers_are_there_and_bcc_is_not() {
        let bytes = compose(&draft()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        for h in [
            "From: \"Pierre\" <pierre@paris.test>",
            "To: <andre@lyon.test>",
            "Cc: <jacques@paris.test>",
            "Subject: Bonjour",
            "Date: Thu, 1 Jan 1970 00:00:00 +0000",
            "Message-ID: <1.2.3@paris.test>",
        ] {
            assert!(head.contains(h), "{h:?} missing from:\n{head}");
        }
        assert!(!text.to_ascii_lowercase().contains("bcc"), "{text}");
        assert!(!text.contains("secret@lyon.test"), "{text}");
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(
            parsed.body_text(0).unwrap().trim_end(),
            "Salut André\n.\nfin"
        );
        let att = parsed.attachments().next().unwrap();
        use mail_parser::MimeHeaders;
        assert_eq!(att.attachment_name(), Some("notes.txt"));
    }

    #[test]
    fn envelope_has_everyone_once() {
        assert_eq!(
            envelope_recipients(&draft()).unwrap(),
            vec!["andre@lyon.test", "jacques@paris.test", "secret@lyon.test"]
        );
        assert!(envelope_address("not an address").is_err());
    }

    #[test]
    fn mailboxes_split() {
        assert_eq!(
            split_mailbox("\"Pierre D\" <pierre@paris.test>"),
            (Some("Pierre D".into()), "pierre@paris.test".into())
        );
        assert_eq!(split_mailbox("<a@b.test>"), (None, "a@b.test".into()));
        assert_eq!(split_mailbox("a@b.test"), (None, "a@b.test".into()));
        assert!(new_message_id("a@b.test").ends_with("@b.test"));
        assert_eq!(content_type_for("x.PDF"), "application/pdf");
    }
}
