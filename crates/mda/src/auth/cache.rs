//! The auth cache, like Dovecot's `auth_cache_*`: verdicts of recent
//! verifications, positive and negative with their own TTLs, keyed by a keyed
//! hash (HMAC-SHA-256 with a per-process random key) of the user, the password
//! and the stored hash, never by the password itself.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::aging::Aging;

/// The cache key: HMAC-SHA-256 of (user, password, stored hash).
pub(crate) type Key = [u8; 32];

/// Makes cache keys with a key drawn at start, so a key says nothing outside
/// this process and cannot be computed offline from a dump of memory alone.
pub(crate) struct Keyer {
    secret: [u8; 64],
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(..)")
    }
}

impl Keyer {
    pub(crate) fn random() -> Self {
        let mut secret = [0u8; 64];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret[..32]);
        Self { secret }
    }

    /// HMAC-SHA-256 (RFC 2104) over length-prefixed fields, so that
    /// ("ab", "c") and ("a", "bc") differ. The stored hash is part of the key:
    /// a changed password (in this process or another) never matches an old entry.
    pub(crate) fn key(&self, user: &str, password: &str, stored: Option<&str>) -> Key {
        let pad = |byte: u8| {
            let mut p = self.secret;
            p.iter_mut().for_each(|b| *b ^= byte);
            p
        };
        let mut inner = Sha256::new();
        inner.update(pad(0x36));
        for field in [user, password, stored.unwrap_or("")] {
            inner.update((field.len() as u64).to_be_bytes());
            inner.update(field.as_bytes());
        }
        inner.update([u8::from(stored.is_some())]);
        let mut outer = Sha256::new();
        outer.update(pad(0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

#[derive(Debug)]
struct Entry {
    user: String,
    ok: bool,
    expires: Instant,
}

/// Bounded: past `size` entries the oldest is dropped.
#[derive(Debug)]
pub(crate) struct AuthCache {
    entries: Aging<Key, Entry>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl AuthCache {
    pub(crate) fn new(size: usize, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            entries: Aging::new(size),
            ttl,
            negative_ttl,
        }
    }

    /// The remembered verdict, if still fresh at `now`.
    pub(crate) fn get(&mut self, key: &Key, now: Instant) -> Option<bool> {
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.entries.remove(key);
            return None;
        }
        Some(entry.ok)
    }

    /// Remember a verdict for `user` (normalised) from `now`.
    pub(crate) fn insert(&mut self, key: Key, user: &str, ok: bool, now: Instant) {
        let ttl = if ok { self.ttl } else { self.negative_ttl };
        if ttl.is_zero() {
            return;
        }
        self.entries.purge_oldest(|e| e.expires <= now);
        self.entries.insert(
            key,
            Entry {
                user: user.to_owned(),
                ok,
                expires: now + ttl,
            },
            now,
        );
    }

    /// Forget every verdict about `user` (its password changed or it was deleted).
    pub(crate) fn forget(&mut self, user: &str) {
        self.entries.retain(|_, e| e.user != user);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn keys_depend_on_every_field_and_the_process_secret() {
        let k = Keyer::random();
        let base = k.key("pierre@paris.test", "secret", Some("$argon2id$x"));
        assert_eq!(
            base,
            k.key("pierre@paris.test", "secret", Some("$argon2id$x"))
        );
        for other in [
            k.key("pierre@paris.tes", "tsecret", Some("$argon2id$x")),
            k.key("pierre@paris.test", "Secret", Some("$argon2id$x")),
            k.key("pierre@paris.test", "secret", Some("$argon2id$y")),
            k.key("pierre@paris.test", "secret", None),
            Keyer::random().key("pierre@paris.test", "secret", Some("$argon2id$x")),
        ] {
            assert_ne!(base, other);
        }
        // the key is no plain hash of the password
        assert_ne!(&base[..], &Sha256::digest(b"secret")[..]);
    }

    #[test]
    fn positive_and_negative_ttls() {
        let k = Keyer::random();
        let t = Instant::now();
        let mut c = AuthCache::new(10, 10 * MIN, MIN);
        let good = k.key("u@d", "right", Some("h"));
        let bad = k.key("u@d", "wrong", Some("h"));
        c.insert(good, "u@d", true, t);
        c.insert(bad, "u@d", false, t);
        assert_eq!(c.get(&good, t + MIN - Duration::from_secs(1)), Some(true));
        assert_eq!(c.get(&bad, t + MIN - Duration::from_secs(1)), Some(false));
        assert_eq!(c.get(&bad, t + MIN), None, "negative entry expired");
        assert_eq!(c.get(&good, t + 9 * MIN), Some(true));
        assert_eq!(c.get(&good, t + 10 * MIN), None, "positive entry expired");
        assert_eq!(c.len(), 0, "expired entries are dropped");
    }

    #[test]
    fn bounded_oldest_first_and_forget_per_user() {
        let k = Keyer::random();
        let t = Instant::now();
        let mut c = AuthCache::new(3, MIN, MIN);
        let keys: Vec<Key> = (0..4).map(|i| k.key("a@d", &i.to_string(), None)).collect();
        for (i, key) in keys.iter().enumerate() {
            c.insert(*key, "a@d", true, t + Duration::from_secs(i as u64));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&keys[0], t), None, "oldest evicted");
        assert_eq!(c.get(&keys[3], t), Some(true));
        let other = k.key("b@d", "x", None);
        c.insert(other, "b@d", false, t);
        c.forget("a@d");
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&other, t), Some(false));
    }

    #[test]
    fn size_zero_or_ttl_zero_disables() {
        let k = Keyer::random();
        let t = Instant::now();
        let key = k.key("u@d", "p", None);
        let mut off = AuthCache::new(0, MIN, MIN);
        off.insert(key, "u@d", true, t);
        assert_eq!(off.get(&key, t), None);
        let mut no_negative = AuthCache::new(10, MIN, Duration::ZERO);
        no_negative.insert(key, "u@d", false, t);
        assert_eq!(no_negative.get(&key, t), None);
    }
}
