//! `Marks` on the sled backend: one `x` (Maildir delivery) or `i` (Maildir
//! import) record per user and key.

use super::records::*;
use super::{SledStore, Tx, backend};
use crate::mail::{StoreError, normalize_user};
use crate::marks::{Mark, Marks};

fn prefix(mark: Mark) -> u8 {
    match mark {
        Mark::MaildirDelivery => MAILDIR_DELIVERY,
        Mark::MaildirImport => MAILDIR_IMPORT,
    }
}

impl Marks for SledStore {
    fn get_mark(&self, mark: Mark, user: &str, key: &str) -> Result<Option<String>, StoreError> {
        let user = normalize_user(user)?;
        match self
            .tree()
            .get(user_key(prefix(mark), &user, key))
            .map_err(backend)?
        {
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| corrupt("mark record")),
            None => Ok(None),
        }
    }

    fn set_mark(&self, mark: Mark, user: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let key = user_key(prefix(mark), &user, key);
        let value = value.as_bytes().to_vec();
        self.write(move |st| {
            let mut tx = Tx::new(st.tree());
            tx.insert(&key, value);
            tx.commit(st)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_reopen_and_are_per_user_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            assert_eq!(
                s.get_mark(Mark::MaildirDelivery, "a@b.test", "k1").unwrap(),
                None
            );
            s.set_mark(Mark::MaildirDelivery, "A@b.test", "k1", "done:x")
                .unwrap();
            s.set_mark(Mark::MaildirImport, "a@b.test", "INBOX\0base", "")
                .unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            s.get_mark(Mark::MaildirDelivery, "a@b.test", "k1")
                .unwrap()
                .as_deref(),
            Some("done:x")
        );
        assert_eq!(
            s.get_mark(Mark::MaildirImport, "a@b.test", "k1").unwrap(),
            None
        );
        assert_eq!(
            s.get_mark(Mark::MaildirDelivery, "c@b.test", "k1").unwrap(),
            None
        );
        assert_eq!(
            s.get_mark(Mark::MaildirImport, "a@b.test", "INBOX\0base")
                .unwrap()
                .as_deref(),
            Some("")
        );
    }
}
