//! The petition page (`/petitions/{id}`, an id or a prefix of 8 hex digits or more): its
//! text, progress toward its threshold (a campaign: its pledges toward the goal), its state
//! and the producer's answer, with the forms to endorse (pledge) and retract; for watchdogs
//! (`super::counts`), the raw and trusted counts, the bundle and a form to attest the count.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::{EndorseRequest, RetractRequest};
use chorus_protocol::{Body, PetitionVariant, RecordId};
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn};
use crate::api::ApiError;

/// What the page shows of a petition.
struct View {
    id: RecordId,
    title: String,
    text: String,
    producer: String,
    group: Option<String>,
    variant: Option<&'static str>,
    endorsers: u64,
    threshold: u64,
    reached: bool,
    state: &'static str,
    /// A campaign: pledged so far and the goal (both formatted), and whether funded.
    campaign: Option<(String, String, u64, u64, bool)>,
    deadline: Option<u64>,
    response: Option<(String, String)>,
    /// The answer's record id (the live script compares it with the tallies it gets).
    response_id: Option<String>,
    /// Whether this node's user endorses it now.
    endorsed: bool,
}

fn view(s: &WebState, t: &super::Strings, id: RecordId) -> crate::error::Result<Option<View>> {
    let store = &s.store;
    let Some(rec) = store.record(&id)? else {
        return Ok(None);
    };
    let Body::Petition(p) = &rec.record().body else {
        return Ok(None);
    };
    let tally = store.tally(&id)?;
    let name = |k: &chorus_protocol::AuthorKey| {
        s.directory
            .name_of(k)
            .unwrap_or_else(|| k.to_string()[..12].to_string())
    };
    let now = crate::clock::now_ms();
    let (endorsers, reached, withdrawn, response) = match &tally {
        Some(tl) => (
            tl.endorsers,
            tl.reached,
            tl.withdrawn,
            tl.response.as_ref().map(|r| (r.id, r.status.clone())),
        ),
        None => (0, false, false, None),
    };
    let state = if withdrawn {
        t.withdrawn
    } else if p.deadline.is_some_and(|d| d <= now) {
        t.closed
    } else {
        t.open
    };
    let campaign = match &p.variant {
        PetitionVariant::Campaign { goal } => {
            let pledged = tally
                .as_ref()
                .and_then(|tl| tl.pledged.get(&goal.currency).copied())
                .unwrap_or(0);
            let pledged_amount = chorus_protocol::Amount {
                value: u64::try_from(pledged).unwrap_or(u64::MAX),
                currency: goal.currency.clone(),
            };
            Some((
                pledged_amount.to_string(),
                goal.to_string(),
                pledged_amount.value,
                goal.value,
                tally.as_ref().is_some_and(|tl| tl.funded),
            ))
        }
        _ => None,
    };
    let response_id = response.as_ref().map(|(rid, _)| rid.to_string());
    let response = match response {
        Some((rid, status)) => {
            let text = match store.record(&rid)?.map(|r| r.record().body.clone()) {
                Some(Body::Response(r)) => r.text,
                _ => String::new(),
            };
            Some((status, text))
        }
        None => None,
    };
    let group = match p.group {
        Some(g) => Some(match store.record(&g)?.map(|r| r.record().body.clone()) {
            Some(Body::Group(gr)) => gr.name,
            _ => g.to_string()[..12].to_string(),
        }),
        None => None,
    };
    Ok(Some(View {
        id,
        title: p.title.clone(),
        text: p.text.clone(),
        producer: name(&p.producer),
        group,
        variant: match p.variant {
            PetitionVariant::Proposal => Some(t.proposal),
            PetitionVariant::Campaign { .. } => Some(t.campaign),
            PetitionVariant::Demand => None,
        },
        endorsers,
        threshold: p.threshold,
        reached,
        state,
        campaign,
        deadline: p.deadline,
        response,
        response_id,
        endorsed: store
            .endorsement_of(&id, &s.author)?
            .is_some_and(|(_, on)| on),
    }))
}

/// What the petition page's address may add.
#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    /// An attestation of the count just made, to confirm.
    #[serde(default)]
    attested: Option<String>,
}

/// `GET /petitions/{id}`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let pid = match crate::api::record_id(&s, "petition", &id) {
        Ok(pid) => pid,
        // Not held: a petition found on a peer (a search result) is fetched, stored and
        // its producer followed, as acting on it through the API does.
        Err(_) => match id.parse::<RecordId>() {
            Ok(pid)
                if crate::api::stored_or_fetched(&s, "petition", &pid)
                    .await
                    .is_ok() =>
            {
                pid
            }
            _ => return Ok(super::not_found(headers).await),
        },
    };
    let status = crate::api::status_of(&s).await?;
    let v = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || view(&s, t, pid))
            .await
            .map_err(|_| crate::error::Error::NodeStopped)??
    };
    let Some(v) = v else {
        return Ok(super::not_found(headers).await);
    };
    let counts =
        super::counts::section(&s, t, v.id, &me.session.csrf, q.attested.as_deref()).await?;
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let id = v.id.to_string();
    let now = crate::clock::now_ms();
    let body = html! {
        article data-petition=(id) {
            h1 { (v.title) }
            p.meta {
                @if let Some(variant) = v.variant { strong { (variant) } " · " }
                (t.aimed_at) " " strong { (v.producer) }
                @if let Some(g) = &v.group { " · " (t.group) " " (g) }
                " · " (v.state)
                @if let Some(d) = v.deadline {
                    @if d > now {
                        " · " (t.ends_in) " " (days(d - now)) " " (t.days)
                    }
                }
            }
            p { (v.text) }
            section aria-labelledby="progress" {
                h2 #progress { (t.progress) }
                p {
                    span.count.reached[v.reached] {
                        span.live-count { (v.endorsers) }
                        "/" (v.threshold) " " (t.endorsers)
                        @if v.reached { ", " (t.reached) }
                    }
                    br;
                    progress value=(v.endorsers.min(v.threshold)) max=(v.threshold.max(1)) {
                        (v.endorsers) " / " (v.threshold)
                    }
                }
                @if let Some((pledged, goal, value, of, funded)) = &v.campaign {
                    p {
                        span.count.pledged-count.reached[*funded] {
                            span.live-pledged { (pledged) } " / " (goal) " " (t.pledged)
                            span.funded-mark hidden[!*funded] { ", " (t.funded) }
                        }
                        br;
                        // In the goal's units, as the live updates give them.
                        progress.pledged value=(major(*value).min(major(*of))) max=(major(*of).max(0.01)) {
                            (pledged) " / " (goal)
                        }
                    }
                }
            }
            (counts)
            // Always there, hidden until the producer answers: the live script fills it in.
            // The statuses' words ride along, so the live script can name a new answer.
            section #answer-section aria-labelledby="answer" aria-live="polite"
                data-response=(v.response_id.clone().unwrap_or_default())
                data-statuses=(t.status_words.iter().map(|(k, w)| format!("{k}={w}")).collect::<Vec<_>>().join("|"))
                hidden[v.response.is_none()] {
                h2 #answer { (t.answer) }
                @let (status, text) = v.response.clone().unwrap_or_default();
                p {
                    strong.answer-status { (super::feedback::status_word(t, &status)) }
                    span.answer-text { @if !text.is_empty() { " — " (text) } }
                }
            }
            section aria-labelledby="act" {
                h2 #act { (t.act) }
                @if v.endorsed {
                    p { (t.you_endorse) }
                    form method="post" action={"/petitions/" (id) "/retract"} {
                        input type="hidden" name="csrf" value=(me.session.csrf);
                        button type="submit" { (t.retract) }
                    }
                } @else {
                    form method="post" action={"/petitions/" (id) "/endorse"} {
                        input type="hidden" name="csrf" value=(me.session.csrf);
                        @if v.campaign.is_some() {
                            label for="pledge" { (t.pledge_label) }
                            " "
                            input #pledge type="text" name="pledge" inputmode="decimal" placeholder="50EUR";
                            " "
                        }
                        button type="submit" { (t.endorse) }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, &v.title, Some(&header), body),
    ))
}

/// An amount in minor units (cents) as a number of the currency's units.
fn major(minor: u64) -> f64 {
    minor as f64 / 100.0
}

fn days(ms: u64) -> u64 {
    ms.div_ceil(86_400_000)
}

#[derive(Deserialize)]
pub(super) struct EndorseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pledge: Option<String>,
}

/// `POST /petitions/{id}/endorse`: signs and publishes an endorsement (with the pledge, for
/// a campaign), as `POST /v1/endorse` does, then shows the petition again.
pub(super) async fn endorse(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Form(f): Form<EndorseForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let req = EndorseRequest {
        petition: id.clone(),
        comment: None,
        pledge: f.pledge.filter(|p| !p.trim().is_empty()),
    };
    let done = crate::api::endorse(State(s.api), crate::api::JsonBody(req)).await;
    after(t, &id, done.map(|_| ()))
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /petitions/{id}/retract`: retracts this user's endorsement.
pub(super) async fn retract(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let req = RetractRequest { id: id.clone() };
    let done = crate::api::retract(State(s.api), crate::api::JsonBody(req)).await;
    after(t, &id, done.map(|_| ()))
}

/// Back to the petition after a form; an error is shown on a page of its own, in words.
fn after(t: &super::Strings, id: &str, done: Result<(), ApiError>) -> Response {
    match done {
        Ok(()) => Redirect::to(&format!("/petitions/{id}")).into_response(),
        Err(e) => super::failed(t, &e, &format!("/petitions/{id}")),
    }
}
