//! The dashboard over real HTTP against a running node (in process, on 127.0.0.1): the
//! one-time login link, the session cookie, and the refusals — no session, a foreign Host,
//! a foreign Origin, a forged CSRF token.

use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::{DataDir, NetEvent, Node};
use tempfile::TempDir;

struct Dashboard {
    node: Node,
    base: String,
    host: String,
    token: String,
    agent: ureq::Agent,
    _dir: TempDir,
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Dashboard {
    async fn start() -> Dashboard {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.init().unwrap();
        let mut config = Config::default();
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.network.mdns = false;
        config.api.listen = "127.0.0.1:0".into();
        let (node, mut events) = Node::start(&data, config).await.unwrap();
        loop {
            if let Some(NetEvent::Listening(_)) = events.recv().await {
                break;
            }
        }
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let host = node.api_addr().unwrap().to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Dashboard {
            node,
            base: format!("http://{host}"),
            host,
            token: data.api_token().unwrap(),
            agent,
            _dir: dir,
        }
    }

    /// A request: `headers` are added as given; a form body for a POST.
    async fn ask(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        form: Option<String>,
    ) -> Answer {
        let agent = self.agent.clone();
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let method = method.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let resp = if method == "GET" {
                let mut r = agent.get(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                r.call()
            } else {
                let mut r = agent.post(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                r.header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.unwrap_or_default().as_bytes())
            }
            .unwrap();
            let h = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (status, location, set_cookie) =
                (resp.status().as_u16(), h("location"), h("set-cookie"));
            let body = resp.into_body().read_to_string().unwrap_or_default();
            Answer {
                status,
                location,
                set_cookie,
                body,
            }
        })
        .await
        .unwrap()
    }

    /// A login link from the API (what `chorus open` prints).
    async fn link(&self) -> String {
        let agent = self.agent.clone();
        let url = format!("{}/v1/web/link", self.base);
        let auth = format!("Bearer {}", self.token);
        let body = tokio::task::spawn_blocking(move || {
            agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty()
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap()
        })
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["url"].as_str().unwrap().to_string()
    }
}

/// The CSRF token a page carries.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    page[at..at + 64].to_string()
}

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

    // Logged in: the home page, with the node's header and a CSRF token.
    let home = d
        .ask("GET", "/", &[("Cookie", session.clone())], None)
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
        .ask("GET", "/", &[("Cookie", session.clone())], None)
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
    let after = d.ask("GET", "/", &[("Cookie", session)], None).await;
    assert_eq!(after.status, 303);
    // Unknown pages are pages, unknown API paths JSON.
    let missing = d.ask("GET", "/nothing-here", &[], None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("<html"));
    d.node.shutdown().await.unwrap();
}
