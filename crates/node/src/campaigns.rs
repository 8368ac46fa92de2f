//! Noticing that campaigns end. A campaign's outcome depends on the clock (is its deadline
//! past?), which derived state does not (PROTOCOL.md §9: a tally is a function of the
//! records), so one task of the node watches the clock: it knows the deadlines of the
//! campaigns not yet ended, sleeps until the next one (at most [`CHECK_EVERY`]), and then
//! announces [`Event::CampaignEnded`] with the outcome.
//!
//! The deadlines it knows are those of the stored campaigns whose deadline is ahead (read
//! once at start), and of those that arrive later (from the tally events of the ingest):
//! one entry of 40 bytes per campaign still running, and nothing for any other petition.
//!
//! Each campaign's end is announced once per node, and noted durably with its journal
//! entry, by the ingest pipeline ([`Ingest::campaigns_ended`]): as its deadline passes; at the next start, for a campaign
//! whose deadline passed while the node was down; or as soon as it is stored, for a
//! campaign that arrives after its deadline. A watcher that was away is shown the end when
//! it resumes (`GET /v1/events?after=`), like the records it missed.

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
    /// Notes a campaign's deadline if it is ahead of `now`; true if the campaign's deadline
    /// is behind `now` (it has ended).
    pub(crate) fn note(&mut self, petition: RecordId, t: &PetitionTally, now: u64) -> bool {
        match (&t.goal, t.deadline) {
            (Some(_), Some(d)) if d >= now => {
                self.0.insert((d, petition));
                false
            }
            (Some(_), Some(_)) => true,
            _ => false,
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

/// Campaigns noted ended in one job of the pipeline, at most.
const ENDED_PER_JOB: usize = 1_024;

/// Has the node noted this campaign's end already?
fn noted(ingest: &Ingest, campaign: &RecordId) -> bool {
    // A store that cannot say is asked again by the pipeline, which reads the same mark.
    ingest.store().ended_noted(campaign).unwrap_or(false)
}

/// Has the pipeline note the end of these campaigns (those it did not note before).
async fn end_all(ingest: &Ingest, mut campaigns: Vec<RecordId>) {
    campaigns.retain(|c| !noted(ingest, c));
    for part in campaigns.chunks(ENDED_PER_JOB) {
        if let Err(e) = ingest.campaigns_ended(part.to_vec()).await {
            tracing::warn!(error = %e, "cannot note the end of campaigns");
        }
    }
}

/// The task: announces each campaign's end on the ingest's event stream.
pub(crate) async fn run(ingest: Ingest, cancel: CancellationToken) {
    let mut events = ingest.subscribe();
    let mut running = Running::default();
    let now = now_ms();
    // Every petition's tally is read once, off the async threads (a large store holds tens
    // of thousands); the campaigns that ended while the node was down, and were not
    // announced, are announced now.
    let store = ingest.store().clone();
    let all = tokio::task::spawn_blocking(move || store.petitions())
        .await
        .unwrap_or(Err(crate::error::Error::NodeStopped));
    let mut unnoted = Vec::new();
    match all {
        Ok(all) => {
            for (id, t) in all {
                if running.note(id, &t, now) {
                    unnoted.push(id);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the campaigns' deadlines"),
    }
    end_all(&ingest, unnoted).await;
    loop {
        let pause = running.sleep(now_ms());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            e = events.recv() => match e {
                Ok(Event::TallyChanged { petition, tally }) => {
                    // A campaign stored after its deadline ends here now (once).
                    if running.note(petition, &tally, now_ms()) {
                        end_all(&ingest, vec![petition]).await;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(pause) => {}
        }
        let ended = running.ended(now_ms());
        if !ended.is_empty() {
            end_all(&ingest, ended).await;
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
        assert!(!r.note(a, &campaign(Some(200), true), 100));
        assert!(!r.note(b, &campaign(Some(150), true), 100));
        assert!(r.note(c, &campaign(Some(50), true), 100), "already over");
        assert!(
            !r.note(d, &campaign(Some(300), false), 100),
            "not a campaign"
        );
        assert!(
            !r.note(d, &campaign(None, true), 100),
            "no deadline: never ends"
        );
        assert!(!r.note(a, &campaign(Some(200), true), 120)); // noted again: still once
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.sleep(100), Duration::from_millis(51));
        assert_eq!(r.ended(150), Vec::<RecordId>::new());
        assert_eq!(r.ended(1_000), vec![b, a]);
        assert!(r.ended(2_000).is_empty());
        assert_eq!(r.sleep(2_000), CHECK_EVERY);
    }
}
