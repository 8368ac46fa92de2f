//! Reading requests: keys, ids, amounts and page cursors, and the records they name, each
//! mistake answered with its own code.

use chorus_protocol::sync::wire::kinds;
use chorus_protocol::{fold, Amount, AuthorKey, Body, Kind, RecordId, SignedRecord};

use super::error::ApiError;
use super::state::ApiState;
use crate::store::MIN_PREFIX;

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

/// Most candidates an ambiguous short form lists.
const CANDIDATES: usize = 8;

fn is_hex(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A record named by `field`: its id, or a unique prefix of at least 8 hex digits of the id
/// of a record this node stores (PROTOCOL.md §11).
pub(crate) fn record_id(s: &ApiState, field: &str, text: &str) -> Result<RecordId, ApiError> {
    let t = text.trim();
    if t.len() == 64 {
        return id(field, t);
    }
    if t.len() < MIN_PREFIX || t.len() > 64 || !is_hex(t) {
        return Err(ApiError::bad(
            "bad_id",
            format!(
                "{field} {t:?}: expected an id (64 hex digits) or at least {MIN_PREFIX} of its first hex digits"
            ),
        ));
    }
    let found = s.store.ids_starting(t, CANDIDATES + 1)?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::not_found(format!(
            "{field} {t}: no record this node holds has an id starting so (if it is on a topic \
             this node does not follow, give the whole id, or follow its producer or group)"
        ))),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(CANDIDATES)
                .map(|id| {
                    let kind = s
                        .store
                        .record(id)
                        .ok()
                        .flatten()
                        .map(|r| r.record().kind().to_string())
                        .unwrap_or_default();
                    format!("{} ({kind})", &id.to_string()[..12])
                })
                .collect();
            Err(ambiguous(field, t, &list, many.len() > CANDIDATES))
        }
    }
}

fn ambiguous(field: &str, t: &str, list: &[String], more: bool) -> ApiError {
    ApiError::bad(
        "ambiguous",
        format!(
            "{field} {t} could be any of: {}{}; give more of it",
            list.join(", "),
            if more { ", ..." } else { "" }
        ),
    )
}

/// A key named by `field`: the key, a unique prefix of at least 8 hex digits of a key this
/// node knows (a profile's author, a producer whose topic it stores), or the name of exactly
/// one profile it holds, case and accents ignored (PROTOCOL.md §11, §11.1).
pub(crate) fn author_key(s: &ApiState, field: &str, text: &str) -> Result<AuthorKey, ApiError> {
    let t = text.trim();
    if t.len() == 64 && is_hex(t) {
        return key(field, t);
    }
    let describe = |k: &AuthorKey| match s.store.name_of(k).ok().flatten() {
        Some(n) => format!("{} ({n})", &k.to_string()[..12]),
        None => k.to_string()[..12].to_string(),
    };
    if t.len() >= MIN_PREFIX && t.len() < 64 && is_hex(t) {
        let found = s.store.keys_starting(t, CANDIDATES + 1)?;
        match found.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            many => {
                let list: Vec<String> = many.iter().take(CANDIDATES).map(describe).collect();
                return Err(ambiguous(field, t, &list, many.len() > CANDIDATES));
            }
        }
    }
    if t.is_empty() {
        return Err(ApiError::bad("bad_key", format!("{field}: empty")));
    }
    let named = s.store.keys_named(t, CANDIDATES + 1)?;
    match named.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::bad(
            "bad_key",
            format!(
                "{field} {t:?}: not an author key (64 hex digits), nor the start of a key this \
                 node knows, nor the name of a profile it holds"
            ),
        )),
        many => {
            let list: Vec<String> = many.iter().take(CANDIDATES).map(describe).collect();
            Err(ambiguous(field, t, &list, many.len() > CANDIDATES))
        }
    }
}

/// [`record_id`], and when no record this node holds has an id starting so, the connected
/// peers searched for it (PROTOCOL.md §13.5): a record one of them holds, of the kinds in
/// `wanted`, is named by its whole id (the search keeps it at hand for the fetch that
/// follows, [`super::fetch::stored_or_fetched`]).
pub(crate) async fn record_named(
    s: &ApiState,
    field: &str,
    text: &str,
    wanted: u8,
) -> Result<RecordId, ApiError> {
    let local = record_id(s, field, text);
    let t = text.trim().to_ascii_lowercase();
    match local {
        Err(e) if e.code() == "not_found" => {
            let searched = s.directory.search(&t, wanted, CANDIDATES + 1, true).await?;
            let mut ids: Vec<RecordId> = searched
                .hits
                .iter()
                .map(|h| h.record.id())
                .filter(|id| id.to_string().starts_with(&t))
                .collect();
            ids.dedup();
            match ids.as_slice() {
                [one] => Ok(*one),
                [] => Err(ApiError::not_found(format!(
                    "{field} {t}: no record this node holds has an id starting so, nor does \
                     any of the {} peers asked (find it with `chorus find WORDS`, or give \
                     the whole id; an endorsement or a response, which has no name or \
                     title, is found by its whole id only)",
                    searched.answered
                ))),
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .take(CANDIDATES)
                        .map(|id| id.to_string()[..12].to_string())
                        .collect();
                    Err(ambiguous(field, &t, &list, many.len() > CANDIDATES))
                }
            }
        }
        other => other,
    }
}

/// [`author_key`], and when no profile this node holds has that name (or key prefix), the
/// connected peers searched for profiles: the authors whose newest profile found has that
/// name (or whose key starts so) are the candidates, one of them the answer. (Found
/// profiles are not stored unless the node keeps them, PROTOCOL.md §13.6.)
pub(crate) async fn author_named(
    s: &ApiState,
    field: &str,
    text: &str,
) -> Result<AuthorKey, ApiError> {
    match author_key(s, field, text) {
        Err(e) if e.code() == "bad_key" && crate::directory::searchable(text) => {
            let t = text.trim();
            let searched = s
                .directory
                .search(t, kinds::PROFILE, CANDIDATES + 1, true)
                .await?;
            // The profiles found are checked, not all stored (a node keeps the profiles it
            // uses): the key is read from the hits, as `author_key` reads the store. Only
            // each author's newest profile names them (a peer may send an older one).
            let (name, prefix) = (fold::fold(t), t.to_ascii_lowercase());
            let hex = t.len() >= MIN_PREFIX && is_hex(t);
            let mut newest: Vec<SignedRecord> = Vec::new();
            for h in &searched.hits {
                let rec = &h.record;
                match newest.iter_mut().find(|n| n.author() == rec.author()) {
                    Some(n) if n.record().created_at < rec.record().created_at => *n = rec.clone(),
                    Some(_) => {}
                    None => newest.push(match s.store.profile(&rec.author())? {
                        Some(held) if held.record().created_at >= rec.record().created_at => held,
                        _ => rec.clone(),
                    }),
                }
            }
            let mut found: Vec<(AuthorKey, String)> = Vec::new();
            for rec in &newest {
                let Body::Profile(p) = &rec.record().body else {
                    continue;
                };
                let k = rec.author();
                let named = fold::fold(p.name.trim()) == name;
                let keyed = hex && k.to_string().starts_with(&prefix);
                if named || keyed {
                    found.push((k, p.name.clone()));
                }
            }
            match found.as_slice() {
                [] => Err(e),
                [(one, _)] => Ok(*one),
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .take(CANDIDATES)
                        .map(|(k, n)| format!("{} ({n})", &k.to_string()[..12]))
                        .collect();
                    Err(ambiguous(field, t, &list, many.len() > CANDIDATES))
                }
            }
        }
        other => other,
    }
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
    let gid = record_id(s, "group", g)?;
    let rec = stored(s, "group", &gid)?;
    if rec.record().kind() != Kind::Group {
        return Err(ApiError::bad(
            "not_a_group",
            format!("{gid} is a {}", rec.record().kind()),
        ));
    }
    Ok((gid, rec))
}
