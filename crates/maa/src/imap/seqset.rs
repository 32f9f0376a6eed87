//! Sequence sets (`1:*`, `*`, `2,4:7`) resolved against the selected mailbox's
//! UID list, for message numbers and for UIDs (RFC 9051 §9 `sequence-set`).

use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// Why a set of message numbers cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum SeqSetError {
    /// A message number beyond the last message (or any number in an empty mailbox).
    #[error("invalid message sequence number")]
    OutOfRange,
}

fn value(v: &SeqOrUid, star: u32) -> u32 {
    match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => star,
    }
}

/// Bounds of one sequence, smallest first (`4:2` is `2:4`).
fn bounds(seq: &Sequence, star: u32) -> (u32, u32) {
    match seq {
        Sequence::Single(v) => {
            let v = value(v, star);
            (v, v)
        }
        Sequence::Range(a, b) => {
            let (a, b) = (value(a, star), value(b, star));
            (a.min(b), a.max(b))
        }
    }
}

fn contains(set: &SequenceSet, n: u32, star: u32) -> bool {
    set.0.as_ref().iter().any(|s| {
        let (lo, hi) = bounds(s, star);
        lo <= n && n <= hi
    })
}

/// Is message `idx` (0-based) named by `set`? (SEARCH: no error for numbers past
/// the end, they just name nothing.)
pub(super) fn names(set: &SequenceSet, uids: &[u32], idx: usize, uid: bool) -> bool {
    if uid {
        let star = uids.last().copied().unwrap_or(0);
        uids.get(idx).is_some_and(|u| contains(set, *u, star))
    } else {
        let exists = u32::try_from(uids.len()).unwrap_or(u32::MAX);
        u32::try_from(idx + 1).is_ok_and(|n| n <= exists && contains(set, n, exists))
    }
}

/// Indexes (0-based) into `uids` of the messages a set names.
///
/// With `uid = false` the set holds message numbers, `*` is the last one, and a
/// number past it is an error. With `uid = true` the set holds UIDs, `*` is the
/// largest UID in use, and UIDs that do not exist are ignored (RFC 9051 §6.4.9).
pub(super) fn resolve(
    set: &SequenceSet,
    uids: &[u32],
    uid: bool,
) -> Result<Vec<usize>, SeqSetError> {
    if uid {
        let star = uids.last().copied().unwrap_or(0);
        return Ok(uids
            .iter()
            .enumerate()
            .filter(|(_, u)| contains(set, **u, star))
            .map(|(i, _)| i)
            .collect());
    }
    let exists = u32::try_from(uids.len()).unwrap_or(u32::MAX);
    for s in set.0.as_ref() {
        let (lo, hi) = bounds(s, exists);
        if lo == 0 || hi > exists {
            return Err(SeqSetError::OutOfRange);
        }
    }
    Ok((1..=exists)
        .filter(|n| contains(set, *n, exists))
        .map(|n| (n - 1) as usize)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SequenceSet {
        match SequenceSet::try_from(s) {
            Ok(s) => s,
            Err(e) => panic!("bad test set {s}: {e:?}"),
        }
    }

    #[test]
    fn message_numbers_resolve_with_star_and_reversed_ranges() {
        let uids = [3, 5, 9, 12];
        assert_eq!(resolve(&set("1:*"), &uids, false), Ok(vec![0, 1, 2, 3]));
        assert_eq!(resolve(&set("*"), &uids, false), Ok(vec![3]));
        assert_eq!(resolve(&set("3:2,1"), &uids, false), Ok(vec![0, 1, 2]));
        assert_eq!(
            resolve(&set("5"), &uids, false),
            Err(SeqSetError::OutOfRange)
        );
        assert_eq!(resolve(&set("*"), &[], false), Err(SeqSetError::OutOfRange));
    }

    #[test]
    fn uids_ignore_missing_and_star_is_the_last_uid() {
        let uids = [3, 5, 9, 12];
        assert_eq!(resolve(&set("4:9"), &uids, true), Ok(vec![1, 2]));
        assert_eq!(resolve(&set("100:*"), &uids, true), Ok(vec![3]));
        assert_eq!(resolve(&set("1,13"), &uids, true), Ok(vec![]));
        assert_eq!(resolve(&set("1:*"), &[], true), Ok(vec![]));
    }
}
