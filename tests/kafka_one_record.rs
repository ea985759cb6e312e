//! Issue #18 against the live service on the real broker: one implausible record, or a backlog
//! of thousands of ten-day-old alerts, must not take Klaxon down. It stays ready, keeps
//! processing the next normal alert, stays under the memory bound (RSS read from `/proc`), and
//! SIGTERM ends it with exit 0 within 10 s.

mod kafka_support;

use kafka_support::*;
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};

/// The issue's bound for 200,000 ten-day-old alerts (the shipped k8s limit is 2 GiB).
const RSS_BOUND_MIB: u64 = 512;

/// A reportable CII outage (the 2 M affected people make it major at once).
fn reportable(id: &str, key: &str, ts: &str) -> String {
    serde_json::json!({
        "id": id, "timestamp": ts, "source": "test", "title": "SCADA down", "category": "outage",
        "incident_key": key, "operator": "gd-grid", "asset": "gd-grid-scada",
        "impact": {"outage": {"scope": "whole", "since": ts, "until": null},
                   "affected_population": 2_000_000}
    })
    .to_string()
}

/// `klaxon replay --as-of AT` over `lines` with the settings `Klaxon::start` gives the live
/// service (and `extra`), its output lines sorted.
fn replay_as_of(lines: &[String], at: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("backlog-replay")));
    std::fs::write(&file, lines.join("\n")).expect("write the backlog");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_klaxon"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KLAXON_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("replay")
        .arg("--config")
        .arg(test_config())
        .args(["--as-of", at])
        .arg(&file)
        .env("KLAXON__STATE__PARTITIONS", "3")
        .env("KLAXON__INPUT__MAX_RECORD_BYTES", "4096")
        .envs(extra.iter().copied())
        .output()
        .expect("run klaxon replay");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "replay --as-of failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort_unstable();
    lines
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A counter's value from `/metrics` (the series whose line starts with `series`), 0 while absent.
fn counter(port: u16, series: &str) -> f64 {
    metric(port, series).unwrap_or(0.0)
}

fn ready(port: u16) -> bool {
    http_get(port, "/readyz").is_ok_and(|(code, _)| code == 200)
        && counter(port, "klaxon_ready ") == 1.0
}

/// SIGTERM: exit 0, within 10 s.
fn stop_within_10s(k: &mut Klaxon) {
    let t = Instant::now();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(k.child.id().to_string())
        .status();
    let status = k.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_0001_year_9999_and_an_inverted_interval_are_dead_lettered_and_the_next_alert_flows() {
    let t = Topics::new(&unique("poison"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    let ok_at = at(0);
    let mut inverted: serde_json::Value =
        serde_json::from_str(&reportable("inv", "inv", &ok_at)).unwrap();
    inverted["impact"]["outage"]["until"] = at(-600).into();
    for payload in [
        reportable("y1", "y1", "0001-01-01T00:00:00Z"),
        reportable("y9999", "y9999", "9999-12-31T23:59:59Z"),
        inverted.to_string(),
    ] {
        produce(&p, &t.alerts, None, payload.as_bytes()).await;
    }
    let dlq = read_until(&consumer(&t.dlq), Duration::from_secs(30), |r| r.len() >= 3).await;
    // The DLQ has several partitions: order is not kept across them.
    let mut reasons: Vec<(&str, &str)> = dlq
        .iter()
        .map(|r| {
            (
                r.headers["klaxon-reason"].as_str(),
                r.headers["klaxon-error"].as_str(),
            )
        })
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, "bad_value");
    assert!(
        reasons[0].1.contains("`impact.outage.until`"),
        "{reasons:?}"
    );
    for (code, error) in &reasons[1..] {
        assert_eq!(*code, "event_time_out_of_range");
        assert!(error.contains("`timestamp`"), "{reasons:?}");
    }
    assert!(reasons[1].1.contains("is 0001-01-01"), "{reasons:?}");
    assert!(reasons[2].1.contains("is 9999-12-31"), "{reasons:?}");
    assert_eq!(
        counter(
            k.metrics_port,
            "klaxon_records_rejected_total{reason=\"event_time_out_of_range\"}"
        ),
        2.0
    );
    // The next normal alert is processed: its report falls due.
    produce(
        &p,
        &t.alerts,
        None,
        reportable("ok", "ok", &ok_at).as_bytes(),
    )
    .await;
    let out = read_until(&consumer(&t.escalations), Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    let due: Vec<serde_json::Value> = out
        .iter()
        .map(Record::json)
        .filter(|e| e["type"] == "report.due")
        .collect();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["alert_ids"][0], "ok");
    // Commands with a field of the wrong type are answered with `command.rejected` naming the
    // field, and change nothing; a record on the commands topic that is not an object at all
    // is a dead letter.
    for payload in [
        serde_json::json!({"command": "report_filed", "incident_id": "@ok", "at": true, "by": "alice"}),
        serde_json::json!({"command": "regrade", "incident_id": "@ok", "at": ok_at, "level": 3, "reason": "r"}),
    ] {
        produce(&p, &t.commands, None, payload.to_string().as_bytes()).await;
    }
    produce(&p, &t.commands, None, b"[1,2]").await;
    let out = read_until(&consumer(&t.escalations), Duration::from_secs(30), |r| {
        types(r).iter().filter(|t| *t == "command.rejected").count() >= 2
    })
    .await;
    let mut rejected: Vec<serde_json::Value> = out
        .iter()
        .map(Record::json)
        .filter(|e| e["type"] == "command.rejected")
        .collect();
    rejected.sort_by_key(|e| e["command"]["command"].to_string());
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0]["command"]["command"], "regrade");
    assert_eq!(
        rejected[0]["reason"],
        "field `level` has the wrong type: invalid type: integer `3`, expected a string"
    );
    assert_eq!(rejected[1]["command"]["command"], "report_filed");
    assert!(
        rejected[1]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("field `at` has the wrong type")),
        "{rejected:?}"
    );
    assert!(
        !types(&out)
            .iter()
            .any(|t| t == "report.filed" || t == "incident.regraded"),
        "nothing changed: {:?}",
        types(&out)
    );
    let dlq = read_until(&consumer(&t.dlq), Duration::from_secs(30), |r| r.len() >= 4).await;
    let not_object: Vec<&Record> = dlq
        .iter()
        .filter(|r| r.headers["klaxon-reason"] == "not_object")
        .collect();
    assert_eq!(not_object.len(), 1);
    for (reason, n) in [
        ("not_object", 1.0),
        ("wrong_type", 0.0),
        ("missing_field", 0.0),
    ] {
        let series = format!("klaxon_records_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(counter(k.metrics_port, &series), n, "{series}");
    }
    assert_eq!(
        counter(
            k.metrics_port,
            "klaxon_commands_invalid_total{reason=\"wrong_type\"}"
        ),
        2.0
    );
    // A flood of bad records: every one dead-lettered and counted, but only the first few of
    // the interval logged (then one "suppressed K more" line once the interval is over).
    const FLOOD: usize = 200;
    for i in 0..FLOOD {
        produce(&p, &t.alerts, None, format!("not json {i}").as_bytes()).await;
    }
    let series = "klaxon_records_rejected_total{reason=\"not_json\"}";
    let counted = Instant::now();
    while counter(k.metrics_port, series) < FLOOD as f64
        && counted.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(counter(k.metrics_port, series), FLOOD as f64);
    let logged = {
        let logs = k.logs.lock().unwrap();
        logs.iter()
            .filter(|l| l.contains("record dead-lettered") && l.contains("not_json"))
            .count()
    };
    assert!(logged <= 5, "{logged} lines for {FLOOD} bad records");
    assert!(ready(k.metrics_port), "still ready");
    let rss = rss_mib(k.child.id());
    assert!(rss < RSS_BOUND_MIB, "RSS {rss} MiB");
    stop_within_10s(&mut k);
}

/// `KLAXON_BACKLOG` alerts (default 20,000) dated ten days back, each its own reportable
/// incident: one folded `report.overdue` each, in bounded memory; ready throughout; the next
/// alert still processed; SIGTERM honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_day_backlog_drains_in_bounded_memory_and_the_service_stays_ready() {
    let n: usize = std::env::var("KLAXON_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let t = Topics::new(&unique("backlog"));
    let p = producer();
    let started = Instant::now();
    let ts = at(-10 * 86_400);
    let payloads: Vec<String> = (0..n)
        .map(|i| reportable(&format!("b-{i}"), &format!("b-{i}"), &ts))
        .collect();
    let mut pending = Vec::new();
    for chunk in payloads.chunks(5_000) {
        for payload in chunk {
            let rec: FutureRecord<'_, str, str> = FutureRecord::to(&t.alerts).payload(payload);
            pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        for f in pending.drain(..) {
            f.await.expect("delivered").expect("acknowledged");
        }
    }
    eprintln!(
        "produced {n} alerts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // KLAXON_BACKLOG_ENV="KEY=VALUE ...": settings for the service under measurement (the
    // harness passes it no KLAXON_ variable of its own environment), e.g. the desk off.
    let extra: Vec<(String, String)> = std::env::var("KLAXON_BACKLOG_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut k = Klaxon::start(&t, &extra);
    let pid = k.child.id();
    let port = k.metrics_port;
    let started = Instant::now();
    let mut peak = 0;
    let mut was_ready = false;
    let mut ready_lost = 0;
    let mut shown = Instant::now();
    loop {
        let rss = rss_mib(pid);
        peak = peak.max(rss);
        if shown.elapsed() >= Duration::from_secs(5) {
            shown = Instant::now();
            eprintln!(
                "{:>5.1} s: RSS {rss} MiB, {} records processed",
                started.elapsed().as_secs_f64(),
                counter(port, "klaxon_records_processed_total ")
            );
        }
        let is_ready = ready(port);
        if was_ready && !is_ready {
            ready_lost += 1;
        }
        was_ready |= is_ready;
        let overdue = counter(
            port,
            "klaxon_escalations_emitted_total{type=\"report.overdue\"}",
        );
        if overdue >= n as f64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {overdue} of {n} overdue events after 10 min"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let drained = started.elapsed();
    if std::env::var("KLAXON_BACKLOG_METRICS").is_ok() {
        let (_, body) = http_get(port, "/metrics").unwrap_or_default();
        for l in body.lines().filter(|l| {
            !l.starts_with('#')
                && (l.contains("escalations_emitted")
                    || l.contains("state_")
                    || l.contains("kafka_errors"))
        }) {
            eprintln!("{l}");
        }
        for i in 0..6 {
            std::thread::sleep(Duration::from_secs(5));
            eprintln!("after +{}s: RSS {} MiB", 5 * (i + 1), rss_mib(pid));
        }
    }
    eprintln!(
        "{n} alerts, 10 days old: drained in {:.1} s, peak RSS {peak} MiB",
        drained.as_secs_f64()
    );
    assert!(peak < RSS_BOUND_MIB, "peak RSS {peak} MiB");
    assert_eq!(ready_lost, 0, "stayed ready");
    // One folded event per report, none more.
    std::thread::sleep(Duration::from_secs(1));
    let overdue = counter(
        port,
        "klaxon_escalations_emitted_total{type=\"report.overdue\"}",
    );
    assert_eq!(overdue, n as f64);
    assert_eq!(
        counter(
            port,
            "klaxon_escalations_emitted_total{type=\"report.reminder\"}"
        ),
        0.0,
        "stale reminders are not sent"
    );
    // Identically in replay: `klaxon replay --as-of` on the same lines, at an instant within
    // this run (no step of any report's schedule falls within an hour of it), prints the
    // events the service sent, line for line.
    let expected = replay_as_of(&payloads, &at(0), &extra);
    let c = consumer(&t.escalations);
    let mut sent = read_until(&c, Duration::from_secs(180), |r| r.len() >= expected.len()).await;
    // Anything the service sent beyond them shows too.
    sent.extend(read_until(&c, Duration::from_secs(2), |_| false).await);
    let mut sent: Vec<String> = sent
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    sent.sort_unstable();
    if let Some(i) = (0..sent.len().max(expected.len())).find(|&i| sent.get(i) != expected.get(i)) {
        panic!(
            "live sent {} events, replay --as-of printed {}; the first difference (sorted), live: {:?}, replay: {:?}",
            sent.len(),
            expected.len(),
            sent.get(i),
            expected.get(i)
        );
    }
    eprintln!("{} events, the same in replay --as-of", sent.len());
    // The next normal alert still flows.
    produce(
        &p,
        &t.alerts,
        None,
        reportable("after", "after", &at(0)).as_bytes(),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(30);
    while counter(port, "klaxon_records_processed_total ") < (n + 1) as f64 {
        assert!(Instant::now() < until, "the next alert was not processed");
        peak = peak.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    // The state flushes after the overdue events, and the desk reading them, count too.
    let settle = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle {
        peak = peak.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("peak RSS to the end: {peak} MiB");
    assert!(peak < RSS_BOUND_MIB, "peak RSS {peak} MiB");
    assert!(ready(port));
    stop_within_10s(&mut k);
}
