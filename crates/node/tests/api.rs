//! The local API over real HTTP against a running node (in process, on 127.0.0.1):
//! authentication, JSON errors, and every endpoint.

use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::{DataDir, NetEvent, Node};
use serde_json::{json, Value};
use tempfile::TempDir;

struct Api {
    node: Node,
    base: String,
    token: String,
    agent: ureq::Agent,
    _dir: TempDir,
}

impl Api {
    async fn start() -> Api {
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
        let base = format!("http://{}", node.api_addr().unwrap());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            node,
            base,
            token: data.api_token().unwrap(),
            agent,
            _dir: dir,
        }
    }

    /// A call with the token; returns the status and the JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body, Some(self.token.clone())).await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<String>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        self.with_authorization(method, path, body, auth).await
    }

    /// A call with this `Authorization` header (or none).
    async fn with_authorization(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        auth: Option<String>,
    ) -> (u16, Value) {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let method = method.to_string();
        tokio::task::spawn_blocking(move || {
            let resp = match (method.as_str(), body) {
                ("GET", _) => {
                    let mut r = agent.get(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                ("DELETE", _) => {
                    let mut r = agent.delete(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                (_, b) => {
                    let mut r = agent.post(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.send_json(b.unwrap_or(json!({})))
                }
            };
            let mut resp = resp.unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
            (status, v)
        })
        .await
        .unwrap()
    }

    /// A `POST` of raw bytes as `content_type`.
    async fn post_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let content_type = content_type.to_string();
        tokio::task::spawn_blocking(move || {
            let mut resp = agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", &content_type)
                .send(&bytes[..])
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
            (status, v)
        })
        .await
        .unwrap()
    }

    /// A call that must succeed; returns the body.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// A call that must fail with this status and code.
    async fn fails(&self, method: &str, path: &str, body: Option<Value>, status: u16, code: &str) {
        let (got, v) = self.call(method, path, body).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        // Bad input is the caller's fault, said in the caller's terms, never the node's config.
        assert!(
            !v["message"].as_str().unwrap_or("").contains("config:"),
            "{method} {path}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_needs_the_token_and_errors_are_json() {
    let api = Api::start().await;
    let (s, v) = api.raw("GET", "/v1/status", None, None).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    let (s, v) = api
        .raw("GET", "/v1/status", None, Some("0".repeat(64)))
        .await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not, nor another scheme.
    for (auth, status) in [
        (format!("bearer {}", api.token), 200),
        (format!("BEARER {}", api.token), 200),
        (format!("Bearer {}", api.token.to_uppercase()), 401),
        (format!("Basic {}", api.token), 401),
        (format!("Bearer{}", api.token), 401),
    ] {
        let (s, _) = api
            .with_authorization("GET", "/v1/status", None, Some(auth.clone()))
            .await;
        assert_eq!(s, status, "Authorization: {auth}");
    }
    let (s, v) = api.raw("POST", "/v1/reviews", Some(json!({})), None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("unauthorized")),
        "writes too"
    );
    api.fails("GET", "/v1/nothing-here", None, 404, "not_found")
        .await;
    // A known endpoint with a method it does not take.
    api.fails("DELETE", "/v1/status", None, 405, "method_not_allowed")
        .await;
    api.fails("GET", "/v1/endorse", None, 405, "method_not_allowed")
        .await;
    // Malformed bodies and queries are JSON errors too.
    api.fails(
        "POST",
        "/v1/reviews",
        Some(json!({"producer": 1})),
        400,
        "bad_request",
    )
    .await;
    api.fails(
        "POST",
        "/v1/profile",
        Some(json!({"name": "x", "role": "consumer", "typo": 1})),
        400,
        "bad_request",
    )
    .await;
    api.fails("GET", "/v1/rating?producer=zz", None, 400, "bad_request")
        .await;
    let status = api.ok("GET", "/v1/status", None).await;
    assert_eq!(status["records"], 0);
    assert_eq!(status["author"], api.node.author().to_string());
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_endpoints_create_records_and_tallies_follow() {
    let api = Api::start().await;
    let me = api.node.author().to_string();
    let other = "0000000000000000000000000000000000000000000000000000000000000001";

    let p = api
        .ok(
            "POST",
            "/v1/profile",
            Some(json!({"name": "Ann", "role": "consumer"})),
        )
        .await;
    assert_eq!(
        (p["kind"].as_str(), p["outcome"].as_str()),
        (Some("profile"), Some("stored"))
    );
    assert_eq!(p["id"].as_str().unwrap().len(), 64);
    api.fails(
        "POST",
        "/v1/profile",
        Some(json!({"name": "Ann", "role": "king"})),
        400,
        "bad_role",
    )
    .await;

    // Reviews and ratings.
    let review = |rating: u8, text: &str| json!({"producer": other, "product": "gtin-42.x", "rating": rating, "text": text});
    let r1 = api.ok("POST", "/v1/reviews", Some(review(2, "meh"))).await;
    let r2 = api
        .ok("POST", "/v1/reviews", Some(review(5, "better now")))
        .await;
    api.fails(
        "POST",
        "/v1/reviews",
        Some(review(0, "no")),
        400,
        "bad_rating",
    )
    .await;
    api.fails(
        "POST",
        "/v1/reviews",
        Some(json!({"producer": "xyz", "product": "p", "rating": 3, "text": "t"})),
        400,
        "bad_key",
    )
    .await;
    let q = format!("producer={other}&product=gtin-42.x");
    let rating = api.ok("GET", &format!("/v1/rating?{q}"), None).await;
    assert_eq!(
        rating["count"], 1,
        "one author counts once: the latest review"
    );
    assert_eq!(rating["mean"], 5.0);
    assert_eq!(rating["histogram"], json!([0, 0, 0, 0, 1]));
    // This node follows that producer; of one it does not follow, the rating says its
    // count may be partial.
    assert_eq!(rating["partial"], false, "{rating}");
    let stranger = "ab".repeat(32);
    let unfollowed = api
        .ok(
            "GET",
            &format!("/v1/rating?producer={stranger}&product=x"),
            None,
        )
        .await;
    assert_eq!(unfollowed["partial"], true, "{unfollowed}");
    let reviews = api.ok("GET", &format!("/v1/reviews?{q}"), None).await;
    let list = reviews["reviews"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], r1["id"]);
    assert_eq!(list[0]["counted"], false);
    assert_eq!(list[1]["id"], r2["id"]);
    assert_eq!(list[1]["counted"], true);
    let shown = api
        .ok(
            "GET",
            &format!("/v1/records/{}", r2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shown["id"], r2["id"]);
    assert_eq!(shown["kind"], "review");
    api.fails(
        "GET",
        &format!("/v1/records/{}", "ab".repeat(32)),
        None,
        404,
        "not_found",
    )
    .await;
    api.fails("GET", "/v1/records/nothex", None, 400, "bad_id")
        .await;

    // Groups.
    let g = api
        .ok(
            "POST",
            "/v1/groups",
            Some(json!({"name": "Cyclists", "approval": true, "charter": "bikes"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let shown = api.ok("GET", &format!("/v1/groups/{gid}"), None).await;
    assert_eq!(
        (
            shown["name"].as_str(),
            shown["admission"].as_str(),
            shown["members"].as_u64()
        ),
        (Some("Cyclists"), Some("approval"), Some(1))
    );
    assert_eq!(shown["founder"], me.as_str());
    let admitted = api
        .ok(
            "POST",
            &format!("/v1/groups/{gid}/admit"),
            Some(json!({"member": other})),
        )
        .await;
    assert_eq!(admitted["kind"], "admit");
    api.fails(
        "POST",
        &format!("/v1/groups/{}/join", "cd".repeat(32)),
        None,
        404,
        "not_found",
    )
    .await;
    api.fails(
        "POST",
        &format!("/v1/groups/{}/join", r1["id"].as_str().unwrap()),
        None,
        400,
        "not_a_group",
    )
    .await;

    // Petitions: open, endorse twice (counts once), pledge, retract.
    let pet = api
        .ok(
            "POST",
            "/v1/petitions",
            Some(json!({"producer": other, "title": "Fund it", "text": "please", "threshold": 1,
                        "variant": "campaign", "goal": "100EUR", "group": gid, "deadline": "2999-12-31"})),
        )
        .await;
    let pid = pet["id"].as_str().unwrap().to_string();
    api.fails("POST", "/v1/petitions", Some(json!({"producer": other, "title": "t", "text": "t", "threshold": 1, "variant": "campaign"})), 400, "bad_goal")
        .await;
    api.fails("POST", "/v1/petitions", Some(json!({"producer": other, "title": "t", "text": "t", "threshold": 1, "deadline": "2001-01-01"})), 400, "bad_deadline")
        .await;
    api.ok(
        "POST",
        "/v1/endorse",
        Some(json!({"petition": pid, "pledge": "10EUR"})),
    )
    .await;
    api.ok(
        "POST",
        "/v1/endorse",
        Some(json!({"petition": pid, "pledge": "25.50EUR", "comment": "more"})),
    )
    .await;
    let t = api.ok("GET", &format!("/v1/tally/{pid}"), None).await;
    assert_eq!(
        t["endorsers"], 1,
        "endorsing again updates, never counts twice: {t}"
    );
    assert_eq!(t["threshold"], 1);
    assert_eq!(t["reached"], false, "25.50 of 100 EUR: the goal is not met");
    assert_eq!(t["funded"], false);
    assert_eq!(t["pledged_total"], "25.50EUR");
    assert_eq!(t["state"], "open");
    assert_eq!(t["pledged"], json!({"EUR": "25.50"}));
    api.fails(
        "POST",
        "/v1/endorse",
        Some(json!({"petition": pid, "pledge": "5USD"})),
        400,
        "currency_mismatch",
    )
    .await;
    assert_eq!(t["goal"], "100EUR");
    assert_eq!(t["response"], Value::Null);
    assert_eq!(t["member_endorsers"], 1, "the founder is a member");
    let list = api
        .ok(
            "GET",
            &format!("/v1/petitions?producer={other}&open=true"),
            None,
        )
        .await;
    assert_eq!(list["petitions"].as_array().unwrap().len(), 1);
    let list = api
        .ok("GET", &format!("/v1/petitions?group={gid}"), None)
        .await;
    assert_eq!(list["petitions"][0]["id"], pid.as_str());
    let none = api
        .ok("GET", &format!("/v1/petitions?producer={me}"), None)
        .await;
    assert!(none["petitions"].as_array().unwrap().is_empty());
    // Not the producer: refused.
    api.fails(
        "POST",
        "/v1/respond",
        Some(json!({"target": pid, "status": "accepted", "text": "ok"})),
        403,
        "not_producer",
    )
    .await;
    api.fails(
        "POST",
        "/v1/respond",
        Some(json!({"target": pid, "status": "maybe", "text": "ok"})),
        400,
        "bad_status",
    )
    .await;
    // Retracting the petition I endorse retracts my endorsement.
    let r = api
        .ok("POST", "/v1/retract", Some(json!({"id": pid})))
        .await;
    assert_eq!(r["kind"], "retraction");
    let t = api.ok("GET", &format!("/v1/tally/{pid}"), None).await;
    assert_eq!(t["endorsers"], 0);
    assert_eq!(t["pledged"], json!({}));
    assert_eq!(t["withdrawn"], false);
    // Again: now the petition itself (mine) is withdrawn.
    api.ok("POST", "/v1/retract", Some(json!({"id": pid})))
        .await;
    let t = api.ok("GET", &format!("/v1/tally/{pid}"), None).await;
    assert_eq!(
        (t["withdrawn"].as_bool(), t["open"].as_bool()),
        (Some(true), Some(false))
    );
    api.fails(
        "POST",
        "/v1/retract",
        Some(json!({"id": r["id"]})),
        400,
        "not_retractable",
    )
    .await;
    api.fails(
        "POST",
        "/v1/endorse",
        Some(json!({"petition": r1["id"]})),
        400,
        "not_a_petition",
    )
    .await;
    // A bundle, or a verified count, of something that is not a petition.
    let review_id = r1["id"].as_str().unwrap();
    let (s, v) = api
        .call("GET", &format!("/v1/bundle/{review_id}"), None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("not_a_petition")),
        "{v}"
    );
    assert_eq!(
        v["message"],
        format!("{review_id} is a review, not a petition")
    );
    api.fails(
        "POST",
        "/v1/attest",
        Some(json!({"verdict": "verified-count", "record": review_id})),
        400,
        "not_a_petition",
    )
    .await;
    api.fails(
        "GET",
        &format!("/v1/tally/{}", "ef".repeat(32)),
        None,
        404,
        "not_found",
    )
    .await;
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_answer_and_nodes_follow() {
    let api = Api::start().await;
    let me = api.node.author().to_string();
    let pet = api
        .ok("POST", "/v1/petitions", Some(json!({"producer": me, "title": "t", "text": "t", "threshold": 5, "variant": "proposal"})))
        .await;
    let pid = pet["id"].as_str().unwrap();
    let resp = api
        .ok(
            "POST",
            "/v1/respond",
            Some(json!({"target": pid, "status": "in-progress", "text": "on it"})),
        )
        .await;
    assert_eq!(resp["kind"], "response");
    let t = api.ok("GET", &format!("/v1/tally/{pid}"), None).await;
    assert_eq!(t["response"]["status"], "in-progress");
    assert_eq!(t["response"]["id"], resp["id"]);
    assert_eq!(t["variant"], "proposal");

    // Follow, shown, remembered.
    let f = api.ok("GET", "/v1/follow", None).await;
    assert_eq!(f["producers"], json!([me]), "a node follows its own key");
    let other = "0000000000000000000000000000000000000000000000000000000000000002";
    let f = api
        .ok("POST", "/v1/follow", Some(json!({"producer": other})))
        .await;
    assert!(f["producers"].as_array().unwrap().contains(&json!(other)));
    let f = api
        .ok(
            "POST",
            "/v1/follow",
            Some(json!({"product": format!("{other}/gtin-9")})),
        )
        .await;
    assert_eq!(f["products"], json!([format!("{other}/gtin-9")]));
    api.fails(
        "POST",
        "/v1/follow",
        Some(json!({"producer": other, "all": true})),
        400,
        "bad_follow",
    )
    .await;
    api.fails(
        "POST",
        "/v1/follow",
        Some(json!({"product": "nokey"})),
        400,
        "bad_product",
    )
    .await;
    let (_, v) = api
        .call("POST", "/v1/follow", Some(json!({"product": "zz/gtin-1"})))
        .await;
    assert_eq!(v["code"], "bad_product", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("product \"zz/gtin-1\""),
        "{v}"
    );
    let f = api
        .ok("POST", "/v1/unfollow", Some(json!({"producer": other})))
        .await;
    assert!(!f["producers"].as_array().unwrap().contains(&json!(other)));
    let peers = api.ok("GET", "/v1/peers", None).await;
    assert_eq!(peers["peers"], json!([]));
    let sync = api.ok("POST", "/v1/sync", None).await;
    assert_eq!(sync["pulls"], json!([]));
    api.fails(
        "POST",
        "/v1/sync",
        Some(json!({"peer": "bad"})),
        400,
        "bad_peer",
    )
    .await;
    api.node.shutdown().await.unwrap();
}

impl Api {
    /// Reads a whole event stream (one that ends: `follow=false`); returns (event, id, data).
    async fn stream(
        &self,
        path: &str,
        last_event_id: Option<u64>,
    ) -> Vec<(String, Option<u64>, Value)> {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let token = self.token.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = agent
                .get(&url)
                .header("Authorization", &format!("Bearer {token}"));
            if let Some(id) = last_event_id {
                r = r.header("Last-Event-ID", &id.to_string());
            }
            let mut resp = r.call().unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let text = resp.body_mut().read_to_string().unwrap();
            let mut out = Vec::new();
            for block in text.split("\n\n") {
                let (mut ev, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    out.push((ev, id, serde_json::from_str(&data).unwrap()));
                }
            }
            out
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_replays_what_arrived_after_a_cursor_then_ends_or_follows() {
    let api = Api::start().await;
    let me = api.node.author().to_string();
    let other = "0000000000000000000000000000000000000000000000000000000000000003";
    let pet = api
        .ok(
            "POST",
            "/v1/petitions",
            Some(json!({"producer": me, "title": "Blue", "text": "t", "threshold": 1})),
        )
        .await;
    let pid = pet["id"].as_str().unwrap().to_string();
    api.ok("POST", "/v1/endorse", Some(json!({"petition": pid})))
        .await;
    // Feedback aimed at another producer is not in a watch of mine.
    api.ok(
        "POST",
        "/v1/reviews",
        Some(json!({"producer": other, "product": "x", "rating": 3, "text": "t"})),
    )
    .await;

    let all = api
        .stream(
            &format!("/v1/events?producer={me}&after=0&follow=false"),
            None,
        )
        .await;
    let kinds: Vec<&str> = all.iter().map(|(e, _, _)| e.as_str()).collect();
    // The threshold was reached by the endorsement: a journaled milestone, in its place.
    assert_eq!(
        kinds,
        ["record", "record", "threshold", "tally", "ready"],
        "{all:?}"
    );
    assert_eq!(all[0].2["record"]["kind"], "petition");
    assert_eq!(all[1].2["record"]["kind"], "endorsement");
    assert_eq!(all[2].2["tally"]["id"], pid.as_str());
    assert_eq!(all[3].2["tally"]["endorsers"], 1);
    assert_eq!(all[3].2["tally"]["reached"], true);
    let (s1, s2, s3) = (all[0].1.unwrap(), all[1].1.unwrap(), all[2].1.unwrap());
    assert!(s3 > s2 && s2 > s1);
    // The cursor is the journal's end: past the review on the other producer's topic
    // (journaled too, as a topic this user wrote to), which this filter does not send.
    assert_eq!(all[4].1, Some(s3 + 1), "ready carries the cursor");

    // Resuming after the first record replays only the second; so does Last-Event-ID.
    let rest = api
        .stream(
            &format!("/v1/events?producer={me}&after={s1}&follow=false"),
            None,
        )
        .await;
    assert_eq!(rest.iter().filter(|(e, _, _)| e == "record").count(), 1);
    let rest = api
        .stream(&format!("/v1/events?producer={me}&follow=false"), Some(s1))
        .await;
    assert_eq!(rest.iter().filter(|(e, _, _)| e == "record").count(), 1);
    // After the endorsement: only the threshold it crossed; nothing new after the last.
    let crossed = api
        .stream(
            &format!("/v1/events?producer={me}&after={s2}&follow=false"),
            None,
        )
        .await;
    let kinds: Vec<&str> = crossed.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(kinds, ["threshold", "ready"], "{crossed:?}");
    let none = api
        .stream(
            &format!("/v1/events?producer={me}&after={s3}&follow=false"),
            None,
        )
        .await;
    assert_eq!(none.len(), 1, "{none:?}");
    // Filters: by kind, by petition.
    let ends = api
        .stream(
            &format!("/v1/events?producer={me}&kind=endorsement&after=0&follow=false"),
            None,
        )
        .await;
    assert_eq!(ends.iter().filter(|(e, _, _)| e == "record").count(), 1);
    let by_petition = api
        .stream(
            &format!("/v1/events?petition={pid}&after=0&follow=false"),
            None,
        )
        .await;
    assert_eq!(
        by_petition.iter().filter(|(e, _, _)| e == "record").count(),
        2
    );
    api.fails("GET", "/v1/events?kind=nonsense", None, 400, "bad_kind")
        .await;
    api.fails("GET", "/v1/events?producer=zz", None, 400, "bad_key")
        .await;

    // Live: a stream that follows gets a new record as it is stored.
    let agent = api.agent.clone();
    let url = format!("{}/v1/events?producer={me}", api.base);
    let token = api.token.clone();
    // The stream says `ready` once it has subscribed to live events (and replayed, here
    // nothing): post only then, so the record cannot slip past a late subscription.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let resp = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        let mut ready_tx = Some(ready_tx);
        for line in reader.lines() {
            let line = line.unwrap();
            if line.strip_prefix("event:").map(str::trim) == Some("ready") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            if line.starts_with("data:")
                && line.contains("\"response\"")
                && line.contains("\"record\"")
            {
                return line;
            }
        }
        String::new()
    });
    tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .expect("the live stream did not say ready within 20 s")
        .expect("the live stream ended before it said ready");
    api.ok(
        "POST",
        "/v1/respond",
        Some(json!({"target": pid, "status": "done", "text": "shipped"})),
    )
    .await;
    let line = tokio::time::timeout(Duration::from_secs(20), live)
        .await
        .unwrap()
        .unwrap();
    assert!(line.contains("shipped"), "{line}");
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_back_to_back_get_increasing_created_at() {
    let api = Api::start().await;
    let other = "0000000000000000000000000000000000000000000000000000000000000001";
    let review =
        |text: &str| json!({"producer": other, "product": "gtin-42.x", "rating": 3, "text": text});
    let (mut made, mut last) = (Vec::new(), Value::Null);
    for i in 0..5 {
        let r = api
            .ok("POST", "/v1/reviews", Some(review(&format!("take {i}"))))
            .await;
        made.push(r["record"]["created_at"].as_u64().unwrap());
        last = r["id"].clone();
    }
    assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
    // The last one made counts, even if they all fell in one millisecond.
    let q = format!("producer={other}&product=gtin-42.x");
    let reviews = api.ok("GET", &format!("/v1/reviews?{q}"), None).await;
    let counted: Vec<&Value> = reviews["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["counted"] == true)
        .collect();
    assert_eq!(counted.len(), 1, "{reviews}");
    assert_eq!(counted[0]["id"], last, "{reviews}");
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_token_at_each_start_and_the_last_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = "127.0.0.1:0".into();
    let status = |addr: std::net::SocketAddr, token: String| {
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            agent
                .get(&format!("http://{addr}/v1/status"))
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let (first, _events) = Node::start(&data, config.clone()).await.unwrap();
    let old = data.api_token().unwrap();
    assert_eq!(
        status(first.api_addr().unwrap(), old.clone())
            .await
            .unwrap(),
        200
    );
    first.shutdown().await.unwrap();

    let (second, _events) = Node::start(&data, config).await.unwrap();
    let new = data.api_token().unwrap();
    assert_ne!(new, old);
    let addr = second.api_addr().unwrap();
    assert_eq!(
        status(addr, old).await.unwrap(),
        401,
        "the last start's token"
    );
    assert_eq!(status(addr, new).await.unwrap(), 200);
    second.shutdown().await.unwrap();
}

/// Issue 20: records signed by a key that is not the node's, taken as CBOR or as JSON hex,
/// each answered (stored, duplicate, or refused with its code); a refused one is stored
/// nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_signed_elsewhere_are_taken_and_each_gets_its_answer() {
    use chorus_protocol::testing::{author, key};
    use chorus_protocol::{cbor, Body, Petition, PetitionVariant, RecordBuilder};
    let api = Api::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let petition = |title: &str| {
        RecordBuilder::new(Body::Petition(Petition {
            producer: author(9),
            product: None,
            group: None,
            title: title.into(),
            text: "t".into(),
            threshold: 1,
            deadline: None,
            variant: PetitionVariant::Demand,
        }))
        .created_at(now - 1_000)
        .sign(&key(3))
        .unwrap()
    };
    let (a, b) = (petition("A"), petition("B"));
    let mut forged = petition("C").wire().to_vec();
    let n = forged.len();
    forged[n - 1] ^= 1;
    let body = [a.wire(), b.wire(), &forged].concat();
    let (status, v) = api
        .post_bytes("/v1/records", "application/cbor", body)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["stored"], &v["rejected"]),
        (&json!(2), &json!(1)),
        "{v}"
    );
    assert_eq!(v["results"][0]["id"], a.id().to_string());
    assert_eq!(v["results"][2]["outcome"], "rejected");
    assert_eq!(v["results"][2]["code"], "invalid-signature");
    let forged_id = v["results"][2]["id"].as_str().unwrap().to_string();
    api.fails(
        "GET",
        &format!("/v1/records/{forged_id}"),
        None,
        404,
        "not_found",
    )
    .await;
    let shown = api
        .ok("GET", &format!("/v1/records/{}", a.id()), None)
        .await;
    assert_eq!(shown["author"], author(3).to_string());
    // The node follows what it stored this way.
    let following = api.ok("GET", "/v1/follow", None).await;
    assert!(
        following["producers"]
            .to_string()
            .contains(&author(9).to_string()),
        "{following}"
    );
    // JSON: the same records again are duplicates.
    let again = api
        .ok(
            "POST",
            "/v1/records",
            Some(json!({"records": [hex::encode(a.wire())]})),
        )
        .await;
    assert_eq!(again["duplicate"], 1, "{again}");
    // What is not records at all is the request's fault, said with a code.
    api.fails(
        "POST",
        "/v1/records",
        Some(json!({"records": ["zz"]})),
        400,
        "bad_hex",
    )
    .await;
    api.fails(
        "POST",
        "/v1/records",
        Some(json!({"records": []})),
        400,
        "no_records",
    )
    .await;
    let (status, v) = api
        .post_bytes("/v1/records", "application/cbor", b"hello".to_vec())
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("malformed")),
        "{v}"
    );
    let garbage = cbor::encode_wire(b"not a record", &[7; 64]);
    let (status, v) = api
        .post_bytes("/v1/records", "application/cbor", garbage)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["code"], "malformed", "{v}");
    let (status, v) = api
        .post_bytes("/v1/records", "text/plain", b"x".to_vec())
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{v}"
    );
    api.node.shutdown().await.unwrap();
}
