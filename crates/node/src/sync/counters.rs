//! What sync has done since the node started, counted as it happens (the metrics endpoint's
//! figures): pulls by this node, and answers to peers' pulls.

use std::sync::atomic::{AtomicU64, Ordering};

use chorus_client::SyncReport;

/// Sync's figures since start ([`super::SyncHandle::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// Pulls that ran to their end.
    pub pulls_ok: u64,
    /// Pulls that stopped early (the peer went, timed out, stayed busy, broke the protocol).
    pub pulls_failed: u64,
    /// Records received by pulls.
    pub records_received: u64,
    /// Of those, records newly stored (or kept waiting for their target).
    pub records_stored: u64,
    /// Of those, records already held.
    pub records_duplicate: u64,
    /// Of those, records invalid, forged, unrequested or out of scope (the peer penalised).
    pub records_invalid: u64,
    /// Bytes of the requests pulls sent.
    pub bytes_sent: u64,
    /// Bytes of the answers pulls received.
    pub bytes_received: u64,
    /// Peers' sync requests answered (reconciliations, fetches, searches; malformed ones
    /// too, with an error).
    pub requests_served: u64,
}

/// The counters behind [`SyncCounts`], shared by the scheduler and the answerer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pulls_ok: AtomicU64,
    pulls_failed: AtomicU64,
    records_received: AtomicU64,
    records_stored: AtomicU64,
    records_duplicate: AtomicU64,
    records_invalid: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    requests_served: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Counts a pull that ended.
    pub(crate) fn pulled(&self, r: &SyncReport) {
        add(
            if r.error.is_some() {
                &self.pulls_failed
            } else {
                &self.pulls_ok
            },
            1,
        );
        add(&self.records_received, r.fetched);
        add(&self.records_stored, r.stored);
        add(&self.records_duplicate, r.duplicates);
        add(&self.records_invalid, r.invalid);
        add(&self.bytes_sent, r.bytes_sent);
        add(&self.bytes_received, r.bytes_received);
    }

    /// Counts a peer's request answered.
    pub(crate) fn served(&self) {
        add(&self.requests_served, 1);
    }

    /// The figures now.
    pub(crate) fn counts(&self) -> SyncCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SyncCounts {
            pulls_ok: get(&self.pulls_ok),
            pulls_failed: get(&self.pulls_failed),
            records_received: get(&self.records_received),
            records_stored: get(&self.records_stored),
            records_duplicate: get(&self.records_duplicate),
            records_invalid: get(&self.records_invalid),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            requests_served: get(&self.requests_served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_counted_by_their_ending_and_their_figures_summed() {
        let c = Counters::default();
        c.pulled(&SyncReport {
            fetched: 5,
            stored: 3,
            duplicates: 1,
            invalid: 1,
            bytes_sent: 100,
            bytes_received: 2_000,
            ..SyncReport::default()
        });
        c.pulled(&SyncReport {
            fetched: 2,
            stored: 2,
            error: Some("timed out".into()),
            ..SyncReport::default()
        });
        c.served();
        assert_eq!(
            c.counts(),
            SyncCounts {
                pulls_ok: 1,
                pulls_failed: 1,
                records_received: 7,
                records_stored: 5,
                records_duplicate: 1,
                records_invalid: 1,
                bytes_sent: 100,
                bytes_received: 2_000,
                requests_served: 1,
            }
        );
    }
}
