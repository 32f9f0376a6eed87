//! Mail accounts: users (full addresses, lowercased) and their argon2id
//! password hashes (PHC strings), kept by any [`AccountStore`] backend.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use facteur_store::{AccountStore, StoreError};
use rand::rngs::OsRng;

/// Errors of the accounts.
#[derive(thiserror::Error, Debug)]
pub enum AccountError {
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("user already exists: {0}")]
    UserExists(String),
    #[error("invalid user (want local@domain): {0:?}")]
    InvalidUser(String),
    #[error("empty password")]
    EmptyPassword,
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("corrupt account record: {0}")]
    Corrupt(String),
    #[error("account store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchUser(u) => AccountError::NoSuchUser(u),
            StoreError::UserExists(u) => AccountError::UserExists(u),
            StoreError::InvalidUser(u) => AccountError::InvalidUser(u),
            StoreError::Corrupt(c) => AccountError::Corrupt(c),
            other => AccountError::Store(other),
        }
    }
}

/// Normalises a user: the full address, lowercased (the store's rule).
pub fn normalize_user(user: &str) -> Result<String, AccountError> {
    facteur_store::normalize_user(user).map_err(|_| AccountError::InvalidUser(user.to_owned()))
}

/// The accounts of one MDA. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    /// Hash verified against for unknown users so that timing does not tell
    /// which users exist; computed on first need.
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify_hash(phc: &str, password: &str) -> Result<bool, AccountError> {
    let parsed = PasswordHash::new(phc).map_err(|e| AccountError::Corrupt(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

impl Accounts {
    /// Accounts kept in `store`.
    pub fn new(store: Arc<dyn AccountStore>) -> Self {
        Self {
            store,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Adds a user; fails if it exists. Durable before returning.
    pub fn add(&self, user: &str, password: &str) -> Result<(), AccountError> {
        let user = normalize_user(user)?;
        if password.is_empty() {
            return Err(AccountError::EmptyPassword);
        }
        let phc = hash_password(password)?;
        Ok(self.store.add_user(&user, &phc)?)
    }

    /// Changes the password of an existing user. Durable before returning.
    pub fn set_password(&self, user: &str, password: &str) -> Result<(), AccountError> {
        let user = normalize_user(user)?;
        if password.is_empty() {
            return Err(AccountError::EmptyPassword);
        }
        let phc = hash_password(password)?;
        Ok(self.store.set_password_hash(&user, &phc)?)
    }

    /// Deletes a user (not their mail); fails if missing.
    pub fn delete(&self, user: &str) -> Result<(), AccountError> {
        let user = normalize_user(user)?;
        Ok(self.store.delete_user(&user)?)
    }

    /// Every user, sorted.
    pub fn list(&self) -> Result<Vec<String>, AccountError> {
        Ok(self.store.list_users()?)
    }

    /// True if the user exists; a malformed user simply does not.
    pub fn exists(&self, user: &str) -> Result<bool, AccountError> {
        Ok(self.stored_hash(user)?.is_some())
    }

    /// The stored PHC string of a user; `None` for unknown or malformed users
    /// (`crate::auth` verifies it in its argon2 pool).
    pub fn stored_hash(&self, user: &str) -> Result<Option<String>, AccountError> {
        Ok(self.store.password_hash(user)?)
    }

    /// Checks a password. Unknown (or malformed) users spend an argon2
    /// verification against a dummy hash too and get `false`, so timing does
    /// not reveal which users exist.
    pub fn verify(&self, user: &str, password: &str) -> Result<bool, AccountError> {
        match self.stored_hash(user)? {
            Some(phc) => verify_hash(&phc, password),
            None => {
                let dummy = self.dummy_hash()?;
                // The result is irrelevant: only the time spent matters.
                let _ = verify_hash(&dummy, password);
                Ok(false)
            }
        }
    }

    fn dummy_hash(&self) -> Result<String, AccountError> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let h = hash_password("facteur-dummy-password-for-unknown-users")?;
        Ok(self.dummy.get_or_init(|| h).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_store::SledStore;

    fn accounts() -> (tempfile::TempDir, Arc<SledStore>, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let acc = Accounts::new(store.clone());
        (dir, store, acc)
    }

    #[test]
    fn normalize() {
        assert_eq!(
            normalize_user("Pierre@Paris.TEST").unwrap(),
            "pierre@paris.test"
        );
        for bad in [
            "",
            "pierre",
            "@paris.test",
            "pierre@",
            "a@b@c",
            "pi erre@paris.test",
            "pierre@paris.test\r\n",
            "pi\0@x",
        ] {
            assert!(
                matches!(normalize_user(bad), Err(AccountError::InvalidUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn add_verify_and_duplicates() {
        let (_d, _db, acc) = accounts();
        acc.add("Pierre@paris.test", "secret").unwrap();
        assert!(acc.exists("pierre@paris.test").unwrap());
        assert!(acc.exists("PIERRE@PARIS.TEST").unwrap());
        assert!(acc.verify("pierre@paris.test", "secret").unwrap());
        assert!(acc.verify("PIERRE@paris.test", "secret").unwrap());
        assert!(!acc.verify("pierre@paris.test", "Secret").unwrap());
        assert!(!acc.verify("pierre@paris.test", "").unwrap());
        assert!(matches!(
            acc.add("pierre@PARIS.test", "other"),
            Err(AccountError::UserExists(_))
        ));
        // the failed add did not change the password
        assert!(acc.verify("pierre@paris.test", "secret").unwrap());
        assert!(matches!(
            acc.add("jacques@paris.test", ""),
            Err(AccountError::EmptyPassword)
        ));
        assert!(matches!(
            acc.add("nobody", "x"),
            Err(AccountError::InvalidUser(_))
        ));
    }

    #[test]
    fn stored_as_argon2id_phc() {
        let (_d, store, acc) = accounts();
        acc.add("pierre@paris.test", "secret").unwrap();
        let phc = store.password_hash("pierre@paris.test").unwrap().unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("secret"));
        // fresh salt each time
        acc.add("jacques@paris.test", "secret").unwrap();
        let phc2 = store.password_hash("jacques@paris.test").unwrap().unwrap();
        assert_ne!(phc, phc2);
    }

    #[test]
    fn unknown_users_do_not_verify() {
        let (_d, _db, acc) = accounts();
        assert!(!acc.verify("ghost@paris.test", "facteur").unwrap());
        assert!(
            !acc.verify(
                "ghost@paris.test",
                "facteur-dummy-password-for-unknown-users"
            )
            .unwrap()
        );
        assert!(!acc.verify("not an address", "x").unwrap());
        assert!(!acc.exists("ghost@paris.test").unwrap());
        assert!(!acc.exists("not an address").unwrap());
    }

    #[test]
    fn set_password() {
        let (_d, _db, acc) = accounts();
        assert!(matches!(
            acc.set_password("pierre@paris.test", "x"),
            Err(AccountError::NoSuchUser(_))
        ));
        assert!(!acc.exists("pierre@paris.test").unwrap());
        acc.add("pierre@paris.test", "old").unwrap();
        acc.set_password("PIERRE@paris.test", "new").unwrap();
        assert!(acc.verify("pierre@paris.test", "new").unwrap());
        assert!(!acc.verify("pierre@paris.test", "old").unwrap());
        assert!(matches!(
            acc.set_password("pierre@paris.test", ""),
            Err(AccountError::EmptyPassword)
        ));
    }

    #[test]
    fn delete_and_list() {
        let (_d, _db, acc) = accounts();
        acc.add("pierre@paris.test", "a").unwrap();
        acc.add("andre@lyon.test", "b").unwrap();
        acc.add("jacques@paris.test", "c").unwrap();
        assert_eq!(
            acc.list().unwrap(),
            vec!["andre@lyon.test", "jacques@paris.test", "pierre@paris.test"]
        );
        acc.delete("Jacques@paris.test").unwrap();
        assert!(matches!(
            acc.delete("jacques@paris.test"),
            Err(AccountError::NoSuchUser(_))
        ));
        assert!(!acc.exists("jacques@paris.test").unwrap());
        assert!(!acc.verify("jacques@paris.test", "c").unwrap());
        assert_eq!(
            acc.list().unwrap(),
            vec!["andre@lyon.test", "pierre@paris.test"]
        );
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(SledStore::open(dir.path()).unwrap());
            Accounts::new(store)
                .add("pierre@paris.test", "secret")
                .unwrap();
        }
        let acc = Accounts::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        assert!(acc.verify("pierre@paris.test", "secret").unwrap());
    }
}
