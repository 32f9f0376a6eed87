//! The mail side of the storage seam: intent-level traits (`MailStore`,
//! `BlobStore`, `ChangeFeed`), their shared types and errors, and the
//! backend-neutral rules (mailbox-name and flag normalisation) every backend
//! applies. One trait method is one atomic unit on every backend.

use std::ops::Range;

/// A message UID (RFC 3501 §2.3.1.1), unique per mailbox and UIDVALIDITY.
pub type Uid = u32;

/// Idempotency key chosen by the caller (the MTA) for one message; filing the
/// same key for the same user twice files it once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageKey(pub String);

/// Identifier of a blob: lowercase hex SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub String);

/// What IMAP STATUS / SELECT need about a mailbox, read in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    pub uidvalidity: u32,
    pub uidnext: Uid,
    /// Number of messages in the mailbox.
    pub exists: u32,
    /// Number of messages without `\Seen`.
    pub unseen: u32,
    /// Highest modseq ever assigned in the mailbox (starts at 1, RFC 7162
    /// needs a non-zero value even for an empty mailbox).
    pub highest_modseq: u64,
    /// Sum of the messages' sizes (STATUS SIZE, RFC 8438).
    pub size: u64,
    /// Number of messages flagged `\\Deleted` (STATUS DELETED, RFC 9051).
    pub deleted: u32,
}

/// Metadata of one filed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub blob: BlobId,
    /// Exact size of the blob in bytes (RFC822.SIZE).
    pub size: u64,
    /// Flags, normalised: system flags in their canonical spelling, no
    /// duplicates (compared case-insensitively), never `\Recent`.
    pub flags: Vec<String>,
    pub modseq: u64,
    /// Unix seconds.
    pub internal_date: i64,
}

/// Result of [`MailStore::file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filed {
    pub uid: Uid,
    pub uidvalidity: u32,
    /// True when the (key, user) pair had already been filed: nothing was
    /// written and `uid`/`uidvalidity` are those of the first filing.
    pub duplicate: bool,
}

/// How [`MailStore::store_flags`] combines the given flags with the current
/// ones (IMAP `+FLAGS`, `-FLAGS`, `FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// Result of [`MailStore::store_flags`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreFlagsResult {
    /// Current metadata of every existing uid that passed the UNCHANGEDSINCE
    /// test, ascending by uid. Only those whose flags actually changed got a
    /// new modseq; the others are reported unchanged (RFC 7162 §3.2 still
    /// wants a FETCH for them).
    pub updated: Vec<MessageMeta>,
    /// Uids whose modseq was greater than `unchanged_since` (RFC 7162
    /// MODIFIED response code), ascending.
    pub failed_modified: Vec<Uid>,
}

/// One entry of [`MailStore::changes_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message that was added or had its flags changed; current metadata.
    Updated(MessageMeta),
    /// A tombstone: the message was expunged at `modseq`.
    Expunged { uid: Uid, modseq: u64 },
}

/// SPECIAL-USE role of a mailbox (RFC 6154), kept with the mailbox so it
/// follows a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl Role {
    /// Every role, with the name of the mailbox [`MailStore::prepare_user`]
    /// creates for it.
    pub const DEFAULTS: [(Role, &'static str); 5] = [
        (Role::Sent, "Sent"),
        (Role::Drafts, "Drafts"),
        (Role::Trash, "Trash"),
        (Role::Junk, "Junk"),
        (Role::Archive, "Archive"),
    ];

    /// The RFC 6154 attribute, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            Role::Sent => "\\Sent",
            Role::Drafts => "\\Drafts",
            Role::Trash => "\\Trash",
            Role::Junk => "\\Junk",
            Role::Archive => "\\Archive",
        }
    }

    /// The role of an RFC 6154 attribute (case-insensitive).
    pub fn from_attribute(attr: &str) -> Option<Role> {
        Role::DEFAULTS
            .iter()
            .map(|(r, _)| *r)
            .find(|r| r.attribute().eq_ignore_ascii_case(attr))
    }
}

/// One mailbox of a user, as LIST needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub name: String,
    pub role: Option<Role>,
    /// In the user's subscription list (RFC 9051 §6.3.7).
    pub subscribed: bool,
}

/// Result of [`MailStore::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub uidvalidity: u32,
    pub uid: Uid,
}

/// Result of [`MailStore::copy`] (UIDPLUS COPYUID, RFC 4315).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copied {
    /// UIDVALIDITY of the destination.
    pub uidvalidity: u32,
    /// (source uid, new destination uid) for every message copied, ascending
    /// by source uid. Source uids that did not exist are left out.
    pub uids: Vec<(Uid, Uid)>,
}

/// A header field the store indexes at filing time, so SEARCH on it never
/// reads message bytes (RFC 9051 §6.4.4 FROM, TO, CC, BCC, SUBJECT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    From,
    To,
    Cc,
    Bcc,
    Subject,
    /// `HEADER <name> <string>`: any other field (matched on the header
    /// block, read from the blob: a bounded scan).
    Other(String),
}

/// A SEARCH query (RFC 9051 §6.4.4) in store terms: message numbers already
/// turned into uids, dates into unix seconds (UTC day starts), strings
/// matched case-insensitively as substrings of decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    All,
    /// Every sub-query matches (empty = all).
    And(Vec<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    /// Uid in one of these inclusive ranges.
    Uids(Vec<(Uid, Uid)>),
    /// Has this flag or keyword (system flags compare case-insensitively).
    Flag(String),
    /// RFC822.SIZE greater than / less than.
    Larger(u64),
    Smaller(u64),
    /// Internal date before / at or after (unix seconds).
    Before(i64),
    Since(i64),
    /// `Date:` header day (as written, time and zone ignored, as unix
    /// seconds of that day's UTC start) before / at or after.
    SentBefore(i64),
    SentSince(i64),
    /// Header field contains the string (an empty string: the field exists).
    Header(Field, String),
    /// The body (after the header) contains the string.
    Body(String),
    /// Header or body contains the string.
    Text(String),
    /// modseq at or above (RFC 7162 SEARCH MODSEQ).
    ModSeq(u64),
}

/// Errors of the storage layer.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("no such mailbox: {0}")]
    NoSuchMailbox(String),
    #[error("mailbox already exists: {0}")]
    MailboxExists(String),
    #[error("invalid mailbox name: {0:?}")]
    InvalidMailboxName(String),
    #[error("invalid user: {0:?}")]
    InvalidUser(String),
    /// An operation that is forbidden by the protocol, e.g. deleting INBOX.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("no such blob")]
    NoSuchBlob,
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The disk is (nearly) full: nothing was written; retry later (SMTP
    /// `452 4.3.1`, IMAP `NO [OVERQUOTA]`-style). Clears when space returns.
    #[error("insufficient storage: {0}")]
    Full(String),
    /// I/O or backend trouble; nothing was acknowledged; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("user already exists: {0}")]
    UserExists(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
}

impl StoreError {
    /// True when retrying later may succeed (I/O trouble, disk full), so
    /// callers answer with a temporary failure (SMTP 4xx, IMAP `NO [UNAVAILABLE]`).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Full(_))
    }

    /// Maps an I/O error: disk full is [`StoreError::Full`], the rest
    /// [`StoreError::Unavailable`].
    pub fn io(e: &std::io::Error) -> Self {
        if crate::durable::is_disk_full(e) {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Unavailable(e.to_string())
        }
    }
}

impl From<crate::writer::WriteError> for StoreError {
    fn from(e: crate::writer::WriteError) -> Self {
        match e.io() {
            Some(io) => StoreError::io(io),
            None => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// Content-addressed message bytes.
///
/// Invariants: `put` is idempotent (same bytes, same id, stored once) and the
/// bytes are durable before it returns; `get` returns exactly the bytes that
/// were put, or the requested byte range of them.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` and returns their id; durable (flushed) before returning.
    fn put(&self, bytes: &[u8]) -> Result<BlobId, StoreError>;
    /// Returns the blob, or only `range` of it. The range is clamped to the
    /// blob: a start past the end gives an empty vector (IMAP partial FETCH
    /// semantics). Unknown or malformed ids give [`StoreError::NoSuchBlob`].
    fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError>;
}

/// Mailboxes, messages and their metadata for every user.
///
/// Every method is one atomic unit. Every backend keeps these invariants
/// (checked by the conformance suite):
/// - UIDs are strictly ascending and never reused per mailbox and UIDVALIDITY;
///   commit order equals UID order (the UID is allocated in the same
///   transaction as the insert).
/// - modseq is strictly ascending per mailbox; every change (filing, flag
///   change, expunge) gets a new one; expunges leave tombstones so
///   [`changes_since`](MailStore::changes_since) reports them.
/// - Filing happens exactly once per (message key, user), checked in the same
///   transaction as the insert.
/// - The blob must be durable before the metadata pointing at it is written
///   (`file` refuses an unknown blob); nothing is acknowledged before both are
///   durable.
/// - Mailbox names: `INBOX` is case-insensitive (RFC 3501 §5.1), every other
///   name is case-sensitive. INBOX always exists: it is created on first use
///   and cannot be deleted; renaming it moves its messages to the new name and
///   leaves a new, empty INBOX (RFC 3501 §6.3.5).
/// - UIDVALIDITY is taken from the unix time at mailbox creation and is
///   strictly greater than any UIDVALIDITY the user's mailboxes had before,
///   so a re-created mailbox always gets a greater one.
/// - Users are full addresses, compared lowercased (as in `accounts`).
pub trait MailStore: Send + Sync + 'static {
    /// Files a message exactly once per (key, user): a second call returns the
    /// first uid with `duplicate = true`. Creates INBOX on first use; other
    /// mailboxes must exist. Durable before returning.
    fn file(
        &self,
        key: &MessageKey,
        user: &str,
        mailbox: &str,
        blob: &BlobId,
        size: u64,
        internal_date: i64,
    ) -> Result<Filed, StoreError>;
    fn status(&self, user: &str, mailbox: &str) -> Result<MailboxStatus, StoreError>;
    /// Up to `limit` messages with uid >= `from_uid`, ascending by uid.
    fn list(
        &self,
        user: &str,
        mailbox: &str,
        from_uid: Uid,
        limit: usize,
    ) -> Result<Vec<MessageMeta>, StoreError>;
    fn get(&self, user: &str, mailbox: &str, uid: Uid) -> Result<Option<MessageMeta>, StoreError>;
    /// The metadata of those of `uids` that exist, ascending by uid, each
    /// once, in one read (IMAP `FETCH 1:* (FLAGS)`, POP3's listing): the
    /// mailbox is looked up once and neighbouring uids are read by range.
    /// A mailbox that does not exist is an error, as for `status`.
    fn metas(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[Uid],
    ) -> Result<Vec<MessageMeta>, StoreError>;
    /// Changes flags of `uids` (missing uids are ignored). With
    /// `unchanged_since`, messages whose modseq is greater are not touched and
    /// are reported in `failed_modified` (RFC 7162 CONDSTORE).
    fn store_flags(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreFlagsResult, StoreError>;
    /// Expunges every message flagged `\Deleted` (`None`) or exactly the given
    /// uids (`Some`, for POP3 DELE + QUIT). Returns the expunged uids,
    /// ascending; each leaves a tombstone with a new modseq.
    fn expunge(
        &self,
        user: &str,
        mailbox: &str,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, StoreError>;
    /// Every message changed and every tombstone left after `modseq`,
    /// ascending by modseq, each uid at most once.
    fn changes_since(
        &self,
        user: &str,
        mailbox: &str,
        modseq: u64,
    ) -> Result<Vec<Change>, StoreError>;
    fn create_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError>;
    /// Renames a mailbox and its children (`from/...` becomes `to/...`, the
    /// hierarchy delimiter is `/`) in one atomic unit; roles and
    /// subscriptions follow the names. `to` must not exist, nor any child's
    /// new name, and must not lie under `from`. Renaming INBOX moves its
    /// messages to `to` and leaves a new, empty INBOX; its children stay.
    fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> Result<(), StoreError>;
    /// Deletes a mailbox and its messages (the blobs stay: collecting them is
    /// not this method's business). Children are kept: they are names of
    /// their own. The subscription, if any, is kept (RFC 9051 §6.3.7).
    fn delete_mailbox(&self, user: &str, name: &str) -> Result<(), StoreError>;
    /// Every mailbox of the user, INBOX included, sorted.
    fn list_mailboxes(&self, user: &str) -> Result<Vec<String>, StoreError>;
    /// Every mailbox of the user with its role and subscription, INBOX
    /// included, sorted by name.
    fn mailboxes(&self, user: &str) -> Result<Vec<MailboxInfo>, StoreError>;
    /// Creates INBOX and, for every [`Role`] no mailbox of the user has yet,
    /// the mailbox of [`Role::DEFAULTS`] with that role, subscribed.
    /// Idempotent; the MAA calls it at each login.
    fn prepare_user(&self, user: &str) -> Result<(), StoreError>;
    /// Creates a mailbox with an optional role (RFC 6154 CREATE-SPECIAL-USE).
    fn create_mailbox_with_role(
        &self,
        user: &str,
        name: &str,
        role: Option<Role>,
    ) -> Result<(), StoreError>;
    /// Adds or removes a name from the subscription list; the name need not
    /// exist (RFC 9051 §6.3.7), and deleting a mailbox keeps it.
    fn set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> Result<(), StoreError>;
    /// Every subscribed name, existing as a mailbox or not (LSUB, LIST
    /// (SUBSCRIBED) with `\NonExistent`), sorted.
    fn subscriptions(&self, user: &str) -> Result<Vec<String>, StoreError>;
    /// IMAP APPEND: files a blob into a mailbox that must exist, with flags
    /// (normalised) and an internal date. Indexes its header like `file`.
    fn append(
        &self,
        user: &str,
        mailbox: &str,
        blob: &BlobId,
        size: u64,
        flags: &[String],
        internal_date: i64,
    ) -> Result<Appended, StoreError>;
    /// IMAP COPY (`expunge = false`) or MOVE (`expunge = true`, RFC 6851):
    /// the messages keep their blob (bytes are never copied), flags and
    /// internal date, and get new uids in `to` in ascending source order.
    /// With `expunge` the sources are expunged in the same atomic unit
    /// (tombstones, new modseqs). Copying a mailbox onto itself is allowed.
    fn copy(
        &self,
        user: &str,
        from: &str,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> Result<Copied, StoreError>;
    /// Uids of the messages matching `query`, ascending. Header fields come
    /// from the index written at filing; only `Body`, `Text` and
    /// `Header(Other)` read blobs, and only of messages the rest of the
    /// query has not already ruled out.
    fn search(&self, user: &str, mailbox: &str, query: &Query) -> Result<Vec<Uid>, StoreError>;
    /// Every uid of the mailbox, ascending (the session's message numbers).
    fn uids(&self, user: &str, mailbox: &str) -> Result<Vec<Uid>, StoreError>;
    /// Every keyword ever set in the mailbox (IMAP FLAGS response), sorted.
    fn keywords(&self, user: &str, mailbox: &str) -> Result<Vec<String>, StoreError>;
    /// POP3 exclusive maildrop lock (RFC 1939 §8): true if acquired, or
    /// already held by `owner` (the expiry is then refreshed); a lock whose
    /// ttl has passed may be taken by anyone.
    fn lock_maildrop(&self, user: &str, owner: &str, ttl_secs: u64) -> Result<bool, StoreError>;
    /// Releases the lock if `owner` holds it; otherwise does nothing.
    fn unlock_maildrop(&self, user: &str, owner: &str) -> Result<(), StoreError>;
}

/// Hints of new modseqs, for IMAP IDLE. A hint only: a watcher that missed
/// one catches up with [`MailStore::changes_since`].
pub trait ChangeFeed: Send + Sync + 'static {
    /// A receiver holding the newest known modseq of the mailbox. For a
    /// mailbox that does not exist the sender is already closed.
    fn subscribe(&self, user: &str, mailbox: &str) -> tokio::sync::watch::Receiver<u64>;
}

/// The canonical name of INBOX.
pub const INBOX: &str = "INBOX";

/// Normalises a mailbox name: any case of `INBOX` becomes `INBOX`, other
/// names are kept as is. Rejects empty names and control characters.
pub fn normalize_mailbox(name: &str) -> Result<String, StoreError> {
    if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidMailboxName(name.to_owned()));
    }
    if name.eq_ignore_ascii_case(INBOX) {
        Ok(INBOX.to_owned())
    } else {
        Ok(name.to_owned())
    }
}

/// Normalises a user for storage: the full address, lowercased. Accepts
/// `local@domain` with exactly one `@`, both parts non-empty, no whitespace
/// or control characters, at most 254 bytes.
pub fn normalize_user(user: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::InvalidUser(user.to_owned());
    if user.is_empty()
        || user.len() > 254
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    let (local, domain) = user.split_once('@').ok_or_else(invalid)?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(invalid());
    }
    Ok(user.to_lowercase())
}

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// The `\Seen` flag.
pub const SEEN: &str = "\\Seen";
/// The `\Deleted` flag.
pub const DELETED: &str = "\\Deleted";

/// Canonical spelling of a flag: system flags get their RFC 3501 spelling,
/// keywords are kept. `\Recent` (not storable) and empty flags give `None`.
fn canonical_flag(flag: &str) -> Option<String> {
    if flag.is_empty() || flag.eq_ignore_ascii_case("\\Recent") {
        return None;
    }
    for sys in SYSTEM_FLAGS {
        if flag.eq_ignore_ascii_case(sys) {
            return Some(sys.to_owned());
        }
    }
    Some(flag.to_owned())
}

/// True when `flags` holds `flag` (flags compare case-insensitively).
pub fn has_flag(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Applies a flag operation; the result is normalised and keeps the order of
/// `current` followed by new flags.
pub fn apply_flags(current: &[String], op: FlagOp, flags: &[String]) -> Vec<String> {
    let given: Vec<String> = flags.iter().filter_map(|f| canonical_flag(f)).collect();
    let mut out: Vec<String> = Vec::new();
    let push = |out: &mut Vec<String>, f: &String| {
        if !has_flag(out, f) {
            out.push(f.clone());
        }
    };
    match op {
        FlagOp::Add => {
            for f in current.iter().chain(given.iter()) {
                push(&mut out, f);
            }
        }
        FlagOp::Remove => {
            for f in current {
                if !has_flag(&given, f) {
                    push(&mut out, f);
                }
            }
        }
        FlagOp::Replace => {
            for f in &given {
                push(&mut out, f);
            }
        }
    }
    out
}

/// True when two normalised flag lists hold the same set.
pub fn same_flags(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|f| has_flag(b, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mailbox_names() {
        assert_eq!(normalize_mailbox("inbox").ok().as_deref(), Some("INBOX"));
        assert_eq!(normalize_mailbox("InBoX").ok().as_deref(), Some("INBOX"));
        assert_eq!(normalize_mailbox("Sent").ok().as_deref(), Some("Sent"));
        assert_eq!(normalize_mailbox("sent").ok().as_deref(), Some("sent"));
        assert!(normalize_mailbox("").is_err());
        assert!(normalize_mailbox("a\0b").is_err());
        assert!(normalize_mailbox("a\nb").is_err());
    }

    #[test]
    fn flags_ops() {
        let cur = v(&["\\Seen", "$Label"]);
        assert_eq!(
            apply_flags(&cur, FlagOp::Add, &v(&["\\FLAGGED", "\\seen", "\\Recent"])),
            v(&["\\Seen", "$Label", "\\Flagged"])
        );
        assert_eq!(
            apply_flags(&cur, FlagOp::Remove, &v(&["\\SEEN"])),
            v(&["$Label"])
        );
        assert_eq!(
            apply_flags(&cur, FlagOp::Replace, &v(&["\\deleted", "\\Deleted"])),
            v(&["\\Deleted"])
        );
        assert!(same_flags(&v(&["a", "b"]), &v(&["B", "a"])));
        assert!(!same_flags(&v(&["a"]), &v(&["a", "b"])));
    }
}
