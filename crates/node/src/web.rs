//! The web dashboard, served by the node at its API address (loopback by default) at `/`:
//! server-rendered HTML (maud) and a stylesheet embedded in the binary, nothing fetched from
//! elsewhere and nothing to build.
//!
//! - `auth`: one-time login links (`chorus open`), sessions in `HttpOnly`,
//!   `SameSite=Strict` cookies, CSRF tokens, and the Host and Origin checks;
//! - `pages`: the pages;
//! - `strings`: every string, in English and French (chosen from `Accept-Language`).
//!
//! The JSON API under `/v1/` keeps its bearer token; the dashboard's routes are outside it
//! and behind [`guard`] instead.

mod auth;
// --- Producer pages (inbox, products, product page) ---
mod chart;
mod feedback;
mod inbox;
mod product;
mod products;
mod read_mark;

// --- Watchdog pages (audit, attest, trust, verify, bundles) ---
mod counts;
mod trust;
mod verify;
mod watchdog;
pub(crate) use verify::too_large;
pub(crate) use watchdog::Audits;

// --- Node pages (peers, follow, first run, browse) and forms ---
mod browse;
mod form;
mod node;
mod write;

mod group;
mod pages;
mod petition;
mod search;
mod strings;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chorus_protocol::{Body, SignedRecord};
use serde::Deserialize;

use crate::api::{ApiError, ApiState};
use auth::Session;
pub(crate) use auth::Web;
use strings::Strings;

const STYLE: &str = include_str!("web/assets/style.css");
const SCRIPT: &str = include_str!("web/assets/app.js");

/// What the dashboard's handlers reach: the API's state, and the dashboard's own (logins,
/// audits, lists). The API's is reached through it (`Deref`), so a page reads the store as
/// an endpoint does; the API knows nothing of the dashboard.
#[derive(Clone)]
pub(crate) struct WebState {
    pub(crate) api: ApiState,
    pub(crate) web: std::sync::Arc<Web>,
}

impl std::ops::Deref for WebState {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.api
    }
}

/// The dashboard's routes, behind [`guard`], with `POST /v1/web/link` (behind the API's
/// token check, applied to everything the API serves); unknown paths get a page, or the
/// API's JSON 404 under `/v1/`.
pub(crate) fn routes(state: WebState) -> Router {
    Router::new()
        .route("/v1/web/link", post(link))
        .route("/", get(home))
        .route("/welcome", get(welcome))
        .route("/login", get(login))
        .route("/logout", post(logout))
        .route("/petitions/{id}", get(petition::page))
        .route("/petitions/{id}/endorse", post(petition::endorse))
        .route("/petitions/{id}/retract", post(petition::retract))
        .route("/search", get(search::page))
        .route("/groups/{id}", get(group::page))
        .route("/groups/{id}/join", post(group::join))
        .route("/groups/{id}/admit", post(group::admit))
        // --- Producer pages (inbox, products, product page) ---
        .route("/inbox", get(inbox::page))
        .route("/inbox/respond", post(inbox::respond))
        .route("/inbox/read", post(inbox::mark_read))
        .route("/inbox/items/{id}", get(inbox::fragment))
        .route("/products", get(products::page))
        .route("/products/{producer}/{code}", get(product::page))
        .route(
            "/products/{producer}/{code}/reviews/{id}",
            get(product::review_fragment),
        )
        // --- Watchdog pages (audit, attest, trust, verify, bundles) ---
        .route("/audit", get(watchdog::page).post(watchdog::run))
        .route("/audit/attest", post(watchdog::attest))
        .route("/trust", get(trust::page))
        .route("/trust/add", post(trust::add))
        .route("/trust/remove", post(trust::remove))
        .route("/verify", get(verify::page).post(verify::check))
        .route("/petitions/{id}/bundle", get(counts::bundle))
        .route("/petitions/{id}/attest", post(counts::attest))
        // --- Node pages (peers, follow, first run, browse) and forms ---
        .route("/browse", get(browse::page))
        .route("/node", get(node::page))
        .route("/node/follow", post(node::follow))
        .route("/node/unfollow", post(node::unfollow))
        .route("/node/sync", post(node::sync))
        .route("/start", get(node::start).post(node::start_post))
        .route("/write", get(write::index))
        .route("/write/review", get(write::review_page).post(write::review))
        .route(
            "/write/petition",
            get(write::petition_page).post(write::petition),
        )
        .route("/write/group", get(write::group_page).post(write::group))
        .route("/events", get(live))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(no_such_path)
        .with_state(state)
}

/// An unknown path: a page, or under `/v1/` the API's JSON 404.
async fn no_such_path(req: Request) -> Response {
    if req.uri().path().starts_with("/v1/") {
        crate::api::no_such_endpoint().await.into_response()
    } else {
        not_found(req.headers().clone()).await
    }
}

/// `POST /v1/web/link` (with the bearer token): a one-time login link to the dashboard.
pub(crate) async fn link(State(s): State<WebState>) -> Result<Json<serde_json::Value>, ApiError> {
    let base = s.web.base().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the API has no address yet",
        )
    })?;
    let key = s.web.new_link();
    Ok(Json(serde_json::json!({
        "url": format!("{base}/login?key={key}"),
        "expires_in_s": auth::LINK_LIFE.as_secs(),
    })))
}

fn lang(headers: &HeaderMap) -> &'static Strings {
    strings::pick(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut r = (status, Html(markup.into_string())).into_response();
    // Pages change with the node's state, and none may be framed by another site.
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    r
}

/// A form that did nothing: the error in words, and the way back.
fn failed(t: &Strings, e: &ApiError, back: &str) -> Response {
    let message = e.message().to_string();
    html(
        e.status(),
        pages::page(
            t,
            t.not_done,
            None,
            maud::html! {
                h1 { (t.not_done) }
                p role="alert" { (message) }
                p { a href=(back) { (t.go_back) } }
            },
        ),
    )
}

fn refused(t: &Strings, why: &str) -> Response {
    html(StatusCode::FORBIDDEN, pages::refused(t, why))
}

/// A number from a page's address, read leniently: text that is not one reads as `default`
/// (a mangled address shows a page rather than an error), and it is at most `max`.
fn number_in(text: Option<&str>, default: usize, max: usize) -> usize {
    text.and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(default)
        .min(max)
}

/// Paths open without a session.
fn public(path: &str) -> bool {
    matches!(path, "/welcome" | "/login") || path.starts_with("/assets/")
}

/// In front of every dashboard route: the Host must be this node's, a request that changes
/// anything must come from this node's dashboard (Origin), and every page but the public
/// ones needs a session (without one, a page sends the browser to `/welcome`).
async fn guard(State(s): State<WebState>, mut req: Request, next: Next) -> Response {
    let t = lang(req.headers());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !s.web.host_ok(host) {
        return refused(t, t.refused_host);
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    if changes {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        // Browsers send Origin with every POST; a missing one is let through to the CSRF
        // check, which a page of another site cannot pass.
        if origin.is_some_and(|o| !s.web.origin_ok(o)) {
            return refused(t, t.refused_origin);
        }
    }
    let path = req.uri().path().to_string();
    // The API's paths (the login link's) are behind its bearer token instead.
    if public(&path) || path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let session = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::cookie_session)
        .and_then(|id| s.web.session(id).map(|sess| (id.to_string(), sess)));
    match session {
        Some((id, sess)) => {
            if changes {
                match token_checked(req, &sess).await {
                    Ok(checked) => req = checked,
                    Err(()) => return refused(t, t.refused_csrf),
                }
            }
            req.extensions_mut().insert(LoggedIn { id, session: sess });
            next.run(req).await
        }
        None if changes => refused(t, t.refused_csrf),
        None => Redirect::to("/welcome").into_response(),
    }
}

/// A request that changes anything carries its session's CSRF token, checked here for
/// every route at once (the handlers check again): in the `X-CSRF-Token` header, or in a
/// form's `csrf` field. A multipart form (a file) is left to its handler, which reads the
/// field among the parts. The body was read whole and bounded before (`api::limits`), so
/// reading it again costs no waiting.
async fn token_checked(req: Request, session: &Session) -> Result<Request, ()> {
    let headers = req.headers();
    if csrf_ok(headers, None, session) {
        return Ok(req);
    }
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind.starts_with("multipart/form-data") {
        return Ok(req);
    }
    if !kind.starts_with("application/x-www-form-urlencoded") {
        return Err(());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| ())?;
    let given = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if !given.is_some_and(|g| auth::same(&g, &session.csrf)) {
        return Err(());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// The session a request was let in with (a request extension set by [`guard`]).
#[derive(Clone)]
struct LoggedIn {
    id: String,
    session: Session,
}

async fn welcome(headers: HeaderMap) -> Response {
    html(StatusCode::OK, pages::welcome(lang(&headers)))
}

#[derive(Deserialize)]
struct LoginQuery {
    key: Option<String>,
}

/// `GET /login?key=K`: a one-time key from `chorus open` starts a session.
async fn login(
    State(s): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let t = lang(&headers);
    match q.key.as_deref().and_then(|k| s.web.redeem(k)) {
        Some((id, _)) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(&id)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => html(StatusCode::FORBIDDEN, pages::link_used(t)),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Does a form's token match its session's?
fn csrf_ok(headers: &HeaderMap, form: Option<&str>, session: &Session) -> bool {
    let given = form.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
    given.is_some_and(|g| auth::same(g, &session.csrf))
}

/// `POST /logout`: ends the session.
async fn logout(
    State(s): State<WebState>,
    headers: HeaderMap,
    axum::Extension(me): axum::Extension<LoggedIn>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    s.web.end(&me.id);
    let mut r = Redirect::to("/welcome").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// `GET /events`: the API's event stream (`GET /v1/events`), for a logged-in page: each
/// session counts as a token toward the streams' caps.
async fn live(
    State(s): State<WebState>,
    axum::Extension(me): axum::Extension<LoggedIn>,
    headers: HeaderMap,
    q: crate::api::Q<chorus_client::EventsQuery>,
) -> Response {
    let who = crate::api::Authenticated(std::sync::Arc::from(format!(
        "web:{}",
        auth::hashed(&me.id)
    )));
    match crate::api::event_stream(State(s.api), axum::Extension(who), headers, q).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// A page for every path the dashboard does not know (outside `/v1/`).
pub(crate) async fn not_found(headers: HeaderMap) -> Response {
    html(StatusCode::NOT_FOUND, pages::not_found(lang(&headers)))
}

#[derive(Deserialize)]
struct HomeQuery {
    /// The first-run page was put off.
    #[serde(default)]
    later: Option<String>,
}

/// `GET /`: what the user takes part in, with the counts. A user without a profile is
/// sent to the first-run page (`/start`) unless they put it off.
async fn home(
    State(s): State<WebState>,
    headers: HeaderMap,
    axum::Extension(me): axum::Extension<LoggedIn>,
    Query(q): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if q.later.is_none() && !s.store.has_profile(&s.author)? {
        return Ok(Redirect::to("/start").into_response());
    }
    let status = crate::api::status_of(&s).await?;
    let mine = crate::api::my_records(&s).await?;
    let home = tokio::task::spawn_blocking({
        let s = s.clone();
        move || home_of(&s, t, mine)
    })
    .await
    .map_err(|_| crate::error::Error::NodeStopped)??;
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    Ok(html(StatusCode::OK, pages::home(t, &header, &home)))
}

/// The most items a list of the home page shows.
const HOME_MAX: usize = 50;

/// The home page's lists, from the user's records (read off the async threads).
fn home_of(
    s: &WebState,
    t: &Strings,
    mut mine: Vec<SignedRecord>,
) -> crate::error::Result<pages::Home> {
    mine.sort_by_key(|r| std::cmp::Reverse((r.record().created_at, r.id())));
    let store = &s.store;
    let petition_item =
        |id: &chorus_protocol::RecordId| -> crate::error::Result<Option<pages::Item>> {
            let Some(rec) = store.record(id)? else {
                return Ok(None);
            };
            let Body::Petition(p) = &rec.record().body else {
                return Ok(None);
            };
            let tally = store.tally(id)?;
            let (endorsers, threshold, reached, state) = match &tally {
                Some(tl) => (
                    tl.endorsers,
                    tl.threshold,
                    tl.reached,
                    if tl.withdrawn {
                        t.withdrawn
                    } else if tl.deadline.is_some_and(|d| d <= crate::clock::now_ms()) {
                        t.closed
                    } else {
                        t.open
                    },
                ),
                None => (0, p.threshold, false, t.open),
            };
            Ok(Some(pages::Item {
                petition: Some(id.to_string()),
                href: Some(format!("/petitions/{id}")),
                text: p.title.clone(),
                count: Some(endorsers),
                detail: format!(
                    "/{threshold} {}, {}{}",
                    t.endorsers,
                    state,
                    if reached {
                        format!(", {}", t.reached)
                    } else {
                        String::new()
                    }
                ),
                progress: Some((endorsers, threshold)),
                reached,
            }))
        };
    let mut home = pages::Home {
        name: store.name_of(&s.author)?,
        key: s.author.to_string(),
        petitions: Vec::new(),
        endorsed: Vec::new(),
        groups: Vec::new(),
        reviews: Vec::new(),
    };
    // Newest first, each list at most HOME_MAX long: a page stays small for a user who
    // signed thousands of records (and each item costs a few reads).
    let mut seen_petitions = std::collections::HashSet::new();
    let mut seen_groups = std::collections::HashSet::new();
    for rec in &mine {
        match &rec.record().body {
            Body::Petition(_) if home.petitions.len() < HOME_MAX => {
                if let Some(i) = petition_item(&rec.id())? {
                    home.petitions.push(i);
                }
            }
            Body::Endorsement(e) if home.endorsed.len() < HOME_MAX => {
                // The latest endorsement of each petition stands for it.
                if !seen_petitions.insert(e.petition) {
                    continue;
                }
                // Only what the user endorses now (not a retracted endorsement).
                let endorses = store
                    .endorsement_of(&e.petition, &s.author)?
                    .is_some_and(|(_, on)| on);
                if !endorses {
                    continue;
                }
                if let Some(i) = petition_item(&e.petition)? {
                    home.endorsed.push(i);
                }
            }
            Body::Join(_) | Body::Group(_) if home.groups.len() < HOME_MAX => {
                let gid = match &rec.record().body {
                    Body::Join(j) => j.group,
                    _ => rec.id(),
                };
                // Founded or joined (perhaps more than once): listed once.
                if !seen_groups.insert(gid) {
                    continue;
                }
                let name = match store.record(&gid)?.map(|g| g.record().body.clone()) {
                    Some(Body::Group(g)) => g.name,
                    _ => gid.to_string()[..12].to_string(),
                };
                let members = store.group(&gid)?.map(|g| g.members).unwrap_or(0);
                home.groups.push(pages::Item {
                    petition: None,
                    count: None,
                    href: Some(format!("/groups/{gid}")),
                    text: name,
                    detail: format!("{members}"),
                    progress: None,
                    reached: false,
                });
            }
            Body::Review(r) if home.reviews.len() < HOME_MAX => {
                // Only the review in force (not one replaced or retracted).
                let current = store
                    .review_of(&r.product.producer, &r.product.code, &s.author)?
                    .is_some_and(|(w, on)| on && w == rec.id());
                if !current {
                    continue;
                }
                home.reviews.push(pages::Item {
                    petition: None,
                    count: None,
                    href: Some(feedback::product_href(&r.product.producer, &r.product.code)),
                    text: format!(
                        "{} — {}",
                        s.directory.name_of(&r.product.producer).unwrap_or_else(|| r
                            .product
                            .producer
                            .to_string()[..12]
                            .to_string()),
                        r.product.code
                    ),
                    detail: format!("{}/5 {}", r.rating, t.stars),
                    progress: None,
                    reached: false,
                })
            }
            _ => {}
        }
    }
    Ok(home)
}
