//! Mail accounts: users (full addresses, lowercased) and their argon2id
//! password hashes (PHC strings) in the sled tree `accounts`.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::rngs::OsRng;

/// Name of the sled tree holding the accounts: key = normalised user (UTF-8),
/// value = PHC string of the argon2id hash (UTF-8).
pub const ACCOUNTS_TREE: &str = "accounts";

/// Errors of the accounts store.
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
    #[error("storage backend: {0}")]
    Backend(#[from] sled::Error),
}

/// Normalises a user: the full address, lowercased. Accepts `local@domain`
/// with exactly one `@`, both parts non-empty, no whitespace or control
/// characters, at most 254 bytes.
pub fn normalize_user(user: &str) -> Result<String, AccountError> {
    let invalid = || AccountError::InvalidUser(user.to_owned());
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

/// The accounts of one MDA. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    tree: sled::Tree,
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
    /// Opens (or creates) the `accounts` tree of `db`.
    pub fn new(db: &sled::Db) -> Result<Self, AccountError> {
        Ok(Self::from_tree(db.open_tree(ACCOUNTS_TREE)?))
    }

    /// Wraps an already opened `accounts` tree.
    pub(crate) fn from_tree(tree: sled::Tree) -> Self {
        Self {
            tree,
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
        self.tree
            .compare_and_swap(user.as_bytes(), None as Option<&[u8]>, Some(phc.as_bytes()))?
            .map_err(|_| AccountError::UserExists(user.clone()))?;
        self.tree.flush()?;
        Ok(())
    }

    /// Changes the password of an existing user. Durable before returning.
    pub fn set_password(&self, user: &str, password: &str) -> Result<(), AccountError> {
        let user = normalize_user(user)?;
        if password.is_empty() {
            return Err(AccountError::EmptyPassword);
        }
        let phc = hash_password(password)?;
        let mut missing = false;
        self.tree.fetch_and_update(user.as_bytes(), |old| {
            missing = old.is_none();
            old.map(|_| phc.as_bytes().to_vec())
        })?;
        if missing {
            return Err(AccountError::NoSuchUser(user));
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Deletes a user (not their mail); fails if missing.
    pub fn delete(&self, user: &str) -> Result<(), AccountError> {
        let user = normalize_user(user)?;
        if self.tree.remove(user.as_bytes())?.is_none() {
            return Err(AccountError::NoSuchUser(user));
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Every user, sorted.
    pub fn list(&self) -> Result<Vec<String>, AccountError> {
        self.tree
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                String::from_utf8(k.to_vec()).map_err(|e| AccountError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// True if the user exists; a malformed user simply does not.
    pub fn exists(&self, user: &str) -> Result<bool, AccountError> {
        match normalize_user(user) {
            Ok(user) => Ok(self.tree.contains_key(user.as_bytes())?),
            Err(_) => Ok(false),
        }
    }

    /// The stored PHC string of a user, `None` for an unknown or malformed user
    /// (`crate::auth` verifies it in its argon2 pool).
    pub fn stored_hash(&self, user: &str) -> Result<Option<String>, AccountError> {
        let Ok(user) = normalize_user(user) else {
            return Ok(None);
        };
        match self.tree.get(user.as_bytes())? {
            Some(phc) => String::from_utf8(phc.to_vec())
                .map(Some)
                .map_err(|e| AccountError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    /// Checks a password. Unknown (or malformed) users spend an argon2
    /// verification against a dummy hash too and get `false`, so timing does
    /// not reveal which users exist.
    pub fn verify(&self, user: &str, password: &str) -> Result<bool, AccountError> {
        let stored = match normalize_user(user) {
            Ok(user) => self.tree.get(user.as_bytes())?,
            Err(_) => None,
        };
        match stored {
            Some(phc) => {
                let phc =
                    std::str::from_utf8(&phc).map_err(|e| AccountError::Corrupt(e.to_string()))?;
                verify_hash(phc, password)
            }
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

    fn accounts() -> (tempfile::TempDir, sled::Db, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let acc = Accounts::new(&db).unwrap();
        (dir, db, acc)
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
        let (_d, db, acc) = accounts();
        acc.add("pierre@paris.test", "secret").unwrap();
        let raw = db
            .open_tree(ACCOUNTS_TREE)
            .unwrap()
            .get("pierre@paris.test")
            .unwrap()
            .unwrap();
        let phc = std::str::from_utf8(&raw).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("secret"));
        // fresh salt each time
        acc.add("jacques@paris.test", "secret").unwrap();
        let raw2 = db
            .open_tree(ACCOUNTS_TREE)
            .unwrap()
            .get("jacques@paris.test")
            .unwrap()
            .unwrap();
        assert_ne!(raw, raw2);
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
            let db = sled::open(dir.path()).unwrap();
            Accounts::new(&db)
                .unwrap()
                .add("pierre@paris.test", "secret")
                .unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let acc = Accounts::new(&db).unwrap();
        assert!(acc.verify("pierre@paris.test", "secret").unwrap());
    }
}
