//! The delivery stage against real components (docs/spec.md §10): a real Kafka-protocol broker
//! (`scripts/broker.sh`), a real Prometheus Alertmanager from Debian's `prometheus-alertmanager`
//! (`scripts/alertmanager.sh`) and the real `klaxon` binary; the webhook receivers are small HTTP
//! servers run by the test, as a SOC's chat bot or ticketing system would be.
//!
//! - A CII report falling due reaches Alertmanager as `KlaxonReportDue` with the incident's
//!   labels, and is resolved there after `report_filed`; the webhook gets the signed page.
//! - An unreachable sink ends in the delivery dead-letter topic after `max_attempts`; a sink that
//!   answers 400 ends there after one attempt.
//! - A SIGKILL of `klaxon deliver` loses no page: after a restart every page arrives, with its
//!   event id as the idempotency key.

mod kafka_support;

use kafka_support::{
    at, brokers, consumer, free_port, produce, producer, read_until, root, unique,
};
use klaxon::delivery::signature;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret-do-not-log";
const SECRET_ENV: &str = "KLAXON_TEST_WEBHOOK_SECRET";

// ------------------------------------------------------------------ a webhook receiver

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// An HTTP server on loopback that records every request and answers `status` after `delay`.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    fn start(status: u16, delay: Duration) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let store = got.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                    let store = store.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = axum::body::to_bytes(body, 1 << 20)
                            .await
                            .map(|b| b.to_vec())
                            .unwrap_or_default();
                        let headers = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        store.lock().unwrap().push(Received {
                            path: parts.uri.path().to_string(),
                            headers,
                            body,
                            at: Instant::now(),
                        });
                        tokio::time::sleep(delay).await;
                        axum::http::StatusCode::from_u16(status)
                            .unwrap_or(axum::http::StatusCode::OK)
                    }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Receiver {
            port,
            got,
            _stop: tx,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[Received]) -> bool) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if done(&self.received()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}: not within {timeout:?}; got {:?}", self.received());
    }
}

// ------------------------------------------------------------------ config and processes

/// The shipped config with `extra` appended to `default.toml`.
fn config_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shipped config with the public keys the tests sign commands with: commands must be
    // signed on the shipped defaults.
    let src = kafka_support::shipped_config();
    copy_dir(&src, dir.path());
    let path = dir.path().join("default.toml");
    let mut text = std::fs::read_to_string(&path).expect("default.toml");
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&path, text).expect("write default.toml");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A running klaxon process (`run` or `deliver`) with its logs collected.
struct Proc {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    /// `/readyz` of the stage: `metrics.listen` for `run`, `delivery.listen` for `deliver`.
    ready_port: u16,
}

impl Proc {
    fn start(command: &str, config: &Path, prefix: &str) -> Proc {
        let (metrics_port, delivery_port) = (free_port(), free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_klaxon"));
        cmd.arg(command)
            .arg("--log-format")
            .arg("text")
            .arg("--config")
            .arg(config)
            .env("KAFKA_BROKERS", brokers())
            .env(
                "RUST_LOG",
                std::env::var("KLAXON_TEST_RUST_LOG").unwrap_or("info,rdkafka=warn".into()),
            )
            .env(SECRET_ENV, SECRET)
            .env("KLAXON__KAFKA__GROUP_ID", prefix)
            .env("KLAXON__TOPICS__ALERTS", format!("{prefix}.alerts"))
            .env("KLAXON__TOPICS__COMMANDS", format!("{prefix}.commands"))
            .env(
                "KLAXON__TOPICS__ESCALATIONS",
                format!("{prefix}.escalations"),
            )
            .env("KLAXON__TOPICS__DEAD_LETTER", format!("{prefix}.dlq"))
            .env("KLAXON__TOPICS__CHANGELOG", format!("{prefix}.state"))
            .env(
                "KLAXON__TOPICS__REPARTITION",
                format!("{prefix}.repartition"),
            )
            .env(
                "KLAXON__TOPICS__DELIVERY_DEAD_LETTER",
                format!("{prefix}.delivery.dlq"),
            )
            .env("KLAXON__STATE__PARTITIONS", "3")
            .env(
                "KLAXON__METRICS__LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env(
                "KLAXON__DELIVERY__LISTEN",
                format!("127.0.0.1:{delivery_port}"),
            )
            .env("KLAXON__KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000")
            .env("KLAXON__KAFKA__PROPERTIES__HEARTBEAT_INTERVAL_MS", "500")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn klaxon");
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if std::env::var_os("KLAXON_TEST_LOGS").is_some() {
                        eprintln!("[klaxon] {line}");
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let ready_port = if command == "run" {
            metrics_port
        } else {
            delivery_port
        };
        let p = Proc {
            child,
            logs,
            ready_port,
        };
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Waits until `/readyz` answers 200 (partitions assigned: the topics exist).
    fn wait_ready(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if kafka_support::http_get(self.ready_port, "/readyz")
                .map(|(code, _)| code == 200)
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "klaxon not ready within {timeout:?}; logs:\n{}",
            self.logs()
        );
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Alertmanager on a free loopback port, routing everything to `receiver` with resolved
/// notifications on, grouped per incident and target and flushed every second.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(receiver: &str) -> Alertmanager {
        let out = Command::new(root().join("scripts/alertmanager.sh"))
            .output()
            .expect("run scripts/alertmanager.sh");
        assert!(
            out.status.success(),
            "no Alertmanager: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "route:\n  receiver: test\n  group_by: ['incident_id', 'report_kind', 'target']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: '{receiver}'\n        send_resolved: true\n"
        );
        std::fs::write(dir.path().join("am.yml"), config).expect("write am.yml");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if kafka_support::http_get(port, "/-/ready")
                .map(|(c, _)| c == 200)
                .unwrap_or(false)
            {
                return am;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("alertmanager not ready on port {port}");
    }

    fn alerts(&self) -> Vec<Value> {
        kafka_support::http_get(self.port, "/api/v2/alerts")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A reader of `topic` from its start (rdkafka's stream consumer needs a runtime to exist).
fn reader(rt: &tokio::runtime::Runtime, topic: &str) -> rdkafka::consumer::StreamConsumer {
    let _in = rt.enter();
    consumer(topic)
}

/// A page as the engine writes it (for the tests that drive `klaxon deliver` alone).
fn page(n: usize) -> Value {
    let incident = format!("INC-20261124-{n:012x}");
    json!({
        "event_id": format!("{incident}/escalation.page/initial/1"),
        "type": "escalation.page", "incident_id": incident, "at": at(0), "level": "major",
        "level_zh": "重大", "report_kind": "initial", "deadline": at(3600),
        "seconds_remaining": 3600, "policy": "reportable", "step": 1,
        "targets": [{"id": "duty", "labels": {"team": "soc-l1"}}],
        "reason": "the initial report fell due",
        "operator": {"id": "gd-grid", "class": "cii", "province": "广东省"},
    })
}

fn assert_signed(r: &Received) {
    let sig = r.header("x-klaxon-signature").expect("signature header");
    assert!(
        signature::verify(SECRET.as_bytes(), &r.body, sig),
        "bad signature {sig} on {}",
        String::from_utf8_lossy(&r.body)
    );
    let ev = r.json();
    assert_eq!(
        r.header("idempotency-key"),
        ev["event_id"].as_str(),
        "the idempotency key is the event id"
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn a_due_report_reaches_alertmanager_with_its_labels_and_is_resolved_when_filed() {
    let am_hook = Receiver::start(200, Duration::ZERO);
    let soc_bot = Receiver::start(200, Duration::ZERO);
    let am = Alertmanager::start(&am_hook.url("/am"));
    let prefix = unique("am");
    let config = config_dir(&format!(
        r#"[delivery]
enabled = true
max_attempts = 3
initial_backoff = "1s"
max_backoff = "2s"
desk_url = "http://desk.example:8090"

[delivery.alertmanager]
url = "http://127.0.0.1:{}"
resend_every = "2s"

[[delivery.webhooks]]
name = "soc-bot"
url = "{}"
secret_env = "{SECRET_ENV}"
events = ["escalation.page", "report.filed"]
"#,
        am.port,
        soc_bot.url("/hook")
    ));
    let klaxon = Proc::start("run", config.path(), &prefix);
    let rt = rt();
    let p = producer();
    // A CII leak of 1.2 M records (较大): the initial report (1 h) falls due now.
    let alert = json!({
        "id": format!("{prefix}-a1"), "timestamp": at(0), "incident_key": prefix,
        "operator": "gd-grid", "asset": "gd-grid-scada", "title": "leak",
        "impact": {"personal_info_records": 1_200_000},
    });
    rt.block_on(produce(
        &p,
        &format!("{prefix}.alerts"),
        None,
        alert.to_string().as_bytes(),
    ));
    soc_bot.wait_for("the signed page", Duration::from_secs(90), |got| {
        got.iter().any(|r| r.json()["type"] == "escalation.page")
    });
    let got = soc_bot.received();
    let page = got
        .iter()
        .find(|r| r.json()["type"] == "escalation.page")
        .expect("page");
    assert_signed(page);
    assert!(
        !klaxon.logs().contains(SECRET),
        "the webhook secret must never be logged"
    );
    let incident = page.json()["incident_id"]
        .as_str()
        .expect("incident")
        .to_string();

    // Alertmanager holds it as firing, with the incident's labels.
    let until = Instant::now() + Duration::from_secs(30);
    let firing = loop {
        let found = am
            .alerts()
            .into_iter()
            .find(|a| a["labels"]["incident_id"] == incident.as_str());
        if let Some(a) = found {
            break a;
        }
        assert!(
            Instant::now() < until,
            "no alert for {incident} in Alertmanager; logs:\n{}",
            klaxon.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let labels = &firing["labels"];
    assert_eq!(labels["alertname"], "KlaxonReportDue");
    assert_eq!(labels["level"], "relatively_major");
    assert_eq!(labels["report_kind"], "initial");
    assert_eq!(labels["operator"], "gd-grid");
    assert_eq!(labels["province"], "广东省");
    assert_eq!(labels["target"], "duty");
    assert_eq!(labels["team"], "soc-l1");
    assert_eq!(firing["status"]["state"], "active");
    assert_eq!(
        firing["annotations"]["desk"],
        format!("http://desk.example:8090/incidents/{incident}")
    );
    assert!(firing["annotations"]["recipients"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    // And Alertmanager's own receiver was notified of it, firing.
    am_hook.wait_for("a firing notification", Duration::from_secs(30), |got| {
        got.iter().any(|r| {
            let v = r.json();
            v["status"] == "firing" && v["commonLabels"]["incident_id"] == incident.as_str()
        })
    });

    // Filing the report resolves it.
    let filed = json!({
        "command": "report_filed", "incident_id": incident, "at": at(1), "by": "alice",
        "channel": "12387", "reference": "CN-1",
    });
    rt.block_on(produce(
        &p,
        &format!("{prefix}.commands"),
        None,
        filed.to_string().as_bytes(),
    ));
    am_hook.wait_for("a resolved notification", Duration::from_secs(60), |got| {
        got.iter().any(|r| {
            let v = r.json();
            v["status"] == "resolved"
                && v["commonLabels"]["incident_id"] == incident.as_str()
                && v["commonLabels"]["alertname"] == "KlaxonReportDue"
        })
    });
    assert!(
        am.alerts()
            .iter()
            .all(|a| a["labels"]["incident_id"] != incident.as_str()),
        "no longer active in Alertmanager"
    );
    soc_bot.wait_for("report.filed", Duration::from_secs(30), |got| {
        got.iter().any(|r| r.json()["type"] == "report.filed")
    });
    assert!(soc_bot.received().iter().all(|r| r.path == "/hook"));
}

#[test]
fn an_unreachable_sink_ends_in_the_dead_letter_topic_after_max_attempts() {
    let refuses = Receiver::start(400, Duration::ZERO);
    let dead_port = free_port(); // nothing listens here
    let prefix = unique("dlq");
    let config = config_dir(&format!(
        r#"[delivery]
max_attempts = 3
initial_backoff = "1s"
max_backoff = "1s"

[[delivery.webhooks]]
name = "down"
url = "http://127.0.0.1:{dead_port}/hook"
secret_env = "{SECRET_ENV}"

[[delivery.webhooks]]
name = "refuses"
url = "{}"
"#,
        refuses.url("/hook")
    ));
    let _deliver = Proc::start("deliver", config.path(), &prefix);
    let rt = rt();
    let p = producer();
    let ev = page(1);
    let started = Instant::now();
    rt.block_on(produce(
        &p,
        &format!("{prefix}.escalations"),
        None,
        ev.to_string().as_bytes(),
    ));
    let dlq = reader(&rt, &format!("{prefix}.delivery.dlq"));
    let records = rt.block_on(read_until(&dlq, Duration::from_secs(90), |r| r.len() >= 2));
    assert_eq!(records.len(), 2, "one dead letter per failing sink");
    let by_sink = |s: &str| {
        records
            .iter()
            .find(|r| r.headers.get("klaxon-sink").map(String::as_str) == Some(s))
            .unwrap_or_else(|| panic!("no dead letter for {s}: {records:?}"))
    };
    let down = by_sink("down");
    assert_eq!(down.headers["klaxon-attempts"], "3");
    assert!(
        down.headers["klaxon-error"].contains("connect")
            || down.headers["klaxon-error"].contains("refused"),
        "{:?}",
        down.headers
    );
    assert_eq!(down.key.as_deref(), ev["event_id"].as_str());
    assert_eq!(down.json(), ev, "the original event");
    assert!(down.headers["klaxon-source"].starts_with(&format!("{prefix}.escalations/")));
    // Three attempts with 1 s (±jitter, at least half) between them.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let refused = by_sink("refuses");
    assert_eq!(
        refused.headers["klaxon-attempts"], "1",
        "a 400 is not retried"
    );
    assert_eq!(refused.headers["klaxon-error"], "HTTP 400");
    assert_eq!(refuses.received().len(), 1);
    assert!(
        refuses.received()[0].header("x-klaxon-signature").is_none(),
        "no secret_env: unsigned"
    );
}

#[test]
fn a_sigkill_of_the_delivery_stage_loses_no_page() {
    const PAGES: usize = 16;
    let sink = Receiver::start(200, Duration::from_millis(300));
    let prefix = unique("kill");
    let config = config_dir(&format!(
        r#"[delivery]
max_in_flight = 2
max_attempts = 5
initial_backoff = "1s"
max_backoff = "2s"

[[delivery.webhooks]]
name = "soc-bot"
url = "{}"
secret_env = "{SECRET_ENV}"
"#,
        sink.url("/hook")
    ));
    let rt = rt();
    let p = producer();
    let pages: Vec<Value> = (0..PAGES).map(|n| page(1000 + n)).collect();
    let mut first = Proc::start("deliver", config.path(), &prefix);
    for ev in &pages {
        rt.block_on(produce(
            &p,
            &format!("{prefix}.escalations"),
            ev["incident_id"].as_str(),
            ev.to_string().as_bytes(),
        ));
    }
    sink.wait_for("the first pages", Duration::from_secs(60), |got| {
        got.len() >= 4
    });
    first.sigkill();
    let before = sink.received().len();
    assert!(before < PAGES, "killed mid-way ({before} of {PAGES})");
    let _second = Proc::start("deliver", config.path(), &prefix);
    let want: BTreeSet<String> = pages
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect();
    sink.wait_for(
        "every page after the restart",
        Duration::from_secs(90),
        |got| {
            let keys: BTreeSet<String> = got
                .iter()
                .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
                .collect();
            want.is_subset(&keys)
        },
    );
    for r in sink.received() {
        assert_signed(&r);
        assert!(want.contains(r.header("idempotency-key").unwrap_or("")));
    }
}

/// Delivery latency (event produced → webhook answered) on this machine, printed for the notes;
/// nothing is asserted about time (run with `--nocapture` to see it).
#[test]
fn delivery_latency_is_measured() {
    const N: usize = 200;
    let sink = Receiver::start(200, Duration::ZERO);
    let prefix = unique("latency");
    let config = config_dir(&format!(
        "[delivery]\n[[delivery.webhooks]]\nname = \"soc-bot\"\nurl = \"{}\"\nsecret_env = \"{SECRET_ENV}\"\n",
        sink.url("/hook")
    ));
    let _deliver = Proc::start("deliver", config.path(), &prefix);
    let rt = rt();
    let p = producer();
    // Warm up: the group must have its partitions before the timing starts.
    rt.block_on(produce(
        &p,
        &format!("{prefix}.escalations"),
        None,
        page(0).to_string().as_bytes(),
    ));
    sink.wait_for("the warm-up page", Duration::from_secs(60), |g| {
        !g.is_empty()
    });
    let mut sent = Vec::new();
    for n in 1..=N {
        let ev = page(n);
        sent.push((
            ev["event_id"].as_str().unwrap_or("").to_string(),
            Instant::now(),
        ));
        rt.block_on(produce(
            &p,
            &format!("{prefix}.escalations"),
            None,
            ev.to_string().as_bytes(),
        ));
        std::thread::sleep(Duration::from_millis(20));
    }
    sink.wait_for("every timed page", Duration::from_secs(60), |g| g.len() > N);
    let got = sink.received();
    let mut ms: Vec<f64> = sent
        .iter()
        .filter_map(|(id, t0)| {
            got.iter()
                .find(|r| r.header("idempotency-key") == Some(id.as_str()))
                .map(|r| r.at.duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    assert_eq!(ms.len(), N);
    let q = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    eprintln!(
        "delivery latency over {N} pages (produce → webhook received): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        q(0.50),
        q(0.99),
        q(1.0)
    );
    let _ = PathBuf::new();
}
