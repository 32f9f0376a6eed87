//! SEARCH and UID SEARCH: the keys of RFC 9051 §6.4.4 (and MODSEQ, RFC 7162)
//! as one store [`Query`] (message numbers become uid ranges, dates UTC day
//! starts in unix seconds), run by the MDA; the answer as `* SEARCH` or, with
//! RETURN options or IMAP4rev2, `* ESEARCH` (RFC 4731).

use std::num::{NonZeroU32, NonZeroU64};

use imap_next::imap_types::core::{Charset, Tag};
use imap_next::imap_types::datetime::NaiveDate;
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::search::SearchKey;

use super::conn::Connection;
use super::mailbox::Selected;
use super::reply::{bad, bad_code, mda_error, no, ok, toobig};
use super::seqset::{self, UidList};
use super::session::Ctx;
use super::{ImapError, date};
use crate::mda::{Mda, Query, Uid};
use facteur_store::mail::Field;

/// Deepest query accepted (the MDA's own limit: deeper ones would not cross gRPC).
const MAX_DEPTH: usize = facteur_rpc::convert::MAX_QUERY_DEPTH;
/// Most query nodes accepted.
const MAX_NODES: usize = facteur_rpc::convert::MAX_QUERY_NODES;

/// ESEARCH return options (RFC 4731); all false = `ALL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Return {
    pub(super) min: bool,
    pub(super) max: bool,
    pub(super) count: bool,
    pub(super) all: bool,
}

/// A SEARCH command, parsed.
pub(super) struct SearchReq<'a> {
    pub(super) charset: Option<&'a Charset<'a>>,
    pub(super) criteria: &'a [SearchKey<'a>],
    pub(super) uid: bool,
    /// `SEARCH RETURN (...)`: answer with ESEARCH.
    pub(super) ret: Option<Return>,
}

/// Why a SEARCH cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refused {
    #[error("search nested too deeply")]
    TooDeep,
    #[error("search too large")]
    TooLarge,
    #[error("invalid date")]
    Date,
}

/// What building a query found out.
#[derive(Debug, Default)]
struct Built {
    nodes: usize,
    /// A MODSEQ key: the answer carries `(MODSEQ n)`.
    modseq: bool,
}

fn day_start(d: &NaiveDate) -> Result<i64, Refused> {
    date::search_days(d)
        .map(|days| days * 86_400)
        .ok_or(Refused::Date)
}

fn text(s: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

fn header_field(name: &str) -> Field {
    match name.to_ascii_lowercase().as_str() {
        "from" => Field::From,
        "to" => Field::To,
        "cc" => Field::Cc,
        "bcc" => Field::Bcc,
        "subject" => Field::Subject,
        _ => Field::Other(name.to_owned()),
    }
}

fn flag(f: &str) -> Query {
    Query::Flag(f.to_owned())
}

fn not(q: Query) -> Query {
    Query::Not(Box::new(q))
}

/// Matches nothing (RECENT: this server has no \Recent).
fn nothing() -> Query {
    not(Query::All)
}

/// One key as a query, at `depth` (1 = top).
fn key(
    k: &SearchKey<'_>,
    uids: &UidList,
    depth: usize,
    built: &mut Built,
) -> Result<Query, Refused> {
    if depth > MAX_DEPTH {
        return Err(Refused::TooDeep);
    }
    built.nodes += 1;
    if built.nodes > MAX_NODES {
        return Err(Refused::TooLarge);
    }
    Ok(match k {
        SearchKey::All | SearchKey::Old => Query::All,
        SearchKey::New | SearchKey::Recent => nothing(),
        SearchKey::And(keys) => Query::And(
            keys.as_ref()
                .iter()
                .map(|k| key(k, uids, depth + 1, built))
                .collect::<Result<_, _>>()?,
        ),
        SearchKey::Or(a, b) => Query::Or(
            Box::new(key(a, uids, depth + 1, built)?),
            Box::new(key(b, uids, depth + 1, built)?),
        ),
        SearchKey::Not(k) => not(key(k, uids, depth + 1, built)?),
        SearchKey::SequenceSet(set) => Query::Uids(seqset::search_ranges(set, uids, false)),
        SearchKey::Uid(set) => Query::Uids(seqset::search_ranges(set, uids, true)),
        SearchKey::Answered => flag("\\Answered"),
        SearchKey::Unanswered => not(flag("\\Answered")),
        SearchKey::Deleted => flag("\\Deleted"),
        SearchKey::Undeleted => not(flag("\\Deleted")),
        SearchKey::Draft => flag("\\Draft"),
        SearchKey::Undraft => not(flag("\\Draft")),
        SearchKey::Flagged => flag("\\Flagged"),
        SearchKey::Unflagged => not(flag("\\Flagged")),
        SearchKey::Seen => flag("\\Seen"),
        SearchKey::Unseen => not(flag("\\Seen")),
        SearchKey::Keyword(k) => flag(k.as_ref()),
        SearchKey::Unkeyword(k) => not(flag(k.as_ref())),
        SearchKey::Larger(n) => Query::Larger(u64::from(*n)),
        SearchKey::Smaller(n) => Query::Smaller(u64::from(*n)),
        SearchKey::Before(d) => Query::Before(day_start(d)?),
        SearchKey::Since(d) => Query::Since(day_start(d)?),
        SearchKey::On(d) => {
            let day = day_start(d)?;
            Query::And(vec![Query::Since(day), Query::Before(day + 86_400)])
        }
        SearchKey::SentBefore(d) => Query::SentBefore(day_start(d)?),
        SearchKey::SentSince(d) => Query::SentSince(day_start(d)?),
        SearchKey::SentOn(d) => {
            let day = day_start(d)?;
            Query::And(vec![Query::SentSince(day), Query::SentBefore(day + 86_400)])
        }
        SearchKey::From(s) => Query::Header(Field::From, text(s)),
        SearchKey::To(s) => Query::Header(Field::To, text(s)),
        SearchKey::Cc(s) => Query::Header(Field::Cc, text(s)),
        SearchKey::Bcc(s) => Query::Header(Field::Bcc, text(s)),
        SearchKey::Subject(s) => Query::Header(Field::Subject, text(s)),
        SearchKey::Header(name, value) => Query::Header(header_field(&text(name)), text(value)),
        SearchKey::Body(s) => Query::Body(text(s)),
        SearchKey::Text(s) => Query::Text(text(s)),
        SearchKey::ModSequence { modseq, .. } => {
            built.modseq = true;
            Query::ModSeq(*modseq)
        }
    })
}

/// The criteria of a SEARCH (all must match) as one query.
fn build(criteria: &[SearchKey<'_>], uids: &UidList) -> Result<(Query, Built), Refused> {
    let mut built = Built::default();
    let mut all = criteria
        .iter()
        .map(|k| key(k, uids, 2, &mut built))
        .collect::<Result<Vec<_>, _>>()?;
    let q = if all.len() == 1 {
        all.remove(0)
    } else {
        Query::And(all)
    };
    Ok((q, built))
}

/// SEARCH and UID SEARCH.
pub(super) async fn search<M: Mda>(
    ctx: &mut Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    req: SearchReq<'_>,
) -> Result<Status<'static>, ImapError> {
    if let Some(cs) = req.charset {
        let cs = cs.as_ref();
        if !cs.eq_ignore_ascii_case("US-ASCII") && !cs.eq_ignore_ascii_case("UTF-8") {
            let allowed = ["UTF-8", "US-ASCII"]
                .into_iter()
                .filter_map(|c| Charset::try_from(c).ok())
                .collect();
            return Ok(no(
                tag,
                Some(Code::badcharset(allowed)),
                "Unsupported charset.",
            ));
        }
    }
    let (query, built) = match build(req.criteria, &sel.uids) {
        Ok(q) => q,
        Err(Refused::TooDeep) => return Ok(bad(tag, "Search keys nested too deeply.")),
        Err(Refused::TooLarge) => {
            return Ok(bad_code(tag, toobig(), "Too many search keys."));
        }
        Err(Refused::Date) => return Ok(bad(tag, "Invalid date.")),
    };
    if built.modseq {
        ctx.enabled.condstore = true;
    }
    let (found, highest) = match ctx.mda.search(&sel.mref, &query).await {
        Ok(r) => r,
        Err(e) => return Ok(mda_error(tag, "Search", &e, false)),
    };
    // Matches the session has no number for yet (new mail) are left out.
    let values: Vec<u32> = found
        .iter()
        .filter_map(|u| {
            let idx = sel.uids.position(*u)?;
            Some(if req.uid {
                *u
            } else {
                u32::try_from(idx + 1).ok()?
            })
        })
        .collect();
    let modseq = if built.modseq {
        NonZeroU64::new(highest)
    } else {
        None
    };
    let ret = req.ret.or(ctx.enabled.rev2.then(Return::default));
    match ret {
        None => conn.data(Data::Search(
            values.iter().filter_map(|v| NonZeroU32::new(*v)).collect(),
            modseq.filter(|_| !values.is_empty()),
        )),
        Some(ret) => {
            let line = esearch(&tag, req.uid, ret, &values, modseq);
            conn.raw(line).await?;
        }
    }
    Ok(ok(tag, None, "Search completed."))
}

/// `* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set] [MODSEQ n]`
/// (RFC 4731 §3.1; imap-types has no ESEARCH response, so it is written here).
pub(super) fn esearch(
    tag: &Tag<'_>,
    uid: bool,
    ret: Return,
    values: &[Uid],
    modseq: Option<NonZeroU64>,
) -> Vec<u8> {
    let mut line = format!("* ESEARCH (TAG \"{}\")", tag.as_ref());
    if uid {
        line.push_str(" UID");
    }
    let all = !(ret.min || ret.max || ret.count) || ret.all;
    if ret.min
        && let Some(v) = values.iter().min()
    {
        line.push_str(&format!(" MIN {v}"));
    }
    if ret.max
        && let Some(v) = values.iter().max()
    {
        line.push_str(&format!(" MAX {v}"));
    }
    if ret.count {
        line.push_str(&format!(" COUNT {}", values.len()));
    }
    if all && !values.is_empty() {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        line.push_str(&format!(" ALL {}", seqset::set_text(&sorted)));
    }
    if let Some(m) = modseq.filter(|_| !values.is_empty()) {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line.push_str("\r\n");
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> SearchKey<'static> {
        // `SEARCH` arguments through imap-codec: the way they arrive.
        use imap_next::imap_types::command::CommandBody;
        let cmd = format!("a SEARCH {s}\r\n");
        let codec = imap_codec_command();
        match codec(cmd.as_bytes()) {
            Some(CommandBody::Search { criteria, .. }) => {
                let mut v: Vec<SearchKey<'static>> = criteria.into_iter().collect();
                if v.len() == 1 {
                    v.remove(0)
                } else {
                    SearchKey::And(v.try_into().unwrap_or_else(|_| panic!()))
                }
            }
            other => panic!("not a search: {other:?}"),
        }
    }

    fn imap_codec_command()
    -> impl Fn(&[u8]) -> Option<imap_next::imap_types::command::CommandBody<'static>> {
        |bytes| {
            use imap_next::imap_types::IntoStatic;
            let mut server = imap_next::server::Server::new(
                imap_next::server::Options::default(),
                imap_next::imap_types::response::Greeting::ok(None, "x").ok()?,
            );
            use imap_next::State;
            server.enqueue_input(bytes);
            loop {
                match server.next() {
                    Ok(imap_next::server::Event::CommandReceived { command }) => {
                        return Some(command.body.into_static());
                    }
                    Ok(_) => {}
                    Err(imap_next::Interrupt::Io(imap_next::Io::Output(_))) => {}
                    Err(_) => return None,
                }
            }
        }
    }

    #[test]
    fn keys_become_store_queries() {
        let uids = UidList::from_uids(&[10, 11, 12, 20]);
        let (q, _) = build(&[keys("2:3")], &uids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q, Query::Uids(vec![(11, 12)]));
        let (q, _) = build(&[keys("NEW")], &uids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q, nothing());
        let (q, _) = build(&[keys("ON 14-Nov-2023")], &uids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q,
            Query::And(vec![
                Query::Since(1_699_920_000),
                Query::Before(1_700_006_400)
            ])
        );
        let (q, b) =
            build(&[keys("OR SUBJECT x MODSEQ 5")], &uids).unwrap_or_else(|e| panic!("{e}"));
        assert!(b.modseq);
        assert_eq!(
            q,
            Query::Or(
                Box::new(Query::Header(Field::Subject, "x".to_owned())),
                Box::new(Query::ModSeq(5))
            )
        );
        let (q, _) = build(&[keys("HEADER X-Spam yes")], &uids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q,
            Query::Header(Field::Other("X-Spam".to_owned()), "yes".to_owned())
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let uids = UidList::default();
        let mut deep = SearchKey::All;
        for _ in 0..MAX_DEPTH {
            deep = SearchKey::Not(Box::new(deep));
        }
        assert_eq!(build(&[deep.clone()], &uids).err(), Some(Refused::TooDeep));
        let fine = (0..MAX_DEPTH - 2).fold(SearchKey::All, |k, _| SearchKey::Not(Box::new(k)));
        assert!(build(&[fine], &uids).is_ok());
    }

    #[test]
    fn esearch_lines() {
        let tag = Tag::try_from("a1").unwrap_or_else(|_| panic!());
        let all = esearch(&tag, true, Return::default(), &[1, 2, 3, 7], None);
        assert_eq!(all, b"* ESEARCH (TAG \"a1\") UID ALL 1:3,7\r\n");
        let r = Return {
            min: true,
            max: true,
            count: true,
            all: false,
        };
        let some = esearch(&tag, false, r, &[2, 9], NonZeroU64::new(4));
        assert_eq!(
            some,
            b"* ESEARCH (TAG \"a1\") MIN 2 MAX 9 COUNT 2 MODSEQ 4\r\n"
        );
        let none = esearch(&tag, false, r, &[], None);
        assert_eq!(none, b"* ESEARCH (TAG \"a1\") COUNT 0\r\n");
    }
}
