//! Endpoints that act as the node's user (each creates, signs, stores and gossips one record)
//! and endpoints that read what the store knows.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chorus_protocol::{
    cbor, Admission, Admit, Amount, AuthorKey, Body, Endorsement, Group, Join, Kind, Petition,
    PetitionVariant, ProductRef, Profile, RecordBuilder, RecordId, Response, ResponseStatus,
    Retraction, Review, Role, SignedRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ApiError, ApiState, JsonBody, Q};
use crate::clock::now_ms;
use crate::follow::parse_product;
use crate::ingest::{Outcome, Rejection};
use crate::{FollowChange, PetitionTally};

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, code, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    err(StatusCode::NOT_FOUND, "not_found", message)
}

fn key(field: &str, s: &str) -> Result<AuthorKey, ApiError> {
    s.parse()
        .map_err(|e| bad("bad_key", format!("{field} {s:?}: {e}")))
}

fn id(field: &str, s: &str) -> Result<RecordId, ApiError> {
    s.parse()
        .map_err(|e| bad("bad_id", format!("{field} {s:?}: {e}")))
}

fn amount(field: &str, s: &str) -> Result<Amount, ApiError> {
    s.parse().map_err(|e| {
        bad(
            "bad_amount",
            format!("{field} {s:?}: {e} (write it like 3000EUR)"),
        )
    })
}

/// A deadline: milliseconds, RFC 3339 (`2026-12-31T18:00:00Z`) or a date (`2026-12-31`,
/// meaning the end of that day, UTC).
pub fn parse_deadline(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let text = if s.len() == 10 {
        format!("{s}T23:59:59.999Z")
    } else {
        s.to_string()
    };
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD or RFC 3339): {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis() as u64;
    Ok(ms)
}

/// A stored record as JSON: its fields, plus `id`.
pub(crate) fn record_json(rec: &SignedRecord) -> Value {
    let mut v = cbor::record_to_json(rec.record_bytes()).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(rec.id().to_string()));
    }
    v
}

/// What a record-creating endpoint answers.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The new record's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// `stored`, `duplicate` or `waiting` (for the record it points at).
    pub outcome: &'static str,
    /// The record.
    pub record: Value,
}

async fn create(s: &ApiState, body: Body) -> Result<Json<Created>, ApiError> {
    create_on(s, body, None).await
}

/// Creates a record; records about another record (endorsements, retractions) go on that
/// record's topic.
async fn create_on(
    s: &ApiState,
    body: Body,
    topic: Option<chorus_protocol::Topic>,
) -> Result<Json<Created>, ApiError> {
    let mut b = RecordBuilder::new(body).created_at(s.clock.next_created_at());
    if let Some(t) = topic {
        b = b.topic(t);
    }
    let rec = b
        .sign(&s.signer)
        .map_err(|e| bad(e.code(), e.to_string()))?;
    let outcome = s.publisher.publish(&rec).await?;
    let outcome = match outcome {
        Outcome::Stored(_) => "stored",
        Outcome::Duplicate(_) => "duplicate",
        Outcome::Waiting(_) => "waiting",
        Outcome::Rejected(Rejection::Invalid(e)) => return Err(bad(e.code(), e.to_string())),
        Outcome::Rejected(Rejection::Rule(r)) => {
            return Err(err(StatusCode::CONFLICT, "rule", r.to_string()))
        }
        Outcome::Rejected(Rejection::Internal) => {
            return Err(err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the node gave no verdict",
            ))
        }
        Outcome::Rejected(Rejection::TooManyWaiting) => {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many records wait for their target; try later",
            ))
        }
    };
    follow_what_i_join(s, &rec.record().topic).await?;
    if rec.record().kind() == Kind::Group {
        // A group record travels on meta; its members' records on the group's own topic.
        follow_what_i_join(s, &chorus_protocol::Topic::Group(rec.id())).await?;
    }
    Ok(Json(Created {
        id: rec.id().to_string(),
        kind: rec.record().kind().as_str().to_string(),
        outcome,
        record: record_json(&rec),
    }))
}

/// A user follows every topic they take part in: the producer they review, petition or
/// endorse, the group they create or join. Otherwise their node would never hear the
/// answer to their petition or the members of their group. A newly followed topic is
/// caught up from the connected peers at once, in the background.
async fn follow_what_i_join(s: &ApiState, topic: &chorus_protocol::Topic) -> Result<(), ApiError> {
    if s.following.follows(topic) {
        return Ok(());
    }
    let change = match topic {
        chorus_protocol::Topic::Producer(k) => FollowChange::Producer(*k),
        chorus_protocol::Topic::Group(g) => FollowChange::Group(*g),
        chorus_protocol::Topic::Meta => return Ok(()),
    };
    s.following.change(change, true).await?;
    let sync = s.sync.clone();
    tokio::spawn(async move {
        let _ = sync.sync_now(None).await;
    });
    Ok(())
}

fn stored(s: &ApiState, what: &str, id: &RecordId) -> Result<SignedRecord, ApiError> {
    s.store
        .record(id)?
        .ok_or_else(|| not_found(format!("no {what} {id} in this node's store")))
}

/// `POST /v1/profile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileReq {
    name: String,
    role: String,
    about: Option<String>,
}

pub(crate) async fn profile(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<ProfileReq>,
) -> Result<Json<Created>, ApiError> {
    let role: Role = r.role.parse().map_err(|_| {
        bad(
            "bad_role",
            format!("role {:?}: expected consumer, producer or watchdog", r.role),
        )
    })?;
    create(
        &s,
        Body::Profile(Profile {
            name: r.name,
            role,
            about: r.about,
        }),
    )
    .await
}

/// `POST /v1/reviews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewReq {
    producer: String,
    product: String,
    rating: u8,
    title: Option<String>,
    text: String,
}

pub(crate) async fn review(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<ReviewReq>,
) -> Result<Json<Created>, ApiError> {
    if !(1..=5).contains(&r.rating) {
        return Err(bad(
            "bad_rating",
            format!("rating {}: must be 1 to 5", r.rating),
        ));
    }
    create(
        &s,
        Body::Review(Review {
            product: ProductRef {
                producer: key("producer", &r.producer)?,
                code: r.product,
            },
            rating: r.rating,
            title: r.title,
            text: r.text,
        }),
    )
    .await
}

/// Query of the product endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    producer: String,
    product: String,
    after: Option<String>,
    limit: Option<usize>,
}

fn cursor(c: Option<(u64, RecordId)>) -> Option<String> {
    c.map(|(at, id)| format!("{at}-{id}"))
}

fn parse_cursor(s: Option<&str>) -> Result<Option<(u64, RecordId)>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let parsed = s
        .split_once('-')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| {
        bad(
            "bad_cursor",
            format!("after {s:?}: not a cursor from a previous page"),
        )
    })
}

/// `GET /v1/reviews`: the product's reviews, oldest first, each with whether it counts (its
/// author's latest, not retracted).
pub(crate) async fn reviews(
    State(s): State<ApiState>,
    Q(q): Q<ProductQuery>,
) -> Result<Json<Value>, ApiError> {
    let producer = key("producer", &q.producer)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = s.store.by_product(
        &producer,
        &q.product,
        parse_cursor(q.after.as_deref())?,
        limit,
    )?;
    let mut out = Vec::new();
    for rec in &page.records {
        if rec.record().kind() != Kind::Review {
            continue;
        }
        let counted =
            s.store.review_of(&producer, &q.product, &rec.author())? == Some((rec.id(), true));
        let mut v = record_json(rec);
        v["counted"] = json!(counted);
        out.push(v);
    }
    Ok(Json(json!({ "reviews": out, "next": cursor(page.next) })))
}

/// `GET /v1/rating`.
pub(crate) async fn rating(
    State(s): State<ApiState>,
    Q(q): Q<ProductQuery>,
) -> Result<Json<Value>, ApiError> {
    let producer = key("producer", &q.producer)?;
    let r = s.store.rating(&producer, &q.product)?;
    Ok(Json(json!({
        "producer": producer.to_string(),
        "product": q.product,
        "count": r.count,
        "mean": r.mean(),
        "histogram": r.histogram,
    })))
}

/// `POST /v1/groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupReq {
    name: String,
    #[serde(default)]
    approval: bool,
    charter: Option<String>,
}

pub(crate) async fn group_create(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<GroupReq>,
) -> Result<Json<Created>, ApiError> {
    create(
        &s,
        Body::Group(Group {
            name: r.name,
            charter: r.charter,
            admission: if r.approval {
                Admission::Approval
            } else {
                Admission::Open
            },
        }),
    )
    .await
}

fn group_record(s: &ApiState, g: &str) -> Result<(RecordId, SignedRecord), ApiError> {
    let gid = id("group", g)?;
    let rec = stored(s, "group", &gid)?;
    if rec.record().kind() != Kind::Group {
        return Err(bad(
            "not_a_group",
            format!("{gid} is a {}", rec.record().kind()),
        ));
    }
    Ok((gid, rec))
}

pub(crate) async fn group_join(
    State(s): State<ApiState>,
    Path(g): Path<String>,
) -> Result<Json<Created>, ApiError> {
    let (group, _) = group_record(&s, &g)?;
    create(&s, Body::Join(Join { group })).await
}

/// `POST /v1/groups/{id}/admit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmitReq {
    member: String,
}

pub(crate) async fn group_admit(
    State(s): State<ApiState>,
    Path(g): Path<String>,
    JsonBody(r): JsonBody<AdmitReq>,
) -> Result<Json<Created>, ApiError> {
    let (group, rec) = group_record(&s, &g)?;
    if rec.author() != s.author {
        return Err(err(
            StatusCode::FORBIDDEN,
            "not_founder",
            format!("only the group's founder ({}) admits members", rec.author()),
        ));
    }
    let member = key("member", &r.member)?;
    create(&s, Body::Admit(Admit { group, member })).await
}

pub(crate) async fn group_show(
    State(s): State<ApiState>,
    Path(g): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (gid, rec) = group_record(&s, &g)?;
    let t = s.store.group(&gid)?;
    let Body::Group(body) = &rec.record().body else {
        return Err(bad("not_a_group", format!("{gid} is not a group")));
    };
    Ok(Json(json!({
        "id": gid.to_string(),
        "name": body.name,
        "charter": body.charter,
        "admission": body.admission.as_str(),
        "founder": rec.author().to_string(),
        "members": t.as_ref().map(|t| t.members).unwrap_or(1),
        "member": crate::tally::is_member(&s.store, &gid, &s.author)?,
    })))
}

/// `POST /v1/petitions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetitionReq {
    producer: String,
    product: Option<String>,
    group: Option<String>,
    title: String,
    text: String,
    threshold: u64,
    deadline: Option<String>,
    /// `demand` (default), `proposal` or `campaign`.
    variant: Option<String>,
    goal: Option<String>,
}

pub(crate) async fn petition_open(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<PetitionReq>,
) -> Result<Json<Created>, ApiError> {
    let variant = match (r.variant.as_deref().unwrap_or("demand"), &r.goal) {
        ("demand", None) => PetitionVariant::Demand,
        ("proposal", None) => PetitionVariant::Proposal,
        ("campaign", Some(g)) => PetitionVariant::Campaign {
            goal: amount("goal", g)?,
        },
        ("campaign", None) => return Err(bad("bad_goal", "a campaign needs a goal, like 3000EUR")),
        ("demand" | "proposal", Some(_)) => {
            return Err(bad("bad_goal", "only a campaign has a goal"))
        }
        (v, _) => {
            return Err(bad(
                "bad_variant",
                format!("variant {v:?}: expected demand, proposal or campaign"),
            ))
        }
    };
    let group = match &r.group {
        Some(g) => Some(group_record(&s, g)?.0),
        None => None,
    };
    let deadline = match &r.deadline {
        Some(d) => Some(parse_deadline(d).map_err(|e| bad("bad_deadline", e))?),
        None => None,
    };
    if deadline.is_some_and(|d| d <= now_ms()) {
        return Err(bad("bad_deadline", "the deadline is in the past"));
    }
    create(
        &s,
        Body::Petition(Petition {
            producer: key("producer", &r.producer)?,
            product: r.product,
            group,
            title: r.title,
            text: r.text,
            threshold: r.threshold,
            deadline,
            variant,
        }),
    )
    .await
}

/// Query of `GET /v1/petitions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetitionsQuery {
    producer: Option<String>,
    group: Option<String>,
    #[serde(default)]
    open: bool,
}

fn pledged(t: &PetitionTally) -> Value {
    t.pledged
        .iter()
        .map(|(cur, v)| {
            let (whole, cents) = (v / 100, v % 100);
            (cur.clone(), json!(format!("{whole}.{cents:02}")))
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

fn is_open(t: &PetitionTally, now: u64) -> bool {
    !t.withdrawn && t.deadline.is_none_or(|d| d >= now)
}

/// A tally as JSON, with the trusted view when the user trusts watchdogs.
pub(crate) fn tally_with_trust(
    s: &ApiState,
    id: &RecordId,
    rec: Option<&SignedRecord>,
    t: &PetitionTally,
) -> Result<Value, ApiError> {
    let mut v = tally_json(id, rec, t);
    if let Some(trusted) = crate::trust::view(&s.store, &s.trusted, id, t)? {
        v["trusted"] = trusted;
    }
    Ok(v)
}

pub(crate) fn tally_json(id: &RecordId, rec: Option<&SignedRecord>, t: &PetitionTally) -> Value {
    let (title, variant, product) = match rec.map(|r| &r.record().body) {
        Some(Body::Petition(p)) => (
            Some(p.title.clone()),
            Some(match &p.variant {
                PetitionVariant::Demand => "demand".to_string(),
                PetitionVariant::Proposal => "proposal".to_string(),
                PetitionVariant::Campaign { .. } => "campaign".to_string(),
            }),
            p.product.clone(),
        ),
        _ => (None, None, None),
    };
    json!({
        "id": id.to_string(),
        "title": title,
        "variant": variant,
        "producer": t.producer.to_string(),
        "product": product,
        "group": t.group.map(|g| g.to_string()),
        "threshold": t.threshold,
        "endorsers": t.endorsers,
        "member_endorsers": t.member_endorsers,
        "reached": t.reached,
        "reached_at": t.reached_at,
        "deadline": t.deadline,
        "open": is_open(t, now_ms()),
        "withdrawn": t.withdrawn,
        "goal": t.goal.as_ref().map(|(v, c)| Amount { value: *v, currency: c.clone() }.to_string()),
        "pledged": pledged(t),
        "response": t.response.as_ref().map(|r| json!({
            "id": r.id.to_string(),
            "status": r.status,
            "created_at": r.created_at,
        })),
    })
}

pub(crate) async fn petitions(
    State(s): State<ApiState>,
    Q(q): Q<PetitionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let producer = q
        .producer
        .as_deref()
        .map(|p| key("producer", p))
        .transpose()?;
    let group = q.group.as_deref().map(|g| id("group", g)).transpose()?;
    let now = now_ms();
    let mut out = Vec::new();
    for (pid, t) in s.store.petitions()? {
        if producer.is_some_and(|p| p != t.producer)
            || group.is_some_and(|g| Some(g) != t.group)
            || (q.open && !is_open(&t, now))
        {
            continue;
        }
        let rec = s.store.record(&pid)?;
        out.push(tally_with_trust(&s, &pid, rec.as_ref(), &t)?);
    }
    Ok(Json(json!({ "petitions": out })))
}

pub(crate) async fn tally(
    State(s): State<ApiState>,
    Path(p): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pid = id("petition", &p)?;
    let t = s
        .store
        .tally(&pid)?
        .ok_or_else(|| not_found(format!("no petition {pid} in this node's store")))?;
    let rec = s.store.record(&pid)?;
    Ok(Json(tally_with_trust(&s, &pid, rec.as_ref(), &t)?))
}

pub(crate) async fn show(
    State(s): State<ApiState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rid = id("record", &r)?;
    let rec = stored(&s, "record", &rid)?;
    Ok(Json(record_json(&rec)))
}

/// `POST /v1/endorse`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndorseReq {
    petition: String,
    comment: Option<String>,
    pledge: Option<String>,
}

pub(crate) async fn endorse(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<EndorseReq>,
) -> Result<Json<Created>, ApiError> {
    let petition = id("petition", &r.petition)?;
    let rec = stored(&s, "petition", &petition)?;
    let Body::Petition(p) = &rec.record().body else {
        return Err(bad(
            "not_a_petition",
            format!("{petition} is a {}", rec.record().kind()),
        ));
    };
    if p.deadline.is_some_and(|d| d < now_ms()) {
        return Err(bad("closed", "the petition's deadline has passed"));
    }
    let pledge = r
        .pledge
        .as_deref()
        .map(|a| amount("pledge", a))
        .transpose()?;
    let topic = rec.record().topic;
    create_on(
        &s,
        Body::Endorsement(Endorsement {
            petition,
            comment: r.comment,
            pledge,
        }),
        Some(topic),
    )
    .await
}

/// `POST /v1/retract`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetractReq {
    id: String,
}

pub(crate) async fn retract(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<RetractReq>,
) -> Result<Json<Created>, ApiError> {
    let target = id("id", &r.id)?;
    let rec = stored(&s, "record", &target)?;
    // Given a petition I endorse, my endorsement goes first (even on my own petition: the
    // least drastic reading); a record of mine is retracted itself.
    let endorsed = match rec.record().kind() {
        Kind::Petition => match s.store.endorsement_of(&target, &s.author)? {
            Some((e, true)) => Some(e),
            _ => None,
        },
        _ => None,
    };
    let target = if let Some(e) = endorsed {
        e
    } else if rec.author() == s.author {
        if rec.record().kind() == Kind::Retraction {
            return Err(bad("not_retractable", "a retraction cannot be retracted"));
        }
        target
    } else if rec.record().kind() == Kind::Petition {
        return Err(bad(
            "not_endorsed",
            format!("you do not endorse petition {target}"),
        ));
    } else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "not_yours",
            format!("{target} is not your record; only its author retracts it"),
        ));
    };
    let topic = rec.record().topic;
    create_on(&s, Body::Retraction(Retraction { target }), Some(topic)).await
}

/// `POST /v1/attest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestReq {
    /// `valid`, `invalid`, `verified-count` (about `record`) or `one-actor` (about `keys`).
    verdict: String,
    record: Option<String>,
    keys: Option<Vec<String>>,
    note: Option<String>,
}

pub(crate) async fn attest(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<AttestReq>,
) -> Result<Json<Created>, ApiError> {
    use chorus_protocol::{Attestation, Subject, Verdict};
    let verdict: Verdict = r.verdict.parse().map_err(|_| {
        bad(
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
                return Err(bad("bad_keys", "one-actor names 1 to 64 keys"));
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
                Some(chorus_protocol::Topic::Meta),
            )
            .await
        }
        (Verdict::OneActor, _, _) => {
            Err(bad("bad_subject", "one-actor is about keys, not a record"))
        }
        (_, Some(rid), None) => {
            let rid = id("record", rid)?;
            let rec = stored(&s, "record", &rid)?;
            let (count, root) = if verdict == Verdict::VerifiedCount {
                let store = s.store.clone();
                let b = tokio::task::spawn_blocking(move || crate::bundle::export(&store, &rid))
                    .await
                    .map_err(|_| crate::Error::NodeStopped)?
                    .map_err(|e| bad("not_a_petition", e.to_string()))?
                    .ok_or_else(|| not_found(format!("no petition {rid}")))?;
                let v = chorus_protocol::bundle::verify(&b).map_err(|e| {
                    err(
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
        _ => Err(bad(
            "bad_subject",
            "give a record (valid, invalid, verified-count) or keys (one-actor)",
        )),
    }
}

/// `POST /v1/respond`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondReq {
    target: String,
    status: String,
    text: String,
    /// The set root (hex) of the endorsements the producer acknowledges (see `chorus proof`).
    root: Option<String>,
}

pub(crate) async fn respond(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<RespondReq>,
) -> Result<Json<Created>, ApiError> {
    let target = id("target", &r.target)?;
    let status: ResponseStatus = r.status.parse().map_err(|_| {
        bad(
            "bad_status",
            format!(
                "status {:?}: expected acknowledged, in-progress, accepted, declined or done",
                r.status
            ),
        )
    })?;
    let rec = stored(&s, "petition or review", &target)?;
    let producer = match &rec.record().body {
        Body::Petition(p) => p.producer,
        Body::Review(rv) => rv.product.producer,
        _ => {
            return Err(bad(
                "not_answerable",
                format!(
                    "{target} is a {}: producers answer petitions and reviews",
                    rec.record().kind()
                ),
            ))
        }
    };
    if producer != s.author {
        return Err(err(
            StatusCode::FORBIDDEN,
            "not_producer",
            format!(
                "only the targeted producer ({producer}) answers {target}; your key is {}",
                s.author
            ),
        ));
    }
    let root = match &r.root {
        None => None,
        Some(h) => Some(*id("root", h)?.as_bytes()),
    };
    create(
        &s,
        Body::Response(Response {
            target,
            status,
            text: r.text,
            root,
        }),
    )
    .await
}

pub(crate) async fn peers(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let net = s.client.status().await?;
    Ok(Json(json!({ "peers": net.peers, "banned": net.banned })))
}

pub(crate) fn follow_json(f: &crate::Follow) -> Value {
    serde_json::to_value(f.to_config()).unwrap_or_default()
}

pub(crate) async fn following(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(follow_json(&s.following.snapshot())))
}

/// Body of `POST /v1/follow` and `/v1/unfollow`: exactly one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowReq {
    producer: Option<String>,
    group: Option<String>,
    /// `PRODUCERKEY/CODE`.
    product: Option<String>,
    #[serde(default)]
    all: bool,
}

fn follow_change(r: &FollowReq) -> Result<FollowChange, ApiError> {
    let given = usize::from(r.producer.is_some())
        + usize::from(r.group.is_some())
        + usize::from(r.product.is_some())
        + usize::from(r.all);
    if given != 1 {
        return Err(bad(
            "bad_follow",
            "give exactly one of producer, group, product or all",
        ));
    }
    Ok(if let Some(p) = &r.producer {
        FollowChange::Producer(key("producer", p)?)
    } else if let Some(g) = &r.group {
        FollowChange::Group(id("group", g)?)
    } else if let Some(p) = &r.product {
        let (k, c) = parse_product(p).map_err(|e| bad("bad_product", e.to_string()))?;
        FollowChange::Product(k, c)
    } else {
        FollowChange::All
    })
}

async fn set_follow(s: &ApiState, r: FollowReq, add: bool) -> Result<Json<Value>, ApiError> {
    let change = follow_change(&r)?;
    let now = s.following.change(change, add).await?;
    Ok(Json(follow_json(&now)))
}

pub(crate) async fn follow(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<FollowReq>,
) -> Result<Json<Value>, ApiError> {
    set_follow(&s, r, true).await
}

pub(crate) async fn unfollow(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<FollowReq>,
) -> Result<Json<Value>, ApiError> {
    set_follow(&s, r, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_as_dates_and_times() {
        let day = parse_deadline("2026-12-31").unwrap();
        let exact = parse_deadline("2026-12-31T23:59:59.999Z").unwrap();
        assert_eq!(day, exact);
        assert_eq!(parse_deadline("1767225599999").unwrap(), 1_767_225_599_999);
        assert!(parse_deadline("next tuesday").is_err());
        assert!(parse_deadline("2026-13-40").is_err());
    }
}
