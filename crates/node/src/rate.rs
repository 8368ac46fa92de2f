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

    /// Adds what the time since the last call earned, up to the burst.
    fn refill(&mut self, rate: u32) {
        let now = Instant::now();
        let cap = f64::from(rate) * 10.0;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * f64::from(rate)).min(cap);
        self.at = now;
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, rate: u32) -> bool {
        self.refill(rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Is there a token? (None is taken.)
    pub(crate) fn has_token(&mut self, rate: u32) -> bool {
        self.refill(rate);
        self.tokens >= 1.0
    }

    /// Spends a token, into debt if there is none (at most a burst's worth): what was let
    /// through on [`Bucket::has_token`] and turned out to count is paid for, and an excess
    /// is paid back before anything more is let through.
    pub(crate) fn spend(&mut self, rate: u32) {
        self.refill(rate);
        self.tokens = (self.tokens - 1.0).max(-f64::from(rate) * 10.0);
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

    fn bucket(&mut self, key: K) -> &mut Bucket {
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(&key) {
            self.buckets.clear();
        }
        let rate = self.rate;
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate))
    }

    /// Takes a token from `key`'s bucket if there is one.
    pub(crate) fn take(&mut self, key: K) -> bool {
        let rate = self.rate;
        self.bucket(key).take(rate)
    }

    /// Does `key`'s bucket have a token? (None is taken: [`Buckets::spend`] when what it
    /// let through turns out to count.)
    pub(crate) fn has_token(&mut self, key: K) -> bool {
        let rate = self.rate;
        self.bucket(key).has_token(rate)
    }

    /// Spends a token of `key`'s bucket, into debt if need be (see [`Bucket::spend`]).
    pub(crate) fn spend(&mut self, key: K) {
        let rate = self.rate;
        self.bucket(key).spend(rate)
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
    fn only_what_is_spent_counts_and_debt_is_paid_back_first() {
        let mut b = Bucket::full(2);
        // Looking costs nothing.
        assert!((0..100).all(|_| b.has_token(2)));
        // Spending a burst and then more leaves a debt, paid back before anything passes.
        for _ in 0..30 {
            b.spend(2);
        }
        assert!(!b.has_token(2));
        b.at -= Duration::from_secs(5);
        assert!(!b.has_token(2), "ten tokens of debt, ten earned: none yet");
        b.at -= Duration::from_millis(600);
        assert!(b.has_token(2));
        // The debt is at most a burst.
        for _ in 0..1_000 {
            b.spend(2);
        }
        b.at -= Duration::from_millis(20_600);
        assert!(b.has_token(2));
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
