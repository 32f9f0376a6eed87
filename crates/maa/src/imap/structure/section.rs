//! The bytes of `BODY[section]` (RFC 9051 §6.4.5): parts, HEADER, TEXT, MIME
//! and HEADER.FIELDS[.NOT].

use std::borrow::Cow;

use imap_next::imap_types::core::AString;
use imap_next::imap_types::fetch::{Part, Section};

use super::Entity;
use super::tree::{is_blank_line, lines};

impl<'a> Entity<'a> {
    /// The bytes of `BODY[section]` (`None`: the whole message, `BODY[]`), or
    /// `None` when the section names no part (the answer is then NIL).
    pub(crate) fn section(
        &self,
        whole: &'a [u8],
        section: Option<&Section<'_>>,
    ) -> Option<Cow<'a, [u8]>> {
        let top = |p: &Option<Part>| -> Option<&Entity<'a>> {
            match p {
                None => Some(self),
                Some(p) => self.find(p.0.as_ref()).map(Entity::message),
            }
        };
        Some(match section {
            None => Cow::Borrowed(whole),
            Some(Section::Part(p)) => Cow::Borrowed(self.find(p.0.as_ref())?.body),
            Some(Section::Header(p)) => Cow::Borrowed(top(p)?.header),
            Some(Section::Text(p)) => Cow::Borrowed(top(p)?.body),
            Some(Section::Mime(p)) => Cow::Borrowed(self.find(p.0.as_ref())?.header),
            Some(Section::HeaderFields(p, names)) => {
                Cow::Owned(header_fields(top(p)?.header, names.as_ref(), false))
            }
            Some(Section::HeaderFieldsNot(p, names)) => {
                Cow::Owned(header_fields(top(p)?.header, names.as_ref(), true))
            }
        })
    }
}

/// The header fields named (or, with `not`, all others) with their folded lines,
/// then the empty line (RFC 9051 §6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT).
pub(crate) fn header_fields(header: &[u8], names: &[AString<'_>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for (_, line) in lines(header) {
        if is_blank_line(line) {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let listed = names
                .iter()
                .any(|n| n.as_ref().eq_ignore_ascii_case(name.trim_ascii()));
            keep = line.contains(&b':') && listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
