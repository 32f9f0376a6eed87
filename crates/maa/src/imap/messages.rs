//! FETCH and STORE over the MDA. FETCH asks for metadata and bytes one window
//! of messages at a time (`Mda::fetch`, streamed; only the message being
//! answered is in memory; a header-only fetch reads only headers) and gathers
//! the answers into large writes; a metadata-only fetch (FLAGS, UID, MODSEQ,
//! ...) reads no bytes and asks `Mda::metas` for a thousand messages a call,
//! one write each. STORE changes flags in one call per chunk (CONDSTORE's
//! UNCHANGEDSINCE gives `[MODIFIED]`).

use std::num::{NonZeroU32, NonZeroU64};

use futures::StreamExt;
use imap_next::imap_types::command::{FetchModifier, StoreModifier};
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::sequence::SequenceSet;

use super::conn::Connection;
use super::fetch::{self, Need};
use super::mailbox::{Selected, seq};
use super::reply::{bad, mda_error, no, noperm, ok};
use super::session::Ctx;
use super::{ImapError, notify, seqset};
use crate::mda::{Fetched, FlagOp, Mda, MessageMeta, Part, Query, Uid};

/// Messages asked of the MDA in one `fetch` call.
const FETCH_WINDOW: usize = 64;

/// Messages asked of the MDA in one `metas` call (its most) by a
/// metadata-only FETCH.
const METAS_WINDOW: usize = 1024;

/// Uids per `store_flags` call.
const STORE_CHUNK: usize = 1024;

/// FETCH and UID FETCH (with CHANGEDSINCE and VANISHED, RFC 7162).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch<M: Mda>(
    ctx: &mut Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers: &[FetchModifier],
) -> Result<Status<'static>, ImapError> {
    let mut plan = fetch::plan(names, uid);
    let mut changed_since = None;
    let mut vanished = false;
    for m in modifiers {
        match m {
            FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished && (!uid || !ctx.enabled.qresync || changed_since.is_none()) {
        return Ok(bad(
            tag,
            "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE.",
        ));
    }
    let set_seen = plan.sets_seen && !sel.read_only;
    // CHANGEDSINCE answers with MODSEQ (RFC 7162 §3.1.4); so does a FETCH
    // that sets \Seen under CONDSTORE, as every flag change does (§3.1).
    let with_modseq = changed_since.is_some() || (set_seen && ctx.enabled.condstore);
    if with_modseq && !plan.items.contains(&MessageDataItemName::ModSeq) {
        plan.items.push(MessageDataItemName::ModSeq);
    }
    if plan.items.contains(&MessageDataItemName::ModSeq) {
        ctx.enabled.condstore = true; // RFC 7162 §3.1: CONDSTORE by use
    }
    let ranges = match seqset::resolve(set, &sel.uids, uid) {
        Ok(v) => v,
        Err(_) => return Ok(bad(tag, "Invalid message sequence number.")),
    };
    if vanished && let Some(since) = changed_since {
        let wanted = seqset::search_ranges(set, &sel.uids, true);
        match ctx.mda.changes(&sel.mref, since).await {
            Ok(changes) => notify::vanished_earlier(conn, &changes.expunged, Some(&wanted)),
            Err(e) => return Ok(mda_error(tag, "Changes", &e, false)),
        }
    }
    let uids: Vec<Uid> = match changed_since {
        None => sel.uids_at(&ranges),
        Some(since) => {
            let wanted = ranges
                .iter()
                .flat_map(|r| sel.uids.uid_ranges(r.clone()))
                .collect();
            let query = Query::And(vec![Query::Uids(wanted), Query::ModSeq(since + 1)]);
            match ctx.mda.search(&sel.mref, &query).await {
                Ok((found, _)) => found,
                Err(e) => return Ok(mda_error(tag, "Search", &e, false)),
            }
        }
    };
    let part = match plan.need {
        Need::Nothing => Part::None,
        Need::Header => Part::Header,
        Need::Whole => Part::Whole,
    };
    if part == Part::None {
        // Metadata only (FLAGS, UID, MODSEQ, ...): large batches of metadata,
        // no message streams.
        let mut missing = false;
        for window in uids.chunks(METAS_WINDOW) {
            let metas = match ctx.mda.metas(&sel.mref, window).await {
                Ok(m) => m,
                Err(e) => return Ok(mda_error(tag, "Metas", &e, false)),
            };
            missing |= metas.len() < window.len();
            for m in &metas {
                // A message another session expunged meanwhile has no number.
                let Some(idx) = sel.uids.position(m.uid) else {
                    continue;
                };
                let items = match fetch::build(&plan, m, &[]) {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::debug!(uid = m.uid, error = %e, "BINARY refused");
                        return Ok(no(tag, Some(unknown_cte()), "Cannot decode the part."));
                    }
                };
                if let Ok(items) = Vec1::try_from(items) {
                    conn.data(Data::Fetch {
                        seq: seq(idx),
                        items,
                    });
                }
            }
            conn.flush().await?;
        }
        return Ok(if missing {
            tracing::debug!("FETCH of vanished messages");
            no(tag, None, "Some messages were expunged meanwhile.")
        } else {
            ok(tag, None, "Fetch completed.")
        });
    }
    let mut missing = false;
    for window in uids.chunks(FETCH_WINDOW) {
        if set_seen {
            // Set \Seen first, so the FLAGS answered are the stored ones.
            match ctx
                .mda
                .store_flags(&sel.mref, window, FlagOp::Add, &["\\Seen".to_owned()], None)
                .await
            {
                Ok(r) => {
                    for m in r.updated {
                        sel.reported.insert(m.uid, m.modseq);
                    }
                }
                Err(e) => return Ok(mda_error(tag, "StoreFlags", &e, false)),
            }
        }
        let mut stream = match ctx.mda.fetch(&sel.mref, window, part).await {
            Ok(s) => s,
            Err(e) => return Ok(mda_error(tag, "Fetch", &e, false)),
        };
        let mut meta: Option<MessageMeta> = None;
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(Fetched::Meta(m)) => {
                    meta = Some(m);
                    bytes.clear();
                }
                Ok(Fetched::Data(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(Fetched::End) => {
                    let Some(m) = meta.take() else { continue };
                    // A message another session expunged meanwhile has no number.
                    if let Some(idx) = sel.uids.position(m.uid) {
                        let items = match fetch::build(&plan, &m, &bytes) {
                            Ok(items) => items,
                            Err(e) => {
                                tracing::debug!(uid = m.uid, error = %e, "BINARY refused");
                                return Ok(no(tag, Some(unknown_cte()), "Cannot decode the part."));
                            }
                        };
                        if let Ok(items) = Vec1::try_from(items) {
                            conn.data(Data::Fetch {
                                seq: seq(idx),
                                items,
                            });
                        }
                    }
                    bytes = Vec::new();
                    if plan.need == Need::Whole {
                        conn.flush().await?;
                    }
                }
                Ok(Fetched::Missing(u)) => {
                    tracing::debug!(uid = u, "FETCH of a vanished message");
                    missing = true;
                }
                Err(e) => return Ok(mda_error(tag, "Fetch", &e, false)),
            }
        }
        if plan.need == Need::Header {
            conn.flush().await?;
        }
    }
    if missing {
        Ok(no(tag, None, "Some messages were expunged meanwhile."))
    } else {
        Ok(ok(tag, None, "Fetch completed."))
    }
}

/// `[UNKNOWN-CTE]` (RFC 3516 §4.3).
fn unknown_cte() -> Code<'static> {
    Code::UnknownCte
}

/// A STORE command, parsed.
pub(super) struct StoreReq<'a> {
    pub(super) set: &'a SequenceSet,
    pub(super) kind: StoreType,
    pub(super) response: StoreResponse,
    pub(super) flags: &'a [Flag<'a>],
    pub(super) uid: bool,
    pub(super) modifiers: &'a [StoreModifier],
}

/// STORE and UID STORE (with UNCHANGEDSINCE, RFC 7162 §3.1.3).
pub(super) async fn store<M: Mda>(
    ctx: &mut Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    req: StoreReq<'_>,
) -> Status<'static> {
    if sel.read_only {
        return no(tag, Some(noperm()), "Mailbox is read-only.");
    }
    let ranges = match seqset::resolve(req.set, &sel.uids, req.uid) {
        Ok(v) => v,
        Err(_) => return bad(tag, "Invalid message sequence number."),
    };
    let mut unchanged_since = None;
    for m in req.modifiers {
        let StoreModifier::UnchangedSince(n) = m;
        unchanged_since = Some(*n);
        ctx.enabled.condstore = true;
    }
    let changes: Vec<String> = req
        .flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let op = match req.kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    let uids = sel.uids_at(&ranges);
    let mut failed: Vec<Uid> = Vec::new();
    for chunk in uids.chunks(STORE_CHUNK) {
        let result = match ctx
            .mda
            .store_flags(&sel.mref, chunk, op, &changes, unchanged_since)
            .await
        {
            Ok(r) => r,
            Err(e) => return mda_error(tag, "StoreFlags", &e, false),
        };
        failed.extend(result.failed_modified);
        // RFC 7162 §3.1.3: under CONDSTORE even .SILENT answers, with the MODSEQ.
        let silent = req.response == StoreResponse::Silent;
        for meta in result.updated {
            sel.reported.insert(meta.uid, meta.modseq);
            if silent && !ctx.enabled.condstore {
                continue;
            }
            let Some(idx) = sel.uids.position(meta.uid) else {
                continue;
            };
            let mut items = Vec::with_capacity(3);
            if !silent {
                items.push(fetch::flags_item(&meta.flags));
            }
            if let (true, Some(u)) = (req.uid, NonZeroU32::new(meta.uid)) {
                items.push(MessageDataItem::Uid(u));
            }
            if ctx.enabled.condstore
                && let Some(m) = NonZeroU64::new(meta.modseq)
            {
                items.push(MessageDataItem::ModSeq(m));
            }
            if let Ok(items) = Vec1::try_from(items) {
                conn.data(Data::Fetch {
                    seq: seq(idx),
                    items,
                });
            }
        }
    }
    if !failed.is_empty() {
        let numbers: Vec<Uid> = if req.uid {
            failed
        } else {
            failed
                .iter()
                .filter_map(|u| sel.uids.position(*u))
                .filter_map(|i| u32::try_from(i + 1).ok())
                .collect()
        };
        if let Some(set) = seqset::to_set(&numbers) {
            return ok(tag, Some(Code::Modified(set)), "Conditional store failed.");
        }
    }
    ok(tag, None, "Store completed.")
}
