//! The bundle verifier (`/verify`): a bundle file chosen in the browser is sent to the node,
//! which checks it with the same code as `chorus verify` (`chorus_protocol::bundle`), and
//! the page says what it proves, or what is wrong and which record or claim is the culprit.
//!
//! The file comes in a `multipart/form-data` body, so the API's body limit
//! (`api.max_body_bytes`, 2 MiB by default: a bundle of some ten thousand endorsements)
//! bounds it; a larger file gets a page that says so ([`too_large`]) and how to check it
//! offline instead.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chorus_protocol::bundle::{self, Bundle, BundleError, Verified};
use chorus_protocol::{Body, SignedRecord};
use maud::{html, Markup};

use super::strings::Strings;
use super::watchdog::{key_markup, short, watchdog_nav, when};
use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn};
use crate::api::ApiError;

/// What the page shows under the form.
enum Outcome {
    /// Nothing yet (`GET`).
    Nothing,
    /// The form was not usable (no file, an empty file, a broken form): said beside the
    /// field.
    Unusable(String),
    /// The bundle holds: what it proves, with this node's own count of the petition.
    Valid(Box<Verified>, Option<u64>),
    /// The bundle does not hold: why, and the culprit.
    Invalid(BundleError, Option<Culprit>),
}

/// The record a [`BundleError`] names, as far as it can be read.
struct Culprit {
    /// Where it sits in the bundle (`endorsements #3`), if the error says.
    place: Option<String>,
    id: Option<String>,
    author: Option<String>,
}

/// `GET /verify`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
) -> Result<Response, ApiError> {
    show(&s, lang(&headers), &me, Outcome::Nothing).await
}

/// `POST /verify` (`multipart/form-data`: `csrf`, then the file `bundle`).
pub(super) async fn check(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let mut csrf = None;
    let mut file = None;
    let mut broken = false;
    match form {
        Ok(mut m) => loop {
            match m.next_field().await {
                Ok(Some(field)) => match field.name() {
                    Some("csrf") => csrf = field.text().await.ok(),
                    Some("bundle") => match field.bytes().await {
                        Ok(b) => file = Some(b),
                        Err(_) => broken = true,
                    },
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        },
        Err(_) => broken = true,
    }
    // The token is checked before anything of the file is looked at.
    if !csrf_ok(&headers, csrf.as_deref(), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let outcome = match file {
        _ if broken => Outcome::Unusable(t.verify_broken.to_string()),
        None => Outcome::Unusable(t.verify_no_file.to_string()),
        Some(b) if b.is_empty() => Outcome::Unusable(t.verify_no_file.to_string()),
        Some(bytes) => {
            let store = s.store.clone();
            // Signatures of a large bundle take a while: off the async threads.
            tokio::task::spawn_blocking(move || judge(&store, &bytes))
                .await
                .map_err(|_| crate::error::Error::NodeStopped)?
        }
    };
    show(&s, t, &me, outcome).await
}

/// Verifies a bundle file as `chorus verify` does.
fn judge(store: &crate::store::Store, bytes: &[u8]) -> Outcome {
    let b = match Bundle::decode(bytes) {
        Ok(b) => b,
        Err(e) => return Outcome::Invalid(e, None),
    };
    match bundle::verify(&b) {
        Ok(v) => {
            let here = store
                .tally(&v.petition.id())
                .ok()
                .flatten()
                .map(|t| t.endorsers);
            Outcome::Valid(Box::new(v), here)
        }
        Err(e) => {
            let culprit = culprit(&b, &e);
            Outcome::Invalid(e, culprit)
        }
    }
}

/// The record an error names: by its id, or by its place in the bundle (then its id and
/// author are read from its bytes, unchecked, when they decode).
fn culprit(b: &Bundle, e: &BundleError) -> Option<Culprit> {
    match e {
        BundleError::Duplicate(id) | BundleError::Foreign { id, .. } => {
            let author = all_records(b)
                .find(|r| r.id() == *id)
                .map(|r| r.author().to_string());
            Some(Culprit {
                place: None,
                id: Some(id.to_string()),
                author,
            })
        }
        BundleError::InvalidRecord { part, index, .. } => {
            let wire = match *part {
                "petition" => Some(&b.petition),
                "endorsements" => b.endorsements.get(*index),
                "retractions" => b.retractions.get(*index),
                "withdrawals" => b.withdrawals.get(*index),
                "responses" => b.responses.get(*index),
                "attestations" => b.attestations.get(*index),
                _ => None,
            };
            let rec = wire.and_then(|w| SignedRecord::from_bytes(w).ok());
            Some(Culprit {
                place: Some(format!("{part} #{index}")),
                id: rec.as_ref().map(|r| r.id().to_string()),
                author: rec.as_ref().map(|r| r.author().to_string()),
            })
        }
        // A claim of the bundle (count, root, first reached) or its shape: no record.
        _ => None,
    }
}

/// Every record of a bundle that decodes.
fn all_records(b: &Bundle) -> impl Iterator<Item = SignedRecord> + '_ {
    std::iter::once(&b.petition)
        .chain(&b.endorsements)
        .chain(&b.retractions)
        .chain(&b.withdrawals)
        .chain(&b.responses)
        .chain(&b.attestations)
        .filter_map(|w| SignedRecord::from_bytes(w).ok())
}

async fn show(
    s: &WebState,
    t: &'static Strings,
    me: &LoggedIn,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let status = crate::api::status_of(s).await?;
    let csrf = &me.session.csrf;
    let header = pages::Header {
        status: &status,
        csrf,
    };
    let unusable = match &outcome {
        Outcome::Unusable(why) => Some(why.as_str()),
        _ => None,
    };
    let held = match &outcome {
        Outcome::Valid(v, _) => s.store.record(&v.petition.id())?.is_some(),
        _ => false,
    };
    let body = html! {
        h1 { (t.verify_title) }
        (watchdog_nav(t, "/verify"))
        p { (t.verify_intro) }
        form #verify-form method="post" action="/verify" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label for="bundle" { (t.verify_file) }
                br;
                @if let Some(why) = unusable {
                    input #bundle type="file" name="bundle" required
                        aria-invalid="true" aria-describedby="bundle-error";
                    br;
                    span #bundle-error.field-error role="alert" { (why) }
                } @else {
                    input #bundle type="file" name="bundle" required aria-describedby="bundle-hint";
                    br;
                    span #bundle-hint.hint { (t.verify_hint) " " code { "chorus export" } }
                }
            }
            p { button #verify-submit type="submit" { (t.verify_submit) } }
        }
        @match &outcome {
            Outcome::Valid(v, here) => (valid(t, v, *here, held)),
            Outcome::Invalid(e, c) => (invalid(t, e, c.as_ref())),
            _ => {}
        }
    };
    let code = match outcome {
        Outcome::Nothing | Outcome::Valid(..) => StatusCode::OK,
        Outcome::Unusable(_) => StatusCode::BAD_REQUEST,
        // The bundle was read and is refused.
        Outcome::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(html(
        code,
        pages::page(t, t.verify_title, Some(&header), body),
    ))
}

fn valid(t: &Strings, v: &Verified, here: Option<u64>, held: bool) -> Markup {
    let id = v.petition.id().to_string();
    let title = match &v.petition.record().body {
        Body::Petition(p) => p.title.clone(),
        _ => String::new(),
    };
    let now = crate::clock::now_ms();
    let root = hex::encode(v.root);
    html! {
        section #verdict.verdict.valid role="status" aria-labelledby="verdict-title" {
            h2 #verdict-title { (t.verify_valid) }
            p { (t.verify_valid_text) }
            dl {
                dt { (t.verify_petition) }
                dd {
                    @if held { a href={"/petitions/" (id)} { (title) } } @else { (title) }
                    " " code.id title=(id) { (short(&id)) }
                }
                dt { (t.verify_count) }
                dd #verdict-count { (v.count) }
                dt { (t.verify_root) }
                dd { code.root { (root) } }
                dt { (t.verify_state) }
                dd {
                    @match v.state(now) {
                        "withdrawn" => (t.withdrawn),
                        "closed" => (t.closed),
                        _ => (t.open),
                    }
                }
                dt { (t.verify_first_reached) }
                dd {
                    @match v.first_reached_at { Some(at) => (when(at)), None => (t.verify_never) }
                }
                @if let Some((total, cur)) = &v.pledged {
                    dt { (t.pledged) }
                    dd {
                        (format!("{}.{:02} {cur}", total / 100, total % 100))
                        @if v.funded { ", " (t.funded) }
                    }
                }
                @if let Some((rid, status)) = &v.response {
                    dt { (t.answer) }
                    dd {
                        strong { (status) } " " code.id title=(rid.to_string()) { (short(&rid.to_string())) }
                        @match v.response_cites_root {
                            Some(true) => { " — " (t.verify_cites_root) }
                            Some(false) => { " — " (t.verify_cites_other) }
                            None => {}
                        }
                    }
                }
                dt { (t.verify_here) }
                dd {
                    @match here {
                        Some(n) if n == v.count => { (n) " " (t.verify_same) }
                        Some(n) => { (n) }
                        None => (t.verify_not_held),
                    }
                }
            }
        }
    }
}

fn invalid(t: &Strings, e: &BundleError, c: Option<&Culprit>) -> Markup {
    html! {
        section #verdict.verdict.invalid role="alert" aria-labelledby="verdict-title" {
            h2 #verdict-title { (t.verify_invalid) }
            p #verdict-reason { strong { (t.verify_reason) } " " (e.to_string()) }
            @match c {
                Some(c) => {
                    p #culprit {
                        strong { (t.verify_culprit) } " "
                        @if let Some(place) = &c.place { (place) " " }
                        @if let Some(id) = &c.id { (t.verify_record) " " code.id title=(id) { (short(id)) } " " }
                        @if let Some(a) = &c.author { (t.verify_by) " " (key_markup(a, None)) }
                    }
                }
                None => {
                    @if !matches!(e, BundleError::Malformed(_)) {
                        p #culprit { strong { (t.verify_culprit) } " " (t.verify_culprit_claim) }
                    }
                }
            }
        }
    }
}

/// The page for a form whose body is over the API's limit (`api.max_body_bytes`): a bundle
/// too large to send here, to check offline instead. Sent by the API's body limit for
/// paths outside `/v1/`.
pub(crate) fn too_large(headers: &HeaderMap, max: usize) -> Response {
    let t = lang(headers);
    html(
        StatusCode::PAYLOAD_TOO_LARGE,
        pages::page(
            t,
            t.too_large_title,
            None,
            html! {
                h1 { (t.too_large_title) }
                p role="alert" {
                    (t.too_large_text) " " (max / 1024) " KiB (" code { "api.max_body_bytes" } ")."
                }
                p { (t.too_large_offline) }
                pre { code { "chorus verify FILE" } }
                p { a href="/verify" { (t.go_back) } }
            },
        ),
    )
}
