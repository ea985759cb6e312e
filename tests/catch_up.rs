//! Issue #18: one record must never take Klaxon down. However far the clock jumps, the engine
//! works in bounded steps and says once per report what it missed; implausible event times
//! never reach it (replay reports them by line, as the live router dead-letters them).

mod common;

use common::{alert, config, engine};
use klaxon::engine::{Engine, TIMEOUT_STEP_EVENTS};
use klaxon::time::{Millis, Timestamp, DAY, MINUTE};
use proptest::prelude::*;
use serde_json::{json, Value};

/// What the timer that reaches the step bound may add on top of it (a regrade's
/// `incident.graded`, `report.due`, a follow-up's due…).
const STEP_SLACK: usize = 16;

fn fmt(t: Timestamp) -> String {
    use chrono::Offset;
    t.format(chrono::Utc.fix())
}

/// A reportable CII outage still going on: it grows, crosses levels, and its reports fall due.
fn outage(id: &str, key: &str, at: Timestamp) -> Value {
    json!({
        "id": id, "timestamp": fmt(at), "incident_key": key,
        "operator": "gd-grid", "asset": "gd-grid-scada", "category": "outage",
        "impact": {"outage": {"scope": "whole", "since": fmt(at), "until": null},
                   "affected_population": 2_000_000}
    })
}

/// Every `handle_timeout(now)` step until nothing is due; the events of each step.
fn steps(e: &mut Engine, now: Timestamp, max_steps: usize) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for _ in 0..max_steps {
        let more = e.handle_timeout(now);
        let mut step = Vec::new();
        while let Some(ev) = e.poll_output() {
            step.push(serde_json::to_value(&ev).expect("event serializes"));
        }
        out.push(step);
        if !more {
            return out;
        }
    }
    panic!("still due after {max_steps} steps");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the record's time (year 1 to 9999, as if admission let it through) and however
    /// far the clock then jumps, no step emits more than the bound, and one record's report
    /// speaks a handful of times, not millions (#18: ~35 M events from one year-0001 alert).
    #[test]
    fn one_record_never_makes_more_than_a_bounded_step(
        at in -62_135_596_800_000i64..253_402_300_799_000,
        jump in prop_oneof![0i64..(2 * DAY), 0i64..(400 * DAY), 0i64..(9_000 * 365 * DAY)],
    ) {
        let at = Timestamp(at);
        let mut e = engine();
        e.handle(alert(outage("a-1", "k", at)));
        let first: Vec<_> = std::iter::from_fn(|| e.poll_output()).collect();
        prop_assert!(first.len() <= TIMEOUT_STEP_EVENTS);
        let now = at.plus(Millis(jump));
        let all = steps(&mut e, now, 100);
        let total: usize = all.iter().map(Vec::len).sum();
        for s in &all {
            prop_assert!(s.len() <= TIMEOUT_STEP_EVENTS + STEP_SLACK, "{} events in one step", s.len());
        }
        prop_assert!(total <= 64, "{total} events from one record after a jump of {}", Millis(jump));
        let overdue: Vec<&Value> = all.iter().flatten().filter(|e| e["type"] == "report.overdue").collect();
        prop_assert!(overdue.len() <= 3, "one folded overdue per report: {overdue:?}");
    }
}

#[test]
fn a_ten_day_backlog_drains_in_bounded_steps_with_one_overdue_event_per_report() {
    let t0 = common::ts("08:00");
    let mut e = engine();
    let n = 3_000;
    for i in 0..n {
        e.handle(alert(outage(&format!("a-{i}"), &format!("k{i}"), t0)));
        while e.poll_output().is_some() {}
    }
    let now = t0.plus(Millis(10 * DAY));
    let all = steps(&mut e, now, 10_000);
    assert!(all.len() > 10, "many steps: {}", all.len());
    for s in &all {
        assert!(s.len() <= TIMEOUT_STEP_EVENTS + STEP_SLACK, "{}", s.len());
    }
    let events: Vec<&Value> = all.iter().flatten().collect();
    let overdue: Vec<&&Value> = events
        .iter()
        .filter(|e| e["type"] == "report.overdue")
        .collect();
    assert!(
        !events.iter().any(|e| e["type"] == "report.reminder"),
        "stale reminders are not sent"
    );
    // Each incident: its initial report (due at once) is folded into one overdue event; the
    // growing outage makes it major, then particularly major, and each rise after the report
    // fell due adds no more than one folded event per report.
    let initial: Vec<&&&Value> = overdue
        .iter()
        .filter(|e| e["report_kind"] == "initial")
        .collect();
    assert_eq!(initial.len(), n);
    for e in &initial {
        assert_folds_every_missed_repeat(e, now);
    }
    // Event ids stay unique.
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let len = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), len, "event ids are unique");
    // A second pass at the same instant fires nothing; a day later, one more each.
    assert_eq!(steps(&mut e, now, 10).concat().len(), 0);
    let next = steps(&mut e, now.plus(Millis(DAY)), 10_000).concat();
    let again = next
        .iter()
        .filter(|e| e["type"] == "report.overdue" && e["report_kind"] == "initial")
        .count();
    assert_eq!(again, n, "the daily repeat");
    assert!(next.iter().all(|e| e.get("folded_repeats").is_none()));
}

/// An initial report's `report.overdue` fired at `now` after the clock jumped: the step the
/// schedule has reached by `now`, standing for every earlier one (`folded_repeats`), and how
/// long past the deadline it is (`overdue_for`).
fn assert_folds_every_missed_repeat(e: &Value, now: Timestamp) {
    let rule = &config()
        .ruleset
        .report_rule(klaxon::model::ReportKind::Initial)
        .overdue;
    let count = e["overdue_count"].as_u64().expect("count") as u32;
    assert_eq!(
        e["folded_repeats"].as_u64(),
        Some(u64::from(count - 1)),
        "{e}"
    );
    let deadline = common::instant(&e["deadline"]);
    assert_eq!(count, rule.step_at(now.since(deadline)), "{e}");
    assert_eq!(
        e["overdue_for"].as_str(),
        Some(rule.offset(count).to_string().as_str())
    );
}

fn replay(input: &str, until: Option<Timestamp>) -> (Vec<Value>, Vec<(usize, String, String)>) {
    let mut e = engine();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    klaxon::replay::run_with(
        &mut e,
        input.as_bytes(),
        0,
        &config().mappings,
        until,
        &mut out,
        |b| bad.push((b.line, b.error.code().to_string(), b.error.to_string())),
    )
    .expect("replay runs");
    (common::parse_lines(&out), bad)
}

#[test]
fn replay_reports_implausible_times_by_line_and_goes_on() {
    let t0 = common::ts("08:00");
    let mut year1 = outage("y1", "y1", t0);
    year1["timestamp"] = json!("0001-01-01T00:00:00Z");
    let mut year9999 = outage("y9", "y9", t0);
    year9999["timestamp"] = json!("9999-12-31T23:59:59Z");
    let mut inverted = outage("inv", "inv", t0);
    inverted["impact"]["outage"]["until"] = json!(fmt(t0.minus(Millis(MINUTE))));
    let normal = outage("ok", "ok", t0);
    let input = [year1, year9999, inverted, normal]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let (events, bad) = replay(&input, Some(t0.plus(Millis(2 * 60 * MINUTE))));
    assert_eq!(
        bad.iter()
            .map(|(l, c, _)| (*l, c.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, "event_time_out_of_range"),
            (2, "event_time_out_of_range"),
            (3, "bad_value")
        ]
    );
    assert!(bad[0].2.contains("`timestamp`"), "{}", bad[0].2);
    assert!(bad[2].2.contains("`impact.outage.until`"), "{}", bad[2].2);
    assert!(events.iter().all(|e| e["incident_id"].is_string()));
    assert!(events.iter().any(|e| e["type"] == "report.due"));
}

#[test]
fn replay_of_a_report_ten_days_overdue_steps_through_the_documented_schedule() {
    let t0 = common::ts("08:00");
    let input = outage("ok", "ok", t0).to_string();
    let until = t0.plus(Millis(10 * DAY));
    let (events, bad) = replay(&input, Some(until));
    assert!(bad.is_empty());
    let overdue: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "report.overdue" && e["report_kind"] == "initial")
        .collect();
    let deadline = common::instant(&overdue[0]["deadline"]);
    let rule = &config()
        .ruleset
        .report_rule(klaxon::model::ReportKind::Initial)
        .overdue;
    // Replay's clock runs continuously: every step of the schedule, none folded.
    assert_eq!(overdue.len() as u32, rule.step_at(until.since(deadline)));
    for (k, e) in overdue.iter().enumerate() {
        assert_eq!(e["overdue_count"], k + 1);
        assert_eq!(
            common::instant(&e["at"]),
            deadline.plus(rule.offset(k as u32 + 1))
        );
        assert!(e.get("folded_repeats").is_none());
    }
    assert!(events.iter().any(|e| e["type"] == "report.reminder"));
}

/// `klaxon replay --as-of`: the same ten-day-old backlog as `klaxon run` reads it ten days on,
/// not as a service that kept up: one folded overdue event per report (as the engine's
/// catch-up above), no stale reminder, and far fewer events than the event-time replay's every
/// step. tests/kafka_one_record.rs holds the live service's output to it line for line.
#[test]
fn replay_as_of_reads_a_ten_day_backlog_as_the_live_service_catches_up_on_it() {
    let t0 = common::ts("08:00");
    let n = 200;
    let input: String = (0..n)
        .map(|i| format!("{}\n", outage(&format!("a-{i}"), &format!("k{i}"), t0)))
        .collect::<String>()
        + "{\"not\": \"an alert\"\n";
    let now = t0.plus(Millis(10 * DAY));
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let summary = klaxon::replay::catch_up_as_of(config(), input.as_bytes(), now, &mut out, |b| {
        bad.push(b.line)
    })
    .expect("replay runs");
    assert_eq!((summary.records, summary.rejected), (n, 1));
    assert_eq!(bad, vec![n + 1], "the bad line is reported by number");
    let events: Vec<Value> = std::str::from_utf8(&out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    assert_eq!(summary.events, events.len());
    let overdue: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "report.overdue" && e["report_kind"] == "initial")
        .collect();
    assert_eq!(overdue.len(), n, "one folded overdue event per report");
    for e in &overdue {
        assert_folds_every_missed_repeat(e, now);
    }
    assert!(
        !events.iter().any(|e| e["type"] == "report.reminder"),
        "stale reminders are not sent"
    );
    // The same records on event time: every step of every schedule, nothing folded.
    let (kept_up, _) = replay(&input, Some(now));
    assert!(kept_up.len() > 2 * events.len(), "{}", kept_up.len());
    // Deterministic: the same input and instant give the same bytes.
    let mut again = Vec::new();
    klaxon::replay::catch_up_as_of(config(), input.as_bytes(), now, &mut again, |_| {})
        .expect("replay runs");
    assert_eq!(out, again);
}
