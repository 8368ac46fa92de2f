//! The producer's products (`/products`): each product of the node's user that a review or
//! petition names, with its count and mean, and its rating over time drawn as an SVG plot
//! (the running mean of its reviews), linked to its page. A page of products at a time
//! (`?offset=N`); each plot reads the product's newest reviews only.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chorus_protocol::{fold, AuthorKey, Body};
use maud::{html, Markup};
use serde::Deserialize;

use super::WebState;
use super::{chart, feedback, html, lang, pages, LoggedIn, Strings};
use crate::api::ApiError;
use crate::store::Rating;

/// Products on one page.
const PAGE: usize = 20;
/// Index entries (reviews and petitions) read per product for its plot: the newest.
const SAMPLED: usize = 400;
/// Bytes of markup the list may take.
const BUDGET: usize = 120_000;

/// A product as the page shows it.
struct Line {
    code: String,
    rating: Rating,
    /// The running mean of its newest reviews: (time, mean).
    points: Vec<(u64, f64)>,
}

/// The user's products, by code, and how many there are.
fn lines(s: &WebState, me: &AuthorKey, offset: usize) -> crate::error::Result<(Vec<Line>, usize)> {
    let mut codes: Vec<String> = s
        .store
        .products_of(me)?
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    codes.sort_by_cached_key(|c| (fold::fold(c), c.clone()));
    let total = codes.len();
    let mut out = Vec::new();
    for code in codes.into_iter().skip(offset).take(PAGE) {
        let rating = s.store.rating(me, &code)?;
        let page = s.store.newest_by_product(me, &code, None, SAMPLED)?;
        let ratings: Vec<(u64, u8)> = page
            .records
            .iter()
            .filter_map(|r| match &r.record().body {
                Body::Review(rv) => Some((r.record().created_at, rv.rating)),
                _ => None,
            })
            .collect();
        out.push(Line {
            points: chart::mean_over_time(&ratings, rating.sum, rating.count),
            code,
            rating,
        });
    }
    Ok((out, total))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    /// Text, read leniently: an offset that is not one shows the first page.
    offset: Option<String>,
}

/// `GET /products`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let status = crate::api::status_of(&s).await?;
    let offset = super::number_in(q.offset.as_deref(), 0, 1_000_000);
    let (lines, total) = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || lines(&s, &s.author, offset))
            .await
            .map_err(|_| crate::error::Error::NodeStopped)??
    };
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let (items, left) = feedback::within(
        BUDGET,
        lines
            .iter()
            .enumerate()
            .map(|(n, l)| item(t, &s.author, n, l)),
    );
    let next = offset + items.len();
    let body = html! {
        h1 { (t.products_title) }
        p { (t.products_intro) }
        @if total == 0 {
            p #products-empty { (t.no_products) }
        } @else {
            ul.items.products #products data-producer=(s.author) { @for m in items { (m) } }
            nav.pager aria-label=(t.products_title) {
                @if offset > 0 {
                    a href={"/products?offset=" (offset.saturating_sub(PAGE))} { (t.previous) } " "
                }
                @if left > 0 || next < total {
                    a rel="next" href={"/products?offset=" (next)} { (t.more) }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, t.products_title, Some(&header), body),
    ))
}

/// The plot's name: the means at its ends, its dates and its number of reviews.
fn plot_words(t: &Strings, points: &[(u64, f64)]) -> String {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) => format!(
            "{}: {} → {} {}, {} – {}, {} {}",
            t.plot_label,
            chart::decimal(a.1, t.decimal_sep),
            chart::decimal(b.1, t.decimal_sep),
            t.out_of_5,
            chart::day(a.0),
            chart::day(b.0),
            points.len(),
            feedback::reviews_word(t, points.len() as u64)
        ),
        _ => t.no_reviews.to_string(),
    }
}

fn item(t: &Strings, producer: &AuthorKey, n: usize, l: &Line) -> Markup {
    let words = plot_words(t, &l.points);
    html! {
        li.product data-product=(l.code) {
            a href=(feedback::product_href(producer, &l.code)) { strong { (l.code) } }
            " "
            span.count {
                span.live-rating-count { (l.rating.count) } " " (feedback::live_reviews_word(t, l.rating.count))
                " · " (t.mean_label) " "
                span.live-rating-mean { (chart::decimal(l.rating.mean(), t.decimal_sep)) }
                " " (t.out_of_5)
            }
            @match chart::plot(&format!("plot-{n}"), &l.points, &words) {
                Some(svg) => figure.chart-figure { (svg) figcaption { (words) } },
                None => p { (t.no_reviews) },
            }
        }
    }
}
