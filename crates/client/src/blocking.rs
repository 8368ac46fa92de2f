//! A small blocking client of the local API: one method per endpoint, each returning its
//! typed answer, with a time limit per call (none for the event stream).

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use ureq::http::Response;
use ureq::Body;

mod error;
mod query;
mod sse;

pub use error::Error;
pub use sse::{SseEvent, SseReader};

use crate::request::{
    AdmitRequest, AttestRequest, DirectoryQuery, EndorseRequest, EventsQuery, FollowRequest,
    GroupRequest, PetitionRequest, PetitionsQuery, ProductQuery, ProductsQuery, ProfileRequest,
    RespondRequest, RetractRequest, ReviewRequest, SearchQuery, SyncRequest, TrustRequest,
};
use crate::response::{
    AuditReport, Created, Directory, ErrorBody, FollowSet, GroupInfo, GroupRequests, Mine, Peers,
    Person, Petitions, Rating, Reviews, SearchResults, Status, SubmittedRecords, SyncAnswer, Tally,
    TrustSet, WebLink,
};
use query::{enc, query};

/// Most calls answer at once.
const QUICK: Duration = Duration::from_secs(60);
/// A catch-up or an audit may take minutes on a big store.
const SLOW: Duration = Duration::from_secs(3600);
/// A bundle holds every counted endorsement of a petition.
const BUNDLE: Duration = Duration::from_secs(120);
/// The largest bundle read (1 GiB).
const BUNDLE_LIMIT: u64 = 1 << 30;

/// The live event stream of [`Client::events`].
pub type EventStream = SseReader<Box<dyn BufRead + Send>>;

/// A blocking client of one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the node whose API listens on `addr` (`HOST:PORT`, as in
    /// [`ApiInfo::addr`](crate::ApiInfo::addr)), authenticating with `token` (the data dir's
    /// `api.token`). Nothing is sent until a call.
    pub fn new(addr: &str, token: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            // Error answers carry a JSON body: read it rather than fail on the status.
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            addr: addr.to_string(),
            auth: format!("Bearer {token}"),
            agent,
        }
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Status, Error> {
        self.get("/v1/status", QUICK)
    }

    /// `POST /v1/sync`: pulls now and answers when every pull has ended (up to an hour).
    pub fn sync(&self, req: &SyncRequest) -> Result<SyncAnswer, Error> {
        self.post("/v1/sync", Some(req), SLOW)
    }

    /// `POST /v1/web/link`: a one-time link that logs a browser in to the dashboard.
    pub fn web_link(&self) -> Result<WebLink, Error> {
        self.post::<(), _>("/v1/web/link", None, QUICK)
    }

    /// `GET /v1/peers`.
    pub fn peers(&self) -> Result<Peers, Error> {
        self.get("/v1/peers", QUICK)
    }

    /// `GET /v1/follow`: what the node follows.
    pub fn following(&self) -> Result<FollowSet, Error> {
        self.get("/v1/follow", QUICK)
    }

    /// `POST /v1/follow`: follows one more thing; answers the new follow set.
    pub fn follow(&self, req: &FollowRequest) -> Result<FollowSet, Error> {
        self.post("/v1/follow", Some(req), QUICK)
    }

    /// `POST /v1/unfollow`: stops following one thing; answers the new follow set.
    pub fn unfollow(&self, req: &FollowRequest) -> Result<FollowSet, Error> {
        self.post("/v1/unfollow", Some(req), QUICK)
    }

    /// `GET /v1/trust`: the watchdogs trusted.
    pub fn trust(&self) -> Result<TrustSet, Error> {
        self.get("/v1/trust", QUICK)
    }

    /// `POST /v1/trust`: trusts one more watchdog; answers the new set.
    pub fn trust_add(&self, req: &TrustRequest) -> Result<TrustSet, Error> {
        self.post("/v1/trust", Some(req), QUICK)
    }

    /// `POST /v1/untrust`: stops trusting a watchdog; answers the new set.
    pub fn trust_remove(&self, req: &TrustRequest) -> Result<TrustSet, Error> {
        self.post("/v1/untrust", Some(req), QUICK)
    }

    /// `POST /v1/profile`.
    pub fn profile(&self, req: &ProfileRequest) -> Result<Created, Error> {
        self.post("/v1/profile", Some(req), QUICK)
    }

    /// `POST /v1/reviews`.
    pub fn review(&self, req: &ReviewRequest) -> Result<Created, Error> {
        self.post("/v1/reviews", Some(req), QUICK)
    }

    /// `GET /v1/reviews`: a page of a product's reviews.
    pub fn reviews(&self, q: &ProductQuery) -> Result<Reviews, Error> {
        self.get(&format!("/v1/reviews{}", query(q)?), QUICK)
    }

    /// `GET /v1/rating`.
    pub fn rating(&self, q: &ProductQuery) -> Result<Rating, Error> {
        self.get(&format!("/v1/rating{}", query(q)?), QUICK)
    }

    /// `POST /v1/groups`: creates a group.
    pub fn create_group(&self, req: &GroupRequest) -> Result<Created, Error> {
        self.post("/v1/groups", Some(req), QUICK)
    }

    /// `GET /v1/groups/{id}`.
    pub fn group(&self, id: &str) -> Result<GroupInfo, Error> {
        self.get(&format!("/v1/groups/{}", enc(id)), QUICK)
    }

    /// `POST /v1/groups/{id}/join`.
    pub fn join_group(&self, id: &str) -> Result<Created, Error> {
        self.post::<(), _>(&format!("/v1/groups/{}/join", enc(id)), None, QUICK)
    }

    /// `GET /v1/groups/{id}/requests`: the pending requests to join.
    pub fn group_requests(&self, id: &str) -> Result<GroupRequests, Error> {
        self.get(&format!("/v1/groups/{}/requests", enc(id)), QUICK)
    }

    /// `POST /v1/groups/{id}/admit` (only the founder may).
    pub fn admit(&self, group: &str, req: &AdmitRequest) -> Result<Created, Error> {
        self.post(
            &format!("/v1/groups/{}/admit", enc(group)),
            Some(req),
            QUICK,
        )
    }

    /// `POST /v1/petitions`: opens a petition.
    pub fn open_petition(&self, req: &PetitionRequest) -> Result<Created, Error> {
        self.post("/v1/petitions", Some(req), QUICK)
    }

    /// `GET /v1/petitions`.
    pub fn petitions(&self, q: &PetitionsQuery) -> Result<Petitions, Error> {
        self.get(&format!("/v1/petitions{}", query(q)?), QUICK)
    }

    /// `GET /v1/people/{key}`: the key and profile name a key, an 8+ digit prefix of one,
    /// or a profile's name stands for.
    pub fn person(&self, key: &str) -> Result<Person, Error> {
        self.get(&format!("/v1/people/{}", enc(key)), QUICK)
    }

    /// `GET /v1/search`: the directory and the connected peers searched (takes up to about
    /// 2 s when peers are asked).
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, Error> {
        self.get(&format!("/v1/search{}", query(q)?), QUICK)
    }

    /// `GET /v1/producers`: the producers whose profiles this node holds, by name.
    pub fn producers(&self, q: &DirectoryQuery) -> Result<Directory, Error> {
        self.get(&format!("/v1/producers{}", query(q)?), QUICK)
    }

    /// `GET /v1/groups`: the groups this node holds, largest first.
    pub fn groups(&self, q: &DirectoryQuery) -> Result<Directory, Error> {
        self.get(&format!("/v1/groups{}", query(q)?), QUICK)
    }

    /// `GET /v1/products`: a producer's products, by code.
    pub fn products(&self, q: &ProductsQuery) -> Result<Directory, Error> {
        self.get(&format!("/v1/products{}", query(q)?), QUICK)
    }

    /// `GET /v1/tally/{id}`.
    pub fn tally(&self, id: &str) -> Result<Tally, Error> {
        self.get(&format!("/v1/tally/{}", enc(id)), QUICK)
    }

    /// `GET /v1/records/{id}`: a stored record as JSON, with `id`.
    pub fn record(&self, id: &str) -> Result<Value, Error> {
        self.get(&format!("/v1/records/{}", enc(id)), QUICK)
    }

    /// `POST /v1/endorse`.
    pub fn endorse(&self, req: &EndorseRequest) -> Result<Created, Error> {
        self.post("/v1/endorse", Some(req), QUICK)
    }

    /// `POST /v1/retract`.
    pub fn retract(&self, req: &RetractRequest) -> Result<Created, Error> {
        self.post("/v1/retract", Some(req), QUICK)
    }

    /// `POST /v1/respond` (only the targeted producer may).
    pub fn respond(&self, req: &RespondRequest) -> Result<Created, Error> {
        self.post("/v1/respond", Some(req), QUICK)
    }

    /// `POST /v1/attest`.
    pub fn attest(&self, req: &AttestRequest) -> Result<Created, Error> {
        self.post("/v1/attest", Some(req), QUICK)
    }

    /// `GET /v1/mine`: what this node's user signed, with where each stands.
    pub fn mine(&self) -> Result<Mine, Error> {
        self.get("/v1/mine", SLOW)
    }

    /// `POST /v1/records`: records signed elsewhere, in wire form one after another (a CBOR
    /// sequence), ingested as gossip is; an answer per record.
    pub fn submit_records(&self, wires: &[u8]) -> Result<SubmittedRecords, Error> {
        let path = "/v1/records";
        let sent = self
            .prepare(self.agent.post(self.url(path)), Some(QUICK))
            .header("Content-Type", "application/cbor")
            .send(wires);
        decode(&format!("POST {path}"), self.answer(sent)?)
    }

    /// `GET /v1/audit`: the watchdog audit of the node's store (up to an hour).
    pub fn audit(&self) -> Result<AuditReport, Error> {
        self.get("/v1/audit", SLOW)
    }

    /// `GET /v1/bundle/{id}`: the petition's verifiable bundle, its CBOR bytes.
    pub fn bundle(&self, petition: &str) -> Result<Vec<u8>, Error> {
        let path = format!("/v1/bundle/{}", enc(petition));
        let sent = self
            .prepare(self.agent.get(self.url(&path)), Some(BUNDLE))
            .call();
        let mut resp = self.answer(sent)?;
        resp.body_mut()
            .with_config()
            .limit(BUNDLE_LIMIT)
            .read_to_vec()
            .map_err(read_error)
    }

    /// `GET /v1/events`: the event stream, read as it comes (no time limit); it ends when
    /// the node ends it (after the replay with `follow: Some(false)`, or when it stops).
    pub fn events(&self, q: &EventsQuery) -> Result<EventStream, Error> {
        let path = format!("/v1/events{}", query(q)?);
        let sent = self.prepare(self.agent.get(self.url(&path)), None).call();
        let resp = self.answer(sent)?;
        let reader: Box<dyn BufRead + Send> =
            Box::new(BufReader::new(resp.into_body().into_reader()));
        Ok(SseReader::new(reader))
    }

    fn get<T: DeserializeOwned>(&self, path: &str, limit: Duration) -> Result<T, Error> {
        let sent = self
            .prepare(self.agent.get(self.url(path)), Some(limit))
            .call();
        decode(&format!("GET {path}"), self.answer(sent)?)
    }

    /// A `POST`, with `body` as JSON (none: an empty body).
    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        limit: Duration,
    ) -> Result<T, Error> {
        let req = self.prepare(self.agent.post(self.url(path)), Some(limit));
        let sent = match body {
            None => req.send_empty(),
            Some(b) => {
                let bytes = serde_json::to_vec(b).map_err(Error::Encode)?;
                req.header("Content-Type", "application/json")
                    .send(&bytes[..])
            }
        };
        decode(&format!("POST {path}"), self.answer(sent)?)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The token and the call's time limit (`None`: no limit).
    fn prepare<S>(
        &self,
        req: ureq::RequestBuilder<S>,
        limit: Option<Duration>,
    ) -> ureq::RequestBuilder<S> {
        req.config()
            .timeout_global(limit)
            .build()
            .header("Authorization", &self.auth)
    }

    /// The answer of a call that went out, or why there is none.
    fn answer(&self, sent: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, Error> {
        let mut resp = sent.map_err(|e| match e {
            ureq::Error::Timeout(_) => Error::Timeout,
            e => Error::Unreachable {
                addr: self.addr.clone(),
                source: Box::new(e),
            },
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        // An error answer without the contract's body still says what it could.
        let (code, message) = match resp.body_mut().read_json::<ErrorBody>() {
            Ok(b) => (b.code, b.message),
            Err(_) => ("error".to_string(), "request failed".to_string()),
        };
        Err(Error::Api {
            status,
            code,
            message,
        })
    }
}

/// An answer's JSON as `T`.
fn decode<T: DeserializeOwned>(what: &str, mut resp: Response<Body>) -> Result<T, Error> {
    resp.body_mut().read_json().map_err(|e| match e {
        ureq::Error::Json(e) if e.is_io() => Error::Broken(e.into()),
        ureq::Error::Json(source) => Error::BadAnswer {
            what: what.to_string(),
            source,
        },
        e => read_error(e),
    })
}

/// A failure while an answer's body was read.
fn read_error(e: ureq::Error) -> Error {
    match e {
        ureq::Error::Timeout(_) => Error::Timeout,
        e => Error::Broken(e.into_io()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on loopback: answers one request with `answer` and hands back
    /// the request's head (request line and headers).
    fn serve_once(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                conn.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(head).unwrap()
        });
        (addr, server)
    }

    fn http(status: &str, body: &str) -> &'static str {
        let text = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        Box::leak(text.into_boxed_str())
    }

    #[test]
    fn an_answer_decodes_as_its_type_and_the_token_is_sent() {
        let (addr, server) = serve_once(http(
            "200 OK",
            r#"{"peers": ["12D3KooWabc"], "banned": []}"#,
        ));
        let peers = Client::new(&addr, "s3cret").peers().unwrap();
        assert_eq!(peers.peers, ["12D3KooWabc"]);
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /v1/peers HTTP/1.1"), "{head}");
        assert!(head.contains("Bearer s3cret"), "{head}");
    }

    #[test]
    fn an_error_answer_is_an_api_error_with_its_code() {
        let (addr, server) = serve_once(http(
            "404 Not Found",
            r#"{"code": "not_found", "message": "no petition 00 in this node's store"}"#,
        ));
        let e = Client::new(&addr, "t").tally("00").unwrap_err();
        assert!(
            matches!(&e, Error::Api { status: 404, code, .. } if code == "not_found"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "no petition 00 in this node's store (not_found)"
        );
        assert!(server.join().unwrap().starts_with("GET /v1/tally/00 "));
    }

    #[test]
    fn an_error_without_the_contracts_body_still_is_an_api_error() {
        let (addr, _server) = serve_once(http("500 Internal Server Error", "oops"));
        let e = Client::new(&addr, "t").status().unwrap_err();
        assert_eq!(e.to_string(), "request failed (error)");
    }

    #[test]
    fn an_answer_of_another_shape_is_a_bad_answer() {
        let (addr, _server) = serve_once(http("200 OK", r#"{"peers": 3}"#));
        let e = Client::new(&addr, "t").peers().unwrap_err();
        assert!(
            matches!(&e, Error::BadAnswer { what, .. } if what == "GET /v1/peers"),
            "{e:?}"
        );
    }

    #[test]
    fn a_post_sends_the_request_as_json() {
        let (addr, server) = serve_once(http(
            "200 OK",
            r#"{"all": true, "producers": [], "groups": [], "products": []}"#,
        ));
        let req = FollowRequest {
            all: true,
            ..FollowRequest::default()
        };
        assert!(Client::new(&addr, "t").follow(&req).unwrap().all);
        let head = server.join().unwrap();
        assert!(head.starts_with("POST /v1/follow "), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
    }

    #[test]
    fn the_event_stream_yields_events_until_the_node_ends_it() {
        let (addr, server) = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
             : keep-alive\n\n\
             event: ready\nid: 4\ndata: {\"type\":\"ready\",\"seq\":4}\n\n",
        );
        let q = EventsQuery {
            after: Some(4),
            follow: Some(false),
            ..EventsQuery::default()
        };
        let events: Vec<SseEvent> = Client::new(&addr, "t")
            .events(&q)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, Some(4));
        assert!(matches!(
            events[0].decode(),
            Ok(crate::Event::Ready(crate::ReadyEvent { seq: 4 }))
        ));
        let head = server.join().unwrap();
        assert!(
            head.starts_with("GET /v1/events?after=4&follow=false "),
            "{head}"
        );
    }

    #[test]
    fn a_node_that_is_not_there_is_unreachable() {
        // A port just freed: nothing listens on it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let c = Client::new(&addr, "token");
        assert!(matches!(c.status(), Err(Error::Unreachable { .. })));
    }
}
