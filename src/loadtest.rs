//! `klaxon load-test`: the end-to-end load harness. Everything is measured in one run on one
//! broker, so ratios mean something on a noisy machine:
//!
//! 1. **passthrough** — a raw rdkafka consume → produce loop with the same delivery guarantees
//!    (idempotent, acks=all, offsets stored after the acks): the baseline;
//! 2. **klaxon** — the real service (`runtime::run`) on the same backlog of alerts;
//! 3. **latency** — alerts paced at half of Klaxon's peak rate, alert → `incident.opened` time;
//! 4. **timers** — reminders due a few seconds ahead: how late they arrive;
//! 5. **scale** (no broker) — N open incidents with running timers: memory, timer cost, restore.

use crate::decode::{decode, Expect};
use crate::engine::Engine;
use crate::runtime::clock::Clock;
use crate::settings::Config;
use crate::telemetry::Metrics;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct LoadOptions {
    pub alerts: usize,
    /// Incidents written to a changelog partition and restored through Kafka.
    pub restore_incidents: usize,
    pub keys: usize,
    pub latency_alerts: usize,
    pub scale_incidents: usize,
    pub progress: bool,
}

fn bar(show: bool, len: u64, msg: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(msg.to_string());
    b
}

/// A realistic ~600-byte alert; every 7th repeats the previous id, every 50th crosses 较大.
pub fn alert_line(i: usize, keys: usize, ts: &str) -> String {
    let id = if i % 7 == 6 { i - 1 } else { i };
    let key = i % keys.max(1);
    let records = if i % 50 == 0 {
        1_200_000
    } else {
        1_000 + (i % 997) as u64
    };
    format!(
        concat!(
            r#"{{"id":"load-{:09}","timestamp":"{}","source":"suricata","#,
            r#""title":"ET EXPLOIT Possible data exfiltration via DNS tunnelling (long TXT queries)","category":"data_leak","#,
            r#""incident_key":"load-key-{}","operator":"hz-ecom","asset":{{"id":"asset-{}","name":"Member centre API gateway","kind":"other"}},"#,
            r#""impact":{{"personal_info_records":{},"economic_loss_cny":{},"affected_population":{}}},"#,
            r#""src_ip":"203.0.113.{}","dest_ip":"198.51.100.{}","signature_id":2027865,"rev":4,"severity":2,"#,
            r#""flow_id":{},"app_proto":"dns","host":"sensor-{:02}.soc.example.cn"}}"#
        ),
        id,
        ts,
        key,
        key % 100,
        records,
        (i % 1000) * 10,
        (i % 5000) * 3,
        i % 250,
        i % 250,
        1_000_000_000u64 + i as u64,
        i % 32
    )
}

fn now_rfc3339(offset_s: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(offset_s);
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix()))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}
use chrono::Offset;

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

async fn produce_all(
    brokers: &str,
    topic: &str,
    lines: &[String],
    show: bool,
) -> Result<(), String> {
    let p: FutureProducer = client(brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| e.to_string())?;
    let b = bar(show, lines.len() as u64, "produce");
    let mut futs = Vec::with_capacity(4096);
    for l in lines {
        loop {
            match p.send_result(FutureRecord::<(), _>::to(topic).payload(l.as_bytes())) {
                Ok(f) => {
                    futs.push(f);
                    break;
                }
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        if futs.len() >= 4096 {
            for f in futs.drain(..) {
                let _ = f.await;
            }
        }
        b.inc(1);
    }
    for f in futs {
        let _ = f.await;
    }
    let _ = p.flush(Duration::from_secs(30));
    b.finish_and_clear();
    Ok(())
}

/// The baseline: consume `n` records from `input` and produce each to `output`, idempotent with
/// acks=all, storing offsets after the acks. Returns records per second.
async fn passthrough(
    brokers: &str,
    input: &str,
    output: &str,
    group: &str,
    lines: &[String],
    show: bool,
) -> Result<f64, String> {
    let n = lines.len();
    let c: StreamConsumer = client(brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .map_err(|e| e.to_string())?;
    c.subscribe(&[input]).map_err(|e| e.to_string())?;
    let p: FutureProducer = client(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .map_err(|e| e.to_string())?;
    // Joined and assigned first; then the backlog arrives while it runs (as for Klaxon).
    while c.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        let _ = tokio::time::timeout(Duration::from_millis(100), c.recv()).await;
    }
    let feeder = {
        let (brokers, input, lines) = (brokers.to_string(), input.to_string(), lines.to_vec());
        tokio::spawn(async move { produce_all(&brokers, &input, &lines, false).await })
    };
    let b = bar(show, n as u64, "passthrough");
    let mut done = 0usize;
    let mut started = None;
    while done < n {
        let first = c.recv().await.map_err(|e| e.to_string())?;
        started.get_or_insert_with(Instant::now);
        let mut batch = vec![first];
        while batch.len() < 512 {
            match tokio::time::timeout(Duration::ZERO, c.recv()).await {
                Ok(Ok(m)) => batch.push(m),
                _ => break,
            }
        }
        let mut futs = Vec::with_capacity(batch.len());
        for m in &batch {
            let rec = FutureRecord::<[u8], [u8]>::to(output).payload(m.payload().unwrap_or(&[]));
            loop {
                match p.send_result(
                    FutureRecord::<[u8], [u8]>::to(output).payload(rec.payload.unwrap_or(&[])),
                ) {
                    Ok(f) => {
                        futs.push(f);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }
        for f in futs {
            let _ = f.await;
        }
        for m in &batch {
            let _ = c.store_offset_from_message(m);
        }
        done += batch.len();
        b.inc(batch.len() as u64);
    }
    b.finish_and_clear();
    let _ = feeder.await;
    let secs = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
    Ok(n as f64 / secs)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs every phase and returns the report as text.
pub async fn run(mut config: Config, opts: LoadOptions) -> Result<String, String> {
    let prefix = format!("klaxon-load-{}", crate::runtime::clock::wall_now().0);
    let brokers = config.settings.kafka.brokers.clone();
    config.settings = config.settings.isolated(&prefix);
    let mut report = String::new();
    report.push_str(&format!(
        "broker {brokers}; {} alerts, {} correlation keys, state.partitions {}\n",
        opts.alerts, opts.keys, config.settings.state.partitions
    ));

    // Same backlog for both contenders, dated now.
    let ts = now_rfc3339(0);
    let lines: Vec<String> = (0..opts.alerts)
        .map(|i| alert_line(i, opts.keys, &ts))
        .collect();
    let avg = lines.iter().map(String::len).sum::<usize>() / lines.len().max(1);
    report.push_str(&format!("alert size {avg} bytes on average\n"));
    let pt_in = format!("{prefix}.pt.in");
    let pt_out = format!("{prefix}.pt.out");
    crate::runtime::kafka::ensure_topics(&config.settings)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut pt = config.settings.clone();
        pt.topics.alerts = pt_in.clone();
        pt.topics.commands = pt_out.clone();
        crate::runtime::kafka::ensure_topics(&pt)
            .await
            .map_err(|e| e.to_string())?;
    }

    let pt_rate = passthrough(
        &brokers,
        &pt_in,
        &pt_out,
        &format!("{prefix}.pt"),
        &lines,
        opts.progress,
    )
    .await?;
    report.push_str(&format!("passthrough: {pt_rate:.0} records/s\n"));

    // Klaxon on the same backlog.
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let (stop_tx, service) = crate::runtime::spawn(config.clone(), metrics.clone(), Clock::wall());
    // Both consumer groups joined and state restored first; then the backlog arrives.
    let ready_by = Instant::now() + Duration::from_secs(60);
    while !metrics.is_ready() && Instant::now() < ready_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let feeder = {
        let (brokers, topic, lines) = (
            brokers.clone(),
            config.settings.topics.alerts.clone(),
            lines.clone(),
        );
        tokio::spawn(async move { produce_all(&brokers, &topic, &lines, false).await })
    };
    let b = bar(opts.progress, opts.alerts as u64, "klaxon");
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let consumed: u64 = metrics
            .alerts_consumed
            .with_label_values(&[&config.settings.topics.alerts])
            .get();
        let processed = metrics.records_processed.get();
        if consumed > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        b.set_position(processed);
        if processed as usize >= opts.alerts || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.finish_and_clear();
    let _ = feeder.await;
    let kl_secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    let kl_rate = opts.alerts as f64 / kl_secs;
    report.push_str(&format!(
        "klaxon: {kl_rate:.0} alerts/s ({:.2} × passthrough)\n",
        kl_rate / pt_rate
    ));

    // Latency at half of Klaxon's peak rate: each alert opens a new incident.
    let rate = (kl_rate / 2.0).max(1.0);
    let p: FutureProducer = client(&brokers)
        .set("linger.ms", "0")
        .create()
        .map_err(|e| e.to_string())?;
    let c: StreamConsumer = client(&brokers)
        .set("group.id", format!("{prefix}.latency"))
        .set("auto.offset.reset", "latest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "5")
        .create()
        .map_err(|e| e.to_string())?;
    c.subscribe(&[&config.settings.topics.escalations])
        .map_err(|e| e.to_string())?;
    // Let the latency consumer join before the clock starts.
    let _ = tokio::time::timeout(Duration::from_secs(8), c.recv()).await;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let b = bar(opts.progress, opts.latency_alerts as u64, "latency");
    let start = Instant::now();
    let mut i = 0usize;
    let end_by = Instant::now() + Duration::from_secs(120);
    while (latencies.len() < opts.latency_alerts) && Instant::now() < end_by {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if i < opts.latency_alerts && Instant::now() >= due {
            let id = format!("lat-{i}");
            let line = format!(
                r#"{{"id":"{id}","timestamp":"{}","incident_key":"{id}","operator":"hz-ecom","title":"latency probe"}}"#,
                now_rfc3339(0)
            );
            if let Ok(f) = p.send_result(
                FutureRecord::<(), _>::to(&config.settings.topics.alerts).payload(line.as_bytes()),
            ) {
                sent.insert(id, Instant::now());
                drop(f);
            }
            i += 1;
            continue;
        }
        let wait = due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(2));
        if let Ok(Ok(m)) = tokio::time::timeout(wait, c.recv()).await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or(&[])) {
                if v["type"] == "incident.opened" {
                    if let Some(t0) = v["alert_ids"][0].as_str().and_then(|a| sent.get(a)) {
                        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        b.inc(1);
                    }
                }
            }
        }
    }
    b.finish_and_clear();
    latencies.sort_by(f64::total_cmp);
    report.push_str(&format!(
        "latency at {rate:.0} alerts/s (half of peak), alert → incident.opened, n={}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    ));

    // Timer accuracy: reportable alerts dated 29 min 55 s ago; their 30-min reminders fall due 5 s
    // after sending. Lateness = arrival at this consumer − the reminder's `at`.
    let n_timers = 50;
    for k in 0..n_timers {
        let line = format!(
            r#"{{"id":"tmr-{k}","timestamp":"{}","incident_key":"tmr-{k}","operator":"gd-grid","impact":{{"personal_info_records":2000000}}}}"#,
            now_rfc3339(-1795 + (k % 5) as i64)
        );
        let _ = p
            .send(
                FutureRecord::<(), _>::to(&config.settings.topics.alerts).payload(line.as_bytes()),
                Duration::from_secs(5),
            )
            .await;
    }
    let mut errors = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while errors.len() < n_timers && Instant::now() < until {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), c.recv()).await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or(&[])) {
                if v["type"] == "report.reminder" {
                    if let Some(at) = v["at"]
                        .as_str()
                        .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
                    {
                        let late = chrono::Utc::now()
                            .signed_duration_since(at)
                            .num_milliseconds() as f64;
                        errors.push(late);
                    }
                }
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    report.push_str(&format!(
        "timer fire error (arrival − due), n={}: p50 {:.0} ms, max {:.0} ms\n",
        errors.len(),
        percentile(&errors, 0.5),
        errors.last().copied().unwrap_or(f64::NAN)
    ));
    let _ = stop_tx.send(true);
    let _ = service.await;

    report.push_str(&scale(&config, opts.scale_incidents, opts.progress));
    report.push_str(&kafka_restore(&config, opts.restore_incidents, opts.progress).await?);
    Ok(report)
}

/// Restore through Kafka, the way a partition assignment does: `n` incidents written to one
/// changelog partition, then `runtime::changelog::restore` timed end to end (barrier included).
async fn kafka_restore(config: &Arc<Config>, n: usize, progress: bool) -> Result<String, String> {
    use crate::runtime::kafka::{producer_config, KlaxonContext};
    use crate::runtime::sink::{send_all, OutRecord};
    let mut cfg = (**config).clone();
    cfg.settings.topics.changelog = format!("{}.restore-probe", cfg.settings.topics.changelog);
    let cfg = Arc::new(cfg);
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let producer: FutureProducer<KlaxonContext> = producer_config(&cfg.settings)
        .create_with_context(KlaxonContext::plain(metrics.clone()))
        .map_err(|e| e.to_string())?;
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let e = reportable_engine(&cfg, n, "r", None);
    let b = bar(progress, n as u64, "changelog");
    let mut batch = Vec::with_capacity(10_000);
    let mut bytes = 0usize;
    for inc in e.incidents_sorted() {
        let r = crate::runtime::changelog::record(&cfg, 0, &inc.id.to_string(), Some(inc));
        bytes += r.payload.as_ref().map_or(0, Vec::len);
        batch.push(r);
        if batch.len() == 10_000 {
            send_all(&producer, &batch, &stop_rx)
                .await
                .map_err(|e| e.to_string())?;
            b.inc(batch.len() as u64);
            batch.clear();
        }
    }
    let rest: Vec<OutRecord> = std::mem::take(&mut batch);
    send_all(&producer, &rest, &stop_rx)
        .await
        .map_err(|e| e.to_string())?;
    b.finish_and_clear();
    drop(e);
    let t = Instant::now();
    let restored = crate::runtime::changelog::restore(&cfg, &metrics, &producer, 0, &stop_rx)
        .await
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let got = restored.stats(crate::time::Timestamp(0)).incidents;
    Ok(format!(
        "restore through Kafka: {got} incidents ({:.0} MiB of changelog, lz4 on the wire) in {secs:.1} s = {:.0} incidents/s\n",
        bytes as f64 / 1048576.0,
        got as f64 / secs
    ))
}

/// An engine holding `n` open incidents of a CII operator, each reportable (with its timers).
fn reportable_engine(
    config: &Config,
    n: usize,
    prefix: &str,
    progress: Option<&ProgressBar>,
) -> Engine {
    let mut e = Engine::from_config(config);
    for i in 0..n {
        let line = format!(
            r#"{{"id":"{prefix}-{i}","timestamp":"2026-11-24T08:{:02}:{:02}+08:00","incident_key":"{prefix}-{i}","operator":"gd-grid","impact":{{"personal_info_records":2000000}}}}"#,
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

fn rss_bytes() -> u64 {
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

/// N open, reportable incidents with running timers, in one engine: memory, cost of timer firing,
/// and the CPU side of a restore (decode N changelog records into a fresh engine).
pub fn scale(config: &Config, n: usize, progress: bool) -> String {
    let mut out = String::new();
    let before = rss_bytes();
    let b = bar(progress, n as u64, "scale");
    let t = Instant::now();
    let mut e = reportable_engine(config, n, "s", Some(&b));
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
    e.handle_timeout(due);
    let mut fired = 0usize;
    while e.poll_output().is_some() {
        fired += 1;
    }
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
        if let Ok(inc) = serde_json::from_slice(r) {
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
