//! Stage two: owns partitions of the repartition topic, one engine per partition (its state
//! restored from the changelog on assignment), and drives the engines on the clock. For each
//! batch it sends the escalations; every `state.commit_interval`, and as soon as its input goes
//! quiet ([`super::commit_cadence`]), it writes the incidents changed since the last flush to the
//! changelog, a chunk at a time between batches. The acknowledgement pipeline sends that state
//! only once the escalations before it are acknowledged, and stores the input offsets the state
//! covers only once the state is acknowledged too; meanwhile the stage reads on. A crash anywhere
//! re-reads from the last commit against the last durable state: records already applied to an
//! incident are recognised by offset, the rest are applied, and events come out again only under
//! the same `event_id`s.

use super::changelog;
use super::clock::Clock;
use super::commit_cadence;
use super::kafka::{
    consumer_config, fatal_error, group_instance_id, producer_config, KlaxonContext, RebalanceEvent,
};
use super::keyed;
use super::producer::AckingProducer;
use super::router::{
    collect_batch, dead_letter, decode_admitted, forward, header_value, store_offsets, BATCH,
    PIPELINE_DEPTH, RECEIVED_HEADER, SOURCE_HEADER,
};
use super::routing::topics_for;
use super::sink::{AckPipeline, AfterAck, OutRecord, Step};
use super::RuntimeError;
use crate::decode::{decode, Expect};
use crate::engine::Engine;
use crate::engine::{input_route_token, stats_total, CommandOutcome, Handled};
use crate::model::escalation::EventType;
use crate::model::{Escalation, Input};
use crate::settings::Config;
use crate::telemetry::events::{
    AlertRerouted, CommandHandled, CommandRefused, DedupIdsEvicted, RepartitionRecordSkipped,
};
use crate::telemetry::metrics::Stage;
use crate::telemetry::Metrics;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

struct Processor {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
    producer: AckingProducer<KlaxonContext>,
    /// Escalations and state on their way to the broker; offsets are stored behind them.
    acks: AckPipeline,
    consumer: Arc<StreamConsumer<KlaxonContext>>,
    engines: BTreeMap<i32, Engine>,
    shutdown: watch::Receiver<bool>,
    /// After an assignment: wall-clock timers wait until the backlog is read (or this passes).
    catching_up_until: Option<Instant>,
    /// Highest offset processed per input (see [`Processor::input`]) and partition since the
    /// last state flush began.
    pending: BTreeMap<(u8, i32), i64>,
    /// `kafka.input_keyed`: the alerts topic is read here too (see [`super::keyed`]).
    keyed: bool,
    /// `klaxon_alerts_consumed_total` for the alerts topic, looked up once rather than by label
    /// for every record read directly.
    alerts_consumed: prometheus::IntCounter,
    /// Records a batch sends besides escalations: keyed alerts re-routed through the repartition
    /// topic, and undecodable ones dead-lettered. They go out with the batch's escalations, so
    /// the batch's offsets are stored only once they are acknowledged too.
    forward: Vec<OutRecord>,
    /// A state flush under way, written a chunk at a time between batches.
    flushing: Option<Flush>,
    last_flush: Instant,
    /// When the last batch was read: state is flushed early once the input goes quiet
    /// ([`commit_cadence`]).
    last_batch: Instant,
    /// How often state is flushed and offsets stored (`state.commit_interval`).
    commit_interval: Duration,
    /// When early dedup evictions were last logged (at most once per [`EVICTION_LOG_EVERY`]).
    evictions_logged: Option<Instant>,
    /// When escalations were last summarised in the log, and the counts by type then.
    summary_logged: (Instant, Vec<u64>),
    /// Whether the first assignment since start has been restored (and its timing logged).
    resumed: bool,
    /// Checks command signatures (`[[commands.keys]]`).
    verifier: crate::signing::Verifier,
}

/// The processor's inputs, as [`Processor::pending`] keys them.
const FROM_REPARTITION: u8 = 0;
const FROM_ALERTS: u8 = 1;

/// How often an info line sums up the escalations sent (each one alone is a debug line).
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The processor's suffix on the instance id (its `group.instance.id`).
pub const STAGE: &str = "processor";

/// Early dedup evictions go on while the rate stays high: one warning per this, with the count.
const EVICTION_LOG_EVERY: Duration = Duration::from_secs(600);

/// Events sent per step while timers catch up (and, inside a batch, whenever the timers due
/// before one record have made this many): a few hundred KiB of JSON in flight per step.
const EMIT_CHUNK: usize = 1024;

/// How long restored timers wait for the first fetch of their partition's backlog.
const RESTORE_GRACE: Duration = Duration::from_secs(2);

/// Incidents serialized per step of a state flush (a few microseconds each). Writing thousands
/// at once stalled the stream for tens of milliseconds once per commit interval.
const FLUSH_CHUNK: usize = 256;

/// A state flush under way: the incidents changed before it began, still to be written, and the
/// input offsets their state covers, stored once all of it is acknowledged.
struct Flush {
    todo: Vec<(i32, crate::engine::IncidentId)>,
    offsets: Vec<(String, i32, i64)>,
}

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
        lag_topics: inputs(s),
    };
    let group = format!("{}.processor", s.kafka.group_id);
    let mut cc = consumer_config(s, &group, STAGE);
    if s.kafka.input_keyed {
        // Partition p of the alerts topic and partition p of the repartition topic feed the same
        // engine, so one member must own both: the range assignor gives co-partitioned topics'
        // equal partitions to the same member (the sticky ones do not promise it).
        cc.set("partition.assignment.strategy", "range");
    }
    let consumer: Arc<StreamConsumer<KlaxonContext>> = Arc::new(cc.create_with_context(ctx)?);
    let instance = group_instance_id(s, STAGE);
    if s.kafka.input_keyed {
        check_keyed_topic(&consumer, s).await?;
    }
    let topics = inputs(s);
    consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
    let producer = AckingProducer::new(&producer_config(s), KlaxonContext::plain(metrics.clone()))?;
    let mut proc = Processor {
        config: config.clone(),
        metrics: metrics.clone(),
        clock,
        acks: AckPipeline::start(producer.clone(), shutdown.clone(), PIPELINE_DEPTH),
        producer,
        consumer: consumer.clone(),
        engines: BTreeMap::new(),
        shutdown: shutdown.clone(),
        catching_up_until: None,
        pending: BTreeMap::new(),
        keyed: s.kafka.input_keyed,
        alerts_consumed: metrics
            .alerts_consumed
            .with_label_values(&[&s.topics.alerts]),
        forward: Vec::new(),
        flushing: None,
        last_flush: Instant::now(),
        last_batch: Instant::now(),
        commit_interval: config.settings.commit_interval(),
        evictions_logged: None,
        summary_logged: (Instant::now(), escalation_counts(&metrics)),
        resumed: false,
        verifier: crate::signing::Verifier::from_settings(&config.settings),
    };
    tracing::info!(group = %group, group_instance_id = instance.as_deref().unwrap_or(""), topic = %s.topics.repartition, "processor started");
    let mut gauges = tokio::time::interval(Duration::from_millis(500));
    loop {
        proc.apply_rebalances(&mut rebalances, None).await?;
        let grace = proc
            .catching_up_until
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        let wait = proc
            .next_timer()
            .map(|t| proc.clock.until(t).max(grace))
            .unwrap_or(Duration::from_secs(3600));
        let quiet_flush = proc.quiet_flush_at();
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            m = consumer.recv() => {
                let mut batch = match collect_batch(&consumer, m, &metrics).await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => continue,
                    // Fenced out (or otherwise unusable): nothing more may be written or committed
                    // for partitions another member may own now.
                    Err(e) => {
                        let e = fatal_error(consumer.client(), &group, instance.as_deref(), &e);
                        tracing::error!(error = %e, "processor stopped");
                        return Err(e);
                    }
                };
                proc.last_batch = Instant::now();
                // A short batch means the backlog is read: from here timers follow the wall clock.
                let caught_up = batch.len() < BATCH;
                // Revocations noticed while collecting the batch: drop those partitions first, so
                // no state is written for a partition this instance no longer owns.
                proc.apply_rebalances(&mut rebalances, None).await?;
                batch.retain(|m| proc.engines.contains_key(&m.partition()));
                let Ok(done) = proc.process_batch(&batch).await else {
                    break;
                };
                for m in &batch[..done] {
                    let e = proc
                        .pending
                        .entry((proc.input(m), m.partition()))
                        .or_insert(m.offset());
                    *e = (*e).max(m.offset());
                }
                if done < batch.len() || proc.flush_step(FLUSH_CHUNK).await.is_err() {
                    break;
                }
                if caught_up {
                    proc.catching_up_until = None;
                    if proc.fire_timers().await.is_err() {
                        break;
                    }
                }
            }
            // An assignment is restored at once, not at the next gauge tick: it is on the restart's
            // critical path. No record is read meanwhile (this loop is not polling the consumer),
            // so none is applied before its partition's state.
            Some(ev) = rebalances.recv() => {
                proc.apply_rebalances(&mut rebalances, Some(ev)).await?;
            }
            // Before the timers: while a catch-up keeps the timer branch ready, gauges still move.
            _ = gauges.tick() => {
                proc.update_gauges();
                if proc.flush_step(FLUSH_CHUNK).await.is_err() {
                    break;
                }
            }
            // The input went quiet after records were read: make them durable now.
            _ = tokio::time::sleep_until(quiet_flush.unwrap_or(proc.last_flush).into()), if quiet_flush.is_some() => {
                proc.begin_flush();
                if proc.flush_step(FLUSH_CHUNK).await.is_err() {
                    break;
                }
            }
            // One bounded round of due timers; while more are due the wait is zero and the loop
            // comes back here, after the shutdown check and any records fetched meanwhile.
            _ = tokio::time::sleep(wait) => {
                proc.catching_up_until = None;
                if proc.fire_timers().await.is_err() || proc.flush_step(FLUSH_CHUNK).await.is_err() {
                    break;
                }
            }
            // Between batches, a flush under way goes on a chunk at a time.
            _ = std::future::ready(()), if proc.flushing.is_some() => {
                if proc.flush_step(FLUSH_CHUNK).await.is_err() {
                    break;
                }
            }
        }
    }
    // Shutdown: escalations and state acknowledged first, then the offsets they cover.
    let flushed = proc.flush_all().await;
    match (flushed, proc.acks.finish().await) {
        (Ok(()), Ok(())) => {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "final commit");
            }
        }
        _ => tracing::warn!("state not acknowledged at shutdown; offsets stay uncommitted"),
    }
    tracing::info!("processor stopped");
    Ok(())
}

impl Processor {
    fn next_timer(&self) -> Option<crate::time::Timestamp> {
        self.engines.values().filter_map(Engine::poll_timeout).min()
    }

    /// Applies `first` (if any) and every assignment change waiting in `rx`.
    async fn apply_rebalances(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<RebalanceEvent>,
        first: Option<RebalanceEvent>,
    ) -> Result<(), RuntimeError> {
        let mut next = first.or_else(|| rx.try_recv().ok());
        while let Some(ev) = next.take() {
            next = rx.try_recv().ok();
            match ev {
                RebalanceEvent::Revoked(parts) => {
                    for p in parts {
                        self.pending.retain(|&(_, q), _| q != p);
                        // Nothing more of a flush under way may be written or committed for it,
                        // even if the partition comes back before the flush ends.
                        if let Some(f) = self.flushing.as_mut() {
                            f.todo.retain(|(q, _)| *q != p);
                            f.offsets.retain(|(_, q, _)| *q != p);
                        }
                        if self.engines.remove(&p).is_some() {
                            tracing::info!(partition = p, "partition state dropped");
                        }
                    }
                }
                // The new partitions are not paused while they restore: nothing reads them until
                // this returns, and librdkafka's bounded prefetch fills meanwhile, so the first
                // batch is waiting when the restore ends. Pausing them had cost up to a second:
                // resuming an already-fetchable partition does not wake librdkafka's broker
                // thread, which then idles up to its 1 s block before fetching (docs/benchmarks.md).
                RebalanceEvent::Assigned(parts, assigned_at) => {
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
                    self.metrics.set_restored(true);
                    if !self.resumed {
                        // The restart's timing (docs/spec.md §8: within 15 s on the shipped defaults).
                        self.resumed = true;
                        let start = super::started();
                        tracing::info!(
                            partitions = ?parts,
                            assigned_s = assigned_at.saturating_duration_since(start).as_secs_f64(),
                            restored_s = start.elapsed().as_secs_f64(),
                            "resumed: start → partitions assigned → state restored"
                        );
                    } else {
                        tracing::info!(
                            partitions = ?parts,
                            restore_s = assigned_at.elapsed().as_secs_f64(),
                            "assigned partitions restored"
                        );
                    }
                    // Timers that fell due while nobody owned the partition fire once, under their
                    // own event ids — but only after the records already waiting in the partition
                    // (up to RESTORE_GRACE for the first fetch), so those records apply first.
                    self.catching_up_until = Some(Instant::now() + RESTORE_GRACE);
                }
            }
        }
        Ok(())
    }

    /// Which input a record came from.
    fn input(&self, m: &BorrowedMessage<'_>) -> u8 {
        if self.keyed && m.topic() == self.config.settings.topics.alerts {
            FROM_ALERTS
        } else {
            FROM_REPARTITION
        }
    }

    /// A record of the keyed alerts topic, decoded once (through the mappings, as the router
    /// would): the alert to apply here, or `None` when it was dead-lettered or re-routed because
    /// its key or partition is not the one computed from it (see [`super::keyed`]).
    fn direct_input<'m>(
        &mut self,
        m: &'m BorrowedMessage<'_>,
        window: &crate::admission::Window,
    ) -> Option<Input<'m>> {
        let config = &self.config;
        let s = &config.settings;
        self.alerts_consumed.inc();
        match decode_admitted(config, window, m, Expect::Alert) {
            Err(e) => {
                self.forward.push(dead_letter(config, &self.metrics, m, &e));
                None
            }
            Ok(decoded) => {
                let token =
                    input_route_token(&decoded.input, &config.registry, &s.correlation.group_by);
                if keyed::is_direct(m.key(), m.partition(), token, s.state.partitions) {
                    return Some(decoded.input);
                }
                AlertRerouted {
                    partition: m.partition(),
                    offset: m.offset(),
                }
                .emit(&self.metrics);
                self.forward
                    .push(forward(config, m, Expect::Alert, decoded, token));
                None
            }
        }
    }

    /// A record of the repartition topic (the router validated it).
    fn repartitioned_input<'m>(&self, m: &'m BorrowedMessage<'_>) -> Option<Input<'m>> {
        let expect = match header_value(m, SOURCE_HEADER) {
            Some(b"commands") => Expect::Command,
            _ => Expect::Alert,
        };
        match decode(m.payload().unwrap_or(&[]), expect, 0) {
            Ok(i) => Some(i),
            Err(e) => {
                RepartitionRecordSkipped {
                    partition: m.partition(),
                    offset: m.offset(),
                    error: &e,
                }
                .emit();
                None
            }
        }
    }

    /// Applies a batch; returns how many of its records were applied (all of them, unless
    /// shutdown was asked for while the timers due before one were still being caught up: the
    /// rest are read again after the restart).
    async fn process_batch(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<usize, ()> {
        let received = Instant::now();
        let now = self.clock.now();
        self.metrics
            .batch_taken(Stage::Processor, super::router::oldest(batch));
        let mut events: Vec<(i32, Escalation)> = Vec::new();
        let window = self.config.settings.event_window(now);
        for (i, m) in batch.iter().enumerate() {
            let p = m.partition();
            if !self.engines.contains_key(&p) {
                continue;
            }
            let direct = self.input(m) == FROM_ALERTS;
            let (mut input, offset) = if direct {
                match self.direct_input(m, &window) {
                    Some(input) => (input, Some(m.offset())),
                    None => continue,
                }
            } else {
                match self.repartitioned_input(m) {
                    // Offsets of two topics cannot be compared: with keyed input, the engine
                    // recognises re-delivered commands and re-routed alerts by their ids.
                    Some(input) => (input, (!self.keyed).then(|| m.offset())),
                    None => continue,
                }
            };
            // Timers due before this record fire first, up to just before the record's own time
            // (never past the wall clock): while catching up on a backlog, timers interleave with
            // records as they would have live, so a filing that waited in the topic still counts.
            // In bounded steps: however many fall due, their events leave a chunk at a time.
            let limit = input.time().before().min(now);
            while let Some(engine) = self.engines.get_mut(&p) {
                let more = engine.handle_timeout(limit);
                drain(engine, p, &mut events);
                if events.len() >= EMIT_CHUNK {
                    self.emit(std::mem::take(&mut events), None).await?;
                    self.progress();
                }
                if !more {
                    break;
                }
                if *self.shutdown.borrow() {
                    self.emit(events, None).await?;
                    return Ok(i);
                }
            }
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
            if let Input::Command(c) = &mut input {
                c.received_at = header_value(m, RECEIVED_HEADER)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .or_else(|| m.timestamp().to_millis())
                    .map(crate::time::Timestamp);
                let verdict = self.verifier.verify(
                    m.payload().unwrap_or(&[]),
                    header_value(m, crate::signing::HEADER),
                    c.by.as_deref(),
                );
                match verdict {
                    Ok(key) => {
                        c.via = via(
                            c.via.take(),
                            key.as_deref(),
                            self.config.settings.desk.signing_key_id.as_deref(),
                        );
                        if c.by.is_none() {
                            c.by = key;
                        }
                    }
                    Err(refusal) => {
                        // It changes nothing: no incident is touched.
                        let before = events.len();
                        engine.refuse(c, refusal.code());
                        drain(engine, p, &mut events);
                        if let Some((_, ev)) = events.get(before) {
                            span.record("incident_id", ev.incident_id.as_str());
                        }
                        CommandRefused {
                            command: &c.command,
                            by: c.by.as_deref().unwrap_or(""),
                            incident_id: c.incident_id.as_deref().unwrap_or(""),
                            reason: refusal.code(),
                        }
                        .emit(&self.metrics);
                        continue;
                    }
                }
            }
            let command = match &input {
                Input::Command(c) => Some((
                    c.command.clone(),
                    c.incident_id.clone().unwrap_or_default(),
                    c.problem().map(|p| p.code),
                )),
                Input::Alert(_) => None,
            };
            let before = events.len();
            let handled = engine.handle_from(input, offset);
            self.metrics.records_processed.inc();
            drain(engine, p, &mut events);
            if let Some((_, ev)) = events.get(before) {
                span.record("incident_id", ev.incident_id.as_str());
            }
            if let (Some((name, incident_id, malformed)), Handled::Command(outcome)) =
                (command, handled)
            {
                let rejected = match &outcome {
                    CommandOutcome::Rejected(reason) => {
                        Some((incident_id.as_str(), reason.as_str()))
                    }
                    CommandOutcome::Applied | CommandOutcome::Redelivered => None,
                };
                CommandHandled {
                    command: &name,
                    malformed,
                    rejected,
                }
                .emit(&self.metrics);
            }
        }
        self.emit(events, Some(received)).await?;
        self.metrics.batch_done(Stage::Processor);
        Ok(batch.len())
    }

    /// One bounded round of the timers due on the clock: at most about [`EMIT_CHUNK`] events,
    /// sent before it returns. The loop calls it again (its sleep is then zero) while timers
    /// are still due, between fetches, state flushes and the shutdown check, so a catch-up of
    /// millions of events runs in flat memory and stops within a round of SIGTERM.
    async fn fire_timers(&mut self) -> Result<(), ()> {
        let now = self.clock.now();
        let mut events = Vec::new();
        for (&p, engine) in self.engines.iter_mut() {
            while events.len() < EMIT_CHUNK && engine.due(now) {
                engine.handle_timeout(now);
                drain(engine, p, &mut events);
            }
        }
        self.emit(events, None).await?;
        self.progress();
        Ok(())
    }

    /// Sends escalations; the pipeline counts them once acknowledged. State follows at the next
    /// flush (`flush_step`), behind them in the pipeline, so the durable state never runs ahead
    /// of the escalations: if the process dies in between, the restored state still has the
    /// timers and the records are re-processed, so nothing is lost (events may repeat under the
    /// same ids). `received`: when the records that caused them arrived, for the latency metric.
    async fn emit(
        &mut self,
        events: Vec<(i32, Escalation)>,
        received: Option<Instant>,
    ) -> Result<(), ()> {
        if events.is_empty() && received.is_none() && self.forward.is_empty() {
            return Ok(());
        }
        let s = &self.config.settings;
        let mut out = std::mem::take(&mut self.forward);
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
        let Ok(flight) = self.acks.send(&self.producer, out).await else {
            tracing::warn!("escalations not acknowledged; offsets stay uncommitted");
            return Err(());
        };
        let metrics = self.metrics.clone();
        // What the acknowledgement needs, not the events: a catch-up keeps many steps in flight.
        // One line per escalation is debug (a backlog makes millions); `update_gauges` logs an
        // info summary of what was sent.
        let kinds: Vec<EventType> = events.iter().map(|(_, ev)| ev.kind).collect();
        // Grading events with unassessed rows (few) are kept whole for their metric.
        let graded: Vec<Escalation> = events
            .iter()
            .filter(|(_, ev)| !ev.unassessed.is_empty())
            .map(|(_, ev)| ev.clone())
            .collect();
        let lines: Vec<(String, EventType, String, &'static str)> =
            if tracing::enabled!(tracing::Level::DEBUG) {
                events
                    .into_iter()
                    .map(|(_, ev)| {
                        let level = ev.level.map_or("", |l| l.key());
                        (ev.event_id, ev.kind, ev.incident_id, level)
                    })
                    .collect()
            } else {
                Vec::new()
            };
        let after = Box::new(move |acknowledged: Instant| {
            if let Some(t) = received {
                metrics
                    .latency
                    .observe(acknowledged.saturating_duration_since(t).as_secs_f64());
            }
            for kind in kinds {
                metrics.escalations.with_label_values(&[kind.key()]).inc();
            }
            for ev in &graded {
                metrics.grading_event(ev);
            }
            for (event_id, kind, incident_id, level) in lines {
                tracing::debug!(%event_id, r#type = kind.key(), %incident_id, level, "escalation");
            }
        });
        if self.acks.push(Step::Sent(flight, after)).await.is_err() {
            tracing::warn!("escalations not acknowledged; offsets stay uncommitted");
            return Err(());
        }
        Ok(())
    }

    /// Advances the state flush: begins one when `state.commit_interval` has passed since the
    /// last, then queues the next `chunk` changed incidents behind the escalations already sent,
    /// and after the last chunk the input offsets processed before the flush began. State may
    /// run ahead of the committed offsets, never behind: records delivered again after a crash
    /// find their incident's `applied_seq` and change nothing.
    async fn flush_step(&mut self, chunk: usize) -> Result<(), ()> {
        if self.flushing.is_none() {
            if self.last_flush.elapsed() < self.commit_interval {
                return Ok(());
            }
            self.begin_flush();
        }
        let Some(flush) = self.flushing.as_mut() else {
            return Ok(());
        };
        let from = flush.todo.len().saturating_sub(chunk);
        let mut state = Vec::with_capacity(flush.todo.len() - from);
        for (p, id) in flush.todo.drain(from..) {
            // A partition revoked meanwhile: its new owner has the state.
            if let Some(engine) = self.engines.get(&p) {
                state.push(changelog::record(
                    &self.config,
                    p,
                    &id.to_string(),
                    engine.incident(&id),
                ));
            }
        }
        let after: AfterAck = if flush.todo.is_empty() {
            let offsets: Vec<(String, i32, i64)> = std::mem::take(&mut flush.offsets)
                .into_iter()
                .filter(|(_, p, _)| self.engines.contains_key(p))
                .collect();
            self.flushing = None;
            let consumer = self.consumer.clone();
            // Committed at once, not at the next auto-commit tick (up to a second later): the
            // offsets are durable only once committed, and a restart re-reads from there.
            Box::new(move |_| {
                store_offsets(&consumer, &offsets);
                if !offsets.is_empty() {
                    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
                        tracing::debug!(error = %e, "commit after a state flush");
                    }
                }
            })
        } else {
            Box::new(|_| {})
        };
        if self.acks.push(Step::SendAfter(state, after)).await.is_err() {
            tracing::warn!("state changes not acknowledged; offsets stay uncommitted");
            return Err(());
        }
        Ok(())
    }

    /// When to flush early because the input went quiet ([`commit_cadence`]): only with records
    /// read since the last flush began and none under way.
    fn quiet_flush_at(&self) -> Option<Instant> {
        (self.flushing.is_none() && !self.pending.is_empty()).then(|| {
            commit_cadence::early_commit_at(self.last_batch, self.last_flush, self.commit_interval)
        })
    }

    /// Takes the changed incidents and the offsets processed so far into a new flush.
    fn begin_flush(&mut self) {
        let mut todo = Vec::new();
        for (&p, engine) in self.engines.iter_mut() {
            todo.extend(engine.take_dirty().into_iter().map(|id| (p, id)));
        }
        let t = &self.config.settings.topics;
        let offsets = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((from, p), off)| {
                let topic = if from == FROM_ALERTS {
                    &t.alerts
                } else {
                    &t.repartition
                };
                (topic.clone(), p, off)
            })
            .collect();
        self.flushing = Some(Flush { todo, offsets });
        self.last_flush = Instant::now();
    }

    /// Finishes the flush under way and flushes everything changed since (at shutdown).
    async fn flush_all(&mut self) -> Result<(), ()> {
        self.flush_step(usize::MAX).await?;
        self.begin_flush();
        self.flush_step(usize::MAX).await
    }

    /// Notes that the loop moved: records applied, or a round of timers sent (readiness).
    fn progress(&mut self) {
        self.metrics.progress(Stage::Processor);
    }

    fn update_gauges(&mut self) {
        crate::telemetry::ratelimit::flush_all();
        if self.summary_logged.0.elapsed() >= SUMMARY_EVERY {
            let counts = escalation_counts(&self.metrics);
            let sent: Vec<String> = EventType::ALL
                .iter()
                .zip(counts.iter().zip(&self.summary_logged.1))
                .filter(|(_, (now, then))| now > then)
                .map(|(t, (now, then))| format!("{}={}", t.key(), now - then))
                .collect();
            if !sent.is_empty() {
                tracing::info!(
                    over_seconds = self.summary_logged.0.elapsed().as_secs(),
                    sent = %sent.join(" "),
                    "escalations sent"
                );
            }
            self.summary_logged = (Instant::now(), counts);
        }
        let now = self.clock.now();
        let total = stats_total(self.engines.values(), now);
        self.metrics.set_state(&total, now);
        let evicted: u64 = self
            .engines
            .values_mut()
            .map(Engine::take_dedup_evicted)
            .sum();
        if evicted > 0 {
            let log = self
                .evictions_logged
                .is_none_or(|t| t.elapsed() >= EVICTION_LOG_EVERY);
            if log {
                self.evictions_logged = Some(Instant::now());
            }
            DedupIdsEvicted {
                count: evicted,
                max_dedup_ids: self.config.settings.state.max_dedup_ids,
                log,
            }
            .emit(&self.metrics);
        }
    }
}

/// The escalations acknowledged so far, by type (in `EventType::ALL` order).
fn escalation_counts(metrics: &Metrics) -> Vec<u64> {
    EventType::ALL
        .iter()
        .map(|t| metrics.escalations.with_label_values(&[t.key()]).get())
        .collect()
}

/// The `via` a command's events carry: what the desk wrote (`desk`, `ctl`) when the desk's own
/// key signed it, else the signing key's id; `unsigned` when signatures are not required and
/// there was none.
fn via(claimed: Option<String>, key: Option<&str>, desk_key: Option<&str>) -> Option<String> {
    match (claimed, key) {
        (Some(v), Some(k)) if Some(k) == desk_key && (v == "desk" || v == "ctl") => Some(v),
        (_, Some(k)) => Some(k.to_string()),
        (_, None) => Some("unsigned".to_string()),
    }
}

fn drain(engine: &mut Engine, p: i32, out: &mut Vec<(i32, Escalation)>) {
    while let Some(ev) = engine.poll_output() {
        out.push((p, ev));
    }
}

/// The topics the processor reads: the repartition topic, and with `kafka.input_keyed` the
/// alerts topic too.
fn inputs(s: &crate::settings::Settings) -> Vec<String> {
    let mut v = vec![s.topics.repartition.clone()];
    if s.kafka.input_keyed {
        v.push(s.topics.alerts.clone());
    }
    v
}

/// With `kafka.input_keyed`, the alerts topic must be partitioned as the repartition topic is
/// (`state.partitions` partitions), or an incident's alerts and its commands would meet in
/// different engines: refuse to start rather than split incidents.
async fn check_keyed_topic(
    consumer: &Arc<StreamConsumer<KlaxonContext>>,
    s: &crate::settings::Settings,
) -> Result<(), RuntimeError> {
    let (consumer, topic) = (consumer.clone(), s.topics.alerts.clone());
    let found = tokio::task::spawn_blocking(move || {
        let md = consumer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        Ok::<_, rdkafka::error::KafkaError>(
            md.topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len()),
        )
    })
    .await
    .map_err(|e| RuntimeError::Join(e.to_string()))??;
    match found {
        Some(n) if n == s.state.partitions as usize => Ok(()),
        Some(n) => Err(RuntimeError::Keyed(format!(
            "topic {:?} has {n} partitions but state.partitions is {}: keyed input is read \
             partition by partition into the engines, so the two must be equal (or set \
             kafka.input_keyed = false)",
            s.topics.alerts, s.state.partitions
        ))),
        None => Err(RuntimeError::Keyed(format!(
            "topic {:?} does not exist (or its metadata could not be read)",
            s.topics.alerts
        ))),
    }
}
