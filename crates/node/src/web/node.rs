//! The node's own pages: `/node` (this node, its peers with the last pull from each, what it
//! follows, changed with a form) and `/start`, the first-run page (a profile, and the key
//! file to back up).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::{FollowRequest, ProfileRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::form::{general, Control, Field, Problem};
use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn, Strings};
use crate::api::{ApiError, JsonBody};

fn short(k: &str) -> &str {
    &k[..12.min(k.len())]
}

/// The follow form's fields.
#[derive(Deserialize, Default)]
pub(super) struct FollowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    what: String,
    #[serde(default)]
    value: String,
}

/// What the node page shows besides the status.
struct NodeView {
    peers: chorus_client::Peers,
    following: chorus_client::FollowSet,
    /// Names of the producers followed (by key), where known.
    names: Vec<(String, String)>,
    key_file: Option<String>,
}

async fn view_of(s: &WebState) -> Result<NodeView, ApiError> {
    let axum::Json(peers) = crate::api::peers(State(s.api.clone())).await?;
    let following = crate::api::status_of(s).await?.following;
    let names = following
        .producers
        .iter()
        .filter_map(|p| {
            let k = p.parse::<chorus_protocol::AuthorKey>().ok()?;
            Some((p.clone(), s.directory.name_of(&k)?))
        })
        .collect();
    Ok(NodeView {
        peers,
        following,
        names,
        key_file: s.web.key_file().map(|p| p.display().to_string()),
    })
}

fn node_page(
    t: &Strings,
    csrf: &str,
    st: &chorus_client::Status,
    v: &NodeView,
    form: &FollowForm,
    problem: Option<&Problem>,
) -> Markup {
    let now = crate::clock::now_ms();
    let name_of = |k: &str| {
        v.names
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| short(k).to_string())
    };
    let whats: [(&str, &str); 4] = [
        ("producer", t.f_producer),
        ("group", t.group),
        ("product", t.f_product),
        ("all", t.follow_all),
    ];
    let unfollow = |what: &str, value: &str| {
        html! {
            form.inline method="post" action="/node/unfollow" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="what" value=(what);
                input type="hidden" name="value" value=(value);
                button type="submit" aria-label={(t.unfollow) " " (value)} { (t.unfollow) }
            }
        }
    };
    html! {
        h1 { (t.nav_node) }
        section aria-labelledby="this-node" {
            h2 #this-node { (t.this_node) }
            dl.facts {
                dt { (t.peer_id) } dd { code { (st.peer_id) } }
                dt { (t.author_key) } dd { code { (st.author) } }
                dt { (t.records) } dd { (st.records) }
                dt { (t.disk_used) } dd { (st.storage.used_bytes / 1_048_576) " " (t.unit_mb) }
                dt { (t.free) } dd { (st.storage.free_bytes / 1_048_576) " " (t.unit_mb) }
                @for a in &st.listen_addrs {
                    dt { (t.listening_on) } dd { code { (a) } }
                }
                @if let Some(k) = &v.key_file {
                    dt { (t.key_file) } dd { code { (k) } " " span.warn { (t.back_it_up) } }
                }
            }
            form method="post" action="/node/sync" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { (t.catch_up_now) }
            }
        }
        section aria-labelledby="peers" {
            h2 #peers { (t.peers) " (" (v.peers.peers.len()) ")" }
            @if v.peers.peers.is_empty() && v.peers.pulls.is_empty() {
                p { (t.no_peers) }
            } @else {
                div.scroll {
                    table #peers-table {
                        thead { tr {
                            th scope="col" { (t.peer) }
                            th scope="col" { (t.connected) }
                            th scope="col" { (t.last_pull) }
                            th scope="col" { (t.fetched) }
                            th scope="col" { (t.received) }
                        } }
                        tbody {
                            @for p in &v.peers.peers {
                                @let pull = v.peers.pulls.iter().find(|l| &l.report.peer == p);
                                tr {
                                    td { code title=(p) { (&p[p.len().saturating_sub(12)..]) } }
                                    td { (t.yes) }
                                    (pull_cells(t, pull, now))
                                }
                            }
                            // Peers pulled from that are gone now.
                            @for l in v.peers.pulls.iter().filter(|l| !v.peers.peers.contains(&l.report.peer)).take(50) {
                                tr {
                                    td { code title=(l.report.peer) { (&l.report.peer[l.report.peer.len().saturating_sub(12)..]) } }
                                    td { (t.no) }
                                    (pull_cells(t, Some(l), now))
                                }
                            }
                        }
                    }
                }
            }
            @if !v.peers.banned.is_empty() {
                p { (t.banned) ": "
                    @for b in &v.peers.banned { code title=(b) { (&b[b.len().saturating_sub(12)..]) } " " }
                }
            }
        }
        section aria-labelledby="follows" {
            h2 #follows { (t.following) }
            @if v.following.all {
                p { strong { (t.follow_all) } " " (unfollow("all", "")) }
            }
            ul.items #following {
                @for p in &v.following.producers {
                    li { (t.f_producer) " " strong { (name_of(p)) } " " code { (short(p)) } " " (unfollow("producer", p)) }
                }
                @for g in &v.following.groups {
                    li { (t.group) " " a href={"/groups/" (g)} { code { (short(g)) } } " " (unfollow("group", g)) }
                }
                @for p in &v.following.products {
                    li { (t.f_product) " " code { (p) } " " (unfollow("product", p)) }
                }
            }
            @if !v.following.all && v.following.producers.is_empty() && v.following.groups.is_empty() && v.following.products.is_empty() {
                p { (t.none_yet) }
            }
            h3 { (t.follow_more) }
            (general(problem))
            form.write method="post" action="/node/follow" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                (Field { name: "what", label: t.f_follow_what, value: &form.what,
                    control: Control::Select(&whats), hint: None, required: true }.render(problem))
                (Field { name: "value", label: t.f_follow_value, value: &form.value,
                    control: Control::Text(None), hint: Some(t.f_follow_hint), required: false }.render(problem))
                button type="submit" { (t.follow) }
            }
        }
    }
}

fn pull_cells(t: &Strings, pull: Option<&chorus_client::PeerPull>, now: u64) -> Markup {
    html! {
        @match pull {
            Some(l) => {
                td { (pages::ago(t, l.at, now)) @if let Some(e) = &l.report.error { br; span.warn { (e) } } }
                td { (l.report.stored) " / " (l.report.fetched) }
                td { (l.report.bytes_received / 1024) " " (t.unit_kb) }
            }
            None => { td { "—" } td { "—" } td { "—" } }
        }
    }
}

async fn render(
    s: &WebState,
    me: &LoggedIn,
    t: &Strings,
    status: StatusCode,
    form: &FollowForm,
    problem: Option<&Problem>,
) -> Result<Response, ApiError> {
    let st = crate::api::status_of(s).await?;
    let v = view_of(s).await?;
    let header = pages::Header {
        status: &st,
        csrf: &me.session.csrf,
    };
    let body = node_page(t, &me.session.csrf, &st, &v, form, problem);
    Ok(html(
        status,
        pages::page(t, t.nav_node, Some(&header), body),
    ))
}

/// `GET /node`.
pub(super) async fn page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let form = FollowForm {
        what: "producer".into(),
        ..FollowForm::default()
    };
    render(&s, &me, t, StatusCode::OK, &form, None).await
}

fn request_of(f: &FollowForm) -> FollowRequest {
    let v = Some(f.value.trim().to_string());
    match f.what.as_str() {
        "group" => FollowRequest {
            group: v,
            ..FollowRequest::default()
        },
        "product" => FollowRequest {
            product: v,
            ..FollowRequest::default()
        },
        "all" => FollowRequest {
            all: true,
            ..FollowRequest::default()
        },
        _ => FollowRequest {
            producer: v,
            ..FollowRequest::default()
        },
    }
}

async fn change(
    s: WebState,
    headers: HeaderMap,
    me: LoggedIn,
    f: FollowForm,
    add: bool,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    if f.what != "all" && f.value.trim().is_empty() {
        let p = Problem::at("value", t.f_required);
        return render(&s, &me, t, StatusCode::UNPROCESSABLE_ENTITY, &f, Some(&p)).await;
    }
    let req = request_of(&f);
    let done = if add {
        crate::api::follow(State(s.api.clone()), JsonBody(req)).await
    } else {
        crate::api::unfollow(State(s.api.clone()), JsonBody(req)).await
    };
    match done {
        Ok(_) => Ok(Redirect::to("/node#follows").into_response()),
        Err(e) => {
            // Every refusal of a follow is about the value named.
            let mut p = Problem::of(&e, &[], &[]);
            p.field = Some("value".into());
            render(&s, &me, t, StatusCode::UNPROCESSABLE_ENTITY, &f, Some(&p)).await
        }
    }
}

/// `POST /node/follow`.
pub(super) async fn follow(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<FollowForm>,
) -> Result<Response, ApiError> {
    change(s, headers, me, f, true).await
}

/// `POST /node/unfollow`.
pub(super) async fn unfollow(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<FollowForm>,
) -> Result<Response, ApiError> {
    change(s, headers, me, f, false).await
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /node/sync`: pulls from every connected peer now, then shows the table.
pub(super) async fn sync(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return refused(t, t.refused_csrf);
    }
    // Bounded: a pull that hangs does not hold the browser.
    let pulls = tokio::time::timeout(std::time::Duration::from_secs(20), s.sync.sync_now(None));
    match pulls.await {
        Ok(Err(e)) => super::failed(t, &ApiError::from(e), "/node"),
        _ => Redirect::to("/node#peers").into_response(),
    }
}

/// The first-run form's fields.
#[derive(Deserialize, Default)]
pub(super) struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    about: String,
}

fn start_page(
    t: &Strings,
    csrf: &str,
    key_file: Option<&str>,
    has_profile: bool,
    f: &ProfileForm,
    problem: Option<&Problem>,
) -> Markup {
    let roles: [(&str, &str); 3] = [
        ("consumer", t.role_consumer),
        ("producer", t.role_producer),
        ("watchdog", t.role_watchdog),
    ];
    html! {
        h1 { @if has_profile { (t.profile_title) } @else { (t.start_title) } }
        @if !has_profile { p { (t.start_text) } }
        section.notice aria-labelledby="backup" {
            h2 #backup { (t.backup_title) }
            p { (t.backup_text) }
            @if let Some(k) = key_file { p { code #key-file { (k) } } }
        }
        section aria-labelledby="profile" {
            h2 #profile { (t.profile_title) }
            (general(problem))
            form.write method="post" action="/start" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                (Field { name: "name", label: t.f_name, value: &f.name,
                    control: Control::Text(None), hint: Some(t.f_name_hint), required: true }.render(problem))
                (Field { name: "role", label: t.f_role, value: &f.role,
                    control: Control::Select(&roles), hint: Some(t.f_role_hint), required: true }.render(problem))
                (Field { name: "about", label: t.f_about, value: &f.about,
                    control: Control::Area, hint: None, required: false }.render(problem))
                button type="submit" { (t.publish) }
            }
            @if !has_profile { p { a href="/?later=1" { (t.later) } } }
        }
    }
}

async fn render_start(
    s: &WebState,
    me: &LoggedIn,
    t: &Strings,
    status: StatusCode,
    f: &ProfileForm,
    problem: Option<&Problem>,
) -> Result<Response, ApiError> {
    let st = crate::api::status_of(s).await?;
    let has_profile = s.store.has_profile(&s.author)?;
    let header = pages::Header {
        status: &st,
        csrf: &me.session.csrf,
    };
    let key_file = s.web.key_file().map(|p| p.display().to_string());
    let body = start_page(
        t,
        &me.session.csrf,
        key_file.as_deref(),
        has_profile,
        f,
        problem,
    );
    Ok(html(
        status,
        pages::page(t, t.start_title, Some(&header), body),
    ))
}

/// `GET /start`: the first-run page (and later, the profile form).
pub(super) async fn start(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(mut f): Query<ProfileForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if f.role.is_empty() {
        f.role = "consumer".into();
    }
    if f.name.is_empty() {
        if let Some(n) = s.store.name_of(&s.author)? {
            f.name = n;
        }
    }
    render_start(&s, &me, t, StatusCode::OK, &f, None).await
}

/// `POST /start`: publishes the profile, then shows the home page.
pub(super) async fn start_post(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<ProfileForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let problem = if f.name.trim().is_empty() {
        Problem::at("name", t.f_required)
    } else {
        let about = f.about.trim();
        let req = ProfileRequest {
            name: f.name.trim().to_string(),
            role: f.role.clone(),
            about: (!about.is_empty()).then(|| about.to_string()),
        };
        match crate::api::profile(State(s.api.clone()), JsonBody(req)).await {
            Ok(_) => return Ok(Redirect::to("/").into_response()),
            Err(e) => Problem::of(&e, &[("bad_role", "role")], &["name", "about"]),
        }
    };
    render_start(
        &s,
        &me,
        t,
        StatusCode::UNPROCESSABLE_ENTITY,
        &f,
        Some(&problem),
    )
    .await
}
