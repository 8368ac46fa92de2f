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

/// Waits until `check` holds on what `c` shows (asked again every 200 ms), or fails
/// naming `what`.
async fn until<F, Fut>(c: &Client, what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not seen on {:?}",
            c.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the first element `css` finds is there and shown.
async fn shown(c: &Client, css: &str) -> bool {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// Fills the form field `css` with `value`.
async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// A page on another origin than the node's (a loopback port of its own) whose form posts
/// to `action` as soon as it loads: what a hostile site would do. Serves one page, then
/// stops.
fn hostile_site(action: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{action}\">\
         <input name=csrf value=guess></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

#[test]
fn a_campaign_is_funded_answered_from_the_inbox_and_its_bundle_checked_in_a_browser() {
    let driver = driver();
    let (dp, dc) = (DataDir::new(), DataDir::new());
    let (p, addr) = start(&dp, None);
    let (c, _) = start(&dc, Some(&addr));
    ok(
        &dp,
        &["profile", "--name", "Atelier Chêne", "--role", "producer"],
    );
    let producer = ok(&dp, &["id"]);
    ok(&dc, &["follow", "--producer", &producer]);
    eventually(
        "the producer's profile reaches the consumer",
        TRAVEL,
        || {
            let out = chorus_e2e::chorus(&dc, &["find", "Atelier"]);
            chorus_e2e::cli::stdout(&out)
                .contains(&producer[..12])
                .then_some(())
        },
    );
    let link = |d: &DataDir| ok(d, &["open"]).lines().next().unwrap().to_string();
    let (producer_link, consumer_link) = (link(&dp), link(&dc));
    let pbase = producer_link.split("/login").next().unwrap().to_string();
    let cbase = consumer_link.split("/login").next().unwrap().to_string();
    let profiles = tempfile::tempdir().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // First run: the consumer's browser lands on the profile form, with the key file's
        // backup warning.
        let consumer = browser(&driver, &profiles.path().join("consumer")).await;
        consumer.goto(&consumer_link).await.unwrap();
        assert!(consumer.current_url().await.unwrap().path().ends_with("/start"));
        assert!(shown(&consumer, "#key-file").await);
        screenshot(&consumer, "start").await;
        fill(&consumer, "#name", "Camille").await;
        click(&consumer, "form[action='/start'] button[type=submit]").await;
        until(&consumer, "the home page", Duration::from_secs(20), || async {
            text(&consumer, "main").await.contains("Camille")
        })
        .await;

        // A campaign from the form: a goal that is not an amount is refused beside its
        // field, the rest kept; then opened.
        consumer
            .goto(&format!("{cbase}/write/petition?variant=campaign"))
            .await
            .unwrap();
        fill(&consumer, "#producer", "Atelier Chêne").await;
        fill(&consumer, "#product", "oak-chair").await;
        fill(&consumer, "#title", "An oak edition").await;
        fill(&consumer, "#text", "Produced once 30 EUR is pledged").await;
        fill(&consumer, "#threshold", "1").await;
        fill(&consumer, "#goal", "thirty").await;
        click(&consumer, "form.write button[type=submit]").await;
        until(&consumer, "the goal's error", Duration::from_secs(20), || async {
            shown(&consumer, "#goal-error").await
        })
        .await;
        let kept = consumer
            .find(Locator::Css("#title"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        assert_eq!(kept.as_deref(), Some("An oak edition"));
        screenshot(&consumer, "write").await;
        fill(&consumer, "#goal", "30EUR").await;
        click(&consumer, "form.write button[type=submit]").await;
        until(&consumer, "the campaign's page", Duration::from_secs(20), || async {
            consumer
                .current_url()
                .await
                .is_ok_and(|u| u.path().starts_with("/petitions/"))
        })
        .await;
        let url = consumer.current_url().await.unwrap();
        let id = url.path().trim_start_matches("/petitions/").to_string();

        // A pledge of the whole goal: the bar reaches its end and the campaign is funded.
        fill(&consumer, "#pledge", "30EUR").await;
        click(&consumer, "form[action$='/endorse'] button").await;
        until(&consumer, "funded", Duration::from_secs(20), || async {
            shown(&consumer, ".funded-mark").await
        })
        .await;
        let bar = consumer
            .execute(
                "var b = document.querySelector('progress.pledged'); return [b.value, b.max];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(bar[0], bar[1], "the pledged bar is full: {bar}");
        assert_eq!(bar[1].as_f64(), Some(30.0), "{bar}");
        assert!(shown(&consumer, "a#bundle-download").await);
        screenshot(&consumer, "campaign").await;

        // A review from its form: then the product's page, with its rating and the
        // campaign about it.
        consumer
            .goto(&format!("{cbase}/write/review"))
            .await
            .unwrap();
        fill(&consumer, "#producer", "Atelier Chêne").await;
        fill(&consumer, "#product", "oak-chair").await;
        consumer
            .find(Locator::Css("#rating"))
            .await
            .unwrap()
            .select_by_value("5")
            .await
            .unwrap();
        fill(&consumer, "#text", "Solid, and repairable").await;
        click(&consumer, "form.write button[type=submit]").await;
        until(&consumer, "the product's page", Duration::from_secs(20), || async {
            shown(&consumer, "svg#rating-chart").await
        })
        .await;
        assert!(text(&consumer, "main").await.contains("An oak edition"));
        screenshot(&consumer, "product").await;
        consumer.goto(url.as_str()).await.unwrap();

        // The producer answers from its inbox; the consumer's page, not reloaded, shows it.
        let maker = browser(&driver, &profiles.path().join("producer")).await;
        maker.goto(&producer_link).await.unwrap();
        maker.goto(&format!("{pbase}/inbox")).await.unwrap();
        let item = format!("li#item-{id}");
        // Live: whether it came before the page or after, without a reload.
        until(&maker, "the campaign in the inbox", TRAVEL, || async {
            shown(&maker, &item).await
        })
        .await;
        assert!(shown(&maker, &format!("{item}.unread")).await, "marked unread");
        screenshot(&maker, "inbox").await;
        click(&maker, &format!("{item} details.respond summary")).await;
        let status = maker
            .find(Locator::Css(&format!("#status-{id}")))
            .await
            .unwrap();
        status.select_by_value("accepted").await.unwrap();
        fill(&maker, &format!("#text-{id}"), "We make it this spring").await;
        click(&maker, &format!("{item} form.respond-form button[type=submit]")).await;
        // First the answer reaches the consumer's node (gossip, or the next pull on a busy
        // machine), then its page shows it without a reload.
        eventually("the answer reaches the consumer's node", 2 * TRAVEL, || {
            let out = chorus_e2e::chorus(&dc, &["tally", &id, "--json"]);
            let t: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (t["response"]["status"] == "accepted").then_some(())
        });
        until(&consumer, "the answer, live", Duration::from_secs(15), || async {
            shown(&consumer, "#answer-section").await
                && text(&consumer, "#answer-section").await.contains("We make it this spring")
        })
        .await;
        assert_eq!(consumer.current_url().await.unwrap(), url, "no reload");

        // A watchdog checks the bundle: valid; altered by one byte: refused, with the reason.
        let file = profiles.path().join("campaign.cbor");
        ok(&dc, &["export", &id, "--output", file.to_str().unwrap()]);
        consumer.goto(&format!("{cbase}/verify")).await.unwrap();
        let input = consumer.find(Locator::Css("input#bundle")).await.unwrap();
        input.send_keys(file.to_str().unwrap()).await.unwrap();
        click(&consumer, "#verify-submit").await;
        until(&consumer, "a valid verdict", Duration::from_secs(20), || async {
            shown(&consumer, "section#verdict.valid").await
        })
        .await;
        screenshot(&consumer, "verify").await;
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 0x01;
        let tampered = profiles.path().join("tampered.cbor");
        std::fs::write(&tampered, bytes).unwrap();
        consumer.goto(&format!("{cbase}/verify")).await.unwrap();
        let input = consumer.find(Locator::Css("input#bundle")).await.unwrap();
        input.send_keys(tampered.to_str().unwrap()).await.unwrap();
        click(&consumer, "#verify-submit").await;
        until(&consumer, "an invalid verdict", Duration::from_secs(20), || async {
            shown(&consumer, "section#verdict.invalid").await
        })
        .await;
        assert!(!text(&consumer, "#verdict-reason").await.is_empty());

        // Refused in the browser: a forged CSRF token, a post from another site, a foreign
        // Host (DNS rebinding).
        consumer.goto(&format!("{cbase}/petitions/{id}")).await.unwrap();
        consumer
            .execute(
                "document.querySelector(\"form[action$='/retract'] input[name=csrf]\").value = '0'.repeat(64);",
                vec![],
            )
            .await
            .unwrap();
        click(&consumer, "form[action$='/retract'] button").await;
        until(&consumer, "the forged token refused", Duration::from_secs(20), || async {
            text(&consumer, "main").await.contains("out of date or did not come from this dashboard")
        })
        .await;
        let hostile = hostile_site(&format!("{cbase}/petitions/{id}/retract"));
        consumer.goto(&hostile).await.unwrap();
        until(&consumer, "the other site's post refused", Duration::from_secs(20), || async {
            text(&consumer, "main").await.contains("another site")
        })
        .await;
        // Still endorsed: neither retraction happened.
        consumer.goto(&format!("{cbase}/petitions/{id}")).await.unwrap();
        assert!(shown(&consumer, "form[action$='/retract']").await);

        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--host-resolver-rules=MAP rebind.test 127.0.0.1",
                         format!("--user-data-dir={}", profiles.path().join("rebind").display())],
            }),
        );
        let rebind = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap();
        let port = cbase.rsplit(':').next().unwrap();
        rebind
            .goto(&format!("http://rebind.test:{port}/welcome"))
            .await
            .unwrap();
        assert!(
            text(&rebind, "main").await.contains("names another host"),
            "{}",
            text(&rebind, "main").await
        );

        // The other main pages, for the README.
        for (b, base, path, name) in [
            (&consumer, &cbase, "/browse", "browse"),
            (&consumer, &cbase, "/node", "node"),
            (&maker, &pbase, "/products", "products"),
            (&maker, &pbase, "/audit", "audit"),
        ] {
            b.goto(&format!("{base}{path}")).await.unwrap();
            text(b, "h1").await;
            screenshot(b, name).await;
        }
        for b in [consumer, maker, rebind] {
            b.close().await.unwrap();
        }
    });
    for n in [c, p] {
        drop(n);
    }
}
