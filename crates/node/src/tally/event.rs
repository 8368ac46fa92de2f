//! What the node tells subscribers after a chunk is durable.

use chorus_protocol::{AuthorKey, RecordId, SignedRecord};
use serde::Serialize;

use crate::store::{Milestone, PetitionTally, Rating};

/// What the node tells subscribers after a batch is durable.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new record was stored.
    RecordStored {
        /// Its id.
        id: RecordId,
        /// Its kind.
        kind: String,
        /// Its topic.
        topic: String,
        /// Its author.
        author: AuthorKey,
        /// Its creation time.
        created_at: u64,
        /// The record it points at, if any.
        target: Option<RecordId>,
        /// Its place in the arrival journal, if its topic is journaled (watched).
        seq: Option<u64>,
    },
    /// A petition's tally changed.
    TallyChanged {
        /// The petition.
        petition: RecordId,
        /// Its new tally.
        tally: Box<PetitionTally>,
    },
    /// A petition reached its threshold.
    ThresholdCrossed {
        /// The petition.
        petition: RecordId,
        /// Its tally.
        tally: Box<PetitionTally>,
        /// Its place in the arrival journal, if the petition's topic is journaled.
        seq: Option<u64>,
    },
    /// A campaign was first funded: its pledges met the goal (with at least `threshold`
    /// backers) for the first time, in the order of its records (`first_reached_at`).
    CampaignFunded {
        /// The campaign.
        petition: RecordId,
        /// Its tally.
        tally: Box<PetitionTally>,
        /// Its place in the arrival journal, if the campaign's topic is journaled.
        seq: Option<u64>,
    },
    /// A campaign's deadline passed (noticed by the node's clock, once per campaign: as it
    /// passes, at the next start if the node was down then, or when a campaign arrives
    /// after its deadline): `funded` or `failed` (a failed campaign's pledges are void).
    CampaignEnded {
        /// The campaign.
        petition: RecordId,
        /// `funded` or `failed`.
        outcome: String,
        /// Its tally.
        tally: Box<PetitionTally>,
        /// Its place in the arrival journal, if the campaign's topic is journaled.
        seq: Option<u64>,
    },
    /// A product's rating changed.
    RatingChanged {
        /// The producer.
        producer: AuthorKey,
        /// The product code.
        code: String,
        /// The new rating.
        rating: Rating,
    },
    /// A producer answered a petition or review.
    Responded {
        /// The petition or review.
        target: RecordId,
        /// The response record.
        response: RecordId,
        /// The producer.
        producer: AuthorKey,
        /// The status.
        status: String,
    },
}

impl Event {
    /// A milestone that a record caused (a threshold reached, a campaign funded), with its
    /// journal place to fill in: `(milestone, petition, seq)`. (A campaign's end is
    /// journaled as it is noted.)
    pub(crate) fn milestone(&mut self) -> Option<(Milestone, RecordId, &mut Option<u64>)> {
        match self {
            Event::ThresholdCrossed { petition, seq, .. } => {
                Some((Milestone::Threshold, *petition, seq))
            }
            Event::CampaignFunded { petition, seq, .. } => {
                Some((Milestone::Funded, *petition, seq))
            }
            _ => None,
        }
    }

    /// A record was stored (with its place in the arrival journal, if journaled).
    pub(crate) fn stored(rec: &SignedRecord, seq: Option<u64>) -> Self {
        let r = rec.record();
        Event::RecordStored {
            id: rec.id(),
            kind: r.kind().to_string(),
            topic: r.topic.to_string(),
            author: r.author,
            created_at: r.created_at,
            target: r.body.target(),
            seq,
        }
    }
}
