//! Failure throttling across every connection and agent: after too many
//! failed verifications in a window from one IP address (IPv6: its /64) or for
//! one user, further attempts are refused without any argon2 work until that
//! window ends. Windows are fixed, counted from their first failure, and
//! refused attempts do not extend them, so nobody is locked out for longer
//! than one window after the failures stop.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::aging::Aging;
use crate::config::ThrottleConfig;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// One table of windows (per IP or per user) with its limit.
#[derive(Debug)]
struct Table<K> {
    windows: Aging<K, Window>,
    limit: u32,
    length: Duration,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new(limit: u32, length: Duration, max: usize) -> Self {
        Self {
            windows: Aging::new(if limit == 0 { 0 } else { max }),
            limit,
            length,
        }
    }

    fn open(&self, w: &Window, now: Instant) -> bool {
        now < w.start + self.length
    }

    fn blocked(&self, key: &K, now: Instant) -> bool {
        self.limit > 0
            && self
                .windows
                .get(key)
                .is_some_and(|w| self.open(w, now) && w.failures >= self.limit)
    }

    fn failure(&mut self, key: K, now: Instant) {
        let length = self.length;
        self.windows.purge_oldest(|w| now >= w.start + length);
        match self.windows.get_mut(&key) {
            Some(w) if now < w.start + length => w.failures = w.failures.saturating_add(1),
            // A new window; inserting also makes it the newest (windows are
            // kept in order of their start, so the oldest expire first).
            _ => self.windows.insert(
                key,
                Window {
                    start: now,
                    failures: 1,
                },
                now,
            ),
        }
    }

    fn clear(&mut self, key: &K) {
        self.windows.remove(key);
    }
}

/// Why an attempt is refused before any verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    Ip,
    User,
}

/// The per-IP and per-user failure windows.
#[derive(Debug)]
pub(crate) struct Throttle {
    ips: Table<IpAddr>,
    users: Table<String>,
}

/// The address an IP is counted under: itself, or its /64 for IPv6 (one
/// host usually holds a whole /64); IPv4-mapped IPv6 counts as IPv4.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Throttle {
    pub(crate) fn new(c: &ThrottleConfig) -> Self {
        let length = Duration::from_secs(c.window_secs.max(1));
        Self {
            ips: Table::new(c.ip_failures, length, c.max_entries),
            users: Table::new(c.user_failures, length, c.max_entries),
        }
    }

    /// Whether an attempt from `ip` (if known) for `user` is refused at `now`.
    pub(crate) fn check(
        &self,
        ip: Option<IpAddr>,
        user: &str,
        now: Instant,
    ) -> Result<(), Throttled> {
        if ip.is_some_and(|ip| self.ips.blocked(&bucket(ip), now)) {
            return Err(Throttled::Ip);
        }
        if self.users.blocked(&user.to_owned(), now) {
            return Err(Throttled::User);
        }
        Ok(())
    }

    /// Count a failed verification.
    pub(crate) fn failure(&mut self, ip: Option<IpAddr>, user: &str, now: Instant) {
        if let Some(ip) = ip {
            self.ips.failure(bucket(ip), now);
        }
        self.users.failure(user.to_owned(), now);
    }

    /// A successful verification clears the user's window (not the IP's: one
    /// good account must not buy more guesses for its address).
    pub(crate) fn success(&mut self, user: &str) {
        self.users.clear(&user.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(ip: u32, user: u32) -> Throttle {
        Throttle::new(&ThrottleConfig {
            ip_failures: ip,
            user_failures: user,
            window_secs: 60,
            max_entries: 100,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn an_ip_is_refused_after_k_failures_until_its_window_ends() {
        let t = Instant::now();
        let mut th = throttle(3, 100);
        for i in 0..3 {
            assert_eq!(th.check(ip("192.0.2.1"), "a@d", t + i * S), Ok(()));
            th.failure(ip("192.0.2.1"), &format!("u{i}@d"), t + i * S);
        }
        // any user from that address, across connections
        assert_eq!(
            th.check(ip("192.0.2.1"), "b@d", t + 3 * S),
            Err(Throttled::Ip)
        );
        assert_eq!(th.check(ip("192.0.2.2"), "b@d", t + 3 * S), Ok(()));
        assert_eq!(th.check(None, "b@d", t + 3 * S), Ok(()));
        // refused attempts do not extend the window (which started at t)
        assert_eq!(
            th.check(ip("192.0.2.1"), "b@d", t + 59 * S),
            Err(Throttled::Ip)
        );
        assert_eq!(th.check(ip("192.0.2.1"), "b@d", t + 60 * S), Ok(()));
        // a new window starts with the next failure
        th.failure(ip("192.0.2.1"), "b@d", t + 61 * S);
        assert_eq!(th.check(ip("192.0.2.1"), "b@d", t + 62 * S), Ok(()));
    }

    #[test]
    fn a_user_is_refused_from_every_address_and_success_clears_it() {
        let t = Instant::now();
        let mut th = throttle(100, 2);
        th.failure(ip("192.0.2.1"), "a@d", t);
        th.success("a@d");
        th.failure(ip("192.0.2.1"), "a@d", t);
        assert_eq!(th.check(ip("198.51.100.7"), "a@d", t), Ok(()));
        th.failure(ip("198.51.100.7"), "a@d", t + S);
        assert_eq!(
            th.check(ip("203.0.113.9"), "a@d", t + S),
            Err(Throttled::User)
        );
        assert_eq!(th.check(ip("203.0.113.9"), "b@d", t + S), Ok(()));
        assert_eq!(th.check(ip("203.0.113.9"), "a@d", t + 60 * S), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t = Instant::now();
        let mut th = throttle(2, 100);
        th.failure(ip("2001:db8:1:2::1"), "a@d", t);
        th.failure(ip("2001:db8:1:2:ffff::9"), "b@d", t);
        assert_eq!(
            th.check(ip("2001:db8:1:2::77"), "c@d", t),
            Err(Throttled::Ip)
        );
        assert_eq!(th.check(ip("2001:db8:1:3::1"), "c@d", t), Ok(()));
        th.failure(ip("::ffff:192.0.2.1"), "a@d", t);
        th.failure(ip("192.0.2.1"), "a@d", t);
        assert_eq!(th.check(ip("192.0.2.1"), "c@d", t), Err(Throttled::Ip));
    }

    #[test]
    fn zero_disables_and_tables_stay_bounded() {
        let t = Instant::now();
        let mut off = throttle(0, 0);
        for _ in 0..10 {
            off.failure(ip("192.0.2.1"), "a@d", t);
        }
        assert_eq!(off.check(ip("192.0.2.1"), "a@d", t), Ok(()));
        let mut th = throttle(1, 1);
        for i in 0..1000u32 {
            th.failure(Some(IpAddr::from(i.to_be_bytes())), &format!("u{i}@d"), t);
        }
        assert!(th.ips.windows.len() <= 100 && th.users.windows.len() <= 100);
        // the newest are the ones kept
        assert_eq!(th.check(None, "u999@d", t), Err(Throttled::User));
    }
}
