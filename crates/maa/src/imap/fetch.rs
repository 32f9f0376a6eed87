//! FETCH: which items a command asks for, how much of the message that needs,
//! and the data items built from one message's metadata and bytes. No IO here.

use std::num::NonZeroU32;

use crate::mda::MessageMeta;
use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::core::{IString, Literal, LiteralMode, NString, NString8};
use imap_next::imap_types::extensions::binary::Literal8;
use imap_next::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_next::imap_types::flag::{Flag, FlagFetch};

use super::date;
use super::structure::{self, BinaryError};

/// How much of the message bytes the items need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Need {
    /// Metadata only (FLAGS, UID, RFC822.SIZE, INTERNALDATE).
    Nothing,
    /// The header (up to and including the empty line).
    Header,
    /// The whole message.
    Whole,
}

/// A FETCH command, checked and ready to run on each message.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) items: Vec<MessageDataItemName<'static>>,
    pub(super) need: Need,
    /// Some item is a non-PEEK body fetch: set \Seen (RFC 9051 §6.4.5).
    pub(super) sets_seen: bool,
}

/// Check the items of a FETCH and work out what they need.
pub(super) fn plan(names: MacroOrMessageDataItemNames<'static>, uid: bool) -> Plan {
    use MessageDataItemName as N;
    let mut items: Vec<MessageDataItemName<'static>> = match names {
        MacroOrMessageDataItemNames::Macro(m) => {
            let mut v = vec![N::Flags, N::InternalDate, N::Rfc822Size];
            if matches!(m, Macro::All | Macro::Full) {
                v.push(N::Envelope);
            }
            if matches!(m, Macro::Full) {
                v.push(N::Body);
            }
            v
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
    };
    if uid && !items.contains(&MessageDataItemName::Uid) {
        items.insert(0, MessageDataItemName::Uid);
    }
    let mut need = Need::Nothing;
    let mut sets_seen = false;
    for item in &items {
        let (n, seen) = match item {
            MessageDataItemName::Flags
            | MessageDataItemName::Uid
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::InternalDate
            | MessageDataItemName::ModSeq => (Need::Nothing, false),
            MessageDataItemName::Rfc822 => (Need::Whole, true),
            MessageDataItemName::Rfc822Header => (Need::Header, false),
            MessageDataItemName::Rfc822Text => (Need::Whole, true),
            MessageDataItemName::BodyExt { section, peek, .. } => {
                let n = match section {
                    Some(
                        Section::Header(None)
                        | Section::HeaderFields(None, _)
                        | Section::HeaderFieldsNot(None, _),
                    ) => Need::Header,
                    _ => Need::Whole,
                };
                (n, !peek)
            }
            MessageDataItemName::Envelope => (Need::Header, false),
            MessageDataItemName::Body | MessageDataItemName::BodyStructure => (Need::Whole, false),
            MessageDataItemName::Binary { peek, .. } => (Need::Whole, !peek),
            MessageDataItemName::BinarySize { .. } => (Need::Whole, false),
        };
        need = need.max(n);
        sets_seen |= seen;
    }
    if sets_seen && !items.contains(&MessageDataItemName::Flags) {
        // The \Seen change is reported in the same response.
        items.push(MessageDataItemName::Flags);
    }
    Plan {
        items,
        need,
        sets_seen,
    }
}

/// `<origin.length>` of a section's bytes.
fn partial(data: &[u8], partial: Option<(u32, NonZeroU32)>) -> &[u8] {
    match partial {
        None => data,
        Some((origin, len)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(len.get() as usize).min(data.len());
            &data[start..end]
        }
    }
}

/// Message bytes as an IMAP literal. NUL cannot be sent outside BINARY, so it is
/// replaced by 0x80, as Dovecot does.
fn nstring(data: &[u8]) -> NString<'static> {
    let bytes: Vec<u8> = data
        .iter()
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    match Literal::try_from(bytes) {
        Ok(lit) => NString(Some(IString::Literal(lit))),
        Err(_) => NString(None),
    }
}

/// A stored flag as IMAP writes it; unknown syntax is dropped.
pub(super) fn flag_fetch(s: &str) -> Option<FlagFetch<'static>> {
    if s.eq_ignore_ascii_case("\\Recent") {
        return Some(FlagFetch::Recent);
    }
    Flag::try_from(s)
        .ok()
        .map(|f| FlagFetch::Flag(f.into_static()))
}

pub(super) fn flags_item(flags: &[String]) -> MessageDataItem<'static> {
    MessageDataItem::Flags(flags.iter().filter_map(|f| flag_fetch(f)).collect())
}

/// The data items of one message. `bytes` holds what `plan.need` asked for (the
/// header, or the whole message); it is empty when nothing was needed.
pub(super) fn build(
    plan: &Plan,
    meta: &MessageMeta,
    bytes: &[u8],
) -> Result<Vec<MessageDataItem<'static>>, BinaryError> {
    let mut out = Vec::with_capacity(plan.items.len());
    let (header, text) = structure::split_header(bytes);
    // The MIME tree, parsed once and only if an item needs it.
    let tree = std::cell::OnceCell::new();
    let entity = || tree.get_or_init(|| structure::parse(bytes));
    for item in &plan.items {
        let data = match item {
            MessageDataItemName::Flags => flags_item(&meta.flags),
            MessageDataItemName::Uid => match NonZeroU32::new(meta.uid) {
                Some(uid) => MessageDataItem::Uid(uid),
                None => continue,
            },
            MessageDataItemName::Rfc822Size => {
                MessageDataItem::Rfc822Size(u32::try_from(meta.size).unwrap_or(u32::MAX))
            }
            MessageDataItemName::InternalDate => match date::internal_date(meta.internal_date) {
                Some(d) => MessageDataItem::InternalDate(d),
                None => continue,
            },
            MessageDataItemName::ModSeq => match std::num::NonZeroU64::new(meta.modseq) {
                Some(m) => MessageDataItem::ModSeq(m),
                None => continue,
            },
            MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(nstring(bytes)),
            MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(nstring(header)),
            MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(nstring(text)),
            MessageDataItemName::BodyExt {
                section,
                partial: range,
                ..
            } => {
                let data = entity().section(bytes, section.as_ref());
                MessageDataItem::BodyExt {
                    section: section.clone(),
                    origin: range.map(|(o, _)| o),
                    data: match &data {
                        Some(d) => nstring(partial(d, *range)),
                        None => NString(None),
                    },
                }
            }
            MessageDataItemName::Envelope => MessageDataItem::Envelope(entity().envelope()),
            MessageDataItemName::Body => MessageDataItem::Body(entity().body_structure(false)),
            MessageDataItemName::BodyStructure => {
                MessageDataItem::BodyStructure(entity().body_structure(true))
            }
            MessageDataItemName::Binary {
                section,
                partial: range,
                ..
            } => match entity().binary(bytes, section) {
                Ok(Some(d)) => MessageDataItem::Binary {
                    section: section.clone(),
                    value: NString8::Literal8(Literal8 {
                        data: std::borrow::Cow::Owned(partial(&d, *range).to_vec()),
                        mode: LiteralMode::Sync,
                    }),
                },
                Ok(None) => MessageDataItem::Binary {
                    section: section.clone(),
                    value: NString8::NString(NString(None)),
                },
                Err(e) => return Err(e),
            },
            MessageDataItemName::BinarySize { section } => match entity().binary(bytes, section) {
                Ok(d) => MessageDataItem::BinarySize {
                    section: section.clone(),
                    size: d.map_or(0, |d| u32::try_from(d.len()).unwrap_or(u32::MAX)),
                },
                Err(e) => return Err(e),
            },
        };
        out.push(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\nbody\r\n";

    #[test]
    fn header_and_text_split_at_the_empty_line() {
        let (h, t) = structure::split_header(MSG);
        assert_eq!(h, b"From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\n\r\n");
        assert_eq!(t, b"body\r\n");
        let nobody = structure::split_header(b"no body");
        assert_eq!(nobody, (&b"no body"[..], &b""[..]));
    }

    #[test]
    fn partial_clamps_to_the_data() {
        let n = |v| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        assert_eq!(partial(b"abcdef", Some((2, n(3)))), b"cde");
        assert_eq!(partial(b"abcdef", Some((4, n(10)))), b"ef");
        assert_eq!(partial(b"abcdef", Some((10, n(1)))), b"");
    }
}
