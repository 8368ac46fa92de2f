//! The dashboard over real HTTP against a running node (in process, on 127.0.0.1): the
//! one-time login link, the session cookie, and the refusals — no session, a foreign Host,
//! a foreign Origin, a forged CSRF token.

mod common;
mod dashboard;

use chorus_node::DataDir;
use dashboard::{csrf_of, Dashboard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_logs_a_browser_in_and_strangers_are_refused() {
    let d = Dashboard::start().await;

    // Without a session, a page sends the browser to the page that says how to log in.
    let home = d.ask("GET", "/", &[], None).await;
    assert_eq!(home.status, 303, "{}", home.body);
    assert_eq!(home.location.as_deref(), Some("/welcome"));
    let welcome = d.ask("GET", "/welcome", &[], None).await;
    assert_eq!(welcome.status, 200);
    assert!(welcome.body.contains("chorus open"), "{}", welcome.body);
    // In French when the browser prefers it.
    let fr = d
        .ask(
            "GET",
            "/welcome",
            &[("Accept-Language", "fr-FR,fr;q=0.9".into())],
            None,
        )
        .await;
    assert!(fr.body.contains("lang=\"fr\"") && fr.body.contains("Se connecter"));

    // The link logs in once: a session cookie, HttpOnly and SameSite=Strict.
    let link = d.link().await;
    assert!(
        link.starts_with(&format!("{}/login?key=", d.base)),
        "{link}"
    );
    let login = d.ask("GET", &link, &[], None).await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.location.as_deref(), Some("/"));
    let cookie = login.set_cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let again = d.ask("GET", &link, &[], None).await;
    assert_eq!(again.status, 403, "a link works once");
    assert!(again.set_cookie.is_none());

    // Logged in without a profile: the first-run page, which warns to back up the key file.
    let first = d
        .ask("GET", "/", &[("Cookie", session.clone())], None)
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location.as_deref(), Some("/start"));
    let start = d
        .ask("GET", "/start", &[("Cookie", session.clone())], None)
        .await;
    assert!(
        start.body.contains("Back up your key file"),
        "{}",
        start.body
    );
    let key_file = DataDir::new(d.node._dir.path()).author_key_path();
    assert!(
        start.body.contains(&key_file.display().to_string()),
        "{}",
        start.body
    );

    // Logged in: the home page, with the node's header and a CSRF token.
    let home = d
        .ask("GET", "/?later=1", &[("Cookie", session.clone())], None)
        .await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("id=\"status-peers\""), "{}", home.body);
    assert!(home.body.contains("My petitions"), "{}", home.body);
    let csrf = csrf_of(&home.body);

    // A foreign Host (DNS rebinding) is refused, even with the session.
    let rebound = d
        .ask(
            "GET",
            "/",
            &[("Cookie", session.clone()), ("Host", "evil.example".into())],
            None,
        )
        .await;
    assert_eq!(rebound.status, 403);
    // A post from another site, or with a forged token, is refused and changes nothing.
    let foreign = d
        .ask(
            "POST",
            "/logout",
            &[
                ("Cookie", session.clone()),
                ("Origin", "http://evil.example".into()),
            ],
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(foreign.status, 403);
    let forged = d
        .ask(
            "POST",
            "/logout",
            &[
                ("Cookie", session.clone()),
                ("Origin", format!("http://{}", d.host)),
            ],
            Some(format!("csrf={}", "0".repeat(64))),
        )
        .await;
    assert_eq!(forged.status, 403);
    let without = d
        .ask("POST", "/logout", &[], Some(format!("csrf={csrf}")))
        .await;
    assert_eq!(without.status, 403, "no session");
    let still = d
        .ask("GET", "/?later=1", &[("Cookie", session.clone())], None)
        .await;
    assert_eq!(still.status, 200, "the session survived the refused posts");

    // The page's live counts: the event stream, for the session (its first event says the
    // stream is ready); not for a stranger.
    let agent = d.agent.clone();
    let url = format!("{}/events?mine=true", d.base);
    let cookie = session.clone();
    let first = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let resp = agent.get(&url).header("Cookie", &cookie).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut lines = std::io::BufReader::new(resp.into_body().into_reader()).lines();
        lines.find_map(|l| l.ok().filter(|l| l.starts_with("event:")))
    })
    .await
    .unwrap();
    assert_eq!(first.as_deref(), Some("event: ready"));
    let stranger = d.ask("GET", "/events?mine=true", &[], None).await;
    assert_eq!(stranger.status, 303);
    let script = d.ask("GET", "/assets/app.js", &[], None).await;
    assert!(script.body.contains("EventSource"), "{}", script.body);

    // The JSON API keeps its bearer token: a session cookie does not open it.
    let api = d
        .ask("GET", "/v1/status", &[("Cookie", session.clone())], None)
        .await;
    assert_eq!(api.status, 401);

    // Logging out ends the session.
    let out = d
        .ask(
            "POST",
            "/logout",
            &[
                ("Cookie", session.clone()),
                ("Origin", format!("http://{}", d.host)),
            ],
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    let after = d
        .ask("GET", "/?later=1", &[("Cookie", session)], None)
        .await;
    assert_eq!(after.location.as_deref(), Some("/welcome"));
    // Unknown pages are pages, unknown API paths JSON.
    let missing = d.ask("GET", "/nothing-here", &[], None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("<html"));
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_petition_is_endorsed_and_retracted_from_its_page() {
    let d = Dashboard::start().await;
    let me = d.api("GET", "/v1/status", None).await["author"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = d
        .api(
            "POST",
            "/v1/petitions",
            Some(serde_json::json!({
                "producer": me,
                "title": "Repairable kettles",
                "text": "Sell spare parts",
                "threshold": 2,
            })),
        )
        .await;
    let id = opened["id"].as_str().unwrap().to_string();
    let session = d.log_in().await;
    let cookie = || {
        vec![
            ("Cookie", session.clone()),
            ("Origin", format!("http://{}", d.host)),
        ]
    };

    // By a prefix of its id: the title, the count and the form.
    let page = d
        .ask("GET", &format!("/petitions/{}", &id[..10]), &cookie(), None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Repairable kettles"), "{}", page.body);
    assert!(
        page.body.contains("<span class=\"live-count\">0</span>/2"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!("action=\"/petitions/{id}/endorse\"")));
    let csrf = csrf_of(&page.body);

    // A forged token changes nothing.
    let forged = d
        .ask(
            "POST",
            &format!("/petitions/{id}/endorse"),
            &cookie(),
            Some(format!("csrf={}", "1".repeat(64))),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        d.api("GET", &format!("/v1/tally/{id}"), None).await["endorsers"],
        0
    );

    // Endorsed from the page: counted, and the page says so.
    let done = d
        .ask(
            "POST",
            &format!("/petitions/{id}/endorse"),
            &cookie(),
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/petitions/{id}").as_str())
    );
    assert_eq!(
        d.api("GET", &format!("/v1/tally/{id}"), None).await["endorsers"],
        1
    );
    let page = d
        .ask("GET", &format!("/petitions/{id}"), &cookie(), None)
        .await;
    assert!(
        page.body.contains("<span class=\"live-count\">1</span>/2"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("You endorse this petition."),
        "{}",
        page.body
    );
    // The home page links to it, with its count.
    let home = d.ask("GET", "/?later=1", &cookie(), None).await;
    assert!(
        home.body.contains(&format!("href=\"/petitions/{id}\"")),
        "{}",
        home.body
    );

    // Retracted from the page.
    let undone = d
        .ask(
            "POST",
            &format!("/petitions/{id}/retract"),
            &cookie(),
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(undone.status, 303, "{}", undone.body);
    assert_eq!(
        d.api("GET", &format!("/v1/tally/{id}"), None).await["endorsers"],
        0
    );
    let home = d.ask("GET", "/?later=1", &cookie(), None).await;
    let endorsed = home.body.split("id=\"endorsed\"").nth(1).unwrap();
    let endorsed = endorsed.split("</section>").next().unwrap();
    assert!(
        !endorsed.contains(&id),
        "a retracted endorsement: {endorsed}"
    );
    // A pledge that is not an amount is refused in words, on a page, and nothing counts.
    let refused = d
        .ask(
            "POST",
            &format!("/petitions/{id}/endorse"),
            &cookie(),
            Some(format!("csrf={csrf}&pledge=lots")),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("role=\"alert\"") && refused.body.contains("3000EUR"),
        "{}",
        refused.body
    );
    assert_eq!(
        d.api("GET", &format!("/v1/tally/{id}"), None).await["endorsers"],
        0
    );
    // Found by a word of its title, accents and case aside, linking to its page.
    let found = d.ask("GET", "/search?q=KETTLÉS", &cookie(), None).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body.contains(&format!("href=\"/petitions/{id}\"")),
        "{}",
        found.body
    );
    let nothing = d.ask("GET", "/search?q=toasters", &cookie(), None).await;
    assert!(nothing.body.contains("Nothing found"), "{}", nothing.body);
    let bad = d.ask("GET", "/search?q=%21%21", &cookie(), None).await;
    assert!(bad.body.contains("role=\"alert\""), "{}", bad.body);
    // A petition nobody has: a page that says so.
    let none = d
        .ask(
            "GET",
            &format!("/petitions/{}", "0".repeat(64)),
            &cookie(),
            None,
        )
        .await;
    assert_eq!(none.status, 404);
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_joined_from_its_page() {
    use chorus_protocol::{Admission, Body, Group, RecordBuilder, SigningKey};
    let d = Dashboard::start().await;
    // A group someone else founded, signed elsewhere and handed to the node.
    let group = RecordBuilder::new(Body::Group(Group {
        name: "Repair Café Lyon".into(),
        charter: Some("We fix things".into()),
        admission: Admission::Open,
    }))
    .created_at(chorus_node::clock::now_ms() - 1_000)
    .sign(&SigningKey::from_bytes(&[5; 32]))
    .unwrap();
    let id = group.id().to_string();
    let stored = d
        .api(
            "POST",
            "/v1/records",
            Some(serde_json::json!({ "records": [hex::encode(group.wire())] })),
        )
        .await;
    assert_eq!(stored["results"][0]["outcome"], "stored", "{stored}");
    let session = d.log_in().await;
    let cookie = || {
        vec![
            ("Cookie", session.clone()),
            ("Origin", format!("http://{}", d.host)),
        ]
    };
    let page = d
        .ask("GET", &format!("/groups/{}", &id[..10]), &cookie(), None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Repair Café Lyon") && page.body.contains("We fix things"));
    assert!(
        page.body.contains(&format!("action=\"/groups/{id}/join\"")),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let forged = d
        .ask(
            "POST",
            &format!("/groups/{id}/join"),
            &cookie(),
            Some(format!("csrf={}", "2".repeat(64))),
        )
        .await;
    assert_eq!(forged.status, 403);
    let joined = d
        .ask(
            "POST",
            &format!("/groups/{id}/join"),
            &cookie(),
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    let page = d
        .ask("GET", &format!("/groups/{id}"), &cookie(), None)
        .await;
    assert!(page.body.contains("You are a member."), "{}", page.body);
    assert_eq!(
        d.api("GET", &format!("/v1/groups/{id}"), None).await["members"],
        2
    );
    // The home page lists it, linked.
    let home = d.ask("GET", "/?later=1", &cookie(), None).await;
    assert!(
        home.body.contains(&format!("href=\"/groups/{id}\"")),
        "{}",
        home.body
    );
    d.node.node.shutdown().await.unwrap();
}
