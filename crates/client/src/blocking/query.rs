//! Paths and query strings of calls, percent-encoded.

use serde::Serialize;
use serde_json::Value;

use super::error::Error;

/// Percent-encodes a path segment or query value (everything but RFC 3986's unreserved
/// characters).
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?k=v&...` for the fields of a query type that are not `null` (empty when all are).
pub(crate) fn query<Q: Serialize>(q: &Q) -> Result<String, Error> {
    let Value::Object(fields) = serde_json::to_value(q).map_err(Error::Encode)? else {
        return Ok(String::new());
    };
    let pairs: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{k}={}", enc(&text)))
        })
        .collect();
    Ok(if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventsQuery, PetitionsQuery, ProductQuery};

    #[test]
    fn queries_leave_out_what_is_not_given_and_encode_the_rest() {
        assert_eq!(query(&EventsQuery::default()).unwrap(), "");
        let q = EventsQuery {
            kind: Some("review".into()),
            after: Some(0),
            follow: Some(false),
            ..EventsQuery::default()
        };
        assert_eq!(query(&q).unwrap(), "?after=0&follow=false&kind=review");
        let q = ProductQuery {
            producer: "ab".into(),
            product: "soap 1/ä".into(),
            after: None,
            limit: Some(1000),
        };
        assert_eq!(
            query(&q).unwrap(),
            "?limit=1000&producer=ab&product=soap%201%2F%C3%A4"
        );
        assert_eq!(query(&PetitionsQuery::default()).unwrap(), "?open=false");
    }
}
