//! The API's HTTP server: accepts connections up to `api.max_connections`, serves each with
//! hyper's HTTP/1 under the header and write time limits of `[api]`, and closes them all when
//! the node stops. The metrics endpoint (`crate::metrics`) is served by it too
//! ([`serve_at`]), under limits of its own.
//!
//! `axum::serve` is not used because it sets no timer (so hyper's header-read timeout never
//! fires), caps nothing, and at shutdown waits for every connection however slow. Here:
//!
//! - **Headers**: hyper's `header_read_timeout` closes a connection whose request line and
//!   headers are not all in within `api.header_timeout` of the connection opening or of the
//!   previous answer (so idle kept-alive connections go too), and `max_header_size` answers
//!   431 beyond `api.max_header_bytes`.
//! - **Writes**: every socket is a [`TimeoutStream`] whose writes fail after
//!   `api.write_timeout` without progress, which ends the connection: a reader that stopped
//!   reading (a stalled event stream) is dropped instead of holding buffers.
//! - **The cap**: [`Connections`] holds one semaphore permit per open connection. With none
//!   left, the oldest connection that is not inside a request (still sending its headers, or
//!   idle between requests) is closed to make room; if every one is inside a request, the new
//!   connection is closed at once. So a flood of slow or idle connections can never lock out a
//!   client that sends its request promptly, and descriptors stay bounded.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::ApiConfig;
use crate::error::{Error, Result};

/// How long connections still open at shutdown get to finish their answers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The open connections and the permits they hold.
pub(crate) struct Connections {
    permits: Arc<Semaphore>,
    /// By age: the first is the oldest.
    open: Mutex<BTreeMap<u64, Open>>,
    next: AtomicU64,
}

struct Open {
    conn: Arc<Conn>,
    _permit: OwnedSemaphorePermit,
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests being answered on it; an answer counts until its body has been sent.
    busy: AtomicUsize,
    /// Fired to close it at once.
    close: CancellationToken,
}

/// A connection admitted under the cap; leaves the registry when dropped.
struct Admitted {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Connections>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Counts a request on its connection from its headers until its answer's body is dropped.
struct Busy(Arc<Conn>);

impl Busy {
    fn enter(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    pub(crate) fn new(max: u32) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(max as usize)),
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().len()
    }

    /// A permit for a new connection: a free one, or the one of the oldest connection not
    /// inside a request, which is closed; `None` if every connection is inside a request.
    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let evicted = {
                    let mut open = self.lock();
                    let oldest_idle = open
                        .iter()
                        .find(|(_, o)| o.conn.busy.load(Ordering::Acquire) == 0)
                        .map(|(id, _)| *id)?;
                    open.remove(&oldest_idle)?
                };
                evicted.conn.close.cancel();
                // Its permit comes back as the entry drops.
                drop(evicted);
                self.permits.clone().try_acquire_owned().ok()?
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        self.lock().insert(
            id,
            Open {
                conn: conn.clone(),
                _permit: permit,
            },
        );
        Some(Admitted {
            id,
            conn,
            registry: self.clone(),
        })
    }
}

/// What each connection is served with.
#[derive(Clone)]
pub(crate) struct Limits {
    /// The server's name in logs (`api`, `metrics`).
    pub(crate) name: &'static str,
    /// Longest wait for a request's headers, from the connection's start or the last answer.
    pub(crate) header_timeout: Duration,
    /// Longest a write may make no progress.
    pub(crate) write_timeout: Duration,
    /// Most bytes of a request's line and headers.
    pub(crate) max_header_bytes: usize,
}

/// Binds `config.listen` and serves `app` until `cancel`; returns the bound address and the
/// server's task, which ends once every connection is closed.
pub(crate) async fn serve(
    config: &ApiConfig,
    app: Router,
    connections: Arc<Connections>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listen = &config.listen;
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| Error::Config(format!("api.listen {listen}: {e}")))?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the API is served beyond loopback; anyone with the token can use it");
    }
    let limits = Limits {
        name: "api",
        header_timeout: config.header_timeout,
        write_timeout: config.write_timeout,
        max_header_bytes: config.max_header_bytes,
    };
    serve_at(addr, app, connections, limits, cancel).await
}

/// Binds `addr` and serves `app` until `cancel`, each connection under `limits` and at most
/// as many at once as `connections` admits (the API's server, for any other router: the
/// metrics endpoint's too); returns the bound address and the server's task.
pub(crate) async fn serve_at(
    addr: SocketAddr,
    app: Router,
    connections: Arc<Connections>,
    limits: Limits,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{} cannot listen on {addr}: {e}", limits.name),
        ))
    })?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "{} listening", limits.name);
    let task = tokio::spawn(accept_loop(listener, app, connections, limits, cancel));
    Ok((bound, task))
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    connections: Arc<Connections>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin; connections that end free
                // some.
                warn!(error = %e, "{} accept failed", limits.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admitted) = connections.admit() else {
            debug!(%peer, "{} connection refused: every connection is inside a request", limits.name);
            continue;
        };
        tracker.spawn(connection(
            stream,
            app.clone(),
            admitted,
            limits.clone(),
            cancel.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            "{} connections still open after the shutdown grace",
            limits.name
        );
    }
}

/// Serves one connection until it ends, is closed to make room, or the node stops.
async fn connection(
    stream: TcpStream,
    app: Router,
    admitted: Admitted,
    limits: Limits,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(limits.write_timeout));
    let io = TokioIo::new(Box::pin(io));
    let conn = admitted.conn.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = Busy::enter(&conn);
        let app = app.clone();
        async move {
            let Ok(response) = app.oneshot(req.map(Body::new)).await;
            // The connection counts as inside a request until the answer is all handed over.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _inside = &busy;
                    frame
                }))
            }))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper refuses a buffer under 8 KiB; headers are refused at max_header_size anyway.
        .max_buf_size(limits.max_header_bytes.max(8192) + 8192);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        biased;
        r = served.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "{} connection ended", limits.name);
            }
        }
        _ = admitted.conn.close.cancelled() => {
            debug!("{} connection closed to make room for a new one", limits.name);
        }
        _ = cancel.cancelled() => {
            // A connection inside a request gets to finish its answer (event streams end
            // with the node); one that is not — idle, or still sending its headers — is
            // closed now.
            if admitted.conn.busy.load(Ordering::Acquire) > 0 {
                served.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, served).await;
            }
        }
    }
    drop(admitted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room_and_a_busy_house_refuses() {
        let c = Connections::new(3);
        let a = c.admit().unwrap();
        let b = c.admit().unwrap();
        let d = c.admit().unwrap();
        assert_eq!(c.open(), 3);
        // b is inside a request; a is the oldest idle one and goes.
        let busy_b = Busy::enter(&b.conn);
        let e = c.admit().unwrap();
        assert!(a.conn.close.is_cancelled());
        assert!(!b.conn.close.is_cancelled());
        assert_eq!(c.open(), 3);
        // Next the oldest idle is d (b is still busy).
        let busy_e = Busy::enter(&e.conn);
        let f = c.admit().unwrap();
        assert!(d.conn.close.is_cancelled());
        let busy_f = Busy::enter(&f.conn);
        // Every connection is inside a request: a new one is refused.
        assert!(c.admit().is_none());
        assert_eq!(c.open(), 3);
        // A request ends: its connection may make room again.
        drop(busy_b);
        let g = c.admit().unwrap();
        assert!(b.conn.close.is_cancelled());
        // A connection that ends frees its permit; an evicted one's ending changes nothing.
        drop((a, d, busy_e, busy_f));
        assert_eq!(c.open(), 3);
        drop(f);
        assert_eq!(c.open(), 2);
        drop((b, e, g));
        assert_eq!(c.open(), 0);
        assert_eq!(c.permits.available_permits(), 3);
    }
}
