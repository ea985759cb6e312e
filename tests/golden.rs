//! Golden replays: a scenario's input replayed on event time must give its blessed output byte for
//! byte. `BLESS=1 cargo test --test golden` writes the expected files instead; review the diff
//! before committing it.
//!
//! The example day (`examples/day.jsonl`, described in `examples/README.md`) is also checked
//! against the README's scenario table, so that a re-bless cannot quietly accept a wrong level,
//! t0 or deadline.

mod common;

use common::{instant, of, replay_text, t, timeline};
use serde_json::Value;
use std::path::PathBuf;

const DAY_UNTIL: &str = "2026-11-25T00:00:00+08:00";

struct Scenario {
    name: &'static str,
    input: PathBuf,
    until: &'static str,
}

fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "day",
        input: common::manifest_dir().join("examples/day.jsonl"),
        until: DAY_UNTIL,
    }]
}

fn expected_path(name: &str) -> PathBuf {
    common::manifest_dir()
        .join("tests/golden")
        .join(name)
        .join("expected.jsonl")
}

/// A file written on Windows (CRLF line ends), with blank lines and no final newline, replays
/// to the same bytes, and bad lines are reported with their numbers in that file.
#[test]
fn line_ends_and_blank_lines_do_not_change_a_replay() {
    const UNTIL: &str = "2026-11-25T00:00:00+08:00";
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/day.jsonl"),
    )
    .expect("the example day");
    let lines = |r: &common::Replay| r.bad.iter().map(|b| b.line).collect::<Vec<_>>();
    let plain = replay_text(&text, Some(UNTIL));
    assert!(!plain.events.is_empty() && !plain.bad.is_empty());
    // A blank line before each line: line n becomes line 2n.
    let windows = format!("\r\n{}", text.trim_end().replace('\n', "\r\n\r\n"));
    let messy = replay_text(&windows, Some(UNTIL));
    assert_eq!(messy.bytes, plain.bytes);
    let doubled: Vec<usize> = lines(&plain).iter().map(|n| 2 * n).collect();
    assert_eq!(lines(&messy), doubled);
    // A bad record on line 2: the rest shift by two.
    let with_bad_line = format!("\n{{\"id\":\"x\"}}\r\n{text}");
    let bad = replay_text(&with_bad_line, Some(UNTIL));
    assert_eq!(bad.bytes, plain.bytes);
    let shifted: Vec<usize> = std::iter::once(2)
        .chain(lines(&plain).iter().map(|n| n + 2))
        .collect();
    assert_eq!(lines(&bad), shifted);
}

#[test]
fn golden_replays_match_their_blessed_output() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    for sc in scenarios() {
        let input = std::fs::read_to_string(&sc.input)
            .unwrap_or_else(|e| panic!("{}: {e}", sc.input.display()));
        let got = replay_text(&input, Some(sc.until)).bytes;
        let path = expected_path(sc.name);
        if bless {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("create golden dir");
            std::fs::write(&path, &got).expect("write golden file");
            eprintln!("blessed {} ({} bytes)", path.display(), got.len());
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `BLESS=1 cargo test --test golden` to create it",
                path.display()
            )
        });
        if got != want {
            let (g, w) = (
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
            );
            let (gl, wl): (Vec<&str>, Vec<&str>) = (g.lines().collect(), w.lines().collect());
            let n = gl.iter().zip(&wl).take_while(|(a, b)| a == b).count();
            panic!(
                "scenario {}: output differs from {} at line {} ({} lines now, {} blessed)\n  now:     {}\n  blessed: {}\n\
                 If the change is intended, run `BLESS=1 cargo test --test golden` and review the diff.",
                sc.name,
                path.display(),
                n + 1,
                gl.len(),
                wl.len(),
                gl.get(n).unwrap_or(&"(end)"),
                wl.get(n).unwrap_or(&"(end)")
            );
        }
    }
}

// ------------------------------------------------------------------ the README's scenario table

struct Day {
    events: Vec<Value>,
}

impl Day {
    fn load() -> Self {
        let text = std::fs::read_to_string(common::manifest_dir().join("examples/day.jsonl"))
            .expect("examples/day.jsonl");
        let r = replay_text(&text, Some(DAY_UNTIL));
        let lines: Vec<usize> = r.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![25, 54, 57], "the README's three bad lines");
        Day { events: r.events }
    }

    /// The incident whose first alert is `alert_id`.
    fn incident(&self, alert_id: &str) -> String {
        common::incident_opened_by(&self.events, alert_id)
    }

    fn of(&self, alert_id: &str, ty: &str) -> Vec<&Value> {
        of(&self.events, &self.incident(alert_id), ty)
    }

    /// `(at, level)` of each `incident.graded`.
    fn levels(&self, alert_id: &str) -> Vec<(String, String)> {
        self.of(alert_id, "incident.graded")
            .iter()
            .map(|e| (str_of(&e["at"]), str_of(&e["level"])))
            .collect()
    }

    /// `(kind, at, deadline)` of each `report.due`.
    fn dues(&self, alert_id: &str) -> Vec<(String, String, String)> {
        self.of(alert_id, "report.due")
            .iter()
            .map(|e| {
                (
                    str_of(&e["report_kind"]),
                    str_of(&e["at"]),
                    str_of(&e["deadline"]),
                )
            })
            .collect()
    }

    /// `(kind, at)` of each `report.filed`.
    fn filed(&self, alert_id: &str) -> Vec<(String, String)> {
        self.of(alert_id, "report.filed")
            .iter()
            .map(|e| (str_of(&e["report_kind"]), str_of(&e["at"])))
            .collect()
    }

    fn at_list(&self, alert_id: &str, ty: &str) -> Vec<String> {
        self.of(alert_id, ty)
            .iter()
            .map(|e| str_of(&e["at"]))
            .collect()
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn lv(at: &str, level: &str) -> (String, String) {
    (t(at), level.to_string())
}

fn due(kind: &str, at: &str, deadline: &str) -> (String, String, String) {
    (kind.to_string(), t(at), t(deadline))
}

fn filed(kind: &str, at: &str) -> (String, String) {
    (kind.to_string(), t(at))
}

const GD_GRID: &str = "monitoring-zbx-88123077";
const SH_BANK: &str = "monitoring-zbx-88123215";
const HZ_ECOM: &str = "elastic-3c5a7f90-1e2b-4d8c-9f60-a4b2c1d0e7f3";
const SC_GOV: &str = "monitoring-wpt-20261124-0031";
const HB_HOSPITAL: &str = "wazuh-1795459651.9182";
const MOF: &str = "monitoring-http-mof-20261124-1304";
const BJ_METRO: &str = "elastic-9a8b7c6d-1f2e-4a3b-8c9d-0e1f2a3b4c5d";
const ZJ_TELECOM: &str = "suricata-000213";
const YX_COUNTY: &str = "monitoring-http-yx-20261124-1825";

#[test]
fn guangdong_grid_scada_outage_crosses_10_minutes_at_0805_and_1_hour_at_0855() {
    let d = Day::load();
    assert_eq!(
        d.levels(GD_GRID),
        vec![lv("08:05", "relatively_major"), lv("08:55", "major")]
    );
    assert_eq!(
        d.dues(GD_GRID),
        vec![
            due("initial", "08:05", "09:05"),
            due("follow_up", "08:55", "09:55"),
            due("summary", "12:05", "2026-12-24T12:05:00+08:00"),
        ]
    );
    assert_eq!(
        d.filed(GD_GRID),
        vec![filed("initial", "08:48"), filed("follow_up", "09:40")]
    );
    assert_eq!(
        d.at_list(GD_GRID, "report.reminder"),
        vec![t("08:35"), t("09:25")]
    );
    assert!(d.of(GD_GRID, "report.overdue").is_empty());
    let initial = d.of(GD_GRID, "report.due")[0];
    let recipients: Vec<String> = initial["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| str_of(&r["id"]))
        .collect();
    assert_eq!(recipients, vec!["energy-cii-protection", "gd-psb"]);
    let follow_up = d.of(GD_GRID, "report.due")[1];
    assert_eq!(
        follow_up["onward"]["within_minutes"], 30,
        "the CII route's onward deadline at 重大"
    );
    // The 13:55 crossing (6 h) is cancelled by the 11:40 alert that ends the outage at 11:30.
    let warnings: Vec<String> = d
        .of(GD_GRID, "grade.upgrade_warning")
        .iter()
        .map(|e| str_of(&e["upgrade"]["to_level"]))
        .collect();
    assert!(
        !warnings.contains(&"particularly_major".to_string()),
        "{warnings:?}"
    );
    // Line 13 (no incident_key) is its own 一般 incident.
    let fep = d.incident("monitoring-zbx-88123041");
    assert_ne!(fep, d.incident(GD_GRID));
    assert!(of(&d.events, &fep, "incident.graded").is_empty());
}

#[test]
fn shanghai_bank_20_minute_main_function_outage_stays_general() {
    let d = Day::load();
    assert!(d.levels(SH_BANK).is_empty());
    assert!(d.dues(SH_BANK).is_empty());
    assert_eq!(d.at_list(SH_BANK, "incident.resolved"), vec![t("08:50")]);
}

#[test]
fn ecommerce_leak_is_relatively_major_at_1_2_million_and_major_at_12_million() {
    let d = Day::load();
    assert_eq!(
        d.levels(HZ_ECOM),
        vec![lv("13:15", "relatively_major"), lv("16:20", "major")]
    );
    assert_eq!(
        d.dues(HZ_ECOM),
        vec![
            due("initial", "13:15", "17:15"),
            due("follow_up", "16:20", "20:20")
        ]
    );
    assert_eq!(
        d.filed(HZ_ECOM),
        vec![filed("initial", "15:30"), filed("follow_up", "19:35")]
    );
    assert!(d.of(HZ_ECOM, "report.reminder").is_empty());
    assert_eq!(
        d.of(HZ_ECOM, "report.due")[0]["recipients"][0]["name"],
        "浙江省委网信办"
    );
    // economic_loss_cny stays under 5,000,000 and never appears as evidence.
    assert!(d.of(HZ_ECOM, "incident.graded").iter().all(|e| e["matched"]
        .as_array()
        .is_some_and(|m| m.iter().all(|x| x["indicator"] != "economic_loss_cny"))));
}

#[test]
fn sichuan_portal_defacement_is_relatively_major_at_1025_and_major_at_1048() {
    let d = Day::load();
    assert_eq!(
        d.levels(SC_GOV),
        vec![lv("10:25", "relatively_major"), lv("10:48", "major")]
    );
    assert_eq!(
        d.dues(SC_GOV),
        vec![
            due("initial", "10:25", "14:25"),
            due("summary", "14:00", "2026-12-24T14:00:00+08:00")
        ]
    );
    assert_eq!(d.filed(SC_GOV), vec![filed("initial", "13:10")]);
    assert_eq!(
        d.of(SC_GOV, "report.due")[0]["recipients"][0]["name"],
        "四川省委网信办"
    );
}

#[test]
fn hospital_ransomware_is_relatively_major_at_0320_and_row_2_never_applies_to_the_his() {
    let d = Day::load();
    assert_eq!(d.levels(HB_HOSPITAL), vec![lv("03:20", "relatively_major")]);
    assert_eq!(d.dues(HB_HOSPITAL), vec![due("initial", "03:20", "07:20")]);
    assert_eq!(d.filed(HB_HOSPITAL), vec![filed("initial", "06:45")]);
    assert!(d.of(HB_HOSPITAL, "report.reminder").is_empty());
    let item2 = str_of(&d.of(HB_HOSPITAL, "report.due")[0]["draft"]["items"][1]["content"]);
    assert!(item2.contains("3.5 BTC"), "{item2}");
    assert_eq!(
        d.of(HB_HOSPITAL, "report.due")[0]["recipients"][0]["name"],
        "湖北省委网信办"
    );
}

#[test]
fn ministry_of_finance_portal_reaches_2_hours_at_1500_and_its_report_is_never_filed() {
    let d = Day::load();
    assert_eq!(d.at_list(MOF, "grade.upgrade_warning"), vec![t("14:00")]);
    assert_eq!(d.levels(MOF), vec![lv("15:00", "relatively_major")]);
    // Resolving at 16:20:30 does not cancel the 17:00 report; it also starts the summary's 30 days.
    assert_eq!(
        d.dues(MOF),
        vec![
            due("initial", "15:00", "17:00"),
            due("summary", "16:20:30", "2026-12-24T16:20:30+08:00")
        ]
    );
    assert!(d.filed(MOF).is_empty());
    assert_eq!(
        d.at_list(MOF, "report.reminder"),
        vec![t("16:30"), t("16:50")]
    );
    // The overdue schedule (#18): every 30 min for the first 2 h, then every 4 h.
    let overdue = d.of(MOF, "report.overdue");
    let want: Vec<String> = ["17:00", "17:30", "18:00", "18:30", "19:00", "23:00"]
        .iter()
        .map(|h| t(h))
        .collect();
    assert_eq!(d.at_list(MOF, "report.overdue"), want);
    let minutes = [0, 30, 60, 90, 120, 360];
    for (k, e) in overdue.iter().enumerate() {
        assert_eq!(e["overdue_count"], k + 1);
        assert_eq!(e["seconds_remaining"], -60 * minutes[k]);
        assert_eq!(e["recipients"][0]["id"], "mof-cyber");
        assert!(e.get("folded_repeats").is_none(), "replay folds nothing");
    }
}

#[test]
fn beijing_metro_leak_is_relatively_major_at_1410_and_regraded_major_at_1540() {
    let d = Day::load();
    assert_eq!(
        d.levels(BJ_METRO),
        vec![lv("14:10", "relatively_major"), lv("15:40", "major")]
    );
    assert_eq!(
        d.dues(BJ_METRO),
        vec![
            due("initial", "14:10", "15:10"),
            due("follow_up", "15:40", "16:40")
        ]
    );
    assert_eq!(
        d.filed(BJ_METRO),
        vec![filed("initial", "14:55"), filed("follow_up", "16:25")]
    );
    assert_eq!(
        d.at_list(BJ_METRO, "report.reminder"),
        vec![t("14:40"), t("16:10")]
    );
    let regrade = d.of(BJ_METRO, "incident.graded")[1];
    assert_eq!(regrade["matched"][0]["indicator"], "analyst_regrade");
}

#[test]
fn the_authorised_scan_is_dismissed_and_the_county_portal_stays_general() {
    let d = Day::load();
    assert_eq!(
        d.at_list(ZJ_TELECOM, "incident.dismissed"),
        vec![t("11:20")]
    );
    assert!(d.levels(ZJ_TELECOM).is_empty());
    assert!(d.levels(YX_COUNTY).is_empty());
    assert!(d.dues(YX_COUNTY).is_empty());
    assert!(d.of(YX_COUNTY, "grade.upgrade_warning").is_empty());
}

#[test]
fn only_the_seven_reportable_scenarios_reach_a_reportable_level() {
    let d = Day::load();
    let reportable = [GD_GRID, HZ_ECOM, SC_GOV, HB_HOSPITAL, MOF, BJ_METRO].map(|a| d.incident(a));
    let graded: std::collections::BTreeSet<String> = common::of_type(&d.events, "incident.graded")
        .iter()
        .map(|e| str_of(&e["incident_id"]))
        .collect();
    let want: std::collections::BTreeSet<String> = reportable.iter().cloned().collect();
    assert_eq!(graded, want, "{}", timeline(&d.events).join("\n"));
    // 22 incidents: the nine keyed scenarios, line 13, and the twelve noise incidents.
    assert_eq!(common::of_type(&d.events, "incident.opened").len(), 22);
    // The ack for a non-existent incident (line 40) is rejected; nothing else is.
    let rejected = common::of_type(&d.events, "command.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["incident_id"], "INC-20261124-000000000000");
    // No zhengzhou warning: its 21:05 warning falls after the outage ended.
    let zz = d.incident("monitoring-http-zz-20261124-2010");
    assert!(of(&d.events, &zz, "grade.upgrade_warning").is_empty());
}

#[test]
fn the_blessed_example_day_is_in_time_order() {
    let d = Day::load();
    for w in d.events.windows(2) {
        assert!(
            instant(&w[0]["at"]) <= instant(&w[1]["at"]),
            "{} then {}",
            w[0]["event_id"],
            w[1]["event_id"]
        );
    }
}
