//! The one translation between the storage seam's types (`facteur_store::mail`)
//! and the `Mailbox` wire types, used by both ends (the MDA serving, the MAA
//! calling) and the MDA's `StoreAdmin` report, so no field is mapped twice. Conversions that can meet bad input
//! (unknown enum values, query trees too deep or too big, malformed uid runs)
//! return `Status::invalid_argument`, which each end maps as it maps any call.

use facteur_store::housekeeping as hk;
use facteur_store::mail as st;
use tonic::Status;

use crate::admin;
use crate::mailbox as pb;

/// Deepest SEARCH query accepted either way, in query nodes. prost refuses to
/// decode messages nested deeper than 100; each `And`/`Or` level costs two
/// (`SearchKey` → `SearchKeys` → `SearchKey`), so 40 levels always decode.
pub const MAX_QUERY_DEPTH: usize = 40;
/// Most nodes of a SEARCH query accepted either way.
pub const MAX_QUERY_NODES: usize = 4096;
/// Most uid ranges in one SEARCH query (all `Uids` nodes together).
pub const MAX_QUERY_RANGES: usize = 100_000;
/// Most uids [`runs_to_uids`] expands (64 MiB of `u32`).
pub const MAX_UIDS: usize = 16 << 20;

fn invalid(what: impl Into<String>) -> Status {
    Status::invalid_argument(what.into())
}

// ----- messages and mailboxes -----

impl From<st::MessageMeta> for pb::MessageMeta {
    fn from(m: st::MessageMeta) -> Self {
        Self {
            uid: m.uid,
            size: m.size,
            flags: m.flags,
            modseq: m.modseq,
            internal_date: m.internal_date,
        }
    }
}

/// The wire carries no blob id (it is the MDA's business): the MAA's metadata
/// has an empty one.
impl From<pb::MessageMeta> for st::MessageMeta {
    fn from(m: pb::MessageMeta) -> Self {
        Self {
            uid: m.uid,
            blob: st::BlobId(String::new()),
            size: m.size,
            flags: m.flags,
            modseq: m.modseq,
            internal_date: m.internal_date,
        }
    }
}

/// A mailbox's status and its keywords (IMAP FLAGS) on the wire.
pub fn status_to_pb(s: st::MailboxStatus, keywords: Vec<String>) -> pb::MailboxStatus {
    pb::MailboxStatus {
        uidvalidity: s.uidvalidity,
        uidnext: s.uidnext,
        exists: s.exists,
        unseen: s.unseen,
        highest_modseq: s.highest_modseq,
        keywords,
        size: s.size,
        deleted: s.deleted,
    }
}

/// The status and keywords of a wire `MailboxStatus`.
pub fn status_from_pb(s: pb::MailboxStatus) -> (st::MailboxStatus, Vec<String>) {
    (
        st::MailboxStatus {
            uidvalidity: s.uidvalidity,
            uidnext: s.uidnext,
            exists: s.exists,
            unseen: s.unseen,
            highest_modseq: s.highest_modseq,
            size: s.size,
            deleted: s.deleted,
        },
        s.keywords,
    )
}

/// A role (or none) as the wire enum.
pub fn role_to_pb(role: Option<st::Role>) -> pb::Role {
    match role {
        None => pb::Role::None,
        Some(st::Role::Sent) => pb::Role::Sent,
        Some(st::Role::Drafts) => pb::Role::Drafts,
        Some(st::Role::Trash) => pb::Role::Trash,
        Some(st::Role::Junk) => pb::Role::Junk,
        Some(st::Role::Archive) => pb::Role::Archive,
    }
}

/// The role of a wire enum value; an unknown value is refused.
pub fn role_from_pb(role: i32) -> Result<Option<st::Role>, Status> {
    Ok(match pb::Role::try_from(role) {
        Ok(pb::Role::None) => None,
        Ok(pb::Role::Sent) => Some(st::Role::Sent),
        Ok(pb::Role::Drafts) => Some(st::Role::Drafts),
        Ok(pb::Role::Trash) => Some(st::Role::Trash),
        Ok(pb::Role::Junk) => Some(st::Role::Junk),
        Ok(pb::Role::Archive) => Some(st::Role::Archive),
        Err(_) => return Err(invalid(format!("unknown mailbox role {role}"))),
    })
}

impl From<st::MailboxInfo> for pb::MailboxInfo {
    fn from(m: st::MailboxInfo) -> Self {
        Self {
            name: m.name,
            role: role_to_pb(m.role) as i32,
            subscribed: m.subscribed,
        }
    }
}

/// A wire `MailboxInfo`; an unknown role is refused.
pub fn mailbox_info_from_pb(m: pb::MailboxInfo) -> Result<st::MailboxInfo, Status> {
    Ok(st::MailboxInfo {
        role: role_from_pb(m.role)?,
        name: m.name,
        subscribed: m.subscribed,
    })
}

/// A flag operation as the wire enum.
pub fn flag_op_to_pb(op: st::FlagOp) -> pb::FlagOp {
    match op {
        st::FlagOp::Add => pb::FlagOp::Add,
        st::FlagOp::Remove => pb::FlagOp::Remove,
        st::FlagOp::Replace => pb::FlagOp::Replace,
    }
}

/// The flag operation of a wire enum value; an unknown value is refused.
pub fn flag_op_from_pb(op: i32) -> Result<st::FlagOp, Status> {
    match pb::FlagOp::try_from(op) {
        Ok(pb::FlagOp::Add) => Ok(st::FlagOp::Add),
        Ok(pb::FlagOp::Remove) => Ok(st::FlagOp::Remove),
        Ok(pb::FlagOp::Replace) => Ok(st::FlagOp::Replace),
        Err(_) => Err(invalid("unknown flag operation")),
    }
}

impl From<st::StoreFlagsResult> for pb::StoreFlagsReply {
    fn from(r: st::StoreFlagsResult) -> Self {
        Self {
            updated: r.updated.into_iter().map(Into::into).collect(),
            failed_modified: r.failed_modified,
        }
    }
}

impl From<pb::StoreFlagsReply> for st::StoreFlagsResult {
    fn from(r: pb::StoreFlagsReply) -> Self {
        Self {
            updated: r.updated.into_iter().map(Into::into).collect(),
            failed_modified: r.failed_modified,
        }
    }
}

impl From<st::Appended> for pb::AppendReply {
    fn from(a: st::Appended) -> Self {
        Self {
            uidvalidity: a.uidvalidity,
            uid: a.uid,
        }
    }
}

impl From<pb::AppendReply> for st::Appended {
    fn from(a: pb::AppendReply) -> Self {
        Self {
            uidvalidity: a.uidvalidity,
            uid: a.uid,
        }
    }
}

impl From<st::Copied> for pb::CopyReply {
    fn from(c: st::Copied) -> Self {
        let (source_uids, dest_uids) = c.uids.into_iter().unzip();
        Self {
            uidvalidity: c.uidvalidity,
            source_uids,
            dest_uids,
        }
    }
}

/// A wire `CopyReply`; the two uid lists must pair up.
pub fn copied_from_pb(c: pb::CopyReply) -> Result<st::Copied, Status> {
    if c.source_uids.len() != c.dest_uids.len() {
        return Err(invalid(
            "COPY reply: source and destination uids differ in number",
        ));
    }
    Ok(st::Copied {
        uidvalidity: c.uidvalidity,
        uids: c.source_uids.into_iter().zip(c.dest_uids).collect(),
    })
}

/// The store's changes after a modseq (updates and tombstones) as the wire reply.
pub fn changes_to_pb(changes: Vec<st::Change>, highest_modseq: u64) -> pb::ChangesReply {
    let mut reply = pb::ChangesReply {
        highest_modseq,
        ..Default::default()
    };
    for c in changes {
        match c {
            st::Change::Updated(m) => reply.updated.push(m.into()),
            st::Change::Expunged { uid, modseq } => {
                reply.expunged.push(pb::Tombstone { uid, modseq })
            }
        }
    }
    reply
}

// ----- uid runs -----

/// Ascending uids as ascending, disjoint runs (`1,2,3,7` → `1:3,7:7`).
/// Unsorted input still gives correct, if longer, runs.
pub fn uids_to_runs(uids: &[st::Uid]) -> pb::UidRuns {
    let mut runs: Vec<pb::UidRange> = Vec::new();
    for &uid in uids {
        match runs.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(uid) => r.last = uid,
            _ => runs.push(pb::UidRange {
                first: uid,
                last: uid,
            }),
        }
    }
    pb::UidRuns { runs }
}

/// The uids of ascending, disjoint runs; refuses reversed, overlapping or
/// unsorted runs and more than [`MAX_UIDS`] uids.
pub fn runs_to_uids(runs: &pb::UidRuns) -> Result<Vec<st::Uid>, Status> {
    let mut total = 0usize;
    let mut prev: Option<st::Uid> = None;
    for r in &runs.runs {
        if r.first > r.last || prev.is_some_and(|p| r.first <= p) {
            return Err(invalid("uid runs must be ascending and disjoint"));
        }
        total = total.saturating_add((r.last - r.first) as usize + 1);
        if total > MAX_UIDS {
            return Err(invalid(format!("more than {MAX_UIDS} uids")));
        }
        prev = Some(r.last);
    }
    let mut out = Vec::with_capacity(total);
    for r in &runs.runs {
        out.extend(r.first..=r.last);
    }
    Ok(out)
}

// ----- SEARCH queries -----

/// Counts nodes and ranges while walking a query tree, refusing trees past the limits.
struct Budget {
    nodes: usize,
    ranges: usize,
}

impl Budget {
    fn new() -> Self {
        Self {
            nodes: 0,
            ranges: 0,
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), Status> {
        self.nodes += 1;
        if depth > MAX_QUERY_DEPTH {
            return Err(invalid(format!(
                "search query nested deeper than {MAX_QUERY_DEPTH}"
            )));
        }
        if self.nodes > MAX_QUERY_NODES {
            return Err(invalid(format!(
                "search query of more than {MAX_QUERY_NODES} keys"
            )));
        }
        Ok(())
    }

    fn ranges(&mut self, n: usize) -> Result<(), Status> {
        self.ranges = self.ranges.saturating_add(n);
        if self.ranges > MAX_QUERY_RANGES {
            return Err(invalid(format!(
                "search query of more than {MAX_QUERY_RANGES} uid ranges"
            )));
        }
        Ok(())
    }
}

fn field_to_pb(field: &st::Field, value: &str) -> pb::SearchHeader {
    let (field, name) = match field {
        st::Field::From => (pb::SearchField::From, String::new()),
        st::Field::To => (pb::SearchField::To, String::new()),
        st::Field::Cc => (pb::SearchField::Cc, String::new()),
        st::Field::Bcc => (pb::SearchField::Bcc, String::new()),
        st::Field::Subject => (pb::SearchField::Subject, String::new()),
        st::Field::Other(name) => (pb::SearchField::Other, name.clone()),
    };
    pb::SearchHeader {
        field: field as i32,
        name,
        value: value.to_owned(),
    }
}

fn field_from_pb(h: pb::SearchHeader) -> Result<st::Query, Status> {
    let field = match pb::SearchField::try_from(h.field) {
        Ok(pb::SearchField::From) => st::Field::From,
        Ok(pb::SearchField::To) => st::Field::To,
        Ok(pb::SearchField::Cc) => st::Field::Cc,
        Ok(pb::SearchField::Bcc) => st::Field::Bcc,
        Ok(pb::SearchField::Subject) => st::Field::Subject,
        Ok(pb::SearchField::Other) if !h.name.is_empty() => st::Field::Other(h.name),
        Ok(pb::SearchField::Other) => return Err(invalid("HEADER search without a field name")),
        Err(_) => return Err(invalid(format!("unknown search field {}", h.field))),
    };
    Ok(st::Query::Header(field, h.value))
}

/// True when a query has a MODSEQ key: only then does SEARCH report the
/// highest modseq of its matches (RFC 7162 §3.1.5), so only then is it worked out.
pub fn uses_modseq(q: &st::Query) -> bool {
    match q {
        st::Query::ModSeq(_) => true,
        st::Query::And(qs) => qs.iter().any(uses_modseq),
        st::Query::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        st::Query::Not(q) => uses_modseq(q),
        _ => false,
    }
}

/// A store query as a wire `SearchKey`; refuses trees deeper than
/// [`MAX_QUERY_DEPTH`] or bigger than [`MAX_QUERY_NODES`] /
/// [`MAX_QUERY_RANGES`], and reversed uid ranges.
pub fn query_to_pb(q: &st::Query) -> Result<pb::SearchKey, Status> {
    query_to_pb_at(q, 1, &mut Budget::new())
}

fn query_to_pb_at(
    q: &st::Query,
    depth: usize,
    budget: &mut Budget,
) -> Result<pb::SearchKey, Status> {
    use pb::search_key::Key;
    budget.enter(depth)?;
    let keys = |qs: &mut dyn Iterator<Item = &st::Query>, budget: &mut Budget| {
        qs.map(|q| query_to_pb_at(q, depth + 1, budget))
            .collect::<Result<Vec<_>, _>>()
            .map(|keys| pb::SearchKeys { keys })
    };
    let key = match q {
        st::Query::All => Key::All(true),
        st::Query::And(qs) => Key::And(keys(&mut qs.iter(), budget)?),
        st::Query::Or(a, b) => Key::Or(keys(&mut [&**a, &**b].into_iter(), budget)?),
        st::Query::Not(q) => Key::Not(Box::new(query_to_pb_at(q, depth + 1, budget)?)),
        st::Query::Uids(ranges) => {
            budget.ranges(ranges.len())?;
            if ranges.iter().any(|(a, b)| a > b) {
                return Err(invalid("reversed uid range in a search query"));
            }
            Key::Uids(pb::UidRuns {
                runs: ranges
                    .iter()
                    .map(|&(first, last)| pb::UidRange { first, last })
                    .collect(),
            })
        }
        st::Query::Flag(f) => Key::Flag(f.clone()),
        st::Query::Larger(n) => Key::Larger(*n),
        st::Query::Smaller(n) => Key::Smaller(*n),
        st::Query::Before(t) => Key::Before(*t),
        st::Query::Since(t) => Key::Since(*t),
        st::Query::SentBefore(t) => Key::SentBefore(*t),
        st::Query::SentSince(t) => Key::SentSince(*t),
        st::Query::Header(field, value) => Key::Header(field_to_pb(field, value)),
        st::Query::Body(s) => Key::Body(s.clone()),
        st::Query::Text(s) => Key::Text(s.clone()),
        st::Query::ModSeq(m) => Key::Modseq(*m),
    };
    Ok(pb::SearchKey { key: Some(key) })
}

/// The store query of a wire `SearchKey`; refuses empty keys, `or` without
/// exactly two keys, reversed uid ranges, and trees past the limits.
pub fn query_from_pb(k: pb::SearchKey) -> Result<st::Query, Status> {
    query_from_pb_at(k, 1, &mut Budget::new())
}

fn query_from_pb_at(
    k: pb::SearchKey,
    depth: usize,
    budget: &mut Budget,
) -> Result<st::Query, Status> {
    use pb::search_key::Key;
    budget.enter(depth)?;
    let Some(key) = k.key else {
        return Err(invalid("empty search key"));
    };
    Ok(match key {
        Key::All(_) => st::Query::All,
        Key::And(ks) => st::Query::And(
            ks.keys
                .into_iter()
                .map(|k| query_from_pb_at(k, depth + 1, budget))
                .collect::<Result<_, _>>()?,
        ),
        Key::Or(ks) => {
            let [a, b]: [pb::SearchKey; 2] = ks
                .keys
                .try_into()
                .map_err(|_| invalid("OR takes exactly two search keys"))?;
            st::Query::Or(
                Box::new(query_from_pb_at(a, depth + 1, budget)?),
                Box::new(query_from_pb_at(b, depth + 1, budget)?),
            )
        }
        Key::Not(k) => st::Query::Not(Box::new(query_from_pb_at(*k, depth + 1, budget)?)),
        Key::Uids(runs) => {
            budget.ranges(runs.runs.len())?;
            if runs.runs.iter().any(|r| r.first > r.last) {
                return Err(invalid("reversed uid range in a search query"));
            }
            st::Query::Uids(runs.runs.into_iter().map(|r| (r.first, r.last)).collect())
        }
        Key::Flag(f) => st::Query::Flag(f),
        Key::Larger(n) => st::Query::Larger(n),
        Key::Smaller(n) => st::Query::Smaller(n),
        Key::Before(t) => st::Query::Before(t),
        Key::Since(t) => st::Query::Since(t),
        Key::SentBefore(t) => st::Query::SentBefore(t),
        Key::SentSince(t) => st::Query::SentSince(t),
        Key::Header(h) => field_from_pb(h)?,
        Key::Body(s) => st::Query::Body(s),
        Key::Text(s) => st::Query::Text(s),
        Key::Modseq(m) => st::Query::ModSeq(m),
    })
}

// ----- store housekeeping (`StoreAdmin`, admin.proto) -----

impl From<hk::StoreReport> for admin::StoreCheckReply {
    fn from(r: hk::StoreReport) -> Self {
        let ids = |v: Vec<st::BlobId>| v.into_iter().map(|b| b.0).collect();
        Self {
            db_bytes: r.db_bytes,
            messages: r.messages,
            blobs: r.blobs,
            blob_bytes: r.blob_bytes,
            unreferenced: r.unreferenced,
            unreferenced_bytes: r.unreferenced_bytes,
            collectable: r.collectable,
            collectable_bytes: r.collectable_bytes,
            missing: ids(r.missing),
            miscounted: ids(r.miscounted),
        }
    }
}

impl From<admin::StoreCheckReply> for hk::StoreReport {
    fn from(r: admin::StoreCheckReply) -> Self {
        let ids = |v: Vec<String>| v.into_iter().map(st::BlobId).collect();
        Self {
            db_bytes: r.db_bytes,
            messages: r.messages,
            blobs: r.blobs,
            blob_bytes: r.blob_bytes,
            unreferenced: r.unreferenced,
            unreferenced_bytes: r.unreferenced_bytes,
            collectable: r.collectable,
            collectable_bytes: r.collectable_bytes,
            missing: ids(r.missing),
            miscounted: ids(r.miscounted),
        }
    }
}

impl From<hk::Collected> for admin::CollectReply {
    fn from(c: hk::Collected) -> Self {
        Self {
            examined: c.examined,
            examined_bytes: c.examined_bytes,
            removed: c.removed,
            removed_bytes: c.removed_bytes,
            recent: c.recent,
        }
    }
}

impl From<admin::CollectReply> for hk::Collected {
    fn from(c: admin::CollectReply) -> Self {
        Self {
            examined: c.examined,
            examined_bytes: c.examined_bytes,
            removed: c.removed,
            removed_bytes: c.removed_bytes,
            recent: c.recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use st::{Field, Query};

    fn every_key() -> Query {
        Query::And(vec![
            Query::All,
            Query::Or(
                Box::new(Query::Flag("\\Seen".into())),
                Box::new(Query::Not(Box::new(Query::Flag("$Label".into())))),
            ),
            Query::Uids(vec![(1, 3), (7, 7)]),
            Query::Larger(10),
            Query::Smaller(1 << 40),
            Query::Before(-5),
            Query::Since(1_700_000_000),
            Query::SentBefore(1),
            Query::SentSince(2),
            Query::Header(Field::From, "pierre".into()),
            Query::Header(Field::To, "andre".into()),
            Query::Header(Field::Cc, String::new()),
            Query::Header(Field::Bcc, "x".into()),
            Query::Header(Field::Subject, "héllo".into()),
            Query::Header(Field::Other("List-Id".into()), "dev".into()),
            Query::Body("body".into()),
            Query::Text("text".into()),
            Query::ModSeq(42),
            Query::And(vec![]),
        ])
    }

    #[test]
    fn every_query_key_survives_the_round_trip() {
        let q = every_key();
        let wire = query_to_pb(&q).unwrap();
        // Through the bytes too, as the MDA would see it.
        let bytes = prost::Message::encode_to_vec(&wire);
        let decoded: pb::SearchKey = prost::Message::decode(&bytes[..]).unwrap();
        assert_eq!(query_from_pb(decoded).unwrap(), q);
    }

    fn nested(depth: usize) -> Query {
        let mut q = Query::All;
        for _ in 1..depth {
            q = Query::And(vec![q]);
        }
        q
    }

    #[test]
    fn the_deepest_query_allowed_decodes_and_a_deeper_one_is_refused() {
        let ok = query_to_pb(&nested(MAX_QUERY_DEPTH)).unwrap();
        let bytes = prost::Message::encode_to_vec(&pb::SearchRequest {
            mailbox: None,
            query: Some(ok),
        });
        let decoded: pb::SearchRequest = prost::Message::decode(&bytes[..]).unwrap();
        assert_eq!(
            query_from_pb(decoded.query.unwrap()).unwrap(),
            nested(MAX_QUERY_DEPTH)
        );

        let err = query_to_pb(&nested(MAX_QUERY_DEPTH + 1)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        // A peer that builds the deep tree itself is refused on decoding.
        let mut deep = pb::SearchKey {
            key: Some(pb::search_key::Key::All(true)),
        };
        for _ in 0..MAX_QUERY_DEPTH {
            deep = pb::SearchKey {
                key: Some(pb::search_key::Key::Not(Box::new(deep))),
            };
        }
        assert_eq!(
            query_from_pb(deep).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn too_many_keys_or_ranges_are_refused() {
        let wide = Query::And(vec![Query::All; MAX_QUERY_NODES]);
        assert!(query_to_pb(&wide).is_err());
        let fits = Query::And(vec![Query::All; MAX_QUERY_NODES - 1]);
        assert!(query_to_pb(&fits).is_ok());
        let ranges = Query::Uids((0..=MAX_QUERY_RANGES as u32).map(|u| (u, u)).collect());
        assert!(query_to_pb(&ranges).is_err());
    }

    #[test]
    fn malformed_wire_keys_are_refused() {
        use pb::search_key::Key;
        let all = || pb::SearchKey {
            key: Some(Key::All(true)),
        };
        let bad = [
            pb::SearchKey { key: None },
            pb::SearchKey {
                key: Some(Key::Or(pb::SearchKeys { keys: vec![all()] })),
            },
            pb::SearchKey {
                key: Some(Key::Uids(pb::UidRuns {
                    runs: vec![pb::UidRange { first: 5, last: 4 }],
                })),
            },
            pb::SearchKey {
                key: Some(Key::Header(pb::SearchHeader {
                    field: pb::SearchField::Other as i32,
                    name: String::new(),
                    value: "x".into(),
                })),
            },
            pb::SearchKey {
                key: Some(Key::Header(pb::SearchHeader {
                    field: 99,
                    name: String::new(),
                    value: "x".into(),
                })),
            },
        ];
        for k in bad {
            assert_eq!(
                query_from_pb(k.clone()).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{k:?}"
            );
        }
    }

    #[test]
    fn uid_runs_round_trip_and_bad_runs_are_refused() {
        let uids = [1, 2, 3, 7, 9, 10, u32::MAX - 1, u32::MAX];
        let runs = uids_to_runs(&uids);
        assert_eq!(runs.runs.len(), 4);
        assert_eq!(runs_to_uids(&runs).unwrap(), uids);
        assert!(runs_to_uids(&uids_to_runs(&[])).unwrap().is_empty());
        let overlapping = pb::UidRuns {
            runs: vec![
                pb::UidRange { first: 1, last: 5 },
                pb::UidRange { first: 5, last: 6 },
            ],
        };
        assert!(runs_to_uids(&overlapping).is_err());
        let huge = pb::UidRuns {
            runs: vec![pb::UidRange {
                first: 1,
                last: u32::MAX,
            }],
        };
        assert!(runs_to_uids(&huge).is_err());
    }

    #[test]
    fn roles_statuses_and_copies_survive_the_round_trip() {
        for role in [None]
            .into_iter()
            .chain(st::Role::DEFAULTS.iter().map(|(r, _)| Some(*r)))
        {
            assert_eq!(role_from_pb(role_to_pb(role) as i32).unwrap(), role);
        }
        assert!(role_from_pb(77).is_err());
        let info = st::MailboxInfo {
            name: "Sent".into(),
            role: Some(st::Role::Sent),
            subscribed: true,
        };
        assert_eq!(mailbox_info_from_pb(info.clone().into()).unwrap(), info);
        let s = st::MailboxStatus {
            uidvalidity: 1,
            uidnext: 2,
            exists: 3,
            unseen: 4,
            highest_modseq: 5,
            size: 6,
            deleted: 7,
        };
        let kw = vec!["$Label".to_owned()];
        assert_eq!(status_from_pb(status_to_pb(s, kw.clone())), (s, kw));
        let c = st::Copied {
            uidvalidity: 9,
            uids: vec![(1, 10), (4, 11)],
        };
        assert_eq!(copied_from_pb(c.clone().into()).unwrap(), c);
        for op in [st::FlagOp::Add, st::FlagOp::Remove, st::FlagOp::Replace] {
            assert_eq!(flag_op_from_pb(flag_op_to_pb(op) as i32).unwrap(), op);
        }
    }
}
