//! Charts drawn on the server as inline SVG: a rating histogram and a rating-over-time plot.
//! No script and no library draws them, so they show with scripts off and pass the pages'
//! content security policy (inline SVG is markup, not a style or a script). Colours come
//! from classes in `style.css`, never from inline styles, which the policy forbids.
//!
//! The geometry is in pure functions ([`bar_lengths`], [`plot_coords`], [`mean_over_time`],
//! [`thin`]) with unit tests; the markup functions only lay it out. Every chart is an
//! `svg role="img"` named by a `<title>` that says its numbers in words, given by the caller
//! in the page's language.

use maud::{html, Markup};

/// Width of a histogram, in its own units (it scales to the page).
const HIST_W: f64 = 320.0;
/// Where the bars start (after the star labels) and their longest length.
const BAR_X: f64 = 40.0;
const BAR_MAX: f64 = 230.0;
/// Height of one bar's row.
const ROW: f64 = 26.0;

/// Size of a plot, in its own units, and its margins (room for the axis labels).
const PLOT_W: f64 = 480.0;
const PLOT_H: f64 = 200.0;
const PLOT_LEFT: f64 = 36.0;
const PLOT_RIGHT: f64 = 12.0;
const PLOT_TOP: f64 = 12.0;
const PLOT_BOTTOM: f64 = 28.0;

/// The most points a plot draws: a line of more says no more on a phone, and the page's size
/// stays bounded.
pub(crate) const MAX_POINTS: usize = 60;

/// Each star's bar length (1 to 5 stars), proportional to its count, the largest count
/// `full` long; all zero when there is no rating.
pub(crate) fn bar_lengths(histogram: &[u64; 5], full: f64) -> [f64; 5] {
    let max = histogram.iter().copied().max().unwrap_or(0);
    let mut out = [0.0; 5];
    if max == 0 {
        return out;
    }
    for (o, &n) in out.iter_mut().zip(histogram) {
        *o = full * n as f64 / max as f64;
    }
    out
}

/// A rating histogram as horizontal bars, five stars at the top. `id` makes the title's id
/// unique in the page; `label` says the numbers in words (the chart's accessible name).
/// Each bar and count carries `data-star` (1 to 5), so the page's script can move them
/// when the rating changes.
pub(crate) fn histogram(id: &str, histogram: &[u64; 5], label: &str) -> Markup {
    let lengths = bar_lengths(histogram, BAR_MAX);
    let height = ROW * 5.0 + 4.0;
    let title = format!("{id}-title");
    html! {
        svg.chart.histogram #(id) role="img" aria-labelledby=(title)
            viewBox={"0 0 " (HIST_W) " " (height)} data-bar-max=(BAR_MAX) {
            title #(title) { (label) }
            @for star in (1..=5usize).rev() {
                @let i = star - 1;
                @let y = ROW * (5 - star) as f64 + 2.0;
                text.axis x="0" y=(fmt(y + ROW * 0.65)) { (star) "★" }
                rect.bar data-star=(star) x=(fmt(BAR_X)) y=(fmt(y + 3.0))
                    width=(fmt(lengths[i])) height=(fmt(ROW - 8.0)) {}
                text.bar-count data-star=(star) x=(fmt(BAR_X + lengths[i] + 6.0))
                    y=(fmt(y + ROW * 0.65)) { (histogram[i]) }
            }
        }
    }
}

/// The mean after each of the newest reviews (`ratings`: time, stars), counted back from the
/// product's totals (`sum`, `count` of every review counted): the last point is the mean
/// shown beside the plot, and a window of the newest reviews starts where the older ones
/// left the mean, not from nothing. Points stop where the count would reach zero.
pub(crate) fn mean_over_time(ratings: &[(u64, u8)], sum: u64, count: u64) -> Vec<(u64, f64)> {
    let mut sorted = ratings.to_vec();
    sorted.sort_by_key(|(at, _)| *at);
    let (mut sum, mut count) = (sum, count);
    let mut out = Vec::with_capacity(sorted.len());
    for (at, r) in sorted.iter().rev() {
        if count == 0 {
            break;
        }
        out.push((*at, sum as f64 / count as f64));
        sum = sum.saturating_sub(u64::from(*r));
        count -= 1;
    }
    out.reverse();
    out
}

/// At most `max` of `points`, evenly spaced, the first and the last kept.
pub(crate) fn thin<T: Clone>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.iter().take(max).cloned().collect();
    }
    let last = points.len() - 1;
    (0..max)
        .map(|i| points[i * last / (max - 1)].clone())
        .collect()
}

/// Where each point (time, rating 1 to 5) lies in a `w` by `h` plot: time from left to right
/// over the points' span (one instant: the middle), rating from 1 at the bottom to 5 at the
/// top, inside the margins.
pub(crate) fn plot_coords(points: &[(u64, f64)], w: f64, h: f64) -> Vec<(f64, f64)> {
    let (Some(first), Some(last)) = (
        points.iter().map(|p| p.0).min(),
        points.iter().map(|p| p.0).max(),
    ) else {
        return Vec::new();
    };
    let inner_w = w - PLOT_LEFT - PLOT_RIGHT;
    let span = last - first;
    points
        .iter()
        .map(|&(at, v)| {
            let x = if span == 0 {
                PLOT_LEFT + inner_w / 2.0
            } else {
                PLOT_LEFT + inner_w * (at - first) as f64 / span as f64
            };
            (x, rating_y(v, h))
        })
        .collect()
}

/// The height of a rating in a plot `h` high.
fn rating_y(v: f64, h: f64) -> f64 {
    let inner_h = h - PLOT_TOP - PLOT_BOTTOM;
    PLOT_TOP + inner_h * (5.0 - v.clamp(1.0, 5.0)) / 4.0
}

/// A rating over time as a line with its points: ratings 1 to 5 up the side, the first and
/// last dates along the bottom. `None` without points (the caller says so in words).
pub(crate) fn plot(id: &str, points: &[(u64, f64)], label: &str) -> Option<Markup> {
    let points = thin(points, MAX_POINTS);
    let coords = plot_coords(&points, PLOT_W, PLOT_H);
    let (first, last) = (points.first()?.0, points.last()?.0);
    let line: Vec<String> = coords
        .iter()
        .map(|(x, y)| format!("{},{}", fmt(*x), fmt(*y)))
        .collect();
    let title = format!("{id}-title");
    let bottom = PLOT_H - PLOT_BOTTOM;
    Some(html! {
        svg.chart.plot #(id) role="img" aria-labelledby=(title)
            viewBox={"0 0 " (PLOT_W) " " (PLOT_H)} {
            title #(title) { (label) }
            @for r in 1..=5u8 {
                @let y = rating_y(f64::from(r), PLOT_H);
                line.grid x1=(fmt(PLOT_LEFT)) x2=(fmt(PLOT_W - PLOT_RIGHT)) y1=(fmt(y)) y2=(fmt(y)) {}
                text.axis x="4" y=(fmt(y + 4.0)) { (r) "★" }
            }
            text.axis x=(fmt(PLOT_LEFT)) y=(fmt(bottom + 20.0)) { (day(first)) }
            @if last != first {
                text.axis.end x=(fmt(PLOT_W - PLOT_RIGHT)) y=(fmt(bottom + 20.0)) { (day(last)) }
            }
            @if coords.len() > 1 {
                polyline.line points=(line.join(" ")) {}
            }
            @for (x, y) in &coords {
                circle.point cx=(fmt(*x)) cy=(fmt(*y)) r="3.5" {}
            }
        }
    })
}

/// A coordinate with at most one decimal (enough for a chart, and short markup).
fn fmt(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// The last moment RFC 3339 writes (9999-12-31T23:59:59Z): the formatter fails after it.
const LAST_MS: u64 = 253_402_300_799_000;

/// A day, `2026-03-14` (UTC), from a time in ms since the epoch.
pub(crate) fn day(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.min(LAST_MS));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// A day and time to the minute, `2026-03-14 09:30` (UTC).
pub(crate) fn minute(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.min(LAST_MS));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .take(16)
        .collect::<String>()
        .replace('T', " ")
}

/// A mean with one decimal, with the language's decimal separator (`4.2`, `4,2`).
pub(crate) fn decimal(v: f64, separator: &str) -> String {
    format!("{v:.1}").replace('.', separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_to_their_counts_and_none_is_drawn_without_ratings() {
        assert_eq!(bar_lengths(&[0; 5], 100.0), [0.0; 5]);
        assert_eq!(
            bar_lengths(&[1, 0, 2, 0, 4], 100.0),
            [25.0, 0.0, 50.0, 0.0, 100.0]
        );
        let svg = histogram("h", &[1, 0, 2, 0, 4], "7 ratings").into_string();
        assert!(svg.contains("role=\"img\""), "{svg}");
        assert!(
            svg.contains("<title id=\"h-title\">7 ratings</title>"),
            "{svg}"
        );
        assert!(svg.contains("aria-labelledby=\"h-title\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 5);
        // Five stars first, the longest bar; one star a quarter of it.
        let five = svg.find("data-star=\"5\"").unwrap();
        let one = svg.find("data-star=\"1\"").unwrap();
        assert!(five < one);
        assert!(
            svg.contains("data-star=\"5\" x=\"40\" y=\"5\" width=\"230\""),
            "{svg}"
        );
        assert!(svg.contains("width=\"57.5\""), "{svg}");
        let empty = histogram("h", &[0; 5], "no rating").into_string();
        assert_eq!(empty.matches("width=\"0\"").count(), 5, "{empty}");
        assert!(!empty.contains("NaN"));
    }

    #[test]
    fn a_plot_needs_a_point_and_puts_one_in_the_middle() {
        assert!(plot("p", &[], "none").is_none());
        assert!(plot_coords(&[], PLOT_W, PLOT_H).is_empty());
        let one = plot_coords(&[(1_000, 5.0)], PLOT_W, PLOT_H);
        assert_eq!(one.len(), 1);
        let middle = PLOT_LEFT + (PLOT_W - PLOT_LEFT - PLOT_RIGHT) / 2.0;
        assert_eq!(one[0], (middle, PLOT_TOP));
        let svg = plot("p", &[(1_000, 5.0)], "one review")
            .unwrap()
            .into_string();
        assert!(
            svg.contains("role=\"img\"") && svg.contains("one review"),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!svg.contains("<polyline"), "no line through one point");
        assert!(svg.contains("1970-01-01"), "{svg}");
    }

    #[test]
    fn time_runs_left_to_right_and_better_ratings_are_higher() {
        let c = plot_coords(&[(0, 1.0), (50, 3.0), (100, 5.0)], PLOT_W, PLOT_H);
        assert_eq!(c[0], (PLOT_LEFT, PLOT_H - PLOT_BOTTOM));
        assert_eq!(c[2], (PLOT_W - PLOT_RIGHT, PLOT_TOP));
        assert!(c[1].0 > c[0].0 && c[1].0 < c[2].0);
        assert!(c[1].1 < c[0].1 && c[1].1 > c[2].1);
        let svg = plot("p", &[(0, 1.0), (86_400_000, 5.0)], "two")
            .unwrap()
            .into_string();
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("1970-01-02"), "{svg}");
    }

    #[test]
    fn the_mean_over_time_ends_at_the_products_mean() {
        // 10 reviews in all, summing 40 (mean 4); the window holds the newest three.
        let pts = mean_over_time(&[(30, 5), (10, 1), (20, 5)], 40, 10);
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[2], (30, 4.0));
        assert_eq!(pts[1], (20, 35.0 / 9.0));
        assert_eq!(pts[0], (10, 30.0 / 8.0));
        // Never below zero reviews.
        assert_eq!(mean_over_time(&[(1, 3), (2, 3)], 3, 1).len(), 1);
        assert!(mean_over_time(&[], 0, 0).is_empty());
        // The far future does not break the dates.
        assert_eq!(day(u64::MAX), "9999-12-31");
    }

    #[test]
    fn thinning_keeps_the_ends_and_at_most_the_number_asked() {
        let all: Vec<u32> = (0..1000).collect();
        let few = thin(&all, MAX_POINTS);
        assert_eq!(few.len(), MAX_POINTS);
        assert_eq!(few.first(), Some(&0));
        assert_eq!(few.last(), Some(&999));
        assert_eq!(thin(&all[..3], 10), vec![0, 1, 2]);
        assert!(thin::<u32>(&[], 10).is_empty());
        let svg = plot(
            "p",
            &(0..500u64).map(|i| (i, 3.0)).collect::<Vec<_>>(),
            "many",
        )
        .unwrap()
        .into_string();
        assert_eq!(svg.matches("<circle").count(), MAX_POINTS);
    }

    #[test]
    fn days_and_means_are_written_for_people() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(minute(90_000), "1970-01-01 00:01");
        assert_eq!(decimal(4.24, ","), "4,2");
        assert_eq!(decimal(4.0, "."), "4.0");
    }
}
