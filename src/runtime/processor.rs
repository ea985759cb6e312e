//! Stage two: owns partitions of the repartition topic, one engine per partition (its state
//! restored from the changelog on assignment), and drives the engines on the clock. For each
//! batch it produces the escalations and waits for the broker's acks; every
//! `state.commit_interval` it writes the incidents changed since the last flush to the changelog,
//! waits again, and only then stores the input offsets that state covers. A crash anywhere
//! re-reads from the last commit against the last durable state: records already applied to an
//! incident are recognised by offset, the rest are applied, and events come out again only under
//! the same `event_id`s.

use super::changelog;
use super::clock::Clock;
use super::kafka::{consumer_config, producer_config, KlaxonContext, RebalanceEvent};
use super::router::{collect_batch, BATCH, SOURCE_HEADER};
use super::routing::topics_for;
use super::sink::{send_all, OutRecord};
use super::RuntimeError;
use crate::decode::{decode, Expect};
use crate::engine::stats_total;
use crate::engine::Engine;
use crate::model::escalation::EventType;
use crate::model::{Escalation, Input};
use crate::settings::Config;
use crate::telemetry::Metrics;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

struct Processor {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
    producer: FutureProducer<KlaxonContext>,
    engines: BTreeMap<i32, Engine>,
    shutdown: watch::Receiver<bool>,
    /// After an assignment: wall-clock timers wait until the backlog is read (or this passes).
    catching_up_until: Option<Instant>,
    /// Highest offset processed per partition since the last state flush.
    pending: BTreeMap<i32, i64>,
    last_flush: Instant,
    /// How often state is flushed and offsets stored (`state.commit_interval`).
    commit_interval: Duration,
}

/// How long restored timers wait for the first fetch of their partition's backlog.
const RESTORE_GRACE: Duration = Duration::from_secs(2);

pub async fn run(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let s = &config.settings;
    let (tx, mut rebalances) = mpsc::unbounded_channel();
    let ctx = KlaxonContext {
        metrics: metrics.clone(),
        rebalances: Some(tx),
        pause_on_assign: true,
        lag_topics: vec![s.topics.repartition.clone()],
    };
    let group = format!("{}.processor", s.kafka.group_id);
    let consumer: StreamConsumer<KlaxonContext> =
        consumer_config(s, &group).create_with_context(ctx)?;
    consumer.subscribe(&[&s.topics.repartition])?;
    let producer: FutureProducer<KlaxonContext> =
        producer_config(s).create_with_context(KlaxonContext::plain(metrics.clone()))?;
    let mut proc = Processor {
        config: config.clone(),
        metrics: metrics.clone(),
        clock,
        producer,
        engines: BTreeMap::new(),
        shutdown: shutdown.clone(),
        catching_up_until: None,
        pending: BTreeMap::new(),
        last_flush: Instant::now(),
        commit_interval: config.settings.commit_interval(),
    };
    tracing::info!(group = %group, topic = %s.topics.repartition, "processor started");
    let mut gauges = tokio::time::interval(Duration::from_millis(500));
    loop {
        proc.apply_rebalances(&consumer, &mut rebalances).await?;
        let grace = proc
            .catching_up_until
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        let wait = proc
            .next_timer()
            .map(|t| proc.clock.until(t).max(grace))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            m = consumer.recv() => {
                let Some(mut batch) = collect_batch(&consumer, m, &metrics).await else { continue };
                // A short batch means the backlog is read: from here timers follow the wall clock.
                let caught_up = batch.len() < BATCH;
                // Revocations noticed while collecting the batch: drop those partitions first, so
                // no state is written for a partition this instance no longer owns.
                proc.apply_rebalances(&consumer, &mut rebalances).await?;
                batch.retain(|m| proc.engines.contains_key(&m.partition()));
                if proc.process_batch(&batch).await.is_err() {
                    break;
                }
                for m in &batch {
                    let e = proc.pending.entry(m.partition()).or_insert(m.offset());
                    *e = (*e).max(m.offset());
                }
                if proc.last_flush.elapsed() >= proc.commit_interval && proc.flush_state(&consumer).await.is_err() {
                    break;
                }
                if caught_up {
                    proc.catching_up_until = None;
                    if proc.fire_timers().await.is_err() {
                        break;
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {
                proc.catching_up_until = None;
                if proc.fire_timers().await.is_err() {
                    break;
                }
            }
            _ = gauges.tick() => {
                proc.update_gauges();
                if proc.last_flush.elapsed() >= proc.commit_interval && proc.flush_state(&consumer).await.is_err() {
                    break;
                }
            }
        }
    }
    // Shutdown: state first, then the offsets it covers.
    if proc.flush_state(&consumer).await.is_ok() {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit");
        }
    }
    tracing::info!("processor stopped");
    Ok(())
}

impl Processor {
    fn next_timer(&self) -> Option<crate::time::Timestamp> {
        self.engines.values().filter_map(Engine::poll_timeout).min()
    }

    async fn apply_rebalances(
        &mut self,
        consumer: &StreamConsumer<KlaxonContext>,
        rx: &mut mpsc::UnboundedReceiver<RebalanceEvent>,
    ) -> Result<(), RuntimeError> {
        while let Ok(ev) = rx.try_recv() {
            match ev {
                RebalanceEvent::Revoked(parts) => {
                    for p in parts {
                        self.pending.remove(&p);
                        if self.engines.remove(&p).is_some() {
                            tracing::info!(partition = p, "partition state dropped");
                        }
                    }
                }
                RebalanceEvent::Assigned(parts) => {
                    self.metrics.set_restored(false);
                    // Partitions restore in parallel: a takeover waits for the slowest, not the sum.
                    let mut tasks = Vec::with_capacity(parts.len());
                    for &p in &parts {
                        let (config, metrics, producer, shutdown) = (
                            self.config.clone(),
                            self.metrics.clone(),
                            self.producer.clone(),
                            self.shutdown.clone(),
                        );
                        tasks.push((
                            p,
                            tokio::spawn(async move {
                                changelog::restore(&config, &metrics, &producer, p, &shutdown).await
                            }),
                        ));
                    }
                    for (p, task) in tasks {
                        let engine = task
                            .await
                            .map_err(|e| RuntimeError::Restore(format!("partition {p}: {e}")))??;
                        self.engines.insert(p, engine);
                    }
                    let mut tpl = TopicPartitionList::new();
                    for &p in &parts {
                        tpl.add_partition_offset(
                            &self.config.settings.topics.repartition,
                            p,
                            Offset::Invalid,
                        )?;
                    }
                    if tpl.count() > 0 {
                        consumer.resume(&tpl)?;
                    }
                    self.metrics.set_restored(true);
                    // Timers that fell due while nobody owned the partition fire once, under their
                    // own event ids — but only after the records already waiting in the partition
                    // (up to RESTORE_GRACE for the first fetch), so those records apply first.
                    self.catching_up_until = Some(Instant::now() + RESTORE_GRACE);
                }
            }
        }
        Ok(())
    }

    async fn process_batch(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<(), ()> {
        let received = Instant::now();
        let now = self.clock.now();
        let mut events: Vec<(i32, Escalation)> = Vec::new();
        for m in batch {
            let p = m.partition();
            let Some(engine) = self.engines.get_mut(&p) else {
                continue;
            };
            let span = tracing::info_span!(
                "record",
                partition = p,
                offset = m.offset(),
                incident_id = tracing::field::Empty
            );
            let _enter = span.enter();
            let expect = match m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == SOURCE_HEADER))
                .and_then(|h| h.value)
            {
                Some(b"commands") => Expect::Command,
                _ => Expect::Alert,
            };
            let input = match decode(m.payload().unwrap_or(&[]), expect, 0) {
                Ok(i) => i,
                Err(e) => {
                    // The router validated it; this only happens across incompatible versions.
                    tracing::error!(error = %e, "undecodable record on the repartition topic skipped");
                    continue;
                }
            };
            // Timers due before this record fire first, up to just before the record's own time
            // (never past the wall clock): while catching up on a backlog, timers interleave with records as
            // they would have live, so a filing that waited in the topic still counts.
            engine.handle_timeout(input.time().before().min(now));
            drain(engine, p, &mut events);
            let command = match &input {
                Input::Command(c) => Some(c.command.clone()),
                Input::Alert(_) => None,
            };
            let before = events.len();
            engine.handle_from(input, Some(m.offset()));
            self.metrics.records_processed.inc();
            drain(engine, p, &mut events);
            if let Some((_, ev)) = events.get(before) {
                span.record("incident_id", ev.incident_id.as_str());
            }
            if let Some(name) = command {
                let rejected = events[before..]
                    .iter()
                    .any(|(_, e)| e.kind == EventType::CommandRejected);
                self.metrics.command(&name, !rejected);
            }
        }
        self.emit(events).await?;
        self.metrics
            .latency
            .observe(received.elapsed().as_secs_f64());
        Ok(())
    }

    async fn fire_timers(&mut self) -> Result<(), ()> {
        let now = self.clock.now();
        let mut events = Vec::new();
        for (&p, engine) in self.engines.iter_mut() {
            if engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
                drain(engine, p, &mut events);
            }
        }
        self.emit(events).await
    }

    /// Produces escalations and waits for the broker's acknowledgement. State follows at the next
    /// flush (`flush_state`), so the durable state never runs ahead of the escalations: if the
    /// process dies in between, the restored state still has the timers and the records are
    /// re-processed, so nothing is lost (events may repeat under the same ids).
    async fn emit(&mut self, events: Vec<(i32, Escalation)>) -> Result<(), ()> {
        let s = &self.config.settings;
        let mut out = Vec::new();
        for (_, ev) in &events {
            let payload = ev.to_json().into_bytes();
            for topic in topics_for(s, ev) {
                out.push(OutRecord {
                    topic: topic.to_string(),
                    partition: None,
                    key: ev.incident_id.as_bytes().to_vec(),
                    payload: Some(payload.clone()),
                    headers: vec![("klaxon-event-type", ev.kind.key().as_bytes().to_vec())],
                });
            }
        }
        let span = tracing::debug_span!("emit", events = events.len());
        if let Err(e) = send_all(&self.producer, &out, &self.shutdown)
            .instrument(span)
            .await
        {
            tracing::warn!(error = %e, "escalations not acknowledged; offsets stay uncommitted");
            return Err(());
        }
        for (_, ev) in &events {
            self.metrics
                .escalations
                .with_label_values(&[ev.kind.key()])
                .inc();
            tracing::info!(event_id = %ev.event_id, r#type = ev.kind.key(), incident_id = %ev.incident_id, level = ev.level.map(|l| l.key()).unwrap_or(""), "escalation");
        }
        Ok(())
    }

    /// Writes the state of every incident changed since the last flush, waits for the broker,
    /// and only then stores the input offsets processed so far. State may run ahead of the
    /// committed offsets, never behind: records delivered again after a crash find their
    /// incident's `applied_offset` and change nothing.
    async fn flush_state(&mut self, consumer: &StreamConsumer<KlaxonContext>) -> Result<(), ()> {
        let mut state = Vec::new();
        for (&p, engine) in self.engines.iter_mut() {
            for id in engine.take_dirty() {
                state.push(changelog::record(
                    &self.config,
                    p,
                    &id.to_string(),
                    engine.incident(&id),
                ));
            }
        }
        if let Err(e) = send_all(&self.producer, &state, &self.shutdown).await {
            tracing::warn!(error = %e, "state changes not acknowledged; offsets stay uncommitted");
            return Err(());
        }
        let topic = &self.config.settings.topics.repartition;
        for (p, off) in std::mem::take(&mut self.pending) {
            if self.engines.contains_key(&p) {
                if let Err(e) = consumer.store_offset(topic, p, off) {
                    tracing::debug!(error = %e, partition = p, "offset not stored");
                }
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    fn update_gauges(&self) {
        let now = self.clock.now();
        let total = stats_total(self.engines.values(), now);
        self.metrics.set_state(&total, now);
    }
}

fn drain(engine: &mut Engine, p: i32, out: &mut Vec<(i32, Escalation)>) {
    while let Some(ev) = engine.poll_output() {
        out.push((p, ev));
    }
}
