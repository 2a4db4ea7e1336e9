//! The metrics listener (`METRICS_ADDR`): Prometheus text at `/metrics`, on an address of its
//! own, never on the public port, through the same bounded accept loop as the public one. What
//! is only known when asked (rooms here, bytes waiting, reconnects, the process's memory) is
//! read at each scrape; the rest is counted as it happens (`telemetry::metrics`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connections::{self, ConnectionLimits};
use crate::relay::Relay;
use crate::telemetry::metrics;

/// How often a scrape may count the stored bytes (a scan of the records' lengths).
const STORED_BYTES_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    relay: Arc<Relay>,
    /// When the stored bytes were last counted.
    counted: Arc<Mutex<Option<Instant>>>,
}

/// Serves `/metrics` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, relay: Arc<Relay>, stop: watch::Receiver<bool>) {
    let limits = ConnectionLimits {
        max_connections: 16,
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
    };
    let scrape = Scrape { handle, relay, counted: Arc::new(Mutex::new(None)) };
    let router = Router::new().route("/metrics", get(render)).with_state(scrape);
    connections::serve(listener, router, limits, None, stop).await;
}

async fn render(State(scrape): State<Scrape>) -> impl IntoResponse {
    let relay = &scrape.relay;
    metrics::gauge!(metrics::ROOMS).set(relay.hub.room_count() as f64);
    metrics::counter!(metrics::BUS_RECONNECTS).absolute(relay.bus_reconnects.load(Ordering::Relaxed));
    metrics::record_process();
    let due = {
        let mut counted = scrape.counted.lock().unwrap_or_else(PoisonError::into_inner);
        let due = counted.is_none_or(|at| at.elapsed() >= STORED_BYTES_EVERY);
        if due {
            *counted = Some(Instant::now());
        }
        due
    };
    if due {
        match relay.store.stored_bytes().await {
            Ok(bytes) => metrics::gauge!(metrics::STORED_BYTES).set(bytes as f64),
            Err(err) => tracing::warn!("metrics: cannot count the stored bytes: {err}"),
        }
    }
    scrape.handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], scrape.handle.render())
}
