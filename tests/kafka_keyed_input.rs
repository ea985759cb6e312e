//! `kafka.input_keyed` against the real broker: alerts keyed by their routing key (as `klaxon
//! route-key` prints it, written by a plain librdkafka producer with its default partitioner)
//! are applied without the repartition hop; a mis-keyed alert is re-routed through it and still
//! escalates; an undecodable one is dead-lettered; commands still reach the incident; and an
//! alerts topic partitioned unlike the state is refused at start.

mod kafka_support;

use kafka_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEYED: (&str, &str) = ("KLAXON__KAFKA__INPUT_KEYED", "true");

fn cii_outage(id: &str, key: &str) -> String {
    serde_json::json!({
        "id": id, "timestamp": at(0), "source": "test", "title": "SCADA unreachable",
        "category": "outage", "incident_key": key, "operator": "gd-grid", "asset": "gd-grid-scada",
        "impact": {"outage": {"scope": "whole", "since": at(-900), "until": null}}
    })
    .to_string()
}

/// `klaxon route-key` on the tests' config (3 partitions): each alert's key and partition.
fn route_keys(alerts: &[&str]) -> Vec<(String, i32)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .arg("--config")
        .arg(test_config())
        .arg("route-key")
        .env("KLAXON__STATE__PARTITIONS", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run klaxon route-key");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for a in alerts {
            writeln!(stdin, "{a}").expect("write an alert");
        }
    }
    let out = child.wait_with_output().expect("route-key output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (k, p) = l.split_once(' ').expect("<key> <partition>");
            (k.to_string(), p.parse().expect("partition"))
        })
        .collect()
}

/// How many records `topic` holds (all partitions).
fn records_on(topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            let (lo, hi) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            hi - lo
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_alerts_skip_the_repartition_hop_and_mis_keyed_ones_take_it() {
    let t = Topics::new(&unique("keyed"));
    let mut k = Klaxon::start(&t, &[KEYED]);
    k.wait_ready(Duration::from_secs(60));
    let (direct, misfiled) = (cii_outage("ky-1", "keyed-1"), cii_outage("ky-2", "keyed-2"));
    let keys = route_keys(&[&direct, &misfiled]);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].0.len(), 6, "six hex digits: {keys:?}");
    let p = producer();
    // The default partitioner puts each key where `route-key` says: no partition is given.
    produce(&p, &t.alerts, Some(&keys[0].0), direct.as_bytes()).await;
    produce(&p, &t.alerts, Some("keyed-2"), misfiled.as_bytes()).await;
    produce(
        &p,
        &t.alerts,
        Some(&keys[0].0),
        b"{\"id\": \"ky-3\", \"timestamp\": ",
    )
    .await;

    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(60), |r| {
        r.iter()
            .filter(|r| r.json()["type"] == "report.due")
            .count()
            >= 2
    })
    .await;
    let due: Vec<serde_json::Value> = got
        .iter()
        .map(Record::json)
        .filter(|e| e["type"] == "report.due")
        .collect();
    assert_eq!(due.len(), 2, "both incidents escalate: {:?}", types(&got));
    assert_ne!(due[0]["incident_id"], due[1]["incident_id"]);

    // Commands still go through the router and find the incident the keyed alert opened.
    let ack = serde_json::json!({"command": "ack", "incident_id": "@keyed-1", "at": at(1), "by": "alice"});
    produce(&p, &t.commands, None, ack.to_string().as_bytes()).await;
    let acked = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "incident.acknowledged")
    })
    .await;
    assert!(
        types(&acked).iter().any(|t| t == "incident.acknowledged"),
        "{:?}",
        types(&acked)
    );

    // The repartition topic carries the command and the re-routed alert, never the direct one.
    assert_eq!(records_on(&t.repartition, 3), 2);
    let rep = read_until(&consumer(&t.repartition), Duration::from_secs(30), |r| {
        r.len() >= 2
    })
    .await;
    let rerouted: Vec<&Record> = rep
        .iter()
        .filter(|r| r.headers.get("klaxon-source").map(String::as_str) != Some("commands"))
        .collect();
    assert_eq!(rerouted.len(), 1, "{rep:?}");
    assert_eq!(rerouted[0].json()["id"], "ky-2");
    assert_eq!(rerouted[0].key.as_deref(), Some(keys[1].0.as_str()));

    // The undecodable record is dead-lettered, as the router would.
    let dlq = read_until(&consumer(&t.dlq), Duration::from_secs(30), |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].headers.get("klaxon-source-topic"),
        Some(&t.alerts),
        "{dlq:?}"
    );

    let (_, metrics) = http_get(k.metrics_port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("klaxon_records_rerouted_total 1"),
        "{metrics}"
    );
    assert!(k.sigterm().success(), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alerts_topic_partitioned_unlike_the_state_is_refused() {
    let t = Topics::new(&unique("keyed-parts"));
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin");
    let made = admin
        .create_topics(
            [&NewTopic::new(&t.alerts, 2, TopicReplication::Fixed(-1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    assert!(made.iter().all(Result::is_ok), "{made:?}");
    let mut k = Klaxon::start(&t, &[KEYED]);
    let status = k.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "it must not run on a mispartitioned topic"
    );
    let logs = k.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("kafka.input_keyed") && logs.contains("has 2 partitions"),
        "{logs}"
    );
}
