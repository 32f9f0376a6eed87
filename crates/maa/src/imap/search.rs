//! SEARCH on message metadata (flags, UIDs, numbers, sizes, INTERNALDATE). Keys
//! that need the message text (FROM, SUBJECT, BODY, ...) are refused for now.

use facteur_rpc::mailbox::MessageMeta;
use imap_next::imap_types::search::SearchKey;

use super::{date, seqset};

/// A key this server cannot evaluate yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SEARCH key needs the message text")]
pub(super) struct NeedsText;

fn has(meta: &MessageMeta, flag: &str) -> bool {
    meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Does message `idx` (0-based) of `metas` match `key`?
pub(super) fn matches(
    key: &SearchKey<'_>,
    metas: &[MessageMeta],
    idx: usize,
    uids: &[u32],
) -> Result<bool, NeedsText> {
    let Some(meta) = metas.get(idx) else {
        return Ok(false);
    };
    let day = meta.internal_date.div_euclid(86_400);
    Ok(match key {
        SearchKey::All | SearchKey::Old => true,
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::And(keys) => {
            for k in keys.as_ref() {
                if !matches(k, metas, idx, uids)? {
                    return Ok(false);
                }
            }
            true
        }
        SearchKey::Or(a, b) => matches(a, metas, idx, uids)? || matches(b, metas, idx, uids)?,
        SearchKey::Not(k) => !matches(k, metas, idx, uids)?,
        SearchKey::SequenceSet(set) => seqset::names(set, uids, idx, false),
        SearchKey::Uid(set) => seqset::names(set, uids, idx, true),
        SearchKey::Answered => has(meta, "\\Answered"),
        SearchKey::Unanswered => !has(meta, "\\Answered"),
        SearchKey::Deleted => has(meta, "\\Deleted"),
        SearchKey::Undeleted => !has(meta, "\\Deleted"),
        SearchKey::Draft => has(meta, "\\Draft"),
        SearchKey::Undraft => !has(meta, "\\Draft"),
        SearchKey::Flagged => has(meta, "\\Flagged"),
        SearchKey::Unflagged => !has(meta, "\\Flagged"),
        SearchKey::Seen => has(meta, "\\Seen"),
        SearchKey::Unseen => !has(meta, "\\Seen"),
        SearchKey::Keyword(k) => has(meta, k.as_ref()),
        SearchKey::Unkeyword(k) => !has(meta, k.as_ref()),
        SearchKey::Larger(n) => meta.size > u64::from(*n),
        SearchKey::Smaller(n) => meta.size < u64::from(*n),
        SearchKey::Before(d) => date::search_days(d).is_some_and(|d| day < d),
        SearchKey::On(d) => date::search_days(d).is_some_and(|d| day == d),
        SearchKey::Since(d) => date::search_days(d).is_some_and(|d| day >= d),
        _ => return Err(NeedsText),
    })
}

/// Indexes (0-based) of the messages matching all `keys`.
pub(super) fn run(
    keys: &[SearchKey<'_>],
    metas: &[MessageMeta],
    uids: &[u32],
) -> Result<Vec<usize>, NeedsText> {
    let mut out = Vec::new();
    'msg: for idx in 0..metas.len() {
        for k in keys {
            if !matches(k, metas, idx, uids)? {
                continue 'msg;
            }
        }
        out.push(idx);
    }
    Ok(out)
}
