//! The payloads of `GET /v1/events`, the live stream: each SSE event's `data` is one JSON
//! object whose `type` names it (the same name as the SSE `event:` line).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::response::{Rating, Tally};

/// One event of the stream, as its `data` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A record was stored (or replayed from the journal).
    Record(RecordEvent),
    /// A petition's tally changed (or, after a replay, where it stands now).
    Tally(TallyEvent),
    /// A petition's count just reached its threshold.
    Threshold(TallyEvent),
    /// A campaign was first funded (its pledges met the goal, with `threshold` backers).
    Funded(TallyEvent),
    /// A campaign's deadline passed: the tally's `outcome` says `funded` or `failed`.
    Ended(TallyEvent),
    /// A product's rating changed.
    Rating(Rating),
    /// A producer answered a petition or review.
    Response(ResponseEvent),
    /// The replay is over; live events follow.
    Ready(ReadyEvent),
    /// This client fell behind and missed events.
    Lagged(LaggedEvent),
    /// The stream failed (the node ends it after this).
    Error(ErrorEvent),
}

/// `record`: a stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Its place in the arrival journal (also the SSE `id`), when its topic is journaled.
    pub seq: Option<u64>,
    /// The record as JSON, with `id`.
    pub record: Value,
}

/// `tally`, `threshold`, `funded` and `ended`: a petition's tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyEvent {
    /// The tally.
    pub tally: Tally,
}

/// `response`: a producer answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEvent {
    /// The petition or review answered.
    pub target: String,
    /// The response record's id.
    pub response: String,
    /// The producer's author key.
    pub producer: String,
    /// The producer's name, if this node holds its profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_name: Option<String>,
    /// The status (`acknowledged`, `in-progress`, ...).
    pub status: String,
}

/// `ready`: the replay is over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyEvent {
    /// The cursor to keep: pass it as `after` next time (also the SSE `id`).
    pub seq: u64,
}

/// `lagged`: events were missed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaggedEvent {
    /// How many.
    pub missed: u64,
}

/// `error`: why the stream ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::response::samples::{self, ID, KEY};

    fn round_trip(v: Value) -> Event {
        let e: Event = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        e
    }

    #[test]
    fn every_event_round_trips() {
        let e = round_trip(json!({ "type": "record", "seq": 7, "record": samples::record() }));
        assert!(matches!(e, Event::Record(RecordEvent { seq: Some(7), .. })));
        round_trip(json!({ "type": "record", "seq": null, "record": samples::record() }));
        let e = round_trip(json!({ "type": "tally", "tally": samples::tally(false) }));
        assert!(matches!(e, Event::Tally(_)));
        let e = round_trip(json!({ "type": "threshold", "tally": samples::tally(true) }));
        assert!(matches!(e, Event::Threshold(_)));
        let e = round_trip(json!({ "type": "funded", "tally": samples::tally(false) }));
        assert!(matches!(e, Event::Funded(_)));
        let e = round_trip(json!({ "type": "ended", "tally": samples::tally(false) }));
        assert!(matches!(e, Event::Ended(_)));
        let mut rating = samples::rating();
        rating["type"] = json!("rating");
        assert!(matches!(round_trip(rating), Event::Rating(r) if r.count == 3));
        round_trip(
            json!({ "type": "response", "target": ID, "response": ID, "producer": KEY,
                           "status": "accepted" }),
        );
        assert_eq!(
            round_trip(json!({ "type": "ready", "seq": 12 })),
            Event::Ready(ReadyEvent { seq: 12 })
        );
        round_trip(json!({ "type": "lagged", "missed": 3 }));
        round_trip(json!({ "type": "error", "message": "storage: broken" }));
    }

    #[test]
    fn an_unknown_type_does_not_decode() {
        assert!(serde_json::from_value::<Event>(json!({ "type": "gossip" })).is_err());
    }
}
