//! What the node answers: one type per answer of `docs/API.md`, with the node's field names
//! and shapes. Every `Option` is written as `null` (as the node writes it), so an answer
//! decoded and written again is the same JSON; the one field a node leaves out rather than
//! nulls, [`Tally::trusted`], is left out again. Unknown fields are ignored, so a newer node's
//! additions do not break an older client. A stored record, as the node shows it (its CBOR
//! as JSON, plus `id`), stays a [`serde_json::Value`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Any failed call's body, with the HTTP status: a stable `code` (`bad_key`, `not_found`,
/// `unauthorized`, ...) and a `message` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code (see the table in `docs/API.md`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// What the node follows (`GET /v1/follow`, and the answer of `POST /v1/follow` and
/// `/v1/unfollow`; also [`Status::following`]). Lists are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowSet {
    /// Everything (archive and watchdog nodes).
    pub all: bool,
    /// Producer keys (hex) whose feedback is followed.
    pub producers: Vec<String>,
    /// Group ids (hex) whose membership is followed.
    pub groups: Vec<String>,
    /// Products, as `PRODUCERKEY/CODE`.
    pub products: Vec<String>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// Full listen multiaddrs, ending in `/p2p/PEERID`.
    pub listen_addrs: Vec<String>,
    /// Number of connected peers.
    pub peers: u64,
    /// The connected peers.
    pub peer_ids: Vec<String>,
    /// Number of stored records.
    pub records: u64,
    /// Records waiting for the record they point at.
    pub waiting: u64,
    /// Subscribed gossip shards.
    pub shards: Vec<String>,
    /// This user's author key.
    pub author: String,
    /// What the node follows.
    pub following: FollowSet,
    /// Does the node answer reconciliation? False for a while after a start without its
    /// index snapshot (a crash), while the sync index is rebuilt; absent from older nodes.
    #[serde(default = "yes")]
    pub sync_ready: bool,
    /// Can the store write? Absent from older nodes (read as writing).
    #[serde(default)]
    pub storage: StorageState,
    /// The latest pull from a peer, if any since the node started; absent from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull: Option<PeerPull>,
}

/// The state of a node's store on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageState {
    /// `ok`, `full` (the disk is full: writes are refused until space is freed) or `failed`
    /// (another failure of the disk or the storage engine).
    pub state: StorageCondition,
    /// What went wrong and what to do, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes free on the disk that holds the store (0 if unknown).
    #[serde(default)]
    pub free_bytes: u64,
    /// Bytes the store takes on disk (0 if unknown; absent from older nodes).
    #[serde(default)]
    pub used_bytes: u64,
}

/// See [`StorageState::state`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageCondition {
    /// Writing.
    #[default]
    Ok,
    /// The disk is full.
    Full,
    /// Another failure.
    Failed,
}

fn yes() -> bool {
    true
}

/// What one pull of `POST /v1/sync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The peer pulled from.
    pub peer: String,
    /// Reconciliation round trips.
    pub rounds: u32,
    /// Fetch requests.
    pub fetches: u32,
    /// Bytes of all requests sent.
    pub bytes_sent: u64,
    /// Bytes of all responses received.
    pub bytes_received: u64,
    /// Of those, the wire bytes of the records received.
    pub record_bytes: u64,
    /// Records found missing here.
    pub needed: u64,
    /// Records received.
    pub fetched: u64,
    /// Newly stored (or kept waiting for their target).
    pub stored: u64,
    /// Already held.
    pub duplicates: u64,
    /// Refused by a kind rule (not the peer's fault).
    pub refused: u64,
    /// Invalid, forged, unrequested or out of scope: the peer is penalised for each.
    pub invalid: u64,
    /// Claimed by the peer and not delivered.
    pub missing: u64,
    /// How long the pull took.
    pub millis: u64,
    /// Why the pull stopped early, if it did.
    pub error: Option<String>,
}

impl SyncReport {
    /// Bytes exchanged beyond the records themselves.
    pub fn overhead_bytes(&self) -> u64 {
        (self.bytes_sent + self.bytes_received).saturating_sub(self.record_bytes)
    }
}

/// `POST /v1/sync`: what each pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncAnswer {
    /// One report per peer pulled from.
    pub pulls: Vec<SyncReport>,
    /// Records newly stored, over all pulls.
    pub stored: u64,
}

/// `GET /v1/peers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// The connected peers (peer ids).
    pub peers: Vec<String>,
    /// The banned peers.
    pub banned: Vec<String>,
    /// The last pull from each peer this node remembers (connected or not), the latest
    /// first; absent from older nodes.
    #[serde(default)]
    pub pulls: Vec<PeerPull>,
}

/// The last pull from one peer (`GET /v1/peers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPull {
    /// When it ended, in ms since the Unix epoch.
    pub at: u64,
    /// What it did (`peer` names the peer).
    #[serde(flatten)]
    pub report: SyncReport,
}

/// What became of a record the node made for its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Stored (and gossiped).
    Stored,
    /// The very same record was already stored.
    Duplicate,
    /// Kept until the record it points at arrives.
    Waiting,
}

/// `GET /v1/mine`: the records this node's user signed, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mine {
    /// The user's author key.
    pub author: String,
    /// Each record as JSON, with `id` and `state`: where it stands now, in words (`counts`,
    /// `replaced by ID`, `retracted`, `3 of 10 endorsers, open`, `member`, ...).
    pub records: Vec<Value>,
}

/// What became of one record of `POST /v1/records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The record's id (`null` when its bytes do not frame a record).
    pub id: Option<String>,
    /// `stored` (and gossiped), `duplicate`, `waiting` (kept until the record it points at
    /// arrives) or `rejected`.
    pub outcome: String,
    /// Why it was rejected: the error code (PROTOCOL.md §9.1, §10), `null` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it was rejected, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What `POST /v1/records` answers: one entry per record, in the order sent, and the
/// totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedRecords {
    /// One per record sent.
    pub results: Vec<Submitted>,
    /// How many were stored.
    pub stored: usize,
    /// How many were already stored.
    pub duplicate: usize,
    /// How many wait for the record they point at.
    pub waiting: usize,
    /// How many were refused.
    pub rejected: usize,
}

/// What every record-creating endpoint answers (`POST /v1/profile`, `/v1/reviews`,
/// `/v1/groups`, `/v1/groups/{id}/join`, `/v1/groups/{id}/admit`, `/v1/petitions`,
/// `/v1/endorse`, `/v1/retract`, `/v1/respond`, `/v1/attest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The new record's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// What became of it.
    pub outcome: Outcome,
    /// The record as JSON, with `id`.
    pub record: Value,
    /// The earlier record of the author's that this one takes the place of (an
    /// endorsement of the same petition), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// One review of `GET /v1/reviews`: the stored record's JSON, plus `counted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedReview {
    /// Whether it counts: its author's latest, unretracted review of the product.
    pub counted: bool,
    /// The producer's latest answer to this review, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<LatestResponse>,
    /// The record as JSON, with `id` (its fields sit beside `counted`).
    #[serde(flatten)]
    pub record: Value,
}

/// `GET /v1/reviews`: a page of a product's reviews, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reviews {
    /// The reviews.
    pub reviews: Vec<CountedReview>,
    /// This node does not follow the producer: the reviews may be few or none
    /// (`chorus follow --producer KEY` completes them).
    #[serde(default)]
    pub partial: bool,
    /// The cursor of the next page (`after`), or `null` on the last.
    pub next: Option<String>,
}

/// `GET /v1/rating` (and the `rating` event): a product's rating over the counted reviews.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// The producer's author key.
    pub producer: String,
    /// The product code.
    pub product: String,
    /// Number of counted reviews.
    pub count: u64,
    /// Their mean rating (0 when there is none).
    pub mean: f64,
    /// How many gave 1, 2, 3, 4 and 5.
    pub histogram: [u64; 5],
    /// This node does not follow the producer's topic, where the reviews travel: the count
    /// holds only the reviews it happens to have.
    #[serde(default)]
    pub partial: bool,
}

/// `GET /v1/groups/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it stands for.
    pub charter: Option<String>,
    /// `open` or `approval`.
    pub admission: String,
    /// The founder's author key.
    pub founder: String,
    /// The founder's name, if this node holds its profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub founder_name: Option<String>,
    /// Number of members.
    pub members: u64,
    /// Whether this node's user is one.
    pub member: bool,
    /// Where this node's user stands: `founder`, `member`, `pending` (asked to join an
    /// approval group, not admitted yet) or `none`.
    #[serde(default)]
    pub status: String,
    /// The members: the founder first, then in key order, with their profile names.
    #[serde(default)]
    pub member_list: Vec<Person>,
    /// How many requests to join wait for the founder (approval groups).
    #[serde(default)]
    pub pending: u64,
    /// The node does not follow the group's topic (where joins and admits travel), so the
    /// members, requests and status above may be incomplete.
    #[serde(default)]
    pub partial: bool,
}

/// A key, with the name its stored profile gives (`null` without one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The author key.
    pub key: String,
    /// The profile's name.
    pub name: Option<String>,
}

/// A request to join an approval group, in [`GroupRequests`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Who asked (author key).
    pub key: String,
    /// Their profile's name (`null` without a stored profile).
    pub name: Option<String>,
    /// The join record's id.
    pub join: String,
    /// When they asked (ms).
    pub created_at: u64,
}

/// `GET /v1/groups/{id}/requests`: the requests to join that the founder has not granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequests {
    /// The group's id.
    pub group: String,
    /// The node does not follow the group's topic, so the list may be incomplete.
    #[serde(default)]
    pub partial: bool,
    /// The pending requests, oldest first.
    pub requests: Vec<JoinRequest>,
}

/// The producer's latest answer to a petition, in a [`Tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestResponse {
    /// The response record's id.
    pub id: String,
    /// Its status (`acknowledged`, `in-progress`, ...).
    pub status: String,
    /// Its creation time (ms).
    pub created_at: u64,
    /// What the producer wrote (absent while the response record is not at hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The count as the user's trusted watchdogs see it, in a [`Tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trusted {
    /// The trusted watchdogs (author keys: the config's `[trust]`, as changed at run time).
    pub watchdogs: Vec<String>,
    /// Endorsers, each set of keys those watchdogs judged to be one actor counting as one
    /// (by its earliest endorsement).
    pub endorsers: u64,
    /// How many counted endorsements that leaves out.
    pub excluded: u64,
    /// The pledged sums per currency recomputed the same way (a campaign: its goal's
    /// currency only), like `{"EUR": "1250.00"}`.
    #[serde(default)]
    pub pledged: BTreeMap<String, String>,
    /// The set root (hex) of the counted endorsements (the raw count's set).
    pub root: String,
    /// The trusted watchdogs whose latest `verified-count` attestation matches the current
    /// raw count and root.
    pub vouched_by: Vec<String>,
    /// Each trusted watchdog's latest `verified-count` attestation of the petition.
    #[serde(default)]
    pub attested: Vec<Attested>,
}

/// A watchdog's latest `verified-count` attestation of a petition, in [`Trusted`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attested {
    /// The watchdog's key.
    pub watchdog: String,
    /// The watchdog's name, if this node holds its profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_name: Option<String>,
    /// The count it attested.
    pub count: u64,
    /// The set root it attested (hex).
    pub root: String,
    /// When (ms).
    pub created_at: u64,
    /// Whether count and root are this node's current ones.
    pub current: bool,
}

/// The watchdogs trusted (`GET /v1/trust`, and the answer of its changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustSet {
    /// Trusted now: `config`, plus `added`, less `removed`.
    pub watchdogs: Vec<String>,
    /// The config's `[trust] watchdogs`.
    pub config: Vec<String>,
    /// Trusted at run time (`chorus trust add`), kept in `trust.json`.
    pub added: Vec<String>,
    /// Not trusted since a run-time removal, even if the config lists them.
    pub removed: Vec<String>,
}

/// A petition's tally (`GET /v1/tally/{id}`, each of `GET /v1/petitions`, and the `tally`
/// and `threshold` events).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// The petition's id.
    pub id: String,
    /// Its title (`null` while the petition record itself is not stored).
    pub title: Option<String>,
    /// `demand`, `proposal` or `campaign` (`null` likewise).
    pub variant: Option<String>,
    /// The targeted producer's author key.
    pub producer: String,
    /// The producer's name, if this node holds its profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_name: Option<String>,
    /// The product it is about.
    pub product: Option<String>,
    /// The group it speaks for.
    pub group: Option<String>,
    /// Endorsements needed.
    pub threshold: u64,
    /// Distinct endorsers counted.
    pub endorsers: u64,
    /// Of those, members of the petition's group.
    pub member_endorsers: u64,
    /// Whether the petition is reached now: endorsers ≥ threshold and, for a campaign, the
    /// pledged total ≥ the goal (PROTOCOL.md §9).
    pub reached: bool,
    /// When it was first reached (ms): the `created_at` of the record after which, its
    /// endorsements and retractions taken in order, it first was; stays when `reached` no
    /// longer holds.
    pub first_reached_at: Option<u64>,
    /// After this (ms), endorsements no longer count.
    pub deadline: Option<u64>,
    /// `open`, `withdrawn` (its author retracted it) or `closed` (its deadline passed, by
    /// this node's clock when asked).
    pub state: String,
    /// `state` is `open`.
    pub open: bool,
    /// Retracted by its author.
    pub withdrawn: bool,
    /// When (ms, the earliest withdrawal's `created_at`): endorsements made after do not
    /// count.
    pub withdrawn_at: Option<u64>,
    /// A campaign's goal, like `3000EUR`.
    pub goal: Option<String>,
    /// Pledged sums per currency, like `{"EUR": "1250.00"}`.
    pub pledged: BTreeMap<String, String>,
    /// A campaign's pledged total in its goal's currency, like `1250.00EUR`.
    pub pledged_total: Option<String>,
    /// A campaign reached: pledges meet the goal and it has `threshold` backers.
    pub funded: bool,
    /// A campaign whose deadline has passed (by this node's clock when asked): `funded` or
    /// `failed` (its pledges are void); `null` before, and outside campaigns.
    pub outcome: Option<String>,
    /// The producer's latest answer.
    pub response: Option<LatestResponse>,
    /// Some of these figures come from a topic this node does not follow (the group's, for
    /// `member_endorsers`; the producer's, for the count itself), so they may be low.
    #[serde(default)]
    pub partial: bool,
    /// The trusted view: present (never `null`) only when the config trusts watchdogs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<Trusted>,
}

/// One thing found by `GET /v1/search`, or listed by `GET /v1/producers`, `/v1/groups` and
/// `/v1/products`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// `producer`, `consumer`, `watchdog` (profiles), `group`, `petition`, `proposal`,
    /// `campaign` or `product`.
    pub kind: String,
    /// The author key (producers, consumers), the record id (groups, petitions), or
    /// `PRODUCERKEY/CODE` (products).
    pub id: String,
    /// The name (profiles, groups), title (petitions) or product code.
    pub name: String,
    /// The producer it concerns (petitions, products).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// That producer's name, if this node holds its profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_name: Option<String>,
    /// Its count: endorsers of a petition, members of a group, reviews of a product; `null`
    /// for a profile.
    pub count: Option<u64>,
    /// What `count` counts: `endorsers`, `members` or `reviews`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<String>,
    /// Found in this node's store, so the count is this node's; `false`: from a peer, with
    /// the count it reported.
    pub here: bool,
    /// This node follows the topic it is on (its count is complete here).
    pub following: bool,
    /// The id of the signed record that shows it, checked by this node (for a product: a
    /// review or petition naming it).
    pub record: String,
}

/// `GET /v1/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    /// The query, as asked.
    pub query: String,
    /// Best first: whole-word matches, then the larger counts.
    pub results: Vec<Found>,
    /// Peers asked (those that answer searches, at most 4).
    pub peers_asked: usize,
    /// Of those, peers that answered in time.
    pub peers_answered: usize,
    /// Of those, peers that said they keep every topic (their answers cover the network as
    /// far as they know it, up to `limit` each).
    pub peers_complete: usize,
    /// Records from peers dropped as invalid or not matching.
    pub dropped: usize,
}

/// `POST /v1/web/link`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebLink {
    /// Opens the dashboard logged in, once.
    pub url: String,
    /// Seconds the link works for.
    pub expires_in_s: u64,
}

/// `GET /v1/producers`, `GET /v1/groups` and `GET /v1/products`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// This page.
    pub results: Vec<Found>,
    /// How many there are in all.
    pub total: usize,
    /// Products: this node does not follow the producer, so the list may miss some
    /// (`chorus follow --producer KEY` completes it). Producers: this node does not keep
    /// every profile, only those it uses (`chorus find NAME` finds the others).
    #[serde(default)]
    pub partial: bool,
}

/// `GET /v1/petitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Petitions {
    /// The petitions' tallies.
    pub petitions: Vec<Tally>,
    /// Asked for the petitions aimed at a producer this node does not follow: the list may
    /// miss some (`chorus follow --producer KEY` completes it).
    #[serde(default)]
    pub partial: bool,
}

/// How bad an audit finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is wrong.
    Error,
    /// Something looks wrong.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as in the JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One audit finding, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code (`invalid-record`, `tally-mismatch`, `wrong-key`, `sybil-burst`,
    /// `idle-keys`, `timestamp`).
    pub code: String,
    /// For people.
    pub message: String,
    /// Ids, keys, values: what a third party needs to check the finding.
    pub evidence: Value,
}

/// `GET /v1/audit` (and `chorus audit --offline`): what the watchdog audit found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// Records whose id and signature were verified.
    pub verified: u64,
    /// Petitions whose tallies were recomputed.
    pub petitions: u64,
    /// Number of errors.
    pub errors: u64,
    /// Number of warnings.
    pub warnings: u64,
    /// The findings, errors first.
    pub findings: Vec<Finding>,
}

#[cfg(test)]
pub(crate) mod samples {
    //! Answers as today's node writes them, for the round-trip tests here and in `event`.
    use serde_json::{json, Value};

    pub(crate) const KEY: &str = "03a107bf03a107bf03a107bf03a107bf03a107bf03a107bf03a107bf03a107bf";
    pub(crate) const ID: &str = "64e5c1d0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbcc";

    pub(crate) fn follow() -> Value {
        json!({ "all": false, "producers": [KEY], "groups": [], "products": [format!("{KEY}/soap-1")] })
    }

    pub(crate) fn record() -> Value {
        json!({
            "id": ID, "author": KEY, "kind": "review", "created_at": 1_764_085_000_000u64,
            "topic": format!("producer:{KEY}"),
            "body": { "product": { "producer": KEY, "code": "soap-1" }, "rating": 4,
                      "title": null, "text": "lathers well" },
        })
    }

    pub(crate) fn tally(trusted: bool) -> Value {
        let mut t = json!({
            "id": ID, "title": "Repairable", "variant": "campaign", "producer": KEY,
            "product": "gtin-1", "group": null, "threshold": 100, "endorsers": 42,
            "member_endorsers": 0, "reached": false, "first_reached_at": null,
            "deadline": 1_798_847_999_999u64, "state": "open", "open": true,
            "withdrawn": false, "withdrawn_at": null,
            "goal": "3000EUR", "pledged": { "EUR": "1250.00" },
            "pledged_total": "1250.00EUR", "funded": false, "outcome": null,
            "response": { "id": ID, "status": "acknowledged", "created_at": 1_764_085_000_000u64 },
            "partial": false,
        });
        if trusted {
            t["trusted"] = json!({
                "watchdogs": [KEY], "endorsers": 40, "excluded": 2,
                "pledged": { "EUR": "1190.00" }, "root": "ab".repeat(32), "vouched_by": [KEY],
                "attested": [{ "watchdog": KEY, "count": 42, "root": "ab".repeat(32),
                               "created_at": 1_764_085_000_000u64, "current": true }],
            });
        }
        t
    }

    pub(crate) fn rating() -> Value {
        json!({ "producer": KEY, "product": "soap-1", "count": 3, "mean": 3.5,
                "histogram": [0, 1, 0, 1, 1], "partial": false })
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    use super::samples::*;
    use super::*;

    /// Decodes `v` as `T` and writes it again: the same JSON.
    fn round_trip<T: DeserializeOwned + Serialize>(v: Value) -> T {
        let t: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
        t
    }

    #[test]
    fn error_and_follow_answers_round_trip() {
        let e: ErrorBody =
            round_trip(json!({ "code": "bad_key", "message": "producer \"x\": bad" }));
        assert_eq!(e.code, "bad_key");
        let f: FollowSet = round_trip(follow());
        assert_eq!(f.producers, [KEY]);
        round_trip::<FollowSet>(
            json!({ "all": true, "producers": [], "groups": [ID], "products": [] }),
        );
    }

    #[test]
    fn status_round_trips() {
        let s: Status = round_trip(json!({
            "peer_id": "12D3KooWabc", "listen_addrs": ["/ip4/127.0.0.1/tcp/7470/p2p/12D3KooWabc"],
            "peers": 3, "peer_ids": ["12D3KooWdef"], "records": 1024, "waiting": 0,
            "shards": ["chorus/v1/meta", "chorus/v1/p/07"], "author": KEY, "following": follow(),
            "sync_ready": false,
            "storage": {"state": "full", "message": "the disk is full", "free_bytes": 0,
                        "used_bytes": 73400320},
        }));
        assert_eq!(s.peers, 3);
        assert_eq!(s.storage.used_bytes, 73_400_320);
        assert!(s.last_pull.is_none());
        assert_eq!(s.following.producers, [KEY]);
        assert!(!s.sync_ready);
        assert_eq!(s.storage.state, StorageCondition::Full);
        // An older node sends no sync_ready: it answers sync.
        let old: Status = serde_json::from_value(json!({
            "peer_id": "12D3KooWabc", "listen_addrs": [], "peers": 0, "peer_ids": [],
            "records": 0, "waiting": 0, "shards": [], "author": KEY, "following": follow(),
        }))
        .unwrap();
        assert!(old.sync_ready);
        // Nor any storage state: it writes.
        assert_eq!(old.storage.state, StorageCondition::Ok);
    }

    #[test]
    fn sync_answers_round_trip() {
        let pull = |error: Value| {
            json!({
                "peer": "12D3KooWabc", "rounds": 3, "fetches": 1, "bytes_sent": 1410,
                "bytes_received": 33112, "record_bytes": 31700, "needed": 100, "fetched": 100,
                "stored": 100, "duplicates": 0, "refused": 0, "invalid": 0, "missing": 0,
                "millis": 42, "error": error,
            })
        };
        let a: SyncAnswer = round_trip(json!({
            "pulls": [pull(Value::Null), pull(json!("timeout"))], "stored": 200,
        }));
        assert_eq!(a.pulls[0].overhead_bytes(), 1410 + 33112 - 31700);
        assert_eq!(a.pulls[1].error.as_deref(), Some("timeout"));
        round_trip::<SyncAnswer>(json!({ "pulls": [], "stored": 0 }));
    }

    #[test]
    fn peers_round_trip() {
        let p: Peers = round_trip(json!({ "peers": ["12D3KooWabc"], "banned": [], "pulls": [
            { "at": 1_765_142_400_000u64, "peer": "12D3KooWabc", "rounds": 2, "fetches": 1,
              "bytes_sent": 300, "bytes_received": 9000, "record_bytes": 8000, "needed": 12,
              "fetched": 12, "stored": 12, "duplicates": 0, "refused": 0, "invalid": 0,
              "missing": 0, "millis": 40, "error": null }
        ]}));
        assert_eq!(p.pulls[0].report.stored, 12);
        assert_eq!(p.pulls[0].at, 1_765_142_400_000);
        // An older node lists no pulls.
        let old: Peers = serde_json::from_value(json!({ "peers": [], "banned": [] })).unwrap();
        assert!(old.pulls.is_empty());
    }

    #[test]
    fn created_round_trips_with_each_outcome() {
        for outcome in ["stored", "duplicate", "waiting"] {
            let c: Created = round_trip(json!({
                "id": ID, "kind": "review", "outcome": outcome, "record": record(),
            }));
            assert_eq!(c.record["body"]["rating"], 4);
        }
        assert!(serde_json::from_value::<Created>(
            json!({ "id": ID, "kind": "review", "outcome": "lost", "record": record() })
        )
        .is_err());
    }

    #[test]
    fn reviews_round_trip_with_counted_beside_the_record() {
        let mut counted = record();
        counted["counted"] = json!(true);
        let mut not = record();
        not["counted"] = json!(false);
        let r: Reviews =
            round_trip(json!({ "reviews": [counted, not], "next": null, "partial": false }));
        assert!(r.reviews[0].counted && !r.reviews[1].counted);
        assert_eq!(
            r.reviews[0].record,
            record(),
            "counted is not left in the record"
        );
        round_trip::<Reviews>(
            json!({ "reviews": [], "next": format!("1764085000000-{ID}"), "partial": true }),
        );
    }

    #[test]
    fn rating_round_trips() {
        let r: Rating = round_trip(rating());
        assert_eq!(r.mean, 3.5);
        let partial: Rating = round_trip(
            json!({ "producer": KEY, "product": "x", "count": 0, "mean": 0.0,
                                      "histogram": [0, 0, 0, 0, 0], "partial": true }),
        );
        assert!(partial.partial);
        // An older node's answer, without the field: not partial.
        let old: Rating = serde_json::from_value(json!({ "producer": KEY, "product": "x",
            "count": 0, "mean": 0.0, "histogram": [0, 0, 0, 0, 0] }))
        .unwrap();
        assert!(!old.partial);
    }

    #[test]
    fn group_round_trips() {
        for charter in [json!("soap for all"), Value::Null] {
            round_trip::<GroupInfo>(json!({
                "id": ID, "name": "Soap lovers", "charter": charter, "admission": "approval",
                "founder": KEY, "members": 2, "member": true, "status": "member",
                "member_list": [{ "key": KEY, "name": "Ann" }, { "key": ID, "name": null }],
                "pending": 1, "partial": false,
            }));
        }
        let r: GroupRequests = round_trip(json!({
            "group": ID, "partial": false,
            "requests": [{ "key": KEY, "name": "Bea", "join": ID, "created_at": 5 }],
        }));
        assert_eq!(r.requests[0].name.as_deref(), Some("Bea"));
        // A node from before requests and rosters: the new fields default.
        let old: GroupInfo = serde_json::from_value(json!({
            "id": ID, "name": "g", "charter": null, "admission": "open", "founder": KEY,
            "members": 1, "member": true,
        }))
        .unwrap();
        assert!(old.member_list.is_empty() && !old.partial);
    }

    #[test]
    fn trust_sets_round_trip() {
        let t: TrustSet = round_trip(json!({
            "watchdogs": [KEY], "config": [], "added": [KEY], "removed": [ID],
        }));
        assert_eq!(t.added, [KEY]);
    }

    #[test]
    fn tallies_round_trip_with_and_without_the_trusted_view() {
        let t: Tally = round_trip(tally(false));
        assert!(t.trusted.is_none());
        let t: Tally = round_trip(tally(true));
        assert_eq!(t.trusted.map(|t| t.excluded), Some(2));
        // A tally of a petition whose record is not stored yet.
        let mut bare = tally(false);
        for f in [
            "title", "variant", "product", "goal", "response", "deadline",
        ] {
            bare[f] = Value::Null;
        }
        bare["pledged"] = json!({});
        round_trip::<Tally>(bare);
        let p: Petitions =
            round_trip(json!({ "petitions": [tally(false), tally(true)], "partial": false }));
        assert_eq!(p.petitions.len(), 2);
    }

    #[test]
    fn audit_reports_round_trip() {
        let a: AuditReport = round_trip(json!({
            "records": 1024, "verified": 1024, "petitions": 12, "errors": 1, "warnings": 1,
            "findings": [
                { "severity": "error", "code": "tally-mismatch", "message": "differs",
                  "evidence": { "petition": ID } },
                { "severity": "warning", "code": "sybil-burst", "message": "30 keys ...",
                  "evidence": { "petition": ID, "count": 30, "from": 1_764_085_000_000u64,
                                "to": 1_764_085_058_000u64, "keys": [KEY] } },
            ],
        }));
        assert_eq!(a.findings[0].severity, Severity::Error);
        assert_eq!(a.findings[0].severity.as_str(), "error");
        assert_eq!(a.findings[1].severity.as_str(), "warning");
        assert_eq!(a.findings[1].code, "sybil-burst");
        round_trip::<AuditReport>(json!({ "records": 0, "verified": 0, "petitions": 0,
                                          "errors": 0, "warnings": 0, "findings": [] }));
    }

    #[test]
    fn answers_ignore_fields_they_do_not_know() {
        let mut p = json!({ "peers": [], "banned": [] });
        p["later"] = json!(1);
        assert!(serde_json::from_value::<Peers>(p).is_ok());
    }
}
