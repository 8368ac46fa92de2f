//! What the petition page shows for watchdogs: the raw count and, when the user trusts
//! watchdogs, the trusted count (`trusted` of `GET /v1/tally/{id}`, `crate::trust`) with the
//! watchdogs that vouch for it; the bundle to download (`/petitions/{id}/bundle`, the bytes
//! of `GET /v1/bundle/{id}`); and a form to attest the count (`verified-count`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::{AttestRequest, Trusted};
use chorus_protocol::RecordId;
use maud::{html, Markup};
use serde::Deserialize;

use super::strings::Strings;
use super::watchdog::{key_markup, short, when};
use super::WebState;
use super::{csrf_ok, lang, refused, LoggedIn};
use crate::api::ApiError;

/// The counts of a petition as the section shows them.
struct Counts {
    raw: u64,
    trusted: Option<Trusted>,
}

/// The section for the petition `id`, read from the store off the async threads.
/// `attested`: the attestation just made, to confirm.
pub(super) async fn section(
    s: &WebState,
    t: &Strings,
    id: RecordId,
    csrf: &str,
    attested: Option<&str>,
) -> Result<Markup, ApiError> {
    let counts = tokio::task::spawn_blocking({
        let s = s.clone();
        move || -> crate::error::Result<Counts> {
            let Some(tally) = s.store.tally(&id)? else {
                return Ok(Counts {
                    raw: 0,
                    trusted: None,
                });
            };
            let mut trusted = crate::trust::view(&s.store, &s.trust.watchdogs(), &id, &tally)?;
            if let Some(tr) = trusted.as_mut() {
                for a in &mut tr.attested {
                    if let Ok(k) = a.watchdog.parse() {
                        a.watchdog_name = s.store.name_of(&k)?;
                    }
                }
            }
            Ok(Counts {
                raw: tally.endorsers,
                trusted,
            })
        }
    })
    .await
    .map_err(|_| crate::error::Error::NodeStopped)??;
    let id = id.to_string();
    let name = |key: &str| {
        let tr = counts.trusted.as_ref()?;
        tr.attested
            .iter()
            .find(|a| a.watchdog == key)
            .and_then(|a| a.watchdog_name.clone())
    };
    Ok(html! {
        section #watchdogs-counts aria-labelledby="counts-title" {
            h2 #counts-title { (t.counts_title) }
            @if let Some(a) = attested {
                p.notice role="status" {
                    (t.attested_done) " " code.key title=(a) { (short(a)) }
                }
            }
            p #raw-count { (t.raw_count) " " strong { (counts.raw) } " " (t.endorsers) }
            @match &counts.trusted {
                Some(tr) => {
                    p #trusted-count {
                        (t.trusted_count) " " strong { (tr.endorsers) } " " (t.endorsers)
                        @if tr.excluded > 0 { " (" (tr.excluded) " " (t.trusted_excluded) ")" }
                    }
                    p #vouched-by {
                        @if tr.vouched_by.is_empty() {
                            (t.vouched_none)
                        } @else {
                            (t.vouched_by) " "
                            @for (i, w) in tr.vouched_by.iter().enumerate() {
                                @if i > 0 { ", " }
                                (key_markup(w, name(w).as_deref()))
                            }
                        }
                    }
                    @let stale: Vec<_> = tr.attested.iter().filter(|a| !a.current).collect();
                    @if !stale.is_empty() {
                        ul.attested {
                            @for a in stale {
                                li {
                                    (key_markup(&a.watchdog, a.watchdog_name.as_deref())) " "
                                    (t.attested_word) " " (a.count) " " (t.endorsers) " "
                                    (when(a.created_at)) ", " (t.not_current)
                                }
                            }
                        }
                    }
                }
                None => p #no-trust { (t.trust_none_here) " " a href="/trust" { (t.trust_title) } }
            }
            p {
                a #bundle-download href={"/petitions/" (id) "/bundle"} download { (t.download_bundle) }
                " " span.hint { (t.bundle_hint) " " a href="/verify" { (t.verify_title) } }
            }
            form.attest-count method="post" action={"/petitions/" (id) "/attest"} {
                input type="hidden" name="csrf" value=(csrf);
                button #attest-count.attest type="submit" data-verdict="verified-count" { (t.attest_count) }
                " " span.hint { (t.attest_count_hint) }
            }
        }
    })
}

/// `GET /petitions/{id}/bundle`: the petition's bundle as a file to save, the same bytes
/// as `GET /v1/bundle/{id}` (what `chorus export` writes and `chorus verify` checks).
pub(super) async fn bundle(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let t = lang(&headers);
    let pid = match crate::api::record_id(&s, "petition", &id) {
        Ok(pid) => pid,
        Err(_) => return super::not_found(headers).await,
    };
    let back = format!("/petitions/{pid}");
    match crate::api::bundle(State(s.api), Path(pid.to_string())).await {
        Ok(mut r) => {
            let name = format!(
                "attachment; filename=\"petition-{}.cbor\"",
                short(&pid.to_string())
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => super::failed(t, &e, &back),
    }
}

#[derive(Deserialize)]
pub(super) struct AttestForm {
    // Missing, it is refused as a wrong one is (403), not as a broken form.
    #[serde(default)]
    csrf: String,
}

/// `POST /petitions/{id}/attest`: signs and publishes a `verified-count` attestation of the
/// petition with this node's own recount (as `POST /v1/attest` does), then shows the
/// petition again with the attestation's id.
pub(super) async fn attest(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Form(f): Form<AttestForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let pid = match crate::api::record_id(&s, "petition", &id) {
        Ok(pid) => pid,
        Err(e) => return super::failed(t, &e, "/"),
    };
    let req = AttestRequest {
        verdict: "verified-count".into(),
        record: Some(pid.to_string()),
        keys: None,
        note: None,
    };
    match crate::api::attest(State(s.api), crate::api::JsonBody(req)).await {
        Ok(created) => {
            Redirect::to(&format!("/petitions/{pid}?attested={}", created.0.id)).into_response()
        }
        Err(e) => super::failed(t, &e, &format!("/petitions/{pid}")),
    }
}
