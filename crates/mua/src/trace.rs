//! `trace`: the path a message took, hop by hop, oldest first, read from its
//! Received headers (each hop prepends one, so the top one is the newest).

use anyhow::Context;
use mail_parser::MessageParser;

use crate::received;

/// The numbered hops, then the Return-Path and final mailbox when known.
pub fn render(raw: &[u8]) -> anyhow::Result<String> {
    let message = MessageParser::default()
        .parse_headers(raw)
        .context("not a mail message")?;
    let mut hops: Vec<received::Received> = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Received"))
        .map(|(_, value)| received::parse(value))
        .collect();
    hops.reverse();
    let mut out = String::new();
    if hops.is_empty() {
        out.push_str("no Received headers: the message has not travelled through any server\n");
    }
    for (i, hop) in hops.iter().enumerate() {
        out.push_str(&format!("{}. {}\n", i + 1, hop.describe()));
    }
    let return_path = message.return_address().map(|r| {
        r.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    });
    let mailbox = message
        .header_raw("Delivered-To")
        .map(|d| d.trim().to_owned())
        .or_else(|| hops.last().and_then(|h| h.for_rcpt.clone()));
    match (return_path, mailbox) {
        (Some(rp), Some(mb)) => out.push_str(&format!("Return-Path: <{rp}>, delivered to {mb}\n")),
        (Some(rp), None) => out.push_str(&format!("Return-Path: <{rp}>\n")),
        (None, Some(mb)) => out.push_str(&format!("delivered to {mb}\n")),
        (None, None) => {}
    }
    Ok(out)
}

/// The agents' records of this message (by its Message-ID) in `dir`, oldest
/// first, each with its dialogue: what happened at each hop the Received lines name.
pub fn transcripts(raw: &[u8], dir: &std::path::Path) -> anyhow::Result<String> {
    let Some(id) = facteur_protocol::transcript::message_id(raw) else {
        return Ok("no Message-ID: the agents' records cannot be matched\n".to_owned());
    };
    let mut records: Vec<_> = crate::why::read_dir(dir)?
        .into_iter()
        .filter(|r| r.message_ids.contains(&id))
        .collect();
    records.sort_by_key(|r| r.start_ms);
    let mut out = format!(
        "\n{} transcript record(s) of {id} in {}:\n",
        records.len(),
        dir.display()
    );
    let t0 = records.first().map_or(0, |r| r.start_ms);
    for r in &records {
        out.push_str(&format!(
            "\n[{} on {}: {} with {}, +{} ms]\n",
            r.agent,
            r.host,
            r.kind,
            r.peer,
            r.start_ms.saturating_sub(t0)
        ));
        for l in &r.lines {
            out.push_str(&format!("  {} {}\n", l.dir.prefix(), l.text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_come_out_oldest_first() {
        let raw = b"Return-Path: <pierre@paris.test>\r\n\
Received: from mail.paris.test ([127.0.0.2])\r\n\tby mail.lyon.test (facteur-mta) with ESMTPS id L1\r\n\tfor <andre@lyon.test>;\r\n\tThu, 1 Jan 1970 00:00:02 +0000\r\n\
Received: from facteur-msa\r\n\tby mail.paris.test (facteur-mta) with gRPC id P1;\r\n\tThu, 1 Jan 1970 00:00:01 +0000\r\n\
Received: from client.example ([127.0.0.9])\r\n\tby mail.paris.test (facteur-msa) with ESMTPSA id M1\r\n\tfor <andre@lyon.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n\
Subject: x\r\n\r\nbody\r\n";
        let out = render(raw).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[0].starts_with(
                "1. client.example [127.0.0.9] → mail.paris.test (facteur-msa) with ESMTPSA id M1"
            ),
            "{out}"
        );
        assert!(
            lines[1].starts_with("2. facteur-msa → mail.paris.test (facteur-mta) with gRPC id P1"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("3. mail.paris.test [127.0.0.2] → mail.lyon.test (facteur-mta)"),
            "{out}"
        );
        assert_eq!(
            lines[3],
            "Return-Path: <pierre@paris.test>, delivered to andre@lyon.test"
        );
    }

    #[test]
    fn a_message_that_never_travelled() {
        let out = render(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        assert!(out.starts_with("no Received headers"), "{out}");
    }
}
