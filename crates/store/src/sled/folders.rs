//! Mailboxes as folders on the sled backend: create (with a SPECIAL-USE
//! role), rename with children, delete, list with roles and subscriptions,
//! the per-user defaults of `prepare_user`, and the subscription list
//! (`S` records, independent of the mailboxes, RFC 9051 §6.3.7).

use std::collections::BTreeSet;

use ::sled::Tree;

use super::records::*;
use super::refs::unref_blob;
use super::{SledStore, Tx, backend, create_in_tx};
use crate::mail::{INBOX, MailboxInfo, Role, StoreError, normalize_mailbox, normalize_user};

/// The hierarchy delimiter.
const DELIMITER: char = '/';

impl SledStore {
    pub(super) fn create_folder(
        &self,
        user: &str,
        name: &str,
        role: Option<Role>,
    ) -> Result<(), StoreError> {
        let (user, name) = self.names(user, name)?;
        let key = user_key(MAILBOX, &user, &name);
        self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            if tx.get(&key)?.is_some() {
                return Err(StoreError::MailboxExists(name));
            }
            create_in_tx(&mut tx, &st.db, &user, &key, role)?;
            tx.commit(st)
        })
    }

    pub(super) fn rename_folder(&self, user: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let from = normalize_mailbox(from)?;
        let to = normalize_mailbox(to)?;
        self.ensure_inbox(&user)?;
        if from != INBOX && to.starts_with(&format!("{from}{DELIMITER}")) {
            return Err(StoreError::NotAllowed(format!(
                "cannot rename {from} under itself"
            )));
        }
        self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let from_key = user_key(MAILBOX, &user, &from);
            let Some(rec) = tx.get(&from_key)? else {
                return Err(StoreError::NoSuchMailbox(from));
            };
            if tx.get(&user_key(MAILBOX, &user, &to))?.is_some() {
                return Err(StoreError::MailboxExists(to));
            }
            // (old name, new name, record): the mailbox, then its children;
            // INBOX's children stay where they are (RFC 3501 §6.3.5).
            let mut moves = vec![(from.clone(), to.clone(), rec)];
            if from != INBOX {
                let prefix = user_key(MAILBOX, &user, &format!("{from}{DELIMITER}"));
                let name_start = user_key(MAILBOX, &user, "").len();
                for item in st.tree().scan_prefix(&prefix) {
                    let (k, v) = item.map_err(backend)?;
                    let old = std::str::from_utf8(&k[name_start..])
                        .map_err(|_| corrupt("mailbox name"))?
                        .to_owned();
                    let new = normalize_mailbox(&format!("{to}{}", &old[from.len()..]))?;
                    moves.push((old, new, v.to_vec()));
                }
            }
            let sources: BTreeSet<&str> = moves.iter().map(|m| m.0.as_str()).collect();
            for (_, new, _) in &moves[1..] {
                let taken = tx.get(&user_key(MAILBOX, &user, new))?.is_some();
                if taken && !sources.contains(new.as_str()) {
                    return Err(StoreError::MailboxExists(new.clone()));
                }
            }
            let mut subscribed = Vec::new();
            for (old, new, _) in &moves {
                if tx.get(&user_key(SUBSCRIPTION, &user, old))?.is_some() {
                    subscribed.push((old.clone(), new.clone()));
                }
            }
            // Every removal before any insertion: a new name may be an old one.
            for (old, _, _) in &moves {
                tx.remove(&user_key(MAILBOX, &user, old));
            }
            for (old, _) in &subscribed {
                if old != INBOX {
                    tx.remove(&user_key(SUBSCRIPTION, &user, old));
                }
            }
            for (_, new, rec) in moves {
                tx.insert(&user_key(MAILBOX, &user, &new), rec);
            }
            for (_, new) in &subscribed {
                tx.insert(&user_key(SUBSCRIPTION, &user, new), Vec::new());
            }
            if from == INBOX {
                // The messages moved; INBOX stays, empty.
                create_in_tx(&mut tx, &st.db, &user, &from_key, None)?;
            }
            tx.commit(st)
        })
    }

    pub(super) fn delete_folder(&self, user: &str, name: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let name = normalize_mailbox(name)?;
        if name == INBOX {
            return Err(StoreError::NotAllowed("INBOX cannot be deleted".into()));
        }
        let key = user_key(MAILBOX, &user, &name);
        let id = self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            let rec = MailboxRec::decode(
                &tx.get(&key)?
                    .ok_or_else(|| StoreError::NoSuchMailbox(name.clone()))?,
            )?;
            tx.remove(&key);
            tx.remove(&mailbox_prefix(KEYWORDS, rec.id));
            // Its messages' blobs lose a reference each.
            for item in st.tree().scan_prefix(mailbox_prefix(MESSAGE, rec.id)) {
                let (_, v) = item.map_err(backend)?;
                unref_blob(&mut tx, &MetaView::parse(&v)?.blob())?;
            }
            // The record, its messages, changes and index go in one batch.
            for prefix in [
                mailbox_prefix(MESSAGE, rec.id),
                mailbox_prefix(CHANGE, rec.id),
                mailbox_prefix(HEADER_INDEX, rec.id),
            ] {
                for k in st.tree().scan_prefix(prefix).keys() {
                    tx.remove(&k.map_err(backend)?);
                }
            }
            tx.commit(st)?;
            Ok(rec.id)
        })?;
        super::lock_map(&self.inner.feeds).remove(&id);
        Ok(())
    }

    /// Every mailbox of the user with role and subscription, sorted by name.
    pub(super) fn folders(&self, user: &str) -> Result<Vec<MailboxInfo>, StoreError> {
        let user = normalize_user(user)?;
        self.ensure_inbox(&user)?;
        let subscribed: BTreeSet<String> = self.subscribed_names(&user)?.into_iter().collect();
        Ok(records(&self.tree(), &user)?
            .into_iter()
            .map(|(name, rec)| MailboxInfo {
                subscribed: subscribed.contains(&name),
                name,
                role: rec.role,
            })
            .collect())
    }

    /// INBOX and a mailbox for every role no mailbox has: one scan when
    /// everything is there, one write otherwise.
    pub(super) fn prepare_folders(&self, user: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let missing = |records: &[(String, MailboxRec)]| -> Vec<(Role, &'static str)> {
            Role::DEFAULTS
                .into_iter()
                .filter(|(role, _)| !records.iter().any(|(_, r)| r.role == Some(*role)))
                .collect()
        };
        let now = records(&self.tree(), &user)?;
        if now.iter().any(|(n, _)| n == INBOX) && missing(&now).is_empty() {
            return Ok(());
        }
        self.write(move |st| {
            // Read again on the writer: the state may have changed since.
            let now = records(&st.tree(), &user)?;
            let mut tx = Tx::new(st.tree());
            let inbox = user_key(MAILBOX, &user, INBOX);
            if tx.get(&inbox)?.is_none() {
                create_in_tx(&mut tx, &st.db, &user, &inbox, None)?;
                tx.insert(&user_key(SUBSCRIPTION, &user, INBOX), Vec::new());
            }
            for (role, name) in missing(&now) {
                let key = user_key(MAILBOX, &user, name);
                match tx.get(&key)? {
                    None => {
                        create_in_tx(&mut tx, &st.db, &user, &key, Some(role))?;
                        tx.insert(&user_key(SUBSCRIPTION, &user, name), Vec::new());
                    }
                    Some(v) => {
                        let mut rec = MailboxRec::decode(&v)?;
                        // A mailbox of that name with another role keeps it:
                        // the role then stays without a mailbox.
                        if rec.role.is_none() {
                            rec.role = Some(role);
                            tx.insert(&key, rec.encode());
                        }
                    }
                }
            }
            tx.commit(st)
        })
    }

    pub(super) fn subscribe_folder(
        &self,
        user: &str,
        name: &str,
        subscribed: bool,
    ) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let name = normalize_mailbox(name)?;
        let key = user_key(SUBSCRIPTION, &user, &name);
        self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            match (subscribed, tx.get(&key)?.is_some()) {
                (true, false) => tx.insert(&key, Vec::new()),
                (false, true) => tx.remove(&key),
                _ => {}
            }
            tx.commit(st)
        })
    }

    pub(super) fn subscribed_names(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let user = normalize_user(user)?;
        let prefix = user_key(SUBSCRIPTION, &user, "");
        self.tree()
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k.map_err(backend)?;
                std::str::from_utf8(&k[prefix.len()..])
                    .map(str::to_owned)
                    .map_err(|_| corrupt("subscription name"))
            })
            .collect()
    }
}

/// Every mailbox record of a (normalised) user, sorted by name.
fn records(tree: &Tree, user: &str) -> Result<Vec<(String, MailboxRec)>, StoreError> {
    let prefix = user_key(MAILBOX, user, "");
    let mut out = Vec::new();
    for item in tree.scan_prefix(&prefix) {
        let (k, v) = item.map_err(backend)?;
        let name = std::str::from_utf8(&k[prefix.len()..]).map_err(|_| corrupt("mailbox name"))?;
        out.push((name.to_owned(), MailboxRec::decode(&v)?));
    }
    Ok(out)
}
