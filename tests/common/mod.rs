//! Helpers shared by the engine test suites: the shipped config, JSON → input, an event-time
//! replay that returns the escalation events as JSON, and a small live-style driver for tests
//! that need to call `handle_timeout` at exact instants.
#![allow(dead_code)]

use klaxon::decode::{decode, Expect};
use klaxon::engine::Engine;
use klaxon::model::Input;
use klaxon::replay::{self, BadLine};
use klaxon::settings::Config;
use klaxon::time::Timestamp;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The day every scenario happens on (output offset +08:00).
pub const DAY: &str = "2026-11-24";

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped config, loaded once per test binary.
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        klaxon::settings::load(&dir).unwrap_or_else(|e| panic!("shipped config must load: {e}"))
    })
}

/// A fresh engine on the shipped config.
pub fn engine() -> Engine {
    Engine::from_config(config())
}

/// `"08:05"` or `"08:05:30"` → `2026-11-24T08:05:00+08:00`; a full RFC 3339 time is kept.
pub fn t(time: &str) -> String {
    if time.contains('T') {
        return time.to_string();
    }
    match time.len() {
        5 => format!("{DAY}T{time}:00+08:00"),
        _ => format!("{DAY}T{time}+08:00"),
    }
}

/// The instant of [`t`].
pub fn ts(time: &str) -> Timestamp {
    let s = t(time);
    Timestamp::parse_rfc3339(&s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Decodes one JSON record (alert or command) the way the service does.
pub fn alert(json: Value) -> Input<'static> {
    let bytes = serde_json::to_vec(&json).expect("serialize test record");
    decode(&bytes, Expect::Either, 0)
        .unwrap_or_else(|e| panic!("test record must decode ({e}): {json}"))
        .into_owned()
}

/// Same as [`alert`]; reads better for commands.
pub fn command(json: Value) -> Input<'static> {
    alert(json)
}

/// Output of one replay: the events as JSON, the exact bytes, and the skipped lines.
pub struct Replay {
    pub events: Vec<Value>,
    pub bytes: Vec<u8>,
    pub bad: Vec<BadLine>,
    pub engine: Engine,
}

/// Replays JSON lines (alerts and commands) through `klaxon::replay::run` on event time; with
/// `until`, the clock then advances so timers up to it fire.
pub fn run(lines: &[Value], until: Option<&str>) -> Vec<Value> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    replay_text(&text, until).events
}

/// Replays raw text (one record per line).
pub fn replay_text(text: &str, until: Option<&str>) -> Replay {
    let mut engine = engine();
    let mut bytes = Vec::new();
    let mut bad = Vec::new();
    let until = until.map(ts);
    replay::run(
        &mut engine,
        text.as_bytes(),
        config().settings.input.max_record_bytes,
        until,
        &mut bytes,
        |b| bad.push(b.clone()),
    )
    .expect("replay into memory cannot fail");
    let events = parse_lines(&bytes);
    Replay {
        events,
        bytes,
        bad,
        engine,
    }
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("output is UTF-8")
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("output line is JSON ({e}): {l}"))
        })
        .collect()
}

/// A driver that calls the engine the way the live service does: its clock never goes back (a
/// late record is handled at its own event time, but timers run on the driver's clock), timers
/// due before an input fire first, and anything an input makes due already fires right after it.
/// `tick` gives exact control over `handle_timeout`.
pub struct Live {
    pub engine: Engine,
    pub now: Timestamp,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            engine: engine(),
            now: Timestamp(i64::MIN),
        }
    }
}

impl Live {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one record at the driver's clock (advanced to the record's time if later).
    pub fn send(&mut self, record: Value) -> Vec<Value> {
        let input = alert(record);
        self.now = self.now.max(input.time());
        let mut out = self.timeout(self.now);
        self.engine.handle(input);
        out.extend(self.drain());
        out.extend(self.timeout(self.now));
        out
    }

    /// `handle_timeout(at)`; returns the events it produced.
    pub fn tick(&mut self, at: &str) -> Vec<Value> {
        self.tick_ts(ts(at))
    }

    pub fn tick_ts(&mut self, at: Timestamp) -> Vec<Value> {
        self.now = self.now.max(at);
        self.timeout(at)
    }

    /// Every `handle_timeout(at)` step until nothing is due, as the live driver loops.
    pub fn timeout(&mut self, at: Timestamp) -> Vec<Value> {
        let mut out = Vec::new();
        self.engine.run_timers(at, |ev| {
            out.push(serde_json::to_value(&ev).expect("event serializes"))
        });
        out
    }

    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(ev) = self.engine.poll_output() {
            out.push(serde_json::to_value(&ev).expect("event serializes"));
        }
        out
    }
}

/// Events of one type.
pub fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

/// Events of one type for one incident.
pub fn of<'a>(events: &'a [Value], incident: &str, ty: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == ty && e["incident_id"] == incident)
        .collect()
}

/// The id of the incident the first `incident.opened` event names whose first alert is `alert_id`.
pub fn incident_opened_by(events: &[Value], alert_id: &str) -> String {
    events
        .iter()
        .find(|e| e["type"] == "incident.opened" && e["alert_ids"][0] == alert_id)
        .and_then(|e| e["incident_id"].as_str())
        .unwrap_or_else(|| panic!("no incident.opened for alert {alert_id}"))
        .to_string()
}

/// `at` of an event as an instant.
pub fn at_of(ev: &Value) -> Timestamp {
    instant(&ev["at"])
}

/// An RFC 3339 string field as an instant.
pub fn instant(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    Timestamp::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Asserts that every event has an `event_id` and no two share one (consumers de-duplicate on
/// it, so a repeat would be a lost event to them).
pub fn assert_event_ids_unique(events: &[Value]) {
    let mut seen = std::collections::BTreeSet::new();
    for e in events {
        let id = e["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("an event without an event id: {e}"));
        assert!(seen.insert(id), "an event id repeats: {e}");
    }
}

/// `(type, at)` pairs, handy in assertion messages.
pub fn timeline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["at"].as_str().unwrap_or("?"),
                e["type"].as_str().unwrap_or("?"),
                e["incident_id"].as_str().unwrap_or("?"),
                e["level"].as_str().unwrap_or("")
            )
        })
        .collect()
}
