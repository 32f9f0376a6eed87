//! Password verification at scale, behind `Auth.Verify`: failure throttling
//! per IP and per user (`throttle`), then the auth cache (`cache`), then
//! argon2 in a bounded pool that reuses its memory (`pool`). Accounts only
//! give the stored hash (`Accounts::stored_hash`).
//!
//! Order of one verification:
//! 1. throttled IP or user → refused at once, no argon2 work, nothing cached;
//! 2. the stored hash is read (off the async threads);
//! 3. a fresh cached verdict for (user, password, stored hash) answers;
//! 4. otherwise the pool verifies, against the dummy hash for an unknown user
//!    (the same cost, so timing does not tell which users exist), and the
//!    verdict is cached; a failure counts for the throttle.

mod aging;
mod cache;
mod pool;
mod throttle;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use pool::{Pool, VerifyError};
pub use throttle::Throttled;

use crate::accounts::{AccountError, Accounts, normalize_user};
use crate::config::AuthConfig;
use cache::{AuthCache, Keyer};
use throttle::Throttle;

/// The answer to one verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; the canonical account name.
    Ok(String),
    /// Wrong password or unknown user.
    Failed,
    /// Refused without checking: too many recent failures.
    Throttled(Throttled),
}

/// A verification that could not be answered yes or no (a temporary failure).
#[derive(thiserror::Error, Debug)]
pub enum AuthError {
    #[error("accounts: {0}")]
    Accounts(#[from] AccountError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("accounts lookup task failed")]
    Task,
}

struct Inner {
    accounts: Accounts,
    pool: Pool,
    keyer: Keyer,
    cache: Mutex<AuthCache>,
    throttle: Mutex<Throttle>,
    /// argon2 verifications run so far (cache hits and throttled attempts run none).
    argon2_runs: AtomicU64,
}

/// The MDA's password checker. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The name a user is cached and throttled under: the normalised account,
/// or for a malformed one its lowercase form, cut to 256 bytes.
fn user_key(user: &str) -> String {
    normalize_user(user).unwrap_or_else(|_| {
        let mut end = user.len().min(256);
        while !user.is_char_boundary(end) {
            end -= 1;
        }
        user[..end].to_lowercase()
    })
}

impl Authenticator {
    /// Start the argon2 pool and empty cache and throttle tables.
    pub fn start(accounts: Accounts, config: &AuthConfig) -> std::io::Result<Self> {
        let pool = Pool::start(config.workers, config.queue, config.max_hash_memory_kib)?;
        Ok(Self {
            inner: Arc::new(Inner {
                accounts,
                pool,
                keyer: Keyer::random(),
                cache: Mutex::new(AuthCache::new(
                    config.cache_size,
                    Duration::from_secs(config.cache_ttl_secs),
                    Duration::from_secs(config.cache_negative_ttl_secs),
                )),
                throttle: Mutex::new(Throttle::new(&config.throttle)),
                argon2_runs: AtomicU64::new(0),
            }),
        })
    }

    /// Check `password` for `user`, who connected from `remote` (an IP
    /// address as the MSA/MAA saw it; anything else is not IP-throttled).
    pub async fn verify(
        &self,
        user: &str,
        password: &str,
        remote: &str,
    ) -> Result<Verdict, AuthError> {
        let verdict = self
            .verify_at(user, password, remote.parse().ok(), Instant::now)
            .await;
        // A temporary failure answered neither yes nor no: not counted.
        if let Ok(v) = &verdict {
            facteur_daemon::metrics::auth(matches!(v, Verdict::Ok(_)));
        }
        verdict
    }

    /// `verify` with the clock given (tests move it).
    async fn verify_at(
        &self,
        user: &str,
        password: &str,
        ip: Option<IpAddr>,
        now: impl Fn() -> Instant,
    ) -> Result<Verdict, AuthError> {
        let inner = &self.inner;
        let user = user_key(user);
        if let Err(why) = lock(&inner.throttle).check(ip, &user, now()) {
            return Ok(Verdict::Throttled(why));
        }
        let stored = {
            let (accounts, user) = (inner.accounts.clone(), user.clone());
            tokio::task::spawn_blocking(move || accounts.stored_hash(&user))
                .await
                .map_err(|_| AuthError::Task)??
        };
        let key = inner.keyer.key(&user, password, stored.as_deref());
        let cached = lock(&inner.cache).get(&key, now());
        let ok = match cached {
            Some(ok) => ok,
            None => {
                inner.argon2_runs.fetch_add(1, Ordering::Relaxed);
                let phc = stored.clone().unwrap_or_else(|| pool::DUMMY_PHC.to_owned());
                let ok = match inner.pool.verify(phc, password.to_owned()).await {
                    Ok(ok) => ok && stored.is_some(),
                    Err(e @ (VerifyError::Busy | VerifyError::Stopped)) => return Err(e.into()),
                    // A record we cannot check is a refusal, logged for the operator.
                    Err(e) => {
                        tracing::warn!(user = %user, error = %e, "stored hash unusable");
                        false
                    }
                };
                lock(&inner.cache).insert(key, &user, ok, now());
                ok
            }
        };
        let mut throttle = lock(&inner.throttle);
        if ok {
            throttle.success(&user);
            Ok(Verdict::Ok(user))
        } else {
            throttle.failure(ip, &user, now());
            Ok(Verdict::Failed)
        }
    }

    /// How many argon2 verifications have run.
    pub fn argon2_runs(&self) -> u64 {
        self.inner.argon2_runs.load(Ordering::Relaxed)
    }

    /// Forget every cached verdict about `user`.
    pub fn forget(&self, user: &str) {
        lock(&self.inner.cache).forget(&user_key(user));
    }

    /// Change a password and drop the user's cached verdicts (for in-process
    /// account changes; `facteur-mda user ...` runs while the daemon is stopped).
    pub async fn set_password(&self, user: &str, password: &str) -> Result<(), AuthError> {
        let (accounts, u, p) = (
            self.inner.accounts.clone(),
            user.to_owned(),
            password.to_owned(),
        );
        let r = tokio::task::spawn_blocking(move || accounts.set_password(&u, &p)).await;
        self.forget(user);
        Ok(r.map_err(|_| AuthError::Task)??)
    }

    /// Delete a user and drop its cached verdicts.
    pub async fn delete(&self, user: &str) -> Result<(), AuthError> {
        let (accounts, u) = (self.inner.accounts.clone(), user.to_owned());
        let r = tokio::task::spawn_blocking(move || accounts.delete(&u)).await;
        self.forget(user);
        Ok(r.map_err(|_| AuthError::Task)??)
    }
}

#[cfg(test)]
mod tests;
