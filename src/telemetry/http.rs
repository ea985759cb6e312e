//! `/metrics`, `/healthz` (the process is alive) and `/readyz` (partitions assigned, state
//! restored, a broker reachable).

use super::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// A listener that could not be bound, named by its setting and address (often another process,
/// such as a Klaxon still running, has the port).
#[derive(Debug, thiserror::Error)]
#[error("{key} {listen}: {source}")]
pub struct BindError {
    pub key: &'static str,
    pub listen: String,
    pub source: std::io::Error,
}

/// Binds `listen`, the value of setting `key` (`metrics.listen`, `desk.listen`, ...).
pub async fn bind(key: &'static str, listen: &str) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| BindError {
            key,
            listen: listen.to_string(),
            source,
        })
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

async fn ready(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
