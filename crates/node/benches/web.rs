//! The dashboard's speed (issue 21) on a node holding a million records.
//!
//! The node is an archive whose user is one of the workload's producers, so its inbox, its
//! products and the petitions aimed at it are full. Its store is built once from the
//! realistic workload (`chorus_node::workload`, the ingest benchmark's seed) and kept in
//! `target/bench-data/web-*`; `CHORUS_BENCH_RECORDS` scales it down.
//!
//! 1. **Pages.** Every page of the dashboard, logged in with a session cookie, asked 40
//!    times each after a warm-up, one request at a time over loopback: the time to the last
//!    byte, and the bytes of the page with the stylesheet and script it loads. The first
//!    request of each page is shown apart (`first_ms`): the browsing lists are computed
//!    then, and served from memory after.
//! 2. **Live.** A petition's page open in headless Chromium (Debian's `chromium` through
//!    `chromedriver`): an endorsement is published, and the time until the page's count
//!    changes (seen by a MutationObserver in the page, its clock matched to ours) is the
//!    live delay; 30 times. Without chromedriver the figure is the event's arrival on an
//!    event stream read by this process instead, and the last line says `live_source=sse`.
//!
//! The last line holds `page_kb_max= p99_ms= live_ms=` (live_ms: the 99th percentile).

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::workload::{generate, Params};
use chorus_node::{DataDir, Node};
use chorus_protocol::{Body, Endorsement, RecordBuilder, RecordId, SigningKey, Topic};

/// The ingest benchmark's seed: the same workload.
const SEED: u64 = 20261125;
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ROUNDS: usize = 40;
const LIVE_ROUNDS: usize = 30;

fn records() -> usize {
    std::env::var("CHORUS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// The workload's producer number 0 (its key is made as `workload::generate` makes it).
fn producer_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = 2;
    s[1..9].copy_from_slice(&0u64.to_le_bytes());
    s[9..17].copy_from_slice(&SEED.to_le_bytes());
    s
}

fn config() -> Config {
    let mut c = Config::default();
    c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.network.mdns = false;
    c.api.listen = "127.0.0.1:0".into();
    c.follow.all = true;
    c
}

/// Builds the node's data dir: its user is producer 0, its store the whole workload.
fn build(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let data = DataDir::new(dir);
    data.init().expect("init");
    std::fs::write(data.author_key_path(), producer_seed()).expect("key file");
    eprintln!("generating {n} records…");
    let recs = generate(SEED, &Params::realistic(n));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (node, _events) = rt.block_on(Node::start(&data, config())).expect("start");
    let ingest = node.ingest().clone();
    let wires: Vec<Vec<u8>> = recs.iter().map(|r| r.wire().to_vec()).collect();
    drop(recs);
    let ((stored, rejected, other), _, secs) =
        std::thread::spawn(move || common::ingest_stream(&ingest, wires.into_iter()))
            .join()
            .expect("ingest");
    eprintln!("stored {stored} ({rejected} rejected, {other} other) in {secs:.0} s");
    rt.block_on(node.shutdown()).expect("shutdown");
    std::fs::write(dir.join("complete"), b"").expect("mark");
}

/// An HTTP agent that keeps no cookies of its own and follows no redirects.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn get_json(agent: &ureq::Agent, base: &str, token: &str, path: &str) -> serde_json::Value {
    let body = agent
        .get(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("api")
        .into_body()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn login_link(agent: &ureq::Agent, base: &str, token: &str) -> String {
    let body = agent
        .post(format!("{base}/v1/web/link"))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty()
        .expect("link")
        .into_body()
        .read_to_string()
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["url"].as_str().expect("url").to_string()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// An endorsement of `petition` (on `topic`) by a fresh key, made now.
fn endorsement(i: u64, petition: RecordId, topic: Topic) -> chorus_protocol::SignedRecord {
    let mut seed = [0u8; 32];
    seed[0] = 0x77;
    seed[1..9].copy_from_slice(&i.to_le_bytes());
    seed[9..17].copy_from_slice(&(chorus_node::clock::now_ms()).to_le_bytes());
    RecordBuilder::new(Body::Endorsement(Endorsement {
        petition,
        comment: None,
        pledge: None,
    }))
    .created_at(chorus_node::clock::now_ms())
    .topic(topic)
    .sign(&SigningKey::from_bytes(&seed))
    .expect("sign")
}

fn main() {
    let n = records();
    let dir = common::data_dir().join(format!("web-{n}-{SEED}"));
    if !dir.join("complete").exists() {
        build(&dir, n);
    }
    let data = DataDir::new(&dir);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (node, mut events) = rt.block_on(Node::start(&data, config())).expect("start");
    rt.spawn(async move { while events.recv().await.is_some() {} });
    let base = format!("http://{}", node.api_addr().expect("api address"));
    let token = data.api_token().expect("token");
    let agent = agent();
    let held = node.store().len().expect("len");
    println!("records held: {held}");
    // The node reads its user's records once at start (on an archive, its whole store):
    // measured apart, then out of the way of the pages.
    let started = Instant::now();
    get_json(&agent, &base, &token, "/v1/mine");
    println!(
        "first read of the user's records: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // What the pages show: the most endorsed open petition aimed at this user, a group, a
    // product of this user's, a producer's name to search for.
    let me = node.author().to_string();
    let top = get_json(
        &agent,
        &base,
        &token,
        &format!("/v1/petitions?producer={me}&open=true&sort=endorsers&limit=1"),
    );
    let petition = top["petitions"][0]["id"]
        .as_str()
        .expect("an open petition")
        .to_string();
    let group = get_json(&agent, &base, &token, "/v1/groups?limit=1")["results"][0]["id"]
        .as_str()
        .expect("a group")
        .to_string();
    let product = get_json(
        &agent,
        &base,
        &token,
        &format!("/v1/products?producer={me}&limit=1"),
    )["results"][0]["name"]
        .as_str()
        .expect("a product")
        .to_string();
    let link = login_link(&agent, &base, &token);
    let cookie = agent
        .get(&link)
        .call()
        .expect("login")
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();

    let pages: Vec<String> = vec![
        "/?later=1".into(),
        "/start".into(),
        format!("/petitions/{petition}"),
        format!("/groups/{group}"),
        "/browse".into(),
        "/browse?list=new".into(),
        "/browse?list=closing".into(),
        "/browse?list=producers".into(),
        "/browse?list=groups".into(),
        "/search?q=chair".into(),
        "/write".into(),
        "/write/petition".into(),
        "/write/review".into(),
        "/node".into(),
        "/inbox".into(),
        "/products".into(),
        format!(
            "/products/{me}/{}",
            percent_encoding::utf8_percent_encode(&product, percent_encoding::NON_ALPHANUMERIC)
        ),
        "/audit".into(),
        "/trust".into(),
        "/verify".into(),
    ];
    let mut asset_bytes = 0usize;
    for a in ["/assets/style.css", "/assets/app.js"] {
        let body = agent
            .get(format!("{base}{a}"))
            .call()
            .expect("asset")
            .into_body()
            .read_to_vec()
            .expect("asset body");
        asset_bytes += body.len();
    }
    let mut all = Vec::new();
    let mut page_kb_max = 0.0f64;
    let mut heaviest = String::new();
    println!("page                                   kb   first_ms  p50_ms  p99_ms");
    for p in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut first = 0.0;
        for round in 0..ROUNDS + 3 {
            let start = Instant::now();
            let resp = agent
                .get(format!("{base}{p}"))
                .header("Cookie", &cookie)
                .header("Accept-Language", "fr-FR,fr;q=0.9")
                .call()
                .expect("page");
            let status = resp.status().as_u16();
            let body = resp.into_body().read_to_vec().expect("page body");
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{p}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
            if round == 0 {
                first = ms;
            }
            if round >= 3 {
                times.push(ms);
            }
        }
        let kb = (bytes + asset_bytes) as f64 / 1024.0;
        if kb > page_kb_max {
            page_kb_max = kb;
            heaviest = p.clone();
        }
        let (p50, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));
        // The first is apart: a list ranked for the first time since the start.
        println!("{p:38} {kb:6.1} {first:9.2} {p50:7.2} {p99:7.2}");
        all.extend(times);
    }
    let p99 = percentile(&mut all, 0.99);
    println!("heaviest page: {heaviest} ({page_kb_max:.1} KB with its assets)");

    // Live: an endorsement, and the page's count.
    let pid: RecordId = petition.parse().expect("id");
    let topic = node
        .store()
        .record(&pid)
        .expect("read")
        .expect("petition")
        .record()
        .topic;
    let browser = std::path::Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists();
    let (mut live, source) = if browser {
        let link = login_link(&agent, &base, &token);
        (
            rt.block_on(live_in_browser(&node, &link, &base, &petition, pid, topic)),
            "chromium",
        )
    } else {
        (
            live_on_stream(&rt, &node, &base, &cookie, &petition, pid, topic),
            "sse",
        )
    };
    let live_p50 = percentile(&mut live, 0.5);
    let live_p99 = percentile(&mut live, 0.99);
    println!("live ({source}): p50 {live_p50:.1} ms, p99 {live_p99:.1} ms over {LIVE_ROUNDS}");
    rt.block_on(node.shutdown()).expect("shutdown");
    println!(
        "records={held} pages={} page_kb_max={page_kb_max:.1} p99_ms={p99:.2} live_ms={live_p99:.1} live_p50_ms={live_p50:.1} live_source={source}",
        pages.len()
    );
}

/// The live delay seen by an event stream read here (no browser on this machine).
fn live_on_stream(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    base: &str,
    cookie: &str,
    petition: &str,
    pid: RecordId,
    topic: Topic,
) -> Vec<f64> {
    let resp = agent()
        .get(format!("{base}/events?petition={petition}"))
        .header("Cookie", cookie)
        .call()
        .expect("events");
    let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
    // The stream is ready once its first event came.
    lines
        .by_ref()
        .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("event: ready")))
        .expect("ready")
        .expect("read");
    let mut out = Vec::new();
    for i in 0..LIVE_ROUNDS as u64 {
        let rec = endorsement(i, pid, topic);
        let start = Instant::now();
        rt.block_on(node.publish(&rec)).expect("publish");
        lines
            .by_ref()
            .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("event: tally")))
            .expect("a tally event")
            .expect("read");
        out.push(start.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

/// The live delay seen in headless Chromium: the page's count changing.
async fn live_in_browser(
    node: &Node,
    link: &str,
    base: &str,
    petition: &str,
    pid: RecordId,
    topic: Topic,
) -> Vec<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut driver = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let c =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("browser");
    c.goto(link).await.expect("login");
    c.goto(&format!("{base}/petitions/{petition}"))
        .await
        .expect("petition page");
    // Wait for the page's stream to be open (the script marks it).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut out = Vec::new();
    for i in 0..LIVE_ROUNDS as u64 {
        // Watch the count; the browser's clock read at the call is matched to ours at the
        // call's middle.
        let before = Instant::now();
        let armed = c
            .execute(
                "var el = document.querySelector('article[data-petition] .live-count');\
                 window.__was = el.textContent; window.__changed = null;\
                 new MutationObserver(function (m, o) {\
                   if (el.textContent !== window.__was) { window.__changed = performance.now(); o.disconnect(); }\
                 }).observe(el, {childList: true, characterData: true, subtree: true});\
                 return performance.now();",
                vec![],
            )
            .await
            .expect("arm");
        let browser_at_arm = armed.as_f64().expect("a time");
        let ours_at_arm = before + before.elapsed() / 2;
        let rec = endorsement(i, pid, topic);
        let published = Instant::now();
        node.publish(&rec).await.expect("publish");
        let deadline = Instant::now() + Duration::from_secs(10);
        let changed = loop {
            let v = c
                .execute("return window.__changed;", vec![])
                .await
                .expect("read");
            if let Some(t) = v.as_f64() {
                break t;
            }
            assert!(Instant::now() < deadline, "the count never changed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seen_after_arm = changed - browser_at_arm;
        let published_after_arm = published.duration_since(ours_at_arm).as_secs_f64() * 1000.0;
        out.push((seen_after_arm - published_after_arm).max(0.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.close().await;
    let _ = driver.kill();
    let _ = driver.wait();
    out
}
