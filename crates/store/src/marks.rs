//! Small durable records kept beside the mail, per user: which message keys
//! were filed into a Maildir (so a retried delivery files once) and which
//! Maildir files an import already took in (so a second import is a no-op).

use crate::mail::StoreError;

/// What a mark records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Key: a delivery's message key. Value: the state of its Maildir file
    /// (see `facteur-mda`'s filing).
    MaildirDelivery,
    /// Key: `<folder>\0<base name>` of a Maildir file imported. Value: empty.
    MaildirImport,
}

/// Get and set marks; each `set_mark` is durable before it returns.
pub trait Marks: Send + Sync + 'static {
    fn get_mark(&self, mark: Mark, user: &str, key: &str) -> Result<Option<String>, StoreError>;
    fn set_mark(&self, mark: Mark, user: &str, key: &str, value: &str) -> Result<(), StoreError>;
}
