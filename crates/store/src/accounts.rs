//! The account side of the storage seam: where users and their password
//! hashes live. Hashing and verification (argon2id) are the MDA's business;
//! a backend only stores PHC strings under normalised users.

use crate::mail::StoreError;

/// Users (full addresses, lowercased by [`crate::normalize_user`]) and the
/// PHC string of their password hash. Every method is one atomic unit and
/// durable before it returns.
pub trait AccountStore: Send + Sync + 'static {
    /// The stored hash of `user`, or `None` if there is no such user (a
    /// malformed user is simply unknown).
    fn password_hash(&self, user: &str) -> Result<Option<String>, StoreError>;
    /// Adds a user; [`StoreError::UserExists`] if present.
    fn add_user(&self, user: &str, hash: &str) -> Result<(), StoreError>;
    /// Replaces the hash of an existing user; [`StoreError::NoSuchUser`] if missing.
    fn set_password_hash(&self, user: &str, hash: &str) -> Result<(), StoreError>;
    /// Removes a user (not their mail); [`StoreError::NoSuchUser`] if missing.
    fn delete_user(&self, user: &str) -> Result<(), StoreError>;
    /// Every user, sorted.
    fn list_users(&self) -> Result<Vec<String>, StoreError>;
}
