//! The node's clock: wall-clock milliseconds, and the creation times of the records this
//! node's user makes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hands out the `created_at` of records made by one node's user: the wall clock, but
/// always after the previous one. Two records made in the same millisecond (a review and its
/// update, an endorsement and its retraction) would otherwise tie, and the `(created_at, id)`
/// tie-break would pick the one that counts by hash, not by the order they were made. One per
/// node, so nodes sharing a process do not share it.
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// A clock that has handed out nothing yet.
    pub fn new() -> Self {
        Clock::default()
    }

    /// The `created_at` of a new record: `max(now, previous + 1)`.
    pub fn next_created_at(&self) -> u64 {
        self.after(now_ms())
    }

    /// [`Clock::next_created_at`] with the wall clock reading `now`.
    fn after(&self, now: u64) -> u64 {
        let step = |l: u64| now.max(l.saturating_add(1));
        // The closure always returns `Some`, so this is `Ok`; both arms hold the previous value.
        match self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some(step(l)))
        {
            Ok(prev) | Err(prev) => step(prev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_strictly_increases_even_within_one_millisecond() {
        let clock = Clock::new();
        let now = 1_767_225_599_999;
        let a = clock.after(now);
        let b = clock.after(now);
        let c = clock.after(now - 5);
        assert_eq!((a, b, c), (now, now + 1, now + 2));
        // The wall clock wins again once it has moved past.
        assert_eq!(clock.after(now + 10), now + 10);
        // Back-to-back calls with the real clock.
        let clock = Clock::new();
        let made: Vec<u64> = (0..100).map(|_| clock.next_created_at()).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
    }

    #[test]
    fn each_clock_counts_for_itself() {
        let (one, two) = (Clock::new(), Clock::new());
        let now = 1_767_225_599_999;
        assert_eq!(one.after(now), now);
        assert_eq!(
            two.after(now),
            now,
            "another node's records do not push this one's"
        );
    }
}
