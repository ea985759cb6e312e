//! The operations package against the real thing: every metric the Grafana dashboard and the
//! Prometheus rules query is one Klaxon exports; promtool checks and unit-tests the rules; and a
//! real Prometheus server scrapes a running `klaxon run`, finds its series and evaluates the
//! shipped alerting rules against them without errors.
//!
//! Prometheus and promtool come from `scripts/prometheus.sh` (PATH, or Debian's package extracted
//! into .tools/prometheus). If they cannot be obtained these tests fail, saying why.

mod kafka_support;

use kafka_support::{free_port, http_get, root, unique, Klaxon, Topics};
use klaxon::telemetry::metrics::EXPORTED;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DASHBOARD: &str = "deploy/grafana/dashboards/klaxon.json";
const RULES: &str = "deploy/prometheus/klaxon-rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/klaxon-rules.test.yml";
const PROM_CONFIG: &str = "deploy/prometheus/prometheus.yml";

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `klaxon_*` name in a PromQL expression.
fn klaxon_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(off) = expr[i..].find("klaxon_") {
        let start = i + off;
        let word_start =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b':')
        {
            end += 1;
        }
        if word_start {
            out.push(expr[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// The exported metric a series name belongs to (histograms expose `_bucket`, `_sum`, `_count`).
fn exported_metric(name: &str) -> Option<&'static str> {
    if let Some(m) = EXPORTED.iter().find(|m| **m == name) {
        return Some(m);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        EXPORTED.iter().find(|m| **m == base).copied()
    })
}

/// The PromQL of a rules file (or a rule unit-test file): `expr:` and `series:` lines. The YAML is
/// simple enough that no YAML parser is needed (no multi-line expressions).
fn yaml_exprs(rel: &str) -> Vec<(String, String)> {
    read(rel)
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            let rest = t
                .strip_prefix("expr:")
                .or_else(|| t.strip_prefix("series:"))?;
            let e = rest
                .trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_string();
            Some((format!("{rel}:{}", n + 1), e))
        })
        .collect()
}

/// Every query of the dashboard: panel targets and template variables.
fn dashboard_exprs() -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut out = Vec::new();
    fn panels(v: &Value, out: &mut Vec<(String, String)>) {
        for p in v.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?} {}", t["refId"]), e.to_string()));
                }
            }
            panels(&p["panels"], out); // panels inside collapsed rows
        }
    }
    panels(&d["panels"], &mut out);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let q = match &v["query"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("query").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(q) = q {
            out.push((format!("variable {}", v["name"]), q));
        }
    }
    out
}

#[test]
fn every_dashboard_and_rule_query_names_an_exported_metric() {
    let mut exprs = dashboard_exprs();
    let n_dashboard = exprs.len();
    let rules = yaml_exprs(RULES);
    assert!(
        rules.len() >= 5,
        "expected the alerting rules' exprs in {RULES}, got {rules:?}"
    );
    exprs.extend(rules);
    exprs.extend(yaml_exprs(RULE_TESTS));
    assert!(
        n_dashboard >= 10,
        "expected the dashboard's queries, got {n_dashboard}"
    );

    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (where_, e) in &exprs {
        for name in klaxon_names(e) {
            match exported_metric(&name) {
                Some(m) => {
                    used.insert(m);
                }
                None => unknown.push(format!("{where_}: {name} in {e}")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "queries name metrics Klaxon does not export (klaxon::telemetry::metrics::EXPORTED):\n{}",
        unknown.join("\n")
    );
    assert!(used.contains("klaxon_ready") && used.contains("klaxon_reports_overdue"));
    let unused: Vec<&str> = EXPORTED
        .iter()
        .copied()
        .filter(|m| !used.contains(m))
        .collect();
    if !unused.is_empty() {
        eprintln!("note: exported but neither charted nor alerted on: {unused:?}");
    }
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        klaxon_names("histogram_quantile(0.5, sum by (le) (rate(klaxon_processing_latency_seconds_bucket{instance=~\"$instance\"}[5m])))"),
        ["klaxon_processing_latency_seconds_bucket"]
    );
    assert_eq!(
        klaxon_names("up{job=\"klaxon\"} == 0 and xklaxon_a"),
        Vec::<String>::new()
    );
    assert_eq!(
        exported_metric("klaxon_processing_latency_seconds_count"),
        Some("klaxon_processing_latency_seconds")
    );
    assert_eq!(exported_metric("klaxon_ready_sum"), Some("klaxon_ready"));
    assert_eq!(exported_metric("klaxon_made_up_total"), None);
}

// ------------------------------------------------------------------ promtool and Prometheus

/// The path `scripts/prometheus.sh <what>` prints; panics with the script's reason otherwise.
fn prometheus_tool(what: &str) -> PathBuf {
    // One lookup at a time: the first one may install, and the tests run in parallel.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(root().join("scripts/prometheus.sh"))
        .arg(what)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/prometheus.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/prometheus.sh {what} could not provide the binary (this test needs it; install \
         Prometheus or set PROMETHEUS_BIN / PROMTOOL_BIN):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.is_file(),
        "scripts/prometheus.sh {what} printed {path:?}, not a file"
    );
    path
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let promtool = prometheus_tool("promtool");
    let dir = root().join("deploy/prometheus");
    let out = run_ok(Command::new(&promtool).current_dir(&dir).args([
        "check",
        "rules",
        "klaxon-rules.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(Command::new(&promtool).current_dir(&dir).args([
        "test",
        "rules",
        "klaxon-rules.test.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(root().join(PROM_CONFIG)),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A Prometheus server in a temporary directory, killed (and its data removed) on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape_port: u16) -> Prometheus {
        let bin = prometheus_tool("server");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(root().join(RULES), dir.path().join("klaxon-rules.yml")).expect("copy rules");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - klaxon-rules.yml\n\
             scrape_configs:\n  - job_name: klaxon\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             metrics_path: /metrics\n    static_configs:\n      - targets: [\"127.0.0.1:{scrape_port}\"]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(&bin)
            .current_dir(dir.path())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Prometheus { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query` → the result vector (None while the server is not answering).
    fn query(&self, q: &str) -> Option<Vec<Value>> {
        let v: Value =
            serde_json::from_str(&self.fetch(&format!("/api/v1/query?query={}", encode(q)))?)
                .ok()?;
        v["data"]["result"].as_array().cloned()
    }

    /// Polls `q` until `ok` holds for its result, or panics with the server's log.
    fn wait_for(
        &mut self,
        q: &str,
        timeout: Duration,
        ok: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let until = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("prometheus exited ({st}):\n{}", self.log());
            }
            if let Some(r) = self.query(q) {
                if ok(&r) {
                    return r;
                }
                last = Some(r);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "query {q} not satisfied within {timeout:?}; last result {last:?}; prometheus log:\n{}",
            self.log()
        );
    }

    /// GET over HTTP/1.0, so that an answer larger than Go's 2 KB buffer is not chunked: the body.
    fn fetch(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        if !buf.starts_with("HTTP/1.0 200") && !buf.starts_with("HTTP/1.1 200") {
            return None;
        }
        buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    fn get_json(&self, path: &str) -> Value {
        let body = self
            .fetch(path)
            .unwrap_or_else(|| panic!("GET {path} failed:\n{}", self.log()));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(sample: &Value) -> &str {
    sample["value"][1].as_str().unwrap_or("")
}

/// Series that exist only once something happened (label values not known in advance): Kafka
/// client errors by kind. The dashboard shows "No data" for them until then.
const ONLY_AFTER_FIRST_EVENT: [&str; 1] = ["klaxon_kafka_errors_total"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_a_running_klaxon_and_evaluates_the_rules() {
    let t = Topics::new(&unique("prom"));
    // The delivery stage runs in-process (docs/spec.md §10), so its series are on this scrape too; its
    // Alertmanager is never called here (nothing pages).
    let k = Klaxon::start(
        &t,
        &[
            ("KLAXON__DELIVERY__ENABLED", "true"),
            ("KLAXON__DELIVERY__ALERTMANAGER__URL", "http://127.0.0.1:9"),
        ],
    );
    k.wait_ready(Duration::from_secs(60));
    let mut prom = Prometheus::start(k.metrics_port);

    // The first scrape: poll klaxon_ready (one small series) with the plain HTTP/1.1 client.
    let until = Instant::now() + Duration::from_secs(60);
    let ready: Vec<Value> = loop {
        if let Ok(Some(st)) = prom.child.try_wait() {
            panic!("prometheus exited ({st}):\n{}", prom.log());
        }
        let got = http_get(prom.port, "/api/v1/query?query=klaxon_ready")
            .ok()
            .filter(|(code, _)| *code == 200)
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default();
        if got.iter().any(|s| value(s) == "1") {
            break got;
        }
        assert!(
            Instant::now() < until,
            "klaxon_ready=1 not scraped within 60 s (last {got:?}); prometheus log:\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(ready[0]["metric"]["job"], "klaxon", "{ready:?}");
    assert_eq!(
        ready[0]["metric"]["instance"],
        format!("127.0.0.1:{}", k.metrics_port),
        "{ready:?}"
    );
    let up = prom.wait_for("up{job=\"klaxon\"}", Duration::from_secs(10), |r| {
        !r.is_empty()
    });
    assert_eq!(value(&up[0]), "1", "{up:?}");

    // Pre-registered series: one per rejection reason and one per event type, zeros until used.
    let rejected = prom.wait_for(
        "klaxon_records_rejected_total",
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );
    let reasons: BTreeSet<&str> = rejected
        .iter()
        .filter_map(|s| s["metric"]["reason"].as_str())
        .collect();
    for code in klaxon::decode::DecodeError::CODES {
        assert!(
            reasons.contains(code),
            "no klaxon_records_rejected_total{{reason=\"{code}\"}}: {reasons:?}"
        );
    }
    let emitted = prom.wait_for(
        "klaxon_escalations_emitted_total",
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );
    let kinds: BTreeSet<&str> = emitted
        .iter()
        .filter_map(|s| s["metric"]["type"].as_str())
        .collect();
    assert!(
        kinds.contains("report.due") && kinds.contains("report.overdue"),
        "{kinds:?}"
    );
    // The histogram's series, as the dashboard's latency panels query them.
    prom.wait_for(
        "klaxon_processing_latency_seconds_bucket",
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );

    // Some traffic, so that series labelled by topic or command exist: an alert and a command.
    let p = kafka_support::producer();
    let alert = serde_json::json!({"id": format!("{}-a1", t.prefix), "timestamp": kafka_support::at(0),
        "source": "test", "operator": "sz-tech", "asset": "sz-tech-vpn"});
    kafka_support::produce(&p, &t.alerts, None, alert.to_string().as_bytes()).await;
    let ack = serde_json::json!({"command": "ack", "incident_id": "INC-000000000000",
        "at": kafka_support::at(0), "by": "test"});
    kafka_support::produce(&p, &t.commands, None, ack.to_string().as_bytes()).await;

    // Every metric the dashboard and the rules use exists on the real scrape.
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (_, e) in dashboard_exprs().into_iter().chain(yaml_exprs(RULES)) {
        names.extend(klaxon_names(&e));
    }
    let until = Instant::now() + Duration::from_secs(30);
    let mut missing: Vec<String> = names
        .iter()
        .filter(|n| !ONLY_AFTER_FIRST_EVENT.contains(&n.as_str()))
        .cloned()
        .collect();
    while !missing.is_empty() && Instant::now() < until {
        missing.retain(|name| {
            prom.query(&format!("count({{__name__=\"{name}\"}})"))
                .is_none_or(|r| r.is_empty())
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        missing.is_empty(),
        "queried but not scraped from a running Klaxon: {missing:?}"
    );

    // The shipped alerting rules load and evaluate against these series without errors.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = prom.get_json("/api/v1/rules");
        let list: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        assert!(list.len() >= 6, "rules not loaded: {rules}");
        let evaluated = list.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001-"))
        });
        if evaluated {
            for r in &list {
                assert_eq!(
                    r["health"], "ok",
                    "rule {} fails against real series: {}",
                    r["name"], r["lastError"]
                );
            }
            // A healthy, ready replica raises none of the service alerts.
            let firing: Vec<&&Value> = list
                .iter()
                .filter(|r| r["state"] == "firing" || r["state"] == "pending")
                .collect();
            assert!(
                firing.is_empty(),
                "alerts active against an idle, ready Klaxon: {firing:?}"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "rules not evaluated within 30 s: {rules}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(prom);
    drop(k);
}

#[test]
fn the_prometheus_helper_cleans_up() {
    // Kill and data removal on drop: the directory is gone afterwards.
    let prom = Prometheus::start(free_port());
    let dir: PathBuf = prom.dir.path().to_path_buf();
    assert!(dir.join("prometheus.yml").exists());
    let pid = prom.child.id();
    drop(prom);
    assert!(!dir.exists(), "{dir:?} left behind");
    // wait() reaped it: no /proc entry, not even a zombie.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "prometheus {pid} still running"
    );
}
