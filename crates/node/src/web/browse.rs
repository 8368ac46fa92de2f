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
use chorus_client::{DirectoryQuery, PetitionsQuery};
use maud::html;
use serde::Deserialize;

use super::{html, lang, pages, LoggedIn};
use crate::api::{ApiError, ApiState, Q};

/// Items per page.
const PAGE: usize = 50;
/// Petitions ranked and kept per list; pages beyond are ranked when asked.
const RANKED: usize = 1_000;
/// How long a ranking is served before it is redone in the background.
const FRESH: Duration = Duration::from_secs(30);

/// What a list holds: petitions ranked, or a page of the directory.
#[derive(Clone)]
enum Kept {
    Petitions(Arc<Vec<chorus_client::Tally>>),
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
async fn compute(s: ApiState, list: &'static str, offset: usize) -> Result<Kept, ApiError> {
    match list {
        "producers" | "groups" => {
            let q = DirectoryQuery {
                limit: Some(PAGE),
                offset: Some(offset),
            };
            let axum::Json(d) = if list == "producers" {
                crate::api::producers(State(s), Q(q)).await?
            } else {
                crate::api::groups(State(s), Q(q)).await?
            };
            Ok(Kept::Directory(Arc::new(d)))
        }
        _ => {
            let q = PetitionsQuery {
                open: true,
                sort: Some(
                    match list {
                        "new" => "newest",
                        "closing" => "closing",
                        _ => "endorsers",
                    }
                    .into(),
                ),
                limit: Some(offset.max(RANKED)),
                ..PetitionsQuery::default()
            };
            let axum::Json(p) = crate::api::petitions(State(s), Q(q)).await?;
            Ok(Kept::Petitions(Arc::new(p.petitions)))
        }
    }
}

/// A list: as last computed (again in the background when older than [`FRESH`]), or
/// computed now the first time.
async fn kept(s: &ApiState, list: &'static str, offset: usize) -> Result<Kept, ApiError> {
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

/// The list's first `want` petitions.
async fn ranked(
    s: &ApiState,
    list: &'static str,
    want: usize,
) -> Result<Arc<Vec<chorus_client::Tally>>, ApiError> {
    // The first RANKED are kept together; a page beyond is ranked for itself.
    let offset = if want > RANKED { want } else { 0 };
    match kept(s, list, offset).await? {
        Kept::Petitions(p) => Ok(p),
        Kept::Directory(_) => Ok(Arc::default()),
    }
}

#[derive(Deserialize)]
pub(super) struct Browse {
    #[serde(default)]
    list: Option<String>,
    #[serde(default)]
    offset: Option<usize>,
}

/// `GET /browse?list=popular|new|closing|producers|groups&offset=N`.
pub(super) async fn page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(b): Query<Browse>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let list = b.list.as_deref().unwrap_or("popular");
    let offset = b.offset.unwrap_or(0).min(1_000_000);
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
            let petitions = ranked(&s, key, offset + PAGE + 1).await?;
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
                                    " · " span.count { (n) " " (what) }
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
    petitions: &'a [chorus_client::Tally],
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
