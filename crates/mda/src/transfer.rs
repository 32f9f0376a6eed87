//! `facteur-mda store export|import --maildir DIR`: moving mail between the
//! store's mailboxes and a Maildir++ tree (the layout of `[store] maildir`).
//! Blocking code (the CLI runs it on a blocking thread), one message in
//! memory at a time at most.
//!
//! Export writes every mailbox of a user into `cur/` with its flags as `:2,`
//! info, keywords through `dovecot-keywords` (26 per folder at most, as
//! Maildir allows; others are counted as dropped), the internal date as the
//! file's mtime, and the subscriptions into `subscriptions`. It refuses a
//! user whose Maildir already holds mail, so it never duplicates.
//!
//! Import takes every message of `new/` and `cur/` of INBOX and each
//! `.Folder`, creating missing mailboxes, and appends it with its flags,
//! keywords and mtime. A `MaildirImport` mark per (user, folder, base name)
//! makes a second import of the same tree a no-op: the base name stays when
//! an IMAP server changes a file's flags, so a file is recognised after that
//! too (its flags are then not updated).

use std::io::Write;

use crate::store::maildir::{MaildirTree, NewFile, folders, name};
use crate::store::{BlobStore, INBOX, MailStore, Mark, Marks, StoreError};

/// Messages read from the store per page.
const PAGE: usize = 1024;

/// What happened to one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    pub user: String,
    pub folder: String,
    /// Messages written (export) or appended (import).
    pub messages: u64,
    /// Import: messages already imported before, left alone.
    pub skipped: u64,
    /// Export: keywords left out because the folder's 26 letters were taken.
    pub dropped_keywords: u64,
}

impl std::fmt::Display for FolderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} messages",
            self.user, self.folder, self.messages
        )?;
        if self.skipped > 0 {
            write!(f, ", {} already imported", self.skipped)?;
        }
        if self.dropped_keywords > 0 {
            write!(
                f,
                ", {} keywords dropped (Maildir has 26 per folder)",
                self.dropped_keywords
            )?;
        }
        Ok(())
    }
}

/// Exports `users`' mailboxes into the tree; `report` is called per folder.
pub fn export<S: MailStore + BlobStore>(
    store: &S,
    tree: &MaildirTree,
    users: &[String],
    mut report: impl FnMut(&FolderReport),
) -> Result<(), StoreError> {
    for user in users {
        let mailboxes = store.mailboxes(user)?;
        // Every name must be writable before anything is written.
        for m in &mailboxes {
            folders::storage_name(&m.name)?;
        }
        if tree.user_dir(user)?.exists() {
            for f in tree.folders(user)? {
                if !tree.messages(user, &f)?.is_empty() {
                    return Err(StoreError::NotAllowed(format!(
                        "the Maildir of {user} already holds mail ({f}); export into an empty directory"
                    )));
                }
            }
        }
        for m in &mailboxes {
            report(&export_folder(store, tree, user, &m.name)?);
        }
        let subscribed: Vec<String> = store
            .subscriptions(user)?
            .into_iter()
            .filter(|s| folders::storage_name(s).is_ok())
            .collect();
        tree.set_subscriptions(user, &subscribed)?;
    }
    Ok(())
}

fn export_folder<S: MailStore + BlobStore>(
    store: &S,
    tree: &MaildirTree,
    user: &str,
    folder: &str,
) -> Result<FolderReport, StoreError> {
    tree.ensure_folder(user, folder)?;
    let mut kw = tree.keywords(user, folder)?;
    let mut out = FolderReport {
        user: user.to_owned(),
        folder: folder.to_owned(),
        messages: 0,
        skipped: 0,
        dropped_keywords: 0,
    };
    let mut from = 1;
    loop {
        let page = store.list(user, folder, from, PAGE)?;
        for m in &page {
            let before = kw.clone();
            let mut dropped = 0;
            let letters = name::letters(&m.flags, |k| {
                let l = kw.letter_or_add(k);
                dropped += u64::from(l.is_none());
                l
            });
            out.dropped_keywords += dropped;
            if kw != before {
                // The letter's meaning is on disk before any file uses it.
                tree.save_keywords(user, folder, &kw)?;
            }
            let base = tree.new_name(m.size);
            let file = NewFile {
                base: &base,
                size: m.size,
                internal_date: Some(m.internal_date),
                letters: Some(&letters),
            };
            let mut read_error = None;
            let written = tree.write_message(user, folder, file, |f| {
                let mut at = 0;
                while at < m.size {
                    let to = (at + facteur_rpc::CHUNK_SIZE as u64).min(m.size);
                    match BlobStore::get(store, &m.blob, Some(at..to)) {
                        Ok(bytes) if !bytes.is_empty() => f.write_all(&bytes)?,
                        Ok(_) => break,
                        Err(e) => {
                            read_error = Some(e);
                            return Err(std::io::Error::other("reading the message failed"));
                        }
                    }
                    at = to;
                }
                Ok(())
            });
            if let Some(e) = read_error {
                return Err(e);
            }
            written?;
            out.messages += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE && last.uid < u32::MAX => from = last.uid + 1,
            _ => break,
        }
    }
    Ok(out)
}

/// Imports `users`' Maildirs into the store; `report` is called per folder.
pub fn import<S: MailStore + BlobStore + Marks>(
    store: &S,
    tree: &MaildirTree,
    users: &[String],
    mut report: impl FnMut(&FolderReport),
) -> Result<(), StoreError> {
    for user in users {
        let existing = store.list_mailboxes(user)?;
        for folder in tree.folders(user)? {
            if folder != INBOX && !existing.contains(&folder) {
                store.create_mailbox(user, &folder)?;
            }
            report(&import_folder(store, tree, user, &folder)?);
        }
        for s in tree.subscriptions(user)? {
            store.set_subscribed(user, &s, true)?;
        }
    }
    Ok(())
}

fn import_folder<S: MailStore + BlobStore + Marks>(
    store: &S,
    tree: &MaildirTree,
    user: &str,
    folder: &str,
) -> Result<FolderReport, StoreError> {
    let mut out = FolderReport {
        user: user.to_owned(),
        folder: folder.to_owned(),
        messages: 0,
        skipped: 0,
        dropped_keywords: 0,
    };
    for m in tree.messages(user, folder)? {
        let key = format!("{folder}\0{}", m.base);
        if store.get_mark(Mark::MaildirImport, user, &key)?.is_some() {
            out.skipped += 1;
            continue;
        }
        let bytes = std::fs::read(&m.path).map_err(|e| StoreError::io(&e))?;
        let blob = store.put(&bytes)?;
        store.append(
            user,
            folder,
            &blob,
            bytes.len() as u64,
            &m.flags,
            m.internal_date,
        )?;
        store.set_mark(Mark::MaildirImport, user, &key, "")?;
        out.messages += 1;
    }
    Ok(out)
}
