//! The limits the API applies per request: the body's size and time ([`read_body`]) and the
//! number of event streams ([`EventStreams`]). The limits per connection (headers, writes,
//! the connection cap) are the server's (`server.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// What [`read_body`] enforces.
#[derive(Debug, Clone)]
pub(crate) struct BodyLimits {
    /// Most bytes of a body.
    pub(crate) max_bytes: usize,
    /// Longest the whole body may take to arrive.
    pub(crate) timeout: Duration,
    /// The answer to an oversized body outside `/v1/` (the dashboard's page; given by whoever
    /// serves the pages, so that the API knows nothing of them). None: the JSON answer.
    pub(crate) page_too_large: Option<fn(&HeaderMap, usize) -> Response>,
}

/// An answer after which the connection is closed: the rest of the request's body is not read.
fn closing(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is over {max} bytes (api.max_body_bytes)"),
    )
}

/// Reads the request's whole body, at most `max_bytes` of it within `timeout`, before any
/// handler sees it, so every endpoint answers an oversized body with the same JSON 413
/// `too_large` and a slow one with 408 `timeout`, and no handler waits on a slow client.
///
/// A body over the limit is still read and dropped, up to as much again within the time
/// left, so a client that writes its whole body before reading (most do) gets the 413 rather
/// than a reset connection; a larger one is answered at once and the connection closed.
pub(crate) async fn read_body(
    State(limits): State<BodyLimits>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, mut body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let max = limits.max_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The dashboard's forms (a bundle sent to `/verify`) get a page, the API its JSON.
    let page = limits
        .page_too_large
        .filter(|_| !parts.uri.path().starts_with("/v1/"));
    let over = |close: bool| {
        let mut r = if let Some(page) = page {
            page(&parts.headers, max)
        } else {
            too_large(max).into_response()
        };
        if close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    };
    if declared.is_some_and(|n| n > 2 * max as u64) {
        return over(true);
    }
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let timed_out = || {
        closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request body did not arrive within {} (api.body_timeout)",
                humantime::format_duration(limits.timeout)
            ),
        ))
    };
    let read = tokio::time::timeout_at(deadline, Limited::new(&mut body, max).collect()).await;
    match read {
        Err(_) => timed_out(),
        Ok(Ok(collected)) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            match tokio::time::timeout_at(deadline, drain(&mut body, max)).await {
                Ok(true) => over(false),
                _ => over(true),
            }
        }
        Ok(Err(e)) => closing(ApiError::bad(
            "bad_request",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// Reads and drops the rest of a body, up to `budget` bytes; whether it ended.
async fn drain(body: &mut Body, budget: usize) -> bool {
    let mut left = budget;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            match left.checked_sub(data.len()) {
                Some(l) => left = l,
                None => return false,
            }
        }
    }
    true
}

/// The event streams open, in total and per token, each holding a permit of both.
pub(crate) struct EventStreams {
    total: Arc<Semaphore>,
    per_token_max: usize,
    per_token: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    max_total: usize,
    /// Events held for one stream (`api.event_queue`).
    pub(crate) queue: usize,
}

/// A stream's place under both caps; released when the stream ends.
pub(crate) struct StreamPermit {
    _total: OwnedSemaphorePermit,
    _token: OwnedSemaphorePermit,
}

impl EventStreams {
    pub(crate) fn new(max_total: u32, per_token: u32, queue: usize) -> EventStreams {
        EventStreams {
            total: Arc::new(Semaphore::new(max_total as usize)),
            per_token_max: per_token as usize,
            per_token: Mutex::new(HashMap::new()),
            max_total: max_total as usize,
            queue: queue.max(1),
        }
    }

    /// Streams open now.
    pub(crate) fn open(&self) -> usize {
        self.max_total
            .saturating_sub(self.total.available_permits())
    }

    /// A place for one more stream opened with `token`, or 429 `too_many_streams`.
    pub(crate) fn open_one(&self, token: &Arc<str>) -> Result<StreamPermit, ApiError> {
        let mine = {
            let mut map = self
                .per_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(token.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_token_max)))
                .clone()
        };
        let token_permit = mine.try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "{} event streams are open with this token \
                     (api.max_event_streams_per_token); close one first",
                    self.per_token_max
                ),
            )
        })?;
        let total = self.total.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "{} event streams are open (api.max_event_streams); close one first",
                    self.max_total
                ),
            )
        })?;
        Ok(StreamPermit {
            _total: total,
            _token: token_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_token_and_in_total_and_places_come_back() {
        let s = EventStreams::new(3, 2, 8);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("token-a"), Arc::from("token-b"));
        let a1 = s.open_one(&a).unwrap();
        let _a2 = s.open_one(&a).unwrap();
        let err = s.open_one(&a).err().unwrap();
        assert_eq!(err.code(), "too_many_streams");
        assert_eq!(s.open(), 2);
        let _b1 = s.open_one(&b).unwrap();
        // b is under its own cap but the total is reached.
        let err = s.open_one(&b).err().unwrap();
        assert_eq!(err.code(), "too_many_streams");
        assert_eq!(s.open(), 3);
        drop(a1);
        assert_eq!(s.open(), 2);
        let _b2 = s.open_one(&b).unwrap();
        assert_eq!(s.open(), 3);
    }
}
