//! The duty desk (docs/spec.md §9): the incident API, authenticated and attributable commands, and the
//! web board, served by `klaxon desk` or inside `klaxon run` (`desk.enabled`, on by default).
//!
//! - [`view`] — the global table: every incident of every partition (from the changelog) and
//!   its timeline (from the escalations topic); lists, details and countdowns computed at the
//!   moment of the question. Pure data, time passed in.
//! - [`feed`] — the Kafka side: assigns every partition of both topics, reads from the
//!   beginning (a restart rebuilds the view; no local database), follows them.
//! - [`auth`] — bearer tokens against `[[desk.principals]]` (SHA-256, constant-time), roles.
//! - [`api`] — the routes under `/api/v1`: list, show, stream (SSE), commands.
//! - [`openapi`] — `/api/v1/openapi.json`, the description of all of it.
//! - [`board`] — **the web board's hook**: `GET /` and `GET /board/{file}` serve the files of
//!   `src/desk/board/`, compiled into the binary (`include_bytes!`; no CDN, SOC networks are often
//!   air-gapped). To add or rename a board file, list it in [`board::FILES`]. The board signs in
//!   with a token and calls the API with `Authorization: Bearer`; for the stream it reads
//!   `/api/v1/stream` with `fetch` (EventSource cannot send the header).
//!
//! Commands posted to the desk are checked (fields, role) before anything is written; then the
//! desk writes one record to the commands topic, with `by` set to the principal, `via` to `desk`
//! (or `ctl` for `klaxon ctl`, which says so in the `klaxon-client` header), signed with
//! `desk.signing_key_file`, and answers 202 once Kafka acknowledged it. The engine applies it (or
//! answers `command.rejected`) a moment later: the stream and the timeline show which.

pub mod api;
pub mod auth;
pub mod board;
pub mod feed;
pub mod openapi;
pub mod view;

use crate::runtime::clock::Clock;
use crate::runtime::kafka::{producer_config, KlaxonContext};
use crate::runtime::producer::AckingProducer;
use crate::settings::Config;
use crate::signing::CommandSigner;
use crate::telemetry::Metrics;
use std::future::Future;
use std::sync::{Arc, RwLock};
use thiserror::Error;
use tokio::sync::{broadcast, watch};

#[derive(Debug, Error)]
pub enum DeskError {
    #[error(transparent)]
    Listen(#[from] crate::telemetry::http::BindError),
    #[error("desk.signing_key_file: {0}")]
    Key(#[from] crate::signing::KeyError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("desk server: {0}")]
    Serve(std::io::Error),
}

/// One message of the stream: an SSE event name and its JSON data.
#[derive(Clone, Debug)]
pub struct StreamItem {
    pub event: &'static str,
    pub data: Arc<str>,
}

/// Everything the API handlers share.
pub struct Desk {
    pub config: Arc<Config>,
    pub view: RwLock<view::View>,
    pub principals: auth::Principals,
    pub signer: Option<CommandSigner>,
    pub producer: AckingProducer<KlaxonContext>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub stream: broadcast::Sender<StreamItem>,
    /// Turns true when the desk shuts down: the feed stops and open streams end (a graceful
    /// shutdown would otherwise wait for them forever).
    pub closing: watch::Sender<bool>,
}

/// How many stream messages a slow client may fall behind before it is told to resync.
const STREAM_BUFFER: usize = 4096;

impl Desk {
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Self, DeskError> {
        let d = &config.settings.desk;
        let signer = match (&d.signing_key_file, &d.signing_key_id) {
            (Some(f), Some(id)) => Some(CommandSigner::load(std::path::Path::new(f), id)?),
            _ => None,
        };
        let producer = AckingProducer::new(
            &producer_config(&config.settings),
            KlaxonContext::plain(metrics.clone()),
        )?;
        let (stream, _) = broadcast::channel(STREAM_BUFFER);
        let (closing, _) = watch::channel(false);
        Ok(Desk {
            principals: auth::Principals::from_settings(&d.principals),
            config,
            view: RwLock::new(view::View::default()),
            signer,
            producer,
            clock,
            metrics,
            stream,
            closing,
        })
    }

    /// Sends to every stream client (none listening: nothing is built).
    pub fn announce(&self, item: StreamItem) {
        if self.stream.receiver_count() > 0 {
            let _ = self.stream.send(item);
        }
    }

    /// Announces an incident's new list entry.
    pub fn announce_incident(&self, id: &crate::engine::IncidentId) {
        if self.stream.receiver_count() == 0 {
            return;
        }
        let now = self.clock.now();
        let offset = self.config.settings.utc_offset();
        let summary = self
            .view
            .read()
            .ok()
            .and_then(|v| v.summary(&self.config.ruleset, id, now, offset));
        if let Some(s) = summary {
            if let Ok(json) = serde_json::to_string(&s) {
                let _ = self.stream.send(StreamItem {
                    event: "incident",
                    data: Arc::from(json),
                });
            }
        }
    }
}

/// Serves the desk on `listener` (the feed included) until `shutdown` resolves.
pub async fn serve(
    desk: Arc<Desk>,
    listener: tokio::net::TcpListener,
    with_metrics: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeskError> {
    let feed = tokio::spawn(feed::run(desk.clone(), desk.closing.subscribe()));
    let mut app = api::router(desk.clone()).merge(board::router());
    if with_metrics {
        app = app.merge(crate::telemetry::http::router(desk.metrics.clone()));
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, principals = desk.principals_len(), signing = desk.signer.is_some(), "desk listening");
    }
    let closing = desk.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = closing.closing.send(true);
        })
        .await;
    let _ = desk.closing.send(true);
    let _ = feed.await;
    served.map_err(DeskError::Serve)
}

impl Desk {
    fn principals_len(&self) -> usize {
        self.config.settings.desk.principals.len()
    }
}

/// Binds `desk.listen`.
pub async fn bind(config: &Config) -> Result<tokio::net::TcpListener, DeskError> {
    Ok(crate::telemetry::http::bind("desk.listen", &config.settings.desk.listen).await?)
}

/// `klaxon desk`: the desk on its own, with `/metrics`, `/healthz` and `/readyz` on its listener.
pub async fn run(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeskError> {
    let listener = bind(&config).await?;
    // The desk is ready as soon as it serves: the view fills as the topics are read.
    metrics.set_assigned(true);
    metrics.set_restored(true);
    let desk = Arc::new(Desk::new(config, metrics, clock)?);
    serve(desk, listener, true, shutdown).await
}
