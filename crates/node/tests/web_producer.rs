//! The producer's pages over real HTTP against a running node (in process, on 127.0.0.1):
//! the inbox (newest first, unread marks, mark read, threshold crossings, the respond form
//! and its errors beside the fields), the product page (rating, histogram, reviews with the
//! producer's replies, the co-designed specification) and the products overview (the
//! rating plotted over time). Consumers' records are signed here with their own keys and
//! handed to the node as records signed elsewhere.

mod common;
mod dashboard;

use chorus_protocol::{
    AuthorKey, Body, Endorsement, Petition, PetitionVariant, ProductRef, RecordBuilder, Review,
    SignedRecord, SigningKey, Topic,
};
use dashboard::{csrf_of, Dashboard};

const CODE: &str = "kettle-2000";

/// A consumer's key.
fn consumer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn review(by: u8, producer: AuthorKey, rating: u8, text: &str, at: u64) -> SignedRecord {
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: CODE.into(),
        },
        rating,
        title: None,
        text: text.into(),
    }))
    .created_at(at)
    .sign(&consumer(by))
    .unwrap()
}

/// Records signed elsewhere, handed to the node (`POST /v1/records`), all stored.
async fn hand(d: &Dashboard, recs: &[&SignedRecord]) {
    for chunk in recs.chunks(100) {
        let hexes: Vec<String> = chunk.iter().map(|r| hex::encode(r.wire())).collect();
        let v = d
            .api(
                "POST",
                "/v1/records",
                Some(serde_json::json!({ "records": hexes })),
            )
            .await;
        assert_eq!(v["stored"], chunk.len(), "{v}");
    }
}

/// The node's user, a producer named Ledito.
async fn producer(d: &Dashboard) -> AuthorKey {
    let made = d
        .api(
            "POST",
            "/v1/profile",
            Some(serde_json::json!({ "name": "Ledito", "role": "producer" })),
        )
        .await;
    assert_eq!(made["outcome"], "stored", "{made}");
    me(d).await
}

async fn me(d: &Dashboard) -> AuthorKey {
    d.api("GET", "/v1/status", None).await["author"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn position(body: &str, what: &str) -> usize {
    body.find(what)
        .unwrap_or_else(|| panic!("{what} not in the page: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_lists_what_is_aimed_at_the_producer_and_answers_it() {
    let d = Dashboard::start().await;
    let me = producer(&d).await;
    let t = chorus_node::clock::now_ms() - 60_000;
    let good = review(7, me, 4, "Boils fast, the lid sticks", t);
    let bad = review(8, me, 2, "Leaks after a month", t + 10_000);
    let proposal = RecordBuilder::new(Body::Petition(Petition {
        producer: me,
        product: Some(CODE.into()),
        group: None,
        title: "A lid that opens with one hand".into(),
        text: "A wider button on the handle".into(),
        threshold: 1,
        deadline: None,
        variant: PetitionVariant::Proposal,
    }))
    .created_at(t + 20_000)
    .sign(&consumer(7))
    .unwrap();
    let endorsement = RecordBuilder::new(Body::Endorsement(Endorsement {
        petition: proposal.id(),
        comment: None,
        pledge: None,
    }))
    .topic(Topic::Producer(me))
    .created_at(t + 30_000)
    .sign(&consumer(8))
    .unwrap();
    hand(&d, &[&good, &bad, &proposal, &endorsement]).await;
    let pid = proposal.id().to_string();

    // Without a session: to the welcome page.
    for path in ["/inbox", "/products", &format!("/products/{me}/{CODE}")] {
        let a = d.ask("GET", path, &[], None).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.location.as_deref(), Some("/welcome"), "{path}");
    }
    let session = d.log_in().await;
    let cookie = || {
        vec![
            ("Cookie", session.clone()),
            ("Origin", format!("http://{}", d.host)),
        ]
    };

    // Newest first: the crossing (made by the endorsement), the proposal, the two reviews;
    // all unread.
    let inbox = d.ask("GET", "/inbox", &cookie(), None).await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    let b = &inbox.body;
    let crossing = position(b, &format!("id=\"crossing-{pid}\""));
    let petition = position(b, &format!("id=\"item-{pid}\""));
    let second = position(b, &format!("id=\"item-{}\"", bad.id()));
    let first = position(b, &format!("id=\"item-{}\"", good.id()));
    assert!(crossing < petition && petition < second && second < first);
    assert!(b.contains("Threshold reached:"), "{b}");
    assert_eq!(b.matches("class=\"unread-mark\"").count(), 4, "{b}");
    assert!(
        b.contains("<span class=\"count\" id=\"inbox-unread\">4</span> unread"),
        "{b}"
    );
    assert!(b.contains("Leaks after a month") && b.contains("A lid that opens"));
    assert!(!b.contains("You are not a producer yet"), "{b}");
    assert!(
        b.contains(&format!("href=\"/products/{me}/{CODE}\"")),
        "{b}"
    );
    let csrf = csrf_of(b);

    // One item alone, for the live updates; nothing that is not aimed at the user.
    let one = d
        .ask(
            "GET",
            &format!("/inbox/items/{}", bad.id()),
            &cookie(),
            None,
        )
        .await;
    assert_eq!(one.status, 200);
    assert!(one.body.starts_with("<li") && one.body.contains("Leaks after a month"));
    let other = d
        .ask(
            "GET",
            &format!("/inbox/items/{}", "0".repeat(64)),
            &cookie(),
            None,
        )
        .await;
    assert_eq!(other.status, 404);

    // Marking read takes the CSRF token; then no item is unread.
    let upto = t + 30_000;
    let forged = d
        .ask(
            "POST",
            "/inbox/read",
            &cookie(),
            Some(format!("csrf={}&upto={upto}", "3".repeat(64))),
        )
        .await;
    assert_eq!(forged.status, 403);
    let marked = d
        .ask(
            "POST",
            "/inbox/read",
            &cookie(),
            Some(format!("csrf={csrf}&upto={upto}")),
        )
        .await;
    assert_eq!(marked.status, 303, "{}", marked.body);
    assert_eq!(marked.location.as_deref(), Some("/inbox"));
    let inbox = d.ask("GET", "/inbox", &cookie(), None).await;
    assert_eq!(inbox.body.matches("class=\"unread-mark\"").count(), 0);
    assert!(inbox.body.contains(">0</span> unread"), "{}", inbox.body);

    // A bad status and an empty text: the errors beside their fields, nothing published.
    let refused = d
        .ask(
            "POST",
            "/inbox/respond",
            &cookie(),
            Some(format!("csrf={csrf}&target={pid}&status=maybe&text=+")),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let b = &refused.body;
    for field in ["status", "text"] {
        let error = format!("id=\"{field}-{pid}-error\"");
        assert!(b.contains(&error), "{field}: {b}");
        assert!(
            b.contains(&format!("aria-describedby=\"{field}-{pid}-error\"")),
            "{b}"
        );
    }
    assert_eq!(b.matches("aria-invalid=\"true\"").count(), 2, "{b}");
    assert!(b.contains("Choose one of the statuses") && b.contains("Write an answer."));
    let tally = d.api("GET", &format!("/v1/tally/{pid}"), None).await;
    assert!(tally["response"].is_null(), "{tally}");
    // Without the token: refused.
    let forged = d
        .ask(
            "POST",
            "/inbox/respond",
            &cookie(),
            Some(format!("target={pid}&status=accepted&text=yes&csrf=")),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(d.api("GET", &format!("/v1/tally/{pid}"), None).await["response"].is_null());

    // Answered: back to the item, the answer on the petition's page and in the inbox.
    let answered = d
        .ask(
            "POST",
            "/inbox/respond",
            &cookie(),
            Some(format!(
                "csrf={csrf}&target={pid}&status=accepted&text=In+the+next+batch"
            )),
        )
        .await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    assert_eq!(
        answered.location.as_deref(),
        Some(format!("/inbox#item-{pid}").as_str())
    );
    let page = d
        .ask("GET", &format!("/petitions/{pid}"), &cookie(), None)
        .await;
    assert!(page.body.contains("In the next batch"), "{}", page.body);
    let inbox = d.ask("GET", "/inbox", &cookie(), None).await;
    assert!(inbox.body.contains("In the next batch"), "{}", inbox.body);
    let answered = d
        .ask(
            "POST",
            "/inbox/respond",
            &cookie(),
            Some(format!(
                "csrf={csrf}&target={}&status=in-progress&text=A+new+seal+is+coming",
                bad.id()
            )),
        )
        .await;
    assert_eq!(answered.status, 303, "{}", answered.body);

    // The product page: the rating and its histogram, the reviews newest first with the
    // producer's reply, the proposal in the specification with the producer's status.
    let product = d
        .ask("GET", &format!("/products/{me}/{CODE}"), &cookie(), None)
        .await;
    assert_eq!(product.status, 200, "{}", product.body);
    let b = &product.body;
    assert!(
        b.contains("<svg class=\"chart histogram\" id=\"rating-chart\" role=\"img\""),
        "{b}"
    );
    assert!(
        b.contains("<title id=\"rating-chart-title\">2 reviews, mean 3.0 out of 5"),
        "{b}"
    );
    assert!(
        b.contains("<span class=\"live-rating-count\">2</span>"),
        "{b}"
    );
    // The 4 and 2 star bars are full (one review each), the others empty.
    for star in [4, 2] {
        assert!(
            b.contains(&format!("data-star=\"{star}\" x=\"40\""))
                && b.contains(&format!(
                    "class=\"bar\" data-star=\"{star}\" x=\"40\" y=\"{}\" width=\"230\"",
                    26 * (5 - star) + 5
                )),
            "{star}: {b}"
        );
    }
    assert_eq!(b.matches("width=\"0\"").count(), 3, "{b}");
    let newer = position(b, "Leaks after a month");
    let older = position(b, "Boils fast");
    assert!(newer < older);
    assert!(
        b.contains("A new seal is coming") && b.contains("in progress"),
        "{b}"
    );
    let spec = &b[position(b, "id=\"spec\"")..];
    assert!(
        spec.contains("A lid that opens with one hand") && spec.contains("accepted"),
        "{spec}"
    );
    assert!(spec.contains(&format!("href=\"/petitions/{pid}\"")));
    // In French, from the same place.
    let fr = d
        .ask(
            "GET",
            &format!("/products/{me}/{CODE}"),
            &[cookie(), vec![("Accept-Language", "fr".into())]].concat(),
            None,
        )
        .await;
    assert!(
        fr.body.contains("Le cahier des charges co-construit") && fr.body.contains("moyenne 3,0"),
        "{}",
        fr.body
    );
    let unknown = d
        .ask("GET", &format!("/products/{me}/no%20such"), &cookie(), None)
        .await;
    assert_eq!(unknown.status, 404);

    // The products overview: the product, linked, with its plot.
    let products = d.ask("GET", "/products", &cookie(), None).await;
    assert_eq!(products.status, 200, "{}", products.body);
    let b = &products.body;
    assert!(
        b.contains(&format!("href=\"/products/{me}/{CODE}\"")),
        "{b}"
    );
    assert!(
        b.contains("<svg class=\"chart plot\" id=\"plot-0\" role=\"img\""),
        "{b}"
    );
    assert_eq!(b.matches("<circle").count(), 2, "one point per review: {b}");
    assert!(
        b.contains("Mean rating over time: 4.0 → 3.0 out of 5"),
        "{b}"
    );
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_is_not_a_producer_is_told_how_to_become_one() {
    let d = Dashboard::start().await;
    let session = d.log_in().await;
    let inbox = d
        .ask("GET", "/inbox", &[("Cookie", session.clone())], None)
        .await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(
        inbox.body.contains("You are not a producer yet"),
        "{}",
        inbox.body
    );
    assert!(inbox
        .body
        .contains("chorus profile --name NAME --role producer"));
    assert!(inbox.body.contains("Nothing aimed at you yet."));
    let products = d
        .ask("GET", "/products", &[("Cookie", session.clone())], None)
        .await;
    assert!(products
        .body
        .contains("No review or petition names a product of yours yet."));
    // A product the user reviewed links to its page, from the home page and a search.
    let maker = AuthorKey(consumer(9).verifying_key().to_bytes());
    let made = d
        .api(
            "POST",
            "/v1/reviews",
            Some(serde_json::json!({
                "producer": maker.to_string(), "product": "toaster-9", "rating": 3, "text": "Fine",
            })),
        )
        .await;
    assert_eq!(made["outcome"], "stored", "{made}");
    let link = format!("href=\"/products/{maker}/toaster-9\"");
    let home = d
        .ask("GET", "/?later=1", &[("Cookie", session.clone())], None)
        .await;
    assert!(home.body.contains(&link), "{}", home.body);
    let found = d
        .ask(
            "GET",
            "/search?q=toaster",
            &[("Cookie", session.clone())],
            None,
        )
        .await;
    assert!(found.body.contains(&link), "{}", found.body);
    let page = d
        .ask(
            "GET",
            &format!("/products/{maker}/toaster-9"),
            &[("Cookie", session)],
            None,
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Fine") && page.body.contains(">1</span> <span class=\"live-rating-word\" data-one=\"review\" data-many=\"reviews\">review</span>"), "{}", page.body);
    // The pages' script follows the producer's feedback and adds what arrives.
    let script = d.ask("GET", "/assets/app.js", &[], None).await;
    assert!(script.body.contains("/events?producer=") && script.body.contains("/inbox/items/"));
    d.node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lists_go_on_in_pages_and_no_page_grows_past_150_kb() {
    let d = Dashboard::start().await;
    let me = producer(&d).await;
    let t = chorus_node::clock::now_ms() - 600_000;
    // 250 reviews by as many consumers, each as long as a review may be.
    let long = "ab <c> & d ".repeat(180);
    let reviews: Vec<SignedRecord> = (0..250u64)
        .map(|n| {
            let key = SigningKey::from_bytes(&[(n % 250) as u8 + 1; 32]);
            RecordBuilder::new(Body::Review(Review {
                product: ProductRef {
                    producer: me,
                    code: CODE.into(),
                },
                rating: (n % 5) as u8 + 1,
                title: Some(format!("Review {n}")),
                text: long.clone(),
            }))
            .created_at(t + n)
            .sign(&key)
            .unwrap()
        })
        .collect();
    hand(&d, &reviews.iter().collect::<Vec<_>>()).await;
    let session = d.log_in().await;
    let cookie = vec![("Cookie", session.clone())];
    for path in [
        "/inbox".to_string(),
        format!("/products/{me}/{CODE}"),
        "/products".into(),
    ] {
        let page = d.ask("GET", &path, &cookie, None).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.body.len() < 150_000,
            "{path}: {} bytes",
            page.body.len()
        );
    }
    // The newest first, and the next page goes on where the first stopped.
    let product = d
        .ask("GET", &format!("/products/{me}/{CODE}"), &cookie, None)
        .await;
    assert!(product.body.contains("Review 249"));
    assert!(!product.body.contains("Review 0<"));
    let next = product.body.split("rel=\"next\" href=\"").nth(1).unwrap();
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let shown = product.body.matches("class=\"review\"").count();
    assert!(shown > 0 && shown < 250);
    let older = d.ask("GET", &next, &cookie, None).await;
    assert_eq!(older.status, 200, "{next}");
    assert!(
        older.body.contains(&format!("Review {}<", 249 - shown)),
        "{}",
        older.body
    );
    assert!(!older.body.contains("Review 249<"));
    let inbox = d.ask("GET", "/inbox", &cookie, None).await;
    assert!(inbox.body.contains("rel=\"next\""), "the inbox goes on too");
    d.node.node.shutdown().await.unwrap();
}
