//! Stage one: consumes the input topics, dead-letters what cannot be decoded, and re-keys every
//! good record by its routing token onto the repartition topic, so the partition — and so the
//! instance — that owns an incident sees all of its alerts and commands. Input offsets are stored
//! only after the broker acknowledged the forwarded and dead-lettered records; the router does
//! not wait for that before the next batch (see [`AckPipeline`]). librdkafka commits the stored
//! offsets every second, and the router itself once its input goes quiet ([`commit_cadence`]).

use super::clock::Clock;
use super::commit_cadence;
use super::kafka::{
    consumer_config, fatal_error, group_instance_id, producer_config, KlaxonContext,
    AUTO_COMMIT_INTERVAL,
};
use super::keyed;
use super::producer::AckingProducer;
use super::sink::{AckPipeline, OutRecord, Step};
use super::RuntimeError;
use crate::admission::{admit, Window};
use crate::decode::{decode_record, DecodeError, Decoded, Expect};
use crate::engine::input_route_token;
use crate::settings::Config;
use crate::telemetry::events::{ConsumeError, RecordDeadLettered};
use crate::telemetry::metrics::Stage;
use crate::telemetry::Metrics;
use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Header on repartitioned commands (`commands`): which input topic they came from. Alerts carry
/// none; a record without it is an alert (older versions wrote `alerts`, read the same).
pub const SOURCE_HEADER: &str = "klaxon-source";
/// Header on repartitioned records that a mapping produced: the input format (`ecs`, `ocsf`, …).
pub const FORMAT_HEADER: &str = "klaxon-format";
/// Header on repartitioned commands: when the input record was written (its timestamp, ms since
/// the epoch), so the engine can show a command's receipt beside the `at` it claims.
pub const RECEIVED_HEADER: &str = "klaxon-received";
/// How many records one batch may hold. A batch is the unit of acknowledgement: the state of the
/// incidents it touched is written once per batch, so larger batches under load write much less
/// changelog (many alerts of one incident collapse into one record), as Kafka Streams' record
/// cache does between commits. Latency does not suffer: a batch takes only what has already been
/// fetched.
pub const BATCH: usize = 4096;
/// How many batches may wait for their acknowledgements while the next ones are processed. Deep
/// enough that a slow acknowledgement (a large state flush) does not stop the stream; memory is
/// bounded by bytes, not steps ([`super::sink::MAX_BYTES_IN_FLIGHT`]).
pub const PIPELINE_DEPTH: usize = 1024;
/// The router's suffix on the instance id (its `group.instance.id`).
pub const STAGE: &str = "router";

pub async fn run(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let s = &config.settings;
    let ctx = KlaxonContext {
        metrics: metrics.clone(),
        rebalances: None,
        lag_topics: vec![s.topics.alerts.clone(), s.topics.commands.clone()],
    };
    let consumer: Arc<StreamConsumer<KlaxonContext>> =
        Arc::new(consumer_config(s, &s.kafka.group_id, STAGE).create_with_context(ctx)?);
    let instance = group_instance_id(s, STAGE);
    // Keyed alerts go straight to the processor; the router then routes commands only.
    if s.kafka.input_keyed {
        consumer.subscribe(&[&s.topics.commands])?;
    } else {
        consumer.subscribe(&[&s.topics.alerts, &s.topics.commands])?;
    }
    let producer = AckingProducer::new(&producer_config(s), KlaxonContext::plain(metrics.clone()))?;
    let acks = AckPipeline::start(producer.clone(), shutdown.clone(), PIPELINE_DEPTH);
    tracing::info!(group = %s.kafka.group_id, group_instance_id = instance.as_deref().unwrap_or(""), alerts = %s.topics.alerts, commands = %s.topics.commands, "router started");
    // Whether batches were pushed since the last early commit. librdkafka commits their offsets
    // every second anyway; once the input goes quiet they are committed at once
    // ([`commit_cadence`]).
    let mut uncommitted_batches = false;
    let mut last_batch = Instant::now();
    let mut last_commit = Instant::now();
    loop {
        let commit_at = uncommitted_batches.then(|| {
            commit_cadence::early_commit_at(last_batch, last_commit, AUTO_COMMIT_INTERVAL)
        });
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            m = consumer.recv() => m,
            _ = tokio::time::sleep_until(commit_at.unwrap_or(last_commit).into()), if commit_at.is_some() => {
                uncommitted_batches = false;
                last_commit = Instant::now();
                // Behind every batch before it: runs once their offsets are stored.
                let consumer = consumer.clone();
                let commit = Box::new(move |_| {
                    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
                        tracing::debug!(error = %e, "commit once the input went quiet");
                    }
                });
                if acks.push(Step::SendAfter(Vec::new(), commit)).await.is_err() {
                    tracing::warn!("batch not acknowledged; its offsets stay uncommitted");
                    break;
                }
                continue;
            }
        };
        last_batch = Instant::now();
        let batch = match collect_batch(&consumer, first, &metrics).await {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(e) => {
                let e = fatal_error(
                    consumer.client(),
                    &s.kafka.group_id,
                    instance.as_deref(),
                    &e,
                );
                tracing::error!(error = %e, "router stopped");
                return Err(e);
            }
        };
        metrics.batch_taken(Stage::Router, oldest(&batch));
        // Event times are judged against the processing clock as the batch arrives.
        let window = config.settings.event_window(clock.now());
        let out = route_batch(&config, &metrics, &window, &batch);
        let Ok(flight) = acks.send(&producer, out).await else {
            tracing::warn!("batch not acknowledged; its offsets stay uncommitted");
            break;
        };
        let offsets = highest_offsets(&batch);
        let consumer = consumer.clone();
        let after = Box::new(move |_| store_offsets(&consumer, &offsets));
        if acks.push(Step::Sent(flight, after)).await.is_err() {
            tracing::warn!("batch not acknowledged; its offsets stay uncommitted");
            break;
        }
        metrics.batch_done(Stage::Router);
        uncommitted_batches = true;
    }
    match acks.finish().await {
        Ok(()) => {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "final commit");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "records not acknowledged; their offsets stay uncommitted")
        }
    }
    tracing::info!("router stopped");
    Ok(())
}

fn route_batch(
    config: &Config,
    metrics: &Metrics,
    window: &Window,
    batch: &[BorrowedMessage<'_>],
) -> Vec<OutRecord> {
    let s = &config.settings;
    let mut out = Vec::with_capacity(batch.len());
    // Counted here and added once per batch: a labelled counter is a hashed, locked look-up, and
    // once per record it showed in the profile.
    let (mut alerts, mut commands) = (0u64, 0u64);
    for m in batch {
        let expect = if m.topic() == s.topics.commands {
            commands += 1;
            Expect::Command
        } else {
            alerts += 1;
            Expect::Alert
        };
        out.push(match decode_admitted(config, window, m, expect) {
            Ok(decoded) => {
                let token =
                    input_route_token(&decoded.input, &config.registry, &s.correlation.group_by);
                forward(config, m, expect, decoded, token)
            }
            Err(e) => dead_letter(config, metrics, m, &e),
        });
    }
    for (topic, n) in [(&s.topics.alerts, alerts), (&s.topics.commands, commands)] {
        if n > 0 {
            metrics
                .alerts_consumed
                .with_label_values(&[topic])
                .inc_by(n);
        }
    }
    out
}

/// Decodes an input record (through the configured mappings) and checks its event time against
/// the admission window.
pub fn decode_admitted<'m>(
    config: &Config,
    window: &Window,
    m: &'m BorrowedMessage<'_>,
    expect: Expect,
) -> Result<Decoded<'m>, DecodeError> {
    let s = &config.settings;
    decode_record(
        m.payload().unwrap_or(&[]),
        expect,
        s.input.max_record_bytes,
        &config.mappings,
    )
    .and_then(|d| admit(&d.input, window).map(|()| d))
}

/// The repartition record for a good input record: keyed by its routing token, the source and
/// (for commands) signature and receipt time in headers, a mapped record as its native alert.
/// With `kafka.input_keyed` the partition is set explicitly ([`keyed::partition_for`]), so the
/// repartition topic is partitioned as the keyed alerts topic is whatever `partitioner` the
/// producer is configured with; otherwise the producer's partitioner decides, as it always has.
pub fn forward(
    config: &Config,
    m: &BorrowedMessage<'_>,
    expect: Expect,
    decoded: Decoded<'_>,
    token: u32,
) -> OutRecord {
    let s = &config.settings;
    let payload = m.payload().unwrap_or(&[]);
    // Alerts, nearly every record, carry no header at all: a header costs librdkafka an
    // allocation on each side of the hop, and the processor reads a record without
    // `klaxon-source` as an alert (as it always has: records written before carry `alerts`).
    let mut headers = Vec::new();
    if expect == Expect::Command {
        headers.push((SOURCE_HEADER, b"commands".to_vec()));
        // The signature travels with the untouched bytes it covers; the processor checks it (so a
        // record written straight onto the repartition topic is checked too).
        if let Some(sig) = header_value(m, crate::signing::HEADER) {
            headers.push((crate::signing::HEADER, sig.to_vec()));
        }
        let received = m
            .timestamp()
            .to_millis()
            .unwrap_or_else(|| super::clock::wall_now().0);
        headers.push((RECEIVED_HEADER, received.to_string().into_bytes()));
    }
    // A mapped record (ECS, OCSF, …) travels on as the native alert it maps to: the processor
    // reads native records only.
    let payload = match decoded.mapped {
        Some(m) => {
            headers.push((FORMAT_HEADER, m.format.into_bytes()));
            m.native.into_bytes()
        }
        None => payload.to_vec(),
    };
    let key = keyed::routing_key(token);
    OutRecord {
        topic: s.topics.repartition.clone(),
        partition: s
            .kafka
            .input_keyed
            .then(|| keyed::partition_for(&key, s.state.partitions)),
        key: key.to_vec(),
        payload: Some(payload),
        headers,
    }
}

/// The dead-letter record for an input record that cannot be used, with why in its headers.
pub fn dead_letter(
    config: &Config,
    metrics: &Metrics,
    m: &BorrowedMessage<'_>,
    e: &DecodeError,
) -> OutRecord {
    let topic = m.topic();
    RecordDeadLettered {
        topic,
        partition: m.partition(),
        offset: m.offset(),
        error: e,
    }
    .emit(metrics);
    let mut headers = vec![
        ("klaxon-reason", e.code().as_bytes().to_vec()),
        ("klaxon-error", e.to_string().into_bytes()),
        ("klaxon-source-topic", topic.as_bytes().to_vec()),
        (
            "klaxon-source-partition",
            m.partition().to_string().into_bytes(),
        ),
        ("klaxon-source-offset", m.offset().to_string().into_bytes()),
    ];
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let hd = h.get(i);
            if hd.key == "traceparent" {
                headers.push(("traceparent", hd.value.unwrap_or(&[]).to_vec()));
            }
        }
    }
    OutRecord {
        topic: config.settings.topics.dead_letter.clone(),
        partition: None,
        key: m.key().unwrap_or(&[]).to_vec(),
        payload: Some(m.payload().unwrap_or(&[]).to_vec()),
        headers,
    }
}

/// The value of a record's header `key` (the first, if repeated).
pub fn header_value<'m>(m: &'m BorrowedMessage<'_>, key: &str) -> Option<&'m [u8]> {
    m.headers()?.iter().find(|h| h.key == key)?.value
}

/// A batch: the record just received plus whatever has already been fetched, up to [`BATCH`]
/// (never waiting for more). `Ok(None)` after a consume error, which is counted and logged;
/// `Err` after a fatal one (the consumer cannot go on: see [`super::kafka::fatal_error`]).
pub async fn collect_batch<'c, C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &'c StreamConsumer<C>,
    first: rdkafka::error::KafkaResult<BorrowedMessage<'c>>,
    metrics: &Metrics,
) -> Result<Option<Vec<BorrowedMessage<'c>>>, KafkaError> {
    let mut batch = Vec::with_capacity(BATCH);
    match first {
        Ok(m) => batch.push(m),
        Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
            ConsumeError {
                error: &e,
                fatal: true,
            }
            .emit(metrics);
            return Err(e);
        }
        Err(e) => {
            ConsumeError {
                error: &e,
                fatal: false,
            }
            .emit(metrics);
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(None);
        }
    }
    // The rest is what librdkafka has already fetched: one stream polled without waiting, not a
    // `recv()` under a zero timeout per record, each of which read the clock for its deadline and
    // took the consumer's waker lock twice (~0.8 % of a two-stage `perf` profile).
    let mut fetched = consumer.stream();
    while batch.len() < BATCH {
        match fetched.next().now_or_never() {
            Some(Some(Ok(m))) => batch.push(m),
            _ => break,
        }
    }
    Ok(Some(batch))
}

/// The broker timestamp (ms) of the oldest record in a batch, for
/// `klaxon_oldest_unprocessed_record_age_seconds`.
pub fn oldest(batch: &[BorrowedMessage<'_>]) -> Option<i64> {
    batch.iter().filter_map(|m| m.timestamp().to_millis()).min()
}

/// The highest offset of each topic partition in a batch.
pub fn highest_offsets(batch: &[BorrowedMessage<'_>]) -> Vec<(String, i32, i64)> {
    let mut high: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let e = high.entry((m.topic(), m.partition())).or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    high.into_iter()
        .map(|((t, p), o)| (t.to_string(), p, o))
        .collect()
}

/// Stores offsets for librdkafka to commit (it commits offset + 1).
pub fn store_offsets<C: rdkafka::consumer::ConsumerContext>(
    consumer: &StreamConsumer<C>,
    offsets: &[(String, i32, i64)],
) {
    for (topic, p, off) in offsets {
        if let Err(e) = consumer.store_offset(topic, *p, *off) {
            // A partition revoked meanwhile: its new owner re-reads from the last commit.
            tracing::debug!(error = %e, topic, partition = p, "offset not stored");
        }
    }
}
