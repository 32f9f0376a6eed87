//! `show`: a readable view of a message parsed with mail-parser — the main
//! headers, the text body (text/plain preferred, else HTML crudely stripped) and
//! the list of attachments.

use anyhow::Context;
use mail_parser::{Address, MessageParser, MimeHeaders};

/// The view of one message.
pub fn render(raw: &[u8]) -> anyhow::Result<String> {
    let message = MessageParser::default()
        .parse(raw)
        .context("not a mail message")?;
    let mut out = String::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{:<11} {v}\n", format!("{name}:")));
        }
    };
    field("From", message.from().map(addresses));
    field("To", message.to().map(addresses));
    field("Cc", message.cc().map(addresses));
    field(
        "Date",
        message
            .date()
            .map(|d| d.to_rfc822())
            .or_else(|| message.header_raw("Date").map(|d| d.trim().to_owned())),
    );
    field("Subject", message.subject().map(str::to_owned));
    field(
        "Message-ID",
        message.message_id().map(|id| format!("<{id}>")),
    );
    out.push('\n');
    let plain = message
        .text_bodies()
        .find(|p| !p.is_text_html())
        .and_then(|p| p.text_contents().map(str::to_owned));
    let body = plain.or_else(|| {
        message
            .html_bodies()
            .next()
            .and_then(|p| p.text_contents())
            .map(strip_html)
    });
    match body {
        Some(b) => {
            let b = b.replace("\r\n", "\n");
            out.push_str(b.trim_end());
            out.push('\n');
        }
        None => out.push_str("(no text body)\n"),
    }
    let attachments: Vec<String> = message
        .attachments()
        .map(|a| {
            let name = a.attachment_name().unwrap_or("(unnamed)");
            let ctype = a.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                |c| match c.subtype() {
                    Some(sub) => format!("{}/{sub}", c.ctype()),
                    None => c.ctype().to_owned(),
                },
            );
            format!("  - {name} ({ctype}, {} bytes)", a.len())
        })
        .collect();
    if !attachments.is_empty() {
        out.push_str("\nAttachments:\n");
        for a in attachments {
            out.push_str(&a);
            out.push('\n');
        }
    }
    Ok(out)
}

fn addresses(a: &Address<'_>) -> String {
    a.iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// HTML to text, crudely: tags dropped (block ends become line breaks), script and
/// style contents dropped, the common entities decoded, blank lines squeezed.
pub fn strip_html(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = after[1..close].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &after[close + 1..];
        if !tag.starts_with('/') && (name == "script" || name == "style") {
            let end = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&end) {
                Some(i) => rest.get(i..).unwrap_or_default(),
                None => "",
            };
            continue;
        }
        if matches!(
            name.as_str(),
            "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
        ) {
            text.push('\n');
        }
    }
    text.push_str(rest);
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut out = String::new();
    let mut blank = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_has_headers_body_and_attachments() {
        let draft = crate::compose::Draft {
            from: "Pierre <pierre@paris.test>".into(),
            to: vec![
                "andre@lyon.test".into(),
                "Jacques <jacques@paris.test>".into(),
            ],
            cc: vec!["cc@lyon.test".into()],
            subject: Some("Rendez-vous".into()),
            body: "À midi.\nPierre".into(),
            attachments: vec![crate::compose::Attachment {
                name: "plan.pdf".into(),
                content_type: "application/pdf".into(),
                data: vec![1, 2, 3, 4, 5],
            }],
            date: 86_400,
            message_id: "abc@paris.test".into(),
            ..Default::default()
        };
        let raw = crate::compose::compose(&draft).unwrap();
        let view = render(&raw).unwrap();
        for want in [
            "From:       Pierre <pierre@paris.test>\n",
            "To:         andre@lyon.test, Jacques <jacques@paris.test>\n",
            "Cc:         cc@lyon.test\n",
            "Date:       Fri, 2 Jan 1970 00:00:00 +0000\n",
            "Subject:    Rendez-vous\n",
            "Message-ID: <abc@paris.test>\n",
            "\nÀ midi.\nPierre\n",
            "Attachments:\n  - plan.pdf (application/pdf, 5 bytes)\n",
        ] {
            assert!(view.contains(want), "{want:?} missing from:\n{view}");
        }
    }

    #[test]
    fn html_only_messages_are_stripped() {
        let raw = b"From: a@b.test\r\nSubject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><style>p {color: red}</style></head><body><p>Hello &amp; welcome</p><p>Line<br>two</p>\
<script>alert(1)</script></body></html>\r\n";
        let view = render(raw).unwrap();
        assert!(view.contains("\nHello & welcome\n\nLine\ntwo\n"), "{view}");
        assert!(!view.contains("color"), "{view}");
        assert!(!view.contains("alert"), "{view}");
    }
}
