//! Finding and browsing: `GET /v1/search` (the store and the connected peers, through
//! [`crate::directory`]), and the directory this node holds: `GET /v1/producers`,
//! `GET /v1/groups`, `GET /v1/products`.

use axum::extract::State;
use axum::Json;
use chorus_client::{Directory, DirectoryQuery, Found, ProductsQuery, SearchQuery, SearchResults};
use chorus_protocol::sync::wire::{kinds, HitKind, MAX_HITS, MAX_QUERY};
use chorus_protocol::{fold, Body, PetitionVariant, Role, SignedRecord, Topic};

use super::error::{ApiError, Q};
use super::parse::author_named;
use super::state::ApiState;
use crate::directory::Hit;
use crate::store::{product_of, MIN_PREFIX};

/// Results of a search, unless asked otherwise.
const DEFAULT_RESULTS: usize = 20;
/// A directory page, unless asked otherwise; and at most.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

/// The kinds a search asks for, and the roles of the profiles wanted (empty: every role).
fn wanted(kind: Option<&str>) -> Result<(u8, Vec<Role>), ApiError> {
    let Some(list) = kind else {
        return Ok((kinds::ALL, Vec::new()));
    };
    let mut bits = 0;
    let mut roles = Vec::new();
    let mut any_profile = false;
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        bits |= match k {
            "profile" => {
                any_profile = true;
                kinds::PROFILE
            }
            "producer" => {
                roles.push(Role::Producer);
                kinds::PROFILE
            }
            "consumer" => {
                roles.push(Role::Consumer);
                kinds::PROFILE
            }
            "watchdog" => {
                roles.push(Role::Watchdog);
                kinds::PROFILE
            }
            "group" => kinds::GROUP,
            "petition" => kinds::PETITION,
            "product" => kinds::PRODUCT,
            other => {
                return Err(ApiError::bad(
                    "bad_kind",
                    format!(
                        "kind {other:?}: expected profile, producer, consumer, watchdog, group, \
                         petition or product"
                    ),
                ))
            }
        };
    }
    if bits == 0 {
        return Err(ApiError::bad("bad_kind", "kind: empty"));
    }
    if any_profile {
        roles.clear();
    }
    Ok((bits, roles))
}

/// Is this a query a node can look for: words, or 8+ hex digits?
fn check_query(q: &str) -> Result<(), ApiError> {
    let t = q.trim();
    if t.len() > MAX_QUERY {
        return Err(ApiError::bad(
            "bad_query",
            format!("q: at most {MAX_QUERY} bytes"),
        ));
    }
    let hex = t.len() >= MIN_PREFIX && t.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex && fold::words(t).is_empty() {
        return Err(ApiError::bad(
            "bad_query",
            "q: give a word of a name, title or product code (or 8+ hex digits of an id)",
        ));
    }
    Ok(())
}

/// A found thing as the API shows it.
pub(crate) fn found(
    s: &ApiState,
    kind: HitKind,
    rec: &SignedRecord,
    count: u64,
    here: bool,
) -> Found {
    let r = rec.record();
    let name_of = |k| s.directory.name_of(k);
    let mut f = Found {
        here,
        record: rec.id().to_string(),
        ..Found::default()
    };
    match (kind, &r.body) {
        (HitKind::Profile, Body::Profile(p)) => {
            f.kind = p.role.as_str().into();
            f.id = r.author.to_string();
            f.name = p.name.clone();
            f.following =
                p.role != Role::Producer || s.following.follows(&Topic::Producer(r.author));
        }
        (HitKind::Group, Body::Group(g)) => {
            f.kind = "group".into();
            f.id = rec.id().to_string();
            f.name = g.name.clone();
            f.count = Some(count);
            f.counts = Some("members".into());
            f.following = s.following.follows(&Topic::Group(rec.id()));
        }
        (HitKind::Petition, Body::Petition(p)) => {
            f.kind = match p.variant {
                PetitionVariant::Demand => "petition",
                PetitionVariant::Proposal => "proposal",
                PetitionVariant::Campaign { .. } => "campaign",
            }
            .into();
            f.id = rec.id().to_string();
            f.name = p.title.clone();
            f.producer = Some(p.producer.to_string());
            f.producer_name = name_of(&p.producer);
            f.count = Some(count);
            f.counts = Some("endorsers".into());
            f.following = s.following.follows(&r.topic);
        }
        _ => {
            if let Some((producer, code)) = product_of(rec) {
                f.kind = "product".into();
                f.id = format!("{producer}/{code}");
                f.name = code;
                f.producer = Some(producer.to_string());
                f.producer_name = name_of(&producer);
                f.count = Some(count);
                f.counts = Some("reviews".into());
                f.following = s.following.follows(&Topic::Producer(producer));
            }
        }
    }
    f
}

/// `GET /v1/search`.
pub(crate) async fn search(
    State(s): State<ApiState>,
    Q(q): Q<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    check_query(&q.q)?;
    let (bits, roles) = wanted(q.kind.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_RESULTS).clamp(1, MAX_HITS);
    // Profiles of some roles only: ask for as many as may be, keep `limit` of those.
    let asked = if roles.is_empty() { limit } else { MAX_HITS };
    let searched = s
        .directory
        .search(q.q.trim(), bits, asked, !q.local)
        .await?;
    let results = searched
        .hits
        .iter()
        .filter(
            |Hit { kind, record, .. }| match (&record.record().body, *kind) {
                (Body::Profile(p), HitKind::Profile) => roles.is_empty() || roles.contains(&p.role),
                _ => true,
            },
        )
        .take(limit)
        .map(|h| found(&s, h.kind, &h.record, h.count, h.here))
        .collect();
    Ok(Json(SearchResults {
        query: q.q,
        results,
        peers_asked: searched.asked,
        peers_answered: searched.answered,
        peers_complete: searched.complete,
        dropped: searched.dropped,
    }))
}

/// `GET /v1/people/{key}`: whom a key, a unique 8+ digit prefix of one, or a profile's name
/// stands for.
pub(crate) async fn person(
    State(s): State<ApiState>,
    axum::extract::Path(text): axum::extract::Path<String>,
) -> Result<Json<chorus_client::Person>, ApiError> {
    let key = author_named(&s, "key", &text).await?;
    Ok(Json(chorus_client::Person {
        key: key.to_string(),
        name: s.directory.name_of(&key),
    }))
}

/// One page of `all`.
fn page(q: &DirectoryQuery, all: Vec<Found>) -> Directory {
    let total = all.len();
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let results = all
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Directory {
        results,
        total,
        partial: false,
    }
}

/// `GET /v1/producers`: the producers whose profiles this node holds, by name (case and
/// accents ignored); `partial` unless the node keeps every profile.
pub(crate) async fn producers(
    State(s): State<ApiState>,
    Q(q): Q<DirectoryQuery>,
) -> Result<Json<Directory>, ApiError> {
    let store = s.store.clone();
    let profiles = tokio::task::spawn_blocking(move || store.profiles())
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??;
    let mut all: Vec<Found> = profiles
        .iter()
        .filter(|p| matches!(&p.record().body, Body::Profile(b) if b.role == Role::Producer))
        .map(|p| found(&s, HitKind::Profile, p, 0, true))
        .collect();
    all.sort_by_cached_key(|f| (fold::fold(&f.name), f.id.clone()));
    let mut d = page(&q, all);
    // Only a node that follows everything keeps every profile (`Following::keeps`).
    d.partial = !s.following.follows_all();
    Ok(Json(d))
}

/// `GET /v1/groups`: the groups this node holds, the most members first.
pub(crate) async fn groups(
    State(s): State<ApiState>,
    Q(q): Q<DirectoryQuery>,
) -> Result<Json<Directory>, ApiError> {
    let store = s.store.clone();
    let groups = tokio::task::spawn_blocking(move || store.groups())
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??;
    let mut all = Vec::new();
    for g in &groups {
        let members = s.store.group(&g.id())?.map(|t| t.members).unwrap_or(1);
        all.push(found(&s, HitKind::Group, g, members, true));
    }
    all.sort_by_cached_key(|f| (std::cmp::Reverse(f.count), fold::fold(&f.name)));
    Ok(Json(page(&q, all)))
}

/// `GET /v1/products`: a producer's products named by the reviews and petitions this node
/// holds, by code; `partial` when the node does not follow the producer.
pub(crate) async fn products(
    State(s): State<ApiState>,
    Q(q): Q<ProductsQuery>,
) -> Result<Json<Directory>, ApiError> {
    let producer = author_named(&s, "producer", &q.producer).await?;
    let store = s.store.clone();
    let products = tokio::task::spawn_blocking(move || store.products_of(&producer))
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??;
    let mut all = Vec::new();
    for (code, rec) in products {
        let reviews = s.store.rating(&producer, &code)?.count;
        all.push(found(&s, HitKind::Product, &rec, reviews, true));
    }
    all.sort_by_cached_key(|f| fold::fold(&f.name));
    let page_query = DirectoryQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(Directory {
        partial: !s.following.follows(&Topic::Producer(producer)),
        ..page(&page_query, all)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_from_their_names() {
        assert_eq!(wanted(None).unwrap(), (kinds::ALL, vec![]));
        assert_eq!(
            wanted(Some("petition,product")).unwrap(),
            (kinds::PETITION | kinds::PRODUCT, vec![])
        );
        assert_eq!(
            wanted(Some("producer")).unwrap(),
            (kinds::PROFILE, vec![Role::Producer])
        );
        assert_eq!(
            wanted(Some("producer,consumer")).unwrap(),
            (kinds::PROFILE, vec![Role::Producer, Role::Consumer])
        );
        assert_eq!(
            wanted(Some("producer,profile")).unwrap(),
            (kinds::PROFILE, vec![])
        );
        assert!(wanted(Some("shop")).is_err());
        assert!(wanted(Some(",")).is_err());
        assert!(check_query("café").is_ok());
        assert!(check_query("6c7a8c97").is_ok());
        assert!(check_query(" -- ").is_err());
        assert!(check_query(&"a".repeat(MAX_QUERY + 1)).is_err());
    }
}
