//! The dashboard's own-node pages and its forms, over real HTTP against a node in process:
//! the first-run page, the review, petition, campaign and group forms (errors beside their
//! fields), browsing, the node page (peers, last pulls, follow and unfollow).

mod common;
mod dashboard;

use dashboard::{csrf_of, Dashboard};

/// A form body.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The field's error message shown beside it, if any.
fn error_beside(page: &str, field: &str) -> Option<String> {
    let marker = format!("id=\"{field}-error\">");
    let at = page.find(&marker)? + marker.len();
    Some(page[at..].split('<').next()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_then_every_form_with_its_errors_beside_the_fields() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let with = || {
        vec![
            ("Cookie", session.clone()),
            ("Origin", format!("http://{}", d.host)),
        ]
    };
    let start = d.ask("GET", "/start", &with(), None).await;
    let csrf = csrf_of(&start.body);

    // The first-run page: a profile without a name is refused beside the name field.
    let empty = d
        .ask(
            "POST",
            "/start",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("name", " "),
                ("role", "producer"),
            ])),
        )
        .await;
    assert_eq!(empty.status, 422, "{}", empty.body);
    assert!(
        error_beside(&empty.body, "name").is_some(),
        "{}",
        empty.body
    );
    assert!(empty.body.contains("aria-invalid=\"true\""));
    // A forged token publishes nothing.
    let forged = d
        .ask(
            "POST",
            "/start",
            &with(),
            Some(form(&[("csrf", &"0".repeat(64)), ("name", "Atelier")])),
        )
        .await;
    assert_eq!(forged.status, 403);
    let made = d
        .ask(
            "POST",
            "/start",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("name", "Atelier Bois"),
                ("role", "producer"),
                ("about", "Chairs"),
            ])),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    // With a profile, home is home.
    let home = d.ask("GET", "/", &with(), None).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("Atelier Bois"), "{}", home.body);

    // A review without a rating: the error beside the rating, the text kept.
    let review = |rating: &'static str, producer: &'static str| {
        form(&[
            ("csrf", &csrf),
            ("producer", producer),
            ("product", "chair-2"),
            ("rating", rating),
            ("title", ""),
            ("text", "Sturdy & light"),
        ])
    };
    let no_rating = d
        .ask(
            "POST",
            "/write/review",
            &with(),
            Some(review("", "Atelier Bois")),
        )
        .await;
    assert_eq!(no_rating.status, 422, "{}", no_rating.body);
    assert!(
        error_beside(&no_rating.body, "rating").is_some(),
        "{}",
        no_rating.body
    );
    assert!(no_rating.body.contains("Sturdy &amp; light"));
    // An unknown producer: beside the producer.
    let unknown = d
        .ask(
            "POST",
            "/write/review",
            &with(),
            Some(review("4", "Nobody Known")),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(
        error_beside(&unknown.body, "producer").is_some(),
        "{}",
        unknown.body
    );
    // By the producer's name: published, and the browser goes to the product's page.
    let ok = d
        .ask(
            "POST",
            "/write/review",
            &with(),
            Some(review("4", "Atelier Bois")),
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let me = d.api("GET", "/v1/status", None).await["author"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ok.location.as_deref(),
        Some(format!("/products/{me}/chair-2").as_str())
    );
    let rating = d
        .api(
            "GET",
            &format!("/v1/rating?producer={me}&product=chair-2"),
            None,
        )
        .await;
    assert_eq!(rating["count"], 1, "{rating}");

    // A campaign without a goal: beside the goal; a demand with one: likewise.
    let petition = |variant: &'static str, goal: &'static str, threshold: &'static str| {
        form(&[
            ("csrf", &csrf),
            ("variant", variant),
            ("producer", "Atelier Bois"),
            ("product", "chair-2"),
            ("group", ""),
            ("title", "Make it in oak"),
            ("text", "Fund an oak edition"),
            ("threshold", threshold),
            ("deadline", "2099-12-31"),
            ("goal", goal),
        ])
    };
    let no_goal = d
        .ask(
            "POST",
            "/write/petition",
            &with(),
            Some(petition("campaign", "", "3")),
        )
        .await;
    assert_eq!(no_goal.status, 422);
    assert!(
        error_beside(&no_goal.body, "goal").is_some(),
        "{}",
        no_goal.body
    );
    assert!(no_goal.body.contains("value=\"Make it in oak\""));
    let bad_goal = d
        .ask(
            "POST",
            "/write/petition",
            &with(),
            Some(petition("campaign", "lots", "3")),
        )
        .await;
    assert_eq!(bad_goal.status, 422);
    assert!(
        error_beside(&bad_goal.body, "goal").is_some(),
        "{}",
        bad_goal.body
    );
    let bad_threshold = d
        .ask(
            "POST",
            "/write/petition",
            &with(),
            Some(petition("demand", "", "zero")),
        )
        .await;
    assert!(error_beside(&bad_threshold.body, "threshold").is_some());
    let opened = d
        .ask(
            "POST",
            "/write/petition",
            &with(),
            Some(petition("campaign", "3000EUR", "3")),
        )
        .await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let at = opened.location.unwrap();
    let id = at.strip_prefix("/petitions/").unwrap();
    let tally = d.api("GET", &format!("/v1/tally/{id}"), None).await;
    assert_eq!(tally["goal"], "3000EUR", "{tally}");
    assert_eq!(tally["variant"], "campaign");

    // A group: the name is needed; then its page.
    let nameless = d
        .ask(
            "POST",
            "/write/group",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("name", ""),
                ("admission", "open"),
            ])),
        )
        .await;
    assert!(error_beside(&nameless.body, "name").is_some());
    let group = d
        .ask(
            "POST",
            "/write/group",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("name", "Oak lovers"),
                ("admission", "approval"),
                ("charter", ""),
            ])),
        )
        .await;
    assert_eq!(group.status, 303, "{}", group.body);
    assert!(group.location.unwrap().starts_with("/groups/"));

    // Browsing: the campaign among the popular and the closing soon; the group listed.
    let popular = d.ask("GET", "/browse", &with(), None).await;
    assert!(popular.body.contains(&format!("href=\"/petitions/{id}\"")));
    let closing = d.ask("GET", "/browse?list=closing", &with(), None).await;
    assert!(closing.body.contains("Make it in oak"));
    let groups = d.ask("GET", "/browse?list=groups", &with(), None).await;
    assert!(groups.body.contains("Oak lovers"), "{}", groups.body);
    let nothing = d.ask("GET", "/browse?list=bogus", &with(), None).await;
    assert_eq!(nothing.status, 404);
    // A page far beyond the ranked lists is the last page, not a new ranking.
    let far = d
        .ask("GET", "/browse?list=new&offset=999999", &with(), None)
        .await;
    assert_eq!(far.status, 200);
    // The home page lists the group the user founded, and the review in force.
    let home = d.ask("GET", "/", &with(), None).await;
    assert!(home.body.contains("Oak lovers"), "{}", home.body);
    assert!(home.body.contains("chair-2"), "{}", home.body);
    // The petition form offers the group the user founded.
    let write = d.ask("GET", "/write/petition", &with(), None).await;
    assert!(
        write.body.contains(">Oak lovers</option>"),
        "{}",
        write.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_page_shows_peers_and_last_pulls_and_follows_by_form() {
    let d = Dashboard::start().await;
    // A second node, connected: a pull from it shows in the table and the header.
    let other = common::start_with(&[d.node.addr.as_str()], |_| {}).await;
    let other_id = other.node.status().await.unwrap().peer_id.to_string();
    let session = d.log_in().await;
    let with = || {
        vec![
            ("Cookie", session.clone()),
            ("Origin", format!("http://{}", d.host)),
        ]
    };
    let mut connected = false;
    for _ in 0..100 {
        let peers = d.api("GET", "/v1/peers", None).await;
        if peers["peers"].to_string().contains(&other_id) {
            connected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(connected, "the second node connects");
    let page = d.ask("GET", "/node", &with(), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"peers-table\""), "{}", page.body);
    assert!(page.body.contains(&other_id[other_id.len() - 12..]));
    let csrf = csrf_of(&page.body);
    let synced = d
        .ask(
            "POST",
            "/node/sync",
            &with(),
            Some(form(&[("csrf", &csrf)])),
        )
        .await;
    assert_eq!(synced.status, 303, "{}", synced.body);
    let peers = d.api("GET", "/v1/peers", None).await;
    assert!(
        peers["pulls"].to_string().contains(&other_id),
        "the pull is remembered: {peers}"
    );
    let page = d.ask("GET", "/node", &with(), None).await;
    assert!(page.body.contains(" ago"), "{}", page.body);
    assert!(page.body.contains("id=\"status-sync\""));
    assert!(page.body.contains("last pull"), "{}", page.body);

    // Follow by form: a bad key is refused beside the value; a key is followed, then not.
    let bad = d
        .ask(
            "POST",
            "/node/follow",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("what", "producer"),
                ("value", "zz-not-a-key"),
            ])),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(error_beside(&bad.body, "value").is_some(), "{}", bad.body);
    let stranger = chorus_protocol::testing::author(7).to_string();
    let ok = d
        .ask(
            "POST",
            "/node/follow",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("what", "producer"),
                ("value", &stranger),
            ])),
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let follows = d.api("GET", "/v1/follow", None).await;
    assert!(follows["producers"].to_string().contains(&stranger));
    let page = d.ask("GET", "/node", &with(), None).await;
    assert!(page.body.contains(&stranger[..12]), "{}", page.body);
    let off = d
        .ask(
            "POST",
            "/node/unfollow",
            &with(),
            Some(form(&[
                ("csrf", &csrf),
                ("what", "producer"),
                ("value", &stranger),
            ])),
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.body);
    let follows = d.api("GET", "/v1/follow", None).await;
    assert!(!follows["producers"].to_string().contains(&stranger));
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_refuses_a_post_without_its_token() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let with = vec![
        ("Cookie", session.clone()),
        ("Origin", format!("http://{}", d.host)),
    ];
    let some = "ab".repeat(32);
    for path in [
        "/logout".to_string(),
        "/start".into(),
        "/write/review".into(),
        "/write/petition".into(),
        "/write/group".into(),
        "/node/follow".into(),
        "/node/unfollow".into(),
        "/node/sync".into(),
        format!("/petitions/{some}/endorse"),
        format!("/petitions/{some}/retract"),
        format!("/petitions/{some}/attest"),
        format!("/groups/{some}/join"),
        format!("/groups/{some}/admit"),
        "/inbox/respond".into(),
        "/inbox/read".into(),
        "/audit".into(),
        "/audit/attest".into(),
        "/trust/add".into(),
        "/trust/remove".into(),
    ] {
        // No token at all, and a wrong one: refused, and the session still works.
        let none = d.ask("POST", &path, &with, Some(String::new())).await;
        assert_eq!(none.status, 403, "{path} without a token: {}", none.body);
        let wrong = d
            .ask(
                "POST",
                &path,
                &with,
                Some(format!("csrf={}", "0".repeat(64))),
            )
            .await;
        assert_eq!(
            wrong.status, 403,
            "{path} with a wrong token: {}",
            wrong.body
        );
    }
    let home = d.ask("GET", "/?later=1", &with, None).await;
    assert_eq!(home.status, 200);
}
