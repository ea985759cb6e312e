//! Properties of the core over random days of alerts and commands: determinism, time order,
//! de-duplication, order-independence at one instant, robustness of decode, and timers that fire
//! exactly when due (never early, at most once); and restarts: a snapshot restored at any cut of
//! the input gives the uninterrupted output.

mod common;

use common::{alert, at_of, instant, parse_lines, replay_text, Live};
use klaxon::decode::{decode, Expect};
use klaxon::model::{Input, ReportKind};
use klaxon::time::{Millis, Timestamp, MINUTE};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

// ------------------------------------------------------------------ the generators

/// Operators and assets from the shipped registry: a CII system, a provincial portal, a
/// super-large platform, a national organ portal, a county portal and an "other" asset.
const PARTIES: [(&str, &str); 6] = [
    ("gd-grid", "gd-grid-scada"),
    ("sc-gov", "sc-gov-portal"),
    ("hz-ecom", "hz-ecom-mall"),
    ("mof", "mof-portal"),
    ("yx-county", "yx-county-portal"),
    ("sz-tech", "sz-tech-vpn"),
];
/// Explicit incident keys; key `i` always names party `i`'s asset (one incident, one asset).
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
const CATEGORIES: [&str; 3] = ["outage", "defacement", "leak"];
const LEVELS: [&str; 5] = [
    "general",
    "relatively_major",
    "major",
    "particularly_major",
    "computed",
];
const UNTIL: &str = "2026-11-25T01:00:00+08:00";

fn day_start() -> Timestamp {
    common::ts("00:00")
}

fn fmt(t: Timestamp) -> String {
    t.format(common::config().settings.utc_offset())
}

#[derive(Clone, Debug)]
struct Span {
    /// Minutes before the alert, rounded down to a half hour so that alerts share starts.
    back: i64,
    /// Minutes the interval lasted; `None`: still going on.
    length: Option<i64>,
}

/// Home page?, span, reposts, views, designation (index into true / major / particularly_major).
type DefacementSpec = (bool, Span, Option<u64>, Option<u64>, Option<usize>);

#[derive(Clone, Debug)]
struct AlertSpec {
    /// Quarter hours into the day: alerts often share a timestamp.
    slot: i64,
    key: Option<usize>,
    party: usize,
    category: usize,
    outage: Option<(bool, Span)>,
    unreachable: Option<Span>,
    defacement: Option<DefacementSpec>,
    records: Option<u64>,
    loss: Option<f64>,
    population: Option<u64>,
    share: Option<f64>,
    leak: Option<usize>,
    finding: Option<usize>,
}

#[derive(Clone, Debug)]
struct CommandSpec {
    /// Quarter hours into the day; commands come 7 minutes past, never at an alert's instant.
    slot: i64,
    kind: usize,
    key: usize,
    other: usize,
    level: usize,
    with_reason: bool,
}

fn span() -> impl Strategy<Value = Span> {
    (
        prop::sample::select(vec![0i64, 10, 30, 60, 150, 400]),
        prop::option::weighted(0.5, prop::sample::select(vec![5i64, 20, 45, 90, 200, 500])),
    )
        .prop_map(|(back, length)| Span { back, length })
}

fn some<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.25, s)
}

fn alert_spec() -> impl Strategy<Value = AlertSpec> {
    let ids = (
        0i64..96,
        prop::option::weighted(0.6, 0usize..KEYS.len()),
        0usize..PARTIES.len(),
        0usize..CATEGORIES.len(),
    );
    let durations = (
        some((any::<bool>(), span())),
        some(span()),
        some((
            any::<bool>(),
            span(),
            prop::option::of(prop::sample::select(vec![500u64, 1_000, 10_000, 100_000])),
            prop::option::of(prop::sample::select(vec![
                5_000u64, 10_000, 100_000, 1_000_000,
            ])),
            prop::option::weighted(0.3, 0usize..3),
        )),
    );
    let amounts = (
        some(prop::sample::select(vec![
            300_000u64,
            1_000_000,
            12_000_000,
            100_000_000,
        ])),
        some(prop::sample::select(vec![1e6, 5e6, 2e7, 1e8])),
        some(prop::sample::select(vec![
            50_000u64, 100_000, 1_000_000, 10_000_000,
        ])),
        some(prop::sample::select(vec![0.1, 0.3, 0.5])),
        some(0usize..4),
        prop::option::weighted(0.1, 0usize..3),
    );
    (ids, durations, amounts).prop_map(
        |(
            (slot, key, party, category),
            (outage, unreachable, defacement),
            (records, loss, population, share, leak, finding),
        )| {
            AlertSpec {
                slot,
                key,
                // An explicit key always names the same asset.
                party: key.unwrap_or(party),
                category,
                outage,
                unreachable,
                defacement,
                records,
                loss,
                population,
                share,
                leak,
                finding,
            }
        },
    )
}

fn command_spec() -> impl Strategy<Value = CommandSpec> {
    // Mostly after the small hours, when the keyed incidents they address tend to exist.
    (
        16i64..96,
        0usize..9,
        0usize..KEYS.len(),
        0usize..KEYS.len(),
        0usize..LEVELS.len(),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(slot, kind, key, other, level, with_reason)| CommandSpec {
            slot,
            kind,
            key,
            other,
            level,
            with_reason,
        })
}

impl AlertSpec {
    fn at(&self) -> Timestamp {
        day_start().plus(Millis(self.slot * 15 * MINUTE))
    }

    fn span_json(&self, s: &Span) -> Value {
        let since = self.at().minus(Millis(s.back * MINUTE));
        let since = Timestamp(since.0 - since.0.rem_euclid(30 * MINUTE));
        let until = s.length.map(|l| fmt(since.plus(Millis(l * MINUTE))));
        json!({"since": fmt(since), "until": until})
    }

    fn to_json(&self, n: usize) -> Value {
        let (operator, asset) = PARTIES[self.party];
        let mut impact = Map::new();
        if let Some((whole, s)) = &self.outage {
            let mut o = self.span_json(s);
            o["scope"] = json!(if *whole { "whole" } else { "main_function" });
            impact.insert("outage".into(), o);
        }
        if let Some(s) = &self.unreachable {
            impact.insert("unreachable".into(), self.span_json(s));
        }
        if let Some((home, s, reposts, views, designated)) = &self.defacement {
            let mut d = self.span_json(s);
            d["page"] = json!(if *home { "home" } else { "other" });
            if let Some(r) = reposts {
                d["reposts"] = json!(r);
            }
            if let Some(v) = views {
                d["views"] = json!(v);
            }
            if let Some(k) = designated {
                d["designated"] =
                    [json!(true), json!("major"), json!("particularly_major")][*k].clone();
            }
            impact.insert("defacement".into(), d);
        }
        if let Some(r) = self.records {
            impact.insert("personal_info_records".into(), json!(r));
        }
        if let Some(l) = self.loss {
            impact.insert("economic_loss_cny".into(), json!(l));
        }
        if let Some(p) = self.population {
            impact.insert("affected_population".into(), json!(p));
        }
        if let Some(s) = self.share {
            impact.insert(
                "affected_population_share".into(),
                json!({"prefectural": s, "provincial": s / 2.0}),
            );
        }
        if let Some(k) = self.leak {
            let (class, threat) = [
                ("important", "relatively_serious"),
                ("important", "serious"),
                ("core", "serious"),
                ("core", "especially_serious"),
            ][k];
            impact.insert(
                "data_leak".into(),
                json!({"class": class, "threat": threat}),
            );
        }
        if let Some(k) = self.finding {
            impact.insert(
                "finding".into(),
                json!({"level": LEVELS[k + 1], "reason": "analyst"}),
            );
        }
        let mut v = json!({
            "id": format!("al-{n}"), "timestamp": fmt(self.at()), "source": "prop",
            "title": format!("alert {n}"), "category": CATEGORIES[self.category],
            "operator": operator, "asset": asset, "impact": Value::Object(impact),
        });
        if let Some(k) = self.key {
            v["incident_key"] = json!(KEYS[k]);
        }
        v
    }
}

impl CommandSpec {
    fn at(&self) -> Timestamp {
        day_start().plus(Millis((self.slot * 15 + 7) * MINUTE))
    }

    fn to_json(&self) -> Value {
        let target = format!("@{}", KEYS[self.key]);
        let mut v = json!({"incident_id": target, "at": fmt(self.at()), "by": "prop"});
        let reason = json!("property test");
        match self.kind {
            0 => v["command"] = json!("ack"),
            1 => v["command"] = json!("report_filed"),
            2..=4 => {
                v["command"] = json!("report_filed");
                v["report_kind"] = json!(["initial", "follow_up", "summary"][self.kind - 2]);
            }
            5 => v["command"] = json!("resolve"),
            6 => v["command"] = json!("dismiss"),
            7 => {
                v["command"] = json!("regrade");
                v["level"] = json!(LEVELS[self.level]);
            }
            _ => {
                v["command"] = json!("merge");
                v["into"] = json!(format!("@{}", KEYS[self.other]));
            }
        }
        if self.with_reason {
            v["reason"] = reason;
        }
        v
    }
}

/// A day's records in file order: alerts and commands, shuffled (replay orders them by time).
#[derive(Clone, Debug)]
struct Day {
    lines: Vec<Value>,
}

fn day() -> impl Strategy<Value = Day> {
    (
        prop::collection::vec(alert_spec(), 1..24),
        prop::collection::vec(command_spec(), 0..10),
    )
        .prop_flat_map(|(alerts, commands)| {
            let mut lines: Vec<Value> = alerts
                .iter()
                .enumerate()
                .map(|(i, a)| a.to_json(i))
                .collect();
            lines.extend(commands.iter().map(CommandSpec::to_json));
            Just(lines).prop_shuffle()
        })
        .prop_map(|lines| Day { lines })
}

fn text(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn replay(lines: &[Value]) -> common::Replay {
    replay_text(&text(lines), Some(UNTIL))
}

/// Drives an engine in file (arrival) order, as the live service would; one event per line.
fn live(lines: &[Value]) -> Vec<String> {
    let mut d = Live::new();
    let mut out = Vec::new();
    for l in lines {
        out.extend(d.send(l.clone()).iter().map(Value::to_string));
    }
    out.extend(d.tick(UNTIL).iter().map(Value::to_string));
    out
}

/// Replay output, one event per line (so a failure shows the lines, not bytes).
fn replay_lines(lines: &[Value]) -> Vec<String> {
    String::from_utf8(replay(lines).bytes)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn first_difference(a: &[String], b: &[String]) -> String {
    let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    format!(
        "first difference at event {n} of {}/{}:\n  {}\n  {}",
        a.len(),
        b.len(),
        a.get(n).map_or("(none)", String::as_str),
        b.get(n).map_or("(none)", String::as_str)
    )
}

fn final_levels(r: &common::Replay) -> BTreeSet<(String, String)> {
    r.engine
        .incidents_sorted()
        .into_iter()
        .map(|i| (i.id.to_string(), i.level.key().to_string()))
        .collect()
}

/// A small deterministic shuffle (proptest supplies the seed, so failures shrink and replay).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((seed >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

// ------------------------------------------------------------------ determinism and order

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_same_input_gives_the_same_output_bytes(d in day()) {
        let a = replay(&d.lines);
        let b = replay(&d.lines);
        prop_assert!(!a.events.is_empty());
        prop_assert!(a.bytes == b.bytes, "two replays differ:\n{}", first_difference(&replay_lines(&d.lines), &replay_lines(&d.lines)));
        prop_assert_eq!(live(&d.lines), live(&d.lines));
    }

    #[test]
    fn replay_output_is_in_time_order(d in day()) {
        let r = replay(&d.lines);
        for w in r.events.windows(2) {
            prop_assert!(at_of(&w[0]) <= at_of(&w[1]), "{} then {}", w[0], w[1]);
        }
    }

    #[test]
    fn re_sending_an_alert_later_changes_nothing(d in day(), pick in any::<prop::sample::Index>(), place in any::<prop::sample::Index>()) {
        let alerts: Vec<usize> = d.lines.iter().enumerate().filter(|(_, l)| l.get("command").is_none()).map(|(i, _)| i).collect();
        let i = alerts[pick.index(alerts.len())];
        let j = i + 1 + place.index(d.lines.len() - i);
        let mut again = d.lines.clone();
        again.insert(j, d.lines[i].clone());
        let (a, b) = (replay_lines(&d.lines), replay_lines(&again));
        prop_assert!(a == b, "replay: {}", first_difference(&a, &b));
        let (a, b) = (live(&d.lines), live(&again));
        prop_assert!(a == b, "live: {}", first_difference(&a, &b));
    }

    #[test]
    fn shuffling_alerts_that_share_a_timestamp_keeps_every_final_level(d in day(), seed in any::<u64>()) {
        // Alerts at one instant that revise one interval agree on its end (a disagreement at a
        // single instant has no right answer); everything else is as generated.
        let mut lines = d.lines.clone();
        let mut ends: BTreeMap<(String, String, String, String), Value> = BTreeMap::new();
        for l in lines.iter_mut().filter(|l| l.get("command").is_none()) {
            let key = l.get("incident_key").cloned().unwrap_or(Value::Null).to_string() + &l["asset"].to_string() + &l["category"].to_string();
            let ts = l["timestamp"].to_string();
            let impact = l["impact"].as_object_mut().expect("impact");
            for (fig, v) in impact.iter_mut() {
                if let Some(since) = v.get("since").map(Value::to_string) {
                    let scope = v.get("scope").or(v.get("page")).map(Value::to_string).unwrap_or_default();
                    let end = ends.entry((key.clone(), ts.clone(), format!("{fig}{scope}"), since)).or_insert_with(|| v["until"].clone());
                    v["until"] = end.clone();
                }
            }
        }
        // Permute the alerts within each instant, keeping every other line where it is.
        let mut by_time: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.get("command").is_none()) {
            by_time.entry(l["timestamp"].to_string()).or_default().push(i);
        }
        let mut shuffled = lines.clone();
        for (n, slots) in by_time.values().enumerate() {
            let mut order = slots.clone();
            shuffle(&mut order, seed ^ n as u64);
            for (slot, from) in slots.iter().zip(order) {
                shuffled[*slot] = lines[from].clone();
            }
        }
        prop_assert_eq!(final_levels(&replay(&lines)), final_levels(&replay(&shuffled)));
    }
}

// ------------------------------------------------------------------ timers

/// What a random driver saw: every event with the `now` of the call that produced it (`None`
/// for events of `handle`).
fn drive_with_random_ticks(d: &Day, ticks: &[f64]) -> Vec<(Option<Timestamp>, Value)> {
    let mut inputs: Vec<Input> = d.lines.iter().map(|l| alert(l.clone())).collect();
    inputs.sort_by_key(Input::time);
    let mut live = Live::new();
    let mut seen = Vec::new();
    let mut prev = inputs.first().map(Input::time).unwrap_or(day_start());
    for (n, input) in inputs.into_iter().enumerate() {
        let t = input.time();
        // A wake-up somewhere between the previous record and this one.
        let f = ticks.get(n).copied().unwrap_or(0.5);
        let now = Timestamp(prev.0 + ((t.0 - prev.0) as f64 * f) as i64);
        for e in live.tick_ts(now) {
            seen.push((Some(now), e));
        }
        for e in live.tick_ts(t) {
            seen.push((Some(t), e));
        }
        live.engine.handle(input);
        for e in live.drain() {
            seen.push((None, e));
        }
        prev = t;
    }
    // Then hour by hour to the end, and a spurious call at an instant already handled.
    let end = common::ts(UNTIL);
    let mut now = prev;
    while now < end {
        now = now.plus(Millis(60 * MINUTE)).min(end);
        for e in live.tick_ts(now) {
            seen.push((Some(now), e));
        }
    }
    let spurious = live.tick_ts(now);
    assert!(
        spurious.is_empty(),
        "a second call at the same instant fires nothing: {spurious:?}"
    );
    seen
}

fn overdue_schedule(kind: &str) -> klaxon::settings::ruleset::OverdueSchedule {
    let k = match kind {
        "initial" => ReportKind::Initial,
        "follow_up" => ReportKind::FollowUp,
        _ => ReportKind::Summary,
    };
    common::config().ruleset.report_rule(k).overdue.clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn timers_fire_when_due_never_early_and_at_most_once(d in day(), ticks in prop::collection::vec(0.0f64..1.0, 40)) {
        let seen = drive_with_random_ticks(&d, &ticks);
        let mut ids = BTreeSet::new();
        for (now, e) in &seen {
            let at = at_of(e);
            if let Some(now) = now {
                prop_assert!(at <= *now, "fired before due: {e} at handle_timeout({now:?})");
            }
            if e["type"] != "command.rejected" {
                prop_assert!(ids.insert(e["event_id"].as_str().unwrap_or("").to_string()), "fired twice: {e}");
            }
            match e["type"].as_str() {
                Some("report.reminder") => {
                    let lead = Millis::parse_human(e["reminder_before"].as_str().unwrap_or("")).expect("lead");
                    prop_assert_eq!(at, instant(&e["deadline"]).minus(lead), "{}", e);
                }
                Some("report.overdue") => {
                    let n = e["overdue_count"].as_i64().expect("overdue_count");
                    let schedule = overdue_schedule(e["report_kind"].as_str().unwrap_or(""));
                    prop_assert_eq!(at, instant(&e["deadline"]).plus(schedule.offset(n as u32)), "{}", e);
                }
                Some("grade.upgrade_warning") => {
                    let crossing = instant(&e["upgrade"]["crossing_at"]);
                    let lead = common::config().ruleset.upgrade_warning_lead;
                    prop_assert!(at <= crossing && at >= crossing.minus(lead), "{}", e);
                    prop_assert_eq!(e["upgrade"]["seconds_until"].as_i64(), Some(crossing.since(at).seconds()));
                }
                _ => {}
            }
            if let (Some(deadline), Some(left)) = (e.get("deadline"), e["seconds_remaining"].as_i64()) {
                prop_assert_eq!(left, instant(deadline).since(at).seconds(), "{}", e);
            }
        }
    }
}

// ------------------------------------------------------------------ snapshot and restore

/// Drives the first `cut` lines in arrival order, snapshots the engine the way the changelog
/// holds it (one serialized incident per record, read back by the runtime's own codec), restores
/// the snapshot into a fresh engine at the same clock, and drives the rest there: what a crash
/// and restart between two records does to the engine.
fn live_with_restart_at(lines: &[Value], cut: usize) -> Vec<String> {
    let mut first = Live::new();
    first.engine.track_changes();
    let mut out = Vec::new();
    for l in &lines[..cut] {
        out.extend(first.send(l.clone()).iter().map(Value::to_string));
    }
    let mut second = Live::new();
    second.engine.track_changes();
    for inc in first.engine.incidents_sorted() {
        let record = serde_json::to_vec(inc).expect("incident serializes");
        let back = klaxon::runtime::changelog::incident_from_record(&record)
            .unwrap_or_else(|e| panic!("changelog record does not restore: {e}"));
        second.engine.restore(back);
    }
    second.engine.take_dirty();
    second.now = first.now;
    for l in &lines[cut..] {
        out.extend(second.send(l.clone()).iter().map(Value::to_string));
    }
    out.extend(second.tick(UNTIL).iter().map(Value::to_string));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A restart at any point of the input changes nothing downstream: the events before the cut
    /// plus the restored engine's events after it are, byte for byte, the uninterrupted run's.
    #[test]
    fn a_snapshot_restored_at_any_cut_gives_the_uninterrupted_output(d in day(), at in 0.0f64..=1.0) {
        let cut = ((d.lines.len() as f64) * at).round() as usize;
        let whole = live(&d.lines);
        let restarted = live_with_restart_at(&d.lines, cut.min(d.lines.len()));
        prop_assert!(whole == restarted, "restart after line {cut}: {}", first_difference(&whole, &restarted));
    }
}

// ------------------------------------------------------------------ decode robustness

const FIELD_NAMES: [&str; 24] = [
    "id",
    "timestamp",
    "command",
    "at",
    "incident_id",
    "impact",
    "outage",
    "since",
    "until",
    "scope",
    "operator",
    "asset",
    "class",
    "kind",
    "defacement",
    "designated",
    "reposts",
    "views",
    "affected_population_share",
    "provincial",
    "personal_info_records",
    "economic_loss_cny",
    "data_leak",
    "finding",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "2026-11-24T08:00:00+08:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-24 08:00",
            "whole",
            "main_function",
            "home",
            "cii",
            "major",
            "particularly_major",
            "",
            "@k0",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(FIELD_NAMES.to_vec()).prop_map(str::to_string),
            "[a-z_]{0,8}"
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid alert with one field (possibly nested) replaced by an arbitrary value.
fn mutated_alert() -> impl Strategy<Value = Value> {
    (
        alert_spec(),
        prop::sample::select(FIELD_NAMES.to_vec()),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(spec, field, v, nested)| {
            let mut a = spec.to_json(0);
            if nested {
                if let Some(impact) = a["impact"].as_object_mut() {
                    for x in impact.values_mut() {
                        if let Some(o) = x.as_object_mut() {
                            o.insert(field.to_string(), v.clone());
                        }
                    }
                    impact.insert(field.to_string(), v);
                }
            } else if let Some(o) = a.as_object_mut() {
                o.insert(field.to_string(), v);
            }
            a
        })
}

/// Decodes `bytes` every way; whatever is accepted is fed to an engine, which must cope too.
fn decode_and_handle(bytes: &[u8]) {
    for expect in [Expect::Either, Expect::Alert, Expect::Command] {
        if let Ok(input) = decode(bytes, expect, 0) {
            let mut live = Live::new();
            live.engine.handle_timeout(input.time());
            live.engine.handle(input.clone());
            live.engine.handle(input);
            let _ = live.drain();
            if let Some(t) = live.engine.poll_timeout() {
                let _ = live.tick_ts(t);
            }
        }
    }
    let _ = decode(bytes, Expect::Either, 64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_and_handle(&bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(v in json_value()) {
        decode_and_handle(&serde_json::to_vec(&v).expect("json"));
    }

    #[test]
    fn decode_and_the_engine_never_panic_on_a_mutated_alert(v in mutated_alert()) {
        let bytes = serde_json::to_vec(&v).expect("json");
        decode_and_handle(&bytes);
        // A rejection always names a stable reason code.
        if let Err(e) = decode(&bytes, Expect::Alert, 0) {
            prop_assert!(klaxon::decode::DecodeError::CODES.contains(&e.code()));
        }
    }

    #[test]
    fn replay_skips_undecodable_lines_and_keeps_going(d in day(), junk in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 1..40), 1..4)) {
        let clean = replay(&d.lines);
        let mut t = text(&d.lines).into_bytes();
        for j in &junk {
            t.extend_from_slice(j);
            t.push(b'\n');
        }
        let mut engine = common::engine();
        let mut out = Vec::new();
        let mut bad = 0;
        klaxon::replay::run(&mut engine, &t[..], 0, Some(common::ts(UNTIL)), &mut out, |_| bad += 1).expect("replay");
        // Junk that happens to be a valid record (or only whitespace) is not counted.
        prop_assert!(bad <= junk.len());
        if bad == junk.len() {
            prop_assert_eq!(parse_lines(&out), clean.events);
        }
    }
}
