//! The connection loop: HTTP/1 connections with a header read timeout, bounded in all and per
//! address, and a shutdown that waits a bounded time for the requests in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

use super::{router, AppState};

/// What keeps slow or idle clients from holding the server: how long a client may take to send
/// a request's headers and body, how many connections it may hold, and how long a stopping server
/// waits for requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The time to send a request's headers, counted from the first byte or, on a kept-alive
    /// connection, from the end of the previous answer; the connection is closed after it.
    pub header_timeout: Duration,
    /// The longest pause between two pieces of a request body (408 after it).
    pub body_idle_timeout: Duration,
    /// The time a body may take before its pace counts.
    pub body_grace: Duration,
    /// The slowest pace a body may keep after the grace, in bytes per second (408 below it), so
    /// a body trickled a byte at a time cannot hold a connection for long.
    pub body_min_rate: u64,
    /// The most connections served at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// The most connections served at once for one address (more are closed at once).
    pub max_connections_per_address: usize,
    /// How long a stopping server waits for the requests in flight before it closes them.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    /// Headers within 20 s; bodies with no pause over 20 s and at least 2 KB/s after 10 s (a
    /// 1 MB photo chunk over a slow 16 kbit/s link still arrives); 8,192 connections, 1,024 from
    /// one address (a township's NAT carries many assistants); 10 s to finish on shutdown.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            body_idle_timeout: Duration::from_secs(20),
            body_grace: Duration::from_secs(10),
            body_min_rate: 2048,
            max_connections: 8192,
            max_connections_per_address: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves the router on a bound listener until the process is stopped.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    serve_until(listener, state, std::future::pending()).await
}

/// Serves until `shutdown` completes, then finishes the requests in flight, waiting at most the
/// settings' shutdown grace before it closes what is left (a client that never finishes its
/// request cannot keep the server from stopping).
///
/// Each connection is served by the HTTP/1 connection builder with a header read timeout; bodies
/// are timed by the router ([`ConnectionLimits`]). The number of connections is bounded in all
/// and per address: past the first bound the server stops accepting until a connection ends,
/// past the second it closes the new connection at once.
pub async fn serve_until(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.inner.settings.connections;
    let app = router(state);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was accepted: wait
                    // a moment instead of spinning, and go on serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(guard) = ConnectionGuard::enter(&per_address, remote.ip(), limits.max_connections_per_address, permit) else {
            tracing::warn!(address = %remote.ip(), "too many connections from one address; closing a new one");
            drop(stream);
            continue;
        };
        // Small answers go out at once instead of waiting for more bytes to fill a packet.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            drop(guard);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "requests still open after the shutdown grace were closed");
    }
    Ok(())
}

/// A connection's place in the connection limits, given back when the connection ends.
struct ConnectionGuard {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionGuard {
    /// Takes a place for `address`, unless it already holds `most` connections.
    fn enter(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr, most: usize, permit: OwnedSemaphorePermit) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(address).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Self { counts: counts.clone(), address, _permit: permit })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}
