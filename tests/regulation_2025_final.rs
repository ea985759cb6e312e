//! Issue #26: the defects an independent row-by-row reading of the final 2025 guide and the
//! Measures found, each pinned by a test named after the rule it encodes, at and around its
//! boundary: designation scales, the final art. 7 headings, continuous durations, no silent 一般,
//! routes, and 补报/续报.

mod common;

use common::{incident_opened_by, of, run, t, timeline, Live};
use klaxon::engine::correlate::{AssetInfo, AssetParts, Figures, Interval, OperatorInfo};
use klaxon::engine::grade::{evaluate, unassessed};
use klaxon::model::{Level, OperatorClass};
use klaxon::settings::ruleset::{CategoryFigure, DurationFigure, Measure, Ruleset};
use klaxon::time::{Millis, Timestamp, MINUTE};
use serde_json::{json, Value};
use std::path::Path;

use Level::{General, Major, ParticularlyMajor as PMajor, RelativelyMajor as RMajor};

fn rules() -> &'static Ruleset {
    &common::config().ruleset
}

fn site(kind: &str, qualifier: Option<&str>) -> AssetInfo {
    let mut a = AssetParts {
        id: Some(format!("test-{kind}").into()),
        kind: Some(kind.into()),
        ..AssetParts::default()
    };
    if kind == "network_platform" {
        a.size = qualifier.map(Box::from);
    } else {
        a.level = qualifier.map(Box::from);
    }
    AssetInfo::from(a)
}

fn no_kind() -> AssetInfo {
    AssetInfo::from(AssetParts {
        id: Some("host-17".into()),
        ..AssetParts::default()
    })
}

fn m(minutes: i64) -> Timestamp {
    common::ts("00:00").plus(Millis(minutes * MINUTE))
}

/// Closed intervals, in minutes from midnight, on one duration figure.
fn episodes(fig: DurationFigure, ivs: &[(i64, i64)]) -> Figures {
    let mut f = Figures::default();
    f.set_intervals(
        fig,
        ivs.iter()
            .map(|&(s, u)| Interval {
                since: m(s),
                until: Some(m(u)),
                revised: None,
            })
            .collect(),
    );
    f
}

fn level_of(a: &AssetInfo, f: &Figures) -> Level {
    evaluate(rules(), a, f, m(24 * 60)).level
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

// ------------------------------------------------------------------ 1. designation scales

fn designated(scale: &str) -> Figures {
    let mut f = Figures::default();
    f.set_categories(
        CategoryFigure::DefacementDesignated,
        vec![scale.to_string()],
    );
    f
}

/// Guide row 6: 特大范围 ⊃ 大范围 ⊃ 较大范围. A 特大范围 designation on a prefecture-level portal —
/// not a 特别重大 site — meets the 重大 row's criterion (it is at least a 大范围 spread).
#[test]
fn designation_scales_a_particularly_major_designation_on_a_prefectural_portal_is_major() {
    let prefectural = site("party_gov_portal", Some("prefectural"));
    assert_eq!(
        level_of(&prefectural, &designated("particularly_major")),
        Major
    );
    assert_eq!(level_of(&prefectural, &designated("major")), Major);
    assert_eq!(
        level_of(&prefectural, &designated("relatively_major")),
        RMajor
    );
    // On a 特别重大 site the designation grades at its own scale.
    let provincial = site("party_gov_portal", Some("provincial"));
    assert_eq!(
        level_of(&provincial, &designated("particularly_major")),
        PMajor
    );
    assert_eq!(level_of(&provincial, &designated("major")), Major);
}

/// A 大范围 (or 特大范围) designation on a county portal — not a 重大 site — is 较大.
#[test]
fn designation_scales_a_major_designation_on_a_county_portal_is_relatively_major() {
    let county = site("party_gov_portal", Some("county"));
    assert_eq!(level_of(&county, &designated("major")), RMajor);
    assert_eq!(level_of(&county, &designated("particularly_major")), RMajor);
    assert_eq!(level_of(&county, &designated("relatively_major")), RMajor);
    // Platforms by size: a large platform reaches 重大 at most, any platform 较大.
    let large = site("network_platform", Some("large"));
    assert_eq!(level_of(&large, &designated("particularly_major")), Major);
    let small = site("network_platform", Some("other"));
    assert_eq!(level_of(&small, &designated("particularly_major")), RMajor);
    // Row 6 names sites: a designation on anything else grades nothing.
    assert_eq!(
        level_of(&site("other", None), &designated("particularly_major")),
        General
    );
}

/// The scale is data: each row lists its own designation and every larger one.
#[test]
fn designation_scales_are_encoded_in_the_ruleset_not_in_code() {
    let ind = rules()
        .indicators
        .iter()
        .find(|i| i.id == "defacement_designated_spread")
        .expect("row 6 designation indicator");
    let lists: Vec<(Level, Vec<String>)> = ind
        .thresholds
        .iter()
        .map(|t| match &t.rule {
            klaxon::settings::ruleset::Rule::AnyOf(v) => (t.level, v.clone()),
            r => panic!("designation rows list values: {r:?}"),
        })
        .collect();
    for (level, values) in &lists {
        for scale in [PMajor, Major, RMajor].into_iter().filter(|l| l >= level) {
            assert!(
                values.contains(&scale.key().to_string()),
                "the {level} row must accept a {scale} designation: {values:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ 2. art. 7 headings

/// The final text's headings, verbatim (regulation.md §4).
const ARTICLE_7: [&str; 8] = [
    "（一）涉事单位名称及涉事系统或设施基本情况；",
    "（二）网络安全事件发现或发生的时间、地点、类型、级别，以及已造成的影响和危害，已采取的措施及效果；对勒索软件攻击事件，还应当包括要求支付赎金的金额、方式、日期等；",
    "（三）事态发展趋势及可能造成的进一步影响和危害；",
    "（四）网络安全事件原因初步分析意见；",
    "（五）溯源调查工作线索，包括但不限于可能的攻击者信息、攻击路径、存在的漏洞等；",
    "（六）拟进一步采取的应对措施以及请求支援事项；",
    "（七）网络安全事件现场保护情况；",
    "（八）其他应当报告的情况。",
];

#[test]
fn the_report_draft_uses_the_final_article_7_headings_verbatim() {
    let ev = run(
        &[json!({
            "id": "a1", "timestamp": t("08:00"), "incident_key": "k",
            "operator": "sz-tech", "asset": "sz-tech-vpn",
            "impact": {"personal_info_records": 1_200_000}
        })],
        None,
    );
    let inc = incident_opened_by(&ev, "a1");
    let due = of(&ev, &inc, "report.due")[0];
    let items = due["draft"]["items"].as_array().expect("draft items");
    assert_eq!(items.len(), 8);
    let numerals = ["一", "二", "三", "四", "五", "六", "七", "八"];
    for (i, item) in items.iter().enumerate() {
        let end = if i == 7 { "。" } else { "；" };
        let heading = format!("（{}）{}{end}", numerals[i], s(&item["title"]));
        assert_eq!(heading, ARTICLE_7[i], "item {}", i + 1);
    }
    // The 2023 draft's wording is gone.
    let text = due["draft"].to_string();
    for draft_2023 in [
        "事发单位名称",
        "进一步调查分析所需的线索",
        "初步分析的事件原因",
    ] {
        assert!(!text.contains(draft_2023), "{draft_2023} in {text}");
    }
}

// ------------------------------------------------------------------ 3. continuous durations

/// 「中断运行…以上」 is continuous: two 40-minute CII outages two hours apart are 较大 (each ≥ 10 min),
/// not 重大 (1 h).
#[test]
fn continuous_durations_two_40_minute_cii_outages_two_hours_apart_are_relatively_major() {
    let cii = site("cii_system", None);
    let two = episodes(DurationFigure::OutageWhole, &[(0, 40), (160, 200)]);
    assert_eq!(level_of(&cii, &two), RMajor);
    let g = evaluate(rules(), &cii, &two, m(24 * 60));
    assert_eq!(g.evidence[0].indicator, "cii_whole_outage_minutes");
    assert_eq!(g.evidence[0].value.to_string(), "40");
    // One continuous hour is 重大; a minute less is not.
    assert_eq!(
        level_of(&cii, &episodes(DurationFigure::OutageWhole, &[(0, 60)])),
        Major
    );
    assert_eq!(
        level_of(&cii, &episodes(DurationFigure::OutageWhole, &[(0, 59)])),
        RMajor
    );
}

/// 「持续…以上」: two 70-minute home-page defacements hours apart are 较大 (≥ 30 min), not 重大 (2 h).
#[test]
fn continuous_durations_two_70_minute_home_page_defacements_hours_apart_are_relatively_major() {
    let portal = site("party_gov_portal", Some("provincial"));
    let two = episodes(DurationFigure::DefacementHome, &[(0, 70), (300, 370)]);
    assert_eq!(level_of(&portal, &two), RMajor);
    let one = episodes(DurationFigure::DefacementHome, &[(0, 120)]);
    assert_eq!(level_of(&portal, &one), Major);
}

/// Overlapping or touching intervals, and ones less than the flap gap (15 min) apart, are one
/// episode; at the gap they are two.
#[test]
fn continuous_durations_merge_overlap_touch_and_flaps_under_the_15_minute_gap() {
    let cii = site("cii_system", None);
    let f = |ivs: &[(i64, i64)]| level_of(&cii, &episodes(DurationFigure::OutageWhole, ivs));
    assert_eq!(f(&[(0, 40), (30, 60)]), Major, "overlap: 0–60");
    assert_eq!(f(&[(0, 40), (40, 60)]), Major, "touch: 0–60");
    assert_eq!(
        f(&[(0, 40), (54, 60)]),
        Major,
        "14 min apart: one flapping outage 0–60"
    );
    assert_eq!(f(&[(0, 40), (55, 60)]), RMajor, "15 min apart: two outages");
    assert_eq!(rules().flap_gap, Millis(15 * MINUTE));
}

/// `sum` of episodes stays available per indicator (off in the shipped guide).
#[test]
fn continuous_durations_sum_is_a_per_indicator_option_off_in_the_shipped_guide() {
    for ind in &rules().indicators {
        if let klaxon::settings::ruleset::Figure::Duration(_) = ind.figure {
            assert_eq!(
                ind.measure,
                Measure::LongestEpisode {
                    flap_gap: Millis(15 * MINUTE)
                },
                "{}",
                ind.id
            );
        }
    }
    let dir = config_copy(|grading, _| {
        grading
            .replace(
                "id = \"cii_whole_outage_minutes\"\n",
                "id = \"cii_whole_outage_minutes\"\nepisodes = \"sum\"\n",
            )
            .replace("flap_gap = \"15m\"", "flap_gap = \"5m\"")
    });
    let c = klaxon::settings::load(dir.path()).expect("a summing ruleset loads");
    let whole = c
        .ruleset
        .indicators
        .iter()
        .find(|i| i.id == "cii_whole_outage_minutes")
        .expect("row 2");
    assert_eq!(whole.measure, Measure::Sum);
    assert_eq!(c.ruleset.flap_gap, Millis(5 * MINUTE));
    let two = episodes(DurationFigure::OutageWhole, &[(0, 40), (160, 200)]);
    let g = evaluate(&c.ruleset, &site("cii_system", None), &two, m(24 * 60));
    assert_eq!(g.level, Major, "40 + 40 minutes summed");
}

/// `klaxon check-config` names the file and key of a bad duration setting.
#[test]
fn continuous_durations_bad_settings_are_reported_with_file_and_key() {
    let dir = config_copy(|grading, _| {
        grading
            .replace(
                "id = \"cii_whole_outage_minutes\"\n",
                "id = \"cii_whole_outage_minutes\"\nepisodes = \"total\"\n",
            )
            .replace(
                "id = \"economic_loss_cny\"\n",
                "id = \"economic_loss_cny\"\nepisodes = \"sum\"\n",
            )
            .replace("flap_gap = \"15m\"", "flap_gap = \"fifteen\"")
    });
    let Err(err) = klaxon::settings::load(dir.path()) else {
        panic!("bad duration settings are refused")
    };
    let err = err.to_string();
    for want in [
        "grading.toml: durations.flap_gap",
        "grading.toml: indicator[1] (cii_whole_outage_minutes).episodes",
        "grading.toml: indicator[13] (economic_loss_cny).episodes",
    ] {
        assert!(err.contains(want), "{want} in:\n{err}");
    }
}

/// The exact regrade instant and the upgrade warning follow the same measure: an outage of 40
/// minutes, then another two hours later that is still going on, reaches 重大 one hour into the
/// second (not when the two add up to an hour).
#[test]
fn continuous_durations_the_regrade_instant_and_the_upgrade_warning_follow_the_longest_episode() {
    let outage = |id: &str, at: &str, since: &str, until: Option<&str>| {
        json!({
            "id": id, "timestamp": t(at), "incident_key": "grid",
            "operator": "gd-grid", "asset": "gd-grid-scada",
            "impact": {"outage": {"scope": "whole", "since": t(since), "until": until.map(t)}}
        })
    };
    let mut live = Live::new();
    let mut ev = live.send(outage("o1", "08:40", "08:00", Some("08:40")));
    ev.extend(live.send(outage("o2", "10:40", "10:40", None)));
    ev.extend(live.tick("13:00"));
    let inc = incident_opened_by(&ev, "o1");
    let graded: Vec<(String, String)> = of(&ev, &inc, "incident.graded")
        .iter()
        .map(|e| (s(&e["level"]).to_string(), s(&e["at"]).to_string()))
        .collect();
    assert_eq!(
        graded,
        vec![
            ("relatively_major".to_string(), t("08:40")),
            ("major".to_string(), t("11:40")),
        ],
        "{}",
        timeline(&ev).join("\n")
    );
    let warning = of(&ev, &inc, "grade.upgrade_warning");
    assert_eq!(warning.len(), 1, "{}", timeline(&ev).join("\n"));
    assert_eq!(warning[0]["upgrade"]["to_level"], "major");
    assert_eq!(warning[0]["upgrade"]["crossing_at"], t("11:40"));
}

// ------------------------------------------------------------------ 4. no silent 一般

fn op(class: OperatorClass, unknown: bool) -> OperatorInfo {
    OperatorInfo {
        id: Some("op".into()),
        class,
        class_unknown: unknown,
        ..OperatorInfo::default()
    }
}

fn ongoing(fig: DurationFigure, since_min: i64) -> Figures {
    let mut f = Figures::default();
    f.set_intervals(
        fig,
        vec![Interval {
            since: m(since_min),
            until: None,
            revised: None,
        }],
    );
    f
}

fn rows_and_reasons(u: &[klaxon::model::escalation::Unassessed]) -> Vec<(&str, &str)> {
    u.iter().map(|x| (x.row.as_str(), x.reason)).collect()
}

/// A CII operator's outage on an asset with no `kind`: row 2 cannot be assessed, and says so.
#[test]
fn no_silent_general_a_cii_operators_outage_on_an_asset_without_kind_is_unassessed() {
    let f = ongoing(DurationFigure::OutageWhole, 0);
    let cii_op = op(OperatorClass::Cii, false);
    assert_eq!(
        level_of(&no_kind(), &f),
        General,
        "the level stays what the facts give"
    );
    let u = unassessed(rules(), &cii_op, &no_kind(), &f, General);
    assert_eq!(
        rows_and_reasons(&u),
        vec![("cii_whole_outage_minutes", "asset_kind_missing")]
    );
    assert!(
        u[0].detail.contains("CII operator") && u[0].detail.contains("cii_system"),
        "{}",
        u[0].detail
    );
    // The kind known: assessed, whatever it is.
    assert!(unassessed(rules(), &cii_op, &site("cii_system", None), &f, RMajor).is_empty());
    assert!(unassessed(rules(), &cii_op, &site("other", None), &f, General).is_empty());
    // An unknown operator (class assumed): neither fact that says "CII" is known.
    let u = unassessed(
        rules(),
        &op(OperatorClass::Other, true),
        &no_kind(),
        &f,
        General,
    );
    assert_eq!(
        rows_and_reasons(&u),
        vec![("cii_whole_outage_minutes", "operator_class_unknown")]
    );
}

/// A portal without its administrative `level`, a platform without its `size`: the rows whose
/// higher levels name them are unassessed; the level is what the kind alone gives.
#[test]
fn no_silent_general_a_portal_without_level_or_a_platform_without_size_is_unassessed() {
    let portal = site("party_gov_portal", None);
    let f = episodes(DurationFigure::DefacementHome, &[(0, 180)]);
    assert_eq!(
        level_of(&portal, &f),
        RMajor,
        "30 min on any portal's home page"
    );
    let u = unassessed(
        rules(),
        &op(OperatorClass::Other, false),
        &portal,
        &f,
        RMajor,
    );
    assert_eq!(
        rows_and_reasons(&u),
        vec![("defacement_home_page_hours", "asset_level_missing")]
    );
    // Unreachable for 3 h: nothing applies without the level (row 1 names levels only).
    let down = episodes(DurationFigure::Unreachable, &[(0, 180)]);
    assert_eq!(level_of(&portal, &down), General);
    let u = unassessed(
        rules(),
        &op(OperatorClass::Other, false),
        &portal,
        &down,
        General,
    );
    assert_eq!(
        rows_and_reasons(&u),
        vec![("site_unreachable_hours", "asset_level_missing")]
    );
    // With the level, assessed: a county portal is not a site row 1 names.
    let county = site("party_gov_portal", Some("county"));
    assert!(unassessed(
        rules(),
        &op(OperatorClass::Other, false),
        &county,
        &down,
        General
    )
    .is_empty());

    let platform = site("network_platform", None);
    let mut reposts = Figures::default();
    reposts.set_amount(
        klaxon::settings::ruleset::AmountFigure::DefacementReposts,
        20_000.0,
    );
    assert_eq!(level_of(&platform, &reposts), RMajor);
    let u = unassessed(
        rules(),
        &op(OperatorClass::Other, false),
        &platform,
        &reposts,
        RMajor,
    );
    assert_eq!(
        rows_and_reasons(&u),
        vec![("defacement_reposts", "asset_size_missing")]
    );
    // Nothing to gain at the top level: nothing is reported missing.
    assert!(unassessed(
        rules(),
        &op(OperatorClass::Other, false),
        &platform,
        &reposts,
        PMajor
    )
    .is_empty());
}

/// Through the engine: `incident.opened` and `incident.graded` carry `unassessed`, the report
/// draft names it, `klaxon grade` says it in words, and the metric counts it.
#[test]
fn no_silent_general_events_the_draft_klaxon_grade_and_the_metric_say_which_fact_is_missing() {
    let alerts = [
        json!({"id": "u1", "timestamp": t("08:00"), "incident_key": "scada",
               "operator": "gd-grid", "asset": {"id": "unregistered-host", "name": "调度主站"},
               "impact": {"outage": {"scope": "whole", "since": t("08:00")}}}),
        json!({"id": "p1", "timestamp": t("09:00"), "incident_key": "portal",
               "operator": "sc-gov", "asset": {"id": "new-portal", "kind": "party_gov_portal"},
               "impact": {"defacement": {"page": "home", "since": t("08:00"), "until": t("09:00")}}}),
    ];
    let ev = run(&alerts, Some("10:00"));
    let scada = incident_opened_by(&ev, "u1");
    let opened = of(&ev, &scada, "incident.opened")[0];
    assert_eq!(opened["unassessed"][0]["row"], "cii_whole_outage_minutes");
    assert_eq!(opened["unassessed"][0]["reason"], "asset_kind_missing");
    assert!(
        of(&ev, &scada, "incident.graded").is_empty(),
        "still 一般 on the known facts"
    );

    let portal = incident_opened_by(&ev, "p1");
    let graded = of(&ev, &portal, "incident.graded")[0];
    assert_eq!(graded["level"], "relatively_major");
    assert_eq!(graded["unassessed"][0]["row"], "defacement_home_page_hours");
    assert_eq!(graded["unassessed"][0]["reason"], "asset_level_missing");
    let due = of(&ev, &portal, "report.due")[0];
    assert_eq!(due["unassessed"][0]["reason"], "asset_level_missing");
    let item2 = s(&due["draft"]["items"][1]["content"]);
    assert!(
        item2.contains("未能评估") && item2.contains("defacement_home_page_hours"),
        "{item2}"
    );

    // A known site: nothing unassessed, no field.
    let known = run(
        &[
            json!({"id": "k1", "timestamp": t("08:00"), "incident_key": "k",
                 "operator": "gd-grid", "asset": "gd-grid-scada",
                 "impact": {"outage": {"scope": "whole", "since": t("08:00")}}}),
        ],
        Some("09:00"),
    );
    assert!(known.iter().all(|e| e.get("unassessed").is_none()));

    // klaxon grade, in words.
    let mut engine = common::engine();
    let inputs = vec![common::alert(alerts[0].clone())];
    let text = klaxon::explain::explain(&mut engine, inputs, Some(common::ts("08:30")));
    assert!(text.contains("Not assessed"), "{text}");
    assert!(
        text.contains("cii_whole_outage_minutes [asset_kind_missing]"),
        "{text}"
    );
    assert!(text.contains("CII operator"), "{text}");

    // The metric, labelled by row and reason code.
    let metrics = klaxon::telemetry::metrics::Metrics::new().expect("metrics");
    let mut e = common::engine();
    e.handle(common::alert(alerts[0].clone()));
    while let Some(ev) = e.poll_output() {
        metrics.grading_event(&ev);
    }
    let rendered = metrics.render();
    assert!(
        rendered.contains(
            "klaxon_grading_unassessed_total{reason=\"asset_kind_missing\",row=\"cii_whole_outage_minutes\"} 1"
        ),
        "{rendered}"
    );
}

// ------------------------------------------------------------------ helpers

/// A copy of the shipped config with `edit(grading, reporting)` applied to those two files.
fn config_copy(edit: impl Fn(&str, &str) -> String) -> tempfile::TempDir {
    config_copy_both(|g, r| (edit(g, r), r.to_string()))
}

fn config_copy_both(edit: impl Fn(&str, &str) -> (String, String)) -> tempfile::TempDir {
    let src = common::manifest_dir().join("config");
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&src, dir.path());
    let grading = std::fs::read_to_string(src.join("grading.toml")).expect("grading.toml");
    let reporting = std::fs::read_to_string(src.join("reporting.toml")).expect("reporting.toml");
    let (g, r) = edit(&grading, &reporting);
    assert!(g != grading || r != reporting, "the edit changed nothing");
    std::fs::write(dir.path().join("grading.toml"), g).expect("write");
    std::fs::write(dir.path().join("reporting.toml"), r).expect("write");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read config dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

// ------------------------------------------------------------------ 5. routes

fn leak_on(id: &str, at: &str, key: &str, operator: Value, asset: Value, records: u64) -> Value {
    json!({"id": id, "timestamp": t(at), "incident_key": key, "operator": operator,
           "asset": asset, "impact": {"personal_info_records": records}})
}

fn cmd(command: &str, key: &str, at: &str, extra: Value) -> Value {
    let mut v =
        json!({"command": command, "incident_id": format!("@{key}"), "at": t(at), "by": "oncall"});
    if let (Some(o), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| s(&r["id"]))
        .collect()
}

fn due_of<'a>(events: &'a [Value], incident: &str, label: &str) -> &'a Value {
    events
        .iter()
        .find(|e| {
            e["type"] == "report.due" && e["event_id"] == format!("{incident}/report.due/{label}")
        })
        .unwrap_or_else(|| {
            panic!(
                "no report.due/{label} for {incident}:\n{}",
                timeline(events).join("\n")
            )
        })
}

/// Art. 4: a CII asset of an "other" operator involves CII and is the operator's: the report goes
/// to both routes' recipients, the strictest deadline (1 h) binds, and the draft says so.
#[test]
fn routes_a_cii_asset_of_an_other_operator_reports_to_every_route_within_the_strictest_deadline() {
    let ev = run(
        &[leak_on(
            "a1",
            "08:00",
            "plant",
            json!({"id": "gd-plant", "name": "某制造厂", "class": "other", "province": "广东省"}),
            json!({"id": "plant-dcs", "name": "DCS", "kind": "cii_system"}),
            1_200_000,
        )],
        None,
    );
    let due = due_of(&ev, &incident_opened_by(&ev, "a1"), "initial");
    assert_eq!(
        due["deadline"],
        t("09:00"),
        "the CII route's 1 h, not the other route's 4 h"
    );
    assert_eq!(
        ids(&due["recipients"]),
        vec!["cii-protection", "gd-psb", "gd-cac"]
    );
    let routing = s(&due["draft"]["routing"]);
    assert!(
        routing.contains("多条报告路径") && routing.contains("时限从严"),
        "{routing}"
    );
    assert!(
        routing.contains("广东省公安厅") && routing.contains("广东省委网信办"),
        "{routing}"
    );
    assert!(
        routing.contains("(cii)") || routing.contains("（cii）"),
        "{routing}"
    );
}

/// An organ that runs CII: its cyberspace work body and the CII route's recipients, within 1 h.
#[test]
fn routes_an_organ_that_runs_cii_reports_to_its_cyberspace_body_and_the_cii_route() {
    let ev = run(
        &[
            leak_on(
                "cii",
                "08:00",
                "k1",
                json!("mof"),
                json!({"id": "mof-treasury", "name": "国库支付系统", "kind": "cii_system"}),
                1_200_000,
            ),
            leak_on(
                "plain",
                "08:00",
                "k2",
                json!("mof"),
                json!("mof-budget"),
                1_200_000,
            ),
        ],
        None,
    );
    let cii = due_of(&ev, &incident_opened_by(&ev, "cii"), "initial");
    assert_eq!(cii["deadline"], t("09:00"));
    let r = ids(&cii["recipients"]);
    assert!(r.contains(&"mof-cyber") && r.contains(&"bj-psb"), "{r:?}");
    assert_eq!(r.len(), 3, "{r:?}");
    // One route: 2 h, the organ's body only, and no routing note.
    let plain = due_of(&ev, &incident_opened_by(&ev, "plain"), "initial");
    assert_eq!(plain["deadline"], t("10:00"));
    assert_eq!(ids(&plain["recipients"]), vec!["mof-cyber"]);
    assert!(plain["draft"].get("routing").is_none());
}

/// The "other" route's onward step: → CAC within 1 h, and 同级有关部门 notified; the CII route's
/// onward step notifies no one else.
#[test]
fn routes_the_other_routes_onward_step_notifies_the_same_level_departments() {
    let ev = run(
        &[
            leak_on(
                "other",
                "08:00",
                "k1",
                json!("sz-tech"),
                json!("sz-tech-vpn"),
                12_000_000,
            ),
            leak_on(
                "cii",
                "08:00",
                "k2",
                json!("gd-grid"),
                json!("gd-grid-scada"),
                12_000_000,
            ),
        ],
        None,
    );
    let other = due_of(&ev, &incident_opened_by(&ev, "other"), "initial");
    assert_eq!(ids(&other["onward"]["to"]), vec!["cac"]);
    assert_eq!(
        ids(&other["onward"]["notify"]),
        vec!["same-level-departments"]
    );
    assert!(s(&other["onward"]["notify"][0]["name"]).contains("同级有关部门"));
    let cii = due_of(&ev, &incident_opened_by(&ev, "cii"), "initial");
    assert!(cii["onward"].get("notify").is_none(), "{}", cii["onward"]);
}

/// 收到报告后: once the report is filed, the authority's onward deadline counts from the filing,
/// not from the operator's deadline.
#[test]
fn routes_the_authoritys_onward_deadline_after_report_filed_counts_from_the_filing() {
    let ev = run(
        &[
            leak_on(
                "a1",
                "08:00",
                "k",
                json!("sz-tech"),
                json!("sz-tech-vpn"),
                12_000_000,
            ),
            cmd("report_filed", "k", "09:10", json!({})),
        ],
        None,
    );
    let inc = incident_opened_by(&ev, "a1");
    let due = due_of(&ev, &inc, "initial");
    assert_eq!(
        due["onward"]["deadline"],
        t("13:00"),
        "before filing: the 12:00 deadline + 1 h"
    );
    let filed = of(&ev, &inc, "report.filed")[0];
    assert_eq!(filed["onward"]["within_minutes"], 60);
    assert_eq!(filed["onward"]["deadline"], t("10:10"), "filed 09:10 + 1 h");
}

// ------------------------------------------------------------------ 6. 补报 and 续报

fn other_leak() -> Value {
    leak_on(
        "a1",
        "08:00",
        "k",
        json!("sz-tech"),
        json!("sz-tech-vpn"),
        1_200_000,
    )
}

/// 补报: `report_filed` with `partial: true` (items （一）（二） only) makes a `supplement` report
/// due within the route's window from the filing, with its reminders and overdue events, closed
/// by its own `report_filed`.
#[test]
fn a_partial_report_makes_a_supplement_due_with_reminders_and_overdue_until_it_is_filed() {
    let ev = run(
        &[
            other_leak(),
            cmd(
                "report_filed",
                "k",
                "09:00",
                json!({"partial": true, "report_kind": "initial"}),
            ),
            cmd(
                "report_filed",
                "k",
                "13:40",
                json!({"report_kind": "supplement", "reference": "S-1"}),
            ),
        ],
        Some("16:00"),
    );
    let inc = incident_opened_by(&ev, "a1");
    let supplement = due_of(&ev, &inc, "supplement.1");
    assert_eq!(supplement["report_kind"], "supplement");
    assert_eq!(supplement["at"], t("09:00"));
    assert_eq!(
        supplement["deadline"],
        t("13:00"),
        "the other route's 4 h from the partial filing"
    );
    assert_eq!(ids(&supplement["recipients"]), vec!["gd-cac"]);
    let items = supplement["draft"]["items"]
        .as_array()
        .expect("draft items");
    assert_eq!(items.len(), 8);
    // Items （一）（二） went with the partial report; the rest is what the supplement must say.
    for item in &items[..2] {
        assert_eq!(item["to_complete"], false, "{item}");
        assert!(s(&item["content"]).starts_with("【已报送】"), "{item}");
        assert!(!s(&item["content"]).contains("【待填写】"), "{item}");
    }
    assert!(items[2..].iter().all(|i| i["to_complete"] == true));
    let kinds_at = |ty: &str| -> Vec<String> {
        of(&ev, &inc, ty)
            .iter()
            .filter(|e| e["report_kind"] == "supplement")
            .map(|e| s(&e["at"]).to_string())
            .collect()
    };
    assert_eq!(kinds_at("report.reminder"), vec![t("12:30"), t("12:50")]);
    assert_eq!(
        kinds_at("report.overdue"),
        vec![t("13:00"), t("13:30")],
        "stops at the filing"
    );
    assert_eq!(kinds_at("report.filed"), vec![t("13:40")]);
    // The initial report was filed, and nothing of it is overdue.
    assert!(of(&ev, &inc, "report.overdue")
        .iter()
        .all(|e| e["report_kind"] != "initial"));
    // A whole report (no `partial`, or `partial: false`) makes nothing more due.
    let whole = run(
        &[
            other_leak(),
            cmd("report_filed", "k", "09:00", json!({"partial": false})),
        ],
        Some("16:00"),
    );
    assert!(
        whole.iter().all(|e| e["report_kind"] != "supplement"),
        "{}",
        timeline(&whole).join("\n")
    );
}

/// Only an initial or follow-up report can be filed partial; the supplement itself is filed whole.
#[test]
fn a_partial_filing_of_a_supplement_or_summary_is_rejected() {
    let ev = run(
        &[
            other_leak(),
            cmd("report_filed", "k", "09:00", json!({"partial": true})),
            cmd("report_filed", "k", "09:30", json!({"partial": true})),
        ],
        None,
    );
    let rejected = common::of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 1, "{}", timeline(&ev).join("\n"));
    assert!(
        s(&rejected[0]["reason"]).contains("supplement.1"),
        "{}",
        rejected[0]["reason"]
    );
}

/// The supplement's window is configurable; a ruleset without `[reports.supplement]` uses the
/// route's window and the initial report's reminders.
#[test]
fn the_supplement_window_is_configurable_and_defaults_to_the_routes_window() {
    let dir = config_copy_both(|g, r| {
        let i = r
            .find("[reports.supplement]")
            .expect("shipped supplement rules");
        let j = i + r[i..].find("overdue_every").expect("overdue_every");
        let end = j + r[j..].find('\n').expect("line end");
        (g.to_string(), format!("{}{}", &r[..i], &r[end + 1..]))
    });
    let c = klaxon::settings::load(dir.path()).expect("a ruleset without supplement rules loads");
    let rule = c.ruleset.report_rule(klaxon::model::ReportKind::Supplement);
    assert_eq!(rule.window, None);
    assert_eq!(
        rule,
        &klaxon::settings::ruleset::ReportRule {
            window: None,
            ..c.ruleset
                .report_rule(klaxon::model::ReportKind::Initial)
                .clone()
        }
    );

    let dir = config_copy_both(|g, r| {
        (
            g.to_string(),
            r.replace(
                "[reports.supplement]\n",
                "[reports.supplement]\nwindow = \"24h\"\n",
            ),
        )
    });
    let c = klaxon::settings::load(dir.path()).expect("loads");
    let rule = c.ruleset.report_rule(klaxon::model::ReportKind::Supplement);
    assert_eq!(rule.window, Some(Millis(24 * 60 * MINUTE)));

    let dir = config_copy_both(|g, r| {
        (
            g.to_string(),
            r.replace(
                "[reports.supplement]\n",
                "[reports.supplement]\nwindow = \"soon\"\n",
            )
            .replace(
                "notify = [\"same_level_departments\"]",
                "notify = [\"nobody_role\"]",
            ),
        )
    });
    let Err(err) = klaxon::settings::load(dir.path()) else {
        panic!("bad supplement window and notify role are refused")
    };
    let err = err.to_string();
    for want in [
        "reporting.toml: reports.supplement.window",
        "reporting.toml: routes.other.onward.notify[0]",
    ] {
        assert!(err.contains(want), "{want} in:\n{err}");
    }
}

/// 续报: `follow_up` with a `reason` (new important circumstances, a milestone of the
/// investigation) makes a follow-up report due, as a level rise after filing does.
#[test]
fn a_follow_up_command_with_a_reason_makes_a_follow_up_report_due() {
    let reason = "取得阶段性调查进展：已确认入侵路径";
    let ev = run(
        &[
            other_leak(),
            cmd("follow_up", "k", "08:30", json!({"reason": "too early"})),
            cmd("report_filed", "k", "09:00", json!({})),
            cmd("follow_up", "k", "10:00", json!({})),
            cmd("follow_up", "k", "10:00", json!({"reason": reason})),
            cmd("follow_up", "k", "10:30", json!({"reason": "again"})),
            cmd(
                "report_filed",
                "k",
                "11:00",
                json!({"report_kind": "follow_up"}),
            ),
            cmd(
                "follow_up",
                "k",
                "12:00",
                json!({"reason": "another milestone"}),
            ),
        ],
        Some("20:00"),
    );
    let inc = incident_opened_by(&ev, "a1");
    let first = due_of(&ev, &inc, "follow_up.1");
    assert_eq!(first["at"], t("10:00"));
    assert_eq!(first["deadline"], t("14:00"), "the route's window (4 h)");
    assert_eq!(first["reason"], reason);
    assert_eq!(first["command"]["command"], "follow_up");
    let second = due_of(&ev, &inc, "follow_up.2");
    assert_eq!(second["deadline"], t("16:00"));
    // Rejected: before any report was filed; without a reason; while one is outstanding.
    let reasons: Vec<String> = common::of_type(&ev, "command.rejected")
        .iter()
        .map(|e| s(&e["reason"]).to_string())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("no report has been filed"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("`reason` is required"), "{reasons:?}");
    assert!(
        reasons[2].contains("follow_up.1 is already due"),
        "{reasons:?}"
    );
    // follow_up.1 was filed: its timers stopped; follow_up.2 runs to overdue.
    let overdue: Vec<&Value> = of(&ev, &inc, "report.overdue");
    assert!(overdue
        .iter()
        .all(|e| !s(&e["event_id"]).contains("follow_up.1")));
    assert!(overdue
        .iter()
        .any(|e| s(&e["event_id"]).contains("follow_up.2")));
}
