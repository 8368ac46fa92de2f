//! The producer's inbox (`/inbox`): everything aimed at the node's user's key, newest first
//! — the reviews of their products, the petitions aimed at them (proposals and campaigns
//! too), and the petitions that reached their threshold — with unread marks, a form to mark
//! all read, and on each petition and review a form to answer it.
//!
//! The list is the producer's feedback topic read backwards (a bounded number of records
//! per page, `?before=CURSOR` for older ones) and the threshold crossings of the petitions
//! aimed at the producer, merged by time. `GET /inbox/items/{id}` gives one item's markup,
//! for the page's script to add what arrives live.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::RespondRequest;
use chorus_protocol::{AuthorKey, Body, RecordId, ResponseStatus, Role, SignedRecord, Topic};
use maud::{html, Markup};
use serde::Deserialize;

use super::feedback::{self, PetitionLine, Reply};
use super::product::{self, ReviewLine};
use super::WebState;
use super::{chart, csrf_ok, html, lang, pages, read_mark, refused, LoggedIn, Strings};
use crate::api::ApiError;

/// Items on one page, at most.
const PAGE: usize = 60;
/// Records of the feedback topic read for one page, at most: endorsements travel on it too,
/// and a page must not cost the topic's whole history.
const SCAN_MAX: usize = 20_000;
/// Bytes of markup the list may take.
const BUDGET: usize = 110_000;
/// Characters of a petition's text shown in the inbox (its page has the rest).
const EXCERPT: usize = 400;

/// What an inbox item is.
enum What {
    Review(ReviewLine),
    Petition {
        line: PetitionLine,
        author: String,
        text: String,
        reply: Option<Reply>,
    },
    /// A petition that reached its threshold.
    Crossing(PetitionLine),
}

/// One line of the inbox.
struct Item {
    /// Its place in time: (created_at, id) of the record, or for a crossing (when the
    /// petition was first reached, the petition's id).
    key: (u64, RecordId),
    unread: bool,
    what: What,
}

/// A respond form sent back with what was wrong, to show beside its fields.
#[derive(Default)]
struct Attempt {
    target: String,
    status: String,
    text: String,
    status_error: Option<String>,
    text_error: Option<String>,
    /// An error of neither field.
    error: Option<String>,
}

/// An item for a record of the feedback topic, if it is a review or a petition.
fn record_item(
    s: &WebState,
    t: &Strings,
    rec: &SignedRecord,
    read_up_to: u64,
) -> crate::error::Result<Option<Item>> {
    let key = (rec.record().created_at, rec.id());
    let what = match &rec.record().body {
        Body::Review(_) => match product::review_line(s, rec)? {
            Some(l) => What::Review(l),
            None => return Ok(None),
        },
        Body::Petition(p) => {
            let tally = s.store.tally(&rec.id())?;
            let Some(line) = feedback::petition_line(t, rec, tally.as_ref()) else {
                return Ok(None);
            };
            What::Petition {
                line,
                author: feedback::name(s, &rec.author()),
                text: p.text.chars().take(EXCERPT).collect(),
                reply: feedback::reply_to(&s.store, &rec.id(), &s.author)?,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Item {
        key,
        unread: key.0 > read_up_to,
        what,
    }))
}

/// The item of a petition's threshold crossing, if it reached it.
fn crossing_item(
    s: &WebState,
    t: &Strings,
    petition: &RecordId,
    read_up_to: u64,
) -> crate::error::Result<Option<Item>> {
    let Some(tally) = s.store.tally(petition)? else {
        return Ok(None);
    };
    let (Some(at), Some(rec)) = (tally.first_reached_at, s.store.record(petition)?) else {
        return Ok(None);
    };
    Ok(
        feedback::petition_line(t, &rec, Some(&tally)).map(|line| Item {
            key: (at, *petition),
            unread: at > read_up_to,
            what: What::Crossing(line),
        }),
    )
}

/// One page of the inbox before `before`, newest first, and where the next page starts.
fn gather(
    s: &WebState,
    t: &Strings,
    me: &AuthorKey,
    before: Option<(u64, RecordId)>,
    read_up_to: u64,
) -> crate::error::Result<(Vec<Item>, Option<feedback::Cursor>)> {
    let topic = Topic::Producer(*me);
    let mut items = Vec::new();
    let mut from = before;
    let mut read = 0usize;
    let mut endorsed = std::collections::BTreeSet::new();
    // Where the topic's reading stopped (`None`: at its oldest record).
    let stop = 'scan: loop {
        let page = s.store.newest_on_topic(&topic, from, 256)?;
        read += page.records.len();
        for rec in &page.records {
            // A petition is first reached by an endorsement (PROTOCOL.md §9): its crossing
            // lies in the stretch read if one of the endorsements read is of it.
            if let Body::Endorsement(e) = &rec.record().body {
                endorsed.insert(e.petition);
            }
            if let Some(item) = record_item(s, t, rec, read_up_to)? {
                items.push(item);
                if items.len() >= PAGE {
                    break 'scan Some((rec.record().created_at, rec.id()));
                }
            }
        }
        match page.next {
            Some(n) if read < SCAN_MAX => from = Some(n),
            next => break next,
        }
    };
    // The crossings in the stretch of time read.
    for pid in endorsed {
        let Some(at) = s.store.tally(&pid)?.and_then(|tl| tl.first_reached_at) else {
            continue;
        };
        let key = (at, pid);
        if before.is_some_and(|b| key >= b) || stop.is_some_and(|st| key <= st) {
            continue;
        }
        if let Some(item) = crossing_item(s, t, &pid, read_up_to)? {
            items.push(item);
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.key));
    if items.len() > PAGE {
        items.truncate(PAGE);
        let last = items.last().map(|i| i.key);
        return Ok((items, last));
    }
    Ok((items, stop))
}

/// Is the node's user a producer (their profile says so)?
fn is_producer(s: &WebState) -> crate::error::Result<bool> {
    Ok(s.store.profile(&s.author)?.is_some_and(
        |p| matches!(&p.record().body, Body::Profile(pr) if pr.role == Role::Producer),
    ))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    before: Option<String>,
}

/// `GET /inbox`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    render(&s, &headers, &me, q.before, None, StatusCode::OK).await
}

/// The inbox page, with a respond form's errors if one was sent back.
async fn render(
    s: &WebState,
    headers: &HeaderMap,
    me: &LoggedIn,
    before_text: Option<String>,
    attempt: Option<Attempt>,
    code: StatusCode,
) -> Result<Response, ApiError> {
    let t = lang(headers);
    let status = crate::api::status_of(s).await?;
    let before = feedback::parse_cursor(before_text.as_deref());
    let mark_file = read_mark::path(s.web.dir());
    let (items, next, producer, read_up_to) = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || -> crate::error::Result<_> {
            let read_up_to = read_mark::read(mark_file.as_deref());
            let (items, next) = gather(&s, t, &s.author, before, read_up_to)?;
            Ok((items, next, is_producer(&s)?, read_up_to))
        })
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??
    };
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    let csrf = &me.session.csrf;
    let before_field = before.map(|(at, id)| feedback::cursor(at, &id));
    let (shown, left) = feedback::within(
        BUDGET,
        items.iter().map(|i| {
            item(
                t,
                i,
                &s.author,
                csrf,
                before_field.as_deref(),
                attempt.as_ref(),
            )
        }),
    );
    let next = if left > 0 {
        items.get(shown.len().saturating_sub(1)).map(|i| i.key)
    } else {
        next
    };
    let unread = items.iter().take(shown.len()).filter(|i| i.unread).count();
    let newest = items.first().map(|i| i.key.0).unwrap_or(0).max(read_up_to);
    // An error about a form this page does not show (or about none of its fields).
    let stray = attempt.as_ref().and_then(|a| {
        let shown_here = items.iter().any(|i| i.key.1.to_string() == a.target);
        match (&a.error, shown_here) {
            (Some(e), _) => Some(e.clone()),
            (None, false) => a.status_error.clone().or_else(|| a.text_error.clone()),
            _ => None,
        }
    });
    let key = s.author.to_string();
    let body = html! {
        h1 { (t.nav_inbox) }
        p { (t.inbox_intro) }
        @if !producer {
            section.notice aria-labelledby="not-producer" {
                h2 #not-producer { (t.not_producer_title) }
                p { (t.not_producer) }
                pre { code { "chorus profile --name NAME --role producer" } }
            }
        }
        @if let Some(e) = &stray {
            p.field-error role="alert" { (e) }
        }
        div.inbox-bar {
            p #inbox-unread-line {
                span #inbox-unread.count { (unread) } " " (t.unread)
            }
            form #mark-read method="post" action="/inbox/read" {
                input type="hidden" name="csrf" value=(csrf);
                input #mark-read-upto type="hidden" name="upto" value=(newest);
                button type="submit" { (t.mark_read) }
            }
        }
        @if shown.is_empty() && before.is_none() {
            p #inbox-empty { (t.inbox_empty) }
        }
        ul.items.inbox #inbox-items data-producer=(key) data-read-up-to=(read_up_to) {
            @for m in shown { (m) }
        }
        nav.pager aria-label=(t.nav_inbox) {
            @if before.is_some() { a href="/inbox" { (t.newest_first) } " " }
            @if let Some((at, id)) = next {
                a rel="next" href={"/inbox?before=" (feedback::cursor(at, &id))} { (t.older) }
            }
        }
    };
    Ok(html(code, pages::page(t, t.nav_inbox, Some(&header), body)))
}

/// An inbox item: what it is, who sent it, when, its unread and crossing marks, and for a
/// petition or review the producer's answer and the form to answer.
fn item(
    t: &Strings,
    i: &Item,
    me: &AuthorKey,
    csrf: &str,
    before: Option<&str>,
    attempt: Option<&Attempt>,
) -> Markup {
    let (at, id) = i.key;
    let attempt = attempt.filter(|a| a.target == id.to_string());
    let when = html! { time datetime=(chart::day(at)) { (chart::minute(at)) } };
    let unread = html! {
        @if i.unread { span.unread-mark { (t.new_mark) } " " }
    };
    match &i.what {
        What::Review(r) => html! {
            li.inbox-item.review.unread[i.unread] #{"item-" (id)} data-record=(id) data-at=(at) {
                p.meta {
                    (unread)
                    span.tag { (t.a_review) } " "
                    a href=(feedback::product_href(me, &r.code)) { (r.code) } " "
                    (product::stars(t, r.rating)) " · " (t.by) " " (r.author) " · " (when)
                    @if !r.counted { " · " span.warn { (t.not_counted) } }
                }
                @if let Some(title) = &r.title { p { strong { (title) } } }
                p { (r.text) }
                @if let Some(reply) = &r.reply { (product::reply_block(t, reply)) }
                (respond_form(t, id, csrf, before, attempt))
            }
        },
        What::Petition {
            line,
            author,
            text,
            reply,
        } => html! {
            li.inbox-item.petition.unread[i.unread] #{"item-" (id)} data-record=(id) data-petition=(id) data-at=(at) {
                p.meta {
                    (unread)
                    span.tag { (line.variant.unwrap_or(t.demand)) } " "
                    a href={"/petitions/" (id)} { strong { (line.title) } }
                    @if let Some(code) = &line.product {
                        " · " (t.about) " " (code)
                    }
                    " · " (t.by) " " (author) " · " (when)
                }
                p { (text) }
                p {
                    span.count.reached[line.reached] {
                        span.live-count { (line.endorsers) } "/" (line.threshold) " " (t.endorsers)
                        ", " (line.state)
                        @if line.reached { ", " (t.reached) }
                    }
                }
                @if let Some(reply) = reply { (product::reply_block(t, reply)) }
                (respond_form(t, id, csrf, before, attempt))
            }
        },
        What::Crossing(line) => html! {
            li.inbox-item.crossing.unread[i.unread] #{"crossing-" (id)} data-petition=(id) data-at=(at) {
                p.meta {
                    (unread)
                    strong.crossing-mark { (t.threshold_crossed) } " "
                    a href={"/petitions/" (id)} { (line.title) } " · " (when)
                }
                p {
                    span.count.reached {
                        span.live-count { (line.endorsers) } "/" (line.threshold) " " (t.endorsers)
                    }
                }
            }
        },
    }
}

/// The form that answers a petition or review: a status and a text, each with its error
/// beside it when the last attempt was refused.
fn respond_form(
    t: &Strings,
    target: RecordId,
    csrf: &str,
    before: Option<&str>,
    attempt: Option<&Attempt>,
) -> Markup {
    let sid = format!("status-{target}");
    let tid = format!("text-{target}");
    let (serr, terr) = (format!("{sid}-error"), format!("{tid}-error"));
    let status_error = attempt.and_then(|a| a.status_error.as_deref());
    let text_error = attempt.and_then(|a| a.text_error.as_deref());
    let chosen = attempt.map(|a| a.status.as_str()).unwrap_or("");
    let text = attempt.map(|a| a.text.as_str()).unwrap_or("");
    html! {
        details.respond open[attempt.is_some()] {
            summary { (t.respond) }
            form.respond-form method="post" action="/inbox/respond" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="target" value=(target);
                @if let Some(b) = before { input type="hidden" name="before" value=(b); }
                p.field {
                    label for=(sid) { (t.status_label) }
                    select #(sid) name="status"
                        aria-invalid=[status_error.map(|_| "true")]
                        aria-describedby=[status_error.map(|_| serr.as_str())]
                        autofocus[status_error.is_some()] {
                        option value="" selected[chosen.is_empty()] { (t.choose_status) }
                        @for st in ResponseStatus::ALL {
                            option value=(st.as_str()) selected[chosen == st.as_str()] {
                                (feedback::status_word(t, st.as_str()))
                            }
                        }
                    }
                    @if let Some(e) = status_error {
                        span.field-error #(serr) { (e) }
                    }
                }
                p.field {
                    label for=(tid) { (t.answer_label) }
                    textarea #(tid) name="text" rows="3" maxlength="2000" aria-required="true"
                        aria-invalid=[text_error.map(|_| "true")]
                        aria-describedby=[text_error.map(|_| terr.as_str())]
                        autofocus[text_error.is_some() && status_error.is_none()] { (text) }
                    @if let Some(e) = text_error {
                        span.field-error #(terr) { (e) }
                    }
                }
                button type="submit" { (t.send_answer) }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RespondForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    text: String,
    before: Option<String>,
}

/// `POST /inbox/respond`: answers a petition or review as its producer (what
/// `POST /v1/respond` does), then shows the inbox again at the item; a refused answer
/// shows the form again with the error beside its field.
pub(super) async fn respond(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<RespondForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let text = f.text.trim().to_string();
    let mut attempt = Attempt {
        target: f.target.clone(),
        status: f.status.clone(),
        text: f.text.clone(),
        ..Attempt::default()
    };
    if f.status.parse::<ResponseStatus>().is_err() {
        attempt.status_error = Some(t.err_status.to_string());
    }
    if text.is_empty() {
        attempt.text_error = Some(t.err_text_empty.to_string());
    } else if text.len() > chorus_protocol::Limits::TEXT {
        attempt.text_error = Some(t.err_text_long.to_string());
    }
    if attempt.status_error.is_some() || attempt.text_error.is_some() {
        return render(
            &s,
            &headers,
            &me,
            f.before,
            Some(attempt),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let req = RespondRequest {
        target: f.target.clone(),
        status: f.status.clone(),
        text,
        root: None,
    };
    match crate::api::respond(State(s.api.clone()), crate::api::JsonBody(req)).await {
        Ok(_) => {
            // Only a cursor that reads back goes into the path (it is the form's text).
            let before = f
                .before
                .as_deref()
                .and_then(|b| feedback::parse_cursor(Some(b)))
                .map(|(at, id)| feedback::cursor(at, &id));
            let target = f
                .target
                .parse::<RecordId>()
                .map(|id| id.to_string())
                .unwrap_or_default();
            let back = match before {
                Some(b) => format!("/inbox?before={b}#item-{target}"),
                None => format!("/inbox#item-{target}"),
            };
            Ok(Redirect::to(&back).into_response())
        }
        Err(e) => {
            match e.code() {
                "bad_status" => attempt.status_error = Some(e.message().to_string()),
                "invalid-text" => attempt.text_error = Some(e.message().to_string()),
                _ => attempt.error = Some(e.message().to_string()),
            }
            let code = e.status();
            render(&s, &headers, &me, f.before, Some(attempt), code).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ReadForm {
    #[serde(default)]
    csrf: String,
    /// The creation time of the newest item the page showed.
    upto: u64,
}

/// `POST /inbox/read`: marks read every item up to the newest the page showed (what
/// arrived after it stays unread).
pub(super) async fn mark_read(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<ReadForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    // Not past the clock (with the protocol's allowed skew): a forged time would mark
    // what has not arrived yet.
    let up_to = f
        .upto
        .min(crate::clock::now_ms().saturating_add(chorus_protocol::DEFAULT_SKEW_MS));
    let file = read_mark::path(s.web.dir());
    let done = tokio::task::spawn_blocking(move || read_mark::mark(file.as_deref(), up_to)).await;
    match done {
        Ok(Ok(())) => Redirect::to("/inbox").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not keep the inbox's read mark");
            let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string());
            super::failed(t, &e, "/inbox")
        }
        Err(_) => super::failed(
            t,
            &ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the node is stopping",
            ),
            "/inbox",
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct FragmentQuery {
    /// The item of the petition's threshold crossing, not of the petition.
    #[serde(default)]
    crossing: bool,
}

/// `GET /inbox/items/{id}`: one inbox item (an `li`), for the page's script to add what
/// arrives live; 404 for a record not aimed at the user.
pub(super) async fn fragment(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Path(id): Path<String>,
    Query(q): Query<FragmentQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let Ok(id) = id.parse::<RecordId>() else {
        return Ok(super::not_found(headers).await);
    };
    let mark_file = read_mark::path(s.web.dir());
    let found = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || -> crate::error::Result<Option<Item>> {
            let read_up_to = read_mark::read(mark_file.as_deref());
            let Some(rec) = s.store.record(&id)? else {
                return Ok(None);
            };
            if rec.record().topic != Topic::Producer(s.author) {
                return Ok(None);
            }
            if q.crossing {
                if !matches!(rec.record().body, Body::Petition(_)) {
                    return Ok(None);
                }
                return crossing_item(&s, t, &id, read_up_to);
            }
            record_item(&s, t, &rec, read_up_to)
        })
        .await
        .map_err(|_| crate::error::Error::NodeStopped)??
    };
    match found {
        Some(i) => Ok(html(
            StatusCode::OK,
            item(t, &i, &s.author, &me.session.csrf, None, None),
        )),
        None => Ok(super::not_found(headers).await),
    }
}
