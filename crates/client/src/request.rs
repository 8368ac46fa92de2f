//! What a client sends: the bodies of the `POST` endpoints and the queries of the `GET` ones.
//!
//! Keys, ids, amounts, roles and statuses stay text here: the node parses them itself, so it
//! can answer each mistake with its own error code (`bad_key`, `bad_amount`, `bad_role`, ...).
//! Unknown fields are refused (`bad_request`), as the node refuses them.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/sync` (optional: an empty body pulls from every connected peer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Pull only from this connected peer (a peer id); default: every connected peer.
    pub peer: Option<String>,
}

/// Body of `POST /v1/follow` and `POST /v1/unfollow`: exactly one of the four
/// (see [`FollowRequest::given`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// A producer's author key.
    pub producer: Option<String>,
    /// A group's id.
    pub group: Option<String>,
    /// A product, as `PRODUCERKEY/CODE`.
    pub product: Option<String>,
    /// Everything (archive and watchdog nodes).
    #[serde(default)]
    pub all: bool,
}

/// What is wrong with a [`FollowRequest`]: a follow or unfollow names exactly one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FollowCount {
    /// Nothing is named (`chorus follow` alone shows the follow set instead).
    #[error("give exactly one of producer, group, product or all (none given)")]
    None,
    /// More than one is named.
    #[error("give exactly one of producer, group, product or all")]
    Several,
}

impl FollowRequest {
    /// How many of `producer`, `group`, `product` and `all` are given.
    pub fn given(&self) -> usize {
        usize::from(self.producer.is_some())
            + usize::from(self.group.is_some())
            + usize::from(self.product.is_some())
            + usize::from(self.all)
    }

    /// The one check of a follow or unfollow: exactly one thing named.
    pub fn check(&self) -> Result<(), FollowCount> {
        match self.given() {
            1 => Ok(()),
            0 => Err(FollowCount::None),
            _ => Err(FollowCount::Several),
        }
    }
}

/// Body of `POST /v1/trust` and `POST /v1/untrust`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRequest {
    /// The watchdog's author key.
    pub watchdog: String,
}

/// Body of `POST /v1/profile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    /// The display name.
    pub name: String,
    /// `consumer`, `producer` or `watchdog`.
    pub role: String,
    /// A few words about the user.
    pub about: Option<String>,
}

/// Body of `POST /v1/reviews`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The producer's author key.
    pub producer: String,
    /// The product code (EAN/GTIN or a slug).
    pub product: String,
    /// 1 to 5.
    pub rating: u8,
    /// A title.
    pub title: Option<String>,
    /// The review.
    pub text: String,
}

/// Query of `GET /v1/reviews` and `GET /v1/rating` (which ignores `after` and `limit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// The producer's author key.
    pub producer: String,
    /// The product code.
    pub product: String,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Reviews per page (the node clamps it to 1..=1000; default 100).
    pub limit: Option<usize>,
}

/// Body of `POST /v1/groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// The group's name.
    pub name: String,
    /// Members need the founder's approval (an admit); default: anyone joins.
    #[serde(default)]
    pub approval: bool,
    /// What the group stands for.
    pub charter: Option<String>,
}

/// Body of `POST /v1/groups/{id}/admit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// The member's author key, or the profile name of a key with a pending request.
    pub member: String,
}

/// Body of `POST /v1/petitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetitionRequest {
    /// The producer it is aimed at (author key).
    pub producer: String,
    /// The product it is about (code).
    pub product: Option<String>,
    /// The group it speaks for (group id).
    pub group: Option<String>,
    /// A short title.
    pub title: String,
    /// The demand.
    pub text: String,
    /// Endorsements needed.
    pub threshold: u64,
    /// The last moment endorsements count, as [`parse_deadline`](crate::parse_deadline)
    /// reads it.
    pub deadline: Option<String>,
    /// `demand` (default), `proposal` or `campaign`.
    pub variant: Option<String>,
    /// A campaign's goal, like `3000EUR`.
    pub goal: Option<String>,
}

/// Query of `GET /v1/petitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetitionsQuery {
    /// Only those aimed at this producer.
    pub producer: Option<String>,
    /// Only those of this group.
    pub group: Option<String>,
    /// Only those still open (not withdrawn, deadline not passed).
    #[serde(default)]
    pub open: bool,
    /// The order: `endorsers` (most first), `newest` (first), `closing` (the nearest
    /// deadline first, petitions without one last); default: by id.
    pub sort: Option<String>,
    /// At most this many (default: all).
    pub limit: Option<usize>,
}

/// Query of `GET /v1/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to find: words of names, titles and product codes (each must start a word;
    /// case and accents ignored), or 8 to 64 hex digits of an id or key.
    pub q: String,
    /// Only these kinds, comma-separated: `profile`, `producer`, `consumer`, `watchdog`,
    /// `group`, `petition`, `product`; default: every kind.
    pub kind: Option<String>,
    /// At most this many results (default 20, at most 100).
    pub limit: Option<usize>,
    /// Only what this node holds: ask no peer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// Query of `GET /v1/producers` and `GET /v1/groups`: a page of the directory this node
/// holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<usize>,
    /// Skip this many first.
    pub offset: Option<usize>,
}

/// Query of `GET /v1/products`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    /// The producer: key, unique 8+ digit prefix, or name.
    pub producer: String,
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<usize>,
    /// Skip this many first.
    pub offset: Option<usize>,
}

/// Body of `POST /v1/endorse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndorseRequest {
    /// The petition's id.
    pub petition: String,
    /// A comment.
    pub comment: Option<String>,
    /// A pledge toward a campaign, like `50EUR`.
    pub pledge: Option<String>,
}

/// Body of `POST /v1/retract`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetractRequest {
    /// The record to retract, or a petition whose endorsement by this user to retract.
    pub id: String,
}

/// Body of `POST /v1/respond`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    /// The petition or review answered.
    pub target: String,
    /// `acknowledged`, `in-progress`, `accepted`, `declined` or `done`.
    pub status: String,
    /// The answer.
    pub text: String,
    /// The set root (hex) of the endorsements the producer acknowledges.
    pub root: Option<String>,
}

/// Body of `POST /v1/attest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// `valid`, `invalid`, `verified-count` (about `record`) or `one-actor` (about `keys`).
    pub verdict: String,
    /// The record judged (or the petition whose count is attested).
    pub record: Option<String>,
    /// The keys judged to be one actor (1 to 64).
    pub keys: Option<Vec<String>>,
    /// A note.
    pub note: Option<String>,
}

/// Query of `GET /v1/events` (all filters optional and combined).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events about this producer's topic.
    pub producer: Option<String>,
    /// Events about this petition (its endorsements, tally, responses).
    pub petition: Option<String>,
    /// Events on this group's topic.
    pub group: Option<String>,
    /// Only records of this kind.
    pub kind: Option<String>,
    /// Replay journaled arrivals after this sequence number first.
    pub after: Option<u64>,
    /// `false`: end the stream after the replay (default: then follow live).
    pub follow: Option<bool>,
    /// `true` on a watcher's first replay (with `after=0`): also send the records stored on
    /// the watched topic before its arrivals were journaled (its history).
    pub history: Option<bool>,
    /// What this node's user takes part in (instead of a producer, petition or group): the
    /// feedback aimed at their key, the petitions they opened or endorsed, their groups, the
    /// products they reviewed, and the answers to their records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_request_counts_what_is_given() {
        let mut r = FollowRequest::default();
        assert_eq!(r.given(), 0);
        r.producer = Some("k".into());
        assert_eq!(r.given(), 1);
        r.all = true;
        assert_eq!(r.given(), 2);
        r.group = Some("g".into());
        r.product = Some("k/c".into());
        assert_eq!(r.given(), 4);
        let only_all = FollowRequest {
            all: true,
            ..FollowRequest::default()
        };
        assert_eq!(only_all.given(), 1);
        assert_eq!(only_all.check(), Ok(()));
        assert_eq!(FollowRequest::default().check(), Err(FollowCount::None));
        assert_eq!(r.check(), Err(FollowCount::Several));
    }

    #[test]
    fn requests_take_the_nodes_defaults_and_refuse_unknown_fields() {
        let f: FollowRequest = serde_json::from_str(r#"{"producer": "k"}"#).unwrap();
        assert_eq!(f.given(), 1);
        assert!(!f.all);
        let g: GroupRequest = serde_json::from_str(r#"{"name": "n"}"#).unwrap();
        assert!(!g.approval && g.charter.is_none());
        let p: PetitionsQuery = serde_json::from_str("{}").unwrap();
        assert!(!p.open);
        let s: SyncRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(s, SyncRequest::default());
        assert!(serde_json::from_str::<RetractRequest>(r#"{"id": "x", "why": 1}"#).is_err());
        assert!(serde_json::from_str::<ReviewRequest>(r#"{"producer": "k"}"#).is_err());
    }

    #[test]
    fn a_request_body_is_what_the_cli_sent() {
        let r = EndorseRequest {
            petition: "p".into(),
            comment: None,
            pledge: Some("5EUR".into()),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({ "petition": "p", "comment": null, "pledge": "5EUR" })
        );
    }
}

/// Body of `POST /v1/records` as JSON: records signed elsewhere, each its wire bytes in hex
/// (the other form of the body is `application/cbor`: the wire records one after another).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsRequest {
    /// Each record's wire bytes (PROTOCOL.md §8), hex.
    pub records: Vec<String>,
}
