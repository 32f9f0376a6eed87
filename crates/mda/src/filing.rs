//! Filing a message into mailboxes: the one path every delivery takes, whether it
//! came over gRPC `Delivery` or over LMTP.
//!
//! The blob is stored (durably) before any mailbox points at it, and each
//! recipient is filed exactly once per message key.
//!
//! With `[store] maildir` set, messages go into each recipient's Maildir
//! INBOX instead (`new/`), still once per message key: a `MaildirDelivery`
//! mark records `pending:<name>` before the file is written and
//! `done:<name>` once its rename is durable; a retry finding `done`, or
//! `pending` with that file present (in `new/` or, flags changed, `cur/`),
//! answers 250 without writing again.

use facteur_daemon::logging::{addr, clean};
use std::collections::HashMap;
use std::sync::Arc;

use facteur_daemon::metrics::{self, Outcome};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::reply::Reply;

use crate::accounts::Accounts;
use crate::store::maildir::{MaildirTree, NewFile};
use crate::store::{BlobStore, INBOX, MailStore, Mark, Marks, MessageKey, StoreError};

/// The reply for a store failure: disk full is `452 4.3.1`, other transient
/// trouble `451 4.3.0`, the rest a permanent `550 5.2.0`. The cause is logged.
fn store_failure(what: &str, e: &StoreError) -> Reply {
    match e {
        StoreError::Full(_) => {
            tracing::warn!(error = %e, "{what}: storage full");
            codes::insufficient_storage()
        }
        e if e.is_transient() => {
            tracing::error!(error = %e, "{what} failed");
            codes::local_error()
        }
        e => {
            tracing::error!(error = %e, "{what} refused");
            Reply::new(550, "5.2.0", "Mailbox unavailable")
        }
    }
}

/// Files `bytes` into the user's Maildir INBOX once per key; the file's
/// name and whether it was there already.
fn file_maildir<S: Marks>(
    tree: &MaildirTree,
    store: &S,
    key: &MessageKey,
    user: &str,
    bytes: &[u8],
) -> Result<(String, bool), StoreError> {
    if let Some(v) = store.get_mark(Mark::MaildirDelivery, user, &key.0)? {
        if let Some(name) = v.strip_prefix("done:") {
            return Ok((name.to_owned(), true));
        }
        if let Some(name) = v.strip_prefix("pending:")
            && tree.contains(user, INBOX, name)?
        {
            let done = format!("done:{name}");
            store.set_mark(Mark::MaildirDelivery, user, &key.0, &done)?;
            return Ok((name.to_owned(), true));
        }
    }
    let size = bytes.len() as u64;
    let name = tree.new_name(size);
    store.set_mark(
        Mark::MaildirDelivery,
        user,
        &key.0,
        &format!("pending:{name}"),
    )?;
    let file = NewFile {
        base: &name,
        size,
        internal_date: None,
        letters: None,
    };
    tree.write_message(user, INBOX, file, |f| std::io::Write::write_all(f, bytes))?;
    store.set_mark(Mark::MaildirDelivery, user, &key.0, &format!("done:{name}"))?;
    Ok((name, false))
}

/// The store, accounts and aliases, shared by every service of the MDA.
pub struct Filing<S> {
    pub store: Arc<S>,
    pub accounts: Accounts,
    /// Delivery aliases, e.g. `postmaster@paris.test` → `pierre@paris.test`
    /// (lowercased addresses; one level, like a Postfix `virtual_alias_maps` line).
    pub aliases: Arc<HashMap<String, String>>,
    /// `[store] maildir`: file into this Maildir++ tree instead of the store's mailboxes.
    pub maildir: Option<Arc<MaildirTree>>,
    /// `[store] quota_bytes`: 0 for none.
    pub quota_bytes: u64,
}

impl<S> Clone for Filing<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            accounts: self.accounts.clone(),
            aliases: Arc::clone(&self.aliases),
            maildir: self.maildir.clone(),
            quota_bytes: self.quota_bytes,
        }
    }
}

/// The account a recipient address maps to (addresses compare lowercased).
pub fn account_of(rcpt: &str) -> String {
    rcpt.trim_matches(|c| c == '<' || c == '>').to_lowercase()
}

impl<S> Filing<S> {
    /// The account whose mailbox receives mail for `rcpt`.
    pub fn mailbox_of(&self, rcpt: &str) -> String {
        let addr = account_of(rcpt);
        self.aliases.get(&addr).cloned().unwrap_or(addr)
    }
}

impl<S: MailStore + BlobStore + Marks> Filing<S> {
    /// 250 if the recipient has a mailbox here, 550 5.1.1 if not.
    pub async fn check_recipient(&self, rcpt: &str) -> Reply {
        let accounts = self.accounts.clone();
        let user = self.mailbox_of(rcpt);
        match tokio::task::spawn_blocking(move || accounts.exists(&user)).await {
            Ok(Ok(true)) => Reply::new(250, "2.1.5", "Recipient OK"),
            Ok(Ok(false)) => codes::no_such_user(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "account lookup failed");
                codes::local_error()
            }
            Err(e) => {
                tracing::error!(error = %e, "account lookup panicked");
                codes::local_error()
            }
        }
    }

    /// File `message` for each recipient; one reply per recipient, in order.
    ///
    /// RFC 5321 §4.4: the final delivery adds `Return-Path:` with the reverse-path.
    pub async fn file(
        &self,
        key: &str,
        mail_from: &str,
        rcpts: &[String],
        message: Vec<u8>,
    ) -> Vec<Reply> {
        let store = Arc::clone(&self.store);
        let accounts = self.accounts.clone();
        let key = MessageKey(key.to_owned());
        let from = mail_from.to_owned();
        let users: Vec<String> = rcpts.iter().map(|r| self.mailbox_of(r)).collect();
        let maildir = self.maildir.clone();
        let quota = self.quota_bytes;
        let rcpts = rcpts.to_vec();
        let n = rcpts.len();
        let job = move || -> Vec<Reply> {
            let mut scan = facteur_daemon::trace::HopCounter::new();
            scan.feed(&message);
            let message_id = scan.message_id().unwrap_or_default();
            let message_id = clean(&message_id);
            let mut bytes = Vec::with_capacity(message.len() + from.len() + 20);
            bytes.extend_from_slice(format!("Return-Path: <{from}>\r\n").as_bytes());
            bytes.extend_from_slice(&message);
            let mut blob = None;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            rcpts
                .iter()
                .zip(users)
                .map(|(rcpt, user)| {
                    match accounts.exists(&user) {
                        Ok(true) => {}
                        Ok(false) => return codes::no_such_user(),
                        Err(e) => {
                            tracing::error!(error = %e, "account lookup failed");
                            return codes::local_error();
                        }
                    }
                    if let Some(tree) = maildir.as_deref() {
                        return match file_maildir(tree, &*store, &key, &user, &bytes) {
                            Ok((name, duplicate)) => {
                                tracing::info!(
                                    key = %clean(&key.0), %message_id, to = %addr(rcpt),
                                    user = %clean(&user), file = %name, duplicate,
                                    "filed into the Maildir"
                                );
                                Reply::new(250, "2.0.0", &format!("<{rcpt}> filed in the Maildir"))
                            }
                            Err(e) => store_failure("filing into the Maildir", &e),
                        };
                    }
                    if quota > 0 {
                        match usage(&*store, &user) {
                            Ok(used) if used.saturating_add(bytes.len() as u64) > quota => {
                                tracing::info!(
                                    key = %clean(&key.0), %message_id, to = %addr(rcpt),
                                    user = %clean(&user), used, quota, "refused: mailbox full"
                                );
                                return Reply::new(552, "5.2.2", &format!("<{rcpt}> mailbox full"));
                            }
                            Ok(_) => {}
                            Err(e) => return store_failure("reading the mailbox size", &e),
                        }
                    }
                    if blob.is_none() {
                        match store.put(&bytes) {
                            Ok(id) => blob = Some(id),
                            Err(e) if e.is_transient() => {
                                return store_failure("storing the message", &e);
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "storing the message failed");
                                return codes::local_error();
                            }
                        }
                    }
                    let Some(id) = blob.as_ref() else {
                        return codes::local_error();
                    };
                    match store.file(&key, &user, INBOX, id, bytes.len() as u64, now) {
                        Ok(filed) => {
                            tracing::info!(
                                key = %clean(&key.0), %message_id, to = %addr(rcpt),
                                user = %clean(&user), mailbox = %INBOX, uid = filed.uid,
                                duplicate = filed.duplicate, "filed"
                            );
                            Reply::new(
                                250,
                                "2.0.0",
                                &format!("<{rcpt}> filed as UID {}", filed.uid),
                            )
                        }
                        Err(e) => store_failure("filing", &e),
                    }
                })
                .collect()
        };
        let start = std::time::Instant::now();
        let replies = match tokio::task::spawn_blocking(job).await {
            Ok(replies) => replies,
            Err(e) => {
                tracing::error!(error = %e, "filing task failed");
                vec![codes::local_error(); n]
            }
        };
        metrics::store_since(start);
        count(&replies);
        replies
    }
}

/// The bytes a user's mailboxes hold, all of them (for `[store] quota_bytes`).
fn usage<S: MailStore>(store: &S, user: &str) -> Result<u64, StoreError> {
    let mut total = 0u64;
    for mailbox in store.list_mailboxes(user)? {
        total = total.saturating_add(store.status(user, &mailbox)?.size);
    }
    Ok(total)
}

/// The message counters of one filing: the message accepted if any recipient
/// got it, and per recipient delivered (filed), deferred (4xx) or bounced (5xx).
fn count(replies: &[Reply]) {
    let filed = replies.iter().filter(|r| r.is_positive()).count() as u64;
    let deferred = replies.iter().filter(|r| r.code() / 100 == 4).count() as u64;
    let refused = replies.len() as u64 - filed - deferred;
    let message = if filed > 0 {
        Outcome::Accepted
    } else {
        Outcome::Refused
    };
    metrics::messages(message, 1);
    metrics::messages(Outcome::Delivered, filed);
    metrics::messages(Outcome::Deferred, deferred);
    metrics::messages(Outcome::Bounced, refused);
}
