//! Noticing that campaigns end. A campaign's outcome depends on the clock (is its deadline
//! past?), which derived state does not (PROTOCOL.md §9: a tally is a function of the
//! records), so one task of the node watches the clock: it knows the deadlines of the
//! campaigns not yet ended, sleeps until the next one (at most [`CHECK_EVERY`]), and then
//! announces [`Event::CampaignEnded`] with the outcome.
//!
//! The deadlines it knows are those of the stored campaigns whose deadline is ahead (read
//! once at start), and of those that arrive later (from the tally events of the ingest):
//! one entry of 40 bytes per campaign still running, and nothing for any other petition. A
//! campaign whose deadline passed while the node was down is not announced at start: the
//! stream tells what happens while it is watched (its tally says the outcome).

use std::collections::BTreeSet;
use std::time::Duration;

use chorus_protocol::RecordId;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::ingest::Ingest;
use crate::store::PetitionTally;
use crate::tally::Event;

/// The longest the task sleeps between looks at the clock.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Campaigns not yet ended, by deadline.
#[derive(Default)]
pub(crate) struct Running(BTreeSet<(u64, RecordId)>);

impl Running {
    /// Notes a campaign's deadline if it is ahead of `now`.
    pub(crate) fn note(&mut self, petition: RecordId, t: &PetitionTally, now: u64) {
        if let (Some(_), Some(d)) = (&t.goal, t.deadline) {
            if d >= now {
                self.0.insert((d, petition));
            }
        }
    }

    /// The campaigns whose deadline is before `now`, removed.
    pub(crate) fn ended(&mut self, now: u64) -> Vec<RecordId> {
        let mut out = Vec::new();
        while let Some(&(d, p)) = self.0.first() {
            if d >= now {
                break;
            }
            self.0.pop_first();
            out.push(p);
        }
        out
    }

    /// How long until the next deadline (at most [`CHECK_EVERY`]).
    fn sleep(&self, now: u64) -> Duration {
        self.0.first().map_or(CHECK_EVERY, |(d, _)| {
            Duration::from_millis(d.saturating_add(1).saturating_sub(now)).min(CHECK_EVERY)
        })
    }
}

/// The task: announces each campaign's end on the ingest's event stream.
pub(crate) async fn run(ingest: Ingest, cancel: CancellationToken) {
    let mut events = ingest.subscribe();
    let mut running = Running::default();
    let now = now_ms();
    // Every petition's tally is read once, off the async threads (a large store holds tens
    // of thousands).
    let store = ingest.store().clone();
    let all = tokio::task::spawn_blocking(move || store.petitions())
        .await
        .unwrap_or(Err(crate::error::Error::NodeStopped));
    match all {
        Ok(all) => {
            for (id, t) in all {
                running.note(id, &t, now);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the campaigns' deadlines"),
    }
    loop {
        let pause = running.sleep(now_ms());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            e = events.recv() => match e {
                Ok(Event::TallyChanged { petition, tally }) => {
                    running.note(petition, &tally, now_ms());
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(pause) => {}
        }
        let now = now_ms();
        for petition in running.ended(now) {
            match ingest.store().tally(&petition) {
                Ok(Some(t)) => {
                    let outcome = t.outcome(now).unwrap_or("failed").to_string();
                    ingest.announce(Event::CampaignEnded {
                        petition,
                        outcome,
                        tally: Box::new(t),
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, %petition, "cannot read an ended campaign"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::AuthorKey;

    fn campaign(deadline: Option<u64>, goal: bool) -> PetitionTally {
        PetitionTally::new(
            AuthorKey([1; 32]),
            1,
            deadline,
            None,
            goal.then(|| (100, "EUR".to_string())),
        )
    }

    #[test]
    fn only_running_campaigns_are_kept_and_each_ends_once_in_deadline_order() {
        let mut r = Running::default();
        let (a, b, c, d) = (
            RecordId([1; 32]),
            RecordId([2; 32]),
            RecordId([3; 32]),
            RecordId([4; 32]),
        );
        r.note(a, &campaign(Some(200), true), 100);
        r.note(b, &campaign(Some(150), true), 100);
        r.note(c, &campaign(Some(50), true), 100); // already over
        r.note(d, &campaign(Some(300), false), 100); // not a campaign
        r.note(a, &campaign(Some(200), true), 120); // noted again: still once
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.sleep(100), Duration::from_millis(51));
        assert_eq!(r.ended(150), Vec::<RecordId>::new());
        assert_eq!(r.ended(1_000), vec![b, a]);
        assert!(r.ended(2_000).is_empty());
        assert_eq!(r.sleep(2_000), CHECK_EVERY);
    }
}
