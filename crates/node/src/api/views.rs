//! How the node's records and derived values are shown to clients: conversions into the
//! answer types of `chorus_client`.

use chorus_client::{FollowSet, LatestResponse, Tally};
use chorus_protocol::{cbor, Amount, Body, PetitionVariant, RecordId, SignedRecord, Topic};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::ApiState;
use crate::clock::now_ms;
use crate::config::FollowConfig;
use crate::follow::Follow;
use crate::store::{PetitionState, PetitionTally, Store};

/// A stored record as JSON: its fields, plus `id`, and the names of the profiles this node
/// holds for its author (`author_name`) and for the producer whose topic it is on
/// (`producer_name`).
pub(crate) fn record_json(store: &Store, rec: &SignedRecord) -> Value {
    let mut v = cbor::record_to_json(rec.record_bytes()).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(rec.id().to_string()));
        let r = rec.record();
        if let Ok(Some(n)) = store.name_of(&r.author) {
            o.insert("author_name".into(), json!(n));
        }
        if let Topic::Producer(p) = &r.topic {
            if let Ok(Some(n)) = store.name_of(p) {
                o.insert("producer_name".into(), json!(n));
            }
        }
    }
    v
}

/// What a node follows, as the API shows it.
pub(crate) fn follow_set(f: &Follow) -> FollowSet {
    let FollowConfig {
        all,
        producers,
        groups,
        products,
    } = f.to_config();
    FollowSet {
        all,
        producers,
        groups,
        products,
    }
}

/// Hundredths as `1250.00`.
fn hundredths(v: u128) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// A petition's tally, with what its record says (title, variant, product) if at hand.
pub(crate) fn tally(id: &RecordId, rec: Option<&SignedRecord>, t: &PetitionTally) -> Tally {
    let now = now_ms();
    let (title, variant, product) = match rec.map(|r| &r.record().body) {
        Some(Body::Petition(p)) => (
            Some(p.title.clone()),
            Some(
                match &p.variant {
                    PetitionVariant::Demand => "demand",
                    PetitionVariant::Proposal => "proposal",
                    PetitionVariant::Campaign { .. } => "campaign",
                }
                .to_string(),
            ),
            p.product.clone(),
        ),
        _ => (None, None, None),
    };
    Tally {
        id: id.to_string(),
        title,
        variant,
        producer: t.producer.to_string(),
        producer_name: None,
        product,
        group: t.group.map(|g| g.to_string()),
        threshold: t.threshold,
        endorsers: t.endorsers,
        member_endorsers: t.member_endorsers,
        reached: t.reached,
        first_reached_at: t.first_reached_at,
        deadline: t.deadline,
        state: t.state(now).as_str().to_string(),
        open: t.state(now) == PetitionState::Open,
        withdrawn: t.withdrawn,
        withdrawn_at: t.withdrawn_at,
        goal: t.goal.as_ref().map(|(v, c)| {
            Amount {
                value: *v,
                currency: c.clone(),
            }
            .to_string()
        }),
        pledged: t
            .pledged
            .iter()
            .map(|(cur, v)| (cur.clone(), hundredths(*v)))
            .collect(),
        pledged_total: t.goal.as_ref().map(|(_, currency)| {
            format!("{}{currency}", hundredths(t.pledged_total().unwrap_or(0)))
        }),
        funded: t.funded,
        outcome: t.outcome(now).map(str::to_string),
        response: t.response.as_ref().map(|r| LatestResponse {
            id: r.id.to_string(),
            status: r.status.clone(),
            created_at: r.created_at,
            text: None,
        }),
        partial: false,
        trusted: None,
    }
}

/// A tally, with the trusted view when the user trusts watchdogs.
pub(crate) fn tally_with_trust(
    s: &ApiState,
    id: &RecordId,
    rec: Option<&SignedRecord>,
    t: &PetitionTally,
) -> Result<Tally, ApiError> {
    let mut v = tally(id, rec, t);
    if let (Some(r), Some(info)) = (v.response.as_mut(), t.response.as_ref()) {
        r.text = response_text(s, &info.id)?;
    }
    v.partial = !s.following.follows(&Topic::Producer(t.producer))
        || t.group
            .is_some_and(|g| !s.following.follows(&Topic::Group(g)));
    v.trusted = crate::trust::view(&s.store, &s.trust.watchdogs(), id, t)?;
    v.producer_name = s.store.name_of(&t.producer)?;
    if let Some(tr) = v.trusted.as_mut() {
        for a in &mut tr.attested {
            if let Ok(k) = a.watchdog.parse() {
                a.watchdog_name = s.store.name_of(&k)?;
            }
        }
    }
    Ok(v)
}

/// The text of a stored response record.
pub(crate) fn response_text(s: &ApiState, id: &RecordId) -> Result<Option<String>, ApiError> {
    Ok(s.store.record(id)?.and_then(|r| match &r.record().body {
        chorus_protocol::Body::Response(resp) => Some(resp.text.clone()),
        _ => None,
    }))
}

/// The producer's response in force to a record (a review), if this node holds one: the
/// winner of its response slot, as tallies count it (a retracted response is none).
pub(crate) fn latest_response(
    s: &ApiState,
    target: &RecordId,
    producer: &chorus_protocol::AuthorKey,
) -> Result<Option<LatestResponse>, ApiError> {
    let Some((id, true)) = s.store.response_of(target, producer)? else {
        return Ok(None);
    };
    Ok(s.store.record(&id)?.and_then(|r| match &r.record().body {
        Body::Response(resp) => Some(LatestResponse {
            id: id.to_string(),
            status: resp.status.to_string(),
            created_at: r.record().created_at,
            text: Some(resp.text.clone()),
        }),
        _ => None,
    }))
}
