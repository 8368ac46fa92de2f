//! The watchdog's audit page (`/audit`): the last audit report of this node's store, its
//! errors and warnings grouped by kind with their evidence, and on each finding that names
//! a subject a button that signs and publishes an attestation about it.
//!
//! The audit reads every record (`crate::audit`): on a store of a million records it takes
//! minutes, so a page never runs it. `POST /audit` starts one in the background (one at a
//! time) and waits a few seconds for it, which is enough on a small store; the page shows
//! the last report, kept in memory until the node stops, and says when one is running.
//! Findings are shown a page at a time so that a page stays small whatever the store holds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::AttestRequest;
use chorus_protocol::{Body, RecordId};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::strings::Strings;
use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn};
use crate::api::ApiError;
use crate::audit::{Finding, Report, Severity};

/// Findings on one page: a finding with its evidence and form is about 2 KB, so a page
/// stays well under 150 KB.
const PAGE: usize = 40;
/// Keys shown of a finding's list (the rest are counted).
const KEYS_SHOWN: usize = 8;
/// Keys one `one-actor` attestation names at most (`POST /v1/attest`).
const MAX_KEYS: usize = 64;
/// Attestations one click signs at most: a chain of them covers 1 + 16 × 63 = 1,009 keys.
const MAX_CHAIN: usize = 16;
/// How long `POST /audit` waits for the audit before showing the page.
const WAIT: Duration = Duration::from_secs(3);

/// One finished audit.
pub(crate) struct Run {
    /// Counts the runs since the node started; forms name the run they came from.
    number: u64,
    /// When it started (ms).
    started: u64,
    took_ms: u64,
    outcome: Result<Report, String>,
}

#[derive(Default)]
struct Runs {
    count: u64,
    /// The start (ms) of the run under way.
    running: Option<u64>,
    last: Option<Arc<Run>>,
}

/// The node's audits as the dashboard ran them: the last report, and whether one is under
/// way. Kept in memory: a restart forgets the report, as it would be stale anyway.
#[derive(Default)]
pub(crate) struct Audits {
    runs: Mutex<Runs>,
}

impl Audits {
    fn now(&self) -> (Option<u64>, Option<Arc<Run>>) {
        let r = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        (r.running, r.last.clone())
    }

    /// Marks a run as started; `None` if one is already under way.
    fn start(&self, at: u64) -> Option<u64> {
        let mut r = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if r.running.is_some() {
            return None;
        }
        r.running = Some(at);
        r.count += 1;
        Some(r.count)
    }

    fn finish(&self, run: Run) {
        let mut r = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        r.running = None;
        r.last = Some(Arc::new(run));
    }
}

/// A key as people read it: its first 12 hex digits, the whole key in the title, and the
/// name of its profile when this node holds one.
pub(super) fn key_markup(full: &str, name: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = name { (n) " " }
        code.key title=(full) { (short(full)) }
    }
}

/// The first 12 hex digits of a key or id.
pub(super) fn short(full: &str) -> &str {
    full.get(..12).unwrap_or(full)
}

/// A time in ms since the epoch, as UTC.
pub(super) fn when(ms: u64) -> Markup {
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms));
    html! { time datetime=(at) { (at) } }
}

/// The name of the profile of `key` (hex) this node holds, if any.
fn name_of(s: &WebState, key: &str) -> Option<String> {
    let k = key.parse().ok()?;
    s.store.name_of(&k).ok().flatten()
}

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    /// Only findings of this kind.
    #[serde(default)]
    code: Option<String>,
    /// Which page of findings (from 1); taken as text so that a mangled address shows the
    /// first page rather than an error.
    #[serde(default)]
    page: Option<String>,
    /// Attestations just made (comma-separated ids), to confirm.
    #[serde(default)]
    attested: Option<String>,
}

/// `GET /audit`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let status = crate::api::status_of(&s).await?;
    let (running, last) = s.web.audits.now();
    let csrf = me.session.csrf.clone();
    // Names and kinds of what the evidence names are read from the store: off the async
    // threads.
    let body = tokio::task::spawn_blocking({
        let s = s.clone();
        move || audit_body(&s, t, &csrf, running, last.as_deref(), &q)
    })
    .await
    .map_err(|_| crate::error::Error::NodeStopped)?;
    let header = pages::Header {
        status: &status,
        csrf: &me.session.csrf,
    };
    Ok(html(
        StatusCode::OK,
        pages::page(t, t.audit_title, Some(&header), body),
    ))
}

impl Strings {
    /// A finding's code in words (the code itself if it is a new one).
    pub(super) fn finding_kind<'a>(&self, code: &'a str) -> &'a str {
        self.finding_kinds
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(code, |(_, w)| *w)
    }

    /// An evidence field's name in words (the field itself if it is a new one).
    pub(super) fn evidence_label<'a>(&self, field: &'a str) -> &'a str {
        self.evidence_labels
            .iter()
            .find(|(c, _)| *c == field)
            .map_or(field, |(_, w)| *w)
    }

    /// Error or warning, in words.
    pub(super) fn severity(&self, s: Severity) -> &'static str {
        match s {
            Severity::Error => self.severity_error,
            Severity::Warning => self.severity_warning,
        }
    }

    /// "and N more".
    pub(super) fn and_more(&self, n: usize) -> String {
        format!("… {} {n} {}", self.and_n_more.0, self.and_n_more.1)
    }
}

/// The links between the watchdog's pages; `here` is the current one's path.
pub(super) fn watchdog_nav(t: &Strings, here: &str) -> Markup {
    let pages = [
        ("/audit", t.audit_title),
        ("/trust", t.trust_title),
        ("/verify", t.verify_title),
    ];
    html! {
        nav.watchdog aria-label=(t.nav_watchdog) {
            @for (href, label) in pages {
                a href=(href) aria-current=[(href == here).then_some("page")] { (label) }
            }
        }
    }
}

fn audit_body(
    s: &WebState,
    t: &Strings,
    csrf: &str,
    running: Option<u64>,
    last: Option<&Run>,
    q: &AuditQuery,
) -> Markup {
    html! {
        h1 { (t.audit_title) }
        (watchdog_nav(t, "/audit"))
        p { (t.audit_intro) }
        @if let Some(ids) = &q.attested {
            p.notice role="status" {
                (t.attested_done) " "
                @for (i, id) in ids.split(',').take(MAX_CHAIN).enumerate() {
                    @if i > 0 { ", " }
                    code.key title=(id) { (short(id)) }
                }
            }
        }
        @if let Some(at) = running {
            p.running role="status" data-refresh="3" {
                (t.audit_running) " " (when(at)) ". "
                a href="/audit" { (t.audit_reload) }
            }
        }
        form.run method="post" action="/audit" {
            input type="hidden" name="csrf" value=(csrf);
            button #run-audit type="submit" disabled[running.is_some()] {
                @if last.is_some() { (t.audit_run_again) } @else { (t.audit_run) }
            }
            " " span.hint { (t.audit_run_hint) }
        }
        @match last {
            None => p #no-audit { (t.audit_none) },
            Some(run) => (report(s, t, csrf, run, q)),
        }
    }
}

fn report(s: &WebState, t: &Strings, csrf: &str, run: &Run, q: &AuditQuery) -> Markup {
    let r = match &run.outcome {
        Ok(r) => r,
        Err(e) => {
            return html! {
                p.error role="alert" { (t.audit_failed) " " (e) }
            }
        }
    };
    // Each kind once, in the report's order (errors first), with its count.
    let mut kinds: Vec<(&str, Severity, usize)> = Vec::new();
    for f in &r.findings {
        match kinds.iter_mut().find(|(c, _, _)| *c == f.code) {
            Some(k) => k.2 += 1,
            None => kinds.push((f.code.as_str(), f.severity, 1)),
        }
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| kinds.iter().any(|k| k.0 == *c));
    let chosen: Vec<(usize, &Finding)> = r
        .findings
        .iter()
        .enumerate()
        .filter(|(_, f)| code.is_none_or(|c| f.code == c))
        .collect();
    let pages = chosen.len().div_ceil(PAGE).max(1);
    let page = super::number_in(q.page.as_deref(), 1, pages).max(1);
    let from = (page - 1) * PAGE;
    let shown = &chosen[from..(from + PAGE).min(chosen.len())];
    let link = |p: usize| match code {
        Some(c) => format!("/audit?code={c}&page={p}"),
        None => format!("/audit?page={p}"),
    };
    html! {
        section #report aria-labelledby="report-title" data-run=(run.number) {
            h2 #report-title { (t.audit_last) }
            p {
                (when(run.started)) " · " (t.audit_took) " "
                (format!("{:.1}", run.took_ms as f64 / 1000.0)) " s"
            }
            ul.summary {
                li { strong { (r.records) } " " (t.audit_records) }
                li { strong { (r.verified) } " " (t.audit_verified) }
                li { strong { (r.petitions) } " " (t.audit_petitions) }
                li.errors[r.errors > 0] { strong #error-count { (r.errors) } " " (t.audit_errors) }
                li.warnings[r.warnings > 0] { strong #warning-count { (r.warnings) } " " (t.audit_warnings) }
            }
            @if r.findings.is_empty() {
                p #audit-clean { (t.audit_clean) }
            } @else {
                nav.kinds aria-label=(t.audit_by_kind) {
                    ul {
                        li {
                            @if code.is_none() { strong aria-current="page" { (t.audit_all) } }
                            @else { a href="/audit" { (t.audit_all) } }
                            " (" (r.findings.len()) ")"
                        }
                        @for (c, sev, n) in &kinds {
                            li.(sev.as_str()) {
                                @if code == Some(*c) { strong aria-current="page" { (t.finding_kind(c)) } }
                                @else { a href={"/audit?code=" (c)} { (t.finding_kind(c)) } }
                                " (" (n) ")"
                            }
                        }
                    }
                }
                p #shown {
                    (t.audit_findings) " " (from + 1) "–" (from + shown.len())
                    " " (t.audit_of) " " (chosen.len())
                }
                (groups(s, t, csrf, run.number, shown))
                @if pages > 1 {
                    nav.pages aria-label=(t.audit_findings) {
                        @if page > 1 { a rel="prev" href=(link(page - 1)) { (t.audit_previous) } " " }
                        (page) " / " (pages)
                        @if page < pages { " " a rel="next" href=(link(page + 1)) { (t.audit_next) } }
                    }
                }
            }
        }
    }
}

/// The findings of a page, grouped by kind (they come sorted by severity; a kind's
/// findings are kept together in the order met).
fn groups(s: &WebState, t: &Strings, csrf: &str, run: u64, shown: &[(usize, &Finding)]) -> Markup {
    let mut by_kind: Vec<(&Finding, Vec<(usize, &Finding)>)> = Vec::new();
    for (i, f) in shown {
        match by_kind.iter_mut().find(|(first, _)| first.code == f.code) {
            Some(g) => g.1.push((*i, f)),
            None => by_kind.push((f, vec![(*i, f)])),
        }
    }
    html! {
        @for (first, items) in &by_kind {
            @let (code, severity) = (first.code.as_str(), &first.severity);
            section.findings.(severity.as_str()) aria-labelledby={"kind-" (code)} data-code=(code) {
                h3 #{"kind-" (code)} {
                    span.severity { (t.severity(*severity)) } " · " (t.finding_kind(code))
                    " " code { (code) }
                }
                ol.findings {
                    @for (i, f) in items {
                        (finding(s, t, csrf, run, *i, f))
                    }
                }
            }
        }
    }
}

fn finding(s: &WebState, t: &Strings, csrf: &str, run: u64, index: usize, f: &Finding) -> Markup {
    let mut fields: Vec<(&String, &Value)> = f
        .evidence
        .as_object()
        .map(|o| o.iter().collect())
        .unwrap_or_default();
    // In the order of the labels (what, who, then when), not the JSON's alphabetical one.
    fields.sort_by_key(|(k, _)| {
        t.evidence_labels
            .iter()
            .position(|(field, _)| field == k)
            .unwrap_or(usize::MAX)
    });
    html! {
        li.finding #{"finding-" (index)} data-code=(f.code) {
            p.message { (cut(f.message.clone())) }
            @if !fields.is_empty() {
                dl.evidence {
                    @for (k, v) in &fields {
                        dt { (t.evidence_label(k)) }
                        dd { (evidence(s, t, k, v)) }
                    }
                }
            }
            @if let Some(subject) = subject_of(f) {
                form.attest method="post" action="/audit/attest" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="run" value=(run);
                    input type="hidden" name="finding" value=(index);
                    @match &subject {
                        Subject::Keys(keys) => {
                            button.attest type="submit" data-verdict="one-actor" {
                                (t.attest_one_actor) " (" (keys.len()) ")"
                            }
                            @if keys.len() > MAX_KEYS {
                                " " span.hint { (t.attest_chain) }
                            }
                        }
                        Subject::Record(_) => {
                            button.attest type="submit" data-verdict="invalid" { (t.attest_invalid) }
                        }
                    }
                }
            }
        }
    }
}

/// One piece of evidence: ids linked to their petition's page, keys shortened (with the
/// name of their profile), times as dates, lists of keys bounded.
fn evidence(s: &WebState, t: &Strings, field: &str, v: &Value) -> Markup {
    match (field, v) {
        ("id" | "petition" | "target" | "stored_as", Value::String(id)) => record_link(s, id),
        ("author" | "expected", Value::String(k)) => key_markup(k, name_of(s, k).as_deref()),
        ("keys", Value::Array(keys)) => {
            let rest = keys.len().saturating_sub(KEYS_SHOWN);
            html! {
                ul.keys {
                    @for k in keys.iter().take(KEYS_SHOWN) {
                        @if let Some(k) = k.as_str() { li { (key_markup(k, name_of(s, k).as_deref())) } }
                    }
                    @if rest > 0 { li.more { (t.and_more(rest)) } }
                }
            }
        }
        (
            "created_at" | "from" | "to" | "deadline" | "first_seen" | "now" | "target_created_at",
            Value::Number(n),
        ) => match n.as_u64() {
            Some(ms) => when(ms),
            None => html! { (n) },
        },
        (_, Value::String(text)) => html! { span.text { (cut(text.clone())) } },
        (_, Value::Number(n)) => html! { (n) },
        // Derived state (a tally-mismatch's stored and recomputed values): compact JSON.
        (_, other) => html! { code.json { (cut(other.to_string())) } },
    }
}

/// A text cut to 600 bytes, so that one finding cannot fill the page.
fn cut(mut text: String) -> String {
    if text.len() > 600 {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A record id: a link to its page when this node holds it as a petition.
fn record_link(s: &WebState, id: &str) -> Markup {
    let petition = id
        .parse::<RecordId>()
        .ok()
        .and_then(|rid| s.store.record(&rid).ok().flatten())
        .is_some_and(|r| matches!(r.record().body, Body::Petition(_)));
    html! {
        @if petition {
            a href={"/petitions/" (id)} { code.id title=(id) { (short(id)) } }
        } @else {
            code.id title=(id) { (short(id)) }
        }
    }
}

/// What an attestation about a finding is about.
enum Subject {
    /// Keys that look like one actor (`one-actor`).
    Keys(Vec<String>),
    /// A record that breaks the rules (`invalid`).
    Record(String),
}

/// The subject a finding gives an attestation, if it gives one: the keys of a burst or of
/// idle endorsers, the record that is invalid or breaks a kind rule. Suspicions about time
/// and this node's own derived state name nobody to attest about.
fn subject_of(f: &Finding) -> Option<Subject> {
    let e = &f.evidence;
    match f.code.as_str() {
        "sybil-burst" | "idle-keys" => {
            let keys: Vec<String> = e["keys"]
                .as_array()?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            (!keys.is_empty()).then_some(Subject::Keys(keys))
        }
        // A record stored under another id is attested under the id it is stored as.
        "invalid-record" | "wrong-key" | "kind-rule" => e["stored_as"]
            .as_str()
            .or_else(|| e["id"].as_str())
            .map(|id| Subject::Record(id.to_string())),
        _ => None,
    }
}

/// Keys in sets of at most [`MAX_KEYS`], each set after the first starting with the last
/// key of the one before: sets that share a key are one actor (PROTOCOL.md §9.3), so the
/// chain says what one set would. At most [`MAX_CHAIN`] sets.
fn chained(keys: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < keys.len() && out.len() < MAX_CHAIN {
        let end = (start + MAX_KEYS).min(keys.len());
        out.push(keys[start..end].to_vec());
        if end == keys.len() {
            break;
        }
        start = end - 1;
    }
    out
}

#[derive(Deserialize)]
pub(super) struct RunForm {
    // Missing, it is refused as a wrong one is (403), not as a broken form.
    #[serde(default)]
    csrf: String,
}

/// `POST /audit`: starts an audit unless one is under way, waits a little for it, and
/// shows the page.
pub(super) async fn run(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<RunForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let started = crate::clock::now_ms();
    if let Some(number) = s.web.audits.start(started) {
        let task = tokio::spawn(async move {
            let store = s.store.clone();
            let cfg = s.audit.clone();
            let clock = std::time::Instant::now();
            let outcome = tokio::task::spawn_blocking(move || {
                crate::audit::audit(&store, &cfg, crate::clock::now_ms())
            })
            .await;
            let outcome = match outcome {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "the audit failed");
            }
            s.web.audits.finish(Run {
                number,
                started,
                took_ms: clock.elapsed().as_millis() as u64,
                outcome,
            });
        });
        // The task goes on if this gives up waiting: the page then says it is running.
        let _ = tokio::time::timeout(WAIT, task).await;
    }
    Redirect::to("/audit").into_response()
}

#[derive(Deserialize)]
pub(super) struct AttestForm {
    // Missing, it is refused as a wrong one is (403), not as a broken form.
    #[serde(default)]
    csrf: String,
    /// The run the finding is from (runs count from 1: missing, it names none).
    #[serde(default)]
    run: u64,
    /// The finding's place in that run's report.
    #[serde(default)]
    finding: usize,
}

/// `POST /audit/attest`: signs and publishes the attestation a finding gives (as
/// `POST /v1/attest` does): `one-actor` about its keys (a chain of attestations when there
/// are more than one may name), `invalid` about its record; then shows the audit again
/// with the attestations' ids.
pub(super) async fn attest(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<AttestForm>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    let (_, last) = s.web.audits.now();
    let found = last
        .as_deref()
        .filter(|r| r.number == f.run)
        .and_then(|r| r.outcome.as_ref().ok())
        .and_then(|r| r.findings.get(f.finding));
    let Some(finding) = found else {
        let e = ApiError::new(StatusCode::CONFLICT, "stale_report", t.attest_stale);
        return super::failed(t, &e, "/audit");
    };
    let Some(subject) = subject_of(finding) else {
        let e = ApiError::bad("bad_subject", t.attest_nothing);
        return super::failed(t, &e, "/audit");
    };
    let note = match finding.evidence["petition"].as_str() {
        Some(p) => format!("{} (petition {p})", finding.code),
        None => finding.code.clone(),
    };
    let requests = match subject {
        Subject::Keys(keys) => chained(&keys)
            .into_iter()
            .map(|ks| AttestRequest {
                verdict: "one-actor".into(),
                record: None,
                keys: Some(ks),
                note: Some(note.clone()),
            })
            .collect(),
        Subject::Record(id) => vec![AttestRequest {
            verdict: "invalid".into(),
            record: Some(id),
            keys: None,
            note: Some(note.clone()),
        }],
    };
    let mut ids = Vec::new();
    for r in requests {
        match crate::api::attest(State(s.api.clone()), crate::api::JsonBody(r)).await {
            Ok(created) => ids.push(created.0.id),
            Err(e) => return super::failed(t, &e, "/audit"),
        }
    }
    Redirect::to(&format!(
        "/audit?code={}&attested={}#finding-{}",
        finding.code,
        ids.join(","),
        f.finding
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:064x}")).collect()
    }

    #[test]
    fn up_to_64_keys_go_in_one_attestation() {
        assert_eq!(chained(&keys(1)), vec![keys(1)]);
        assert_eq!(chained(&keys(64)), vec![keys(64)]);
    }

    #[test]
    fn more_keys_go_in_a_chain_whose_sets_share_a_key() {
        let ks = keys(200);
        let chain = chained(&ks);
        assert_eq!(chain.len(), 4);
        assert!(chain.iter().all(|c| c.len() <= MAX_KEYS));
        for pair in chain.windows(2) {
            assert_eq!(pair[0].last(), pair[1].first());
        }
        // Every key is in some set.
        assert!(ks.iter().all(|k| chain.iter().any(|c| c.contains(k))));
    }

    #[test]
    fn a_chain_stops_at_its_cap() {
        let chain = chained(&keys(5_000));
        assert_eq!(chain.len(), MAX_CHAIN);
        assert_eq!(chain.iter().map(Vec::len).sum::<usize>(), 64 * 16);
    }
}
