//! Reads the changelog of **every** partition and the escalations topic into the view, as a
//! Kafka Streams global table is built: partitions are assigned (no consumer group, nothing
//! committed), read from the beginning at every start, and followed from then on. The view is
//! rebuilt from the topics after a restart; the desk keeps no database.

use super::{Desk, StreamItem};
use crate::runtime::kafka::{base_config, KlaxonContext};
use futures_util::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the topics' partitions are looked up again (topics created after the desk started,
/// or the escalations topic growing).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// The most records applied under one lock of the view (what the consumer has already fetched).
const BATCH: usize = 512;

/// What a batch tells the live stream's clients, sent once the view's lock is released.
enum Announce {
    Change(super::view::Change),
    Escalation(Arc<str>),
}

/// Follows the topics until `shutdown` turns true.
pub async fn run(desk: Arc<Desk>, mut shutdown: watch::Receiver<bool>) {
    let s = &desk.config.settings;
    let mut cfg = base_config(s);
    // Required by librdkafka even for assigned partitions; nothing is ever committed under it.
    cfg.set("group.id", format!("{}.desk", s.kafka.group_id));
    cfg.set("enable.auto.commit", "false");
    cfg.set("enable.auto.offset.store", "false");
    cfg.set("auto.offset.reset", "earliest");
    cfg.set("enable.partition.eof", "false");
    // The stages' fetch settings, unless `kafka.properties` says otherwise: the local test
    // broker holds every fetch for the whole wait, so librdkafka's 500 ms default made a rebuild
    // wait on it, and its 1 s refetch backoff after a full prefetch queue did too (1 M records
    // took 31 s).
    crate::runtime::kafka::add_fetch_defaults(&mut cfg);
    let consumer: StreamConsumer<KlaxonContext> = match cfg
        .create_with_context(KlaxonContext::plain(desk.metrics.clone()))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "desk: cannot create the Kafka consumer; the view stays empty");
            return;
        }
    };
    let topics = [s.topics.changelog.clone(), s.topics.escalations.clone()];
    let mut assigned: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut last_discovery: Option<Instant> = None;
    let mut gauge = tokio::time::interval(Duration::from_millis(500));
    let started = Instant::now();
    let mut last_sweep = Instant::now();
    loop {
        if last_discovery.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY) {
            last_discovery = Some(Instant::now());
            discover(&consumer, &topics, &mut assigned);
        }
        let m = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = gauge.tick() => {
                if let Ok(mut v) = desk.view.write() {
                    if last_sweep.elapsed() >= Duration::from_secs(10) {
                        last_sweep = Instant::now();
                        v.sweep_orphans(started.elapsed().as_secs());
                    }
                    desk.metrics.desk_incidents.set(v.len() as i64);
                }
                continue;
            }
            m = tokio::time::timeout(Duration::from_secs(1), consumer.recv()) => m,
        };
        let first = match m {
            Err(_) => continue,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "desk: read error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        // What is already fetched is applied in one go, under one lock of the view: a rebuild
        // reads a million records, and needs no select, timer and lock for each.
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        while batch.len() < BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "desk: read error; retrying");
                    break;
                }
                None => break,
            }
        }
        let listened = desk.stream.receiver_count() > 0;
        let mut announce = Vec::new();
        {
            let mut view = match desk.view.write() {
                Ok(v) => v,
                // A panic elsewhere while holding the lock: keep the view going rather than
                // freeze it for the rest of the night.
                Err(poisoned) => poisoned.into_inner(),
            };
            for m in &batch {
                if m.topic() == topics[0] {
                    match view.apply_state(m.key().unwrap_or(&[]), m.payload()) {
                        Ok(super::view::Change::Nothing) => {}
                        Ok(change) => {
                            if listened {
                                announce.push(Announce::Change(change));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "desk: unreadable changelog record skipped")
                        }
                    }
                } else if let Some(bytes) = m.payload() {
                    match view.apply_event(bytes) {
                        Ok(_) => {
                            if let (true, Ok(text)) = (listened, std::str::from_utf8(bytes)) {
                                announce.push(Announce::Escalation(Arc::from(text)));
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "desk: unreadable escalation skipped")
                        }
                    }
                }
            }
        }
        for a in announce {
            match a {
                Announce::Change(super::view::Change::Incident(id)) => desk.announce_incident(&id),
                Announce::Change(super::view::Change::Removed(id)) => desk.announce(StreamItem {
                    event: "removed",
                    data: Arc::from(format!("{{\"id\":\"{id}\"}}")),
                }),
                Announce::Change(super::view::Change::Nothing) => {}
                Announce::Escalation(data) => desk.announce(StreamItem {
                    event: "escalation",
                    data,
                }),
            }
        }
    }
    tracing::info!("desk feed stopped");
}

/// Assigns partitions of `topics` not assigned yet, from the beginning.
fn discover(
    consumer: &StreamConsumer<KlaxonContext>,
    topics: &[String],
    assigned: &mut BTreeSet<(String, i32)>,
) {
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let Ok(md) = consumer.fetch_metadata(Some(t), Duration::from_secs(5)) else {
            continue;
        };
        for topic in md.topics() {
            if topic.error().is_some() {
                continue;
            }
            for p in topic.partitions() {
                if assigned.insert((t.clone(), p.id())) {
                    let _ = tpl.add_partition_offset(t, p.id(), Offset::Beginning);
                }
            }
        }
    }
    if tpl.count() > 0 {
        match consumer.incremental_assign(&tpl) {
            Ok(()) => tracing::info!(partitions = tpl.count(), "desk: reading partitions"),
            Err(e) => {
                tracing::warn!(error = %e, "desk: cannot assign partitions; retrying");
                for e in tpl.elements() {
                    assigned.remove(&(e.topic().to_string(), e.partition()));
                }
            }
        }
    }
}
