//! Escalation policies (docs/spec.md §10) as the people paged see them: who is paged when a report falls
//! due, who next when nobody acknowledges it, who when the deadline nears and who when it has
//! passed — and how `ack`, `report_filed`, `dismiss` and `resolve` end (or do not end) the steps.
//! Steps are timers in the incident state: a snapshot restored at any cut gives the same pages.

mod common;

use common::{assert_event_ids_unique, t, ts, Live};
use klaxon::engine::{Engine, EngineOptions};
use klaxon::settings::Config;
use klaxon::time::Timestamp;
use serde_json::{json, Value};
use std::sync::Arc;

/// A CII incident (1 h window) at 较大 from 08:00: a leak of 1.2 M records on the grid's SCADA.
fn cii_alert(id: &str, at: &str) -> Value {
    json!({
        "id": id, "timestamp": t(at), "source": "test", "title": "leak", "category": "leak",
        "incident_key": "k", "operator": "gd-grid", "asset": "gd-grid-scada",
        "impact": {"personal_info_records": 1_200_000},
    })
}

fn cmd(command: &str, at: &str, extra: Value) -> Value {
    let mut v = json!({"command": command, "incident_id": "@k", "at": t(at), "by": "alice"});
    if let (Some(o), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

fn pages(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "escalation.page")
        .collect()
}

/// `"HH:MM step targets"` for each page, in order.
fn summary(events: &[Value]) -> Vec<String> {
    pages(events)
        .iter()
        .map(|e| {
            let targets: Vec<&str> = e["targets"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t["id"].as_str()).collect())
                .unwrap_or_default();
            format!(
                "{} {} {}",
                &e["at"].as_str().unwrap_or("?")[11..16],
                e["step"],
                targets.join(",")
            )
        })
        .collect()
}

/// Drives a live-style engine: each record, then ticks every minute up to `until`.
fn drive(live: &mut Live, records: &[Value], until: &str) -> Vec<Value> {
    drive_from(live, records, ts("07:59"), until)
}

fn drive_from(live: &mut Live, records: &[Value], from: Timestamp, until: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut records: Vec<&Value> = records.iter().collect();
    records.sort_by_key(|r| {
        ts(r.get("timestamp")
            .or_else(|| r.get("at"))
            .and_then(Value::as_str)
            .unwrap_or("00:00"))
    });
    let end = ts(until);
    let mut now = from;
    let mut next = records.into_iter().peekable();
    while now <= end {
        while let Some(r) = next.next_if(|r| {
            ts(r.get("timestamp")
                .or_else(|| r.get("at"))
                .and_then(Value::as_str)
                .unwrap_or(""))
                <= now
        }) {
            out.extend(live.send(r.clone()));
        }
        out.extend(live.tick_ts(now));
        now = now.plus(klaxon::time::Millis(60_000));
    }
    out
}

fn run(records: &[Value], until: &str) -> Vec<Value> {
    drive(&mut Live::new(), records, until)
}

#[test]
fn the_default_policy_pages_duty_then_lead_then_ciso_then_everyone() {
    let ev = run(&[cii_alert("a1", "08:00")], "10:01");
    assert_eq!(
        summary(&ev),
        [
            "08:00 1 duty",
            "08:10 2 duty-lead",
            "08:30 3 ciso",
            "09:00 4 duty,duty-lead,ciso",
            "09:30 4 duty,duty-lead,ciso",
            "10:00 4 duty,duty-lead,ciso",
        ]
    );
    let p = pages(&ev);
    // Deterministic ids: report, step, and the overdue repeat for an `on` step.
    assert!(p[0]["event_id"]
        .as_str()
        .is_some_and(|id| id.ends_with("/escalation.page/initial/1")));
    assert!(p[4]["event_id"]
        .as_str()
        .is_some_and(|id| id.ends_with("/escalation.page/initial/4/2")));
    // The obligation's deadline and time left, and a reason a person can read.
    assert_eq!(p[1]["deadline"], t("09:00"));
    assert_eq!(p[1]["seconds_remaining"], 3000);
    assert_eq!(
        p[1]["reason"],
        "not acknowledged 10m after the initial report fell due \
         (deadline 2026-11-24T09:00:00+08:00, 50m left)"
    );
    assert_eq!(p[3]["seconds_remaining"], 0);
    assert_eq!(p[1]["targets"][0]["labels"]["team"], "soc-lead");
    assert_eq!(p[1]["policy"], "reportable");
    assert_eq!(p[1]["report_kind"], "initial");
    assert_eq!(p[1]["operator"]["province"], "广东省");
    // The page follows the report event it goes with.
    let due = ev.iter().position(|e| e["type"] == "report.due");
    let first_page = ev.iter().position(|e| e["type"] == "escalation.page");
    assert!(due < first_page);
}

#[test]
fn an_ack_ends_the_not_acknowledged_step_and_nothing_else() {
    let ev = run(
        &[cii_alert("a1", "08:00"), cmd("ack", "08:05", json!({}))],
        "09:01",
    );
    assert_eq!(
        summary(&ev),
        [
            "08:00 1 duty",
            "08:30 3 ciso",
            "09:00 4 duty,duty-lead,ciso"
        ]
    );
}

#[test]
fn an_ack_at_the_step_s_instant_comes_too_late() {
    // Timers due at or before an input fire first: "not acknowledged within 10 minutes".
    let ev = run(
        &[cii_alert("a1", "08:00"), cmd("ack", "08:10", json!({}))],
        "08:40",
    );
    assert_eq!(
        summary(&ev),
        ["08:00 1 duty", "08:10 2 duty-lead", "08:30 3 ciso"]
    );
}

#[test]
fn an_ack_before_the_report_fell_due_does_not_count() {
    // Acked while still 一般; it becomes reportable at 08:20 (1.2 M records).
    let general = json!({
        "id": "a0", "timestamp": t("08:00"), "incident_key": "k", "operator": "gd-grid",
        "asset": "gd-grid-scada", "impact": {"personal_info_records": 10},
    });
    let ev = run(
        &[
            general,
            cmd("ack", "08:01", json!({})),
            cii_alert("a1", "08:20"),
        ],
        "08:40",
    );
    assert_eq!(summary(&ev), ["08:20 1 duty", "08:30 2 duty-lead"]);
}

#[test]
fn filing_ends_every_remaining_step_of_the_report() {
    let ev = run(
        &[
            cii_alert("a1", "08:00"),
            cmd(
                "report_filed",
                "08:20",
                json!({"channel": "12387", "reference": "R1"}),
            ),
        ],
        "10:30",
    );
    assert_eq!(summary(&ev), ["08:00 1 duty", "08:10 2 duty-lead"]);
}

#[test]
fn dismiss_ends_all_steps() {
    let ev = run(
        &[
            cii_alert("a1", "08:00"),
            cmd("dismiss", "08:05", json!({"reason": "test data"})),
        ],
        "10:30",
    );
    assert_eq!(summary(&ev), ["08:00 1 duty"]);
}

#[test]
fn resolving_ends_no_step_of_a_due_report() {
    let ev = run(
        &[
            cii_alert("a1", "08:00"),
            cmd("ack", "08:02", json!({})),
            cmd("resolve", "08:15", json!({})),
        ],
        "09:01",
    );
    // The summary report falls due at 08:15 (its own policy pages the duty officer).
    assert_eq!(
        summary(&ev),
        [
            "08:00 1 duty",
            "08:15 1 duty",
            "08:30 3 ciso",
            "09:00 4 duty,duty-lead,ciso"
        ]
    );
    let summary_page = pages(&ev)[1];
    assert_eq!(summary_page["policy"], "summary");
    assert_eq!(summary_page["report_kind"], "summary");
}

#[test]
fn a_merge_that_tightens_the_deadline_pages_each_step_once() {
    // 较大 on a government portal (not CII: a 4 h window from 08:00) is paged at 08:00 and
    // 08:10. At 09:00 the same leak turns up on the grid's SCADA (CII: due by 10:00) and the duty
    // officer folds that incident into the first at 09:05: the survivor now owes its initial
    // report by 10:00. The steps it already paged under its `initial` label stay paged (ids are
    // unique); the deadline-relative ones follow the new deadline.
    let portal = json!({
        "id": "p1", "timestamp": t("08:00"), "source": "test", "title": "leak", "category": "leak",
        "incident_key": "k", "operator": "sc-gov", "asset": "sc-gov-portal",
        "impact": {"personal_info_records": 1_200_000},
    });
    let mut scada = cii_alert("a1", "09:00");
    scada["incident_key"] = json!("k2");
    let merge = json!({
        "command": "merge", "incident_id": "@k2", "into": "@k", "at": t("09:05"), "by": "alice",
    });
    let ev = run(&[portal, scada, merge], "10:01");
    assert_event_ids_unique(&ev);
    assert_eq!(
        summary(&ev),
        [
            "08:00 1 duty",
            "08:10 2 duty-lead",
            "09:00 1 duty",
            "09:30 3 ciso",
            "10:00 4 duty,duty-lead,ciso",
        ]
    );
    let survivor = pages(&ev)[0]["incident_id"].clone();
    assert!(pages(&ev)[3..].iter().all(|p| p["incident_id"] == survivor));
    assert_eq!(pages(&ev)[3]["deadline"], t("10:00"));
}

/// The shipped config with `escalation.toml` replaced.
fn config_with_policy(policy: &str) -> Config {
    let src = common::manifest_dir().join("config");
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&src).expect("config dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    let mappings = src.join("mappings");
    if mappings.is_dir() {
        std::fs::create_dir_all(dir.path().join("mappings")).expect("mkdir");
        for entry in std::fs::read_dir(&mappings).expect("mappings") {
            let entry = entry.expect("entry");
            std::fs::copy(
                entry.path(),
                dir.path().join("mappings").join(entry.file_name()),
            )
            .expect("copy");
        }
    }
    std::fs::write(dir.path().join("escalation.toml"), policy).expect("write");
    klaxon::settings::load(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn live_on(config: &Config) -> Live {
    Live {
        engine: Engine::new(
            Arc::new(config.ruleset.clone()),
            Arc::new(config.registry.clone()),
            EngineOptions::from_config(config),
        ),
        now: Timestamp(i64::MIN),
    }
}

#[test]
fn every_step_kind_fires_as_written() {
    let config = config_with_policy(
        r#"
[[policy]]
name = "cii-only"
match = { level_at_least = "relatively_major", operator_class = "cii", report_kind = "initial" }
steps = [
  { on = "report.reminder", notify = ["a"] },
  { after = "5m", notify = ["b"] },
  { after = "15m", unless = "filed", notify = ["b"] },
  { before_deadline = "20m", unless = "acknowledged", notify = ["a", "b"] },
]
[[policy]]
name = "never"
steps = [{ on = "report.due", notify = ["a"] }]
[targets.a]
labels = { team = "a" }
[targets.b]
"#,
    );
    let ev = drive(&mut live_on(&config), &[cii_alert("a1", "08:00")], "09:05");
    // Reminders at 08:30 and 08:50 (30 m and 10 m before 09:00); no `report.due` step in the
    // first policy, and the second is never consulted (the first match wins).
    assert_eq!(
        summary(&ev),
        [
            "08:05 2 b",
            "08:15 3 b",
            "08:30 1 a",
            "08:40 4 a,b",
            "08:50 1 a"
        ]
    );
    assert!(pages(&ev)[2]["event_id"]
        .as_str()
        .is_some_and(|id| id.ends_with("/escalation.page/initial/1/30m")));
    // A `major`-only policy does not match a 较大 incident: nobody is paged.
    let config = config_with_policy(
        r#"
[[policy]]
name = "major"
match = { level_at_least = "major" }
steps = [{ on = "report.due", notify = ["a"] }]
[targets.a]
"#,
    );
    let ev = drive(&mut live_on(&config), &[cii_alert("a1", "08:00")], "09:05");
    assert!(pages(&ev).is_empty());
}

/// The changelog's view of the engine: every incident as its record.
fn snapshot(engine: &Engine) -> Vec<Vec<u8>> {
    engine
        .incidents_sorted()
        .into_iter()
        .map(|i| serde_json::to_vec(i).expect("incident serializes"))
        .collect()
}

#[test]
fn pages_survive_a_restore_at_any_cut_and_fire_once() {
    let records = vec![
        cii_alert("a1", "08:00"),
        cmd("ack", "08:12", json!({})),
        json!({
            "id": "b1", "timestamp": t("08:03"), "incident_key": "other", "operator": "mof",
            "asset": "mof-budget", "impact": {"personal_info_records": 1_200_000},
        }),
        cmd(
            "report_filed",
            "09:40",
            json!({"channel": "12387", "reference": "R"}),
        ),
    ];
    let whole = run(&records, "11:00");
    let whole_ids: Vec<&str> = whole
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert!(pages(&whole).len() >= 6, "{:?}", summary(&whole));
    // Cut after each minute's work: snapshot through the changelog format, restore into a fresh
    // engine, carry on. Pages before the cut plus pages after it are the uninterrupted pages.
    for cut in [
        "08:00", "08:09", "08:10", "08:11", "08:31", "09:00", "09:45",
    ] {
        let (before, after): (Vec<Value>, Vec<Value>) = records.iter().cloned().partition(|r| {
            ts(r.get("timestamp")
                .or_else(|| r.get("at"))
                .and_then(Value::as_str)
                .unwrap_or(""))
                <= ts(cut)
        });
        let mut first = Live::new();
        let mut got = drive(&mut first, &before, cut);
        let mut second = Live::new();
        for rec in snapshot(&first.engine) {
            let inc = klaxon::runtime::changelog::incident_from_record(&rec).expect("restores");
            second.engine.restore(inc);
        }
        second.now = first.now;
        // Resume a minute after the cut, as the uninterrupted driver would.
        let rest = drive_from(
            &mut second,
            &after,
            first.now.plus(klaxon::time::Millis(60_000)),
            "11:00",
        );
        got.extend(rest);
        let got_ids: Vec<&str> = got.iter().filter_map(|e| e["event_id"].as_str()).collect();
        assert_eq!(got_ids, whole_ids, "cut at {cut}");
        assert_eq!(got, whole, "cut at {cut}: same bytes");
    }
}

#[test]
fn a_replay_gives_the_same_pages_byte_for_byte() {
    let text = std::fs::read_to_string(common::manifest_dir().join("examples/day.jsonl"))
        .expect("the example day");
    let a = common::replay_text(&text, Some("2026-11-25T00:00:00+08:00"));
    let b = common::replay_text(&text, Some("2026-11-25T00:00:00+08:00"));
    assert_eq!(a.bytes, b.bytes);
    assert!(a.events.iter().any(|e| e["type"] == "escalation.page"));
}

#[test]
fn check_config_names_the_file_and_key_of_a_bad_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = common::manifest_dir().join("config");
    for name in [
        "default.toml",
        "grading.toml",
        "registry.toml",
        "reporting.toml",
        "recipients.toml",
    ] {
        std::fs::copy(src.join(name), dir.path().join(name)).expect("copy");
    }
    std::fs::write(
        dir.path().join("escalation.toml"),
        "[[policy]]\nname = \"p\"\nsteps = [{ after = \"10m\", notify = [\"nobody\"] }]\n",
    )
    .expect("write");
    let err = klaxon::settings::load(dir.path()).expect_err("unknown target");
    let text = err.to_string();
    assert!(
        text.contains("escalation.toml: policy[0].steps[0].notify[0]: unknown target \"nobody\""),
        "{text}"
    );
}
