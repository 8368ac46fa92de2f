//! Token buckets: how many messages a peer or an author may send, with bursts.

use std::time::Instant;

/// A token bucket: `rate` per second, bursts of `10 * rate`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(rate: u32) -> Self {
        Bucket {
            tokens: f64::from(rate) * 10.0,
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, rate: u32) -> bool {
        let now = Instant::now();
        let cap = f64::from(rate) * 10.0;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * f64::from(rate)).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One bucket per key, forgotten all at once when there are too many (a flood of fresh keys
/// costs memory only up to `max_keys` buckets).
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    rate: u32,
    max_keys: usize,
    buckets: std::collections::HashMap<K, Bucket>,
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    /// Buckets of `rate` per second each, for at most `max_keys` keys at once.
    pub(crate) fn new(rate: u32, max_keys: usize) -> Self {
        Buckets {
            rate,
            max_keys,
            buckets: std::collections::HashMap::new(),
        }
    }

    /// Takes a token from `key`'s bucket if there is one.
    pub(crate) fn take(&mut self, key: K) -> bool {
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(&key) {
            self.buckets.clear();
        }
        let rate = self.rate;
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate))
            .take(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_allow_bursts_then_the_rate() {
        let mut b = Bucket::full(2);
        let burst = (0..100).filter(|_| b.take(2)).count();
        assert_eq!(burst, 20, "burst of ten times the rate");
        assert!(!b.take(2));
        b.at -= Duration::from_secs(1);
        assert!(b.take(2) && b.take(2));
        assert!(!b.take(2));
    }

    #[test]
    fn buckets_per_key_are_separate_and_bounded() {
        let mut b: Buckets<u32> = Buckets::new(1, 100);
        assert_eq!((0..20).filter(|_| b.take(7)).count(), 10);
        assert!(b.take(8), "another key has its own bucket");
        for k in 0..1_000 {
            b.take(k);
        }
        assert!(b.buckets.len() <= 100);
    }
}
