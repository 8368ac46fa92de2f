//! Browsing the directory this node holds (`/browse`): petitions that are popular, new or
//! closing soon, producers, and groups, a page at a time.
//!
//! Ranking the petitions reads every petition's tally (and, for the newest, its record), and
//! the producers' list every profile: seconds on an archive of a million records. So the
//! lists are kept in memory ([`Lists`]: each petition list's first [`RANKED`], the
//! directory's pages) and computed again in the background once [`FRESH`] old, while the
//! page is served from the last: a list and its counts are at most that old (the petitions
//! the user takes part in move live, through the page's event stream).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chorus_client::DirectoryQuery;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::{html, lang, pages, LoggedIn};
use crate::api::{ApiError, Q};

/// Items per page.
const PAGE: usize = 50;
/// Petitions ranked and kept per list: the pages go no further.
const RANKED: usize = 1_000;
/// How long a ranking is served before it is redone in the background.
const FRESH: Duration = Duration::from_secs(30);

/// What a list holds: petitions ranked, or a page of the directory.
#[derive(Clone)]
enum Kept {
    Petitions(Arc<Vec<Row>>),
    Directory(Arc<chorus_client::Directory>),
}

/// At most this many lists (a list and an offset) are kept; the oldest goes first.
const KEPT_MAX: usize = 64;

/// The lists last computed, by list and offset (`popular`, `new` and `closing` at 0: their
/// first [`RANKED`]; `producers` and `groups` by page).
#[derive(Default)]
pub(crate) struct Lists {
    kept: Mutex<HashMap<(&'static str, usize), Entry>>,
}

struct Entry {
    at: Instant,
    list: Kept,
    /// Computed again in the background now.
    refreshing: bool,
}

/// Computes a list now.
async fn compute(s: WebState, list: &'static str, offset: usize) -> Result<Kept, ApiError> {
    match list {
        "producers" | "groups" => {
            let q = DirectoryQuery {
                limit: Some(PAGE),
                offset: Some(offset),
            };
            let axum::Json(d) = if list == "producers" {
                crate::api::producers(State(s.api), Q(q)).await?
            } else {
                crate::api::groups(State(s.api), Q(q)).await?
            };
            Ok(Kept::Directory(Arc::new(d)))
        }
        _ => {
            let store = s.store.clone();
            let directory = s.directory.clone();
            let rows = tokio::task::spawn_blocking(move || rank(&store, &directory, list))
                .await
                .map_err(|_| crate::error::Error::NodeStopped)??;
            Ok(Kept::Petitions(Arc::new(rows)))
        }
    }
}

/// A list: as last computed (again in the background when older than [`FRESH`]), or
/// computed now the first time.
async fn kept(s: &WebState, list: &'static str, offset: usize) -> Result<Kept, ApiError> {
    let key = (list, offset);
    let held = {
        let mut map = s.web.lists.kept.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&key) {
            Some(e) => {
                if e.at.elapsed() > FRESH && !e.refreshing {
                    e.refreshing = true;
                    let s = s.clone();
                    tokio::spawn(async move {
                        let fresh = compute(s.clone(), list, offset).await;
                        let mut map = s.web.lists.kept.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(e) = map.get_mut(&key) {
                            e.refreshing = false;
                            if let Ok(l) = fresh {
                                e.at = Instant::now();
                                e.list = l;
                            }
                        }
                    });
                }
                Some(e.list.clone())
            }
            None => None,
        }
    };
    if let Some(l) = held {
        return Ok(l);
    }
    let l = compute(s.clone(), list, offset).await?;
    let mut map = s.web.lists.kept.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= KEPT_MAX {
        if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(
        key,
        Entry {
            at: Instant::now(),
            list: l.clone(),
            refreshing: false,
        },
    );
    Ok(l)
}

/// A petition as a list shows it.
pub(crate) struct Row {
    id: String,
    title: Option<String>,
    /// `demand`, `proposal` or `campaign`.
    variant: Option<String>,
    producer: String,
    producer_name: Option<String>,
    endorsers: u64,
    threshold: u64,
    reached: bool,
    deadline: Option<u64>,
}

/// The first [`RANKED`] open petitions in the list's order, read off the async threads
/// (every petition's tally; for `new`, every open petition's record too).
fn rank(
    store: &crate::store::Store,
    directory: &crate::directory::Directory,
    list: &str,
) -> crate::error::Result<Vec<Row>> {
    let now = crate::clock::now_ms();
    let mut open: Vec<(chorus_protocol::RecordId, crate::store::PetitionTally)> = store
        .petitions()?
        .into_iter()
        .filter(|(_, t)| t.state(now) == crate::store::PetitionState::Open)
        .collect();
    match list {
        "new" => {
            let mut at = HashMap::with_capacity(open.len());
            for (id, _) in &open {
                let created = store.record(id)?.map(|r| r.record().created_at);
                at.insert(*id, created.unwrap_or(0));
            }
            open.sort_by_key(|(id, _)| std::cmp::Reverse(at.get(id).copied().unwrap_or(0)));
        }
        "closing" => open.sort_by_key(|(_, t)| t.deadline.unwrap_or(u64::MAX)),
        _ => open.sort_by_key(|(_, t)| std::cmp::Reverse(t.endorsers)),
    }
    open.truncate(RANKED);
    let mut rows = Vec::with_capacity(open.len());
    for (id, t) in open {
        let (title, variant) = match store.record(&id)?.map(|r| r.record().body.clone()) {
            Some(chorus_protocol::Body::Petition(p)) => (
                Some(p.title),
                Some(
                    match p.variant {
                        chorus_protocol::PetitionVariant::Demand => "demand",
                        chorus_protocol::PetitionVariant::Proposal => "proposal",
                        chorus_protocol::PetitionVariant::Campaign { .. } => "campaign",
                    }
                    .to_string(),
                ),
            ),
            _ => (None, None),
        };
        rows.push(Row {
            id: id.to_string(),
            title,
            variant,
            producer: t.producer.to_string(),
            producer_name: directory.name_of(&t.producer),
            endorsers: t.endorsers,
            threshold: t.threshold,
            reached: t.reached,
            deadline: t.deadline,
        });
    }
    Ok(rows)
}

/// The list's ranked petitions (its first [`RANKED`]).
async fn ranked(s: &WebState, list: &'static str) -> Result<Arc<Vec<Row>>, ApiError> {
    match kept(s, list, 0).await? {
        Kept::Petitions(p) => Ok(p),
        Kept::Directory(_) => Ok(Arc::default()),
    }
}

#[derive(Deserialize)]
pub(super) struct Browse {
    #[serde(default)]
    list: Option<String>,
    /// Text, read leniently: a page number that is not one shows the first page.
    #[serde(default)]
    offset: Option<String>,
}

/// `GET /browse?list=popular|new|closing|producers|groups&offset=N`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(b): Query<Browse>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let list = b.list.as_deref().unwrap_or("popular");
    let offset = super::number_in(b.offset.as_deref(), 0, 1_000_000);
    let tabs: [(&str, &str); 5] = [
        ("popular", t.popular),
        ("new", t.newest),
        ("closing", t.closing_soon),
        ("producers", t.producers),
        ("groups", t.groups),
    ];
    let now = crate::clock::now_ms();
    let content = match list {
        "popular" | "new" | "closing" => {
            let key: &'static str = match list {
                "new" => "new",
                "closing" => "closing",
                _ => "popular",
            };
            // Only the first RANKED are ranked: pages stop there.
            let offset = offset.min(RANKED.saturating_sub(PAGE));
            let petitions = ranked(&s, key).await?;
            let p = PetitionsView {
                petitions: &petitions,
            };
            let more = p.petitions.len() > offset + PAGE;
            html! {
                @if p.petitions.len() <= offset {
                    p { (t.none_yet) }
                } @else {
                    ul.items #browse-list {
                        @for tl in p.petitions.iter().skip(offset).take(PAGE) {
                            li data-petition=(tl.id) {
                                @if let Some(v) = tl.variant.as_deref().filter(|v| *v != "demand") {
                                    span.count { (t.kind(v)) } " "
                                }
                                a href={"/petitions/" (tl.id)} {
                                    (tl.title.clone().unwrap_or_else(|| tl.id[..12].to_string()))
                                }
                                " · " (tl.producer_name.clone().unwrap_or_else(|| tl.producer[..12].to_string()))
                                " "
                                span.count.reached[tl.reached] {
                                    span.live-count { (tl.endorsers) } "/" (tl.threshold) " " (t.endorsers)
                                    @if let Some(d) = tl.deadline.filter(|d| *d > now) {
                                        " · " (t.ends_in) " " (d.saturating_sub(now).div_ceil(86_400_000)) " " (t.days)
                                    }
                                }
                                br;
                                progress value=(tl.endorsers.min(tl.threshold)) max=(tl.threshold.max(1)) {
                                    (tl.endorsers) " / " (tl.threshold)
                                }
                            }
                        }
                    }
                }
                (pager(t, list, offset, more))
            }
        }
        "producers" | "groups" => {
            let key: &'static str = if list == "producers" {
                "producers"
            } else {
                "groups"
            };
            let d = match kept(&s, key, offset).await? {
                Kept::Directory(d) => d,
                Kept::Petitions(_) => Arc::default(),
            };
            let more = d.total > offset + PAGE;
            html! {
                @if d.results.is_empty() {
                    p { (t.none_yet) }
                } @else {
                    ul.items #browse-list {
                        @for f in &d.results {
                            li {
                                @if list == "groups" {
                                    a href={"/groups/" (f.id)} { (f.name) }
                                } @else {
                                    strong { (f.name) }
                                }
                                " " code { (&f.id[..12.min(f.id.len())]) }
                                @if let (Some(n), Some(what)) = (f.count, &f.counts) {
                                    " · " span.count { (n) " " (t.counted(what, n)) }
                                }
                            }
                        }
                    }
                }
                @if d.partial { p.count { (t.partial_producers) } }
                (pager(t, list, offset, more))
            }
        }
        _ => return Ok(super::not_found(headers).await),
    };
    let status = crate::api::status_of(&s).await?;
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let body = html! {
        h1 { (t.nav_browse) }
        nav.tabs aria-label=(t.nav_browse) {
            @for (key, words) in tabs {
                @if key == list {
                    a href={"/browse?list=" (key)} aria-current="page" { (words) }
                } @else {
                    a href={"/browse?list=" (key)} { (words) }
                }
            }
        }
        (content)
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, t.nav_browse, Some(&header), body),
    ))
}

/// The ranked petitions a page shows.
struct PetitionsView<'a> {
    petitions: &'a [Row],
}

fn pager(t: &super::Strings, list: &str, offset: usize, more: bool) -> maud::Markup {
    html! {
        nav.pager aria-label=(t.pages) {
            @if offset > 0 {
                a href={"/browse?list=" (list) "&offset=" (offset.saturating_sub(PAGE))} { "← " (t.previous) }
                " "
            }
            @if more {
                a href={"/browse?list=" (list) "&offset=" (offset + PAGE)} { (t.next) " →" }
            }
        }
    }
}
