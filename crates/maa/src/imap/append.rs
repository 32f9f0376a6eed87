//! Messages into mailboxes: APPEND (flags, date; `[APPENDUID]`), COPY and
//! MOVE (RFC 6851; `[COPYUID]`, RFC 4315). A missing target is
//! `NO [TRYCREATE]`.

use std::num::NonZeroU32;

use imap_next::imap_types::core::Tag;
use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_next::imap_types::flag::Flag;
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Status};
use imap_next::imap_types::sequence::SequenceSet;

use super::conn::Connection;
use super::mailbox::Selected;
use super::reply::{bad, mda_error, no, noperm, ok, untagged_ok};
use super::session::Ctx;
use super::{notify, seqset};
use crate::mda::{Mda, Uid};

/// APPEND (RFC 9051 §6.3.12).
pub(super) async fn append<M: Mda>(
    ctx: &Ctx<'_, M>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
    flags: &[Flag<'_>],
    date: Option<&DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Status<'static> {
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let bytes = match message {
        LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned(),
        LiteralOrLiteral8::Literal8(l) => l.data.into_owned(),
    };
    let flags: Vec<String> = flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let date = date.map(|d| d.as_ref().timestamp());
    match ctx.mda.append(&ctx.mref(&name), &flags, date, bytes).await {
        Ok(a) => {
            let code = match (NonZeroU32::new(a.uidvalidity), NonZeroU32::new(a.uid)) {
                (Some(v), Some(u)) => Some(Code::AppendUid {
                    uid_validity: v,
                    uid: u,
                }),
                _ => None,
            };
            ok(tag, code, "Append completed.")
        }
        Err(e) => mda_error(tag, "Append", &e, true),
    }
}

/// A UIDPLUS uid set of ascending uids.
fn uid_set(uids: &[Uid]) -> Option<UidSet> {
    let mut out = Vec::new();
    for (first, last) in seqset::runs(uids) {
        let (a, b) = (NonZeroU32::new(first)?, NonZeroU32::new(last)?);
        out.push(if a == b {
            UidElement::Single(a)
        } else {
            UidElement::Range(a, b)
        });
    }
    imap_next::imap_types::core::Vec1::try_from(out)
        .ok()
        .map(UidSet)
}

/// `[COPYUID validity source destination]`; `None` if nothing was copied.
fn copyuid(validity: u32, pairs: &[(Uid, Uid)]) -> Option<Code<'static>> {
    let src: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
    let dst: Vec<Uid> = pairs.iter().map(|p| p.1).collect();
    // Both ascend and pair in order, so their expansions pair too (RFC 4315 §3).
    Some(Code::CopyUid {
        uid_validity: NonZeroU32::new(validity)?,
        source: uid_set(&src)?,
        destination: uid_set(&dst)?,
    })
}

/// COPY and MOVE (and their UID forms).
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    set: &SequenceSet,
    mailbox: &Mailbox<'_>,
    uid: bool,
    moving: bool,
) -> Status<'static> {
    if moving && sel.read_only {
        return no(tag, Some(noperm()), "Mailbox is read-only.");
    }
    let Some(to) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let ranges = match seqset::resolve(set, &sel.uids, uid) {
        Ok(r) => r,
        Err(_) => return bad(tag, "Invalid message sequence number."),
    };
    let uids = sel.uids_at(&ranges);
    if uids.is_empty() {
        let text = if moving {
            "Move completed."
        } else {
            "Copy completed."
        };
        return ok(tag, None, text);
    }
    let copied = match ctx.mda.copy(&sel.mref, &uids, &to, moving).await {
        Ok(c) => c,
        Err(e) => return mda_error(tag, if moving { "Move" } else { "Copy" }, &e, true),
    };
    let code = copyuid(copied.uidvalidity, &copied.uids);
    if !moving {
        return ok(tag, code, "Copy completed.");
    }
    // RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
    if code.is_some() {
        conn.status(untagged_ok(code, "Moved."));
    }
    let gone: Vec<Uid> = copied.uids.iter().map(|p| p.0).collect();
    notify::expunged(ctx, conn, sel, &gone);
    let code = notify::highest_after_expunge(ctx, conn, sel, &gone).await;
    ok(tag, code, "Move completed.")
}
