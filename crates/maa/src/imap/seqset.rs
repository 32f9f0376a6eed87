//! The selected mailbox's message numbers and sequence sets on them.
//!
//! [`UidList`] holds the uids of the selected mailbox as runs of consecutive
//! uids (message number n is the n-th uid), so a mailbox of 100k messages
//! filed in order costs a few bytes per session, not one entry per message.
//! Sequence sets (`1:*`, `*`, `2,4:7`, RFC 9051 §9 `sequence-set`) resolve to
//! index ranges on it without ever expanding a range: `1:4294967295` is one
//! range, however large.

use std::ops::Range;

use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::mda::Uid;

/// A run of consecutive uids: `first .. first + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: Uid,
    len: u32,
}

impl Run {
    fn last(self) -> Uid {
        self.first + (self.len - 1)
    }
}

/// Ascending uids of the selected mailbox; index i is message number i + 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct UidList {
    runs: Vec<Run>,
    /// `starts[k]`: index of the first uid of `runs[k]`.
    starts: Vec<usize>,
    len: usize,
}

impl UidList {
    /// From ascending uids (anything out of order is dropped).
    pub(super) fn from_uids(uids: &[Uid]) -> Self {
        let mut list = Self::default();
        for &uid in uids {
            list.push(uid);
        }
        list
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The number of messages, as IMAP counts them.
    pub(super) fn exists(&self) -> u32 {
        u32::try_from(self.len).unwrap_or(u32::MAX)
    }

    pub(super) fn last(&self) -> Option<Uid> {
        self.runs.last().map(|r| r.last())
    }

    /// Appends a uid greater than every uid held; false (and nothing done) otherwise.
    pub(super) fn push(&mut self, uid: Uid) -> bool {
        if uid == 0 || self.last().is_some_and(|l| l >= uid) {
            return false;
        }
        match self.runs.last_mut() {
            Some(run) if run.last().checked_add(1) == Some(uid) => run.len += 1,
            _ => {
                self.starts.push(self.len);
                self.runs.push(Run { first: uid, len: 1 });
            }
        }
        self.len += 1;
        true
    }

    /// The uid at `idx` (0-based).
    #[cfg(test)]
    fn get(&self, idx: usize) -> Option<Uid> {
        if idx >= self.len {
            return None;
        }
        let k = self.starts.partition_point(|&s| s <= idx) - 1;
        let off = u32::try_from(idx - self.starts[k]).ok()?;
        Some(self.runs[k].first + off)
    }

    /// The index of `uid`, if held.
    pub(super) fn position(&self, uid: Uid) -> Option<usize> {
        let k = self
            .runs
            .partition_point(|r| r.first <= uid)
            .checked_sub(1)?;
        let run = self.runs[k];
        (uid <= run.last()).then(|| self.starts[k] + (uid - run.first) as usize)
    }

    /// Index of the first uid >= `uid` (`len` if none).
    fn lower_bound(&self, uid: Uid) -> usize {
        let k = self.runs.partition_point(|r| r.last() < uid);
        match self.runs.get(k) {
            None => self.len,
            Some(run) => self.starts[k] + uid.saturating_sub(run.first) as usize,
        }
    }

    /// Removes `uid`; its former index, if it was held.
    pub(super) fn remove(&mut self, uid: Uid) -> Option<usize> {
        let idx = self.position(uid)?;
        let k = self.runs.partition_point(|r| r.first <= uid) - 1;
        let run = self.runs[k];
        if run.len == 1 {
            self.runs.remove(k);
            self.starts.remove(k);
        } else if uid == run.first {
            self.runs[k] = Run {
                first: uid + 1,
                len: run.len - 1,
            };
        } else if uid == run.last() {
            self.runs[k].len -= 1;
        } else {
            let left = uid - run.first;
            self.runs[k].len = left;
            self.runs.insert(
                k + 1,
                Run {
                    first: uid + 1,
                    len: run.len - left - 1,
                },
            );
            // After the removal the right part starts at idx (see below).
            self.starts.insert(k + 1, idx + 1);
        }
        self.len -= 1;
        // Every run after the removed uid starts one index earlier.
        for start in &mut self.starts {
            if *start > idx {
                *start -= 1;
            }
        }
        Some(idx)
    }

    /// The uids at the indexes `range`, as inclusive uid ranges.
    pub(super) fn uid_ranges(&self, range: Range<usize>) -> Vec<(Uid, Uid)> {
        let mut out = Vec::new();
        let mut idx = range.start;
        while idx < range.end.min(self.len) {
            let k = self.starts.partition_point(|&s| s <= idx) - 1;
            let (run, start) = (self.runs[k], self.starts[k]);
            let from = idx - start;
            let to = (range.end - start).min(run.len as usize);
            let first = run.first + from as u32;
            let last = run.first + (to as u32 - 1);
            out.push((first, last));
            idx = start + to;
        }
        out
    }

    /// Every uid at the indexes `ranges`, in order.
    pub(super) fn uids_in(&self, ranges: &[Range<usize>]) -> Vec<Uid> {
        let mut out = Vec::new();
        for r in ranges {
            for (a, b) in self.uid_ranges(r.clone()) {
                out.extend(a..=b);
            }
        }
        out
    }
}

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

/// Sorts and merges index ranges.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The index ranges (0-based, sorted, disjoint) of the messages `set` names.
///
/// With `uid = false` the set holds message numbers, `*` is the last one, and a
/// number past it is an error. With `uid = true` the set holds uids, `*` is the
/// largest uid in use, and uids that do not exist are ignored (RFC 9051 §6.4.9).
pub(super) fn resolve(
    set: &SequenceSet,
    uids: &UidList,
    uid: bool,
) -> Result<Vec<Range<usize>>, SeqSetError> {
    let mut out = Vec::new();
    if uid {
        let Some(star) = uids.last() else {
            return Ok(Vec::new());
        };
        for s in set.0.as_ref() {
            let (lo, hi) = bounds(s, star);
            let start = uids.lower_bound(lo);
            let end = match hi.checked_add(1) {
                Some(h) => uids.lower_bound(h),
                None => uids.len(),
            };
            out.push(start..end);
        }
    } else {
        let exists = uids.exists();
        for s in set.0.as_ref() {
            let (lo, hi) = bounds(s, exists);
            if lo == 0 || hi > exists {
                return Err(SeqSetError::OutOfRange);
            }
            out.push(lo as usize - 1..hi as usize);
        }
    }
    Ok(merge(out))
}

/// The uid ranges `set` names, for SEARCH: message numbers past the end name
/// nothing (no error), `*` in an empty mailbox names nothing.
pub(super) fn search_ranges(set: &SequenceSet, uids: &UidList, uid: bool) -> Vec<(Uid, Uid)> {
    if uid {
        let Some(star) = uids.last() else {
            return Vec::new();
        };
        return set.0.as_ref().iter().map(|s| bounds(s, star)).collect();
    }
    let exists = uids.exists();
    let mut idx = Vec::new();
    for s in set.0.as_ref() {
        let (lo, hi) = bounds(s, exists);
        let hi = hi.min(exists);
        if lo >= 1 && lo <= hi {
            idx.push(lo as usize - 1..hi as usize);
        }
    }
    merge(idx)
        .into_iter()
        .flat_map(|r| uids.uid_ranges(r))
        .collect()
}

/// Ascending numbers as inclusive runs of consecutive ones (`1 2 3 7` →
/// `(1, 3) (7, 7)`); zeros, which no uid or message number is, are skipped.
pub(super) fn runs(values: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut iter = values.iter().copied().filter(|&v| v != 0).peekable();
    std::iter::from_fn(move || {
        let first = iter.next()?;
        let mut last = first;
        while last < u32::MAX && iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        Some((first, last))
    })
}

/// Inclusive ranges of ascending uids, compressed (`1:3,7`), as a sequence set.
/// `None` for no uids.
pub(super) fn to_set(uids: &[Uid]) -> Option<SequenceSet> {
    let mut seqs = Vec::new();
    for (first, last) in runs(uids) {
        let a = std::num::NonZeroU32::new(first)?;
        let b = std::num::NonZeroU32::new(last)?;
        seqs.push(if a == b {
            Sequence::Single(SeqOrUid::Value(a))
        } else {
            Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b))
        });
    }
    imap_next::imap_types::core::Vec1::try_from(seqs)
        .ok()
        .map(SequenceSet)
}

/// Ascending numbers as sequence-set text (`1:3,7`), for responses written by hand.
pub(super) fn set_text(values: &[Uid]) -> String {
    let mut out = String::new();
    for (first, last) in runs(values) {
        if !out.is_empty() {
            out.push(',');
        }
        if first == last {
            out.push_str(&first.to_string());
        } else {
            out.push_str(&format!("{first}:{last}"));
        }
    }
    out
}

/// The uids of a sequence set without `*` (QRESYNC known uids), as inclusive
/// ranges (`*` counts as the largest uid).
pub(super) fn literal_ranges(set: &SequenceSet) -> Vec<(Uid, Uid)> {
    set.0.as_ref().iter().map(|s| bounds(s, u32::MAX)).collect()
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

    fn list(uids: &[u32]) -> UidList {
        UidList::from_uids(uids)
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn message_numbers_resolve_with_star_and_reversed_ranges() {
        let uids = list(&[3, 5, 9, 12]);
        assert_eq!(resolve(&set("1:*"), &uids, false), Ok(vec![0..4]));
        assert_eq!(resolve(&set("*"), &uids, false), Ok(vec![3..4]));
        assert_eq!(resolve(&set("3:2,1"), &uids, false), Ok(vec![0..3]));
        assert_eq!(
            resolve(&set("5"), &uids, false),
            Err(SeqSetError::OutOfRange)
        );
        assert_eq!(
            resolve(&set("*"), &list(&[]), false),
            Err(SeqSetError::OutOfRange)
        );
        assert_eq!(
            resolve(&set("1:4294967295"), &uids, false),
            Err(SeqSetError::OutOfRange)
        );
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn uids_ignore_missing_and_star_is_the_last_uid() {
        let uids = list(&[3, 5, 9, 12]);
        assert_eq!(resolve(&set("4:9"), &uids, true), Ok(vec![1..3]));
        assert_eq!(resolve(&set("100:*"), &uids, true), Ok(vec![3..4]));
        assert_eq!(resolve(&set("1,13"), &uids, true), Ok(vec![]));
        assert_eq!(resolve(&set("1:*"), &list(&[]), true), Ok(vec![]));
        assert_eq!(resolve(&set("1:4294967295"), &uids, true), Ok(vec![0..4]));
    }

    #[test]
    fn runs_keep_positions_through_removals() {
        let mut uids = list(&[1, 2, 3, 4, 5, 8, 9, 20]);
        assert_eq!(uids.runs.len(), 3);
        assert_eq!(uids.get(5), Some(8));
        assert_eq!(uids.position(9), Some(6));
        assert_eq!(uids.remove(3), Some(2));
        assert_eq!(uids.remove(8), Some(4));
        let all: Vec<u32> = (0..uids.len()).filter_map(|i| uids.get(i)).collect();
        assert_eq!(all, vec![1, 2, 4, 5, 9, 20]);
        for (i, u) in all.iter().enumerate() {
            assert_eq!(uids.position(*u), Some(i));
        }
        assert_eq!(uids.position(3), None);
        assert_eq!(uids.remove(3), None);
        assert!(uids.push(21));
        assert!(!uids.push(21));
        assert_eq!(uids.uid_ranges(1..5), vec![(2, 2), (4, 5), (9, 9)]);
        assert_eq!(
            uids.uid_ranges(0..7),
            vec![(1, 2), (4, 5), (9, 9), (20, 21)]
        );
    }

    #[test]
    fn search_ranges_clamp_and_sets_compress() {
        let uids = list(&[3, 4, 5, 9]);
        assert_eq!(
            search_ranges(&set("2:100"), &uids, false),
            vec![(4, 5), (9, 9)]
        );
        assert_eq!(search_ranges(&set("7"), &uids, false), vec![]);
        assert_eq!(search_ranges(&set("4:*"), &uids, true), vec![(4, 9)]);
        assert_eq!(set_text(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(set_text(&[]), "");
        assert_eq!(
            set_text(&[1, u32::MAX - 1, u32::MAX]),
            "1,4294967294:4294967295"
        );
        assert!(to_set(&[1, 2]).is_some());
        assert_eq!(to_set(&[]), None);
    }
}
