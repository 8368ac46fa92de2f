//! The group page (`/groups/{id}`): its name, charter, founder and members; a form to join
//! (or ask to, in an approval group); for the founder, the pending requests, each with a
//! form to admit.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::AdmitRequest;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn};
use crate::api::ApiError;

fn short(k: &str) -> &str {
    &k[..12.min(k.len())]
}

/// `GET /groups/{id}`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let Ok(axum::Json(g)) = crate::api::group_show(State(s.api.clone()), Path(id.clone())).await
    else {
        return Ok(super::not_found(headers).await);
    };
    let requests = if g.status == "founder" {
        crate::api::group_requests(State(s.api.clone()), Path(g.id.clone()))
            .await
            .map(|r| r.0.requests)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let status = crate::api::status_of(&s).await?;
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let csrf = &me.session.csrf;
    let gid = &g.id;
    let body = html! {
        h1 { (g.name) }
        @if let Some(c) = &g.charter { p { (c) } }
        p.meta {
            (t.founded_by) " "
            strong { (g.founder_name.clone().unwrap_or_else(|| short(&g.founder).to_string())) }
            " · " (g.members) " " (t.members)
            " · " @if g.admission == "approval" { (t.approval) } @else { (t.open_group) }
        }
        section aria-labelledby="you" {
            h2 #you { (t.you_here) }
            @match g.status.as_str() {
                "founder" => p { (t.you_founder) },
                "member" => p { (t.you_member) },
                "pending" => p { (t.you_pending) },
                _ => form method="post" action={"/groups/" (gid) "/join"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" {
                        @if g.admission == "approval" { (t.ask_to_join) } @else { (t.join) }
                    }
                },
            }
        }
        @if !requests.is_empty() {
            section aria-labelledby="pending" {
                h2 #pending { (t.pending_requests) }
                ul.items {
                    @for r in &requests {
                        li {
                            (r.name.clone().unwrap_or_else(|| short(&r.key).to_string()))
                            " " code { (short(&r.key)) } " "
                            form method="post" action={"/groups/" (gid) "/admit"} {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="member" value=(r.key);
                                button type="submit" { (t.admit) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="members" {
            h2 #members { (t.members_title) }
            ul.items {
                @for m in &g.member_list {
                    li {
                        (m.name.clone().unwrap_or_else(|| short(&m.key).to_string()))
                        " " code { (short(&m.key)) }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, &g.name, Some(&header), body),
    ))
}

#[derive(Deserialize)]
pub(super) struct JoinForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /groups/{id}/join`.
pub(super) async fn join(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Form(f): Form<JoinForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let done = crate::api::group_join(State(s.api), Path(id.clone())).await;
    after(t, &id, done.map(|_| ()))
}

#[derive(Deserialize)]
pub(super) struct AdmitForm {
    #[serde(default)]
    csrf: String,
    member: String,
}

/// `POST /groups/{id}/admit` (the founder).
pub(super) async fn admit(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Form(f): Form<AdmitForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let req = AdmitRequest { member: f.member };
    let done =
        crate::api::group_admit(State(s.api), Path(id.clone()), crate::api::JsonBody(req)).await;
    after(t, &id, done.map(|_| ()))
}

fn after(t: &super::Strings, id: &str, done: Result<(), ApiError>) -> Response {
    match done {
        Ok(()) => Redirect::to(&format!("/groups/{id}")).into_response(),
        Err(e) => super::failed(t, &e, &format!("/groups/{id}")),
    }
}
