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
