//! Reporting obligations as an on-call engineer sees them: which window and recipients a
//! `report.due` names, when reminders and overdue escalations come, and what each command does to
//! them. Driven through the engine with JSON alerts and commands, on event time.

mod common;

use common::{
    assert_event_ids_unique, at_of, incident_opened_by, instant, of, of_type, run, t, timeline, ts,
    Live,
};
use serde_json::{json, Value};

// ------------------------------------------------------------------ records

/// An alert with an explicit incident key.
fn alert(id: &str, at: &str, key: &str, operator: Value, asset: Value, impact: Value) -> Value {
    json!({
        "id": id, "timestamp": t(at), "source": "test", "title": format!("alert {id}"),
        "category": "test", "incident_key": key,
        "operator": operator, "asset": asset, "impact": impact,
    })
}

/// A personal-information leak of `records` (row 5: 1,000,000 较大, 10,000,000 重大, 100,000,000
/// 特别重大), keyed `key`.
fn leak(id: &str, at: &str, key: &str, operator: &str, asset: &str, records: u64) -> Value {
    alert(
        id,
        at,
        key,
        json!(operator),
        json!(asset),
        json!({"personal_info_records": records}),
    )
}

/// A command addressed to `target` (`@key` or an incident id), with extra fields.
fn cmd(command: &str, target: &str, at: &str, extra: Value) -> Value {
    let mut v = json!({"command": command, "incident_id": target, "at": t(at), "by": "oncall"});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            obj.insert(k.clone(), x.clone());
        }
    }
    v
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| s(&r["id"]))
        .collect()
}

fn only<'a>(events: &'a [Value], incident: &str, ty: &str) -> &'a Value {
    let found = of(events, incident, ty);
    assert_eq!(
        found.len(),
        1,
        "want exactly one {ty} for {incident}:\n{}",
        timeline(events).join("\n")
    );
    found[0]
}

fn initial_due<'a>(events: &'a [Value], incident: &str) -> &'a Value {
    of(events, incident, "report.due")
        .into_iter()
        .find(|e| e["report_kind"] == "initial")
        .unwrap_or_else(|| {
            panic!(
                "no initial report.due for {incident}:\n{}",
                timeline(events).join("\n")
            )
        })
}

fn times(events: &[&Value]) -> Vec<String> {
    events.iter().map(|e| s(&e["at"]).to_string()).collect()
}

// ------------------------------------------------------------------ windows by operator class

#[test]
fn a_cii_operator_must_report_within_1_hour() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "gd-grid",
            "gd-grid-ami",
            1_200_000,
        )],
        None,
    );
    let inc = incident_opened_by(&ev, "a1");
    let due = initial_due(&ev, &inc);
    assert_eq!(due["at"], t("08:00"));
    assert_eq!(due["deadline"], t("09:00"));
    assert_eq!(due["seconds_remaining"], 3600);
    assert_eq!(due["level"], "relatively_major");
    assert_eq!(due["level_zh"], "较大");
}

#[test]
fn a_central_state_organ_must_report_within_2_hours() {
    let ev = run(
        &[leak("a1", "08:00", "k", "mof", "mof-budget", 1_200_000)],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    assert_eq!(due["deadline"], t("10:00"));
    assert_eq!(due["seconds_remaining"], 7200);
}

#[test]
fn any_other_operator_must_report_within_4_hours() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "sz-tech",
            "sz-tech-vpn",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    assert_eq!(due["deadline"], t("12:00"));
    assert_eq!(due["seconds_remaining"], 14400);
}

#[test]
fn an_unknown_operator_is_treated_as_other_with_4_hours() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "acme-logistics",
            "acme-wms-01",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    assert_eq!(due["deadline"], t("12:00"));
    assert_eq!(due["operator"]["class"], "other");
}

#[test]
fn an_incident_on_a_cii_system_takes_the_1_hour_route_even_if_its_operator_says_other() {
    let ev = run(
        &[alert(
            "a1",
            "08:00",
            "k",
            json!({"id": "gd-plant", "name": "某制造厂", "class": "other", "province": "广东省"}),
            json!({"id": "plant-dcs", "name": "DCS", "kind": "cii_system"}),
            json!({"outage": {"scope": "whole", "since": t("07:30"), "until": t("07:45")}}),
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    assert_eq!(due["deadline"], t("09:00"), "CII route: 1 h");
    // The CII route's recipients first (with no sector known, the fallback protection
    // department), then the operator's own route's: both routes apply (#26).
    assert_eq!(
        ids(&due["recipients"]),
        vec!["cii-protection", "gd-psb", "gd-cac"]
    );
}

// ------------------------------------------------------------------ recipients, onward, channels, draft

#[test]
fn recipients_follow_the_operators_class_province_sector_and_organ() {
    let ev = run(
        &[
            leak("other", "08:00", "k1", "sz-tech", "sz-tech-vpn", 1_200_000),
            leak(
                "energy",
                "08:00",
                "k2",
                "gd-grid",
                "gd-grid-scada",
                1_200_000,
            ),
            leak(
                "transport",
                "08:00",
                "k3",
                "bj-metro",
                "bj-metro-afc",
                1_200_000,
            ),
            leak("organ", "08:00", "k4", "mof", "mof-budget", 1_200_000),
        ],
        None,
    );
    let due = |alert_id: &str| initial_due(&ev, &incident_opened_by(&ev, alert_id)).clone();
    assert_eq!(
        due("other")["recipients"],
        json!([{"id": "gd-cac", "name": "广东省委网信办"}])
    );
    assert_eq!(
        ids(&due("energy")["recipients"]),
        vec!["energy-cii-protection", "gd-psb"]
    );
    assert_eq!(
        ids(&due("transport")["recipients"]),
        vec!["transport-cii-protection", "bj-psb"]
    );
    assert_eq!(ids(&due("organ")["recipients"]), vec!["mof-cyber"]);
}

#[test]
fn an_operator_without_a_known_province_gets_a_recipient_placeholder_to_complete() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "acme-logistics",
            "acme-wms-01",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    let r = &due["recipients"][0];
    assert_eq!(r["id"], "unresolved:provincial_cyberspace_office");
    assert!(s(&r["name"]).contains("【待填写】"), "{r}");
}

#[test]
fn onward_reporting_is_named_only_for_major_and_above() {
    let ev = run(
        &[
            leak("rm", "08:00", "k1", "sz-tech", "sz-tech-vpn", 1_200_000),
            leak("cii", "08:00", "k2", "gd-grid", "gd-grid-scada", 12_000_000),
            leak(
                "other",
                "08:00",
                "k3",
                "sz-tech",
                "sz-tech-portal",
                12_000_000,
            ),
            leak("organ", "08:00", "k4", "mof", "mof-budget", 12_000_000),
        ],
        None,
    );
    let due = |alert_id: &str| initial_due(&ev, &incident_opened_by(&ev, alert_id)).clone();
    assert!(
        due("rm").get("onward").is_none(),
        "较大 has no onward duty: {}",
        due("rm")
    );

    let cii = due("cii");
    assert_eq!(cii["onward"]["within_minutes"], 30);
    assert_eq!(
        cii["onward"]["deadline"],
        t("09:30"),
        "30 min after the operator's 09:00"
    );
    assert_eq!(ids(&cii["onward"]["to"]), vec!["cac", "mps"]);

    let other = due("other");
    assert_eq!(other["onward"]["within_minutes"], 60);
    assert_eq!(other["onward"]["deadline"], t("13:00"));
    assert_eq!(ids(&other["onward"]["to"]), vec!["cac"]);

    let organ = due("organ");
    assert_eq!(organ["onward"]["within_minutes"], 60);
    assert_eq!(organ["onward"]["deadline"], t("11:00"));
}

#[test]
fn every_report_due_lists_the_12387_channels() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "sz-tech",
            "sz-tech-vpn",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    let channels = due["channels"].as_array().expect("channels");
    assert!(
        channels.contains(&json!({"kind": "hotline", "value": "12387"})),
        "{channels:?}"
    );
    assert!(channels.contains(&json!({"kind": "website", "value": "https://12387.cert.org.cn"})));
    assert!(channels.contains(&json!({"kind": "email", "value": "12387@cert.org.cn"})));
}

#[test]
fn the_draft_has_the_eight_items_of_article_7_and_marks_what_a_person_must_complete() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "sz-tech",
            "sz-tech-vpn",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    let items = due["draft"]["items"].as_array().expect("draft items");
    assert_eq!(items.len(), 8);
    let titles = &common::config().ruleset.draft_titles;
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["item"], i + 1);
        assert_eq!(s(&item["title"]), titles[i]);
        let marked = s(&item["content"]).contains("【待填写】");
        assert_eq!(
            item["to_complete"],
            marked,
            "item {} is marked iff it says 【待填写】: {item}",
            i + 1
        );
    }
    // Item 1: who and what, known from the registry.
    assert_eq!(items[0]["to_complete"], false);
    assert!(s(&items[0]["content"]).contains("深圳鹏程智能科技股份有限公司"));
    assert!(s(&items[0]["content"]).contains("远程办公SSL VPN网关"));
    // Item 2: the level and why.
    let item2 = s(&items[1]["content"]);
    assert!(
        item2.contains("较大") && item2.contains("personal_info_records"),
        "{item2}"
    );
    // Items 3–8 need a person.
    assert!(items[2..].iter().all(|i| i["to_complete"] == true));
}

#[test]
fn the_draft_asks_for_the_unit_when_the_operator_is_unknown() {
    let ev = run(
        &[leak(
            "a1",
            "08:00",
            "k",
            "acme-logistics",
            "acme-wms-01",
            1_200_000,
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    assert_eq!(due["draft"]["items"][0]["to_complete"], true);
}

#[test]
fn a_ransomware_draft_carries_the_ransom_amount_method_and_date() {
    let ev = run(
        &[alert(
            "a1",
            "08:00",
            "k",
            json!("hb-hospital"),
            json!("hb-hospital-his"),
            json!({"affected_population": 150000,
                   "ransom": {"amount": 3.5, "currency": "BTC", "method": "wallet transfer", "date": "2026-11-24"}}),
        )],
        None,
    );
    let due = initial_due(&ev, &incident_opened_by(&ev, "a1")).clone();
    let item2 = s(&due["draft"]["items"][1]["content"]);
    for want in ["3.5", "BTC", "wallet transfer", "2026-11-24"] {
        assert!(
            item2.contains(want),
            "item 2 should mention {want}: {item2}"
        );
    }
}

// ------------------------------------------------------------------ reminders and overdue

fn other_leak_at_8() -> Value {
    leak("a1", "08:00", "k", "sz-tech", "sz-tech-vpn", 1_200_000)
}

#[test]
fn reminders_come_30_and_10_minutes_before_the_deadline() {
    let ev = run(&[other_leak_at_8()], Some("11:59:59"));
    let inc = incident_opened_by(&ev, "a1");
    let reminders = of(&ev, &inc, "report.reminder");
    assert_eq!(times(&reminders), vec![t("11:30"), t("11:50")]);
    assert_eq!(reminders[0]["reminder_before"], "30m");
    assert_eq!(reminders[0]["seconds_remaining"], 1800);
    assert_eq!(reminders[1]["reminder_before"], "10m");
    assert_eq!(reminders[1]["seconds_remaining"], 600);
    assert_eq!(
        reminders[0]["event_id"],
        format!("{inc}/report.reminder/initial/30m")
    );
    assert_eq!(
        reminders[0]["recipients"],
        json!([{"id": "gd-cac", "name": "广东省委网信办"}])
    );
    assert!(
        of(&ev, &inc, "report.overdue").is_empty(),
        "not overdue before the deadline"
    );
}

#[test]
fn overdue_fires_at_the_deadline_then_every_30_minutes_until_the_report_is_filed() {
    let lines = [
        other_leak_at_8(),
        cmd(
            "report_filed",
            "@k",
            "13:10",
            json!({"channel": "12387", "reference": "R-1"}),
        ),
    ];
    let ev = run(&lines, Some("18:00"));
    let inc = incident_opened_by(&ev, "a1");
    let overdue = of(&ev, &inc, "report.overdue");
    assert_eq!(times(&overdue), vec![t("12:00"), t("12:30"), t("13:00")]);
    let counts: Vec<&Value> = overdue.iter().map(|e| &e["overdue_count"]).collect();
    assert_eq!(counts, vec![&json!(1), &json!(2), &json!(3)]);
    let remaining: Vec<&Value> = overdue.iter().map(|e| &e["seconds_remaining"]).collect();
    assert_eq!(remaining, vec![&json!(0), &json!(-1800), &json!(-3600)]);
    let filed = only(&ev, &inc, "report.filed");
    assert_eq!(filed["seconds_remaining"], -4200, "filed 70 min late");
}

#[test]
fn report_filed_stops_the_countdown_and_echoes_who_filed_where() {
    let lines = [
        other_leak_at_8(),
        cmd(
            "report_filed",
            "@k",
            "09:00",
            json!({"channel": "12387", "reference": "GD-WX-1", "report_kind": "initial"}),
        ),
    ];
    let ev = run(&lines, Some("2026-11-25T12:00:00+08:00"));
    let inc = incident_opened_by(&ev, "a1");
    assert!(of(&ev, &inc, "report.reminder").is_empty());
    assert!(of(&ev, &inc, "report.overdue").is_empty());
    let filed = only(&ev, &inc, "report.filed");
    assert_eq!(filed["report_kind"], "initial");
    assert_eq!(filed["deadline"], t("12:00"));
    assert_eq!(filed["seconds_remaining"], 3 * 3600);
    assert_eq!(filed["command"]["by"], "oncall");
    assert_eq!(filed["command"]["channel"], "12387");
    assert_eq!(filed["command"]["reference"], "GD-WX-1");
}

#[test]
fn acknowledging_an_incident_does_not_stop_its_reminders() {
    let lines = [other_leak_at_8(), cmd("ack", "@k", "08:10", json!({}))];
    let ev = run(&lines, Some("12:00"));
    let inc = incident_opened_by(&ev, "a1");
    assert_eq!(only(&ev, &inc, "incident.acknowledged")["at"], t("08:10"));
    assert_eq!(of(&ev, &inc, "report.reminder").len(), 2);
    assert_eq!(of(&ev, &inc, "report.overdue").len(), 1);
}

#[test]
fn report_filed_without_report_kind_files_the_oldest_outstanding_report() {
    let lines = [
        other_leak_at_8(),
        cmd("resolve", "@k", "09:00", json!({})),
        cmd("report_filed", "@k", "10:00", json!({})),
        cmd("report_filed", "@k", "10:30", json!({})),
        cmd("report_filed", "@k", "11:00", json!({})),
    ];
    let ev = run(&lines, Some("14:00"));
    let inc = incident_opened_by(&ev, "a1");
    let filed = of(&ev, &inc, "report.filed");
    let kinds: Vec<&Value> = filed.iter().map(|e| &e["report_kind"]).collect();
    assert_eq!(kinds, vec![&json!("initial"), &json!("summary")]);
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["at"], t("11:00"));
    assert!(
        s(&rejected[0]["reason"]).contains("no report is outstanding"),
        "{}",
        rejected[0]
    );
    assert!(of(&ev, &inc, "report.overdue").is_empty());
}

#[test]
fn report_filed_with_a_report_kind_files_that_report_only() {
    let lines = [
        other_leak_at_8(),
        cmd("resolve", "@k", "09:00", json!({})),
        cmd(
            "report_filed",
            "@k",
            "10:00",
            json!({"report_kind": "summary"}),
        ),
        cmd(
            "report_filed",
            "@k",
            "10:10",
            json!({"report_kind": "follow_up"}),
        ),
        cmd(
            "report_filed",
            "@k",
            "10:20",
            json!({"report_kind": "final"}),
        ),
    ];
    let ev = run(&lines, Some("12:00"));
    let inc = incident_opened_by(&ev, "a1");
    assert_eq!(only(&ev, &inc, "report.filed")["report_kind"], "summary");
    // The initial report is still counting down.
    assert_eq!(times(&of(&ev, &inc, "report.overdue")), vec![t("12:00")]);
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 2);
    assert!(
        s(&rejected[0]["reason"]).contains("no follow_up report is outstanding"),
        "{}",
        rejected[0]
    );
    assert!(
        s(&rejected[1]["reason"]).contains("report_kind"),
        "{}",
        rejected[1]
    );
}

// ------------------------------------------------------------------ resolve and summary

#[test]
fn resolving_does_not_cancel_a_due_report() {
    let lines = [other_leak_at_8(), cmd("resolve", "@k", "09:00", json!({}))];
    let ev = run(&lines, Some("12:30"));
    let inc = incident_opened_by(&ev, "a1");
    assert_eq!(only(&ev, &inc, "incident.resolved")["at"], t("09:00"));
    assert_eq!(
        times(&of(&ev, &inc, "report.reminder")),
        vec![t("11:30"), t("11:50")]
    );
    assert_eq!(
        times(&of(&ev, &inc, "report.overdue")),
        vec![t("12:00"), t("12:30")]
    );
}

#[test]
fn resolving_a_reportable_incident_makes_a_summary_due_30_days_later_with_its_own_timers() {
    let lines = [
        other_leak_at_8(),
        cmd("report_filed", "@k", "09:00", json!({})),
        cmd("resolve", "@k", "10:00", json!({})),
    ];
    let ev = run(&lines, Some("2026-12-25T12:00:00+08:00"));
    let inc = incident_opened_by(&ev, "a1");
    let summary = of(&ev, &inc, "report.due")
        .into_iter()
        .find(|e| e["report_kind"] == "summary")
        .expect("summary report.due")
        .clone();
    assert_eq!(summary["at"], t("10:00"));
    assert_eq!(summary["deadline"], "2026-12-24T10:00:00+08:00");
    assert_eq!(summary["seconds_remaining"], 30 * 86400);
    assert_eq!(summary["event_id"], format!("{inc}/report.due/summary"));
    // Same channel and recipients as the original report.
    assert_eq!(
        summary["recipients"],
        json!([{"id": "gd-cac", "name": "广东省委网信办"}])
    );
    let reminders = of(&ev, &inc, "report.reminder");
    assert_eq!(
        times(&reminders),
        vec!["2026-12-17T10:00:00+08:00", "2026-12-23T10:00:00+08:00"],
        "7 days and 1 day before"
    );
    let overdue = of(&ev, &inc, "report.overdue");
    assert_eq!(
        times(&overdue),
        vec!["2026-12-24T10:00:00+08:00", "2026-12-25T10:00:00+08:00"]
    );
    assert!(overdue.iter().all(|e| e["report_kind"] == "summary"));
}

#[test]
fn an_incident_owes_one_summary_report_even_after_a_merge_brings_one_in() {
    // k0 is resolved at 09:00 (its summary falls due) and folded into k at 10:00, which takes
    // over that summary with its deadline. Filed at 11:00, it counts for k: resolving k at
    // 12:00 makes no second summary due, and no event id repeats.
    let lines = [
        other_leak_at_8(),
        leak("b1", "08:30", "k0", "sz-tech", "sz-tech-vpn", 1_200_000),
        cmd("resolve", "@k0", "09:00", json!({})),
        cmd("merge", "@k0", "10:00", json!({"into": "@k"})),
        cmd(
            "report_filed",
            "@k",
            "11:00",
            json!({"report_kind": "summary"}),
        ),
        cmd("resolve", "@k", "12:00", json!({})),
        cmd(
            "report_filed",
            "@k",
            "13:00",
            json!({"report_kind": "summary"}),
        ),
    ];
    let ev = run(&lines, Some("2026-12-31T00:00:00+08:00"));
    let inc = incident_opened_by(&ev, "a1");
    assert_event_ids_unique(&ev);
    let summaries: Vec<&Value> = of(&ev, &inc, "report.filed")
        .into_iter()
        .filter(|e| e["report_kind"] == "summary")
        .collect();
    assert_eq!(summaries.len(), 1, "{}", timeline(&ev).join("\n"));
    assert_eq!(summaries[0]["at"], t("11:00"));
    let refused = of_type(&ev, "command.rejected");
    assert_eq!(refused.len(), 1, "{}", timeline(&ev).join("\n"));
    assert_eq!(refused[0]["reason"], "no summary report is outstanding");
}

#[test]
fn resolving_an_incident_that_never_became_reportable_makes_nothing_due() {
    let lines = [
        leak("a1", "08:00", "k", "sz-tech", "sz-tech-vpn", 300_000),
        cmd("resolve", "@k", "09:00", json!({})),
    ];
    let ev = run(&lines, Some("2026-12-31T00:00:00+08:00"));
    assert!(
        of_type(&ev, "report.due").is_empty(),
        "{}",
        timeline(&ev).join("\n")
    );
    assert_eq!(of_type(&ev, "incident.resolved").len(), 1);
}

#[test]
fn resolving_twice_is_rejected() {
    let lines = [
        other_leak_at_8(),
        cmd("resolve", "@k", "09:00", json!({})),
        cmd("resolve", "@k", "09:05", json!({})),
    ];
    let ev = run(&lines, None);
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 1);
    assert!(s(&rejected[0]["reason"]).contains("already resolved"));
    assert_eq!(of_type(&ev, "report.due").len(), 2, "one summary, not two");
}

// ------------------------------------------------------------------ dismiss

#[test]
fn dismiss_needs_a_reason_and_then_stops_every_timer() {
    let lines = [
        other_leak_at_8(),
        cmd("dismiss", "@k", "09:00", json!({})),
        cmd(
            "dismiss",
            "@k",
            "09:30",
            json!({"reason": "授权渗透测试 (CHG-1)"}),
        ),
    ];
    let ev = run(&lines, Some("2026-11-26T00:00:00+08:00"));
    let inc = incident_opened_by(&ev, "a1");
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["at"], t("09:00"));
    assert!(
        s(&rejected[0]["reason"]).contains("reason"),
        "{}",
        rejected[0]
    );
    let dismissed = only(&ev, &inc, "incident.dismissed");
    assert_eq!(dismissed["reason"], "授权渗透测试 (CHG-1)");
    let after: Vec<&Value> = ev
        .iter()
        .filter(|e| e["incident_id"] == inc.as_str() && at_of(e) > ts("09:30"))
        .collect();
    assert!(after.is_empty(), "nothing after dismissal: {after:?}");
}

#[test]
fn dismissing_an_ongoing_outage_stops_its_regrades_and_warnings() {
    let lines = [
        alert(
            "a1",
            "08:00",
            "k",
            json!("gd-grid"),
            json!("gd-grid-scada"),
            json!({"outage": {"scope": "whole", "since": t("08:00"), "until": null}}),
        ),
        cmd(
            "dismiss",
            "@k",
            "08:05",
            json!({"reason": "monitoring probe misconfigured"}),
        ),
    ];
    let ev = run(&lines, Some("23:00"));
    let inc = incident_opened_by(&ev, "a1");
    assert!(
        of(&ev, &inc, "incident.graded").is_empty(),
        "{}",
        timeline(&ev).join("\n")
    );
    assert!(of(&ev, &inc, "report.due").is_empty());
}

#[test]
fn a_dismissed_incident_takes_no_more_alerts() {
    let lines = [
        leak("a1", "08:00", "k", "sz-tech", "sz-tech-vpn", 100),
        cmd("dismiss", "@k", "08:30", json!({"reason": "test data"})),
        leak("a2", "09:00", "k", "sz-tech", "sz-tech-vpn", 1_200_000),
    ];
    let ev = run(&lines, None);
    let first = incident_opened_by(&ev, "a1");
    let second = incident_opened_by(&ev, "a2");
    assert_ne!(first, second);
    assert_eq!(initial_due(&ev, &second)["deadline"], t("13:00"));
}

// ------------------------------------------------------------------ follow-up reports

#[test]
fn a_level_rise_after_the_initial_report_was_filed_makes_a_follow_up_due() {
    let lines = [
        other_leak_at_8(),
        cmd("report_filed", "@k", "09:00", json!({})),
        leak("a2", "10:00", "k", "sz-tech", "sz-tech-vpn", 12_000_000),
        cmd(
            "report_filed",
            "@k",
            "11:00",
            json!({"report_kind": "follow_up"}),
        ),
        leak("a3", "12:00", "k", "sz-tech", "sz-tech-vpn", 120_000_000),
    ];
    let ev = run(&lines, Some("12:00"));
    let inc = incident_opened_by(&ev, "a1");
    let follow_ups: Vec<&Value> = of(&ev, &inc, "report.due")
        .into_iter()
        .filter(|e| e["report_kind"] == "follow_up")
        .collect();
    assert_eq!(follow_ups.len(), 2, "{}", timeline(&ev).join("\n"));
    assert_eq!(
        follow_ups[0]["event_id"],
        format!("{inc}/report.due/follow_up.1")
    );
    assert_eq!(follow_ups[0]["level"], "major");
    assert_eq!(follow_ups[0]["deadline"], t("14:00"), "the same 4 h window");
    assert_eq!(
        follow_ups[1]["event_id"],
        format!("{inc}/report.due/follow_up.2")
    );
    assert_eq!(follow_ups[1]["level"], "particularly_major");
    assert_eq!(follow_ups[1]["deadline"], t("16:00"));
}

#[test]
fn a_level_rise_while_the_initial_report_is_unfiled_makes_no_follow_up() {
    let lines = [
        other_leak_at_8(),
        leak("a2", "09:00", "k", "sz-tech", "sz-tech-vpn", 12_000_000),
        cmd("report_filed", "@k", "10:00", json!({})),
    ];
    let ev = run(&lines, Some("23:00"));
    let inc = incident_opened_by(&ev, "a1");
    let dues = of(&ev, &inc, "report.due");
    assert_eq!(
        dues.len(),
        1,
        "only the initial: {}",
        timeline(&ev).join("\n")
    );
    let graded = of(&ev, &inc, "incident.graded");
    assert_eq!(graded.last().expect("graded")["level"], "major");
    // The initial report, filed after the rise, reports the new level.
    assert_eq!(only(&ev, &inc, "report.filed")["level"], "major");
}

// ------------------------------------------------------------------ regrade

#[test]
fn regrade_overrides_the_computed_level_until_the_next_regrade() {
    let lines = [
        leak("a1", "08:00", "k", "sz-tech", "sz-tech-vpn", 12_000_000),
        cmd(
            "regrade",
            "@k",
            "08:30",
            json!({"level": "relatively_major", "reason": "records double counted"}),
        ),
        leak("a2", "09:00", "k", "sz-tech", "sz-tech-vpn", 150_000_000),
        cmd(
            "regrade",
            "@k",
            "10:00",
            json!({"level": "computed", "reason": "recount confirmed"}),
        ),
    ];
    let ev = run(&lines, None);
    let inc = incident_opened_by(&ev, "a1");
    let graded = of(&ev, &inc, "incident.graded");
    let steps: Vec<(String, &Value, &Value)> = graded
        .iter()
        .map(|e| (s(&e["at"]).to_string(), &e["previous_level"], &e["level"]))
        .collect();
    assert_eq!(
        steps,
        vec![
            (t("08:00"), &json!("general"), &json!("major")),
            (t("08:30"), &json!("major"), &json!("relatively_major")),
            (
                t("10:00"),
                &json!("relatively_major"),
                &json!("particularly_major")
            ),
        ],
        "the 09:00 alert does not lift an analyst's level"
    );
    let analyst = &graded[1]["matched"][0];
    assert_eq!(analyst["indicator"], "analyst_regrade");
    assert_eq!(analyst["value"], "records double counted");
}

#[test]
fn a_regrade_to_major_after_filing_makes_a_follow_up_due_with_the_analysts_evidence() {
    let lines = [
        other_leak_at_8(),
        cmd("report_filed", "@k", "08:30", json!({})),
        cmd(
            "regrade",
            "@k",
            "09:00",
            json!({"level": "major", "reason": "serious threat"}),
        ),
    ];
    let ev = run(&lines, None);
    let inc = incident_opened_by(&ev, "a1");
    let follow = of(&ev, &inc, "report.due")
        .into_iter()
        .find(|e| e["report_kind"] == "follow_up")
        .cloned();
    let follow = follow.expect("follow-up due");
    assert_eq!(follow["deadline"], t("13:00"));
    assert_eq!(follow["matched"][0]["indicator"], "analyst_regrade");
}

#[test]
fn regrade_needs_a_reason_and_a_known_level() {
    let lines = [
        other_leak_at_8(),
        cmd("regrade", "@k", "09:00", json!({"level": "major"})),
        cmd(
            "regrade",
            "@k",
            "09:10",
            json!({"level": "huge", "reason": "gut feeling"}),
        ),
        cmd("regrade", "@k", "09:20", json!({"reason": "no level"})),
    ];
    let ev = run(&lines, None);
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 3, "{}", timeline(&ev).join("\n"));
    assert!(s(&rejected[0]["reason"]).contains("reason"));
    assert!(s(&rejected[1]["reason"]).contains("huge"));
    assert!(s(&rejected[2]["reason"]).contains("level"));
    assert_eq!(
        of_type(&ev, "incident.graded").len(),
        1,
        "only the alert's grade"
    );
}

// ------------------------------------------------------------------ merge

#[test]
fn merge_moves_outstanding_reports_so_no_deadline_is_lost() {
    let lines = [
        leak("a1", "08:00", "a", "sz-tech", "sz-tech-vpn", 1_200_000),
        leak("b1", "08:30", "b", "sz-tech", "sz-tech-portal", 1_000),
        cmd("merge", "@a", "09:00", json!({"into": "@b"})),
    ];
    let ev = run(&lines, Some("12:30"));
    let a = incident_opened_by(&ev, "a1");
    let b = incident_opened_by(&ev, "b1");
    let merged = only(&ev, &a, "incident.merged");
    assert_eq!(merged["merged_into"], b.as_str());
    assert_eq!(
        times(&of(&ev, &b, "report.reminder")),
        vec![t("11:30"), t("11:50")]
    );
    let overdue = of(&ev, &b, "report.overdue");
    assert_eq!(times(&overdue), vec![t("12:00"), t("12:30")]);
    assert_eq!(overdue[0]["deadline"], t("12:00"));
    let a_after: Vec<&Value> = ev
        .iter()
        .filter(|e| e["incident_id"] == a.as_str() && at_of(e) > ts("09:00"))
        .collect();
    assert!(
        a_after.is_empty(),
        "the merged-away incident goes quiet: {a_after:?}"
    );
    // The merged incident carries the figures of both: 较大 from a's leak.
    let graded = of(&ev, &b, "incident.graded");
    assert_eq!(
        graded.last().expect("b graded")["level"],
        "relatively_major"
    );
}

#[test]
fn merging_two_reportable_incidents_keeps_the_earlier_initial_deadline() {
    let lines = [
        leak("a1", "08:00", "a", "sz-tech", "sz-tech-vpn", 1_200_000),
        leak("b1", "09:00", "b", "sz-tech", "sz-tech-portal", 1_200_000),
        cmd("merge", "@a", "09:30", json!({"into": "@b"})),
    ];
    let ev = run(&lines, Some("12:00"));
    let b = incident_opened_by(&ev, "b1");
    let overdue = of(&ev, &b, "report.overdue");
    assert_eq!(
        times(&overdue),
        vec![t("12:00")],
        "a's 12:00 deadline survives the merge: {}",
        timeline(&ev).join("\n")
    );
    assert_eq!(overdue[0]["deadline"], t("12:00"));
}

#[test]
fn merge_into_an_unknown_incident_is_rejected_and_changes_nothing() {
    let lines = [
        other_leak_at_8(),
        cmd("merge", "@k", "09:00", json!({"into": "@nope"})),
        cmd("merge", "@k", "09:10", json!({"into": "@k"})),
    ];
    let ev = run(&lines, Some("12:00"));
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 2);
    assert!(s(&rejected[0]["reason"]).contains("merge target"));
    assert!(s(&rejected[1]["reason"]).contains("itself"));
    assert_eq!(of_type(&ev, "report.overdue").len(), 1);
}

// ------------------------------------------------------------------ growing durations

fn scada_down_since(since: &str, at: &str) -> Value {
    alert(
        "a1",
        at,
        "scada",
        json!("gd-grid"),
        json!("gd-grid-scada"),
        json!({"outage": {"scope": "whole", "since": t(since), "until": null}}),
    )
}

#[test]
fn an_ongoing_outage_regrades_at_the_exact_crossing_instant_without_a_new_alert() {
    let mut live = Live::new();
    live.send(scada_down_since("07:55", "08:00"));
    let before = live.tick("08:04:59.999");
    assert!(of_type(&before, "incident.graded").is_empty(), "{before:?}");
    assert_eq!(live.engine.poll_timeout(), Some(ts("08:05")));
    let at = live.tick("08:05");
    let graded = of_type(&at, "incident.graded");
    assert_eq!(graded.len(), 1, "{at:?}");
    assert_eq!(graded[0]["at"], t("08:05"));
    assert_eq!(graded[0]["level"], "relatively_major");
    assert_eq!(
        graded[0]["matched"][0]["indicator"],
        "cii_whole_outage_minutes"
    );
    // t0 is the crossing instant, not the first alert: the CII hour runs to 09:05.
    let due = of_type(&at, "report.due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0]["deadline"], t("09:05"));
    // And 1 h of outage (08:55) is 重大 at that very instant.
    let later = live.tick("08:55");
    let graded = of_type(&later, "incident.graded");
    assert_eq!(
        graded.last().map(|e| (&e["at"], &e["level"])),
        Some((&json!(t("08:55")), &json!("major")))
    );
}

#[test]
fn an_upgrade_warning_comes_one_hour_before_the_crossing() {
    let mut live = Live::new();
    live.send(alert(
        "a1",
        "08:00",
        "portal",
        json!("sc-gov"),
        json!("sc-gov-portal"),
        json!({"unreachable": {"since": t("08:00"), "until": null}}),
    ));
    assert!(live.tick("08:59:59.999").is_empty());
    let warned = live.tick("09:00");
    let w = of_type(&warned, "grade.upgrade_warning");
    assert_eq!(w.len(), 1, "{warned:?}");
    assert_eq!(w[0]["at"], t("09:00"));
    assert_eq!(w[0]["level"], "general");
    let up = &w[0]["upgrade"];
    assert_eq!(up["to_level"], "relatively_major");
    assert_eq!(up["to_level_zh"], "较大");
    assert_eq!(up["crossing_at"], t("10:00"));
    assert_eq!(up["seconds_until"], 3600);
    assert_eq!(up["indicator"], "site_unreachable_hours");
    assert_eq!(up["threshold"].as_f64(), Some(2.0));
    // Crossing at 10:00 (2 h), then the warning for 重大 at 13:00 (6 h at 14:00).
    let crossed = live.tick("10:00");
    assert_eq!(
        of_type(&crossed, "incident.graded")[0]["level"],
        "relatively_major"
    );
    let next = live.tick("13:00");
    let w = of_type(&next, "grade.upgrade_warning");
    assert_eq!(w.len(), 1, "{next:?}");
    assert_eq!(w[0]["upgrade"]["to_level"], "major");
    assert_eq!(w[0]["upgrade"]["crossing_at"], t("14:00"));
}

#[test]
fn an_outage_that_ends_before_its_crossing_cancels_the_warning_and_the_regrade() {
    let lines = [
        alert(
            "a1",
            "08:00",
            "portal",
            json!("sc-gov"),
            json!("sc-gov-portal"),
            json!({"unreachable": {"since": t("08:00"), "until": null}}),
        ),
        alert(
            "a2",
            "08:50",
            "portal",
            json!("sc-gov"),
            json!("sc-gov-portal"),
            json!({"unreachable": {"since": t("08:00"), "until": t("08:45")}}),
        ),
    ];
    let ev = run(&lines, Some("23:00"));
    assert!(
        of_type(&ev, "grade.upgrade_warning").is_empty(),
        "{}",
        timeline(&ev).join("\n")
    );
    assert!(of_type(&ev, "incident.graded").is_empty());
}

#[test]
fn a_late_still_down_alert_does_not_reopen_an_outage_a_newer_alert_closed() {
    // Live delivery is not in event-time order: the 08:30 "still down" arrives after the 08:40
    // "recovered at 08:35". The outage lasted 40 min (较大), and must not keep growing to 重大.
    let mut live = Live::new();
    let mut ev = live.send(scada_down_since("07:55", "08:00"));
    ev.extend(live.send(alert(
        "a2",
        "08:40",
        "scada",
        json!("gd-grid"),
        json!("gd-grid-scada"),
        json!({"outage": {"scope": "whole", "since": t("07:55"), "until": t("08:35")}}),
    )));
    ev.extend(live.send(alert(
        "a3",
        "08:30",
        "scada",
        json!("gd-grid"),
        json!("gd-grid-scada"),
        json!({"outage": {"scope": "whole", "since": t("07:55"), "until": null}}),
    )));
    ev.extend(live.tick("23:00"));
    let levels: Vec<&Value> = of_type(&ev, "incident.graded")
        .iter()
        .map(|e| &e["level"])
        .collect();
    assert_eq!(
        levels,
        vec![&json!("relatively_major")],
        "{}",
        timeline(&ev).join("\n")
    );
}

// ------------------------------------------------------------------ commands: addressing, rejection

#[test]
fn commands_address_an_incident_by_its_key() {
    let lines = [
        other_leak_at_8(),
        cmd("ack", "@k", "08:10", json!({"note": "looking"})),
    ];
    let ev = run(&lines, None);
    let inc = incident_opened_by(&ev, "a1");
    let ack = only(&ev, &inc, "incident.acknowledged");
    assert_eq!(ack["command"]["note"], "looking");
    assert_eq!(ack["event_id"], format!("{inc}/incident.acknowledged/1"));
}

#[test]
fn commands_address_an_incident_by_its_id() {
    let first = run(&[other_leak_at_8()], None);
    let inc = incident_opened_by(&first, "a1");
    let ev = run(
        &[other_leak_at_8(), cmd("ack", &inc, "08:10", json!({}))],
        None,
    );
    assert_eq!(only(&ev, &inc, "incident.acknowledged")["at"], t("08:10"));
}

#[test]
fn a_command_for_an_unknown_incident_is_rejected_with_the_reason() {
    let lines = [
        other_leak_at_8(),
        cmd("ack", "INC-20261124-000000000000", "09:00", json!({})),
        cmd("ack", "@no-such-key", "09:01", json!({})),
        cmd("ack", "INC-1", "09:02", json!({})),
        json!({"command": "ack", "at": t("09:03"), "by": "oncall"}),
    ];
    let ev = run(&lines, None);
    let rejected = of_type(&ev, "command.rejected");
    let reasons: Vec<&str> = rejected.iter().map(|e| s(&e["reason"])).collect();
    assert_eq!(rejected.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].contains("unknown incident INC-20261124-000000000000"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("no incident with incident_key \"no-such-key\""),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("INC-1"), "{}", reasons[2]);
    assert!(reasons[3].contains("missing incident_id"), "{}", reasons[3]);
    assert_eq!(rejected[0]["incident_id"], "INC-20261124-000000000000");
    assert_eq!(rejected[0]["command"]["command"], "ack");
    assert_eq!(rejected[0]["at"], t("09:00"));
}

/// #18: a command with a field of the wrong type, or an unreadable `at`, is answered with
/// `command.rejected` naming the field (not dead-lettered) and changes nothing; a record that
/// names no command is still a bad line.
#[test]
fn a_command_with_a_wrong_typed_field_is_rejected_naming_the_field() {
    let lines = [
        other_leak_at_8(),
        json!({"command": "regrade", "incident_id": "@k", "at": t("09:00"), "level": 3, "reason": "r"}),
        json!({"command": "report_filed", "incident_id": "@k", "at": true, "by": "alice"}),
        json!({"command": "dismiss", "incident_id": 42, "at": t("09:02"), "reason": "noise"}),
        json!({"command": "resolve", "incident_id": "@k", "at": null}),
        json!({"incident_id": "@k", "at": t("09:04")}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let replay = common::replay_text(&text, Some("12:00"));
    let ev = &replay.events;
    let rejected = of_type(ev, "command.rejected");
    let reasons: Vec<&str> = rejected.iter().map(|e| s(&e["reason"])).collect();
    assert_eq!(rejected.len(), 4, "{reasons:?}");
    assert_eq!(
        reasons[0],
        "field `level` has the wrong type: invalid type: integer `3`, expected a string"
    );
    assert_eq!(rejected[0]["at"], t("09:00"));
    assert_eq!(rejected[0]["command"]["command"], "regrade");
    assert!(
        reasons[1].starts_with("field `at` has the wrong type"),
        "{}",
        reasons[1]
    );
    assert_eq!(rejected[1]["command"]["by"], "alice");
    // No `at` of its own: rejected at the time of the record before it.
    assert_eq!(rejected[1]["at"], t("09:00"));
    assert!(reasons[2].contains("`incident_id`"), "{}", reasons[2]);
    assert!(reasons[3].contains("`at`"), "{}", reasons[3]);
    // Nothing changed: the report was never filed, the incident never dismissed or resolved.
    assert_eq!(of_type(ev, "report.filed").len(), 0);
    assert_eq!(of_type(ev, "incident.dismissed").len(), 0);
    assert_eq!(of_type(ev, "incident.resolved").len(), 0);
    assert_eq!(of_type(ev, "report.overdue").len(), 1);
    // The record that names no command is a bad line, reported by its line number.
    assert_eq!(replay.bad.len(), 1);
    assert_eq!(replay.bad[0].line, 6);
    assert_eq!(replay.bad[0].error.code(), "missing_field");
}

#[test]
fn an_unknown_command_is_rejected_with_the_reason() {
    let lines = [other_leak_at_8(), cmd("escalate", "@k", "09:00", json!({}))];
    let ev = run(&lines, Some("12:00"));
    let rejected = of_type(&ev, "command.rejected");
    assert_eq!(rejected.len(), 1);
    let reason = s(&rejected[0]["reason"]);
    assert!(reason.contains("unknown command \"escalate\""), "{reason}");
    assert!(
        reason.contains("report_filed"),
        "the reason lists the known commands: {reason}"
    );
    assert_eq!(
        of_type(&ev, "report.overdue").len(),
        1,
        "the incident is untouched"
    );
}

// ------------------------------------------------------------------ the example day

fn example_day() -> Vec<Value> {
    let text = std::fs::read_to_string(common::manifest_dir().join("examples/day.jsonl"))
        .expect("examples/day.jsonl");
    common::replay_text(&text, Some("2026-11-25T00:00:00+08:00")).events
}

#[test]
fn seconds_remaining_is_deadline_minus_at_in_every_report_event() {
    let ev = example_day();
    let mut checked = 0;
    for e in ev.iter().filter(|e| e.get("deadline").is_some()) {
        let want = (instant(&e["deadline"]).0 - at_of(e).0).div_euclid(1000);
        assert_eq!(e["seconds_remaining"], want, "{e}");
        checked += 1;
    }
    assert!(checked > 30, "only {checked} events had a deadline");
}

#[test]
fn event_ids_are_unique_across_the_example_day() {
    let ev = example_day();
    assert_event_ids_unique(&ev);
}

// ------------------------------------------------------------------ dedup and correlation

#[test]
fn a_re_sent_alert_changes_nothing() {
    let first = scada_down_since("07:55", "08:00");
    let base = vec![
        first.clone(),
        leak("x1", "08:20", "other", "sz-tech", "sz-tech-vpn", 1_200_000),
        cmd("report_filed", "@scada", "08:30", json!({})),
    ];
    let mut with_dupes = base.clone();
    with_dupes.push(first.clone());
    with_dupes.insert(1, first.clone());
    assert_eq!(run(&base, Some("12:00")), run(&with_dupes, Some("12:00")));

    // Delivered live, hours later: still nothing.
    let mut live = Live::new();
    live.send(first.clone());
    live.tick("11:00");
    assert!(live.send(first).is_empty());
    assert_eq!(live.engine.counters().duplicates, 1);
}

#[test]
fn alerts_after_the_24_hour_quiet_period_open_a_new_incident() {
    let probe = |id: &str, at: &str| json!({"id": id, "timestamp": t(at), "category": "intrusion", "operator": "sz-tech", "asset": "sz-tech-vpn"});
    // Within 24 h of the last alert: the same incident, even across midnight.
    let ev = run(
        &[
            probe("p1", "08:00"),
            probe("p2", "2026-11-25T07:59:59+08:00"),
        ],
        None,
    );
    assert_eq!(of_type(&ev, "incident.opened").len(), 1);
    // Quiet for more than 24 h: a new incident.
    let ev = run(
        &[
            probe("p1", "08:00"),
            probe("p2", "2026-11-25T08:00:01+08:00"),
        ],
        None,
    );
    let opened = of_type(&ev, "incident.opened");
    assert_eq!(opened.len(), 2);
    assert_ne!(opened[0]["incident_id"], opened[1]["incident_id"]);
    assert_eq!(opened[1]["alert_ids"][0], "p2");
}

#[test]
fn alerts_with_the_same_incident_key_join_one_incident_whatever_else_differs() {
    let lines = [
        leak("a1", "08:00", "campaign", "sz-tech", "sz-tech-vpn", 100),
        json!({"id": "a2", "timestamp": t("08:10"), "category": "other", "incident_key": "campaign",
               "operator": "sz-tech", "asset": "sz-tech-portal", "impact": {"personal_info_records": 1_200_000}}),
    ];
    let ev = run(&lines, None);
    assert_eq!(of_type(&ev, "incident.opened").len(), 1);
    assert_eq!(of_type(&ev, "report.due").len(), 1);
}

#[test]
fn incident_ids_are_deterministic_across_replays() {
    let lines = [other_leak_at_8(), scada_down_since("07:55", "08:00")];
    let a: Vec<Value> = of_type(&run(&lines, None), "incident.opened")
        .into_iter()
        .cloned()
        .collect();
    let b: Vec<Value> = of_type(&run(&lines, None), "incident.opened")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(a, b);
    assert!(s(&a[0]["incident_id"]).starts_with("INC-20261124-"));
}

#[test]
fn a_report_filed_exactly_at_its_deadline_is_on_time_and_never_overdue() {
    // "最迟不超过4小时": filing at 4 h sharp meets the deadline.
    let events = run(
        &[
            leak(
                "dl-1",
                "10:00",
                "dl",
                "hz-ecom",
                "hz-ecom-member-center",
                1_000_000,
            ),
            cmd(
                "report_filed",
                "@dl",
                "14:00",
                json!({"report_kind": "initial"}),
            ),
        ],
        Some("2026-11-24T23:00:00+08:00"),
    );
    assert!(
        of_type(&events, "report.overdue").is_empty(),
        "{:#?}",
        timeline(&events)
    );
    let filed = of_type(&events, "report.filed");
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0]["seconds_remaining"], 0);
}

#[test]
fn an_outage_still_going_on_does_not_go_quiet_after_24_hours() {
    // A "still down" alert after a day without alerts belongs to the same, still open, outage.
    let down = json!({"outage": {"scope": "main_function", "since": t("08:00"), "until": null}});
    let events = run(
        &[
            alert(
                "q-1",
                "08:00",
                "quiet",
                json!("gd-grid"),
                json!("gd-grid-scada"),
                down.clone(),
            ),
            json!({"id": "q-2", "timestamp": "2026-11-25T09:00:00+08:00", "incident_key": "quiet",
                   "operator": "gd-grid", "asset": "gd-grid-scada", "impact": down}),
        ],
        None,
    );
    assert_eq!(
        of_type(&events, "incident.opened").len(),
        1,
        "{:#?}",
        timeline(&events)
    );
}
