//! Support for the integration tests: a real Kafka-protocol broker (started by the project's own
//! `scripts/broker.sh` unless `KAFKA_BROKERS` names one), the real `klaxon` binary as a child
//! process, and plain rdkafka clients to feed it and read what it says.
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The broker list: `KAFKA_BROKERS`, or a broker started once for this test binary by
/// `scripts/broker.sh` (and stopped by a watchdog when the test process exits).
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KAFKA_BROKERS") {
                if !b.trim().is_empty() {
                    return b;
                }
            }
            let out = Command::new(root().join("scripts/broker.sh"))
                .arg("start")
                .output()
                .expect("run scripts/broker.sh start");
            assert!(
                out.status.success(),
                "broker did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut brokers = String::new();
            let mut pid = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("KAFKA_BROKERS=") {
                    brokers = v.to_string();
                }
                if let Some(v) = line.strip_prefix("BROKER_PID=") {
                    pid = v.to_string();
                }
            }
            if !pid.is_empty() {
                let me = std::process::id();
                let script = format!(
                    "while kill -0 {me} 2>/dev/null; do sleep 1; done; '{}' stop {pid}",
                    root().join("scripts/broker.sh").display()
                );
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
            }
            brokers
        })
        .clone()
}

/// A unique prefix for one test's topics and groups.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::Relaxed),
        Instant::now().elapsed().as_nanos() % 1000
    )
}

/// A port nothing listens on, for a process a test starts. No two calls in one test process
/// return the same port: the kernel may hand a just-released port out again (CI once gave an
/// instance's metrics and desk listeners the same port, and it stopped with "Address already in
/// use").
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Topic names for one test.
#[derive(Clone, Debug)]
pub struct Topics {
    pub prefix: String,
    pub alerts: String,
    pub commands: String,
    pub escalations: String,
    pub dlq: String,
    pub changelog: String,
    pub repartition: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Topics {
            prefix: prefix.to_string(),
            alerts: format!("{prefix}.alerts"),
            commands: format!("{prefix}.commands"),
            escalations: format!("{prefix}.escalations"),
            dlq: format!("{prefix}.dlq"),
            changelog: format!("{prefix}.state"),
            repartition: format!("{prefix}.repartition"),
        }
    }
}

/// Desk tokens of the test config's principals, one per role (docs/spec.md §9).
pub const VIEWER_TOKEN: &str = "viewer-token-for-tests";
pub const DUTY_TOKEN: &str = "duty-token-for-tests";
pub const LEAD_TOKEN: &str = "lead-token-for-tests";
/// Principal names of those tokens.
pub const VIEWER: &str = "vera";
pub const DUTY: &str = "dora";
pub const LEAD: &str = "leo";

/// The key the tests sign commands with (id `test`, trusted for any principal), and the key of
/// the desk (id `desk`); a third key (id `narrow`) may sign only for `alice`, a fourth (id
/// `dora`) only for the duty officer `dora`.
fn key_seed(id: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, b) in id.bytes().cycle().take(32).enumerate() {
        seed[i] = b.wrapping_add(i as u8);
    }
    seed
}

fn key_file(dir: &std::path::Path, id: &str) -> PathBuf {
    use base64::Engine as _;
    let path = dir.join(format!("{id}.key"));
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(key_seed(id)),
    )
    .expect("write key");
    path
}

/// A signer for key `id` (`test`, `desk`, `narrow` or `dora`).
pub fn signer(id: &str) -> klaxon::signing::CommandSigner {
    let dir = test_config();
    klaxon::signing::CommandSigner::load(&dir.join(format!("{id}.key")), id).expect("key")
}

/// The shipped config with only what a user must add to send commands at all: the public keys
/// commands are signed with (`[[commands.keys]]`).
pub fn shipped_config() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let keys_dir = test_config();
        config_dir("klaxon-shipped-config", |_| {
            let mut extra =
                String::from("\n# Added by the tests: the keys commands are signed with.\n");
            push_command_keys(&mut extra, &keys_dir);
            extra
        })
    })
    .clone()
}

/// The shipped config plus what the tests need: the signing keys, the desk's key and one
/// principal per role. Written once per test binary.
pub fn test_config() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        config_dir("klaxon-test-config", |dir| {
            let mut extra = String::from("\n# Added by the tests (tests/kafka_support).\n");
            for id in ["test", "desk", "narrow", "dora"] {
                key_file(dir, id);
            }
            push_command_keys(&mut extra, dir);
            for (name, role, token) in [
                (VIEWER, "viewer", VIEWER_TOKEN),
                (DUTY, "duty_officer", DUTY_TOKEN),
                (LEAD, "lead", LEAD_TOKEN),
            ] {
                extra.push_str(&format!(
                    "[[desk.principals]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n\n",
                    klaxon::desk::auth::token_sha256(token)
                ));
            }
            extra
        })
    })
    .clone()
}

/// A fresh copy of `config/` under `target/tmp` (named after `name` and this process: test
/// binaries run side by side) with `extra(dir)` appended to its `default.toml`. Copies left by
/// test processes that have ended are removed first, so repeated runs do not pile them up.
fn config_dir(name: &str, extra: impl FnOnce(&std::path::Path) -> String) -> PathBuf {
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    remove_ended_copies(&parent, name);
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("config"), &dir);
    let extra = extra(&dir);
    let default = dir.join("default.toml");
    let mut text = std::fs::read_to_string(&default).expect("default.toml");
    text.push_str(&extra);
    std::fs::write(&default, text).expect("write default.toml");
    dir
}

/// Removes `<name>-<pid>` directories in `parent` whose process has ended (where `/proc` tells).
fn remove_ended_copies(parent: &std::path::Path, name: &str) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{name}-");
    for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file_name = e.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `[[commands.keys]]` for the three test keys whose secret halves are in `keys_dir`: `test`
/// and `desk` may sign for anyone, `narrow` only for `alice`.
fn push_command_keys(extra: &mut String, keys_dir: &std::path::Path) {
    for (id, principals) in [
        ("test", "[\"*\"]"),
        ("desk", "[\"*\"]"),
        ("narrow", "[\"alice\"]"),
        // The duty officer's own key (`klaxon ctl --key`), for her alone.
        ("dora", "[\"dora\"]"),
    ] {
        let public = klaxon::signing::CommandSigner::load(&keys_dir.join(format!("{id}.key")), id)
            .expect("key")
            .public_key();
        extra.push_str(&format!(
            "[[commands.keys]]\nid = \"{id}\"\npublic_key = \"{public}\"\nprincipals = {principals}\n\n"
        ));
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read config dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A running `klaxon run`, with its log lines collected.
pub struct Klaxon {
    pub child: Child,
    pub metrics_port: u16,
    /// Where its in-process desk listens.
    pub desk_port: u16,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Set when its standard error closes: the process has ended.
    ended: Arc<AtomicBool>,
}

impl Klaxon {
    /// With the tests' settings: 3 partitions, a 6 s session, small records, and the test's
    /// prefix as instance id (stable across restarts within a test; a second instance in the
    /// same group must set its own `KLAXON_INSTANCE_ID` in `extra_env`).
    pub fn start(topics: &Topics, extra_env: &[(&str, &str)]) -> Klaxon {
        Self::spawn("run", topics, true, extra_env)
    }

    /// On the shipped `config/` as a user runs it: only the broker address, the group and topic
    /// names and the metrics and desk ports are set (so the instance id is the host name, its
    /// default).
    pub fn start_shipped(topics: &Topics, extra_env: &[(&str, &str)]) -> Klaxon {
        Self::spawn("run", topics, false, extra_env)
    }

    /// `klaxon run` or `klaxon desk` (`what`), with the tests' settings.
    pub fn start_as(what: &str, topics: &Topics, extra_env: &[(&str, &str)]) -> Klaxon {
        Self::spawn(what, topics, true, extra_env)
    }

    fn spawn(
        what: &str,
        topics: &Topics,
        test_settings: bool,
        extra_env: &[(&str, &str)],
    ) -> Klaxon {
        let port = free_port();
        let desk_port = free_port();
        let config = if test_settings {
            test_config()
        } else {
            shipped_config()
        };
        // KLAXON_BIN: another build of the binary (a release build, for measurements).
        let bin =
            std::env::var("KLAXON_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_klaxon").into());
        let mut cmd = Command::new(bin);
        cmd.arg(what)
            .arg("--log-format")
            .arg("text")
            .arg("--config")
            .arg(&config);
        for (k, _) in std::env::vars() {
            if k.starts_with("KLAXON_") {
                cmd.env_remove(k);
            }
        }
        // Tests run in parallel: each desk on its own port.
        cmd.env("KLAXON__DESK__LISTEN", format!("127.0.0.1:{desk_port}"));
        if test_settings {
            cmd.env(
                "KLAXON__DESK__SIGNING_KEY_FILE",
                config.join("desk.key").display().to_string(),
            )
            .env("KLAXON__DESK__SIGNING_KEY_ID", "desk");
        }
        cmd.env("KAFKA_BROKERS", brokers())
            .env("RUST_LOG", "info,rdkafka=warn")
            .env("KLAXON__KAFKA__GROUP_ID", &topics.prefix)
            .env("KLAXON__TOPICS__ALERTS", &topics.alerts)
            .env("KLAXON__TOPICS__COMMANDS", &topics.commands)
            .env("KLAXON__TOPICS__ESCALATIONS", &topics.escalations)
            .env("KLAXON__TOPICS__DEAD_LETTER", &topics.dlq)
            .env("KLAXON__TOPICS__CHANGELOG", &topics.changelog)
            .env("KLAXON__TOPICS__REPARTITION", &topics.repartition)
            .env("KLAXON__METRICS__LISTEN", format!("127.0.0.1:{port}"));
        if test_settings {
            cmd.env("KLAXON__STATE__PARTITIONS", "3")
                .env("KLAXON__KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000")
                .env("KLAXON__KAFKA__PROPERTIES__HEARTBEAT_INTERVAL_MS", "500")
                .env("KLAXON__INPUT__MAX_RECORD_BYTES", "4096")
                .env("KLAXON_INSTANCE_ID", &topics.prefix);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn klaxon");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        if let Some(err) = child.stderr.take() {
            let (logs, ended) = (logs.clone(), ended.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if std::env::var_os("KLAXON_TEST_LOGS").is_some() {
                        eprintln!("[klaxon] {line}");
                    }
                    logs.lock().unwrap().push(line);
                }
                ended.store(true, Ordering::SeqCst);
            });
        }
        Klaxon {
            child,
            metrics_port: if what == "desk" { desk_port } else { port },
            desk_port,
            logs,
            ended,
        }
    }

    /// The `resumed:` line's figures (seconds from start to partitions assigned, and to their
    /// state restored), once the process has logged it.
    pub fn resumed(&self) -> Option<(f64, f64)> {
        let logs = self.logs.lock().unwrap();
        let line = logs.iter().find(|l| l.contains("resumed: start"))?;
        Some((
            number_after(line, "assigned_s")?,
            number_after(line, "restored_s")?,
        ))
    }

    /// Waits until `/readyz` answers 200; fails at once if the process ends first.
    pub fn wait_ready(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if http_get(self.metrics_port, "/readyz")
                .map(|(code, _)| code == 200)
                .unwrap_or(false)
            {
                return;
            }
            if self.ended.load(Ordering::SeqCst) {
                panic!(
                    "klaxon ended before it was ready; logs:\n{}",
                    self.logs.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "klaxon not ready within {timeout:?}; logs:\n{}",
            self.logs.lock().unwrap().join("\n")
        );
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait(Duration::from_secs(30))
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "klaxon did not exit within {timeout:?}; logs:\n{}",
                    self.logs.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Klaxon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key=` in a log line (colour codes skipped).
pub fn number_after(line: &str, key: &str) -> Option<f64> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let rest = plain.get(plain.find(key)? + key.len()..)?;
    let rest = rest.strip_prefix('=')?;
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let rest = &rest[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A minimal HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces one record; a record for a commands topic is signed with the `test` key, as every
/// producer of commands must (docs/spec.md §9).
pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, payload: &[u8]) {
    let sig = topic
        .ends_with(".commands")
        .then(|| signer("test").sign(payload));
    produce_with_signature(p, topic, key, payload, sig.as_deref()).await
}

/// Produces one record with the given `klaxon-signature` header, or none.
pub async fn produce_with_signature(
    p: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    signature: Option<&str>,
) {
    let mut rec = FutureRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(sig) = signature {
        rec = rec.headers(
            rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                key: klaxon::signing::HEADER,
                value: Some(sig.as_bytes()),
            }),
        );
    }
    p.send(rec, Duration::from_secs(10)).await.expect("produce");
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("JSON payload")
    }
}

pub fn consumer(topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Reads records until `done` says so or `timeout` passes.
pub async fn read_until(
    c: &StreamConsumer,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let until = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < until && !done(&out) {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(250), c.recv()).await {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for hd in h.iter() {
                    headers.insert(
                        hd.key.to_string(),
                        String::from_utf8_lossy(hd.value.unwrap_or(&[])).into_owned(),
                    );
                }
            }
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or(&[]).to_vec(),
                headers,
            });
        }
    }
    out
}

/// A series' value from `/metrics` (the line that starts with `series`), if it is there.
pub fn metric(port: u16, series: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Whether `group`'s committed offsets on `topic` (`partitions` partitions) cover all of it, and
/// it holds at least `at_least` records. Blocking (offset look-ups); call from a blocking task.
pub fn committed_covers(group: &str, topic: &str, partitions: i32, at_least: i64) -> bool {
    use klaxon::loadtest::{committed_sum, high_sum};
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create::<rdkafka::consumer::BaseConsumer>()
    else {
        return false;
    };
    match (
        committed_sum(&c, topic, partitions),
        high_sum(&c, topic, partitions),
    ) {
        (Some(committed), Some(high)) => high >= at_least && committed >= high,
        _ => false,
    }
}

/// An RFC 3339 time `offset_s` seconds from now, in +08:00.
pub fn at(offset_s: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(offset_s);
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

pub fn types(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or("").to_string())
        .collect()
}
