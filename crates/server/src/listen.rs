//! The HTTP front door: accepts connections and serves the app on each, with the limits a
//! public webhook endpoint needs (issue 12).
//!
//! * **Header timeout**: a request's head must arrive within `header_timeout` of the
//!   connection waiting for it — also between keep-alive requests — or the connection is
//!   closed. A client that sends half a request and stops (slowloris) holds its socket for
//!   that long at most.
//! * **Body timeout**: a request's body must arrive within `body_timeout` (`408`).
//! * **Connection cap**: at most `max_connections` open at once. At the cap, a new
//!   connection takes the place of the one that has waited longest *without a request in
//!   flight* (still sending its head, or idle): those are what a slowloris holds, and a
//!   client that sends its request promptly (a health check, a provider's webhook) always
//!   gets in. Only when every connection has a request in flight is the new one refused,
//!   with a `503` and `Retry-After`.
//! * **Idle timeout** for HTTP/2 connections (HTTP/1's is the header timeout).
//!
//! axum's own `serve` gives hyper no timer, so none of hyper's timeouts applied.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits on connections and requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest a connection may take to send a request's head (or stay idle between requests).
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Longest an HTTP/2 connection may stay without a request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests in flight on it.
    active: AtomicUsize,
    /// Since when it has had none (ms since the server started).
    waiting_since: AtomicU64,
    /// Closes it.
    close: CancellationToken,
}

/// The open connections.
struct Conns {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    started: Instant,
    max: usize,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a new connection; at the cap, closes the one waiting longest without a
    /// request in flight to make room. `None`: every connection is busy; refuse this one.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().expect("connections lock");
        if open.len() >= self.max {
            let victim = open
                .iter()
                .filter(|(_, c)| c.active.load(Ordering::Acquire) == 0 && !c.close.is_cancelled())
                .min_by_key(|(_, c)| c.waiting_since.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(c) = open.remove(&victim) {
                c.close.cancel();
                metrics::counter!("flowgate_connections_evicted_total").increment(1);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            active: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(self.now_ms()),
            close: CancellationToken::new(),
        });
        open.insert(id, conn.clone());
        metrics::gauge!("flowgate_connections_open").set(open.len() as f64);
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().expect("connections lock");
        open.remove(&id);
        metrics::gauge!("flowgate_connections_open").set(open.len() as f64);
    }
}

/// Counts a request in flight on its connection for as long as it lives.
struct InFlight {
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl InFlight {
    fn new(conn: Arc<Conn>, conns: Arc<Conns>) -> InFlight {
        conn.active.fetch_add(1, Ordering::AcqRel);
        InFlight { conn, conns }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.waiting_since.store(self.conns.now_ms(), Ordering::Release);
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish (at most `grace`), and returns.
///
/// # Errors
/// When accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_timeout));
    let conns = Arc::new(Conns {
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        started: Instant::now(),
        max: limits.max_connections.max(1),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some((id, conn)) = conns.admit() else {
            metrics::counter!("flowgate_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let (app, conns, builder) = (app.clone(), conns.clone(), builder.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, &conns, conn, &builder, watcher, limits.idle_timeout).await;
            conns.remove(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("Connections still open after the grace period; closing them.");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    conns: &Arc<Conns>,
    conn: Arc<Conn>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    idle_timeout: Duration,
) {
    let svc = {
        let (conn, conns) = (conn.clone(), conns.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_flight = InFlight::new(conn.clone(), conns.clone());
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let app = app.clone();
            async move {
                let _in_flight = in_flight;
                app.oneshot(req.map(axum::body::Body::new)).await
            }
        })
    };
    let served = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned());
    let idle = async {
        loop {
            tokio::time::sleep(idle_timeout / 4).await;
            let waited = conns.now_ms().saturating_sub(conn.waiting_since.load(Ordering::Acquire));
            if conn.active.load(Ordering::Acquire) == 0 && waited >= idle_timeout.as_millis() as u64 {
                return;
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = conn.close.cancelled() => {}
        _ = idle => {}
    }
}

/// Answers a connection over the cap with a `503` and closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"unavailable","message":"the server has too many connections open; try again shortly","details":{}}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
