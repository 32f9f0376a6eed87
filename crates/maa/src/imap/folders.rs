//! Mailboxes of the user: LIST (with the LIST-EXTENDED selection and return
//! options of RFC 5258, LIST-STATUS of RFC 5819, SPECIAL-USE attributes of
//! RFC 6154, CHILDREN of RFC 3348), LSUB, CREATE (with USE), DELETE, RENAME,
//! SUBSCRIBE/UNSUBSCRIBE and STATUS.

use std::borrow::Cow;
use std::collections::HashSet;
use std::num::NonZeroU32;

use imap_next::imap_types::core::{Atom, QuotedChar, Tag};
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Data, Status};
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::conn::Connection;
use super::mailbox::Selected;
use super::names::{self, DELIMITER};
use super::reply::{mda_error, no, ok};
use super::session::Ctx;
use super::{ImapError, ext};
use crate::mda::{MailboxStatus, Mda, Role};

/// A LIST or LSUB command, with the LIST-EXTENDED options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ListOpts {
    /// The reference name, decoded.
    pub(super) reference: String,
    /// The mailbox patterns, decoded (one for plain LIST).
    pub(super) patterns: Vec<String>,
    pub(super) lsub: bool,
    /// Selection option SUBSCRIBED.
    pub(super) select_subscribed: bool,
    /// Selection option RECURSIVEMATCH (with SUBSCRIBED): parents of matches
    /// the pattern hides are listed with `CHILDINFO` (RFC 5258 §4).
    pub(super) recursive_match: bool,
    /// Selection option SPECIAL-USE (RFC 6154).
    pub(super) select_special_use: bool,
    /// Return option SUBSCRIBED.
    pub(super) return_subscribed: bool,
    /// Return option STATUS (RFC 5819): these items after each mailbox.
    pub(super) status: Option<Vec<StatusDataItemName>>,
}

impl ListOpts {
    /// A plain `LIST reference pattern`.
    pub(super) fn plain(reference: &Mailbox<'_>, patterns: Vec<Vec<u8>>, utf8: bool) -> Self {
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
        };
        Self {
            reference,
            patterns: patterns.iter().map(|p| raw_pattern(p, utf8)).collect(),
            ..Self::default()
        }
    }
}

/// A pattern from the wire: modified UTF-7 decoded unless UTF-8 is on, but
/// `INBOX` kept as typed (the match is case-insensitive on it anyway).
fn raw_pattern(bytes: &[u8], utf8: bool) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.eq_ignore_ascii_case("INBOX") {
        return s.into_owned();
    }
    names::decode(bytes, utf8).unwrap_or_else(|| s.into_owned())
}

fn attr(name: &'static str) -> Option<FlagNameAttribute<'static>> {
    Atom::try_from(name).ok().map(FlagNameAttribute::from)
}

/// One mailbox as LIST sees it.
struct Entry {
    name: String,
    exists: bool,
    role: Option<Role>,
    subscribed: bool,
}

/// LIST and LSUB. Errs only when writing a `CHILDINFO` line fails.
pub(super) async fn list<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    tag: Tag<'static>,
    opts: ListOpts,
) -> Result<Status<'static>, ImapError> {
    let done = if opts.lsub {
        "Lsub completed."
    } else {
        "List completed."
    };
    let delimiter = QuotedChar::try_from(DELIMITER).ok();
    if !opts.lsub && opts.patterns.iter().all(String::is_empty) {
        // `LIST "" ""`: the hierarchy delimiter and root.
        if let Ok(root) = Mailbox::try_from("") {
            conn.data(Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: root,
            });
        }
        return Ok(ok(tag, None, done));
    }
    let (infos, subscribed_only) = match ctx.mda.mailboxes(ctx.user).await {
        Ok(m) => m,
        Err(e) => return Ok(mda_error(tag, "Mailboxes", &e, false)),
    };
    let mut entries: Vec<Entry> = infos
        .into_iter()
        .map(|i| Entry {
            name: i.name,
            exists: true,
            role: i.role,
            subscribed: i.subscribed,
        })
        .collect();
    let mut with_children: HashSet<String> = HashSet::new();
    for e in &entries {
        with_children.extend(names::parents(&e.name).map(str::to_owned));
    }
    // Parents that are not mailboxes themselves (`a` of `a/b`) show as \Noselect.
    let mut known: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    let mut virtual_parents: Vec<String> = with_children
        .iter()
        .filter(|p| !known.contains(*p))
        .cloned()
        .collect();
    virtual_parents.sort();
    for p in virtual_parents {
        known.insert(p.clone());
        entries.push(Entry {
            name: p,
            exists: false,
            role: None,
            subscribed: false,
        });
    }
    for name in subscribed_only {
        if known.insert(name.clone()) {
            entries.push(Entry {
                name,
                exists: false,
                role: None,
                subscribed: true,
            });
        } else if let Some(e) = entries.iter_mut().find(|e| e.name == name) {
            e.subscribed = true;
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let patterns: Vec<String> = opts
        .patterns
        .iter()
        .map(|p| format!("{}{p}", opts.reference))
        .collect();
    let only_subscribed = opts.lsub || opts.select_subscribed;
    let matching = |name: &str| patterns.iter().any(|p| names::matches(p, name));
    // The parents of subscribed names the patterns leave out: listed under
    // RECURSIVEMATCH with `CHILDINFO` (RFC 5258 §4), and by LSUB as
    // `\Noselect` when `%` stops at them (RFC 3501 §6.3.9).
    let mut hiding: HashSet<&str> = HashSet::new();
    if (opts.recursive_match && opts.select_subscribed) || opts.lsub {
        for e in entries
            .iter()
            .filter(|e| e.subscribed && !matching(&e.name))
        {
            hiding.extend(names::parents(&e.name));
        }
    }
    for e in &entries {
        if !matching(&e.name) {
            continue;
        }
        let hides = hiding.contains(e.name.as_str());
        let childinfo = hides && !opts.lsub;
        if only_subscribed && !e.subscribed && !hides {
            continue;
        }
        if opts.select_special_use && e.role.is_none() {
            continue;
        }
        // A name that is no mailbox: a subscription only under SUBSCRIBED
        // selection (or LSUB), a parent of mailboxes only where `%` stops at it.
        let shown = e.exists
            || hides
            || if e.subscribed {
                only_subscribed
            } else {
                patterns.iter().any(|p| p.contains('%'))
            };
        if !shown {
            continue;
        }
        let Some(wire) = names::to_wire(&e.name, ctx.enabled.utf8) else {
            continue;
        };
        let mut items = Vec::new();
        if !e.exists || (opts.lsub && !e.subscribed) {
            if opts.select_subscribed || opts.return_subscribed {
                items.extend(attr("NonExistent"));
            } else {
                items.push(FlagNameAttribute::Noselect);
            }
        }
        if !opts.lsub {
            if e.subscribed && (opts.select_subscribed || opts.return_subscribed) {
                items.extend(attr("Subscribed"));
            }
            items.extend(if with_children.contains(&e.name) {
                attr("HasChildren")
            } else {
                attr("HasNoChildren")
            });
            if let Some(role) = e.role {
                items.extend(attr(&role.attribute()[1..]));
            }
        }
        let status_of = (e.exists && opts.status.is_some()).then(|| wire.clone());
        if childinfo {
            conn.raw(ext::encode_list_childinfo(items, delimiter, wire))
                .await?;
        } else {
            conn.data(if opts.lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox: wire,
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox: wire,
                }
            });
        }
        if let (Some(wire), Some(wanted)) = (status_of, opts.status.as_deref()) {
            match ctx.mda.status(&ctx.mref(&e.name)).await {
                Ok((st, _)) => conn.data(Data::Status {
                    mailbox: wire,
                    items: Cow::Owned(status_items(&st, wanted)),
                }),
                Err(err) => tracing::debug!(error = %err, "STATUS in LIST"),
            }
        }
    }
    Ok(ok(tag, None, done))
}

/// The STATUS items asked for.
pub(super) fn status_items(
    st: &MailboxStatus,
    names: &[StatusDataItemName],
) -> Vec<StatusDataItem> {
    names
        .iter()
        .filter_map(|n| match n {
            StatusDataItemName::Messages => Some(StatusDataItem::Messages(st.exists)),
            StatusDataItemName::Recent => Some(StatusDataItem::Recent(0)),
            StatusDataItemName::UidNext => NonZeroU32::new(st.uidnext).map(StatusDataItem::UidNext),
            StatusDataItemName::UidValidity => {
                NonZeroU32::new(st.uidvalidity).map(StatusDataItem::UidValidity)
            }
            StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(st.unseen)),
            StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(st.deleted)),
            StatusDataItemName::DeletedStorage => None,
            StatusDataItemName::Size => Some(StatusDataItem::Size(st.size)),
            StatusDataItemName::HighestModSeq => {
                Some(StatusDataItem::HighestModSeq(st.highest_modseq))
            }
        })
        .collect()
}

/// STATUS (RFC 9051 §6.3.11).
pub(super) async fn status<M: Mda>(
    ctx: &Ctx<'_, M>,
    conn: &mut Connection,
    tag: Tag<'static>,
    mailbox: &Mailbox<'static>,
    wanted: &[StatusDataItemName],
) -> Status<'static> {
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let (st, _) = match ctx.mda.status(&ctx.mref(&name)).await {
        Ok(s) => s,
        Err(e) => return mda_error(tag, "Status", &e, false),
    };
    conn.data(Data::Status {
        mailbox: mailbox.clone(),
        items: Cow::Owned(status_items(&st, wanted)),
    });
    ok(tag, None, "Status completed.")
}

/// CREATE (RFC 9051 §6.3.4), with a SPECIAL-USE role (RFC 6154 §3). Missing
/// parents are created too; a trailing `/` is dropped.
pub(super) async fn create<M: Mda>(
    ctx: &Ctx<'_, M>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
    role: Option<Role>,
) -> Status<'static> {
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let name = name.trim_end_matches(DELIMITER).to_owned();
    if name.is_empty() {
        return no(tag, None, "Invalid mailbox name.");
    }
    for parent in names::parents(&name) {
        match ctx.mda.create(&ctx.mref(parent), None).await {
            Ok(()) | Err(crate::mda::MdaError::Exists(_)) => {}
            Err(e) => return mda_error(tag, "Create", &e, false),
        }
    }
    match ctx.mda.create(&ctx.mref(&name), role).await {
        Ok(()) => ok(tag, None, "Create completed."),
        Err(e) => mda_error(tag, "Create", &e, false),
    }
}

/// DELETE (RFC 9051 §6.3.5). Deleting the selected mailbox unselects it.
pub(super) async fn delete<M: Mda>(
    ctx: &Ctx<'_, M>,
    _conn: &mut Connection,
    selected: &mut Option<Selected>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
) -> Status<'static> {
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let mref = ctx.mref(&name);
    match ctx.mda.delete(&mref).await {
        Ok(()) => {
            if selected.as_ref().is_some_and(|s| s.mref == mref) {
                *selected = None;
            }
            ok(tag, None, "Delete completed.")
        }
        Err(e) => mda_error(tag, "Delete", &e, false),
    }
}

/// RENAME (RFC 9051 §6.3.6; renaming INBOX moves its messages).
pub(super) async fn rename<M: Mda>(
    ctx: &Ctx<'_, M>,
    tag: Tag<'static>,
    from: &Mailbox<'_>,
    to: &Mailbox<'_>,
) -> Status<'static> {
    let (Some(from), Some(to)) = (ctx.name(from), ctx.name(to)) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    let to = to.trim_end_matches(DELIMITER).to_owned();
    match ctx.mda.rename(ctx.user, &from, &to).await {
        Ok(()) => ok(tag, None, "Rename completed."),
        Err(e) => mda_error(tag, "Rename", &e, false),
    }
}

/// SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8).
pub(super) async fn subscribe<M: Mda>(
    ctx: &Ctx<'_, M>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
    on: bool,
) -> Status<'static> {
    let Some(name) = ctx.name(mailbox) else {
        return no(tag, None, "Invalid mailbox name.");
    };
    match ctx.mda.subscribe(&ctx.mref(&name), on).await {
        Ok(()) if on => ok(tag, None, "Subscribe completed."),
        Ok(()) => ok(tag, None, "Unsubscribe completed."),
        Err(e) => mda_error(tag, "Subscribe", &e, false),
    }
}
