//! Browsing the directory this node holds (`/browse`): petitions that are popular, new or
//! closing soon, producers, and groups, a page at a time.

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
                limit: Some(offset + PAGE + 1),
                ..PetitionsQuery::default()
            };
            let axum::Json(p) = crate::api::petitions(State(s.clone()), Q(q)).await?;
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
            let q = DirectoryQuery {
                limit: Some(PAGE),
                offset: Some(offset),
            };
            let axum::Json(d) = if list == "producers" {
                crate::api::producers(State(s.clone()), Q(q)).await?
            } else {
                crate::api::groups(State(s.clone()), Q(q)).await?
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
