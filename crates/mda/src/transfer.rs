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
//! `.Folder`, creating missing mailboxes (and their superior names, as the
//! MAA's CREATE does: Maildir++ has no directory for a parent made only as a
//! placeholder), and appends it with its flags, keywords and mtime, its bare
//! LF line ends made CRLF (Dovecot saves LF and serves CRLF). What else a
//! server keeps in the tree (Dovecot's `dovecot-uidlist`, `dovecot.index*`,
//! `dovecot.list.index*`, `tmp/`) is left alone: UIDs are the store's own.
//! A `MaildirImport` mark per (user, folder, base name)
//! makes a second import of the same tree a no-op: the base name stays when
//! an IMAP server changes a file's flags, so a file is recognised after that
//! too (its flags are then not updated).

use std::io::Write;

use crate::store::maildir::{MaildirTree, NewFile, folders, lines, name};
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
        let mut existing = store.list_mailboxes(user)?;
        for folder in tree.folders(user)? {
            let superiors = folder.match_indices('/').map(|(i, _)| &folder[..i]);
            for name in superiors.chain([folder.as_str()]) {
                if name != INBOX && !existing.iter().any(|e| e == name) {
                    store.create_mailbox(user, name)?;
                    existing.push(name.to_owned());
                }
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
        let bytes = lines::to_crlf(std::fs::read(&m.path).map_err(|e| StoreError::io(&e))?);
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

#[cfg(test)]
mod tests {
    //! Import of a Maildir as Dovecot 2.3 leaves it (after LMTP deliveries,
    //! STORE, CREATE, MOVE and SUBSCRIBE over IMAP, indexes kept beside the mail).

    use std::path::Path;

    use super::*;
    use crate::store::SledStore;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// andre's Maildir: one unread LF message in `new/`, one in
    /// `.Archiv.Re&AOc-us/cur/` with `:2,DSab` and that folder's keywords,
    /// Dovecot's index, uidlist and subscriptions files around them.
    fn dovecot_tree(root: &Path) {
        let home = root.join("lyon.test/andre");
        let unread = b"Subject: unread\n\nbody\n.leading dot\n";
        write(
            &home.join("new/1796182683.M773586P13961.vm,S=35,W=39"),
            unread,
        );
        write(&home.join("cur/.keep-me-out"), b"not a message");
        std::fs::create_dir_all(home.join("tmp")).unwrap();
        for f in [
            "dovecot-uidlist",
            "dovecot-uidvalidity",
            "dovecot.index.log",
            "dovecot.index.cache",
            "dovecot.list.index.log",
            "dovecot.mailbox.log",
        ] {
            write(&home.join(f), b"3 V1796182682 N2\n");
        }
        write(
            &home.join("subscriptions"),
            b"V\t2\n\nINBOX\nArchiv\tRe&AOc-us\n",
        );
        let archiv = home.join(".Archiv.Re&AOc-us");
        write(
            &archiv.join("cur/1796182683.M230541P13961.vm,S=18,W=21:2,DSab"),
            b"Subject: three\n\nx\n",
        );
        write(&archiv.join("dovecot-keywords"), b"0 $Work\n1 Projekt-X\n");
        write(&archiv.join("maildirfolder"), b"");
        std::fs::create_dir_all(archiv.join("new")).unwrap();
        std::fs::create_dir_all(archiv.join("tmp")).unwrap();
        for f in [
            "dovecot-uidlist",
            "dovecot.index.log",
            "dovecot.index.cache",
        ] {
            write(&archiv.join(f), b"3 V1 N2\n");
        }
    }

    fn import_all(store: &SledStore, tree: &MaildirTree) -> Vec<FolderReport> {
        let mut out = Vec::new();
        import(store, tree, &["andre@lyon.test".to_owned()], |r| {
            out.push(r.clone())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_dovecot_maildir_imports_with_crlf_superiors_subscriptions_and_keywords() {
        let dir = tempfile::tempdir().unwrap();
        dovecot_tree(&dir.path().join("mail"));
        let tree = MaildirTree::new(dir.path().join("mail"), "mx.lyon.test");
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        let user = "andre@lyon.test";

        let first = import_all(&store, &tree);
        let counts: Vec<(&str, u64, u64)> = first
            .iter()
            .map(|r| (r.folder.as_str(), r.messages, r.skipped))
            .collect();
        assert_eq!(counts, vec![("INBOX", 1, 0), ("Archiv/Reçus", 1, 0)]);
        // The superior name is a mailbox, as the MAA's CREATE makes it.
        assert_eq!(
            store.list_mailboxes(user).unwrap(),
            vec!["Archiv".to_owned(), "Archiv/Reçus".into(), "INBOX".into()]
        );
        assert_eq!(
            store.subscriptions(user).unwrap(),
            vec!["Archiv/Reçus".to_owned(), "INBOX".into()]
        );

        let inbox = store.list(user, INBOX, 1, 10).unwrap();
        assert_eq!(inbox.len(), 1);
        assert!(inbox[0].flags.is_empty());
        let bytes = BlobStore::get(&store, &inbox[0].blob, None).unwrap();
        assert_eq!(bytes, b"Subject: unread\r\n\r\nbody\r\n.leading dot\r\n");
        assert_eq!(inbox[0].size, 39, "the W= size of Dovecot's name");

        let recus = store.list(user, "Archiv/Reçus", 1, 10).unwrap();
        assert_eq!(recus.len(), 1);
        let mut flags = recus[0].flags.clone();
        flags.sort();
        assert_eq!(flags, vec!["$Work", "Projekt-X", "\\Draft", "\\Seen"]);
        assert_eq!(
            BlobStore::get(&store, &recus[0].blob, None).unwrap(),
            b"Subject: three\r\n\r\nx\r\n"
        );

        // A second import of the same tree appends nothing.
        let again = import_all(&store, &tree);
        let counts: Vec<(&str, u64, u64)> = again
            .iter()
            .map(|r| (r.folder.as_str(), r.messages, r.skipped))
            .collect();
        assert_eq!(counts, vec![("INBOX", 0, 1), ("Archiv/Reçus", 0, 1)]);
        assert_eq!(store.list(user, INBOX, 1, 10).unwrap().len(), 1);
        assert_eq!(store.list(user, "Archiv/Reçus", 1, 10).unwrap().len(), 1);
    }
}
