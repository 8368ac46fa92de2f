//! The product page (`/products/{producer}/{code}`): the rating (count, mean, a histogram
//! drawn as SVG), the reviews from the newest, each with the producer's reply, the petitions
//! about the product, and its co-designed specification: the proposals about it ranked by
//! endorsers, each with the producer's answer.
//!
//! Every list is bounded (a number of items and the size of their markup); the reviews go
//! on a page at a time (`?before=CURSOR`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chorus_protocol::{AuthorKey, Body, RecordId, SignedRecord};
use maud::{html, Markup};
use serde::Deserialize;

use super::feedback::{self, PetitionLine, Reply};
use super::WebState;
use super::{chart, html, lang, pages, LoggedIn, Strings};
use crate::api::ApiError;
use crate::store::Rating;

/// Reviews shown on one page, at most (fewer when their texts are long).
const REVIEWS_PAGE: usize = 30;
/// Index entries read backwards for one page of reviews, at most: the product's petitions
/// are in the same index.
const SCAN_MAX: usize = 5_000;
/// Bytes of markup the reviews may take; the petitions and the proposals each.
const REVIEWS_BUDGET: usize = 70_000;
const PETITIONS_BUDGET: usize = 24_000;
/// Petitions and proposals listed, at most each.
const PETITIONS_MAX: usize = 100;

/// A review as the page shows it.
pub(super) struct ReviewLine {
    pub(super) id: RecordId,
    pub(super) author: String,
    pub(super) at: u64,
    pub(super) rating: u8,
    /// The product reviewed.
    pub(super) code: String,
    pub(super) title: Option<String>,
    pub(super) text: String,
    /// Its author's review in force (not replaced or retracted).
    pub(super) counted: bool,
    pub(super) reply: Option<Reply>,
}

/// A review record as a line, with the producer's reply to it.
pub(super) fn review_line(
    s: &WebState,
    rec: &SignedRecord,
) -> crate::error::Result<Option<ReviewLine>> {
    let Body::Review(r) = &rec.record().body else {
        return Ok(None);
    };
    let (producer, code) = (&r.product.producer, &r.product.code);
    Ok(Some(ReviewLine {
        id: rec.id(),
        author: feedback::name(s, &rec.author()),
        at: rec.record().created_at,
        rating: r.rating,
        code: code.clone(),
        title: r.title.clone(),
        text: r.text.clone(),
        counted: s.store.review_of(producer, code, &rec.author())? == Some((rec.id(), true)),
        reply: feedback::reply_to(&s.store, &rec.id(), producer)?,
    }))
}

/// What the page shows.
struct View {
    producer: AuthorKey,
    producer_name: String,
    code: String,
    rating: Rating,
    reviews: Vec<ReviewLine>,
    /// Where the reviews stopped, if there are older ones.
    older: Option<(u64, RecordId)>,
    proposals: Vec<PetitionLine>,
    petitions: Vec<PetitionLine>,
    /// The product's index was read only in part (its newest `PRODUCT_SCAN` records), so
    /// older petitions may be missing.
    cut: bool,
}

/// The newest reviews of a product before `before`, at most `limit`, and where the next
/// page starts (`None`: no older review).
fn newest_reviews(
    s: &WebState,
    producer: &AuthorKey,
    code: &str,
    before: Option<(u64, RecordId)>,
    limit: usize,
) -> crate::error::Result<(Vec<ReviewLine>, Option<feedback::Cursor>)> {
    let mut out = Vec::new();
    let mut from = before;
    let mut read = 0usize;
    loop {
        let page = s.store.newest_by_product(producer, code, from, 128)?;
        read += page.records.len();
        for rec in &page.records {
            if let Some(line) = review_line(s, rec)? {
                out.push(line);
                if out.len() >= limit {
                    return Ok((out, Some((rec.record().created_at, rec.id()))));
                }
            }
        }
        match page.next {
            Some(n) if read < SCAN_MAX => from = Some(n),
            next => return Ok((out, next)),
        }
    }
}

/// Most records of a product's index a page reads for its petitions.
const PRODUCT_SCAN: usize = 5_000;

fn view(
    s: &WebState,
    t: &Strings,
    producer: AuthorKey,
    code: String,
    before: Option<(u64, RecordId)>,
) -> crate::error::Result<View> {
    let store = &s.store;
    let rating = store.rating(&producer, &code)?;
    let (reviews, older) = newest_reviews(s, &producer, &code, before, REVIEWS_PAGE)?;
    let mut proposals = Vec::new();
    let mut petitions = Vec::new();
    // The petitions about the product, from its index (reviews and petitions naming it),
    // the newest first and at most PRODUCT_SCAN records read: a page's cost stays bounded on
    // a product with a great many reviews.
    let mut from = None;
    let mut read = 0usize;
    let mut cut = false;
    loop {
        let page = store.newest_by_product(&producer, &code, from, 512)?;
        read += page.records.len();
        for rec in &page.records {
            if !matches!(rec.record().body, Body::Petition(_)) {
                continue;
            }
            let tally = store.tally(&rec.id())?;
            let Some(line) = feedback::petition_line(t, rec, tally.as_ref()) else {
                continue;
            };
            if line.is_proposal {
                proposals.push(line);
            } else {
                petitions.push(line);
            }
        }
        match page.next {
            Some(n) if read < PRODUCT_SCAN => from = Some(n),
            Some(_) => {
                cut = true;
                break;
            }
            None => break,
        }
    }
    // The specification: the most endorsed proposals first (the newest of equals).
    proposals.sort_by_key(|p| std::cmp::Reverse((p.endorsers, p.created_at)));
    proposals.truncate(PETITIONS_MAX);
    petitions.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    petitions.truncate(PETITIONS_MAX);
    Ok(View {
        producer_name: feedback::name(s, &producer),
        producer,
        code,
        rating,
        reviews,
        older,
        proposals,
        petitions,
        cut,
    })
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    /// Show the reviews older than this cursor.
    before: Option<String>,
}

/// `GET /products/{producer}/{code}` (the producer: a key, a unique prefix of one, or a
/// profile's name).
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path((producer, code)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if chorus_protocol::validate::check_product_code(&code).is_err() {
        return Ok(super::not_found(headers).await);
    }
    let Ok(producer) = crate::api::author_named(&s, "producer", &producer).await else {
        return Ok(super::not_found(headers).await);
    };
    let status = crate::api::status_of(&s).await?;
    let before = feedback::parse_cursor(q.before.as_deref());
    let v = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || view(&s, t, producer, code, before))
            .await
            .map_err(|_| crate::error::Error::NodeStopped)??
    };
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let body = body(t, &v, before.is_some());
    Ok(html(
        StatusCode::OK,
        pages::page(t, &v.code, Some(&header), body),
    ))
}

/// `GET /products/{producer}/{code}/reviews/{id}`: one review as the page lists it (an
/// `li`), for the page's script to add a review that just arrived.
pub(super) async fn review_fragment(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let Ok(id) = id.parse::<RecordId>() else {
        return Ok(super::not_found(headers).await);
    };
    let line = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || match s.store.record(&id)? {
            Some(rec) => review_line(&s, &rec),
            None => Ok(None),
        })
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??
    };
    match line {
        Some(l) => Ok(html(StatusCode::OK, review_item(t, &l))),
        None => Ok(super::not_found(headers).await),
    }
}

/// The rating in words: what the histogram's title and caption say.
fn rating_words(t: &Strings, r: &Rating) -> String {
    let bars: Vec<String> = (1..=5usize)
        .rev()
        .map(|star| format!("{star}★ {}", r.histogram[star - 1]))
        .collect();
    format!(
        "{} {}, {} {} {}: {}",
        r.count,
        feedback::reviews_word(t, r.count),
        t.mean_label,
        chart::decimal(r.mean(), t.decimal_sep),
        t.out_of_5,
        bars.join(", ")
    )
}

fn body(t: &Strings, v: &View, paged: bool) -> Markup {
    let href = feedback::product_href(&v.producer, &v.code);
    let (reviews, left) =
        feedback::within(REVIEWS_BUDGET, v.reviews.iter().map(|r| review_item(t, r)));
    // The next page starts after the last review shown.
    let older = if left > 0 {
        v.reviews
            .get(reviews.len().saturating_sub(1))
            .map(|r| (r.at, r.id))
    } else {
        v.older
    };
    let (proposals, proposals_left) = feedback::within(
        PETITIONS_BUDGET,
        v.proposals.iter().map(|p| petition_item(t, p)),
    );
    let (petitions, petitions_left) = feedback::within(
        PETITIONS_BUDGET,
        v.petitions.iter().map(|p| petition_item(t, p)),
    );
    html! {
        div.product-page data-producer=(v.producer) data-code=(v.code) {
            h1 { (v.code) }
            p.meta { (t.product_by) " " strong { (v.producer_name) } " " code { (&v.producer.to_string()[..12]) } }
            section aria-labelledby="rating-h" {
                h2 #rating-h { (t.rating) }
                p.rating-summary {
                    span.live-rating-count { (v.rating.count) } " " (feedback::live_reviews_word(t, v.rating.count))
                    " · " (t.mean_label) " "
                    strong.live-rating-mean { (chart::decimal(v.rating.mean(), t.decimal_sep)) }
                    " " (t.out_of_5)
                }
                figure.chart-figure {
                    (chart::histogram("rating-chart", &v.rating.histogram, &rating_words(t, &v.rating)))
                    figcaption.live-rating-words { (rating_words(t, &v.rating)) }
                }
            }
            section #spec aria-labelledby="spec-h" {
                h2 #spec-h { (t.spec_title) }
                p { (t.spec_intro) }
                @if proposals.is_empty() {
                    p { (t.no_proposals) }
                } @else {
                    ol.items.spec { @for m in proposals { (m) } }
                    @if proposals_left > 0 { p.count { (proposals_left) " " (t.more_not_shown) } }
                }
            }
            section aria-labelledby="petitions-h" {
                h2 #petitions-h { (t.petitions_about) }
                @if petitions.is_empty() {
                    p { (t.none_yet) }
                } @else {
                    ul.items { @for m in petitions { (m) } }
                    @if petitions_left > 0 { p.count { (petitions_left) " " (t.more_not_shown) } }
                }
            }
            @if v.cut { p.count #older-not-read { (t.older_not_read) } }
            section aria-labelledby="reviews-h" {
                h2 #reviews-h { (t.reviews_title) }
                @if reviews.is_empty() && !paged {
                    p #reviews-empty { (t.no_reviews) }
                }
                ul.items.reviews #reviews { @for m in reviews { (m) } }
                nav.pager aria-label=(t.reviews_title) {
                    @if paged { a href=(href) { (t.newest_first) } " " }
                    @if let Some((at, id)) = older {
                        a rel="next" href={(href) "?before=" (feedback::cursor(at, &id))} { (t.older) }
                    }
                }
            }
        }
    }
}

/// Stars in text: `★★★★☆`, with the number for screen readers in the label.
pub(super) fn stars(t: &Strings, n: u8) -> Markup {
    let n = usize::from(n.min(5));
    html! {
        span.stars role="img" aria-label={(n) " " (t.stars)} {
            ("★".repeat(n)) ("☆".repeat(5 - n))
        }
    }
}

/// The producer's reply, under what it answers.
pub(super) fn reply_block(t: &Strings, r: &Reply) -> Markup {
    html! {
        div.reply {
            strong { (t.reply_title) } " · "
            span.status { (feedback::status_word(t, &r.status)) } " · "
            time datetime=(chart::day(r.at)) { (chart::day(r.at)) }
            p { (r.text) }
        }
    }
}

fn review_item(t: &Strings, r: &ReviewLine) -> Markup {
    html! {
        li.review #{"review-" (r.id)} data-record=(r.id) {
            p.meta {
                (stars(t, r.rating)) " "
                @if let Some(title) = &r.title { strong { (title) } " · " }
                (t.by) " " (r.author) " · "
                time datetime=(chart::day(r.at)) { (chart::day(r.at)) }
                @if !r.counted { " · " span.warn { (t.not_counted) } }
            }
            p { (r.text) }
            @if let Some(reply) = &r.reply { (reply_block(t, reply)) }
        }
    }
}

/// A petition with its live count and the producer's answer.
pub(super) fn petition_item(t: &Strings, p: &PetitionLine) -> Markup {
    html! {
        li data-petition=(p.id) {
            @if let Some(v) = p.variant { span.tag { (v) } " " }
            a href={"/petitions/" (p.id)} { (p.title) }
            " "
            span.count.reached[p.reached] {
                span.live-count { (p.endorsers) } "/" (p.threshold) " " (t.endorsers)
                ", " (p.state)
                @if p.reached { ", " (t.reached) }
            }
            " · "
            @match &p.status {
                Some(st) => span.status { (feedback::status_word(t, st)) },
                None => span.status.none { (t.no_answer) },
            }
        }
    }
}
