//! The state changelog (as Kafka Streams keeps one per state store): a compacted topic with one
//! record per incident, keyed by incident id, holding its full state; a tombstone when it leaves
//! the state. Partition `p` of the changelog belongs to partition `p` of the repartition topic.
//!
//! Restore reads partition `p` from the beginning up to a barrier record that the restoring
//! instance writes first, so it knows it has read to the end without trusting high watermarks
//! (which the local test broker reports wrongly).

use super::kafka::{base_config, KlaxonContext};
use super::producer::AckingProducer;
use super::sink::{send_all, OutRecord};
use super::RuntimeError;
use crate::engine::{Engine, EngineOptions, Incident};
use crate::settings::Config;
use crate::telemetry::Metrics;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const BARRIER_KEY: &str = "__klaxon_restore_barrier__";

/// The changelog record for one incident (or its tombstone when `inc` is `None`).
pub fn record(config: &Config, partition: i32, id: &str, inc: Option<&Incident>) -> OutRecord {
    OutRecord {
        topic: config.settings.topics.changelog.clone(),
        partition: Some(partition),
        key: id.as_bytes().to_vec(),
        payload: inc.map(|i| serde_json::to_vec(i).unwrap_or_default()),
        headers: Vec::new(),
    }
}

/// The incident a changelog record holds. The record is checked as UTF-8 once, with simdutf8,
/// and parsed as text: 16 % fewer instructions than serde_json's `from_slice`, which checks each
/// string on its own (callgrind, incidents of ten alerts).
pub fn incident_from_record(bytes: &[u8]) -> Result<Incident, String> {
    let text =
        crate::decode::utf8(bytes).map_err(|at| format!("not UTF-8 (invalid byte at {at})"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Restores partition `p`'s engine from the changelog.
pub async fn restore(
    config: &Arc<Config>,
    metrics: &Arc<Metrics>,
    producer: &AckingProducer<KlaxonContext>,
    p: i32,
    shutdown: &watch::Receiver<bool>,
) -> Result<Engine, RuntimeError> {
    let started = Instant::now();
    let s = &config.settings;
    let nonce = format!(
        "{}-{}-{}",
        std::process::id(),
        super::clock::wall_now().0,
        p
    );
    let barrier = OutRecord {
        topic: s.topics.changelog.clone(),
        partition: Some(p),
        key: BARRIER_KEY.as_bytes().to_vec(),
        payload: Some(nonce.clone().into_bytes()),
        headers: Vec::new(),
    };
    let mut cfg = base_config(s);
    cfg.set("group.id", format!("{}.restore", s.kafka.group_id));
    cfg.set("enable.auto.commit", "false");
    cfg.set("enable.partition.eof", "false");
    // Fetched as every backlog reader is, unless `kafka.properties` says otherwise: librdkafka's
    // 500 ms fetch wait would be the floor of every restore on brokers that hold an empty fetch
    // for all of it (the local test broker), and restores are on a restart's critical path; the
    // prefetch bound keeps six partitions restoring at once from holding 64 MiB each ahead.
    super::kafka::add_fetch_defaults(&mut cfg);
    // The reader is created and told the changelog's metadata while the barrier is on its way,
    // not after: a consumer assigned a partition of a topic it knows nothing of yet learns its
    // leader only at librdkafka's next metadata refresh, which made restoring an *empty*
    // changelog take 0.5–0.7 s per partition on the local broker (5–220 ms with the metadata
    // asked for first; docs/benchmarks.md). `fetch_metadata` blocks, hence the blocking task.
    let context = KlaxonContext::plain(metrics.clone());
    let topic = s.topics.changelog.clone();
    let reader = tokio::task::spawn_blocking(
        move || -> Result<StreamConsumer<KlaxonContext>, RuntimeError> {
            let reader: StreamConsumer<KlaxonContext> = cfg.create_with_context(context)?;
            if let Err(e) = reader.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
                // Not fatal: the assignment below finds the leader at the next refresh.
                tracing::debug!(error = %e, topic = %topic, "changelog metadata before restore");
            }
            Ok(reader)
        },
    );
    let acks = send_all(producer, vec![barrier], shutdown).await?;
    let barrier_offset = acks.first().copied().unwrap_or(-1);
    let reader = reader
        .await
        .map_err(|e| RuntimeError::Restore(format!("partition {p}: {e}")))??;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&s.topics.changelog, p, Offset::Beginning)?;
    reader.assign(&tpl)?;

    let mut latest: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if *shutdown.borrow() {
            return Err(RuntimeError::Restore(format!(
                "partition {p}: shutdown during restore"
            )));
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Restore(format!(
                "partition {p}: barrier not seen within 120 s"
            )));
        }
        let m = match tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, partition = p, "changelog read error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        let key = String::from_utf8_lossy(m.key().unwrap_or(&[])).into_owned();
        if key == BARRIER_KEY {
            if m.payload() == Some(nonce.as_bytes())
                || (barrier_offset >= 0 && m.offset() >= barrier_offset)
            {
                break;
            }
            continue;
        }
        latest.insert(key, m.payload().map(<[u8]>::to_vec));
    }
    let mut engine = Engine::new(
        Arc::new(config.ruleset.clone()),
        Arc::new(config.registry.clone()),
        EngineOptions::from_config(config).one_partition_of(config.settings.state.partitions),
    );
    engine.track_changes();
    let mut restored = 0usize;
    let mut keys: Vec<&String> = latest.keys().collect();
    keys.sort();
    for key in keys {
        let Some(Some(bytes)) = latest.get(key) else {
            continue;
        };
        match incident_from_record(bytes) {
            Ok(inc) => {
                engine.restore(inc);
                restored += 1;
            }
            Err(e) => {
                tracing::error!(partition = p, key = %key, error = %e, "unreadable changelog record skipped")
            }
        }
    }
    // The restore itself changes nothing that needs writing back.
    engine.take_dirty();
    // Remove the barrier so compaction can drop it.
    let tomb = OutRecord {
        topic: s.topics.changelog.clone(),
        partition: Some(p),
        key: BARRIER_KEY.as_bytes().to_vec(),
        payload: None,
        headers: Vec::new(),
    };
    // Sent, not waited for: nothing depends on it (a barrier left behind is skipped by every
    // later restore), and waiting for its round trip would delay the partition's first batch.
    drop(super::sink::send(producer, vec![tomb]).await);
    tracing::info!(
        partition = p,
        incidents = restored,
        records = latest.len(),
        ms = started.elapsed().as_millis() as u64,
        "partition state restored"
    );
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changelog_record_restores_every_recent_id_and_names_a_bad_one() {
        let mut e = crate::engine::Engine::from_config(&shipped_config());
        e.handle(
            crate::decode::decode(
                br#"{"id":"a-0","timestamp":"2026-11-24T08:00:00+08:00","incident_key":"k"}"#,
                crate::decode::Expect::Alert,
                0,
            )
            .expect("alert"),
        );
        let mut inc = e.incidents_sorted()[0].clone();
        inc.recent_ids = vec![0, 1, 10_000_000_000_000_000_000, u64::MAX.into(), u128::MAX];
        let record = serde_json::to_vec(&inc).expect("serializes");
        let back = incident_from_record(&record).expect("restores");
        assert_eq!(back, inc);

        let text = String::from_utf8(record).expect("UTF-8");
        let max = u128::MAX.to_string();
        for bad in [
            "-1",
            "1.5",
            "1e3",
            "340282366920938463463374607431768211456",
        ] {
            let err = incident_from_record(text.replacen(&max, bad, 1).as_bytes()).expect_err(bad);
            assert!(
                err.contains("recent_ids: not an unsigned 128-bit integer"),
                "{bad}: {err}"
            );
        }
    }

    fn shipped_config() -> Config {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        crate::settings::load(&dir).expect("config")
    }
}
