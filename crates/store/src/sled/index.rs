//! The header index written at filing (`file`, `append`): reads the head of
//! a blob, decodes FROM/TO/CC/BCC/SUBJECT (RFC 2047 encoded words, through
//! mail-parser) and the `Date:` day, lowercased for SEARCH. Also the header
//! field texts SEARCH needs for `HEADER <name>` and TEXT.

use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser};

use super::records::HeaderIndex;
use crate::blobs::FileBlobs;
use crate::header::header_end;
use crate::mail::{BlobId, StoreError};

/// How much of a blob is read for its header (the header ends at the first
/// empty line; a longer header is cut here).
pub(super) const HEAD_LIMIT: u64 = 64 * 1024;

/// Longest indexed field text, in bytes (cut on a character boundary).
const FIELD_LIMIT: usize = 16 * 1024;

/// The parser SEARCH and the index use: known fields parsed by type, every
/// other field as decoded unstructured text (so `X-Mailer: =?...?=` is
/// decoded too), MIME headers so bodies are decoded.
pub(super) fn parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .with_date_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_comma_separated(HeaderName::Keywords)
        .header_received(HeaderName::Received)
        .default_header_text()
}

/// The header block of a blob: its first [`HEAD_LIMIT`] bytes, cut after the
/// empty line that ends the header.
pub(super) fn read_head(blobs: &FileBlobs, blob: &BlobId) -> Result<Vec<u8>, StoreError> {
    let mut head = blobs.get(blob, Some(0..HEAD_LIMIT))?;
    if let Some(end) = header_end(&head) {
        head.truncate(end);
    }
    Ok(head)
}

/// Builds the index record of a message header.
pub(super) fn index_head(head: &[u8]) -> HeaderIndex {
    let parser = parser();
    let Some(msg) = parser.parse_headers(head) else {
        return HeaderIndex::default();
    };
    let field = |name: HeaderName<'static>| -> Option<String> {
        let texts: Vec<String> = msg
            .headers()
            .iter()
            .filter(|h| h.name == name)
            .map(|h| value_text(h.value()))
            .collect();
        (!texts.is_empty()).then(|| bounded(texts.join(", ").to_lowercase()))
    };
    HeaderIndex {
        from: field(HeaderName::From),
        to: field(HeaderName::To),
        cc: field(HeaderName::Cc),
        bcc: field(HeaderName::Bcc),
        subject: field(HeaderName::Subject),
        sent_day: msg.date().and_then(|d| day_start(d.year, d.month, d.day)),
    }
}

fn bounded(mut s: String) -> String {
    if s.len() > FIELD_LIMIT {
        let mut end = FIELD_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Unix seconds of the UTC start of a calendar day; `None` for an
/// impossible date.
pub(super) fn day_start(year: u16, month: u8, day: u8) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (H. Hinnant), years counted from March.
    let (m, d) = (i64::from(month), i64::from(day));
    let y = i64::from(year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

/// The decoded text of a header value: text as decoded, addresses as
/// `name <address>` joined with `, ` (group names included).
fn value_text(v: &HeaderValue<'_>) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        HeaderValue::Address(a) => address_text(a),
        _ => String::new(),
    }
}

fn address_text(a: &Address<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(groups) = a.as_group() {
        parts.extend(
            groups
                .iter()
                .filter_map(|g| g.name.as_deref().map(str::to_owned)),
        );
    }
    for addr in a.iter() {
        parts.push(match (addr.name(), addr.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (Some(n), None) => n.to_owned(),
            (None, Some(ad)) => ad.to_owned(),
            (None, None) => continue,
        });
    }
    parts.join(", ")
}

/// Every header field of a parsed message as (lowercased name, lowercased
/// text), the text holding both the raw value (unfolded) and the decoded one,
/// so a search finds either spelling.
pub(super) fn field_texts(msg: &Message<'_>, raw: &[u8]) -> Vec<(String, String)> {
    msg.headers()
        .iter()
        .map(|h| {
            let start = h.offset_start() as usize;
            let end = h.offset_end() as usize;
            let raw_value = raw
                .get(start..end)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let unfolded = raw_value.replace("\r\n", "").replace('\n', "");
            let text = format!("{}\n{}", unfolded.trim(), value_text(h.value()));
            (h.name().to_lowercase(), text.to_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_start(1970, 1, 1), Some(0));
        assert_eq!(day_start(2000, 3, 1), Some(951_868_800));
        assert_eq!(day_start(2024, 2, 29), Some(1_709_164_800));
        assert_eq!(day_start(2024, 13, 1), None);
    }

    #[test]
    fn index_decodes_and_lowercases() {
        let ix = index_head(
            b"From: =?UTF-8?Q?Andr=C3=A9?= Dupont <Andre@Lyon.test>\r\n\
              To: a@b.test, \"Bob\" <bob@b.test>\r\n\
              Subject: =?UTF-8?Q?Caf=C3=A9?= au lait\r\n\
              Date: Mon, 2 Jan 2023 23:30:00 -0500\r\n\r\n",
        );
        assert_eq!(ix.from.as_deref(), Some("andré dupont <andre@lyon.test>"));
        assert_eq!(ix.to.as_deref(), Some("a@b.test, bob <bob@b.test>"));
        assert_eq!(ix.subject.as_deref(), Some("café au lait"));
        assert_eq!(ix.cc, None);
        assert_eq!(ix.sent_day, day_start(2023, 1, 2));
    }
}
