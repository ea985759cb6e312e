//! The state phases: restore through Kafka, and the memory phases that need no broker (scale,
//! own assets, dedup bound), each run in a fresh process.

use super::*;

/// Restore through Kafka, the way a partition assignment does: `n` incidents written to the
/// changelog's `state.partitions` partitions, then every partition restored at once (as an
/// instance taking over all of them does, `runtime::changelog::restore` per partition, barrier
/// included), timed end to end.
pub(super) async fn kafka_restore(
    config: &Arc<Config>,
    n: usize,
    progress: bool,
) -> Result<String, String> {
    use crate::runtime::kafka::{producer_config, KlaxonContext};
    use crate::runtime::sink::{send_all, OutRecord};
    let mut cfg = (**config).clone();
    cfg.settings.topics.changelog = format!("{}.restore-probe", cfg.settings.topics.changelog);
    let parts = cfg.settings.state.partitions.max(1);
    crate::runtime::kafka::ensure_topics(&cfg.settings)
        .await
        .map_err(|e| e.to_string())?;
    let cfg = Arc::new(cfg);
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let producer = crate::runtime::producer::AckingProducer::new(
        &producer_config(&cfg.settings),
        KlaxonContext::plain(metrics.clone()),
    )
    .map_err(|e| e.to_string())?;
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let e = reportable_engine(&cfg, n, "r", false, None);
    let b = bar(progress, n as u64, "changelog");
    let mut batch = Vec::with_capacity(10_000);
    let mut bytes = 0usize;
    for (i, inc) in e.incidents_sorted().into_iter().enumerate() {
        let p = (i % parts as usize) as i32;
        let r = crate::runtime::changelog::record(&cfg, p, &inc.id.to_string(), Some(inc));
        bytes += r.payload.as_ref().map_or(0, Vec::len);
        batch.push(r);
        if batch.len() == 10_000 {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(10_000));
            b.inc(full.len() as u64);
            send_all(&producer, full, &stop_rx)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let rest: Vec<OutRecord> = std::mem::take(&mut batch);
    send_all(&producer, rest, &stop_rx)
        .await
        .map_err(|e| e.to_string())?;
    b.finish_and_clear();
    drop(e);
    let t = Instant::now();
    let tasks: Vec<_> = (0..parts)
        .map(|p| {
            let (cfg, metrics, producer, stop_rx) = (
                cfg.clone(),
                metrics.clone(),
                producer.clone(),
                stop_rx.clone(),
            );
            tokio::spawn(async move {
                crate::runtime::changelog::restore(&cfg, &metrics, &producer, p, &stop_rx).await
            })
        })
        .collect();
    let mut got = 0;
    for task in tasks {
        let engine = task
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        got += engine.stats(crate::time::Timestamp(0)).incidents;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(format!(
        "restore through Kafka: {got} incidents ({:.0} MiB of changelog, lz4 on the wire) from {parts} partitions at once in {secs:.1} s = {:.0} incidents/s\n",
        bytes as f64 / 1048576.0,
        got as f64 / secs
    ))
}

/// An engine holding `n` open incidents of a CII operator, each reportable (with its timers).
/// With `own_assets`, each names an asset of its own (a host, as ECS's `host.name` gives).
pub(super) fn reportable_engine(
    config: &Config,
    n: usize,
    prefix: &str,
    own_assets: bool,
    progress: Option<&ProgressBar>,
) -> Engine {
    let mut e = Engine::from_config(config);
    for i in 0..n {
        let asset = if own_assets {
            format!(
                r#","asset":{{"id":"{prefix}-host-{i:08}","name":"web server {i:08}","kind":"other"}}"#
            )
        } else {
            String::new()
        };
        let line = format!(
            r#"{{"id":"{prefix}-{i}","timestamp":"2026-11-24T08:{:02}:{:02}+08:00","incident_key":"{prefix}-{i}","operator":"gd-grid"{asset},"impact":{{"personal_info_records":2000000}}}}"#,
            (i / 60) % 60,
            i % 60
        );
        if let Ok(input) = decode(line.as_bytes(), Expect::Alert, 0) {
            e.handle(input);
        }
        while e.poll_output().is_some() {}
        if let (Some(b), 0) = (progress, i % 10_000) {
            b.set_position(i as u64);
        }
    }
    e
}

pub(super) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The dedup set at its configured bound (`state.max_dedup_ids`, here `n`, in one engine): `n`
/// distinct alert ids (into 1,000 incidents) fill it, which gives the memory per id; `n` more
/// must evict, not grow.
pub fn dedup_bound(config: &Config, progress: bool) -> String {
    let mut e = Engine::from_config(config);
    let n = config.settings.state.max_dedup_ids;
    let b = bar(progress, 2 * n as u64, "dedup");
    let mut feed = |from: usize, to: usize| {
        for i in from..to {
            let line = format!(
                r#"{{"id":"dedup-{i:012}","timestamp":"2026-11-24T09:00:00+08:00","incident_key":"dedup-{}"}}"#,
                i % 1000
            );
            if let Ok(input) = decode(line.as_bytes(), Expect::Alert, 0) {
                e.handle(input);
            }
            while e.poll_output().is_some() {}
            if i % 10_000 == 0 {
                b.set_position(i as u64);
            }
        }
    };
    let before = rss_bytes();
    feed(0, n);
    let full = rss_bytes();
    feed(n, 2 * n);
    let after = rss_bytes();
    b.finish_and_clear();
    let held = e.stats(crate::time::Timestamp(0)).dedup_ids;
    format!(
        "dedup set bounded at {n}: {n} ids RSS +{:.0} MiB = {:.0} bytes per id; {n} more alerts: RSS +{:.0} MiB, {} ids evicted, {held} held\n",
        full.saturating_sub(before) as f64 / 1048576.0,
        full.saturating_sub(before) as f64 / n.max(1) as f64,
        after.saturating_sub(full) as f64 / 1048576.0,
        e.take_dedup_evicted(),
    )
}

/// The memory of `n` incidents that each name an asset of their own (one shared copy per distinct
/// asset, so here one per incident).
pub fn own_assets(config: &Config, n: usize, progress: bool) -> String {
    let before = rss_bytes();
    let b = bar(progress, n as u64, "assets");
    let e = reportable_engine(config, n, "a", true, Some(&b));
    b.finish_and_clear();
    let after = rss_bytes();
    format!(
        "  the same with an asset of its own per incident: RSS +{:.0} MiB = {:.0} bytes per incident ({} incidents)\n",
        after.saturating_sub(before) as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / n.max(1) as f64,
        e.stats(crate::time::Timestamp(0)).incidents
    )
}

/// N open, reportable incidents with running timers, in one engine: memory, cost of timer firing,
/// and the CPU side of a restore (decode N changelog records into a fresh engine).
pub fn scale(config: &Config, n: usize, progress: bool) -> String {
    let mut out = String::new();
    let before = rss_bytes();
    let b = bar(progress, n as u64, "scale");
    let t = Instant::now();
    let mut e = reportable_engine(config, n, "s", false, Some(&b));
    b.finish_and_clear();
    let build = t.elapsed();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / n.max(1) as f64;
    let stats = e.stats(crate::time::Timestamp(0));
    out.push_str(&format!(
        "scale: {n} open reportable incidents, {} timers: built in {:.1} s, RSS +{:.0} MiB = {per:.0} bytes per incident\n",
        stats.timers,
        build.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1048576.0
    ));
    // Fire the 30-min reminders of all of them (one timer each).
    let t = Instant::now();
    let due = crate::time::Timestamp::parse_rfc3339("2026-11-24T09:45:00+08:00")
        .unwrap_or(crate::time::Timestamp(0));
    let mut fired = 0usize;
    e.run_timers(due, |_| fired += 1);
    out.push_str(&format!(
        "  fired {fired} timers in {:.2} s ({:.0} ns per timer, incl. building the events)\n",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_nanos() as f64 / fired.max(1) as f64
    ));
    // Restore, CPU side: serialize every incident as the changelog holds it, then rebuild.
    let t = Instant::now();
    let records: Vec<Vec<u8>> = e
        .incidents_sorted()
        .into_iter()
        .filter_map(|i| serde_json::to_vec(i).ok())
        .collect();
    let ser = t.elapsed();
    let bytes: usize = records.iter().map(Vec::len).sum();
    drop(e);
    let t = Instant::now();
    let mut fresh = Engine::from_config(config);
    for r in &records {
        if let Ok(inc) = crate::runtime::changelog::incident_from_record(r) {
            fresh.restore(inc);
        }
    }
    out.push_str(&format!(
        "  changelog image {:.0} MiB ({} bytes per incident); serialize {:.1} s; restore into a fresh engine {:.1} s\n",
        bytes as f64 / 1048576.0,
        bytes / records.len().max(1),
        ser.as_secs_f64(),
        t.elapsed().as_secs_f64()
    ));
    out
}
