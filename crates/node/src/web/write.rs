//! The forms that make records (`/write`): a review, a petition (a demand, a proposal or a
//! campaign) and a group. Each is signed and published as its `POST /v1/...` counterpart
//! does; a refusal shows the form again, the values kept and the error beside its field.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chorus_client::{GroupRequest, PetitionRequest, ReviewRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::feedback::product_href;
use super::form::{general, Control, Field, Problem};
use super::WebState;
use super::{csrf_ok, html, lang, pages, refused, LoggedIn, Strings};
use crate::api::{ApiError, JsonBody};

/// A page with the header, for a logged-in user.
async fn framed(
    s: &WebState,
    me: &LoggedIn,
    t: &Strings,
    status: StatusCode,
    title: &str,
    body: Markup,
) -> Result<Response, ApiError> {
    let st = crate::api::status_of(s).await?;
    let header = pages::Header {
        status: &st,
        csrf: &me.session.csrf,
    };
    Ok(html(status, pages::page(t, title, Some(&header), body)))
}

/// `GET /write`: what can be written.
pub(super) async fn index(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let body = html! {
        h1 { (t.nav_write) }
        ul.items {
            li { a href="/write/review" { (t.write_review) } " — " (t.write_review_why) }
            li { a href="/write/petition" { (t.write_petition) } " — " (t.write_petition_why) }
            li { a href="/write/petition?variant=proposal" { (t.write_proposal) } " — " (t.write_proposal_why) }
            li { a href="/write/petition?variant=campaign" { (t.write_campaign) } " — " (t.write_campaign_why) }
            li { a href="/write/group" { (t.write_group) } " — " (t.write_group_why) }
        }
    };
    framed(&s, &me, t, StatusCode::OK, t.nav_write, body).await
}

/// The fields of the review form (also its query, to fill it from a product's page).
#[derive(Deserialize, Default)]
pub(super) struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    producer: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    rating: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

fn review_form(t: &Strings, csrf: &str, f: &ReviewForm, problem: Option<&Problem>) -> Markup {
    let ratings: [(&str, &str); 6] = [
        ("", t.choose),
        ("5", "★★★★★ 5"),
        ("4", "★★★★ 4"),
        ("3", "★★★ 3"),
        ("2", "★★ 2"),
        ("1", "★ 1"),
    ];
    html! {
        h1 { (t.write_review) }
        (general(problem))
        form.write method="post" action="/write/review" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            (Field { name: "producer", label: t.f_producer, value: &f.producer,
                control: Control::Text(None), hint: Some(t.f_producer_hint), required: true }.render(problem))
            (Field { name: "product", label: t.f_product, value: &f.product,
                control: Control::Text(None), hint: Some(t.f_product_hint), required: true }.render(problem))
            (Field { name: "rating", label: t.f_rating, value: &f.rating,
                control: Control::Select(&ratings), hint: None, required: true }.render(problem))
            (Field { name: "title", label: t.f_title_optional, value: &f.title,
                control: Control::Text(None), hint: None, required: false }.render(problem))
            (Field { name: "text", label: t.f_review_text, value: &f.text,
                control: Control::Area, hint: None, required: true }.render(problem))
            button type="submit" { (t.publish) }
        }
    }
}

/// `GET /write/review` (optionally `?producer=&product=`).
pub(super) async fn review_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(f): Query<ReviewForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let body = review_form(t, &me.session.csrf, &f, None);
    framed(&s, &me, t, StatusCode::OK, t.write_review, body).await
}

/// `POST /write/review`: publishes the review, then shows its product.
pub(super) async fn review(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let problem = if f.producer.trim().is_empty() {
        Some(Problem::at("producer", t.f_required))
    } else if f.product.trim().is_empty() {
        Some(Problem::at("product", t.f_required))
    } else if f.text.trim().is_empty() {
        Some(Problem::at("text", t.f_required))
    } else {
        None
    };
    let rating = match f.rating.parse::<u8>() {
        Ok(r) if (1..=5).contains(&r) => r,
        _ => 0,
    };
    let problem = problem.or_else(|| (rating == 0).then(|| Problem::at("rating", t.f_rating_hint)));
    let problem = match problem {
        Some(p) => p,
        None => {
            let title = f.title.trim();
            let req = ReviewRequest {
                producer: f.producer.trim().to_string(),
                product: f.product.trim().to_string(),
                rating,
                title: (!title.is_empty()).then(|| title.to_string()),
                text: f.text.trim().to_string(),
            };
            match crate::api::review(State(s.api.clone()), JsonBody(req)).await {
                Ok(created) => {
                    let to = match created.0.record["body"]["product"]["producer"]
                        .as_str()
                        .and_then(|k| k.parse().ok())
                    {
                        Some(producer) => product_href(&producer, f.product.trim()),
                        None => "/".to_string(),
                    };
                    return Ok(Redirect::to(&to).into_response());
                }
                Err(e) => Problem::of(
                    &e,
                    &[
                        ("bad_key", "producer"),
                        ("ambiguous", "producer"),
                        ("not_found", "producer"),
                        ("bad_rating", "rating"),
                        ("rating-out-of-range", "rating"),
                    ],
                    &["producer", "product", "code", "rating", "title", "text"],
                ),
            }
        }
    };
    let problem = renamed(problem, "code", "product");
    let body = review_form(t, &me.session.csrf, &f, Some(&problem));
    framed(
        &s,
        &me,
        t,
        StatusCode::UNPROCESSABLE_ENTITY,
        t.write_review,
        body,
    )
    .await
}

/// A record field's name as the form calls it.
fn renamed(mut p: Problem, record: &str, form: &str) -> Problem {
    if p.field.as_deref() == Some(record) {
        p.field = Some(form.to_string());
    }
    p
}

/// The fields of the petition form (also its query).
#[derive(Deserialize, Default)]
pub(super) struct PetitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    variant: String,
    #[serde(default)]
    producer: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    deadline: String,
    #[serde(default)]
    goal: String,
}

fn petition_form(
    t: &Strings,
    csrf: &str,
    f: &PetitionForm,
    groups: &[(String, String)],
    problem: Option<&Problem>,
) -> Markup {
    let variants: [(&str, &str); 3] = [
        ("demand", t.v_demand),
        ("proposal", t.v_proposal),
        ("campaign", t.v_campaign),
    ];
    let mut group_choices: Vec<(&str, &str)> = vec![("", t.f_no_group)];
    group_choices.extend(groups.iter().map(|(id, name)| (id.as_str(), name.as_str())));
    let heading = match f.variant.as_str() {
        "proposal" => t.write_proposal,
        "campaign" => t.write_campaign,
        _ => t.write_petition,
    };
    html! {
        h1 { (heading) }
        (general(problem))
        form.write method="post" action="/write/petition" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            (Field { name: "variant", label: t.f_variant, value: &f.variant,
                control: Control::Select(&variants), hint: Some(t.f_variant_hint), required: true }.render(problem))
            (Field { name: "producer", label: t.f_producer, value: &f.producer,
                control: Control::Text(None), hint: Some(t.f_producer_hint), required: true }.render(problem))
            (Field { name: "product", label: t.f_product_optional, value: &f.product,
                control: Control::Text(None), hint: Some(t.f_product_hint), required: false }.render(problem))
            (Field { name: "group", label: t.f_group, value: &f.group,
                control: Control::Select(&group_choices), hint: Some(t.f_group_hint), required: false }.render(problem))
            (Field { name: "title", label: t.f_title, value: &f.title,
                control: Control::Text(None), hint: None, required: true }.render(problem))
            (Field { name: "text", label: t.f_petition_text, value: &f.text,
                control: Control::Area, hint: None, required: true }.render(problem))
            (Field { name: "threshold", label: t.f_threshold, value: &f.threshold,
                control: Control::Text(Some("numeric")), hint: Some(t.f_threshold_hint), required: true }.render(problem))
            (Field { name: "deadline", label: t.f_deadline, value: &f.deadline,
                control: Control::Date, hint: Some(t.f_deadline_hint), required: false }.render(problem))
            (Field { name: "goal", label: t.f_goal, value: &f.goal,
                control: Control::Text(Some("decimal")), hint: Some(t.f_goal_hint), required: false }.render(problem))
            button type="submit" { (t.publish) }
        }
    }
}

/// The groups the user is in (id, name), for the petition form's choice.
async fn my_groups(s: &WebState) -> Result<Vec<(String, String)>, ApiError> {
    let mine = crate::api::my_records(s).await?;
    let store = s.store.clone();
    let groups = tokio::task::spawn_blocking(move || -> crate::error::Result<_> {
        let mut out: Vec<(String, String)> = Vec::new();
        for rec in mine {
            let gid = match &rec.record().body {
                chorus_protocol::Body::Join(j) => j.group,
                chorus_protocol::Body::Group(_) => rec.id(),
                _ => continue,
            };
            let id = gid.to_string();
            if out.iter().any(|(g, _)| *g == id) {
                continue;
            }
            let name = match store.record(&gid)?.map(|g| g.record().body.clone()) {
                Some(chorus_protocol::Body::Group(g)) => g.name,
                _ => id[..12].to_string(),
            };
            out.push((id, name));
        }
        Ok(out)
    })
    .await
    .map_err(|_| crate::error::Error::NodeStopped)??;
    Ok(groups)
}

/// `GET /write/petition` (optionally `?variant=&producer=&product=&group=`).
pub(super) async fn petition_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Query(mut f): Query<PetitionForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if f.variant.is_empty() {
        f.variant = "demand".into();
    }
    if f.threshold.is_empty() {
        f.threshold = "100".into();
    }
    let groups = my_groups(&s).await?;
    let body = petition_form(t, &me.session.csrf, &f, &groups, None);
    framed(&s, &me, t, StatusCode::OK, t.write_petition, body).await
}

/// `POST /write/petition`: opens the petition, then shows its page.
pub(super) async fn petition(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<PetitionForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let threshold = f.threshold.trim().parse::<u64>().ok().filter(|n| *n > 0);
    let campaign = f.variant == "campaign";
    let problem = if f.producer.trim().is_empty() {
        Some(Problem::at("producer", t.f_required))
    } else if f.title.trim().is_empty() {
        Some(Problem::at("title", t.f_required))
    } else if f.text.trim().is_empty() {
        Some(Problem::at("text", t.f_required))
    } else if threshold.is_none() {
        Some(Problem::at("threshold", t.f_threshold_hint))
    } else if campaign && f.goal.trim().is_empty() {
        Some(Problem::at("goal", t.f_goal_needed))
    } else if !campaign && !f.goal.trim().is_empty() {
        Some(Problem::at("goal", t.f_goal_only_campaign))
    } else {
        None
    };
    let problem = match (problem, threshold) {
        (Some(p), _) => p,
        (None, None) => Problem::at("threshold", t.f_threshold_hint),
        (None, Some(threshold)) => {
            let opt = |v: &str| {
                let v = v.trim();
                (!v.is_empty()).then(|| v.to_string())
            };
            let req = PetitionRequest {
                producer: f.producer.trim().to_string(),
                product: opt(&f.product),
                group: opt(&f.group),
                title: f.title.trim().to_string(),
                text: f.text.trim().to_string(),
                threshold,
                deadline: opt(&f.deadline),
                variant: Some(f.variant.clone()),
                goal: opt(&f.goal),
            };
            match crate::api::petition_open(State(s.api.clone()), JsonBody(req)).await {
                Ok(created) => {
                    return Ok(Redirect::to(&format!("/petitions/{}", created.0.id)).into_response())
                }
                Err(e) => Problem::of(
                    &e,
                    &[
                        ("bad_key", "producer"),
                        ("ambiguous", "producer"),
                        ("bad_goal", "goal"),
                        ("bad_amount", "goal"),
                        ("invalid-amount", "goal"),
                        ("bad_deadline", "deadline"),
                        ("bad_variant", "variant"),
                        ("bad_id", "group"),
                        ("not_found", "group"),
                    ],
                    &[
                        "producer",
                        "product",
                        "title",
                        "text",
                        "threshold",
                        "deadline",
                        "goal",
                    ],
                ),
            }
        }
    };
    let groups = my_groups(&s).await?;
    let body = petition_form(t, &me.session.csrf, &f, &groups, Some(&problem));
    framed(
        &s,
        &me,
        t,
        StatusCode::UNPROCESSABLE_ENTITY,
        t.write_petition,
        body,
    )
    .await
}

/// The fields of the group form.
#[derive(Deserialize, Default)]
pub(super) struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    admission: String,
    #[serde(default)]
    charter: String,
}

fn group_form(t: &Strings, csrf: &str, f: &GroupForm, problem: Option<&Problem>) -> Markup {
    let admissions: [(&str, &str); 2] = [("open", t.open_group), ("approval", t.approval)];
    html! {
        h1 { (t.write_group) }
        (general(problem))
        form.write method="post" action="/write/group" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            (Field { name: "name", label: t.f_group_name, value: &f.name,
                control: Control::Text(None), hint: None, required: true }.render(problem))
            (Field { name: "admission", label: t.f_admission, value: &f.admission,
                control: Control::Select(&admissions), hint: None, required: true }.render(problem))
            (Field { name: "charter", label: t.f_charter, value: &f.charter,
                control: Control::Area, hint: None, required: false }.render(problem))
            button type="submit" { (t.publish) }
        }
    }
}

/// `GET /write/group`.
pub(super) async fn group_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    let body = group_form(t, &me.session.csrf, &GroupForm::default(), None);
    framed(&s, &me, t, StatusCode::OK, t.write_group, body).await
}

/// `POST /write/group`: creates the group, then shows its page.
pub(super) async fn group(
    State(s): State<WebState>,
    headers: HeaderMap,
    Extension(me): Extension<LoggedIn>,
    Form(f): Form<GroupForm>,
) -> Result<Response, ApiError> {
    let t = lang(&headers);
    if !csrf_ok(&headers, Some(&f.csrf), &me.session) {
        return Ok(refused(t, t.refused_csrf));
    }
    let problem = if f.name.trim().is_empty() {
        Problem::at("name", t.f_required)
    } else {
        let charter = f.charter.trim();
        let req = GroupRequest {
            name: f.name.trim().to_string(),
            approval: f.admission == "approval",
            charter: (!charter.is_empty()).then(|| charter.to_string()),
        };
        match crate::api::group_create(State(s.api.clone()), JsonBody(req)).await {
            Ok(created) => {
                return Ok(Redirect::to(&format!("/groups/{}", created.0.id)).into_response())
            }
            Err(e) => Problem::of(&e, &[], &["name", "charter"]),
        }
    };
    let body = group_form(t, &me.session.csrf, &f, Some(&problem));
    framed(
        &s,
        &me,
        t,
        StatusCode::UNPROCESSABLE_ENTITY,
        t.write_group,
        body,
    )
    .await
}
