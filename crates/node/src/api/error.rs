//! The API's one error type: an HTTP status, a stable code and a message, answered as the
//! JSON body `{code, message}` (`chorus_client::ErrorBody`). Every error of every handler,
//! extractor and rule is made by [`ApiError::new`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_client::ErrorBody;
use chorus_protocol::RuleError;

use crate::error::Error;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// Its HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// Its message, for people.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is wrong.
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A kind rule the record asked for would break (`chorus_protocol::rules`), with a
    /// message about this request: 403 for the rules about who may make a record, 400 for
    /// the others; the code is the rule's.
    pub(crate) fn rule(e: RuleError, message: impl Into<String>) -> Self {
        let status = match e {
            RuleError::AdmitNotFounder
            | RuleError::RetractionNotAuthor
            | RuleError::ResponseNotProducer => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.code(), message)
    }

    /// The code (for tests).
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code.to_string(),
            message: self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match crate::error::StorageFault::of(&e) {
            Some(f) if f.is_full() => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            Some(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_failed"),
            None => match &e {
                Error::NodeStopped => (StatusCode::SERVICE_UNAVAILABLE, "node_stopped"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// A JSON body whose rejection (malformed JSON, unknown or missing fields) is an
/// [`ApiError`] like every other error.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::bad("bad_request", e.body_text())),
        }
    }
}

/// A query string whose rejection is an [`ApiError`].
pub(crate) struct Q<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::bad("bad_request", e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StorageFault;

    #[test]
    fn storage_failures_are_storage_errors_not_a_stopped_node() {
        let answer = |e: Error| {
            let a = ApiError::from(e);
            (a.status, a.code.to_string())
        };
        let full = Error::Unwritable(StorageFault::Full("0 bytes free".into()));
        assert_eq!(
            answer(full),
            (StatusCode::INSUFFICIENT_STORAGE, "storage_full".into())
        );
        let enospc = Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(
            answer(enospc),
            (StatusCode::INSUFFICIENT_STORAGE, "storage_full".into())
        );
        let failed = Error::Unwritable(StorageFault::Failed("read-only file system".into()));
        assert_eq!(
            answer(failed),
            (StatusCode::INTERNAL_SERVER_ERROR, "storage_failed".into())
        );
        assert_eq!(
            answer(Error::NodeStopped),
            (StatusCode::SERVICE_UNAVAILABLE, "node_stopped".into())
        );
    }
}
