//! The live driver (`klaxon run`): Kafka in, escalations out, on the wall clock.
//!
//! Two stages in one process, as Kafka Streams would build it:
//! - [`router`] consumes `topics.alerts` and `topics.commands` (group `kafka.group_id`),
//!   dead-letters bad records, and re-keys good ones by routing token onto `topics.repartition`;
//! - [`processor`] consumes the repartition topic (group `<group_id>.processor`), keeps one
//!   engine per owned partition, restored from [`changelog`] on assignment, and emits.
//!
//! With `kafka.input_keyed` the processor also reads `topics.alerts` itself, one hop fewer, and
//! the router routes commands only ([`keyed`]).
//!
//! Scale-out is by consumer group: start more instances with the same `group_id`.

pub mod changelog;
pub mod clock;
pub mod commit_cadence;
pub mod kafka;
pub mod keyed;
pub mod processor;
pub mod producer;
pub mod router;
pub mod routing;
pub mod sink;

use crate::settings::Config;
use crate::telemetry::metrics::Stage;
use crate::telemetry::Metrics;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("restore: {0}")]
    Restore(String),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error("metrics endpoint: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Listen(#[from] crate::telemetry::http::BindError),
    #[error("a stage failed: {0}")]
    Join(String),
    /// The broker handed this member's `group.instance.id` to a newer process: two instances
    /// share `kafka.instance_id`. The newer one keeps the partitions; this one must not go on.
    #[error(
        "fenced out of consumer group {group:?}: another process joined it with the same \
         group.instance.id {instance:?}, so the broker gave it this instance's partitions. Two \
         running instances must never share kafka.instance_id (default $KLAXON_INSTANCE_ID, else \
         the host name): give each its own (a StatefulSet's pod name does). Broker said: {reason}"
    )]
    Fenced {
        group: String,
        instance: String,
        reason: String,
    },
    /// `kafka.input_keyed` on an alerts topic that is not partitioned as the repartition topic.
    #[error("kafka.input_keyed: {0}")]
    Keyed(String),
    #[error("kafka client of consumer group {group:?} failed fatally and cannot go on: {reason}")]
    Fatal { group: String, reason: String },
    #[error("delivery: {0}")]
    Delivery(#[from] crate::delivery::DeliveryError),
    #[error(transparent)]
    Desk(#[from] crate::desk::DeskError),
}

/// Starts the service in the background, stopped by sending `true` on the returned switch (the
/// demo and the load harness; `klaxon run` uses [`run`] with the signals).
pub fn spawn(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: clock::Clock,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), RuntimeError>>,
) {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let handle = tokio::spawn(run(config, metrics, clock, async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    }));
    (stop_tx, handle)
}

/// Runs the service until `shutdown` resolves; then stops fetching, finishes the batch in
/// flight, flushes, commits and returns.
pub async fn run(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: clock::Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    started();
    let s = &config.settings;
    tracing::info!(kafka = %kafka::describe(s), ruleset = %config.ruleset.id, "starting klaxon");
    let listener = crate::telemetry::http::bind("metrics.listen", &s.metrics.listen).await?;
    // The bound address, not the configured one: they differ when the port is 0.
    let bound = listener.local_addr().map_err(RuntimeError::Http)?;
    tracing::info!(listen = %bound, "metrics, healthz and readyz listening");
    for topic in [&s.topics.alerts, &s.topics.commands] {
        metrics.alerts_consumed.with_label_values(&[topic]);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let http_stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let http = tokio::spawn(crate::telemetry::http::serve(
        listener,
        metrics.clone(),
        http_stop,
    ));
    // The desk in-process (`desk.enabled`): it reads the changelog of every partition, so it
    // shows incidents of the other instances too.
    let desk = if s.desk.enabled {
        let listener = crate::desk::bind(&config).await?;
        let desk = Arc::new(crate::desk::Desk::new(
            config.clone(),
            metrics.clone(),
            clock.clone(),
        )?);
        let mut rx = stop_rx.clone();
        Some(tokio::spawn(crate::desk::serve(
            desk,
            listener,
            false,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        )))
    } else {
        None
    };
    if s.kafka.create_topics {
        // Creating topics is a convenience: a broker that does not answer must not hold up the
        // service (brokers that auto-create, or topics made by an operator, work without it).
        match tokio::time::timeout(std::time::Duration::from_secs(15), kafka::ensure_topics(s))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not check or create topics; continuing")
            }
            Err(_) => tracing::warn!("no answer to topic creation within 15 s; continuing"),
        }
    }
    let stall = s.stall_after();
    if s.kafka.input_keyed {
        metrics.watch_stage(
            Stage::Router,
            std::slice::from_ref(&s.topics.commands),
            stall,
        );
        let inputs = [s.topics.repartition.clone(), s.topics.alerts.clone()];
        metrics.watch_stage(Stage::Processor, &inputs, stall);
    } else {
        let inputs = [s.topics.alerts.clone(), s.topics.commands.clone()];
        metrics.watch_stage(Stage::Router, &inputs, stall);
        metrics.watch_stage(
            Stage::Processor,
            std::slice::from_ref(&s.topics.repartition),
            stall,
        );
    }
    let router = tokio::spawn(router::run(
        config.clone(),
        metrics.clone(),
        clock.clone(),
        stop_rx.clone(),
    ));
    let processor = tokio::spawn(processor::run(
        config.clone(),
        metrics.clone(),
        clock,
        stop_rx.clone(),
    ));
    // The delivery stage (docs/spec.md §10), in-process when enabled: its own consumer group on the
    // escalations topic, so it never holds up the processor.
    let delivery = if s.delivery.enabled {
        let dm = crate::delivery::DeliveryMetrics::new(metrics.registry())
            .map_err(crate::delivery::DeliveryError::from)?;
        let stage = tokio::spawn({
            let (config, stop_rx) = (config.clone(), stop_rx.clone());
            async move {
                let assigned = Arc::new(std::sync::atomic::AtomicBool::new(false));
                crate::delivery::run(config, Arc::new(dm), stop_rx, assigned)
                    .await
                    .map_err(RuntimeError::from)
            }
        });
        // A delivery stage that cannot run (a webhook's secret missing, say) stops the service:
        // pages that reach nobody must not look like a healthy service.
        Some(tokio::spawn(stop_others_on_error(stage, stop_tx.clone())))
    } else {
        None
    };
    let watcher = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested: finishing the batch in flight, then committing");
            let _ = stop_tx.send(true);
        })
    };
    // A stage that fails (fenced out of its group, say) stops the other, so the process exits
    // with the error instead of running on half.
    let (r, p) = tokio::join!(
        stop_others_on_error(router, stop_tx.clone()),
        stop_others_on_error(processor, stop_tx.clone())
    );
    let _ = stop_tx.send(true);
    watcher.abort();
    if let Some(d) = delivery {
        d.await
            .map_err(|e| RuntimeError::Join(e.to_string()))?
            .map_err(|e| RuntimeError::Join(e.to_string()))??;
    }
    let _ = http.await;
    if let Some(d) = desk {
        match d.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "desk stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "desk task failed"),
        }
    }
    r.map_err(|e| RuntimeError::Join(e.to_string()))??;
    p.map_err(|e| RuntimeError::Join(e.to_string()))??;
    tracing::info!("klaxon stopped cleanly");
    Ok(())
}

async fn stop_others_on_error(
    stage: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    stop: watch::Sender<bool>,
) -> Result<Result<(), RuntimeError>, tokio::task::JoinError> {
    let result = stage.await;
    if !matches!(result, Ok(Ok(()))) {
        let _ = stop.send(true);
    }
    result
}

/// When the service started (the first call of [`run`] in this process): restarts are timed
/// from here (start → partitions assigned → state restored).
pub(crate) fn started() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}
