//! The search page (`/search?q=`): the directory, searched here and on the peers (what
//! `GET /v1/search` answers), each result with its kind, name, short id, the producer it
//! concerns and its count; a petition links to its page.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chorus_client::SearchQuery;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::{html, lang, pages, LoggedIn};
use crate::api::ApiError;

#[derive(Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=WORDS`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(a): Query<Asked>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let status = crate::api::status_of(&s).await?;
    let q = a.q.trim().to_string();
    // An empty or unusable query shows the form alone; the error, in words, otherwise.
    let found = if q.is_empty() {
        None
    } else {
        let query = SearchQuery {
            q: q.clone(),
            kind: None,
            limit: Some(40),
            local: false,
        };
        Some(crate::api::search(State(s.api.clone()), crate::api::Q(query)).await)
    };
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let body = html! {
        h1 { (t.search) }
        form role="search" method="get" action="/search" {
            label for="q2" { (t.search_hint) }
            " "
            input #q2 type="search" name="q" value=(q);
            " "
            button type="submit" { (t.search) }
        }
        @match &found {
            None => {}
            Some(Err(e)) => p role="alert" { (e.message()) },
            Some(Ok(r)) => {
                h2 { (t.results_for) " “" (q) "”" }
                @if r.results.is_empty() {
                    p { (t.no_results) }
                } @else {
                    ul.items #results {
                        @for f in &r.results {
                            li {
                                span.count { (t.kind(&f.kind)) } " "
                                @if matches!(f.kind.as_str(), "petition" | "proposal" | "campaign") {
                                    a href={"/petitions/" (f.id)} { (f.name) }
                                } @else if f.kind == "group" {
                                    a href={"/groups/" (f.id)} { (f.name) }
                                } @else if f.kind == "product" {
                                    a href={"/products/" (f.id)} { (f.name) }
                                } @else {
                                    strong { (f.name) }
                                }
                                " " code { (&f.id[..12.min(f.id.len())]) }
                                @if let Some(p) = &f.producer {
                                    " · " (f.producer_name.clone().unwrap_or_else(|| p[..12.min(p.len())].to_string()))
                                }
                                @if let (Some(n), Some(what)) = (f.count, &f.counts) {
                                    " · " span.count { (n) " " (t.counted(what, n)) }
                                }
                            }
                        }
                    }
                }
                p.count { (r.peers_asked) " " (t.peers_asked) }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, t.search, Some(&header), body),
    ))
}
