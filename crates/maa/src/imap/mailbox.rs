//! Mailbox commands over the MDA: SELECT/EXAMINE, LIST/LSUB, STATUS, and the
//! selected-state commands FETCH, STORE, EXPUNGE, CLOSE, SEARCH, NOOP/CHECK.
//!
//! The session keeps the selected mailbox's metadata (UID, size, flags, date; from
//! the `List` stream, in UID order): message number n is `metas[n - 1]`. Message
//! bytes come from one `FetchMany` call per window of messages, streamed; only
//! the message being answered is in memory, and a header fetch reads only the
//! header.

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU32;

use facteur_rpc::mailbox::{
    ExpungeRequest, FetchManyRequest, FetchPart, FlagOp, ListRequest, MailboxRef, MessageChunk,
    MessageMeta, StoreFlagsRequest, UserRef,
};
use imap_next::imap_types::core::{Charset, QuotedChar, Tag, Vec1};
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem};
use imap_next::imap_types::flag::{Flag, FlagNameAttribute, FlagPerm, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::conn::Connection;
use super::fetch::{self, Need};
use super::reply::{bad, cannot, mda_error, no, noperm, ok};
use super::{ImapContext, ImapError, search, seqset};

/// Hierarchy delimiter announced in LIST.
const DELIMITER: char = '/';

/// Flush the output every this many metadata-only FETCH responses.
const FETCH_FLUSH_EVERY: usize = 256;

/// Messages asked of the MDA in one `FetchMany` call.
const FETCH_WINDOW: usize = 64;

const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// The selected mailbox.
#[derive(Debug)]
pub(super) struct Selected {
    pub(super) name: String,
    pub(super) read_only: bool,
    /// Message metadata in UID (= message number) order.
    pub(super) metas: Vec<MessageMeta>,
}

impl Selected {
    fn uids(&self) -> Vec<u32> {
        self.metas.iter().map(|m| m.uid).collect()
    }

    fn mref(&self, user: &str) -> MailboxRef {
        MailboxRef {
            user: user.to_owned(),
            mailbox: self.name.clone(),
        }
    }
}

/// What a mailbox command needs from the session.
pub(super) struct Ctx<'a> {
    pub(super) imap: &'a ImapContext,
    pub(super) user: &'a str,
}

fn has(meta: &MessageMeta, flag: &str) -> bool {
    meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

fn seq(idx: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(idx + 1).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// The MDA's name for an IMAP mailbox name (`INBOX` is case-insensitive).
pub(super) fn mailbox_name(mailbox: &Mailbox<'_>) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".to_owned()),
        Mailbox::Other(other) => String::from_utf8(other.as_ref().to_vec()).ok(),
    }
}

/// All message metadata of a mailbox.
async fn list_all(ctx: &Ctx<'_>, mref: MailboxRef) -> Result<Vec<MessageMeta>, tonic::Status> {
    let mut client = ctx.imap.mailbox.clone();
    let mut stream = client
        .list(ListRequest {
            mailbox: Some(mref),
            from_uid: 1,
        })
        .await?
        .into_inner();
    let mut metas: Vec<MessageMeta> = Vec::new();
    while let Some(page) = stream.message().await? {
        for meta in page.metas {
            // Keep the map strictly ascending whatever the MDA sends.
            if meta.uid != 0 && metas.last().is_none_or(|last| last.uid < meta.uid) {
                metas.push(meta);
            }
        }
    }
    Ok(metas)
}

/// The next message of a `FetchMany` stream, which must be `uid`; `None` if
/// it was expunged.
async fn next_message(
    stream: &mut tonic::Streaming<MessageChunk>,
    uid: u32,
) -> Result<Option<Vec<u8>>, tonic::Status> {
    let mut out = Vec::new();
    loop {
        let Some(chunk) = stream.message().await? else {
            return Err(tonic::Status::data_loss("message stream ended early"));
        };
        if chunk.uid != uid {
            return Err(tonic::Status::internal("messages out of order"));
        }
        if chunk.missing {
            return Ok(None);
        }
        out.extend_from_slice(&chunk.data);
        if chunk.last {
            return Ok(Some(out));
        }
    }
}

/// SELECT (`read_only = false`) and EXAMINE.
pub(super) async fn select(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    selected: &mut Option<Selected>,
    tag: Tag<'static>,
    mailbox: &Mailbox<'_>,
    read_only: bool,
) {
    // A SELECT that fails leaves no mailbox selected (RFC 9051 §6.3.2).
    *selected = None;
    let Some(name) = mailbox_name(mailbox) else {
        conn.status(no(tag, None, "Invalid mailbox name."));
        return;
    };
    let mref = MailboxRef {
        user: ctx.user.to_owned(),
        mailbox: name.clone(),
    };
    let mut client = ctx.imap.mailbox.clone();
    let status = match client.status(mref.clone()).await {
        Ok(s) => s.into_inner(),
        Err(e) => return conn.status(mda_error(tag, "Status", &e)),
    };
    let metas = match list_all(ctx, mref).await {
        Ok(m) => m,
        Err(e) => return conn.status(mda_error(tag, "List", &e)),
    };
    let Some(uidvalidity) = NonZeroU32::new(status.uidvalidity) else {
        tracing::error!(mailbox = %name, "MDA sent UIDVALIDITY 0");
        conn.status(no(
            tag,
            Some(super::reply::unavailable()),
            "Internal error occurred, try again later.",
        ));
        return;
    };
    let last_uid = metas.last().map_or(0, |m| m.uid);
    let uidnext = status.uidnext.max(last_uid.saturating_add(1));

    let mut flags: Vec<Flag<'static>> = SYSTEM_FLAGS
        .iter()
        .filter_map(|f| Flag::try_from(*f).ok())
        .collect();
    for meta in &metas {
        for f in &meta.flags {
            if let Some(fetch_flag) = fetch::flag_fetch(f)
                && let imap_next::imap_types::flag::FlagFetch::Flag(flag) = fetch_flag
                && !flags.contains(&flag)
            {
                flags.push(flag);
            }
        }
    }
    let perm: Vec<FlagPerm<'static>> = if read_only {
        Vec::new()
    } else {
        let mut p: Vec<FlagPerm<'static>> = flags.iter().cloned().map(FlagPerm::Flag).collect();
        p.push(FlagPerm::Asterisk);
        p
    };
    conn.data(Data::Flags(flags));
    conn.data(Data::Exists(u32::try_from(metas.len()).unwrap_or(u32::MAX)));
    conn.data(Data::Recent(0));
    conn.status(super::reply::untagged_ok(
        Some(Code::PermanentFlags(perm)),
        "Flags permitted.",
    ));
    if let Some(first) = metas.iter().position(|m| !has(m, "\\Seen")) {
        conn.status(super::reply::untagged_ok(
            Some(Code::Unseen(seq(first))),
            "First unseen.",
        ));
    }
    conn.status(super::reply::untagged_ok(
        Some(Code::UidValidity(uidvalidity)),
        "UIDs valid.",
    ));
    if let Some(next) = NonZeroU32::new(uidnext) {
        conn.status(super::reply::untagged_ok(
            Some(Code::UidNext(next)),
            "Predicted next UID.",
        ));
    }
    let code = if read_only {
        Code::ReadOnly
    } else {
        Code::ReadWrite
    };
    let text = if read_only {
        "Examine completed."
    } else {
        "Select completed."
    };
    conn.status(ok(tag, Some(code), text));
    *selected = Some(Selected {
        name,
        read_only,
        metas,
    });
}

/// LIST pattern matching: `*` matches anything, `%` anything but the delimiter.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    // dp[j]: pattern[..i] matches name[..j]
    let mut dp = vec![false; name.len() + 1];
    dp[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                // `*`: any k <= j with dp[k]; `%`: and no delimiter in name[k..j].
                let mut reach = false;
                for j in 0..=name.len() {
                    if p == b'%' && j > 0 && name[j - 1] == DELIMITER as u8 {
                        reach = false;
                    }
                    reach |= dp[j];
                    next[j] = reach;
                }
            }
            c => {
                for j in 1..=name.len() {
                    next[j] = dp[j - 1] && name[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[name.len()]
}

fn list_pattern(p: &ListMailbox<'_>) -> Vec<u8> {
    match p {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(s) => s.as_ref().to_vec(),
    }
}

/// LIST and LSUB (every mailbox counts as subscribed).
pub(super) async fn list(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    tag: Tag<'static>,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
) {
    let delimiter = QuotedChar::try_from(DELIMITER).ok();
    let reference = match reference {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    };
    let pattern = list_pattern(pattern);
    let done = if lsub {
        "Lsub completed."
    } else {
        "List completed."
    };
    if pattern.is_empty() && !lsub {
        // `LIST "" ""`: the hierarchy delimiter and root.
        if let Ok(root) = Mailbox::try_from("") {
            conn.data(Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: root,
            });
        }
        conn.status(ok(tag, None, done));
        return;
    }
    let mut client = ctx.imap.mailbox.clone();
    let mut names = match client
        .list_mailboxes(UserRef {
            user: ctx.user.to_owned(),
        })
        .await
    {
        Ok(r) => r.into_inner().names,
        Err(e) => return conn.status(mda_error(tag, "ListMailboxes", &e)),
    };
    if !names.iter().any(|n| n.eq_ignore_ascii_case("INBOX")) {
        names.insert(0, "INBOX".to_owned());
    }
    let mut full = reference;
    full.extend_from_slice(&pattern);
    for name in names {
        let matched = if name.eq_ignore_ascii_case("INBOX") {
            wildcard(&full.to_ascii_uppercase(), b"INBOX")
        } else {
            wildcard(&full, name.as_bytes())
        };
        if !matched {
            continue;
        }
        let Ok(mailbox) = Mailbox::try_from(name) else {
            continue;
        };
        let data = if lsub {
            Data::Lsub {
                items: Vec::new(),
                delimiter,
                mailbox,
            }
        } else {
            Data::List {
                items: Vec::new(),
                delimiter,
                mailbox,
            }
        };
        conn.data(data);
    }
    conn.status(ok(tag, None, done));
}

/// STATUS.
pub(super) async fn status(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    tag: Tag<'static>,
    mailbox: &Mailbox<'static>,
    names: &[StatusDataItemName],
) {
    let Some(name) = mailbox_name(mailbox) else {
        return conn.status(no(tag, None, "Invalid mailbox name."));
    };
    let mref = MailboxRef {
        user: ctx.user.to_owned(),
        mailbox: name,
    };
    let mut client = ctx.imap.mailbox.clone();
    let st = match client.status(mref.clone()).await {
        Ok(s) => s.into_inner(),
        Err(e) => return conn.status(mda_error(tag, "Status", &e)),
    };
    let mut deleted = None;
    if names.contains(&StatusDataItemName::Deleted) {
        match list_all(ctx, mref).await {
            Ok(metas) => {
                let n = metas.iter().filter(|m| has(m, "\\Deleted")).count();
                deleted = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            Err(e) => return conn.status(mda_error(tag, "List", &e)),
        }
    }
    let mut items = Vec::new();
    for n in names {
        let item = match n {
            StatusDataItemName::Messages => Some(StatusDataItem::Messages(st.exists)),
            StatusDataItemName::Recent => Some(StatusDataItem::Recent(0)),
            StatusDataItemName::UidNext => NonZeroU32::new(st.uidnext).map(StatusDataItem::UidNext),
            StatusDataItemName::UidValidity => {
                NonZeroU32::new(st.uidvalidity).map(StatusDataItem::UidValidity)
            }
            StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(st.unseen)),
            StatusDataItemName::Deleted => deleted.map(StatusDataItem::Deleted),
            _ => None,
        };
        items.extend(item);
    }
    conn.data(Data::Status {
        mailbox: mailbox.clone(),
        items: Cow::Owned(items),
    });
    conn.status(ok(tag, None, "Status completed."));
}

/// FETCH and UID FETCH.
pub(super) async fn fetch(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
) -> Result<(), ImapError> {
    let plan = match fetch::plan(names, uid) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "FETCH refused");
            conn.status(no(tag, Some(cannot()), "FETCH item not supported yet."));
            return Ok(());
        }
    };
    let idxs = match seqset::resolve(set, &sel.uids(), uid) {
        Ok(v) => v,
        Err(_) => {
            conn.status(bad(tag, "Invalid message sequence number."));
            return Ok(());
        }
    };
    let mut vanished = false;
    let mut n = 0usize;
    for window in idxs.chunks(FETCH_WINDOW) {
        // One MDA call per window of messages, streamed message by message:
        // only the message being answered is in memory.
        let mut bodies = match plan.need {
            Need::Nothing => None,
            Need::Header | Need::Whole => {
                let uids = window
                    .iter()
                    .filter_map(|&i| sel.metas.get(i).map(|m| m.uid))
                    .collect();
                let part = if plan.need == Need::Header {
                    FetchPart::Header
                } else {
                    FetchPart::Whole
                };
                let req = FetchManyRequest {
                    mailbox: Some(sel.mref(ctx.user)),
                    uids,
                    part: part as i32,
                };
                let mut client = ctx.imap.mailbox.clone();
                match client.fetch_many(req).await {
                    Ok(r) => Some(r.into_inner()),
                    Err(e) => {
                        conn.status(mda_error(tag, "Fetch", &e));
                        return Ok(());
                    }
                }
            }
        };
        for &idx in window {
            n += 1;
            let Some(meta) = sel.metas.get(idx) else {
                continue;
            };
            let uid_value = meta.uid;
            let bytes = match bodies.as_mut() {
                None => Vec::new(),
                Some(stream) => match next_message(stream, uid_value).await {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        // Expunged meanwhile by another session: answer for the others.
                        tracing::debug!(uid = uid_value, "FETCH of a vanished message");
                        vanished = true;
                        continue;
                    }
                    Err(e) => {
                        conn.status(mda_error(tag, "Fetch", &e));
                        return Ok(());
                    }
                },
            };
            if plan.sets_seen && !sel.read_only && !has(meta, "\\Seen") {
                let req = StoreFlagsRequest {
                    mailbox: Some(sel.mref(ctx.user)),
                    uids: vec![uid_value],
                    op: FlagOp::Add as i32,
                    flags: vec!["\\Seen".to_owned()],
                    unchanged_since: 0,
                };
                let mut client = ctx.imap.mailbox.clone();
                match client.store_flags(req).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        if let Some(meta) = sel.metas.get_mut(idx) {
                            match reply.updated.into_iter().find(|m| m.uid == uid_value) {
                                Some(fresh) => meta.flags = fresh.flags,
                                None => meta.flags.push("\\Seen".to_owned()),
                            }
                        }
                    }
                    Err(e) => {
                        conn.status(mda_error(tag, "StoreFlags", &e));
                        return Ok(());
                    }
                }
            }
            let Some(meta) = sel.metas.get(idx) else {
                continue;
            };
            let items = fetch::build(&plan, meta, &bytes);
            drop(bytes);
            if let Ok(items) = Vec1::try_from(items) {
                conn.data(Data::Fetch {
                    seq: seq(idx),
                    items,
                });
            }
            if plan.need == Need::Whole || n.is_multiple_of(FETCH_FLUSH_EVERY) {
                conn.flush().await?;
            }
        }
        if plan.need == Need::Header {
            conn.flush().await?;
        }
    }
    if vanished {
        conn.status(no(tag, None, "Some messages were expunged meanwhile."));
    } else {
        conn.status(ok(tag, None, "Fetch completed."));
    }
    Ok(())
}

fn apply(flags: &mut Vec<String>, kind: StoreType, changes: &[String]) {
    match kind {
        StoreType::Replace => *flags = changes.to_vec(),
        StoreType::Add => {
            for c in changes {
                if !flags.iter().any(|f| f.eq_ignore_ascii_case(c)) {
                    flags.push(c.clone());
                }
            }
        }
        StoreType::Remove => flags.retain(|f| !changes.iter().any(|c| c.eq_ignore_ascii_case(f))),
    }
}

/// STORE and UID STORE.
#[allow(clippy::too_many_arguments)]
pub(super) async fn store(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    sel: &mut Selected,
    tag: Tag<'static>,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'_>],
    uid: bool,
) {
    if sel.read_only {
        return conn.status(no(tag, Some(noperm()), "Mailbox is read-only."));
    }
    let idxs = match seqset::resolve(set, &sel.uids(), uid) {
        Ok(v) => v,
        Err(_) => return conn.status(bad(tag, "Invalid message sequence number.")),
    };
    let changes: Vec<String> = flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    if !idxs.is_empty() {
        let uids: Vec<u32> = idxs
            .iter()
            .filter_map(|i| sel.metas.get(*i))
            .map(|m| m.uid)
            .collect();
        let op = match kind {
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
            StoreType::Replace => FlagOp::Replace,
        };
        let req = StoreFlagsRequest {
            mailbox: Some(sel.mref(ctx.user)),
            uids,
            op: op as i32,
            flags: changes.clone(),
            unchanged_since: 0,
        };
        let mut client = ctx.imap.mailbox.clone();
        let reply = match client.store_flags(req).await {
            Ok(r) => r.into_inner(),
            Err(e) => return conn.status(mda_error(tag, "StoreFlags", &e)),
        };
        let fresh: HashMap<u32, MessageMeta> =
            reply.updated.into_iter().map(|m| (m.uid, m)).collect();
        for &idx in &idxs {
            if let Some(meta) = sel.metas.get_mut(idx) {
                match fresh.get(&meta.uid) {
                    Some(f) => meta.flags.clone_from(&f.flags),
                    None => apply(&mut meta.flags, kind, &changes),
                }
            }
        }
    }
    if response == StoreResponse::Answer {
        for idx in idxs {
            let Some(meta) = sel.metas.get(idx) else {
                continue;
            };
            let mut items = vec![fetch::flags_item(meta)];
            if let (true, Some(u)) = (uid, NonZeroU32::new(meta.uid)) {
                items.push(MessageDataItem::Uid(u));
            }
            if let Ok(items) = Vec1::try_from(items) {
                conn.data(Data::Fetch {
                    seq: seq(idx),
                    items,
                });
            }
        }
    }
    conn.status(ok(tag, None, "Store completed."));
}

/// Expunge the messages flagged \Deleted. Announces `* n EXPUNGE` unless `silent`
/// (CLOSE). Errors go to the log and the tagged reply is left to the caller.
pub(super) async fn expunge(
    ctx: &Ctx<'_>,
    conn: &mut Connection,
    sel: &mut Selected,
    silent: bool,
) -> Result<(), tonic::Status> {
    let mut client = ctx.imap.mailbox.clone();
    let reply = client
        .expunge(ExpungeRequest {
            mailbox: Some(sel.mref(ctx.user)),
            uids: Vec::new(),
            only_uids: false,
        })
        .await?
        .into_inner();
    for uid in reply.expunged {
        if let Some(pos) = sel.metas.iter().position(|m| m.uid == uid) {
            sel.metas.remove(pos);
            if !silent {
                conn.data(Data::Expunge(seq(pos)));
            }
        }
    }
    Ok(())
}

/// NOOP and CHECK while selected: announce what changed since the last look
/// (expunged messages, flag changes, new messages).
pub(super) async fn sync(ctx: &Ctx<'_>, conn: &mut Connection, sel: &mut Selected) {
    let fresh = match list_all(ctx, sel.mref(ctx.user)).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(code = ?e.code(), error = %e.message(), "List failed during NOOP");
            return;
        }
    };
    let last_known = sel.metas.last().map_or(0, |m| m.uid);
    let by_uid: HashMap<u32, &MessageMeta> = fresh.iter().map(|m| (m.uid, m)).collect();
    let mut pos = 0;
    while pos < sel.metas.len() {
        let uid = sel.metas[pos].uid;
        match by_uid.get(&uid) {
            None => {
                sel.metas.remove(pos);
                conn.data(Data::Expunge(seq(pos)));
            }
            Some(f) => {
                if f.flags != sel.metas[pos].flags {
                    sel.metas[pos].flags.clone_from(&f.flags);
                    let mut items = vec![fetch::flags_item(&sel.metas[pos])];
                    if let Some(u) = NonZeroU32::new(uid) {
                        items.push(MessageDataItem::Uid(u));
                    }
                    if let Ok(items) = Vec1::try_from(items) {
                        conn.data(Data::Fetch {
                            seq: seq(pos),
                            items,
                        });
                    }
                }
                pos += 1;
            }
        }
    }
    let before = sel.metas.len();
    sel.metas
        .extend(fresh.into_iter().filter(|m| m.uid > last_known));
    if sel.metas.len() != before {
        conn.data(Data::Exists(
            u32::try_from(sel.metas.len()).unwrap_or(u32::MAX),
        ));
        conn.data(Data::Recent(0));
    }
}

/// SEARCH and UID SEARCH.
pub(super) fn search(
    conn: &mut Connection,
    sel: &Selected,
    tag: Tag<'static>,
    charset: Option<&Charset<'_>>,
    keys: &[SearchKey<'_>],
    uid: bool,
) {
    if let Some(cs) = charset {
        let cs = cs.as_ref();
        if !cs.eq_ignore_ascii_case("US-ASCII") && !cs.eq_ignore_ascii_case("UTF-8") {
            return conn.status(no(
                tag,
                Some(Code::badcharset(Vec::new())),
                "Unsupported charset.",
            ));
        }
    }
    let uids = sel.uids();
    match search::run(keys, &sel.metas, &uids) {
        Ok(found) => {
            let values = found
                .into_iter()
                .filter_map(|i| {
                    if uid {
                        uids.get(i).and_then(|u| NonZeroU32::new(*u))
                    } else {
                        Some(seq(i))
                    }
                })
                .collect();
            conn.data(Data::Search(values, None));
            conn.status(ok(tag, None, "Search completed."));
        }
        Err(e) => {
            tracing::debug!(error = %e, "SEARCH refused");
            conn.status(no(
                tag,
                Some(cannot()),
                "SEARCH on message text is not supported yet.",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn list_wildcards() {
        assert!(wildcard(b"*", b"INBOX"));
        assert!(wildcard(b"*", b"a/b"));
        assert!(wildcard(b"%", b"Sent"));
        assert!(!wildcard(b"%", b"a/b"));
        assert!(wildcard(b"a/%", b"a/b"));
        assert!(wildcard(b"INBOX", b"INBOX"));
        assert!(!wildcard(b"INB", b"INBOX"));
        assert!(wildcard(b"I*X", b"INBOX"));
    }
}
