//! The watchdog's dashboard pages over real HTTP against a running node (in process, on
//! 127.0.0.1): the audit page with a real finding and the attestations its buttons sign,
//! the trusted watchdogs form, the trusted count on a petition's page, the bundle download
//! and the bundle verifier.

mod common;
mod dashboard;

use chorus_protocol::bundle::Bundle;
use chorus_protocol::testing::{author, key};
use chorus_protocol::{
    AuthorKey, Body, Endorsement, Petition, PetitionVariant, RecordBuilder, SignedRecord,
    SigningKey,
};
use dashboard::{csrf_of, Dashboard, Part};

/// Page bodies stay under this, whatever the store holds.
const MAX_PAGE: usize = 150_000;

fn now() -> u64 {
    chorus_node::clock::now_ms()
}

fn petition(k: &SigningKey, at: u64, title: &str) -> SignedRecord {
    RecordBuilder::new(Body::Petition(Petition {
        producer: author(2),
        product: None,
        group: None,
        title: title.into(),
        text: "Sell spare parts.".into(),
        threshold: 10,
        deadline: None,
        variant: PetitionVariant::Demand,
    }))
    .created_at(at)
    .sign(k)
    .unwrap()
}

fn endorse(k: &SigningKey, at: u64, p: &SignedRecord) -> SignedRecord {
    RecordBuilder::new(Body::Endorsement(Endorsement {
        petition: p.id(),
        comment: None,
        pledge: None,
    }))
    .created_at(at)
    .topic(p.record().topic)
    .sign(k)
    .unwrap()
}

/// Keys nobody has seen, distinct from `key(n)`.
fn fresh_key(salt: u8, i: u16) -> SigningKey {
    let mut b = [7u8; 32];
    b[0] = salt;
    b[1..3].copy_from_slice(&i.to_be_bytes());
    SigningKey::from_bytes(&b)
}

fn hex_key(k: &SigningKey) -> String {
    AuthorKey(k.verifying_key().to_bytes()).to_string()
}

/// Hands records signed elsewhere to the node, as `chorus import` does.
async fn submit(d: &Dashboard, recs: &[SignedRecord]) {
    for chunk in recs.chunks(500) {
        let hexes: Vec<String> = chunk.iter().map(|r| hex::encode(r.wire())).collect();
        let answer = d
            .api(
                "POST",
                "/v1/records",
                Some(serde_json::json!({ "records": hexes })),
            )
            .await;
        for r in answer["results"].as_array().unwrap() {
            assert_eq!(r["outcome"], "stored", "{answer}");
        }
    }
}

/// The session's cookie and this node's Origin, as a browser sends them.
fn browser(d: &Dashboard, session: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Cookie", session.to_string()),
        ("Origin", format!("http://{}", d.host)),
    ]
}

/// The value of the first `<input name="NAME" value="...">` after `from` in a page.
fn input_value(page: &str, from: usize, name: &str) -> String {
    let at = page[from..]
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap()
        + from;
    let start = at + name.len() + 15;
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

/// Runs the audit from the page and waits for its report.
async fn run_audit(d: &Dashboard, session: &str) -> String {
    let page = d.ask("GET", "/audit", &browser(d, session), None).await;
    let csrf = csrf_of(&page.body);
    let ran = d
        .ask(
            "POST",
            "/audit",
            &browser(d, session),
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(ran.status, 303, "{}", ran.body);
    assert_eq!(ran.location.as_deref(), Some("/audit"));
    let mut report = String::new();
    common::eventually("the audit's report", 60, async || {
        report = d
            .ask("GET", "/audit", &browser(d, session), None)
            .await
            .body;
        report.contains("id=\"report\"")
    })
    .await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_shows_a_sybil_burst_and_a_forgery_and_their_buttons_sign_attestations() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let me = d.node.node.author().to_string();

    // Before any audit: the page says so and offers to run one.
    let page = d.ask("GET", "/audit", &browser(&d, &session), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"no-audit\""), "{}", page.body);
    assert!(page.body.contains("id=\"run-audit\""), "{}", page.body);
    assert!(page.body.contains("href=\"/trust\""), "{}", page.body);

    // Thirty keys nobody has seen, within a minute, doing nothing but endorse one petition.
    let t0 = now() - 3_600_000;
    let p = petition(&key(1), t0, "Repairable kettles");
    let pid = p.id().to_string();
    let sybils: Vec<SigningKey> = (0..30).map(|i| fresh_key(201, i)).collect();
    let mut recs = vec![p.clone()];
    for (i, k) in sybils.iter().enumerate() {
        recs.push(endorse(k, t0 + 600_000 + i as u64 * 2_000, &p));
    }
    submit(&d, &recs).await;
    // A forged endorsement slipped into the store: its signature is broken.
    let forged = endorse(&key(4), t0 + 1_000, &p);
    let mut wire = forged.wire().to_vec();
    let n = wire.len();
    wire[n - 3] ^= 1;
    d.node
        .node
        .store()
        .plant_record(&wire, &p.record().topic, t0 + 1_000, &forged.id())
        .unwrap();

    let report = run_audit(&d, &session).await;
    assert!(report.len() < MAX_PAGE, "{} bytes", report.len());
    // Grouped by kind, errors first, each with its evidence.
    let error_at = report.find("data-code=\"invalid-record\"").unwrap();
    let burst_at = report.find("data-code=\"sybil-burst\"").unwrap();
    assert!(error_at < burst_at, "errors come first");
    assert!(report.contains("Bursts of fresh keys"), "{report}");
    // The petition is linked, the keys shortened with the whole key in their title.
    assert!(
        report[burst_at..].contains(&format!("href=\"/petitions/{pid}\"")),
        "{report}"
    );
    let k0 = hex_key(&sybils[0]);
    assert!(
        report.contains(&format!("title=\"{k0}\">{}</code>", &k0[..12])),
        "{report}"
    );
    assert!(report.contains("… and 22 more"), "{report}");
    // The forged record names its id.
    let fid = forged.id().to_string();
    assert!(report.contains(&format!("title=\"{fid}\"")), "{report}");

    // The burst's button: one-actor about its thirty keys.
    let form_at = report[burst_at..].find("action=\"/audit/attest\"").unwrap() + burst_at;
    assert!(report[form_at..].contains("Attest: these keys look like one actor (30)"));
    let (run, finding) = (
        input_value(&report, form_at, "run"),
        input_value(&report, form_at, "finding"),
    );
    let csrf = csrf_of(&report);
    // Without the token: refused, nothing signed.
    let forged_post = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!(
                "run={run}&finding={finding}&csrf={}",
                "0".repeat(64)
            )),
        )
        .await;
    assert_eq!(forged_post.status, 403, "{}", forged_post.body);
    let missing = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!("run={run}&finding={finding}")),
        )
        .await;
    assert!(missing.status >= 400, "{}", missing.status);
    let mine_before = d.api("GET", "/v1/mine", None).await["records"]
        .as_array()
        .unwrap()
        .len();

    let signed = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&run={run}&finding={finding}")),
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let location = signed.location.unwrap();
    assert!(
        location.starts_with("/audit?code=sybil-burst&attested="),
        "{location}"
    );
    let aid = location
        .split("attested=")
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(aid.len(), 64, "{location}");
    let a = d.api("GET", &format!("/v1/records/{aid}"), None).await;
    assert_eq!(a["kind"], "attestation", "{a}");
    assert_eq!(a["author"], me, "{a}");
    let a_text = a.to_string();
    assert!(a_text.contains("one-actor"), "{a}");
    for k in &sybils {
        assert!(a_text.contains(&hex_key(k)), "{a}");
    }
    let mine_after = d.api("GET", "/v1/mine", None).await["records"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(mine_after, mine_before + 1, "one attestation, no more");
    // Back on the audit, the confirmation.
    let back = d.ask("GET", &location, &browser(&d, &session), None).await;
    assert!(back.body.contains("Signed and published"), "{}", back.body);
    assert!(
        back.body.contains(&format!("title=\"{aid}\"")),
        "{}",
        back.body
    );

    // The forgery's button: invalid, about that record.
    let err_form = report[error_at..].find("action=\"/audit/attest\"").unwrap() + error_at;
    let finding = input_value(&report, err_form, "finding");
    let signed = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&run={run}&finding={finding}")),
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let aid = signed.location.unwrap();
    let aid = aid
        .split("attested=")
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap();
    let a = d.api("GET", &format!("/v1/records/{aid}"), None).await;
    assert!(a.to_string().contains(&fid), "{a}");
    assert!(a.to_string().contains("invalid"), "{a}");

    // A form from an older report is refused in words once the audit ran again.
    run_audit(&d, &session).await;
    let stale = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&run={run}&finding={finding}")),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(
        stale.body.contains("no longer the last one"),
        "{}",
        stale.body
    );

    // Trusting this node's own key: the petition's page shows the trusted count, in which
    // the thirty keys are one actor.
    let trust = d.ask("GET", "/trust", &browser(&d, &session), None).await;
    assert!(trust.body.contains("id=\"no-watchdogs\""), "{}", trust.body);
    let page = d
        .ask(
            "GET",
            &format!("/petitions/{pid}"),
            &browser(&d, &session),
            None,
        )
        .await;
    assert!(page.body.contains("id=\"no-trust\""), "{}", page.body);
    assert!(
        page.body
            .contains("id=\"raw-count\">Raw count: <strong>30</strong>"),
        "{}",
        page.body
    );
    let added = d
        .ask(
            "POST",
            "/trust/add",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&watchdog={me}")),
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let page = d
        .ask(
            "GET",
            &format!("/petitions/{pid}"),
            &browser(&d, &session),
            None,
        )
        .await;
    assert!(
        page.body
            .contains("id=\"trusted-count\">Trusted count: <strong>1</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("29 left out"), "{}", page.body);
    assert!(
        page.body.contains("No watchdog you trust vouches"),
        "{}",
        page.body
    );

    // Attesting the count from the petition's page: the watchdog now vouches for it.
    let signed = d
        .ask(
            "POST",
            &format!("/petitions/{pid}/attest"),
            &browser(&d, &session),
            Some(format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let location = signed.location.unwrap();
    assert!(
        location.starts_with(&format!("/petitions/{pid}?attested=")),
        "{location}"
    );
    let aid = location.split("attested=").nth(1).unwrap();
    let a = d.api("GET", &format!("/v1/records/{aid}"), None).await;
    assert!(a.to_string().contains("verified-count"), "{a}");
    let page = d.ask("GET", &location, &browser(&d, &session), None).await;
    assert!(page.body.contains("Signed and published"), "{}", page.body);
    let vouched = page.body.find("id=\"vouched-by\"").unwrap();
    assert!(
        page.body[vouched..].starts_with("id=\"vouched-by\">Vouched for by"),
        "{}",
        page.body
    );
    assert!(
        page.body[vouched..].contains(&format!("title=\"{me}\"")),
        "{}",
        page.body
    );
    let tally = d.api("GET", &format!("/v1/tally/{pid}"), None).await;
    assert_eq!(tally["trusted"]["vouched_by"][0], me, "{tally}");
    assert!(page.body.len() < MAX_PAGE);
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_report_is_shown_a_page_at_a_time() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    // 300 endorse-only keys in one burst, each endorsement made before its petition: a
    // timestamp warning each, and one burst of 300 keys.
    let t0 = now() - 3_600_000;
    let p = petition(&key(1), t0, "Spare parts for ten years");
    let mut recs = vec![p.clone()];
    for i in 0..300u16 {
        recs.push(endorse(&fresh_key(202, i), t0 - 400_000 + u64::from(i), &p));
    }
    submit(&d, &recs).await;
    let report = run_audit(&d, &session).await;
    assert!(report.len() < MAX_PAGE, "{} bytes", report.len());
    assert!(report.contains("Findings 1–40 of 301"), "{report}");
    assert!(
        report.contains("rel=\"next\" href=\"/audit?page=2\""),
        "{report}"
    );
    // The burst's page: its keys beyond what one attestation names go in a chain.
    let burst = d
        .ask(
            "GET",
            "/audit?code=sybil-burst",
            &browser(&d, &session),
            None,
        )
        .await
        .body;
    assert!(burst.len() < MAX_PAGE, "{} bytes", burst.len());
    assert!(burst.contains("Findings 1–1 of 1"), "{burst}");
    assert!(burst.contains("(300)"), "{burst}");
    assert!(burst.contains("… and 292 more"), "{burst}");
    assert!(
        burst.contains("An attestation names at most 64 keys"),
        "{burst}"
    );
    let form_at = burst.find("action=\"/audit/attest\"").unwrap();
    let csrf = csrf_of(&burst);
    let (run, finding) = (
        input_value(&burst, form_at, "run"),
        input_value(&burst, form_at, "finding"),
    );
    let signed = d
        .ask(
            "POST",
            "/audit/attest",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&run={run}&finding={finding}")),
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let location = signed.location.unwrap();
    let ids: Vec<&str> = location
        .split("attested=")
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .split(',')
        .collect();
    // 300 keys: 64, then 63 new ones in each set after, sets sharing a key.
    assert_eq!(ids.len(), 5, "{location}");
    // Trusting this node: the 300 keys count as one endorser.
    let me = d.node.node.author().to_string();
    d.api(
        "POST",
        "/v1/trust",
        Some(serde_json::json!({ "watchdog": me })),
    )
    .await;
    let tally = d.api("GET", &format!("/v1/tally/{}", p.id()), None).await;
    assert_eq!(tally["endorsers"], 300, "{tally}");
    assert_eq!(tally["trusted"]["endorsers"], 1, "{tally}");
    // The last page of the timestamps.
    let last = d
        .ask(
            "GET",
            "/audit?code=timestamp&page=8",
            &browser(&d, &session),
            None,
        )
        .await
        .body;
    assert!(last.contains("Findings 281–300 of 300"), "{last}");
    assert!(last.contains("rel=\"prev\""), "{last}");
    // A mangled page number shows the first page.
    let mangled = d
        .ask("GET", "/audit?page=x", &browser(&d, &session), None)
        .await;
    assert_eq!(mangled.status, 200, "{}", mangled.body);
    assert!(mangled.body.contains("Findings 1–40 of 301"));
    // In French, every word of the page from the French table.
    let fr = d
        .ask(
            "GET",
            "/audit",
            &[
                ("Cookie", session.clone()),
                ("Accept-Language", "fr".into()),
            ],
            None,
        )
        .await
        .body;
    assert!(fr.contains("Constats 1–40 sur 301"), "{fr}");
    assert!(fr.contains("Rafales de clés neuves"), "{fr}");
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdogs_are_trusted_and_untrusted_from_a_form_that_explains_a_bad_key() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let page = d.ask("GET", "/trust", &browser(&d, &session), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    assert!(page.body.contains("id=\"watchdog\""), "{}", page.body);

    // A name, a prefix, nothing: the form again, the error beside the field.
    for given in ["Alice", "03a107bf03", ""] {
        let bad = d
            .ask(
                "POST",
                "/trust/add",
                &browser(&d, &session),
                Some(format!("csrf={csrf}&watchdog={given}")),
            )
            .await;
        assert_eq!(bad.status, 400, "{}", bad.body);
        let field = bad.body.find("id=\"watchdog\"").unwrap();
        let error = bad.body.find("id=\"watchdog-error\"").unwrap();
        assert!(error > field, "the error comes right after its field");
        assert!(bad.body[field..].contains("aria-invalid=\"true\""));
        assert!(
            bad.body.contains("aria-describedby=\"watchdog-error\""),
            "{}",
            bad.body
        );
        if given.is_empty() {
            assert!(bad.body.contains("Give the watchdog"), "{}", bad.body);
        } else {
            assert!(bad.body.contains(&format!("value=\"{given}\"")));
            assert!(bad.body.contains("all 64 hex digits"), "{}", bad.body);
        }
    }
    // In French too.
    let mut fr = browser(&d, &session);
    fr.push(("Accept-Language", "fr-FR,fr;q=0.9".into()));
    let bad = d
        .ask(
            "POST",
            "/trust/add",
            &fr,
            Some(format!("csrf={csrf}&watchdog=Alice")),
        )
        .await;
    assert!(
        bad.body.contains("Ce n&#39;est pas une clé entière")
            || bad.body.contains("Ce n'est pas une clé entière"),
        "{}",
        bad.body
    );
    // Without the token: refused.
    let w1 = hex_key(&key(31));
    let forged = d
        .ask(
            "POST",
            "/trust/add",
            &browser(&d, &session),
            Some(format!("csrf={}&watchdog={w1}", "1".repeat(64))),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        d.api("GET", "/v1/trust", None).await["watchdogs"],
        serde_json::json!([])
    );

    // Two watchdogs, one with a profile this node holds: listed by name and key.
    let w2 = hex_key(&key(32));
    let profile = RecordBuilder::new(Body::Profile(chorus_protocol::Profile {
        name: "Fair Count".into(),
        role: chorus_protocol::Role::Watchdog,
        about: None,
    }))
    .created_at(now() - 1_000)
    .sign(&key(32))
    .unwrap();
    submit(&d, &[profile]).await;
    for w in [&w1, &w2] {
        let added = d
            .ask(
                "POST",
                "/trust/add",
                &browser(&d, &session),
                Some(format!("csrf={csrf}&watchdog={w}")),
            )
            .await;
        assert_eq!(added.status, 303, "{}", added.body);
        assert_eq!(added.location.as_deref(), Some("/trust"));
    }
    let page = d.ask("GET", "/trust", &browser(&d, &session), None).await;
    assert!(
        page.body.contains(&format!("title=\"{w1}\"")),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("Fair Count <code class=\"key\" title=\"{w2}\"")),
        "{}",
        page.body
    );
    let set = d.api("GET", "/v1/trust", None).await;
    assert_eq!(set["watchdogs"].as_array().unwrap().len(), 2, "{set}");

    // Removed by its button.
    let removed = d
        .ask(
            "POST",
            "/trust/remove",
            &browser(&d, &session),
            Some(format!("csrf={csrf}&watchdog={w1}")),
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    let set = d.api("GET", "/v1/trust", None).await;
    assert_eq!(set["watchdogs"], serde_json::json!([w2]), "{set}");
    let page = d.ask("GET", "/trust", &browser(&d, &session), None).await;
    assert!(
        !page.body.contains(&format!("title=\"{w1}\"")),
        "{}",
        page.body
    );
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_bundle_verifies_and_a_tampered_one_is_refused_naming_the_culprit() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let t0 = now() - 3_600_000;
    let p = petition(&key(1), t0, "Ten years of spare parts");
    let pid = p.id().to_string();
    let mut recs = vec![p.clone()];
    for i in 0..3u8 {
        recs.push(endorse(&key(10 + i), t0 + 1_000 * u64::from(i + 1), &p));
    }
    submit(&d, &recs).await;

    // The page links the bundle; the file is the API's bundle, as an attachment.
    let page = d
        .ask(
            "GET",
            &format!("/petitions/{pid}"),
            &browser(&d, &session),
            None,
        )
        .await;
    assert!(
        page.body.contains(&format!(
            "id=\"bundle-download\" href=\"/petitions/{pid}/bundle\" download"
        )),
        "{}",
        page.body
    );
    let file = d
        .ask_raw(
            "GET",
            &format!("/petitions/{}/bundle", &pid[..10]),
            &browser(&d, &session),
            None,
        )
        .await;
    assert_eq!(file.status, 200, "{}", file.text());
    assert_eq!(
        file.header("content-disposition"),
        Some(format!("attachment; filename=\"petition-{}.cbor\"", &pid[..12]).as_str())
    );
    assert_eq!(file.header("content-type"), Some("application/cbor"));
    let api = d
        .ask_raw(
            "GET",
            &format!("/v1/bundle/{pid}"),
            &[("Authorization", format!("Bearer {}", d.token))],
            None,
        )
        .await;
    assert_eq!(api.status, 200);
    assert_eq!(file.body, api.body, "the same bytes as the API's");
    // Without a session, no file.
    let anon = d
        .ask_raw("GET", &format!("/petitions/{pid}/bundle"), &[], None)
        .await;
    assert_eq!(anon.status, 303);

    // The verifier: the form, then the verdict.
    let form = d.ask("GET", "/verify", &browser(&d, &session), None).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body.contains("enctype=\"multipart/form-data\"")
            && form
                .body
                .contains("id=\"bundle\" type=\"file\" name=\"bundle\""),
        "{}",
        form.body
    );
    let csrf = csrf_of(&form.body);
    let send = |bytes: Vec<u8>, token: Option<String>| {
        let mut parts = Vec::new();
        if let Some(c) = token {
            parts.push(Part {
                name: "csrf",
                file_name: None,
                bytes: c.into_bytes(),
            });
        }
        parts.push(Part {
            name: "bundle",
            file_name: Some("petition.cbor"),
            bytes,
        });
        parts
    };
    let valid = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(file.body.clone(), Some(csrf.clone())),
        )
        .await;
    let text = valid.text();
    assert_eq!(valid.status, 200, "{text}");
    assert!(
        text.contains("class=\"verdict valid\" id=\"verdict\""),
        "{text}"
    );
    assert!(text.contains("id=\"verdict-count\">3<"), "{text}");
    assert!(text.contains("Ten years of spare parts"), "{text}");
    assert!(text.len() < MAX_PAGE);

    // One flipped bit in an endorsement's signature: refused, the record named.
    let mut b = Bundle::decode(&file.body).unwrap();
    let e0 = SignedRecord::from_bytes(&b.endorsements[0]).unwrap();
    let n = b.endorsements[0].len();
    b.endorsements[0][n - 3] ^= 1;
    let tampered = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(b.encode(), Some(csrf.clone())),
        )
        .await;
    let text = tampered.text();
    assert_eq!(tampered.status, 422, "{text}");
    assert!(
        text.contains("class=\"verdict invalid\" id=\"verdict\""),
        "{text}"
    );
    assert!(text.contains("endorsements #0 is invalid"), "{text}");
    let culprit = text.find("id=\"culprit\"").unwrap();
    assert!(text[culprit..].contains("endorsements #0"), "{text}");
    assert!(
        text[culprit..].contains(&format!("title=\"{}\"", e0.author())),
        "{text}"
    );
    // A claim that the records do not give: the culprit is the claim.
    let mut b = Bundle::decode(&file.body).unwrap();
    b.count += 1;
    let inflated = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(b.encode(), Some(csrf.clone())),
        )
        .await;
    let text = inflated.text();
    assert_eq!(inflated.status, 422, "{text}");
    assert!(text.contains("claims 4 endorsers"), "{text}");
    assert!(
        text.contains("the bundle&#39;s own claim") || text.contains("the bundle's own claim"),
        "{text}"
    );
    // Not a bundle at all.
    let junk = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(b"hello".to_vec(), Some(csrf.clone())),
        )
        .await;
    assert_eq!(junk.status, 422, "{}", junk.text());
    assert!(junk.text().contains("not a bundle"), "{}", junk.text());
    // No file: the error beside the field.
    let empty = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(Vec::new(), Some(csrf.clone())),
        )
        .await;
    assert_eq!(empty.status, 400, "{}", empty.text());
    assert!(
        empty.text().contains("id=\"bundle-error\""),
        "{}",
        empty.text()
    );
    // Without the token: refused.
    let forged = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(file.body.clone(), None),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    // Over the body limit: a page that says so, not a crash.
    let big = d
        .post_multipart(
            "/verify",
            &browser(&d, &session),
            &send(vec![0u8; 3 * 1024 * 1024], Some(csrf.clone())),
        )
        .await;
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(big.text().contains("File too large"), "{}", big.text());
    assert!(big.text().contains("chorus verify FILE"), "{}", big.text());
    // The node still answers.
    let again = d.ask("GET", "/verify", &browser(&d, &session), None).await;
    assert_eq!(again.status, 200);
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_watchdog_pages_send_to_welcome_and_posts_are_refused() {
    let d = Dashboard::start().await;
    for path in ["/audit", "/trust", "/verify", "/audit?code=sybil-burst"] {
        let a = d.ask("GET", path, &[], None).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.location.as_deref(), Some("/welcome"), "{path}");
    }
    for path in [
        "/audit",
        "/audit/attest",
        "/trust/add",
        "/trust/remove",
        "/verify",
    ] {
        let a = d.ask("POST", path, &[], Some("csrf=x".into())).await;
        assert_eq!(a.status, 403, "{path}");
    }
    // With a session but no token: refused, and no audit starts.
    let session = d.log_in().await;
    let a = d
        .ask(
            "POST",
            "/audit",
            &browser(&d, &session),
            Some(String::new()),
        )
        .await;
    assert!(a.status == 403 || a.status == 422, "{}", a.status);
    let page = d.ask("GET", "/audit", &browser(&d, &session), None).await;
    assert!(page.body.contains("id=\"no-audit\""), "{}", page.body);
    d.node.node.shutdown().await.unwrap();
}
