//! Reads the changelog of **every** partition and the escalations topic into the view, as a
//! Kafka Streams global table is built: partitions are assigned (no consumer group, nothing
//! committed), read from the beginning at every start, and followed from then on. The view is
//! rebuilt from the topics after a restart; the desk keeps no database.

use super::{Desk, StreamItem};
use crate::runtime::kafka::{base_config, KlaxonContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the topics' partitions are looked up again (topics created after the desk started,
/// or the escalations topic growing).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

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
    if cfg.get("queued.max.messages.kbytes").is_none() {
        cfg.set(
            "queued.max.messages.kbytes",
            crate::runtime::kafka::PREFETCH_KBYTES,
        );
    }
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
        let m = match m {
            Err(_) => continue,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "desk: read error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        if m.topic() == topics[0] {
            let change = desk
                .view
                .write()
                .map_err(|_| "poisoned".to_string())
                .and_then(|mut v| v.apply_state(m.key().unwrap_or(&[]), m.payload()));
            match change {
                Ok(super::view::Change::Incident(id)) => desk.announce_incident(&id),
                Ok(super::view::Change::Removed(id)) => desk.announce(StreamItem {
                    event: "removed",
                    data: Arc::from(format!("{{\"id\":\"{id}\"}}")),
                }),
                Ok(super::view::Change::Nothing) => {}
                Err(e) => {
                    tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "desk: unreadable changelog record skipped")
                }
            }
        } else if let Some(bytes) = m.payload() {
            let applied = desk
                .view
                .write()
                .map_err(|_| "poisoned".to_string())
                .and_then(|mut v| v.apply_event(bytes));
            match applied {
                Ok(_) => {
                    if let Ok(text) = std::str::from_utf8(bytes) {
                        desk.announce(StreamItem {
                            event: "escalation",
                            data: Arc::from(text),
                        });
                    }
                }
                Err(e) => tracing::debug!(error = %e, "desk: unreadable escalation skipped"),
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
