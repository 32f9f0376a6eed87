//! A bounded map that remembers insertion order: the auth cache and the
//! failure throttle both forget their oldest entries first.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// When an entry was (re)inserted, with a sequence number to break ties.
type Stamp = (Instant, u64);

/// At most `cap` entries; inserting into a full map drops the oldest one.
#[derive(Debug)]
pub(crate) struct Aging<K, V> {
    map: HashMap<K, (Stamp, V)>,
    order: BTreeMap<Stamp, K>,
    seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Aging<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            cap,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    /// Insert (or replace, making it the newest) `key`; a map of capacity 0
    /// keeps nothing.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.cap == 0 {
            return;
        }
        self.remove(&key);
        while self.map.len() >= self.cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.seq += 1;
        let stamp = (now, self.seq);
        self.order.insert(stamp, key.clone());
        self.map.insert(key, (stamp, value));
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (stamp, v) = self.map.remove(key)?;
        self.order.remove(&stamp);
        Some(v)
    }

    /// Drop the oldest entries for as long as `stale` says so.
    pub(crate) fn purge_oldest(&mut self, mut stale: impl FnMut(&V) -> bool) {
        while let Some((_, key)) = self.order.first_key_value() {
            match self.map.get(key) {
                Some((_, v)) if stale(v) => {}
                _ => break,
            }
            if let Some((_, key)) = self.order.pop_first() {
                self.map.remove(&key);
            }
        }
    }

    /// Keep only the entries `keep` accepts (a full scan: for rare events).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let order = &mut self.order;
        self.map.retain(|k, (stamp, v)| {
            let kept = keep(k, v);
            if !kept {
                order.remove(stamp);
            }
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn evicts_oldest_and_reinsert_refreshes() {
        let t = Instant::now();
        let mut m = Aging::new(2);
        m.insert("a", 1, t);
        m.insert("b", 2, t);
        m.insert("a", 3, t + Duration::from_secs(1)); // a is now the newest
        m.insert("c", 4, t + Duration::from_secs(2));
        assert_eq!(m.get(&"b"), None);
        assert_eq!(m.get(&"a"), Some(&3));
        assert_eq!(m.get(&"c"), Some(&4));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn purge_stops_at_the_first_fresh_entry() {
        let t = Instant::now();
        let mut m = Aging::new(10);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            m.insert(k, i, t);
        }
        m.purge_oldest(|v| *v == 0);
        assert_eq!(m.len(), 2);
        m.purge_oldest(|v| *v == 2); // b (1) is older and fresh: nothing goes
        assert_eq!(m.len(), 2);
        m.retain(|k, _| *k != "c");
        assert_eq!(m.len(), 1);
        m.insert("d", 9, t);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut m = Aging::new(0);
        m.insert(1, 1, Instant::now());
        assert_eq!(m.len(), 0);
    }
}
