//! Endpoints for watchdogs: the audit of this node's store, a petition's verifiable bundle,
//! and signed attestations.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_client::{AttestRequest, AuditReport, Created};
use chorus_protocol::{Attestation, Body, Subject, Topic, Verdict};

use super::error::{ApiError, JsonBody};
use super::parse::{key, record_id, stored};
use super::state::ApiState;
use super::write::create_on;
use crate::bundle::Exported;
use crate::clock::now_ms;
use crate::error::Error;

/// `GET /v1/audit`: the watchdog's audit of this node's store.
pub(crate) async fn audit(State(s): State<ApiState>) -> Result<Json<AuditReport>, ApiError> {
    let store = s.store.clone();
    let cfg = s.audit.clone();
    let report = tokio::task::spawn_blocking(move || crate::audit::audit(&store, &cfg, now_ms()))
        .await
        .map_err(|_| Error::NodeStopped)??;
    Ok(Json(report))
}

/// `GET /v1/bundle/{id}`: the petition's verifiable bundle (`application/cbor`).
pub(crate) async fn bundle(
    State(s): State<ApiState>,
    Path(id_text): Path<String>,
) -> Result<Response, ApiError> {
    let pid = record_id(&s, "petition", &id_text)?;
    let b = petition_bundle(&s, pid).await?;
    Ok(([(header::CONTENT_TYPE, "application/cbor")], b.encode()).into_response())
}

/// The bundle of the petition `pid`: 404 if this node has no such record, 400
/// `not_a_petition` if it is another kind; a storage failure is the node's error (500).
async fn petition_bundle(
    s: &ApiState,
    pid: chorus_protocol::RecordId,
) -> Result<chorus_protocol::bundle::Bundle, ApiError> {
    let store = s.store.clone();
    let exported = tokio::task::spawn_blocking(move || crate::bundle::export(&store, &pid))
        .await
        .map_err(|_| Error::NodeStopped)??;
    match exported {
        Exported::Bundle(b) => Ok(b),
        Exported::Missing => Err(ApiError::not_found(format!(
            "no petition {pid} in this node's store"
        ))),
        Exported::NotAPetition(kind) => Err(ApiError::bad(
            "not_a_petition",
            format!("{pid} is a {kind}, not a petition"),
        )),
    }
}

/// `POST /v1/attest`.
pub(crate) async fn attest(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<AttestRequest>,
) -> Result<Json<Created>, ApiError> {
    let verdict: Verdict = r.verdict.parse().map_err(|_| {
        ApiError::bad(
            "bad_verdict",
            format!(
                "verdict {:?}: expected valid, invalid, verified-count or one-actor",
                r.verdict
            ),
        )
    })?;
    match (verdict, &r.record, &r.keys) {
        (Verdict::OneActor, None, Some(keys)) => {
            let mut ks = keys
                .iter()
                .map(|k| key("keys", k))
                .collect::<Result<Vec<_>, _>>()?;
            ks.sort();
            ks.dedup();
            if ks.is_empty() || ks.len() > 64 {
                return Err(ApiError::bad("bad_keys", "one-actor names 1 to 64 keys"));
            }
            create_on(
                &s,
                Body::Attestation(Attestation {
                    subject: Subject::Keys(ks),
                    verdict,
                    count: None,
                    root: None,
                    note: r.note,
                }),
                Some(Topic::Meta),
            )
            .await
        }
        (Verdict::OneActor, _, _) => Err(ApiError::bad(
            "bad_subject",
            "one-actor is about keys, not a record",
        )),
        (_, Some(rid), None) => {
            let rid = record_id(&s, "record", rid)?;
            let rec = stored(&s, "record", &rid)?;
            let (count, root) = if verdict == Verdict::VerifiedCount {
                let b = petition_bundle(&s, rid).await?;
                let v = chorus_protocol::bundle::verify(&b).map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "unverifiable",
                        format!("this node's own count does not verify: {e}"),
                    )
                })?;
                (Some(v.count), Some(v.root))
            } else {
                (None, None)
            };
            create_on(
                &s,
                Body::Attestation(Attestation {
                    subject: Subject::Record(rid),
                    verdict,
                    count,
                    root,
                    note: r.note,
                }),
                Some(rec.record().topic),
            )
            .await
        }
        _ => Err(ApiError::bad(
            "bad_subject",
            "give a record (valid, invalid, verified-count) or keys (one-actor)",
        )),
    }
}
