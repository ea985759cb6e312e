//! The delivery stage (docs/spec.md §10): escalation events from Kafka to the people who must act —
//! Prometheus Alertmanager (and through it email, WeCom, PagerDuty…) and signed webhooks.
//!
//! It is a stage of its own, not a step of the engine: `klaxon deliver` runs it alone, and
//! `klaxon run` runs it in-process when `delivery.enabled`. Either way it consumes
//! `topics.escalations` with **its own consumer group**, so a slow or dead sink holds up
//! delivery and never the engine, the changelog or the deadlines.
//!
//! Guarantees:
//! - **At least once.** A record's offset is stored (for the next commit) only once every sink
//!   has taken the event, or the event was written to `topics.delivery_dead_letter` with the
//!   last error; offsets are stored in order per partition even though events are delivered
//!   concurrently. A crash re-delivers what was not finished, under the same `Idempotency-Key`
//!   (the event id), so receivers de-duplicate.
//! - **Bounded memory.** At most `delivery.max_in_flight` events are being delivered; past it
//!   the consumer's partitions are paused (and still polled, so the group membership holds)
//!   and resumed at half; librdkafka's own pre-fetch queue is capped too.
//! - **Retries** with exponential backoff and jitter ([`retry`]) up to `delivery.max_attempts`;
//!   a 4xx other than 408/429 is final at once.
//! - **Secrets** come from the environment (`secret_env`), are held only in memory, and appear in
//!   no log line, metric or dead-letter header ([`Webhook`]'s `Debug` redacts them).

pub mod alertmanager;
pub mod retry;
pub mod signature;

use crate::runtime::producer::AckingProducer;
use crate::settings::delivery::{DeliverySettings, WebhookSettings};
use crate::settings::Config;
use crate::telemetry::events::{DeliveryDeadLettered, DeliveryEnded};
use alertmanager::{AmAlert, OpenAlerts};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use retry::{Attempt, Jitter};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Config(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Listen(#[from] crate::telemetry::http::BindError),
}

/// The stage's metrics (names `klaxon_deliver*`; the `sink` label is `alertmanager` or a
/// webhook's configured name: a bounded set).
pub struct DeliveryMetrics {
    /// Events finished per sink: `delivered`, `rejected` (a final 4xx), `exhausted`
    /// (`max_attempts` failed).
    pub deliveries: IntCounterVec,
    /// HTTP attempts per sink and result (`ok`, `retryable_error`, `permanent_error`).
    pub attempts: IntCounterVec,
    /// From the event's production (its Kafka timestamp) to the sink's acknowledgement.
    pub latency: HistogramVec,
    /// Events written to the delivery dead-letter topic, per sink.
    pub dead_lettered: IntCounterVec,
    pub in_flight: IntGauge,
    /// 1 while the consumer is paused for back-pressure.
    pub paused: IntGauge,
    pub open_alerts: IntGauge,
}

impl DeliveryMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "klaxon_delivery_latency_seconds",
                "From the escalation event's production to the sink's acknowledgement.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["sink"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(DeliveryMetrics {
            deliveries: counter(
                "klaxon_deliveries_total",
                "Escalation events finished per sink, by outcome (delivered, rejected, exhausted).",
                &["sink", "outcome"],
            )?,
            attempts: counter(
                "klaxon_delivery_attempts_total",
                "HTTP delivery attempts per sink, by result (ok, retryable_error, permanent_error).",
                &["sink", "result"],
            )?,
            latency,
            dead_lettered: counter(
                "klaxon_delivery_dead_lettered_total",
                "Escalation events written to the delivery dead-letter topic, per sink.",
                &["sink"],
            )?,
            in_flight: gauge(
                "klaxon_delivery_in_flight",
                "Escalation events being delivered now.",
            )?,
            paused: gauge(
                "klaxon_delivery_consumer_paused",
                "1 while the delivery consumer is paused for back-pressure.",
            )?,
            open_alerts: gauge(
                "klaxon_alertmanager_open_alerts",
                "Alertmanager alerts kept firing (re-sent until their obligation closes).",
            )?,
        })
    }

    /// Creates every series of the configured sinks at zero, so dashboards and alert rules see
    /// them before the first failure.
    pub fn touch(&self, sinks: &[String]) {
        for s in sinks {
            for o in ["delivered", "rejected", "exhausted"] {
                self.deliveries.with_label_values(&[s, o]);
            }
            for r in ["ok", "retryable_error", "permanent_error"] {
                self.attempts.with_label_values(&[s, r]);
            }
            self.dead_lettered.with_label_values(&[s]);
            self.latency.with_label_values(&[s]);
        }
    }
}

/// One webhook with its secret resolved from the environment.
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Webhook {
    /// Resolves `secret_env`: a named variable that is unset or empty is an error (a webhook
    /// meant to be signed must not silently go unsigned).
    pub fn from_settings(w: &WebhookSettings) -> Result<Webhook, DeliveryError> {
        let secret = match &w.secret_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v.into_bytes()),
                _ => {
                    return Err(DeliveryError::Config(format!(
                        "delivery.webhooks {:?}: the environment variable {var} (secret_env) is not set",
                        w.name
                    )))
                }
            },
        };
        Ok(Webhook {
            name: w.name.clone(),
            url: w.url.trim().to_string(),
            events: w.events.clone(),
            secret,
        })
    }
}

/// How one event fared at one sink.
enum Outcome {
    Delivered,
    Failed {
        error: String,
        attempts: u32,
    },
    /// Shutdown came first: not finished, so not acknowledged (re-delivered after restart).
    Stopped,
}

/// What every delivery task shares.
struct Shared {
    client: reqwest::Client,
    webhooks: Vec<Webhook>,
    am: Option<mpsc::Sender<AmRequest>>,
    producer: AckingProducer<DefaultClientContext>,
    dlq_topic: String,
    settings: DeliverySettings,
    metrics: Arc<DeliveryMetrics>,
    jitter: Mutex<Jitter>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn backoff(&self, attempt: u32) -> Duration {
        let j = self.jitter.lock().map(|mut j| j.draw()).unwrap_or(0.5);
        retry::backoff(
            self.settings.initial_backoff(),
            self.settings.max_backoff(),
            attempt,
            j,
        )
    }

    /// Sleeps, unless shutdown comes first (then false).
    async fn pause(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stop.wait_for(|v| *v) => false,
        }
    }

    fn observe_latency(&self, sink: &str, produced_ms: Option<i64>) {
        if let Some(p) = produced_ms {
            let now = chrono::Utc::now().timestamp_millis();
            self.metrics
                .latency
                .with_label_values(&[sink])
                .observe(((now - p).max(0) as f64) / 1000.0);
        }
    }
}

/// An error's text with its causes, without the URL (which may hold credentials).
fn error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// POSTs `body` to a webhook until it is taken, refused for good, or attempts run out.
async fn send_webhook(
    shared: &Shared,
    hook: &Webhook,
    body: &[u8],
    event_id: &str,
    kind: &str,
) -> Outcome {
    let sink = hook.name.as_str();
    let max = shared.settings.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=max {
        let mut req = shared
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", event_id)
            .header("X-Klaxon-Event", kind)
            .body(body.to_vec());
        if let Some(secret) = &hook.secret {
            req = req.header(signature::HEADER, signature::sign(secret, body));
        }
        let result = match req.send().await {
            Ok(resp) => Attempt::from_status(resp.status().as_u16()),
            Err(e) => Attempt::Retry(error_text(e)),
        };
        shared
            .metrics
            .attempts
            .with_label_values(&[sink, result.label()])
            .inc();
        match result {
            Attempt::Delivered => {
                DeliveryEnded::Delivered { sink }.emit(&shared.metrics);
                return Outcome::Delivered;
            }
            Attempt::Permanent(e) => {
                DeliveryEnded::Refused {
                    sink,
                    event_id,
                    error: &e,
                }
                .emit(&shared.metrics);
                return Outcome::Failed {
                    error: e,
                    attempts: attempt,
                };
            }
            Attempt::Retry(e) => {
                tracing::debug!(sink, event_id, attempt, error = %e, "webhook attempt failed");
                last = e;
                if attempt < max && !shared.pause(shared.backoff(attempt)).await {
                    return Outcome::Stopped;
                }
            }
        }
    }
    DeliveryEnded::Exhausted {
        sink,
        event_id,
        attempts: max,
        error: &last,
    }
    .emit(&shared.metrics);
    Outcome::Failed {
        error: last,
        attempts: max,
    }
}

// ------------------------------------------------------------------ Alertmanager

/// A change to the open alerts, acknowledged once Alertmanager has taken it.
enum AmRequest {
    Open(Vec<AmAlert>, oneshot::Sender<Outcome>),
    Close(String, Option<String>, oneshot::Sender<Outcome>),
}

const ALERTMANAGER: &str = "alertmanager";

/// POSTs alerts in batches of `max_batch`, each with retries; the first batch that fails for
/// good fails the whole call.
async fn post_alerts(shared: &Shared, url: &str, alerts: &[AmAlert]) -> Outcome {
    let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    let max = shared.settings.max_attempts.max(1);
    for chunk in alerts.chunks(shared.settings.alertmanager.max_batch.max(1)) {
        let body = match serde_json::to_vec(chunk) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                    attempts: 0,
                }
            }
        };
        let mut done = false;
        let mut last = String::new();
        for attempt in 1..=max {
            let result = match shared
                .client
                .post(&endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
            {
                Ok(resp) => Attempt::from_status(resp.status().as_u16()),
                Err(e) => Attempt::Retry(error_text(e)),
            };
            shared
                .metrics
                .attempts
                .with_label_values(&[ALERTMANAGER, result.label()])
                .inc();
            match result {
                Attempt::Delivered => {
                    done = true;
                    break;
                }
                Attempt::Permanent(e) => {
                    return Outcome::Failed {
                        error: e,
                        attempts: attempt,
                    }
                }
                Attempt::Retry(e) => {
                    last = e;
                    if attempt < max && !shared.pause(shared.backoff(attempt)).await {
                        return Outcome::Stopped;
                    }
                }
            }
        }
        if !done {
            return Outcome::Failed {
                error: last,
                attempts: max,
            };
        }
    }
    Outcome::Delivered
}

/// The Alertmanager sink: one task owns the open alerts, batches what arrives together into one
/// POST, and re-sends the open alerts every `resend_every`.
async fn alertmanager_task(shared: Arc<Shared>, url: String, mut rx: mpsc::Receiver<AmRequest>) {
    let every = shared.settings.resend_every();
    let ttl = chrono::Duration::from_std(every * 4).unwrap_or(chrono::Duration::minutes(4));
    let mut open = OpenAlerts::new(shared.settings.alertmanager.max_open_alerts);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut stop = shared.stop.clone();
    loop {
        enum Next {
            Request(AmRequest),
            Renew,
            Stop,
        }
        let next = tokio::select! {
            r = rx.recv() => r.map_or(Next::Stop, Next::Request),
            _ = tick.tick() => Next::Renew,
            _ = stop.wait_for(|v| *v) => Next::Stop,
        };
        let first = match next {
            Next::Request(r) => r,
            Next::Stop => break,
            Next::Renew => {
                let now = chrono::Utc::now();
                let alerts = open.renew(now + ttl);
                if !alerts.is_empty() {
                    if let Outcome::Failed { error, .. } = post_alerts(&shared, &url, &alerts).await
                    {
                        tracing::warn!(error = %error, alerts = alerts.len(), "re-sending open alerts to Alertmanager failed; next period tries again");
                    }
                }
                continue;
            }
        };
        // Everything already waiting goes into the same POST (up to one batch of requests).
        let mut requests = vec![first];
        while requests.len() < shared.settings.alertmanager.max_batch.max(1) {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let now = chrono::Utc::now();
        let mut alerts = Vec::new();
        let mut acks = Vec::new();
        for r in requests {
            match r {
                AmRequest::Open(a, ack) => {
                    let mut a = a;
                    for x in &mut a {
                        x.ends_at = alertmanager::rfc3339(now + ttl);
                    }
                    alerts.extend(open.open(&a));
                    acks.push(ack);
                }
                AmRequest::Close(inc, kind, ack) => {
                    alerts.extend(open.close(&inc, kind.as_deref(), now));
                    acks.push(ack);
                }
            }
        }
        shared.metrics.open_alerts.set(open.len() as i64);
        if open.evicted > 0 {
            tracing::warn!(dropped = open.evicted, "open-alert table full: the oldest alerts are no longer re-sent (delivery.alertmanager.max_open_alerts)");
            open.evicted = 0;
        }
        let outcome = if alerts.is_empty() {
            Outcome::Delivered
        } else {
            post_alerts(&shared, &url, &alerts).await
        };
        for ack in acks {
            let o = match &outcome {
                Outcome::Delivered => Outcome::Delivered,
                Outcome::Stopped => Outcome::Stopped,
                Outcome::Failed { error, attempts } => Outcome::Failed {
                    error: error.clone(),
                    attempts: *attempts,
                },
            };
            let _ = ack.send(o);
        }
    }
}

// ------------------------------------------------------------------ one event

/// A record taken off the escalations topic.
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
    produced_ms: Option<i64>,
}

/// Writes an event that a sink could not take to the delivery dead-letter topic: the original
/// bytes, keyed by event id, with the sink, the last error, the attempts and the source position
/// in headers. Retries until the broker has it (or shutdown): only then may the offset move on.
async fn dead_letter(
    shared: &Shared,
    rec: &Record,
    event_id: &str,
    sink: &str,
    error: &str,
    attempts: u32,
) -> bool {
    let source = format!("{}/{}/{}", rec.topic, rec.partition, rec.offset);
    let attempts_text = attempts.to_string();
    let mut n = 0;
    loop {
        n += 1;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "klaxon-sink",
                value: Some(sink),
            })
            .insert(Header {
                key: "klaxon-error",
                value: Some(error),
            })
            .insert(Header {
                key: "klaxon-attempts",
                value: Some(&attempts_text),
            })
            .insert(Header {
                key: "klaxon-source",
                value: Some(&source),
            });
        let record = BaseRecord::to(&shared.dlq_topic)
            .key(event_id)
            .payload(&rec.payload)
            .headers(headers);
        match shared
            .producer
            .send_acknowledged(record, Duration::from_secs(30))
            .await
        {
            Ok(_) => {
                DeliveryDeadLettered {
                    sink,
                    event_id,
                    attempts,
                    error,
                    topic: &shared.dlq_topic,
                }
                .emit(&shared.metrics);
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write to the delivery dead-letter topic; retrying");
                if !shared.pause(shared.backoff(n.min(10))).await {
                    return false;
                }
            }
        }
    }
}

/// Delivers one event to every sink that wants it; true once all have taken it or it is
/// dead-lettered for those that did not (the offset may then be stored).
async fn deliver(shared: Arc<Shared>, rec: Record) -> bool {
    let ev: Value = match serde_json::from_slice(&rec.payload) {
        Ok(v) => v,
        Err(e) => {
            let id = format!("{}/{}/{}", rec.topic, rec.partition, rec.offset);
            return dead_letter(
                &shared,
                &rec,
                &id,
                "decode",
                &format!("not a JSON event: {e}"),
                0,
            )
            .await;
        }
    };
    let event_id = ev
        .get("event_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = ev
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut tasks: Vec<(String, tokio::task::JoinHandle<Outcome>)> = Vec::new();
    for (i, hook) in shared.webhooks.iter().enumerate() {
        if !hook.events.contains(&kind) {
            continue;
        }
        let (s, body, id, k) = (
            shared.clone(),
            rec.payload.clone(),
            event_id.clone(),
            kind.clone(),
        );
        tasks.push((
            hook.name.clone(),
            tokio::spawn(async move {
                match s.webhooks.get(i) {
                    Some(h) => send_webhook(&s, h, &body, &id, &k).await,
                    None => Outcome::Delivered,
                }
            }),
        ));
    }
    if let Some(am) = &shared.am {
        let request = {
            let now = chrono::Utc::now();
            let alerts = alertmanager::alerts_for_page(&ev, &shared.settings.desk_url, now, now);
            let (tx, rx) = oneshot::channel();
            if !alerts.is_empty() {
                Some((AmRequest::Open(alerts, tx), rx))
            } else {
                alertmanager::closes(&ev).map(|(inc, k)| (AmRequest::Close(inc, k, tx), rx))
            }
        };
        if let Some((req, rx)) = request {
            if am.send(req).await.is_err() {
                return false;
            }
            let (s, opened) = (shared.clone(), kind == "escalation.page");
            tasks.push((
                ALERTMANAGER.to_string(),
                tokio::spawn(async move {
                    let o = rx.await.unwrap_or(Outcome::Stopped);
                    let outcome = match o {
                        Outcome::Delivered => "delivered",
                        Outcome::Failed { .. } => "exhausted",
                        Outcome::Stopped => "",
                    };
                    if !outcome.is_empty() && opened {
                        s.metrics
                            .deliveries
                            .with_label_values(&[ALERTMANAGER, outcome])
                            .inc();
                    }
                    o
                }),
            ));
        }
    }
    let mut finished = true;
    for (sink, task) in tasks {
        match task.await.unwrap_or(Outcome::Stopped) {
            Outcome::Delivered => shared.observe_latency(&sink, rec.produced_ms),
            Outcome::Failed { error, attempts } => {
                if !dead_letter(&shared, &rec, &event_id, &sink, &error, attempts).await {
                    finished = false;
                }
            }
            Outcome::Stopped => finished = false,
        }
    }
    finished
}

// ------------------------------------------------------------------ offsets

/// In-flight offsets per partition: the offset stored is always one whose record and every
/// record before it are finished.
#[derive(Default)]
struct Offsets {
    in_flight: BTreeMap<i32, BTreeSet<i64>>,
    finished_max: BTreeMap<i32, i64>,
    stored: BTreeMap<i32, i64>,
}

impl Offsets {
    fn start(&mut self, partition: i32, offset: i64) {
        self.in_flight.entry(partition).or_default().insert(offset);
    }

    /// Marks a record finished; returns the offset now safe to store, if it moved.
    fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let set = self.in_flight.entry(partition).or_default();
        set.remove(&offset);
        let max = self.finished_max.entry(partition).or_insert(offset);
        *max = (*max).max(offset);
        let safe = match set.first() {
            Some(first) => first - 1,
            None => *max,
        };
        let stored = self.stored.entry(partition).or_insert(-1);
        (safe > *stored).then(|| {
            *stored = safe;
            safe
        })
    }
}

// ------------------------------------------------------------------ the stage

/// The consumer group of the stage.
pub fn group_id(config: &Config) -> String {
    config
        .settings
        .delivery
        .group_id
        .clone()
        .filter(|g| !g.trim().is_empty())
        .unwrap_or_else(|| format!("{}.delivery", config.settings.kafka.group_id))
}

/// Runs the stage until `stop` turns true: then finishes what is in flight (up to 10 s), stores
/// and commits offsets, and returns. `assigned` is set once the group gave it partitions.
pub async fn run(
    config: Arc<Config>,
    metrics: Arc<DeliveryMetrics>,
    stop: watch::Receiver<bool>,
    assigned: Arc<AtomicBool>,
) -> Result<(), DeliveryError> {
    let s = &config.settings;
    let d = s.delivery.clone();
    if !d.has_sinks() {
        tracing::warn!("delivery stage started without sinks (delivery.alertmanager.url, delivery.webhooks): events are only acknowledged");
    }
    let webhooks = d
        .webhooks
        .iter()
        .map(Webhook::from_settings)
        .collect::<Result<Vec<_>, _>>()?;
    for w in &webhooks {
        if w.secret.is_none() {
            tracing::warn!(sink = %w.name, "webhook has no secret_env: its requests are not signed");
        }
    }
    let mut sinks: Vec<String> = webhooks.iter().map(|w| w.name.clone()).collect();
    let am_url = d.alertmanager.url.trim().to_string();
    if !am_url.is_empty() {
        sinks.push(ALERTMANAGER.into());
    }
    metrics.touch(&sinks);
    // rustls with the webpki roots, no redirects (see `Attempt`), a timeout per request.
    let client = reqwest::Client::builder()
        .timeout(d.request_timeout())
        .connect_timeout(d.request_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let producer = AckingProducer::new(
        &crate::runtime::kafka::producer_config(s),
        DefaultClientContext,
    )?;
    let group = group_id(&config);
    // Static membership as the other stages (`kafka.instance_id`, #19): a restarted instance
    // takes its delivery partitions back at once.
    let mut cc = crate::runtime::kafka::consumer_config(s, &group, "delivery");
    // librdkafka pre-fetches up to 64 MiB per client by default: cap it, so the stage's memory
    // is bounded by max_in_flight events plus this.
    cc.set("queued.max.messages.kbytes", "2048");
    let consumer: StreamConsumer = cc.create()?;
    consumer.subscribe(&[s.topics.escalations.as_str()])?;
    let (am_tx, am_rx) = mpsc::channel(d.max_in_flight.max(1));
    let shared = Arc::new(Shared {
        client,
        webhooks,
        am: (!am_url.is_empty()).then_some(am_tx),
        producer,
        dlq_topic: s.topics.delivery_dead_letter.clone(),
        settings: d.clone(),
        metrics: metrics.clone(),
        jitter: Mutex::new(Jitter::default()),
        stop: stop.clone(),
    });
    let am_task = (!am_url.is_empty())
        .then(|| tokio::spawn(alertmanager_task(shared.clone(), am_url.clone(), am_rx)));
    tracing::info!(group = %group, topic = %s.topics.escalations, sinks = ?sinks, "delivery stage started");

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, i32, i64, bool)>();
    let mut offsets = Offsets::default();
    let mut in_flight = 0usize;
    let mut paused = false;
    let max = d.max_in_flight.max(1);
    let mut stop_rx = stop.clone();
    let topic = s.topics.escalations.clone();
    // A record not finished (shutdown) stays in flight: nothing at or after it is stored, so
    // it is re-delivered.
    let finish = |offsets: &mut Offsets,
                  consumer: &StreamConsumer,
                  (t, p, o, ok): (String, i32, i64, bool)| {
        if ok {
            if let Some(safe) = offsets.finish(p, o) {
                if let Err(e) = consumer.store_offset(&t, p, safe) {
                    tracing::debug!(error = %e, partition = p, "offset not stored (partition revoked?)");
                }
            }
        }
    };
    let mut assignment_check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            biased;
            _ = stop_rx.wait_for(|v| *v) => break,
            _ = assignment_check.tick() => {
                let has = consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
                assigned.store(has, Ordering::Relaxed);
            }
            Some(done) = done_rx.recv() => {
                in_flight -= 1;
                metrics.in_flight.set(in_flight as i64);
                finish(&mut offsets, &consumer, done);
                if paused && in_flight <= max / 2 {
                    if let Ok(tpl) = consumer.assignment() {
                        if consumer.resume(&tpl).is_ok() {
                            paused = false;
                            metrics.paused.set(0);
                        }
                    }
                }
            }
            m = consumer.recv() => {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery consumer error; retrying");
                        continue;
                    }
                };
                let rec = Record {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().unwrap_or(&[]).to_vec(),
                    produced_ms: m.timestamp().to_millis(),
                };
                drop(m);
                offsets.start(rec.partition, rec.offset);
                in_flight += 1;
                metrics.in_flight.set(in_flight as i64);
                let (tx, sh) = (done_tx.clone(), shared.clone());
                tokio::spawn(async move {
                    let (t, p, o) = (rec.topic.clone(), rec.partition, rec.offset);
                    let ok = deliver(sh, rec).await;
                    let _ = tx.send((t, p, o, ok));
                });
                if in_flight >= max && !paused {
                    // Back-pressure: stop fetching, keep polling (the group membership holds).
                    if let Ok(tpl) = consumer.assignment() {
                        if consumer.pause(&tpl).is_ok() {
                            paused = true;
                            metrics.paused.set(1);
                        }
                    }
                }
            }
        }
    }
    // Shutdown: what finishes within the grace period is acknowledged; the rest is re-delivered.
    let grace = tokio::time::Instant::now() + Duration::from_secs(10);
    while in_flight > 0 {
        match tokio::time::timeout_at(grace, done_rx.recv()).await {
            Ok(Some(done)) => {
                in_flight -= 1;
                finish(&mut offsets, &consumer, done);
            }
            _ => break,
        }
    }
    metrics.in_flight.set(in_flight as i64);
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, topic = %topic, "final delivery commit");
    }
    if let Some(t) = am_task {
        t.abort();
    }
    tracing::info!(unfinished = in_flight, "delivery stage stopped");
    Ok(())
}

/// `klaxon deliver`: the stage on its own, with `/metrics`, `/healthz` and `/readyz` (200 once
/// the group has given it partitions) on `delivery.listen`.
pub async fn serve(
    config: Arc<Config>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DeliveryError> {
    let registry = Registry::new();
    let metrics = Arc::new(DeliveryMetrics::new(&registry)?);
    let assigned = Arc::new(AtomicBool::new(false));
    let listen = config.settings.delivery.listen.clone();
    let listener = crate::telemetry::http::bind("delivery.listen", &listen).await?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "delivery metrics, healthz and readyz listening");
    if config.settings.kafka.create_topics {
        let s = config.settings.clone();
        match tokio::time::timeout(
            Duration::from_secs(15),
            crate::runtime::kafka::ensure_topics(&s),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not check or create topics; continuing")
            }
            Err(_) => tracing::warn!("no answer to topic creation within 15 s; continuing"),
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = {
        use axum::routing::get;
        let registry = registry.clone();
        let ready = assigned.clone();
        axum::Router::new()
            .route(
                "/metrics",
                get(move || {
                    let registry = registry.clone();
                    async move {
                        use prometheus::Encoder;
                        let mut buf = Vec::new();
                        let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4",
                            )],
                            buf,
                        )
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let ready = ready.load(Ordering::Relaxed);
                    async move {
                        if ready {
                            (axum::http::StatusCode::OK, "ready\n")
                        } else {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                        }
                    }
                }),
            )
    };
    let http_stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_stop)
            .await
    });
    let watcher = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
    };
    let result = run(config, metrics, stop_rx, assigned).await;
    let _ = stop_tx.send(true);
    watcher.abort();
    let _ = http.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_move_only_past_finished_prefixes() {
        let mut o = Offsets::default();
        for off in 10..15 {
            o.start(0, off);
        }
        // Nothing before 10 is ours: storing 9 re-commits where the group already was.
        assert_eq!(o.finish(0, 12), Some(9));
        assert_eq!(o.finish(0, 11), None);
        assert_eq!(o.finish(0, 10), Some(12));
        assert_eq!(o.finish(0, 14), None);
        assert_eq!(o.finish(0, 13), Some(14));
    }

    #[test]
    fn a_webhook_s_debug_hides_its_secret() {
        let w = Webhook {
            name: "n".into(),
            url: "http://x".into(),
            events: vec![],
            secret: Some(b"hunter2".to_vec()),
        };
        let text = format!("{w:?}");
        assert!(
            !text.contains("hunter2") && text.contains("redacted"),
            "{text}"
        );
    }
}
