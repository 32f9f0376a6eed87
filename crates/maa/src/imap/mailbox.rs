//! The selected mailbox: SELECT/EXAMINE (with the CONDSTORE and QRESYNC
//! parameters, RFC 7162), EXPUNGE, UID EXPUNGE and CLOSE.
//!
//! The session keeps only the selected mailbox's uids ([`UidList`], message
//! number n is the n-th uid) and the highest modseq it has announced; message
//! metadata and bytes are asked of the MDA per command, window by window.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64};

use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::command::SelectParameter;
use imap_next::imap_types::core::{QuotedChar, Tag};
use imap_next::imap_types::flag::{Flag, FlagPerm};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::sequence::SequenceSet;

use super::conn::Connection;
use super::reply::{bad, mda_error, no, noperm, ok, untagged_ok};
use super::seqset::{self, UidList};
use super::session::Ctx;
use super::{names, notify};
use crate::mda::{BoxStream, MailboxRef, Mda, Query, Uid};

const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// The selected mailbox.
pub(super) struct Selected {
    pub(super) mref: MailboxRef,
    pub(super) read_only: bool,
    /// The uids, in message number order.
    pub(super) uids: UidList,
    /// Every change up to this modseq has been announced to the client.
    pub(super) modseq: u64,
    /// The newest modseq the watch reported.
    pub(super) watched: u64,
    /// Hints of new modseqs (`Mda::watch`); `None` if the MDA gave none.
    pub(super) watch: Option<Watch>,
    /// Flags this session already reported (STORE, FETCH setting \Seen):
    /// uid → modseq, so the next announcement does not repeat them.
    pub(super) reported: HashMap<Uid, u64>,
}

/// The watch stream. Behind a mutex only so that `Selected` is `Sync` (a
/// session future holds `&Selected` across awaits); it is never locked, only
/// reached through `&mut`.
pub(super) struct Watch(std::sync::Mutex<BoxStream<u64>>);

impl Watch {
    pub(super) fn stream(&mut self) -> &mut BoxStream<u64> {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Selected {
    /// The uids at these indexes.
    pub(super) fn uids_at(&self, ranges: &[std::ops::Range<usize>]) -> Vec<Uid> {
        self.uids.uids_in(ranges)
    }
}

pub(super) fn seq(idx: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(idx + 1).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// SELECT (`read_only = false`) and EXAMINE.
#[allow(clippy::too_many_arguments)]
pub(super) async fn select<M: Mda>(
    ctx: &mut Ctx<'_, M>,
    conn: &mut Connection,
    selected: &mut Option<Selected>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
    read_only: bool,
    params: &[SelectParameter],
) -> Status<'static> {
    // A SELECT that fails leaves no mailbox selected (RFC 9051 §6.3.2).
    if selected.take().is_some() {
        // RFC 7162 §3.2.11: the old mailbox is closed.
        conn.status(untagged_ok(Some(closed()), "Previous mailbox closed."));
    }
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let mut qresync = None;
    for p in params {
        match p {
            SelectParameter::CondStore => ctx.enabled.condstore = true,
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                ..
            } => {
                if !ctx.enabled.qresync {
                    return bad(tag, "QRESYNC is not enabled.");
                }
                qresync = Some((*uid_validity, *mod_sequence_value, known_uids.clone()));
            }
        }
    }
    let mref = ctx.mref(&name);
    let (status, keywords) = match ctx.mda.status(&mref).await {
        Ok(s) => s,
        Err(e) => return mda_error(tag, "Status", &e, false),
    };
    let uids = match ctx.mda.uids(&mref).await {
        Ok(u) => UidList::from_uids(&u),
        Err(e) => return mda_error(tag, "Uids", &e, false),
    };
    let watch = match ctx.mda.watch(&mref).await {
        Ok(w) => Some(Watch(std::sync::Mutex::new(w))),
        Err(e) => {
            tracing::warn!(error = %e, "Watch failed: changes show at NOOP only");
            None
        }
    };
    let Some(uidvalidity) = NonZeroU32::new(status.uidvalidity) else {
        tracing::error!(mailbox = %facteur_daemon::logging::clean(&name.to_string()), "MDA sent UIDVALIDITY 0");
        return no(
            tag,
            Some(super::reply::unavailable()),
            "Internal error occurred, try again later.",
        );
    };
    let uidnext = status
        .uidnext
        .max(uids.last().map_or(1, |l| l.saturating_add(1)));

    let mut flags: Vec<Flag<'static>> = SYSTEM_FLAGS
        .iter()
        .copied()
        .chain(keywords.iter().map(String::as_str))
        .filter_map(|f| Flag::try_from(f).ok().map(IntoStatic::into_static))
        .collect();
    flags.dedup();
    let perm: Vec<FlagPerm<'static>> = if read_only {
        Vec::new()
    } else {
        let mut p: Vec<FlagPerm<'static>> = flags.iter().cloned().map(FlagPerm::Flag).collect();
        p.push(FlagPerm::Asterisk);
        p
    };
    conn.data(Data::Flags(flags));
    conn.data(Data::Exists(uids.exists()));
    if !ctx.enabled.rev2 {
        conn.data(Data::Recent(0));
    } else if let (Some(wire), Ok(d)) = (
        names::to_wire(&name, true),
        QuotedChar::try_from(names::DELIMITER),
    ) {
        // RFC 9051 §6.3.2: the mailbox's name as LIST would give it.
        conn.data(Data::List {
            items: Vec::new(),
            delimiter: Some(d),
            mailbox: wire,
        });
    }
    conn.status(untagged_ok(
        Some(Code::PermanentFlags(perm)),
        "Flags permitted.",
    ));
    if !ctx.enabled.rev2 && status.unseen > 0 {
        let unseen = Query::Not(Box::new(Query::Flag("\\Seen".to_owned())));
        if let Ok((found, _)) = ctx.mda.search(&mref, &unseen).await
            && let Some(idx) = found.first().and_then(|u| uids.position(*u))
        {
            conn.status(untagged_ok(Some(Code::Unseen(seq(idx))), "First unseen."));
        }
    }
    conn.status(untagged_ok(
        Some(Code::UidValidity(uidvalidity)),
        "UIDs valid.",
    ));
    if let Some(next) = NonZeroU32::new(uidnext) {
        conn.status(untagged_ok(
            Some(Code::UidNext(next)),
            "Predicted next UID.",
        ));
    }
    if ctx.enabled.condstore
        && let Some(h) = NonZeroU64::new(status.highest_modseq)
    {
        conn.status(untagged_ok(Some(Code::HighestModSeq(h)), "Highest."));
    }
    let mut sel = Selected {
        mref,
        read_only,
        uids,
        modseq: status.highest_modseq,
        watched: status.highest_modseq,
        watch,
        reported: HashMap::new(),
    };
    if let Some((validity, since, known)) = qresync
        && validity.get() == status.uidvalidity
        && let Err(e) = notify::resync(ctx, conn, &mut sel, since.get(), known.as_ref()).await
    {
        return mda_error(tag, "Changes", &e, false);
    }
    let (code, text) = if read_only {
        (Code::ReadOnly, "Examine completed.")
    } else {
        (Code::ReadWrite, "Select completed.")
    };
    *selected = Some(sel);
    ok(tag, Some(code), text)
}

/// `[CLOSED]` (RFC 7162 §3.2.11).
fn closed() -> Code<'static> {
    Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(
        &b"CLOSED"[..],
    ))
}

/// EXPUNGE, or UID EXPUNGE of `set` (RFC 4315): removes the `\Deleted`
/// messages and announces each one.
pub(super) async fn expunge<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    set: Option<&SequenceSet>,
) -> Status<'static> {
    if sel.read_only {
        return no(tag, Some(noperm()), "Mailbox is read-only.");
    }
    let result = match set {
        None => ctx.mda.expunge(&sel.mref, None).await,
        Some(set) => {
            let ranges = match seqset::resolve(set, &sel.uids, true) {
                Ok(r) => r,
                Err(_) => return bad(tag, "Invalid UID set."),
            };
            let wanted: Vec<(Uid, Uid)> = ranges
                .into_iter()
                .flat_map(|r| sel.uids.uid_ranges(r))
                .collect();
            let query = Query::And(vec![
                Query::Uids(wanted),
                Query::Flag("\\Deleted".to_owned()),
            ]);
            match ctx.mda.search(&sel.mref, &query).await {
                Ok((found, _)) if found.is_empty() => Ok(Vec::new()),
                Ok((found, _)) => ctx.mda.expunge(&sel.mref, Some(&found)).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(gone) => {
            notify::expunged(ctx, conn, sel, &gone);
            let code = notify::highest_after_expunge(ctx, conn, sel, &gone).await;
            ok(tag, code, "Expunge completed.")
        }
        Err(e) => mda_error(tag, "Expunge", &e, false),
    }
}

/// CLOSE: expunge silently (not in EXAMINE), then leave the mailbox.
pub(super) async fn close<M: Mda>(
    ctx: &Ctx<'_, M>,
    sel: &Selected,
    tag: Tag<'static>,
) -> Status<'static> {
    if sel.read_only {
        return ok(tag, None, "Close completed.");
    }
    match ctx.mda.expunge(&sel.mref, None).await {
        Ok(_) => ok(tag, None, "Close completed."),
        Err(e) => mda_error(tag, "Expunge", &e, false),
    }
}
