//! `klaxon run` against a real Kafka-protocol broker: alerts in, escalations out, commands,
//! wall-clock timers, the dead-letter topic, metrics, and a clean SIGTERM.

mod kafka_support;

use kafka_support::*;
use std::time::Duration;

fn cii_outage(id: &str, key: &str, since: &str, at: &str) -> String {
    serde_json::json!({
        "id": id, "timestamp": at, "source": "test", "title": "SCADA unreachable", "category": "outage",
        "incident_key": key, "operator": "gd-grid", "asset": "gd-grid-scada",
        "impact": {"outage": {"scope": "whole", "since": since, "until": null}}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_in_escalations_out_with_deadline_and_recipients() {
    let t = Topics::new(&unique("slice"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    // A CII whole outage that began 15 minutes ago: already past the 10-minute threshold.
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("a-1", "slice-1", &at(-900), &at(0)).as_bytes(),
    )
    .await;
    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    let kinds = types(&got);
    assert!(kinds.contains(&"incident.opened".to_string()), "{kinds:?}");
    let due = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "report.due")
        .expect("report.due");
    assert_eq!(due["level"], "relatively_major");
    assert_eq!(due["report_kind"], "initial");
    assert_eq!(due["seconds_remaining"], 3600, "CII route: 1 h");
    let ids: Vec<&str> = due["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["energy-cii-protection", "gd-psb"]);
    assert_eq!(
        got.iter()
            .find(|r| r.json()["type"] == "report.due")
            .unwrap()
            .key
            .as_deref(),
        due["incident_id"].as_str()
    );
    assert!(k.sigterm().success(), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_stop_the_countdown_and_unknown_incidents_are_rejected() {
    let t = Topics::new(&unique("cmd"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("c-1", "cmd-1", &at(-900), &at(0)).as_bytes(),
    )
    .await;
    let c = consumer(&t.escalations);
    let mut got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    let ack =
        serde_json::json!({"command": "ack", "incident_id": "@cmd-1", "at": at(1), "by": "alice"});
    let filed = serde_json::json!({"command": "report_filed", "incident_id": "@cmd-1", "at": at(2), "by": "alice", "channel": "12387", "reference": "CN-1", "report_kind": "initial"});
    let unknown = serde_json::json!({"command": "resolve", "incident_id": "INC-20261124-000000000000", "at": at(3)});
    for cmd in [ack, filed, unknown] {
        produce(&p, &t.commands, None, cmd.to_string().as_bytes()).await;
    }
    // The three commands travel on different partitions: wait for all of their answers.
    got.extend(
        read_until(&c, Duration::from_secs(30), |r| {
            let t = types(r);
            ["incident.acknowledged", "report.filed", "command.rejected"]
                .iter()
                .all(|w| t.iter().any(|x| x == w))
        })
        .await,
    );
    let kinds = types(&got);
    for want in ["incident.acknowledged", "report.filed", "command.rejected"] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing from {kinds:?}"
        );
    }
    let filed = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "report.filed")
        .unwrap();
    assert!(
        filed["seconds_remaining"].as_i64().unwrap() > 3500,
        "filed well before the deadline"
    );
    let rejected = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "command.rejected")
        .unwrap();
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("unknown incident"),
        "{rejected}"
    );
    let (_, metrics) = http_get(k.metrics_port, "/metrics").unwrap();
    assert!(
        metrics.contains("klaxon_commands_total{command=\"report_filed\",outcome=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("klaxon_commands_total{command=\"resolve\",outcome=\"rejected\"} 1"),
        "{metrics}"
    );
    // Each input topic's records are counted under its own name.
    for (topic, n) in [(&t.alerts, 1), (&t.commands, 3)] {
        assert!(
            metrics.contains(&format!(
                "klaxon_alerts_consumed_total{{topic=\"{topic}\"}} {n}"
            )),
            "{topic}: {metrics}"
        );
    }
    assert!(k.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_fires_on_the_wall_clock_with_no_further_input() {
    let t = Topics::new(&unique("clock"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    // Reportable at the alert's time, 29 min 52 s ago: the 1 h deadline is 30 min 8 s away, so the
    // 30-minute reminder falls due 8 s from now, with nothing else arriving.
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("w-1", "clock-1", &at(-2400), &at(-1792)).as_bytes(),
    )
    .await;
    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(20), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    assert!(
        !types(&got).iter().any(|t| t == "report.reminder"),
        "no reminder before it is due"
    );
    let more = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.reminder")
    })
    .await;
    let reminder = more
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "report.reminder")
        .expect("reminder fired on the clock");
    assert_eq!(reminder["reminder_before"], "30m");
    assert_eq!(reminder["seconds_remaining"], 1800);
    assert!(k.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_from_the_past_says_once_how_long_its_report_is_overdue() {
    let t = Topics::new(&unique("past"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    // Reportable 2 h ago: deadline 1 h ago. The reminders are stale and not sent; the three
    // overdue steps already due (deadline, +30 min, +1 h) come as one event (#18).
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("past-1", "past-1", &at(-7800), &at(-7200)).as_bytes(),
    )
    .await;
    let c = consumer(&t.escalations);
    let mut got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.overdue")
    })
    .await;
    // Anything that would follow it comes in the same round; give it a moment anyway.
    got.extend(read_until(&c, Duration::from_secs(2), |_| false).await);
    let types = types(&got);
    assert!(
        !types.iter().any(|t| t == "report.reminder"),
        "no stale reminder: {types:?}"
    );
    let overdue: Vec<serde_json::Value> = got
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "report.overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "one overdue event: {overdue:?}");
    let e = &overdue[0];
    assert!(
        e["event_id"]
            .as_str()
            .unwrap()
            .ends_with("report.overdue/initial/3"),
        "{e}"
    );
    assert_eq!(e["overdue_count"], 3);
    assert_eq!(e["folded_repeats"], 2);
    assert_eq!(e["overdue_for"], "1h");
    assert!(k.sigterm().success());
}

/// A time as Suricata and Wazuh write it: microseconds, and an offset without its colon
/// (`2026-11-24T10:02:44.123456+0800`), which was dead-lettered before issue #20.
fn as_products_write(rfc3339: &str) -> String {
    let (time, offset) = rfc3339.split_at(rfc3339.len() - 6);
    format!("{time}.123456{}", offset.replace(':', ""))
}

/// A raw Suricata EVE alert line, with the labels a SOC's shipper adds.
fn eve_alert(flow_id: u64, at: &str, since: &str) -> String {
    serde_json::json!({
        "timestamp": as_products_write(at), "flow_id": flow_id, "in_iface": "ens1f0",
        "event_type": "alert", "src_ip": "203.0.113.77", "src_port": 40116,
        "dest_ip": "198.18.20.15", "dest_port": 502, "proto": "TCP", "tx_id": 0,
        "alert": {"action": "allowed", "gid": 1, "signature_id": 1000411, "rev": 1,
                  "signature": "LOCAL SCADA Modbus write to dispatch PLC", "category": "",
                  "severity": 1},
        "app_proto": "modbus",
        "labels": {"klaxon_operator": "gd-grid", "klaxon_asset": "gd-grid-scada",
                   "klaxon_incident_key": "dlq-eve", "klaxon_outage_scope": "whole",
                   "klaxon_outage_since": since}
    })
    .to_string()
}

/// A raw Wazuh `alerts.json` line, with the operator and asset as agent labels.
fn wazuh_alert(id: &str, at: &str) -> String {
    serde_json::json!({
        "timestamp": as_products_write(at),
        "rule": {"level": 12, "description": "Member API: bulk export of customer records",
                 "id": "100512", "firedtimes": 1, "mail": true, "groups": ["data_exfiltration"]},
        "agent": {"id": "027", "name": "member-api-03",
                  "labels": {"klaxon_operator": "hz-ecom", "klaxon_asset": "hz-ecom-member"}},
        "manager": {"name": "wazuh-manager-01"}, "id": id,
        "decoder": {"name": "json"}, "location": "/var/log/member-api/audit.json",
        "labels": {"klaxon_incident_key": "dlq-wazuh",
                   "klaxon_personal_info_records": "1350000"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_topic_and_good_ones_around_them_flow() {
    let t = Topics::new(&unique("dlq"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    let big = format!(
        "{{\"id\":\"big\",\"timestamp\":\"{}\",\"title\":\"{}\"}}",
        at(0),
        "x".repeat(5000)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not_json", b"{\"id\": \"trunc".to_vec()),
        ("too_large", big.into_bytes()),
        ("wrong_type", format!("{{\"id\":\"wt\",\"timestamp\":\"{}\",\"impact\":{{\"personal_info_records\":\"lots\"}}}}", at(0)).into_bytes()),
        ("not_utf8", vec![0xff, 0xfe, b'{', b'}']),
        ("missing_field", b"{\"id\":\"no-ts\"}".to_vec()),
    ];
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("good-1", "dlq-1", &at(-900), &at(0)).as_bytes(),
    )
    .await;
    // Records as Suricata and Wazuh write them flow too (before the bad ones: a dead-lettered
    // one would come first on the DLQ and fail the reasons below).
    let eve = eve_alert(2_191_386_088_856_669, &at(0), &at(-900));
    produce(&p, &t.alerts, None, eve.as_bytes()).await;
    let wazuh = wazuh_alert(&format!("{}.50453", t.prefix), &at(0));
    produce(&p, &t.alerts, None, wazuh.as_bytes()).await;
    for (_, payload) in &bad {
        produce(&p, &t.alerts, Some("original-key"), payload).await;
    }
    produce(
        &p,
        &t.alerts,
        None,
        cii_outage("good-2", "dlq-2", &at(-900), &at(0)).as_bytes(),
    )
    .await;
    let dlq = consumer(&t.dlq);
    let dead = read_until(&dlq, Duration::from_secs(30), |r| r.len() >= bad.len()).await;
    assert_eq!(dead.len(), bad.len());
    for ((reason, payload), rec) in bad.iter().zip(&dead) {
        assert_eq!(
            rec.headers.get("klaxon-reason").map(String::as_str),
            Some(*reason)
        );
        assert_eq!(&rec.payload, payload, "original bytes kept");
        assert_eq!(rec.key.as_deref(), Some("original-key"));
        assert_eq!(rec.headers.get("klaxon-source-topic"), Some(&t.alerts));
        assert!(
            rec.headers.contains_key("klaxon-source-offset")
                && rec.headers.contains_key("klaxon-source-partition")
        );
        assert!(!rec.headers["klaxon-error"].is_empty());
    }
    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().filter(|t| *t == "report.due").count() >= 4
    })
    .await;
    assert_eq!(
        types(&got).iter().filter(|t| *t == "report.due").count(),
        4,
        "the two native, the EVE and the Wazuh records processed"
    );
    let ids: Vec<serde_json::Value> = got
        .iter()
        .map(Record::json)
        .filter(|e| e["type"] == "report.due")
        .map(|e| e["alert_ids"][0].clone())
        .collect();
    for id in [
        "suricata-2191386088856669-0-1:1000411".to_string(),
        format!("wazuh-{}.50453", t.prefix),
    ] {
        assert!(ids.contains(&serde_json::json!(id)), "{id} not in {ids:?}");
    }
    let (code, metrics) = http_get(k.metrics_port, "/metrics").unwrap();
    assert_eq!(code, 200);
    for (reason, _) in &bad {
        assert!(
            metrics.contains(&format!(
                "klaxon_records_rejected_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason} not counted:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("klaxon_escalations_emitted_total{type=\"report.due\"} 4"),
        "{metrics}"
    );
    assert_eq!(http_get(k.metrics_port, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(k.metrics_port, "/readyz").unwrap().0, 200);
    assert!(k.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_loses_nothing_and_a_restart_continues() {
    let t = Topics::new(&unique("term"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    let n = 60;
    for i in 0..n {
        let a = serde_json::json!({"id": format!("term-{i}"), "timestamp": at(0), "incident_key": format!("term-{i}"), "title": "burst"});
        produce(&p, &t.alerts, None, a.to_string().as_bytes()).await;
        if i == n / 2 {
            assert!(k.sigterm().success(), "exit 0 on SIGTERM");
            k = Klaxon::start(&t, &[]);
        }
    }
    k.wait_ready(Duration::from_secs(60));
    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(60), |r| {
        let opened: std::collections::BTreeSet<String> = r
            .iter()
            .map(|x| x.json())
            .filter(|e| e["type"] == "incident.opened")
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect();
        opened.len() >= n
    })
    .await;
    let opened: std::collections::BTreeSet<String> = got
        .iter()
        .map(|x| x.json())
        .filter(|e| e["type"] == "incident.opened")
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        opened.len(),
        n,
        "every alert opened its incident exactly once (by event id)"
    );
    assert!(k.sigterm().success());
}

/// A burst is made durable once the input goes quiet, not at the next commit interval: with the
/// interval set to an hour, both stages commit the burst's offsets and the processor writes the
/// state they cover, so an instance killed right after it restarts with every incident and
/// re-reads nothing (docs/service.md, "When progress is durable").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_durable_once_the_input_goes_quiet_even_with_an_hour_between_commits() {
    let t = Topics::new(&unique("quiet"));
    let env = [("KLAXON__STATE__COMMIT_INTERVAL", "1h")];
    let mut k = Klaxon::start(&t, &env);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    let n = 20;
    for i in 0..n {
        let a = serde_json::json!({"id": format!("quiet-{i}"), "timestamp": at(0), "incident_key": format!("quiet-{i}"), "title": "burst"});
        produce(&p, &t.alerts, None, a.to_string().as_bytes()).await;
    }
    let (router, processor) = (t.prefix.clone(), format!("{}.processor", t.prefix));
    let (alerts, repartition) = (t.alerts.clone(), t.repartition.clone());
    let committed = tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < until {
            if committed_covers(&router, &alerts, 3, n)
                && committed_covers(&processor, &repartition, 3, n)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })
    .await
    .unwrap();
    assert!(
        committed,
        "both stages committed the burst's offsets long before the hour was up"
    );
    k.sigkill();
    let k = Klaxon::start(&t, &env);
    k.wait_ready(Duration::from_secs(60));
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let mut incidents = 0.0;
    while std::time::Instant::now() < until && incidents < n as f64 {
        incidents = metric(k.metrics_port, "klaxon_state_incidents ").unwrap_or(0.0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        incidents, n as f64,
        "the restarted instance restored every incident of the burst from the changelog"
    );
    assert_eq!(
        metric(k.metrics_port, "klaxon_records_processed_total ").unwrap_or(0.0),
        0.0,
        "and had nothing to re-read"
    );
}
