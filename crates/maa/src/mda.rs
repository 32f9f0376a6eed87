//! The MAA's view of the MDA: one trait, [`Mda`], for every call POP3 and IMAP
//! make on mailboxes and passwords. Production uses [`GrpcMda`] (the MDA's
//! `Mailbox` and `Auth` services); unit tests use [`StoreMda`], the real
//! `facteur-store` sled backend in a temporary directory, called in process,
//! so no session test needs a fake MDA on TCP.
//!
//! Types are the storage seam's own (`facteur_store::mail`): the MAA never
//! opens a store itself outside tests; only the MDA does.

use std::future::Future;
use std::pin::Pin;

pub use facteur_store::mail::{
    Appended, Change, Copied, FlagOp, MailboxInfo, MailboxStatus, MessageMeta, Query, Role,
    StoreFlagsResult, Uid,
};

mod grpc;
mod store;

pub use grpc::GrpcMda;
pub use store::StoreMda;

/// Why an MDA call failed, in the terms the protocols answer with.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MdaError {
    /// No such mailbox (IMAP `NO [NONEXISTENT]`).
    #[error("no such mailbox: {0}")]
    NoSuchMailbox(String),
    /// The mailbox exists already (IMAP `NO [ALREADYEXISTS]`).
    #[error("mailbox exists: {0}")]
    Exists(String),
    /// An argument the MDA refused (bad name, bad flag).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Forbidden by the protocol (delete INBOX, ...; IMAP `NO [CANNOT]`).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The store is full (IMAP `NO [OVERQUOTA]`, POP3 `-ERR [SYS/TEMP]`).
    #[error("mailbox store full")]
    Full,
    /// The mailboxes are not served through this MDA (it files into a
    /// Maildir); the text says where they are and is shown to the user
    /// (IMAP `NO [UNAVAILABLE] <text>`, POP3 `-ERR [SYS/PERM] <text>`).
    #[error("mailboxes elsewhere: {0}")]
    Elsewhere(String),
    /// The MDA is down or failing; try again later (IMAP `NO [UNAVAILABLE]`).
    #[error("MDA unavailable: {0}")]
    Unavailable(String),
}

/// Which part of each message [`Mda::fetch`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Only the metadata.
    None,
    /// The header, up to and including the empty line after it.
    Header,
    /// The whole message.
    Whole,
}

/// One item of a [`Mda::fetch`] stream. Per message, in the order asked:
/// `Meta` then zero or more `Data` then `End`, or `Missing` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Meta(MessageMeta),
    Data(bytes::Bytes),
    End,
    /// The uid does not exist (expunged meanwhile).
    Missing(Uid),
}

/// Every message changed and every tombstone after a modseq.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Ascending by uid.
    pub updated: Vec<MessageMeta>,
    /// Ascending by uid.
    pub expunged: Vec<Uid>,
    pub highest_modseq: u64,
}

/// Result of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The canonical account name.
    Ok(String),
    Failed,
}

pub type BoxStream<T> = Pin<Box<dyn futures_core::Stream<Item = Result<T, MdaError>> + Send>>;

/// A mailbox: the user (an account name) and the mailbox name (UTF-8,
/// `INBOX` any case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxRef {
    pub user: String,
    pub mailbox: String,
}

impl MailboxRef {
    pub fn new(user: &str, mailbox: &str) -> Self {
        Self {
            user: user.to_owned(),
            mailbox: mailbox.to_owned(),
        }
    }
}

/// Everything the MAA asks of the MDA. Cheap to clone; every method is one
/// call (one atomic unit in the store).
pub trait Mda: Clone + Send + Sync + 'static {
    fn verify(
        &self,
        user: &str,
        password: &str,
        service: &str,
        remote_addr: &str,
    ) -> impl Future<Output = Result<Verdict, MdaError>> + Send;

    /// INBOX plus the SPECIAL-USE mailboxes the user lacks (at each login).
    fn prepare_user(&self, user: &str) -> impl Future<Output = Result<(), MdaError>> + Send;
    /// Every mailbox, sorted by name, and the subscribed names that are not
    /// mailboxes.
    fn mailboxes(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<(Vec<MailboxInfo>, Vec<String>), MdaError>> + Send;
    fn create(
        &self,
        mailbox: &MailboxRef,
        role: Option<Role>,
    ) -> impl Future<Output = Result<(), MdaError>> + Send;
    /// Renames a mailbox and its children (`from/...`); INBOX semantics of
    /// RFC 9051 §6.3.6.
    fn rename(
        &self,
        user: &str,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(), MdaError>> + Send;
    fn delete(&self, mailbox: &MailboxRef) -> impl Future<Output = Result<(), MdaError>> + Send;
    fn subscribe(
        &self,
        mailbox: &MailboxRef,
        subscribed: bool,
    ) -> impl Future<Output = Result<(), MdaError>> + Send;

    fn status(
        &self,
        mailbox: &MailboxRef,
    ) -> impl Future<Output = Result<(MailboxStatus, Vec<String>), MdaError>> + Send;
    /// Every uid, ascending.
    fn uids(&self, mailbox: &MailboxRef)
    -> impl Future<Output = Result<Vec<Uid>, MdaError>> + Send;
    /// Metadata of the given uids that exist, ascending (at most 1024 asked).
    fn metas(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
    ) -> impl Future<Output = Result<Vec<MessageMeta>, MdaError>> + Send;
    /// Messages in the order asked (at most 1024), streamed.
    fn fetch(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        part: Part,
    ) -> impl Future<Output = Result<BoxStream<Fetched>, MdaError>> + Send;
    /// A byte range of one message (POP3 RETR/TOP read it whole: `None`).
    fn read(
        &self,
        mailbox: &MailboxRef,
        uid: Uid,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, MdaError>> + Send;

    fn store_flags(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> impl Future<Output = Result<StoreFlagsResult, MdaError>> + Send;
    /// Expunges `\Deleted` messages (`None`) or exactly `uids`.
    fn expunge(
        &self,
        mailbox: &MailboxRef,
        uids: Option<&[Uid]>,
    ) -> impl Future<Output = Result<Vec<Uid>, MdaError>> + Send;
    fn append(
        &self,
        mailbox: &MailboxRef,
        flags: &[String],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Appended, MdaError>> + Send;
    /// COPY, or MOVE with `expunge`.
    fn copy(
        &self,
        from: &MailboxRef,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> impl Future<Output = Result<Copied, MdaError>> + Send;
    /// Matching uids, ascending, and the highest modseq among them.
    fn search(
        &self,
        mailbox: &MailboxRef,
        query: &Query,
    ) -> impl Future<Output = Result<(Vec<Uid>, u64), MdaError>> + Send;
    fn changes(
        &self,
        mailbox: &MailboxRef,
        since: u64,
    ) -> impl Future<Output = Result<Changes, MdaError>> + Send;
    /// The highest modseq now and each time it grows; ends when the mailbox
    /// goes away.
    fn watch(
        &self,
        mailbox: &MailboxRef,
    ) -> impl Future<Output = Result<BoxStream<u64>, MdaError>> + Send;

    /// POP3 maildrop lock (RFC 1939 §8).
    fn lock(
        &self,
        user: &str,
        owner: &str,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<bool, MdaError>> + Send;
    fn unlock(&self, user: &str, owner: &str) -> impl Future<Output = Result<(), MdaError>> + Send;
}
