//! The routes, and in front of them the bearer-token check and the body's limits.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::limits::read_body;
use super::state::{ApiState, Authenticated};
use super::{directory, events, follow, mine, network, read, records, watchdog, write};

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    // The dashboard's pages have their own guard (sessions, `crate::web`).
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared exactly.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start());
    match presented {
        Some(t) if same(t.as_bytes(), s.token.as_bytes()) => {
            req.extensions_mut().insert(Authenticated(s.token.clone()));
            next.run(req).await
        }
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (see api.token in the data dir)",
        )
        .into_response(),
    }
}

/// An unknown path: a JSON error (the pages merged beside the API answer theirs).
pub(crate) async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// A known endpoint asked with a method it does not take: a JSON error like every other.
async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {} (see docs/API.md)",
            req.uri().path(),
            req.method()
        ),
    )
}

/// Every endpoint of `docs/API.md`, behind the token check (first) and the body's limits
/// (only then: a caller without the token gets 401 before its body is read). `pages` are
/// served beside them (the dashboard, at the paths outside `/v1/`, which the token check
/// lets through); without pages, an unknown path gets the JSON 404.
pub(crate) fn router(state: ApiState, pages: Option<Router>) -> Router {
    let max_body = state.body.max_bytes;
    let api = Router::new()
        .route("/v1/status", get(network::status))
        .route("/v1/sync", post(network::sync))
        .route("/v1/peers", get(network::peers))
        .route("/v1/follow", get(follow::following).post(follow::follow))
        .route("/v1/unfollow", post(follow::unfollow))
        .route("/v1/trust", get(follow::trust).post(follow::trust_add))
        .route("/v1/untrust", post(follow::trust_remove))
        .route("/v1/profile", post(write::profile))
        .route("/v1/reviews", get(read::reviews).post(write::review))
        .route("/v1/rating", get(read::rating))
        .route("/v1/search", get(directory::search))
        .route("/v1/people/{key}", get(directory::person))
        .route("/v1/producers", get(directory::producers))
        .route("/v1/products", get(directory::products))
        .route(
            "/v1/groups",
            get(directory::groups).post(write::group_create),
        )
        .route("/v1/groups/{id}", get(read::group_show))
        .route("/v1/groups/{id}/join", post(write::group_join))
        .route("/v1/groups/{id}/admit", post(write::group_admit))
        .route("/v1/groups/{id}/requests", get(read::group_requests))
        .route(
            "/v1/petitions",
            get(read::petitions).post(write::petition_open),
        )
        .route("/v1/tally/{id}", get(read::tally))
        .route("/v1/records", post(records::submit))
        .route("/v1/mine", get(mine::mine))
        .route("/v1/records/{id}", get(read::show))
        .route("/v1/endorse", post(write::endorse))
        .route("/v1/retract", post(write::retract))
        .route("/v1/respond", post(write::respond))
        .route("/v1/attest", post(watchdog::attest))
        .route("/v1/events", get(events::events))
        .route("/v1/audit", get(watchdog::audit))
        .route("/v1/bundle/{id}", get(watchdog::bundle))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let served = match pages {
        Some(pages) => api.merge(pages),
        None => api.fallback(no_such_endpoint),
    };
    served
        // read_body has taken at most this much already; the extractors' own limit agrees.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.body.clone(),
            read_body,
        ))
        .layer(middleware::from_fn_with_state(state, auth))
}
