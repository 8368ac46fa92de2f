//! Reading requests: keys, ids, amounts and page cursors, and the records they name, each
//! mistake answered with its own code.

use chorus_protocol::{Amount, AuthorKey, Kind, RecordId, SignedRecord};

use super::error::ApiError;
use super::state::ApiState;

/// An author key named by `field`.
pub(crate) fn key(field: &str, s: &str) -> Result<AuthorKey, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad("bad_key", format!("{field} {s:?}: {e}")))
}

/// A record id named by `field`.
pub(crate) fn id(field: &str, s: &str) -> Result<RecordId, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad("bad_id", format!("{field} {s:?}: {e}")))
}

/// An amount like `3000EUR` named by `field`.
pub(crate) fn amount(field: &str, s: &str) -> Result<Amount, ApiError> {
    s.parse().map_err(|e| {
        ApiError::bad(
            "bad_amount",
            format!("{field} {s:?}: {e} (write it like 3000EUR)"),
        )
    })
}

/// The cursor that continues after a page: `CREATED_AT-ID`.
pub(crate) fn cursor(c: Option<(u64, RecordId)>) -> Option<String> {
    c.map(|(at, id)| format!("{at}-{id}"))
}

/// A cursor given back by the client.
pub(crate) fn parse_cursor(s: Option<&str>) -> Result<Option<(u64, RecordId)>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let parsed = s
        .split_once('-')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| {
        ApiError::bad(
            "bad_cursor",
            format!("after {s:?}: not a cursor from a previous page"),
        )
    })
}

/// A record this node holds, or 404 naming what was looked for.
pub(crate) fn stored(s: &ApiState, what: &str, id: &RecordId) -> Result<SignedRecord, ApiError> {
    s.store
        .record(id)?
        .ok_or_else(|| ApiError::not_found(format!("no {what} {id} in this node's store")))
}

/// A group this node holds (for reading it or naming it in a petition).
pub(crate) fn group_record(s: &ApiState, g: &str) -> Result<(RecordId, SignedRecord), ApiError> {
    let gid = id("group", g)?;
    let rec = stored(s, "group", &gid)?;
    if rec.record().kind() != Kind::Group {
        return Err(ApiError::bad(
            "not_a_group",
            format!("{gid} is a {}", rec.record().kind()),
        ));
    }
    Ok((gid, rec))
}
