//! The Prometheus metrics endpoint: `GET /metrics` on `metrics.listen` (off unless set), in
//! the OpenMetrics text format, with the figures of gossip, sync, ingest and the store that
//! the node's parts keep as they run (`deploy/README.md`, "Metrics", lists and explains every
//! one; `deploy/prometheus.yml` scrapes a few nodes).
//!
//! A scrape reads counters and gauges: atomic loads in `net`, `gossip`, `ingest` and `sync`,
//! one key lookup and a look at the files for the store, and gossipsub's own registry. Nothing
//! scans the store, asks the network's event loop or waits for the ingest pipeline, so a
//! scrape costs the same on a busy node and on an idle one, and a few kilobytes of text.
//!
//! The endpoint takes no token: it shows counts, never records, keys or peers' addresses.
//! It is served by the API's server (`api::serve_at`) with limits of its own: at most
//! [`MAX_CONNECTIONS`] connections (at the cap the oldest idle one is closed), headers within
//! [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`], stalled writes dropped after
//! [`WRITE_TIMEOUT`], and a scrape given [`SCRAPE_TIMEOUT`] (503 beyond). Only `GET` (and
//! `HEAD`) of `/metrics` is answered; another method gets 405, another path 404, and no
//! request body is ever read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{Error, Result};
use crate::gossip::Verdicts;
use crate::ingest::Ingest;
use crate::net::Client;
use crate::store::Store;
use crate::sync::SyncHandle;

/// Connections open at once, at most.
pub const MAX_CONNECTIONS: u32 = 16;
/// Longest a client may take to send a request's headers (and how long an idle connection
/// stays open).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a write of the answer may make no progress.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a request's line and headers (431 beyond).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Longest a scrape may take to be computed (503 beyond).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where the figures come from: the node's parts.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) store: Store,
    pub(crate) ingest: Ingest,
    pub(crate) client: Client,
    pub(crate) sync: SyncHandle,
    pub(crate) verdicts: Arc<Verdicts>,
}

/// Labels of one sample of a family.
type Labels = [(&'static str, &'static str); 1];

/// A family of counters, one per label value, each set to its value (every value shown,
/// zeros included, so a rate never starts from a missing sample).
fn counters(label: &'static str, values: &[(&'static str, u64)]) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for (v, n) in values {
        family.get_or_create(&[(label, *v)]).inc_by(*n);
    }
    family
}

/// 1 or 0.
fn flag(b: bool) -> ConstGauge<i64> {
    ConstGauge::new(i64::from(b))
}

/// Every figure of the node now, in the OpenMetrics text format.
pub(crate) fn render(s: &Sources) -> std::result::Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("chorus");
    r.register(
        "build",
        "The node's version",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );

    // Peers and gossip.
    let net = s.client.counts();
    r.register(
        "peers_connected",
        "Peers connected now",
        ConstGauge::new(net.peers),
    );
    r.register(
        "peers_banned",
        "Peers refused now for misbehaving (until their ban ends)",
        ConstGauge::new(net.banned),
    );
    r.register(
        "peer_faults",
        "Faults counted against peers: gossip records rejected as invalid, malformed sync \
         messages, forged records in pulls or searches, waiting records that never resolve \
         (network.max_invalid of them ban a peer)",
        ConstCounter::new(net.faults),
    );
    let v = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    r.register(
        "gossip_messages",
        "Gossip messages judged, by verdict: accept (forwarded), reject (invalid, the sender \
         blamed), ignore (not forwarded, nobody blamed)",
        counters(
            "verdict",
            &[
                ("accept", v(&s.verdicts.accepted)),
                ("reject", v(&s.verdicts.rejected)),
                ("ignore", v(&s.verdicts.ignored)),
            ],
        ),
    );
    r.register(
        "gossip_dropped",
        "Gossip messages dropped unjudged: their sender over network.peer_rate, or too many \
         waiting for their judge",
        counters(
            "reason",
            &[
                ("peer_rate", net.gossip_over_rate),
                ("queue_full", net.gossip_queue_full),
            ],
        ),
    );

    // Ingest.
    let i = s.ingest.counts();
    r.register(
        "ingest_records",
        "Records through the ingest pipeline (gossip, sync, the API), by outcome, counted once \
         their batch is durable: stored, waiting (kept until the record they point at \
         arrives), duplicate, invalid (protocol rules, signature, clock), rule (a kind rule), \
         too_many_waiting, internal, unwritten (the store could not write their batch)",
        counters(
            "outcome",
            &[
                ("stored", i.stored),
                ("waiting", i.kept_waiting),
                ("duplicate", i.duplicates),
                ("invalid", i.invalid),
                ("rule", i.rule),
                ("too_many_waiting", i.too_many_waiting),
                ("internal", i.internal),
                ("unwritten", i.unwritten),
            ],
        ),
    );
    r.register(
        "ingest_released_records",
        "Records that waited and were stored once the record they point at arrived",
        ConstCounter::new(i.released),
    );
    r.register(
        "ingest_waiting_records",
        "Records in the waiting area now (ingest.max_waiting at most)",
        ConstGauge::new(i.waiting_now),
    );
    r.register(
        "ingest_queued_batches",
        "Batches queued for the ingest pipeline's check stage now (4 at most)",
        ConstGauge::new(i.queued_batches),
    );

    // The store.
    let store = &s.store;
    r.register(
        "store_records",
        "Records stored",
        ConstGauge::new(store.len().unwrap_or(0)),
    );
    r.register_with_unit(
        "store_disk",
        "Bytes the store's database occupies on disk",
        Unit::Bytes,
        ConstGauge::new(store.size_on_disk().unwrap_or(0)),
    );
    if let Some(free) = store.free_bytes() {
        r.register_with_unit(
            "store_free",
            "Bytes free on the store's disk",
            Unit::Bytes,
            ConstGauge::new(free),
        );
    }
    r.register(
        "store_writable",
        "1 if the store can write, 0 while the disk is full or failed (GET /v1/status says why)",
        flag(store.storage_fault().is_none()),
    );

    // Sync.
    let y = s.sync.counts();
    r.register(
        "sync_pulls",
        "Pulls from peers (catch-up sync), by result: ok, or failed (stopped early)",
        counters("result", &[("ok", y.pulls_ok), ("failed", y.pulls_failed)]),
    );
    r.register(
        "sync_records_received",
        "Records received by pulls",
        ConstCounter::new(y.records_received),
    );
    r.register(
        "sync_records_stored",
        "Records received by pulls and newly stored (or kept waiting)",
        ConstCounter::new(y.records_stored),
    );
    r.register(
        "sync_records_duplicate",
        "Records received by pulls and already held",
        ConstCounter::new(y.records_duplicate),
    );
    r.register(
        "sync_records_invalid",
        "Records received by pulls that were invalid, forged, unrequested or out of scope (the \
         peer penalised for each)",
        ConstCounter::new(y.records_invalid),
    );
    r.register_with_unit(
        "sync_sent",
        "Bytes of the requests pulls sent",
        Unit::Bytes,
        ConstCounter::new(y.bytes_sent),
    );
    r.register_with_unit(
        "sync_received",
        "Bytes of the answers pulls received",
        Unit::Bytes,
        ConstCounter::new(y.bytes_received),
    );
    r.register(
        "sync_requests_served",
        "Peers' sync requests answered",
        ConstCounter::new(y.requests_served),
    );
    r.register(
        "sync_requests_refused",
        "Peers' sync requests answered busy: over a peer's or the node's limits, or too many \
         waiting",
        ConstCounter::new(net.requests_refused),
    );
    r.register(
        "sync_index_ready",
        "1 once the sync index is complete (0 while it is rebuilt after a start without its \
         snapshot: reconciliations are then answered not_ready)",
        flag(store.sync_ready()),
    );

    let mut out = String::with_capacity(16 * 1024);
    encode_registry(&mut out, &r)?;
    s.client.encode_gossip_metrics(&mut out)?;
    encode_eof(&mut out)?;
    Ok(out)
}

/// `GET /metrics`: computed off the async threads (it looks at the store's files), within
/// [`SCRAPE_TIMEOUT`].
async fn scrape(State(sources): State<Arc<Sources>>) -> Response {
    let rendered = tokio::time::timeout(
        SCRAPE_TIMEOUT,
        tokio::task::spawn_blocking(move || render(&sources)),
    )
    .await;
    match rendered {
        Ok(Ok(Ok(text))) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(_) => {
            warn!("the metrics could not be encoded");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics took too long; try again\n",
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: the metrics are at /metrics\n",
    )
        .into_response()
}

/// The endpoint's routes: `/metrics`, and 404 for every other path.
fn router(sources: Sources) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(not_found)
        .with_state(Arc::new(sources))
}

/// Serves the metrics on `listen` until `cancel`; returns the bound address and the server's
/// task.
pub(crate) async fn serve(
    listen: &str,
    sources: Sources,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| Error::Config(format!("metrics.listen {listen}: {e}")))?;
    if !addr.ip().is_loopback() {
        warn!(
            %addr,
            "the metrics are served beyond loopback without a token: firewall the port"
        );
    }
    let limits = crate::api::ServerLimits {
        name: "metrics",
        header_timeout: HEADER_TIMEOUT,
        write_timeout: WRITE_TIMEOUT,
        max_header_bytes: MAX_HEADER_BYTES,
    };
    crate::api::serve_at(
        addr,
        router(sources),
        crate::api::Connections::new(MAX_CONNECTIONS),
        limits,
        cancel,
    )
    .await
}
