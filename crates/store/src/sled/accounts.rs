//! `AccountStore` on the sled backend: one `a` record per user holding the
//! PHC string of its password.

use super::records::*;
use super::{SledStore, Tx, backend};
use crate::accounts::AccountStore;
use crate::mail::{StoreError, normalize_user};

impl AccountStore for SledStore {
    fn password_hash(&self, user: &str) -> Result<Option<String>, StoreError> {
        let Ok(user) = normalize_user(user) else {
            return Ok(None);
        };
        match self
            .tree()
            .get(plain_user_key(ACCOUNT, &user))
            .map_err(backend)?
        {
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| corrupt("account record")),
            None => Ok(None),
        }
    }

    fn add_user(&self, user: &str, hash: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let hash = hash.as_bytes().to_vec();
        self.write(move |st| {
            let key = plain_user_key(ACCOUNT, &user);
            let mut tx = Tx::new(st.tree());
            if tx.get(&key)?.is_some() {
                return Err(StoreError::UserExists(user));
            }
            tx.insert(&key, hash);
            tx.commit(st)
        })
    }

    fn set_password_hash(&self, user: &str, hash: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        let hash = hash.as_bytes().to_vec();
        self.write(move |st| {
            let key = plain_user_key(ACCOUNT, &user);
            let mut tx = Tx::new(st.tree());
            if tx.get(&key)?.is_none() {
                return Err(StoreError::NoSuchUser(user));
            }
            tx.insert(&key, hash);
            tx.commit(st)
        })
    }

    fn delete_user(&self, user: &str) -> Result<(), StoreError> {
        let user = normalize_user(user)?;
        self.write(move |st| {
            let key = plain_user_key(ACCOUNT, &user);
            let mut tx = Tx::new(st.tree());
            if tx.get(&key)?.is_none() {
                return Err(StoreError::NoSuchUser(user));
            }
            tx.remove(&key);
            tx.commit(st)
        })
    }

    fn list_users(&self) -> Result<Vec<String>, StoreError> {
        self.tree()
            .scan_prefix([ACCOUNT])
            .keys()
            .map(|k| {
                let k = k.map_err(backend)?;
                String::from_utf8(k[1..].to_vec()).map_err(|_| corrupt("account name"))
            })
            .collect()
    }
}
