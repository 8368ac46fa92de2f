//! The trusted watchdogs (`/trust`): the list (name if this node holds the profile, key,
//! whether the config or the dashboard put it there), a form to trust one more and a button
//! to stop trusting each; what `/v1/trust` and `/v1/untrust` do.
//!
//! A watchdog is named by its whole key only, as the API takes it: a name anyone may
//! choose, or a prefix a key can be ground to, must not pick whom to trust.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::TrustRequest;
use chorus_protocol::AuthorKey;
use maud::html;
use serde::Deserialize;

use super::strings::Strings;
use super::watchdog::{key_markup, watchdog_nav};
use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn};
use crate::api::ApiError;

/// What the add form was given and what was wrong with it, to show beside the field.
struct Rejected<'a> {
    given: &'a str,
    why: String,
}

/// `GET /trust`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
) -> Result<Response, ApiError> {
    show(&s, lang(&headers), &me, None).await
}

async fn show(
    s: &WebState,
    t: &'static Strings,
    me: &LoggedIn,
    rejected: Option<Rejected<'_>>,
) -> Result<Response, ApiError> {
    let status = crate::api::status_of(s).await?;
    let set = s.trust.set();
    let mut rows = Vec::new();
    for w in &set.watchdogs {
        let name = match w.parse::<AuthorKey>() {
            Ok(k) => s.store.name_of(&k)?,
            Err(_) => None,
        };
        rows.push((w, name, set.config.contains(w)));
    }
    let csrf = &me.session.csrf;
    let header = pages::Header {
        status: &status,
        csrf,
    };
    let body = html! {
        h1 { (t.trust_title) }
        (watchdog_nav(t, "/trust"))
        p { (t.trust_intro) }
        @if rows.is_empty() {
            p #no-watchdogs { (t.trust_none) }
        } @else {
            table #watchdogs {
                caption.skip { (t.trust_title) }
                thead { tr {
                    th scope="col" { (t.trust_who) }
                    th scope="col" { (t.trust_from) }
                    th scope="col" { span.skip { (t.trust_remove) } }
                } }
                tbody {
                    @for (key, name, from_config) in &rows {
                        tr data-key=(key) {
                            td { (key_markup(key, name.as_deref())) }
                            td {
                                // The column's header, for narrow screens where the table
                                // reads as a list.
                                span.cell-label { (t.trust_from) " " }
                                @if *from_config { (t.trust_from_config) } @else { (t.trust_from_here) }
                            }
                            td {
                                form.untrust method="post" action="/trust/remove" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="watchdog" value=(key);
                                    button type="submit" aria-label={(t.trust_remove) " " (name.as_deref().unwrap_or(key))} {
                                        (t.trust_remove)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="trust-add-title" {
            h2 #trust-add-title { (t.trust_add_title) }
            form #trust-add method="post" action="/trust/add" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="watchdog" { (t.trust_key_label) }
                    br;
                    @match &rejected {
                        Some(r) => {
                            input #watchdog.key-input type="text" name="watchdog" value=(r.given)
                                autocomplete="off" spellcheck="false" aria-invalid="true"
                                aria-describedby="watchdog-error" required;
                            " "
                            button type="submit" { (t.trust_add) }
                            br;
                            span #watchdog-error.field-error role="alert" { (r.why) }
                        }
                        None => {
                            input #watchdog.key-input type="text" name="watchdog"
                                autocomplete="off" spellcheck="false"
                                aria-describedby="watchdog-hint" required;
                            " "
                            button type="submit" { (t.trust_add) }
                            br;
                            span #watchdog-hint.hint { (t.trust_key_hint) }
                        }
                    }
                }
            }
        }
    };
    let code = if rejected.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(
        code,
        pages::page(t, t.trust_title, Some(&header), body),
    ))
}

#[derive(Deserialize)]
pub(super) struct TrustForm {
    // Missing, it is refused as a wrong one is (403), not as a broken form.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    watchdog: String,
}

/// `POST /trust/add`: trusts a watchdog, as `POST /v1/trust` does; a key that does not
/// parse is shown again with what is wrong beside the field.
pub(super) async fn add(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<TrustForm>,
) -> Response {
    change(s, headers, me, f, true).await
}

/// `POST /trust/remove`: stops trusting a watchdog, as `POST /v1/untrust` does.
pub(super) async fn remove(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<TrustForm>,
) -> Response {
    change(s, headers, me, f, false).await
}

async fn change(
    s: WebState,
    headers: HeaderMap,
    me: LoggedIn,
    f: TrustForm,
    add: bool,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let given = f.watchdog.trim();
    let req = TrustRequest {
        watchdog: given.to_string(),
    };
    let done = if add {
        crate::api::trust_add(State(s.api.clone()), crate::api::JsonBody(req)).await
    } else {
        crate::api::trust_remove(State(s.api.clone()), crate::api::JsonBody(req)).await
    };
    match done {
        Ok(_) => Redirect::to("/trust").into_response(),
        Err(e) if add && e.code() == "bad_key" => {
            let why = if given.is_empty() {
                t.trust_key_missing.to_string()
            } else {
                t.trust_key_bad.to_string()
            };
            let rejected = Rejected { given, why };
            match show(&s, t, &me, Some(rejected)).await {
                Ok(r) => r,
                Err(e) => super::failed(t, &e, "/trust"),
            }
        }
        Err(e) => super::failed(t, &e, "/trust"),
    }
}
