//! Sessions see each other: what other sessions and deliveries changed in the
//! selected mailbox, announced as `EXISTS`, `FETCH (UID FLAGS [MODSEQ])` and
//! `EXPUNGE` (or `VANISHED` under QRESYNC), from `Mda::changes` since the
//! highest modseq announced. The `Mda::watch` stream says when to look: at a
//! command boundary it is polled without waiting, under IDLE it is awaited.

use std::num::NonZeroU64;

use futures::FutureExt;
use futures::StreamExt;
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::response::{Code, CommandContinuationRequest, Data};
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::server::Event;

use super::ImapError;
use super::conn::{Connection, Input};
use super::fetch::flags_item;
use super::mailbox::{Selected, seq};
use super::reply::{bye, login_first, ok, text, untagged_bad};
use super::seqset;
use super::session::{Ctx, Session, Step};
use crate::mda::{Changes, Mda, MdaError, MessageMeta, Uid};

/// Take every modseq the watch has ready, without waiting.
fn drain(sel: &mut Selected) {
    while let Some(watch) = sel.watch.as_mut() {
        match watch.stream().next().now_or_never() {
            Some(Some(Ok(modseq))) => sel.watched = sel.watched.max(modseq),
            Some(Some(Err(e))) => {
                tracing::debug!(error = %e, "watch failed");
                sel.watch = None;
            }
            // The mailbox went away, or the stream ended.
            Some(None) => sel.watch = None,
            None => break,
        }
    }
}

/// Announce the changes since the last announcement, if the watch says there
/// are any (always when there is no watch, or with `force`). With
/// `expunge_allowed = false` (FETCH, STORE, SEARCH by message number) nothing
/// is announced: the changes wait for the next command.
pub(super) async fn sync<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    expunge_allowed: bool,
    force: bool,
) {
    drain(sel);
    if !expunge_allowed {
        return;
    }
    if sel.watch.is_some() && sel.watched <= sel.modseq && !force {
        return;
    }
    match ctx.mda.changes(&sel.mref, sel.modseq).await {
        Ok(changes) => apply(ctx, conn, sel, changes),
        Err(e) => tracing::warn!(error = %e, "Changes failed: nothing announced"),
    }
}

/// `[HIGHESTMODSEQ n]` for the tagged OK of EXPUNGE, UID EXPUNGE or MOVE that
/// removed messages (RFC 7162 §3.2.10), under CONDSTORE. Every change up to the
/// mailbox's modseq is announced first, so the client may resync from the value.
pub(super) async fn highest_after_expunge<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    expunged: &[Uid],
) -> Option<Code<'static>> {
    if !ctx.enabled.condstore || expunged.is_empty() {
        return None;
    }
    sync(ctx, conn, sel, true, true).await;
    NonZeroU64::new(sel.modseq).map(Code::HighestModSeq)
}

/// One `FETCH (UID n FLAGS (...) [MODSEQ (m)])`.
pub(super) fn flags_fetch(conn: &mut Connection, idx: usize, meta: &MessageMeta, modseq: bool) {
    let mut items = Vec::with_capacity(3);
    if let Some(uid) = std::num::NonZeroU32::new(meta.uid) {
        items.push(MessageDataItem::Uid(uid));
    }
    items.push(flags_item(&meta.flags));
    if modseq && let Some(m) = NonZeroU64::new(meta.modseq) {
        items.push(MessageDataItem::ModSeq(m));
    }
    if let Ok(items) = Vec1::try_from(items) {
        conn.data(Data::Fetch {
            seq: seq(idx),
            items,
        });
    }
}

fn apply<M>(ctx: &Ctx<'_, M>, conn: &mut Connection, sel: &mut Selected, changes: Changes) {
    expunged(ctx, conn, sel, &changes.expunged);
    let mut new = 0u32;
    for meta in &changes.updated {
        match sel.uids.position(meta.uid) {
            Some(idx) => {
                if sel
                    .reported
                    .get(&meta.uid)
                    .is_some_and(|&m| m >= meta.modseq)
                {
                    continue;
                }
                flags_fetch(conn, idx, meta, ctx.enabled.condstore);
            }
            None => {
                if sel.uids.push(meta.uid) {
                    new += 1;
                }
            }
        }
    }
    if new > 0 {
        conn.data(Data::Exists(sel.uids.exists()));
        if !ctx.enabled.rev2 {
            conn.data(Data::Recent(0));
        }
    }
    sel.modseq = sel.modseq.max(changes.highest_modseq);
    sel.watched = sel.watched.max(sel.modseq);
    sel.reported.clear();
}

/// Remove expunged uids from the session and announce them: `* n EXPUNGE`
/// for each, or one `* VANISHED` under QRESYNC. Uids the session did not
/// know are skipped.
pub(super) fn expunged<M>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    uids: &[Uid],
) {
    let mut gone = Vec::new();
    for &uid in uids {
        if let Some(idx) = sel.uids.remove(uid) {
            if ctx.enabled.qresync {
                gone.push(uid);
            } else {
                conn.data(Data::Expunge(seq(idx)));
            }
        }
    }
    gone.sort_unstable();
    if let Some(set) = seqset::to_set(&gone) {
        conn.data(Data::Vanished {
            earlier: false,
            known_uids: set,
        });
    }
}

/// SELECT with QRESYNC (RFC 7162 §3.2.5): `* VANISHED (EARLIER)` for the
/// known uids expunged since `since`, and a FETCH for every message changed
/// since. The session's modseq stays at SELECT's, so a message that arrived
/// meanwhile is announced by the next command.
pub(super) async fn resync<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    since: u64,
    known: Option<&SequenceSet>,
) -> Result<(), MdaError> {
    let changes = ctx.mda.changes(&sel.mref, since).await?;
    let known = known.map(seqset::literal_ranges);
    vanished_earlier(conn, &changes.expunged, known.as_deref());
    for meta in &changes.updated {
        if let Some(idx) = sel.uids.position(meta.uid) {
            flags_fetch(conn, idx, meta, true);
            sel.reported.insert(meta.uid, meta.modseq);
        }
    }
    Ok(())
}

/// `* VANISHED (EARLIER)` of the expunged uids within `ranges` (inclusive; all
/// when `None`): QRESYNC's SELECT and `UID FETCH ... (VANISHED)` (RFC 7162 §3.2.5, §3.2.6).
pub(super) fn vanished_earlier(
    conn: &mut Connection,
    expunged: &[Uid],
    ranges: Option<&[(Uid, Uid)]>,
) {
    let within = |u: Uid| ranges.is_none_or(|r| r.iter().any(|&(a, b)| a <= u && u <= b));
    let gone: Vec<Uid> = expunged.iter().copied().filter(|&u| within(u)).collect();
    if let Some(set) = seqset::to_set(&gone) {
        conn.data(Data::Vanished {
            earlier: true,
            known_uids: set,
        });
    }
}

/// What ended a wait under IDLE.
enum Woken {
    Watch(Option<Result<u64, MdaError>>),
    Input(Result<Input, ImapError>),
    Shutdown,
}

impl<M: Mda> Session<M> {
    /// IDLE (RFC 2177): changes to the selected mailbox are announced as soon
    /// as the watch reports them, until the client says DONE.
    pub(super) async fn idle(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
    ) -> Result<Step, ImapError> {
        if self.user.is_none() {
            let refusal = login_first(tag);
            if let Err(status) = conn.server.idle_reject(refusal) {
                conn.status(status);
            }
            return Ok(Step::Continue);
        }
        let cont = CommandContinuationRequest::basic(None, text("idling"));
        match cont {
            Ok(cont) => {
                if let Err(cont) = conn.server.idle_accept(cont) {
                    tracing::error!(?cont, "imap-next refused to accept IDLE");
                }
            }
            Err(e) => tracing::error!(?e, "IDLE continuation"),
        }
        self.announce(conn, true).await;
        conn.flush().await?;
        loop {
            let woken = {
                let (selected, shutdown) = (&mut self.selected, &self.ctx.shutdown);
                let watch = async {
                    match selected.as_mut().and_then(|s| s.watch.as_mut()) {
                        Some(w) => w.stream().next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => Woken::Shutdown,
                    input = conn.next_input() => Woken::Input(input),
                    w = watch => Woken::Watch(w),
                }
            };
            match woken {
                Woken::Shutdown => {
                    conn.status(bye("Server shutting down."));
                    return Ok(Step::Close);
                }
                Woken::Watch(next) => {
                    if let Some(sel) = self.selected.as_mut() {
                        match next {
                            Some(Ok(modseq)) => sel.watched = sel.watched.max(modseq),
                            _ => sel.watch = None,
                        }
                    }
                    self.announce(conn, true).await;
                    conn.flush().await?;
                }
                Woken::Input(input) => match input? {
                    Input::Event(Event::IdleDoneReceived) => break,
                    Input::Closed => return Ok(Step::Close),
                    Input::TooBig => {
                        conn.status(bye("Literal too big."));
                        return Ok(Step::Close);
                    }
                    Input::Invalid(e) => {
                        tracing::debug!(error = %e, "not DONE under IDLE");
                        conn.status(untagged_bad("Expected DONE."));
                        conn.flush().await?;
                    }
                    Input::Event(other) => {
                        tracing::debug!(?other, "unexpected event under IDLE");
                    }
                },
            }
        }
        self.announce(conn, true).await;
        conn.status(ok(tag, None, "IDLE terminated."));
        Ok(Step::Continue)
    }
}
