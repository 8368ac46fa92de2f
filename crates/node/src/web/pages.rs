//! The dashboard's pages, as server-rendered HTML (maud): semantic elements, a skip link,
//! every string from [`super::strings`].

use chorus_client::Status;
use maud::{html, Markup, DOCTYPE};

use super::strings::Strings;

/// What the header shows of the node.
pub(crate) struct Header<'a> {
    pub(crate) status: &'a Status,
    /// The session's CSRF token (for the log-out form).
    pub(crate) csrf: &'a str,
}

/// A whole page: the head, the header (when logged in), and `body`.
pub(crate) fn page(t: &Strings, title: &str, header: Option<&Header>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(h) = header {
                    meta name="csrf-token" content=(h.csrf);
                }
                title { (title) " · " (t.title) }
                link rel="stylesheet" href="/assets/style.css";
                @if header.is_some() {
                    script src="/assets/app.js" defer {}
                }
            }
            body {
                a.skip href="#main" { (t.skip) }
                @if let Some(h) = header {
                    (site_header(t, h))
                }
                main #main { (body) }
            }
        }
    }
}

fn site_header(t: &Strings, h: &Header) -> Markup {
    let s = h.status;
    let free_mb = s.storage.free_bytes / 1_048_576;
    let used_mb = s.storage.used_bytes / 1_048_576;
    let now = crate::clock::now_ms();
    html! {
        header.site {
            a.brand href="/" { (t.title) }
            nav aria-label=(t.nav_label) {
                a href="/" { (t.nav_home) }
                a href="/browse" { (t.nav_browse) }
                a href="/write" { (t.nav_write) }
                a href="/inbox" { (t.nav_inbox) }
                a href="/products" { (t.nav_products) }
                a href="/audit" { (t.nav_watchdog) }
                a href="/node" { (t.nav_node) }
            }
            form role="search" method="get" action="/search" {
                label for="q" class="skip" { (t.search) }
                input #q type="search" name="q" placeholder=(t.search_hint);
                " "
                button type="submit" { (t.search) }
            }
            ul.status aria-label=(t.node_status_label) {
                li #status-peers { (t.peers) ": " (s.peers) }
                li #status-records { (t.records) ": " (s.records) }
                li { (t.disk_used) ": " (used_mb) " " (t.unit_mb) " (" (free_mb) " " (t.unit_mb) " " (t.free_short) ")" }
                li #status-sync {
                    @if !matches!(s.storage.state, chorus_client::StorageCondition::Ok) {
                        span.warn { (t.storage_failed) }
                    } @else if !s.sync_ready {
                        span.warn { (t.sync_rebuilding) }
                    } @else if let Some(p) = &s.last_pull {
                        a href="/node#peers" {
                            (t.last_pull) " " (ago(t, p.at, now))
                            ", " (p.report.stored) " " (t.fetched_short)
                        }
                    } @else {
                        (t.sync_ready)
                    }
                }
            }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(h.csrf);
                button type="submit" { (t.log_out) }
            }
        }
    }
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago".
pub(crate) fn ago(t: &Strings, at_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    let (n, unit) = match s {
        0..=59 => (s, "s"),
        60..=3599 => (s / 60, "min"),
        3600..=86_399 => (s / 3600, "h"),
        _ => (s / 86_400, t.day_unit),
    };
    t.ago.replace("{}", &format!("{n} {unit}"))
}

/// The page a browser without a session is sent to: how to log in.
pub(crate) fn welcome(t: &Strings) -> Markup {
    page(
        t,
        t.welcome_title,
        None,
        html! {
            h1 { (t.welcome_title) }
            p { (t.welcome_text) }
            p { (t.welcome_how) }
            pre { code { "chorus open" } }
        },
    )
}

/// A login link that was used, expired or never made.
pub(crate) fn link_used(t: &Strings) -> Markup {
    page(
        t,
        t.link_used_title,
        None,
        html! {
            h1 { (t.link_used_title) }
            p { (t.link_used_text) }
            pre { code { "chorus open" } }
        },
    )
}

/// A refused request, and why.
pub(crate) fn refused(t: &Strings, why: &str) -> Markup {
    page(
        t,
        t.refused_title,
        None,
        html! {
            h1 { (t.refused_title) }
            p { (why) }
        },
    )
}

/// No page at this path.
pub(crate) fn not_found(t: &Strings) -> Markup {
    page(
        t,
        t.not_found_title,
        None,
        html! {
            h1 { (t.not_found_title) }
            p { (t.not_found_text) " " a href="/" { (t.nav_home) } }
        },
    )
}

/// One line of a list on the home page.
pub(crate) struct Item {
    /// The petition it shows, whose live counts update it.
    pub(crate) petition: Option<String>,
    /// A live count (endorsers), shown before `detail`.
    pub(crate) count: Option<u64>,
    /// Where it links to, if anywhere.
    pub(crate) href: Option<String>,
    pub(crate) text: String,
    /// Counts and state, shown after the text.
    pub(crate) detail: String,
    /// Progress toward a goal (value, max), drawn as a bar.
    pub(crate) progress: Option<(u64, u64)>,
    pub(crate) reached: bool,
}

/// What the home page lists.
pub(crate) struct Home {
    pub(crate) name: Option<String>,
    pub(crate) key: String,
    pub(crate) petitions: Vec<Item>,
    pub(crate) endorsed: Vec<Item>,
    pub(crate) groups: Vec<Item>,
    pub(crate) reviews: Vec<Item>,
}

/// The consumer's home: what they take part in, with its counts.
pub(crate) fn home(t: &Strings, header: &Header, h: &Home) -> Markup {
    let list = |title: &str, id: &str, items: &[Item]| {
        html! {
            section aria-labelledby=(id) {
                h2 #(id) { (title) }
                @if items.is_empty() {
                    p { (t.none_yet) }
                } @else {
                    ul.items {
                        @for i in items {
                            li data-petition=[i.petition.as_deref()] {
                                @match &i.href {
                                    Some(href) => a href=(href) { (i.text) },
                                    None => span { (i.text) },
                                }
                                " "
                                span.count.reached[i.reached] {
                                    @if let Some(n) = i.count {
                                        span.live-count { (n) }
                                    }
                                    (i.detail)
                                }
                                @if let Some((v, max)) = i.progress {
                                    br;
                                    progress value=(v.min(max)) max=(max.max(1)) { (v) " / " (max) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        t,
        t.home_title,
        Some(header),
        html! {
            h1 { (t.home_title) }
            p {
                (t.you_are) " "
                @match &h.name {
                    Some(n) => strong { (n) },
                    None => a.warn href="/start" { (t.no_profile) },
                }
                " " code { (&h.key[..12.min(h.key.len())]) }
            }
            (list(t.my_petitions, "petitions", &h.petitions))
            (list(t.my_endorsements, "endorsed", &h.endorsed))
            (list(t.my_groups, "groups", &h.groups))
            (list(t.my_reviews, "reviews", &h.reviews))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_in_units() {
        let t = &super::super::strings::EN;
        assert_eq!(ago(t, 1_000, 13_000), "12 s ago");
        assert_eq!(ago(t, 0, 5 * 60_000), "5 min ago");
        assert_eq!(ago(t, 0, 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(t, 0, 2 * 86_400_000), "2 d ago");
        let fr = &super::super::strings::FR;
        assert_eq!(ago(fr, 0, 2 * 86_400_000), "il y a 2 j");
        // A clock that went back reads as now.
        assert_eq!(ago(t, 10_000, 0), "0 s ago");
    }
}
