//! `POST /v1/records`: records signed elsewhere (by a phone app, a producer's own system, a
//! file moved in bulk) taken in their wire form and run through the same ingest as gossip:
//! every check of PROTOCOL.md, an answer per record, and the stored ones gossiped. The
//! node's user is the client that holds the token, so the node follows the topics of what
//! it stores this way, as it does for records it makes itself.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chorus_client::{RecordsRequest, Submitted, SubmittedRecords};
use chorus_protocol::{cbor, RecordId, SignedRecord, Topic};

use super::error::ApiError;
use super::follow::follow_what_i_join;
use super::state::ApiState;
use crate::ingest::{Outcome, Rejection};

/// Most records in one request (the body's byte limit, `api.max_body_bytes`, applies too).
pub(crate) const MAX_RECORDS: usize = 1_000;

fn too_many() -> ApiError {
    ApiError::bad(
        "too_many_records",
        format!("more than {MAX_RECORDS} records in one request"),
    )
}

/// The wire records of the body: `application/cbor` (one after another) or JSON hex.
fn wires(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Vec<u8>>, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let wires: Vec<Vec<u8>> = match mime.as_str() {
        "application/cbor" | "application/cbor-seq" => {
            let pieces = cbor::split_sequence(body, MAX_RECORDS + 1)
                .map_err(|e| ApiError::bad("malformed", e.to_string()))?;
            if pieces.len() > MAX_RECORDS {
                return Err(too_many());
            }
            pieces.into_iter().map(<[u8]>::to_vec).collect()
        }
        "application/json" => {
            let r: RecordsRequest = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad("bad_request", format!("the JSON body: {e}")))?;
            if r.records.len() > MAX_RECORDS {
                return Err(too_many());
            }
            r.records
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    hex::decode(h).map_err(|e| {
                        ApiError::bad("bad_hex", format!("records[{i}]: not hex bytes: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the records as application/cbor (wire records one after another) or as \
                 application/json {\"records\": [HEX, ...]}",
            ))
        }
    };
    if wires.is_empty() {
        return Err(ApiError::bad("no_records", "the body holds no record"));
    }
    Ok(wires)
}

/// What became of one record, for the answer.
fn submitted(wire: &[u8], outcome: &Outcome) -> Submitted {
    let id_of_wire = || {
        cbor::split_wire(wire)
            .ok()
            .map(|(range, _)| RecordId::of(&wire[range]).to_string())
    };
    let (id, outcome_name, why) = match outcome {
        Outcome::Stored(id) => (Some(id.to_string()), "stored", None),
        Outcome::Duplicate(id) => (Some(id.to_string()), "duplicate", None),
        Outcome::Waiting(id) => (Some(id.to_string()), "waiting", None),
        Outcome::Rejected(r) => {
            let code = match r {
                Rejection::Invalid(e) => e.code(),
                Rejection::Rule(e) => e.code(),
                Rejection::TooManyWaiting => "busy",
                Rejection::Internal => "internal",
            };
            (id_of_wire(), "rejected", Some((code, r.to_string())))
        }
    };
    Submitted {
        id,
        outcome: outcome_name.to_string(),
        code: why.as_ref().map(|(c, _)| c.to_string()),
        message: why.map(|(_, m)| m),
    }
}

/// `POST /v1/records`.
pub(crate) async fn submit(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubmittedRecords>, ApiError> {
    let wires = wires(&headers, &body)?;
    let outcomes = s.publisher.submit(wires.clone()).await?;
    // Follow what was stored, so the answers to it reach this node.
    let mut topics: BTreeSet<String> = BTreeSet::new();
    for (wire, outcome) in wires.iter().zip(&outcomes) {
        if matches!(outcome, Outcome::Stored(_) | Outcome::Waiting(_)) {
            if let Ok(rec) = SignedRecord::from_bytes(wire) {
                if matches!(outcome, Outcome::Stored(_)) && rec.author() == s.author {
                    s.mine.add(rec.id());
                }
                let topic: Topic = rec.record().topic;
                if topics.insert(topic.to_string()) {
                    follow_what_i_join(&s, &topic).await?;
                }
            }
        }
    }
    let results: Vec<Submitted> = wires
        .iter()
        .zip(&outcomes)
        .map(|(w, o)| submitted(w, o))
        .collect();
    let count = |name: &str| results.iter().filter(|r| r.outcome == name).count();
    Ok(Json(SubmittedRecords {
        stored: count("stored"),
        duplicate: count("duplicate"),
        waiting: count("waiting"),
        rejected: count("rejected"),
        results,
    }))
}
