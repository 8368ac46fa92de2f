//! Endpoints that read what the store knows: a product's reviews and rating, a group,
//! petitions and their tallies, any record.

use axum::extract::{Path, State};
use axum::Json;
use chorus_client::{
    CountedReview, GroupInfo, GroupRequests, JoinRequest, Person, Petitions, PetitionsQuery,
    ProductQuery, Rating, Reviews, Tally,
};
use chorus_protocol::{Body, Kind, Topic};
use serde_json::Value;

use super::error::{ApiError, Q};
use super::fetch::stored_or_fetched;
use super::parse::{author_named, cursor, group_record, parse_cursor, record_id, record_named};
use super::state::ApiState;
use super::views::{latest_response, record_json, tally_with_trust};
use crate::clock::now_ms;
use crate::roster;
use chorus_protocol::sync::wire::kinds;

/// `GET /v1/reviews`: the product's reviews, oldest first, each with whether it counts (its
/// author's latest, not retracted).
pub(crate) async fn reviews(
    State(s): State<ApiState>,
    Q(q): Q<ProductQuery>,
) -> Result<Json<Reviews>, ApiError> {
    let producer = author_named(&s, "producer", &q.producer).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = s.store.by_product(
        &producer,
        &q.product,
        parse_cursor(q.after.as_deref())?,
        limit,
    )?;
    let mut reviews = Vec::new();
    for rec in &page.records {
        if rec.record().kind() != Kind::Review {
            continue;
        }
        let counted =
            s.store.review_of(&producer, &q.product, &rec.author())? == Some((rec.id(), true));
        reviews.push(CountedReview {
            counted,
            response: latest_response(&s, &rec.id(), &producer)?,
            record: record_json(&s.store, rec),
        });
    }
    Ok(Json(Reviews {
        reviews,
        partial: !s.following.follows(&Topic::Producer(producer)),
        next: cursor(page.next),
    }))
}

/// `GET /v1/rating`.
pub(crate) async fn rating(
    State(s): State<ApiState>,
    Q(q): Q<ProductQuery>,
) -> Result<Json<Rating>, ApiError> {
    let producer = author_named(&s, "producer", &q.producer).await?;
    let r = s.store.rating(&producer, &q.product)?;
    Ok(Json(Rating {
        producer: producer.to_string(),
        product: q.product,
        count: r.count,
        mean: r.mean(),
        histogram: r.histogram,
        partial: !s.following.follows(&Topic::Producer(producer)),
    }))
}

/// `GET /v1/groups/{id}`.
pub(crate) async fn group_show(
    State(s): State<ApiState>,
    Path(g): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    let (gid, rec) = group_record(&s, &g)?;
    let t = s.store.group(&gid)?;
    let Body::Group(body) = &rec.record().body else {
        return Err(ApiError::bad(
            "not_a_group",
            format!("{gid} is not a group"),
        ));
    };
    let r = roster::of(&s.store, &gid)?.unwrap_or_default();
    let mut member_list = Vec::new();
    for k in &r.members {
        member_list.push(Person {
            key: k.to_string(),
            name: roster::name(&s.store, k)?,
        });
    }
    Ok(Json(GroupInfo {
        id: gid.to_string(),
        name: body.name.clone(),
        charter: body.charter.clone(),
        admission: body.admission.as_str().to_string(),
        founder: rec.author().to_string(),
        founder_name: s.store.name_of(&rec.author())?,
        members: t.as_ref().map(|t| t.members).unwrap_or(1),
        member: crate::tally::is_member(&s.store, &gid, &s.author)?,
        status: r.status(&s.author).as_str().to_string(),
        member_list,
        pending: r.pending.len() as u64,
        partial: !s.following.follows(&Topic::Group(gid)),
    }))
}

/// `GET /v1/groups/{id}/requests`.
pub(crate) async fn group_requests(
    State(s): State<ApiState>,
    Path(g): Path<String>,
) -> Result<Json<GroupRequests>, ApiError> {
    let (gid, _) = group_record(&s, &g)?;
    let r = roster::of(&s.store, &gid)?
        .ok_or_else(|| ApiError::bad("not_a_group", format!("{gid} is not a group")))?;
    let mut requests = Vec::new();
    for p in &r.pending {
        requests.push(JoinRequest {
            key: p.key.to_string(),
            name: roster::name(&s.store, &p.key)?,
            join: p.join.to_string(),
            created_at: p.at,
        });
    }
    Ok(Json(GroupRequests {
        group: gid.to_string(),
        partial: !s.following.follows(&Topic::Group(gid)),
        requests,
    }))
}

/// `GET /v1/petitions`.
pub(crate) async fn petitions(
    State(s): State<ApiState>,
    Q(q): Q<PetitionsQuery>,
) -> Result<Json<Petitions>, ApiError> {
    let producer = match q.producer.as_deref() {
        Some(p) => Some(author_named(&s, "producer", p).await?),
        None => None,
    };
    let group = q
        .group
        .as_deref()
        .map(|g| record_id(&s, "group", g))
        .transpose()?;
    let sort = match q.sort.as_deref() {
        None | Some("id") => Sort::Id,
        Some("endorsers") => Sort::Endorsers,
        Some("newest") => Sort::Newest,
        Some("closing") => Sort::Closing,
        Some(other) => {
            return Err(ApiError::bad(
                "bad_sort",
                format!("sort {other:?}: expected endorsers, newest or closing"),
            ))
        }
    };
    let now = now_ms();
    let mut chosen = Vec::new();
    for (pid, t) in s.store.petitions()? {
        if producer.is_some_and(|p| p != t.producer)
            || group.is_some_and(|g| Some(g) != t.group)
            || (q.open && t.state(now) != crate::store::PetitionState::Open)
        {
            continue;
        }
        chosen.push((pid, t));
    }
    match sort {
        Sort::Id => {}
        Sort::Endorsers => chosen.sort_by_key(|(_, t)| std::cmp::Reverse(t.endorsers)),
        // Closing soon: the nearest deadline still ahead first; past and no deadline last.
        Sort::Closing => chosen.sort_by_key(|(_, t)| match t.deadline {
            Some(d) if d > now => (0, d),
            Some(d) => (1, u64::MAX - d),
            None => (2, 0),
        }),
        Sort::Newest => {
            let mut at = std::collections::HashMap::new();
            for (pid, _) in &chosen {
                let created = s.store.record(pid)?.map(|r| r.record().created_at);
                at.insert(*pid, created.unwrap_or(0));
            }
            chosen.sort_by_key(|(pid, _)| std::cmp::Reverse(at.get(pid).copied().unwrap_or(0)));
        }
    }
    let mut petitions = Vec::new();
    for (pid, t) in chosen.into_iter().take(q.limit.unwrap_or(usize::MAX)) {
        let rec = s.store.record(&pid)?;
        petitions.push(tally_with_trust(&s, &pid, rec.as_ref(), &t)?);
    }
    let partial = producer.is_some_and(|p| !s.following.follows(&Topic::Producer(p)));
    Ok(Json(Petitions { petitions, partial }))
}

/// The orders of `GET /v1/petitions`.
enum Sort {
    Id,
    Endorsers,
    Newest,
    Closing,
}

/// `GET /v1/tally/{id}`.
pub(crate) async fn tally(
    State(s): State<ApiState>,
    Path(p): Path<String>,
) -> Result<Json<Tally>, ApiError> {
    let pid = record_named(&s, "petition", &p, kinds::PETITION).await?;
    if s.store.tally(&pid)?.is_none() {
        stored_or_fetched(&s, "petition", &pid).await?;
    }
    let t = s
        .store
        .tally(&pid)?
        .ok_or_else(|| ApiError::not_found(format!("no petition {pid} in this node's store")))?;
    let rec = s.store.record(&pid)?;
    Ok(Json(tally_with_trust(&s, &pid, rec.as_ref(), &t)?))
}

/// `GET /v1/records/{id}`.
pub(crate) async fn show(
    State(s): State<ApiState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rid = record_named(&s, "record", &r, kinds::ALL).await?;
    let rec = stored_or_fetched(&s, "record", &rid).await?;
    Ok(Json(record_json(&s.store, &rec)))
}
