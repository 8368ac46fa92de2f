//! The dashboard in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver), against real `chorus` processes. `.ci/run` installs both
//! packages; without them this test fails and says what to install.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chorus_e2e::cli::{eventually, ok, open_petition, start, TRAVEL};
use chorus_e2e::DataDir;
use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A `chromedriver` process on a free loopback port, stopped by its pid when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    for path in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: the browser tests need Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver; .ci/run installs them)"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url }
}

/// A headless browser session of its own (its own profile directory, so its own cookies).
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1024,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// Saves a screenshot of what `c` shows as `docs/screenshots/NAME.png` when
/// `CHORUS_SCREENSHOTS=1` (how the README's pictures are made; off by default, so that a
/// test run leaves the tree as it was).
async fn screenshot(c: &Client, name: &str) {
    if std::env::var("CHORUS_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element `css` finds, once it is there (asked again while the page
/// is being replaced: an element of the page before is stale).
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        };
        if let Some(t) = found {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} on {:?}",
            c.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_endorsement_made_in_one_browser_shows_in_another_without_a_reload() {
    let driver = driver();
    let (dp, dc) = (DataDir::new(), DataDir::new());
    let (p, addr) = start(&dp, None);
    let (c, _) = start(&dc, Some(&addr));
    let producer = ok(&dp, &["id"]);
    let id = open_petition(&dp, &producer, "Repairable kettles", 2);
    ok(&dc, &["follow", "--producer", &producer]);
    eventually("the petition reaches the consumer", TRAVEL, || {
        chorus_e2e::chorus(&dc, &["tally", &id])
            .status
            .success()
            .then_some(())
    });
    let link = |d: &DataDir| {
        let out = ok(d, &["open"]);
        out.lines().next().unwrap().to_string()
    };
    let (producer_link, consumer_link) = (link(&dp), link(&dc));
    let profiles = tempfile::tempdir().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The producer watches its petition's page.
        let watcher = browser(&driver, &profiles.path().join("producer")).await;
        watcher.goto(&producer_link).await.unwrap();
        let base = producer_link.split("/login").next().unwrap().to_string();
        watcher
            .goto(&format!("{base}/petitions/{}", &id[..10]))
            .await
            .unwrap();
        assert_eq!(text(&watcher, ".live-count").await, "0");

        // The consumer logs in with its own node's link and endorses from the page.
        let endorser = browser(&driver, &profiles.path().join("consumer")).await;
        endorser.goto(&consumer_link).await.unwrap();
        let home = text(&endorser, "h1").await;
        assert!(!home.is_empty());
        let cbase = consumer_link.split("/login").next().unwrap().to_string();
        endorser
            .goto(&format!("{cbase}/petitions/{id}"))
            .await
            .unwrap();
        endorser
            .find(Locator::Css("form[action$='/endorse'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // Back on the page, the endorsement counts.
        let deadline = Instant::now() + Duration::from_secs(20);
        while text(&endorser, ".live-count").await != "1" {
            assert!(
                Instant::now() < deadline,
                "the endorser's page never showed 1"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        screenshot(&endorser, "petition").await;
        endorser.goto(&format!("{cbase}/")).await.unwrap();
        text(&endorser, "h1").await;
        screenshot(&endorser, "home").await;

        // The producer's page, never reloaded, shows the new count once gossip brings it.
        let url_before = watcher.current_url().await.unwrap();
        let deadline = Instant::now() + TRAVEL;
        loop {
            if text(&watcher, ".live-count").await == "1" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the producer's page did not update without a reload"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(watcher.current_url().await.unwrap(), url_before);

        // A browser that is not logged in sees how to log in, not the node's data.
        let stranger = browser(&driver, &profiles.path().join("stranger")).await;
        stranger.goto(&format!("{base}/")).await.unwrap();
        assert!(stranger
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/welcome"));
        assert!(text(&stranger, "pre").await.contains("chorus open"));
        screenshot(&stranger, "welcome").await;
        for b in [watcher, endorser, stranger] {
            b.close().await.unwrap();
        }
    });
    for n in [c, p] {
        drop(n);
    }
}
