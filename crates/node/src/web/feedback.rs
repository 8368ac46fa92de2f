//! What the producer's pages share: the feedback aimed at a producer as the store holds it
//! (the producer's answers, the petitions aimed at them), the cursors of their newest-first
//! lists, links to product pages, and lists bounded by the size of their markup.

use chorus_protocol::{AuthorKey, Body, PetitionVariant, RecordId};
use maud::Markup;

use super::Strings;
use super::WebState;
use crate::store::{PetitionState, PetitionTally, Store};

/// The producer's answer in force to a petition or review.
pub(super) struct Reply {
    /// Its status as the protocol writes it (`in-progress`...).
    pub(super) status: String,
    pub(super) text: String,
    pub(super) at: u64,
}

/// The answer `producer` gives now to `target`, if any (a retracted one is none).
pub(super) fn reply_to(
    store: &Store,
    target: &RecordId,
    producer: &AuthorKey,
) -> crate::error::Result<Option<Reply>> {
    let Some((id, true)) = store.response_of(target, producer)? else {
        return Ok(None);
    };
    Ok(store.record(&id)?.and_then(|r| match &r.record().body {
        Body::Response(resp) => Some(Reply {
            status: resp.status.to_string(),
            text: resp.text.clone(),
            at: r.record().created_at,
        }),
        _ => None,
    }))
}

/// A response status in words (the protocol's word if the language has none for it).
pub(super) fn status_word<'a>(t: &Strings, status: &'a str) -> &'a str {
    t.status_words
        .iter()
        .find(|(k, _)| *k == status)
        .map(|(_, w)| *w)
        .unwrap_or(status)
}

/// The word after a number of reviews.
pub(super) fn reviews_word(t: &Strings, n: u64) -> &'static str {
    if n == 1 {
        t.review_one
    } else {
        t.reviews_count
    }
}

/// The word after a live number of reviews: both forms ride along, for the page's script.
pub(super) fn live_reviews_word(t: &Strings, n: u64) -> maud::Markup {
    maud::html! {
        span.live-rating-word data-one=(t.review_one) data-many=(t.reviews_count) {
            (reviews_word(t, n))
        }
    }
}

/// A petition as the producer's pages list it.
pub(super) struct PetitionLine {
    pub(super) id: RecordId,
    pub(super) title: String,
    /// Proposal or campaign, in words (a plain petition: none).
    pub(super) variant: Option<&'static str>,
    pub(super) product: Option<String>,
    pub(super) endorsers: u64,
    pub(super) threshold: u64,
    pub(super) reached: bool,
    pub(super) state: &'static str,
    pub(super) created_at: u64,
    pub(super) is_proposal: bool,
    /// The producer's answer in force: its status, as the protocol writes it.
    pub(super) status: Option<String>,
}

/// A petition record and its tally as a line, if it is a petition.
pub(super) fn petition_line(
    t: &Strings,
    rec: &chorus_protocol::SignedRecord,
    tally: Option<&PetitionTally>,
) -> Option<PetitionLine> {
    let Body::Petition(p) = &rec.record().body else {
        return None;
    };
    let now = crate::clock::now_ms();
    let state = match tally.map(|tl| tl.state(now)) {
        Some(PetitionState::Withdrawn) => t.withdrawn,
        Some(PetitionState::Closed) => t.closed,
        _ if p.deadline.is_some_and(|d| d <= now) => t.closed,
        _ => t.open,
    };
    Some(PetitionLine {
        id: rec.id(),
        title: p.title.clone(),
        variant: match p.variant {
            PetitionVariant::Proposal => Some(t.proposal),
            PetitionVariant::Campaign { .. } => Some(t.campaign),
            PetitionVariant::Demand => None,
        },
        product: p.product.clone(),
        endorsers: tally.map(|tl| tl.endorsers).unwrap_or(0),
        threshold: p.threshold,
        reached: tally.is_some_and(|tl| tl.reached),
        state,
        created_at: rec.record().created_at,
        is_proposal: matches!(p.variant, PetitionVariant::Proposal),
        status: tally.and_then(|tl| tl.response.as_ref().map(|r| r.status.clone())),
    })
}

/// A person's name, or the start of their key when this node knows no profile of theirs.
pub(super) fn name(s: &WebState, k: &AuthorKey) -> String {
    s.directory
        .name_of(k)
        .unwrap_or_else(|| k.to_string()[..12].to_string())
}

/// A place in a newest-first list: a record's (created_at, id); the next page starts
/// strictly before it.
pub(super) type Cursor = (u64, RecordId);

/// A place in a newest-first list, as a query parameter: `CREATED_AT-ID`.
pub(super) fn cursor(at: u64, id: &RecordId) -> String {
    format!("{at}-{id}")
}

/// A cursor read back; `None` if it is not one (the list then starts from the newest).
pub(super) fn parse_cursor(text: Option<&str>) -> Option<(u64, RecordId)> {
    let (at, id) = text?.split_once('-')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

/// What a product code keeps unescaped in a path: the URL's unreserved characters.
const CODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b'-')
    .remove(b'~');

/// The product page's path: the producer's key and the code (escaped, though the protocol
/// allows only letters, digits, `.`, `_` and `-` in a code).
pub(super) fn product_href(producer: &AuthorKey, code: &str) -> String {
    let escaped = percent_encoding::utf8_percent_encode(code, CODE);
    format!("/products/{producer}/{escaped}")
}

/// The items whose markup fits in `budget` bytes, in order (always the first): a list of
/// long texts stays within a page's size. Returns the markups and how many were left out.
pub(super) fn within(
    budget: usize,
    items: impl IntoIterator<Item = Markup>,
) -> (Vec<Markup>, usize) {
    let mut used = 0usize;
    let mut kept = Vec::new();
    let mut left = 0usize;
    for m in items {
        let len = m.0.len();
        if left > 0 || (!kept.is_empty() && used.saturating_add(len) > budget) {
            left += 1;
            continue;
        }
        used = used.saturating_add(len);
        kept.push(m);
    }
    (kept, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_junk_is_none() {
        let id = RecordId([7; 32]);
        assert_eq!(parse_cursor(Some(&cursor(12, &id))), Some((12, id)));
        assert_eq!(parse_cursor(Some("12")), None);
        assert_eq!(parse_cursor(Some("x-y")), None);
        assert_eq!(parse_cursor(None), None);
    }

    #[test]
    fn a_product_link_escapes_what_a_path_cannot_hold() {
        let k = AuthorKey([1; 32]);
        assert_eq!(
            product_href(&k, "kettle-2.0"),
            format!("/products/{k}/kettle-2.0")
        );
        assert_eq!(
            product_href(&k, "a/b c"),
            format!("/products/{k}/a%2Fb%20c")
        );
    }

    #[test]
    fn a_list_keeps_what_fits_and_at_least_one() {
        let m = |n: usize| maud::PreEscaped("x".repeat(n));
        let (kept, left) = within(10, [m(4), m(4), m(4), m(1)]);
        assert_eq!(
            (kept.len(), left),
            (2, 2),
            "in order: nothing after the first left out"
        );
        let (kept, left) = within(10, [m(50), m(1)]);
        assert_eq!((kept.len(), left), (1, 1));
        let (kept, left) = within(10, Vec::new());
        assert_eq!((kept.len(), left), (0, 0));
    }
}
