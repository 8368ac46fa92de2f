//! Endpoints that act as the node's user: each makes one record (profile, review, group,
//! join, admit, petition, endorsement, retraction, response), signs it, stores and gossips
//! it, and answers what became of it. The kind rules are checked before signing
//! (`chorus_protocol::rules`), so a refused action says why in the rule's code.

use axum::extract::{Path, State};
use axum::Json;
use chorus_client::{
    AdmitRequest, Created, EndorseRequest, GroupRequest, PetitionRequest, ProfileRequest,
    RespondRequest, RetractRequest, ReviewRequest,
};
use chorus_protocol::{
    rules, Admission, Admit, AuthorKey, Body, Endorsement, Group, Join, Kind, Petition,
    PetitionVariant, Pointed, ProductRef, Profile, RecordBuilder, RecordId, Response,
    ResponseStatus, Retraction, Review, Role, Topic,
};

use super::error::{ApiError, JsonBody};
use super::fetch::stored_or_fetched;
use super::follow::follow_what_i_join;
use super::parse::{amount, author_named, group_record, id, record_id, record_named, stored};
use super::state::ApiState;
use super::views::record_json;
use crate::clock::now_ms;
use crate::ingest::{Outcome, Rejection};
use crate::store::PetitionState;
use chorus_protocol::sync::wire::kinds;

/// Creates a record with the node's key and publishes it; records about another record
/// (endorsements, retractions, attestations) go on `topic`, that record's topic.
pub(crate) async fn create_on(
    s: &ApiState,
    body: Body,
    topic: Option<Topic>,
) -> Result<Json<Created>, ApiError> {
    let mut b = RecordBuilder::new(body).created_at(s.clock.next_created_at());
    if let Some(t) = topic {
        b = b.topic(t);
    }
    let rec = b
        .sign(&s.signer)
        .map_err(|e| ApiError::bad(e.code(), e.to_string()))?;
    // What the user takes part in is journaled from now on, so a plain `chorus watch`
    // (`mine=true`) later replays what arrived there meanwhile.
    if rec.record().topic != Topic::Meta {
        s.store.watch_topic(&rec.record().topic)?;
    }
    let outcome = match s.publisher.publish(&rec).await? {
        Outcome::Stored(_) => chorus_client::Outcome::Stored,
        Outcome::Duplicate(_) => chorus_client::Outcome::Duplicate,
        Outcome::Waiting(_) => chorus_client::Outcome::Waiting,
        Outcome::Rejected(Rejection::Invalid(e)) => {
            return Err(ApiError::bad(e.code(), e.to_string()))
        }
        Outcome::Rejected(Rejection::Rule(r)) => return Err(ApiError::rule(r, r.to_string())),
        Outcome::Rejected(Rejection::Internal) => {
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the node gave no verdict",
            ))
        }
        Outcome::Rejected(Rejection::TooManyWaiting) => {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many records wait for their target; try later",
            ))
        }
    };
    // Listed as the user's at once (the ingest's event may come a moment later).
    s.mine.add(rec.id());
    follow_what_i_join(s, &rec.record().topic).await?;
    if rec.record().kind() == Kind::Group {
        // A group record travels on meta; its members' records on the group's own topic.
        follow_what_i_join(s, &Topic::Group(rec.id())).await?;
    }
    Ok(Json(Created {
        id: rec.id().to_string(),
        kind: rec.record().kind().as_str().to_string(),
        outcome,
        record: record_json(&s.store, &rec),
        replaces: None,
    }))
}

async fn create(s: &ApiState, body: Body) -> Result<Json<Created>, ApiError> {
    create_on(s, body, None).await
}

/// `POST /v1/profile`.
pub(crate) async fn profile(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<ProfileRequest>,
) -> Result<Json<Created>, ApiError> {
    let role: Role = r.role.parse().map_err(|_| {
        ApiError::bad(
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
pub(crate) async fn review(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<ReviewRequest>,
) -> Result<Json<Created>, ApiError> {
    if !(1..=5).contains(&r.rating) {
        return Err(ApiError::bad(
            "bad_rating",
            format!("rating {}: must be 1 to 5", r.rating),
        ));
    }
    create(
        &s,
        Body::Review(Review {
            product: ProductRef {
                producer: author_named(&s, "producer", &r.producer).await?,
                code: r.product,
            },
            rating: r.rating,
            title: r.title,
            text: r.text,
        }),
    )
    .await
}

/// `POST /v1/groups`.
pub(crate) async fn group_create(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<GroupRequest>,
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

/// `POST /v1/groups/{id}/join`.
pub(crate) async fn group_join(
    State(s): State<ApiState>,
    Path(g): Path<String>,
) -> Result<Json<Created>, ApiError> {
    let group = record_id(&s, "group", &g)?;
    let rec = stored(&s, "group", &group)?;
    rules::join(&Pointed::of(rec.record()))
        .map_err(|e| ApiError::rule(e, format!("{group} is a {}", rec.record().kind())))?;
    create(&s, Body::Join(Join { group })).await
}

/// `POST /v1/groups/{id}/admit`.
pub(crate) async fn group_admit(
    State(s): State<ApiState>,
    Path(g): Path<String>,
    JsonBody(r): JsonBody<AdmitRequest>,
) -> Result<Json<Created>, ApiError> {
    let group = record_id(&s, "group", &g)?;
    let rec = stored(&s, "group", &group)?;
    rules::admit(&s.author, &Pointed::of(rec.record())).map_err(|e| {
        let message = match e {
            chorus_protocol::RuleError::AdmitNotFounder => {
                format!("only the group's founder ({}) admits members", rec.author())
            }
            _ => format!("{group} is a {}", rec.record().kind()),
        };
        ApiError::rule(e, message)
    })?;
    let member = member_named(&s, &group, &r.member)?;
    create(&s, Body::Admit(Admit { group, member })).await
}

/// The key an admit names: a key, or the profile name of exactly one key with a pending
/// request to join the group.
fn member_named(s: &ApiState, group: &RecordId, given: &str) -> Result<AuthorKey, ApiError> {
    if let Ok(k) = given.parse::<AuthorKey>() {
        return Ok(k);
    }
    let pending = crate::roster::of(&s.store, group)?
        .map(|r| r.pending)
        .unwrap_or_default();
    // By name (case and accents aside) or by an 8+ digit prefix of the key.
    let given = given.trim();
    let prefix = given.to_ascii_lowercase();
    let by_prefix =
        prefix.len() >= crate::store::MIN_PREFIX && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    let mut matches = Vec::new();
    for p in pending {
        let named = crate::roster::name(&s.store, &p.key)?
            .is_some_and(|n| chorus_protocol::fold::same_name(&n, given));
        if named || (by_prefix && p.key.to_string().starts_with(&prefix)) {
            matches.push(p.key);
        }
    }
    match matches.as_slice() {
        [k] => Ok(*k),
        [] => Err(ApiError::bad(
            "unknown_member",
            format!(
                "member {given:?}: neither an author key nor the profile name of a pending request \
                 to join (chorus group requests {group} lists them)"
            ),
        )),
        many => Err(ApiError::bad(
            "ambiguous_member",
            format!(
                "{} pending requests come from profiles named {given:?}; give the key: {}",
                many.len(),
                many.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `POST /v1/petitions`.
pub(crate) async fn petition_open(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<PetitionRequest>,
) -> Result<Json<Created>, ApiError> {
    let variant = match (r.variant.as_deref().unwrap_or("demand"), &r.goal) {
        ("demand", None) => PetitionVariant::Demand,
        ("proposal", None) => PetitionVariant::Proposal,
        ("campaign", Some(g)) => PetitionVariant::Campaign {
            goal: amount("goal", g)?,
        },
        ("campaign", None) => {
            return Err(ApiError::bad(
                "bad_goal",
                "a campaign needs a goal, like 3000EUR",
            ))
        }
        ("demand" | "proposal", Some(_)) => {
            return Err(ApiError::bad("bad_goal", "only a campaign has a goal"))
        }
        (v, _) => {
            return Err(ApiError::bad(
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
        Some(d) => {
            Some(chorus_client::parse_deadline(d).map_err(|e| ApiError::bad("bad_deadline", e))?)
        }
        None => None,
    };
    if deadline.is_some_and(|d| d <= now_ms()) {
        return Err(ApiError::bad("bad_deadline", "the deadline is in the past"));
    }
    create(
        &s,
        Body::Petition(Petition {
            producer: author_named(&s, "producer", &r.producer).await?,
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

/// `POST /v1/endorse`.
pub(crate) async fn endorse(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<EndorseRequest>,
) -> Result<Json<Created>, ApiError> {
    let petition = record_named(&s, "petition", &r.petition, kinds::PETITION).await?;
    let rec = stored_or_fetched(&s, "petition", &petition).await?;
    // Endorsements travel on their petition's topic.
    let topic = rec.record().topic;
    let pledge = r
        .pledge
        .as_deref()
        .map(|a| amount("pledge", a))
        .transpose()?;
    rules::endorsement(&topic, pledge.as_ref(), &Pointed::of(rec.record())).map_err(|e| {
        let message = match (e, &rec.record().body) {
            (chorus_protocol::RuleError::EndorsementCurrencyMismatch, Body::Petition(p)) => {
                match &p.variant {
                    PetitionVariant::Campaign { goal } => format!(
                        "campaign {petition} collects {}: pledge in {} (its goal is {goal})",
                        goal.currency, goal.currency
                    ),
                    _ => e.to_string(),
                }
            }
            _ => format!("{petition} is a {}", rec.record().kind()),
        };
        ApiError::rule(e, message)
    })?;
    // Endorsements made after a petition closed do not count (PROTOCOL.md §9).
    if let Some(t) = s.store.tally(&petition)? {
        match t.state(now_ms()) {
            PetitionState::Open => {}
            PetitionState::Withdrawn => {
                return Err(ApiError::bad(
                    "closed",
                    format!("petition {petition} was withdrawn by its author: endorsements made now do not count"),
                ))
            }
            PetitionState::Closed => {
                return Err(ApiError::bad(
                    "closed",
                    format!("petition {petition} is past its deadline: endorsements made now do not count"),
                ))
            }
        }
    }
    // One endorsement per person and petition: a new one takes the place of the last.
    let earlier = match s.store.endorsement_of(&petition, &s.author)? {
        Some((e, true)) => Some(e),
        _ => None,
    };
    let mut made = create_on(
        &s,
        Body::Endorsement(Endorsement {
            petition,
            comment: r.comment,
            pledge,
        }),
        Some(topic),
    )
    .await?;
    made.0.replaces = earlier.map(|e| e.to_string());
    Ok(made)
}

/// `POST /v1/retract`.
pub(crate) async fn retract(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<RetractRequest>,
) -> Result<Json<Created>, ApiError> {
    let target = record_id(&s, "id", &r.id)?;
    let rec = stored(&s, "record", &target)?;
    let topic = rec.record().topic;
    // Given a petition I endorse, my endorsement goes first (even on my own petition: the
    // least drastic reading); a record of mine is retracted itself.
    if rec.record().kind() == Kind::Petition {
        if let Some((e, true)) = s.store.endorsement_of(&target, &s.author)? {
            return create_on(&s, Body::Retraction(Retraction { target: e }), Some(topic)).await;
        }
        if rec.author() != s.author {
            return Err(ApiError::bad(
                "not_endorsed",
                format!("you do not endorse petition {target}"),
            ));
        }
    }
    rules::retraction(&s.author, &topic, &Pointed::of(rec.record())).map_err(|e| {
        let message = match e {
            chorus_protocol::RuleError::RetractionNotAuthor => {
                format!("{target} is not your record; only its author retracts it")
            }
            chorus_protocol::RuleError::RetractionOfRetraction => {
                "a retraction cannot be retracted".to_string()
            }
            _ => e.to_string(),
        };
        ApiError::rule(e, message)
    })?;
    create_on(&s, Body::Retraction(Retraction { target }), Some(topic)).await
}

/// `POST /v1/respond`.
pub(crate) async fn respond(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<RespondRequest>,
) -> Result<Json<Created>, ApiError> {
    let target = record_id(&s, "target", &r.target)?;
    let status: ResponseStatus = r.status.parse().map_err(|_| {
        ApiError::bad(
            "bad_status",
            format!(
                "status {:?}: expected acknowledged, in-progress, accepted, declined or done",
                r.status
            ),
        )
    })?;
    let rec = stored(&s, "petition or review", &target)?;
    let facts = Pointed::of(rec.record());
    rules::response(&s.author, &facts).map_err(|e| {
        let message = match facts.producer {
            Some(producer) => format!(
                "only the targeted producer ({producer}) answers {target}; your key is {}",
                s.author
            ),
            None => format!(
                "{target} is a {}: producers answer petitions and reviews",
                rec.record().kind()
            ),
        };
        ApiError::rule(e, message)
    })?;
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
