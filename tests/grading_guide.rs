//! The grading guide (《网络安全事件分级指南》, final 2025 text) as the shipped `config/grading.toml`
//! encodes it, checked through `klaxon::engine::grade::evaluate`.
//!
//! Two halves: a table-driven sweep over every indicator and every threshold of the shipped
//! ruleset (at the threshold, just below, just above: "以上" includes the number), and named tests
//! that pin the final 2025 numbers row by row, so that a config edit back to a 2023-draft number
//! fails a test that says so.

mod common;

use klaxon::engine::correlate::{AssetInfo, AssetParts, Figures, Interval};
use klaxon::engine::grade::{evaluate, Grade};
use klaxon::model::escalation::EvidenceValue;
use klaxon::model::Level;
use klaxon::settings::ruleset::{Figure, Indicator, Rule, Ruleset, Threshold};
use klaxon::time::{Millis, Timestamp, HOUR, MINUTE, SECOND};

use Level::{General, Major, ParticularlyMajor as PMajor, RelativelyMajor as RMajor};

fn rules() -> &'static Ruleset {
    &common::config().ruleset
}

/// Where every interval in this file starts.
fn t0() -> Timestamp {
    common::ts("00:00")
}

// ------------------------------------------------------------------ figures and assets

fn interval(since: Timestamp, until: Option<Timestamp>) -> Interval {
    Interval {
        since,
        until,
        revised: None,
    }
}

/// One closed interval of `length` on a duration figure (`"outage.whole"`, …).
fn lasting(figure: &str, length: Millis) -> Figures {
    let Ok(Figure::Duration(d)) = figure.parse::<Figure>() else {
        panic!("{figure} is not a duration figure")
    };
    let mut f = Figures::default();
    f.set_intervals(d, vec![interval(t0(), Some(t0().plus(length)))]);
    f
}

/// An amount figure (`"personal_info_records"`, …).
fn amount(figure: &str, v: f64) -> Figures {
    let Ok(Figure::Amount(a)) = figure.parse::<Figure>() else {
        panic!("{figure} is not an amount figure")
    };
    let mut f = Figures::default();
    f.set_amount(a, v);
    f
}

/// A category figure (`"data_leak"`, …) with one value seen.
fn finding(figure: &str, v: &str) -> Figures {
    let Ok(Figure::Category(c)) = figure.parse::<Figure>() else {
        panic!("{figure} is not a category figure")
    };
    let mut f = Figures::default();
    f.set_categories(c, vec![v.to_string()]);
    f
}

fn asset(kind: &str, qualifier: Option<&str>) -> AssetInfo {
    let mut a = AssetParts {
        id: Some(format!("test-{kind}").into()),
        kind: Some(kind.into()),
        ..AssetParts::default()
    };
    // Platforms have a size; portals and news sites an administrative level.
    if kind == "network_platform" {
        a.size = qualifier.map(Box::from);
    } else {
        a.level = qualifier.map(Box::from);
    }
    AssetInfo::from(a)
}

fn cii() -> AssetInfo {
    asset("cii_system", None)
}

fn no_asset() -> AssetInfo {
    AssetInfo::default()
}

/// The asset a threshold row names first (none if the row applies to every incident).
fn asset_for(th: &Threshold) -> AssetInfo {
    match th.assets.as_ref().and_then(|s| s.first()) {
        None => no_asset(),
        Some(sel) => asset(&sel.kind, sel.qualifier.as_deref()),
    }
}

/// Grades closed figures long after they ended (so durations are complete).
fn grade(a: &AssetInfo, f: &Figures) -> Grade {
    evaluate(rules(), a, f, t0().plus(Millis(30 * 24 * HOUR)))
}

fn level(a: &AssetInfo, f: &Figures) -> Level {
    grade(a, f).level
}

fn hours(h: f64) -> Millis {
    Millis((h * HOUR as f64).round() as i64)
}

fn minutes(m: i64) -> Millis {
    Millis(m * MINUTE)
}

const MS: Millis = Millis(1);

fn less(d: Millis, by: Millis) -> Millis {
    Millis(d.0 - by.0)
}

// ------------------------------------------------------------------ the table-driven sweep

/// A value of an indicator's figure, in the indicator's unit.
#[derive(Clone, Debug)]
enum Probe {
    /// Milliseconds of a duration figure.
    Duration(Millis),
    Amount(f64),
    Category(String),
}

fn figures_for(ind: &Indicator, p: &Probe) -> Figures {
    match (ind.figure, p) {
        (Figure::Duration(d), Probe::Duration(ms)) => {
            let mut f = Figures::default();
            f.set_intervals(d, vec![interval(t0(), Some(t0().plus(*ms)))]);
            f
        }
        (Figure::Amount(a), Probe::Amount(v)) => {
            let mut f = Figures::default();
            f.set_amount(a, *v);
            f
        }
        (Figure::Category(c), Probe::Category(v)) => {
            let mut f = Figures::default();
            f.set_categories(c, vec![v.clone()]);
            f
        }
        _ => panic!("probe {p:?} does not fit indicator {}", ind.id),
    }
}

/// What the guide says for `p` on `a`: the highest level among this indicator's rows that apply
/// to the asset and are met (computed from the config's data, independently of the engine).
fn expected(ind: &Indicator, a: &AssetInfo, p: &Probe) -> Level {
    ind.thresholds
        .iter()
        .filter(|th| th.applies(a.kind(), a.level(), a.size()))
        .filter(|th| match (&th.rule, p) {
            (Rule::AtLeast(v), Probe::Duration(ms)) => {
                let unit = ind.unit.millis().expect("duration unit");
                ms.0 as f64 >= v * unit as f64
            }
            (Rule::AtLeast(v), Probe::Amount(x)) => x >= v,
            (Rule::AnyOf(vals), Probe::Category(x)) => vals.contains(x),
            _ => false,
        })
        .map(|th| th.level)
        .max()
        .unwrap_or(General)
}

/// Probes at, just below and just above one threshold (for categories: each listed value, and
/// values the row does not list: those of lower rows, and one no row lists).
fn probes(ind: &Indicator, th: &Threshold) -> (Vec<Probe>, Vec<Probe>, Vec<Probe>) {
    match (&th.rule, ind.figure) {
        (Rule::AtLeast(v), Figure::Duration(_)) => {
            let unit = ind
                .unit
                .millis()
                .expect("duration indicators have a time unit");
            let at = Millis((v * unit as f64).round() as i64);
            (
                vec![Probe::Duration(at)],
                vec![Probe::Duration(less(at, MS))],
                vec![Probe::Duration(Millis(at.0 + 1))],
            )
        }
        (Rule::AtLeast(v), Figure::Amount(_)) => {
            let step = if ind.unit.key() == "share" {
                0.001
            } else {
                1.0
            };
            (
                vec![Probe::Amount(*v)],
                vec![Probe::Amount(v - step)],
                vec![Probe::Amount(v + step)],
            )
        }
        (Rule::AnyOf(vals), Figure::Category(_)) => {
            let mut below: Vec<Probe> = ind
                .thresholds
                .iter()
                .filter(|o| o.level < th.level)
                .flat_map(|o| match &o.rule {
                    Rule::AnyOf(vs) => vs.clone(),
                    Rule::AtLeast(_) => Vec::new(),
                })
                .filter(|x| !vals.contains(x))
                .map(Probe::Category)
                .collect();
            below.push(Probe::Category("not_a_listed_value".into()));
            (
                vals.iter().cloned().map(Probe::Category).collect(),
                below,
                Vec::new(),
            )
        }
        (rule, fig) => panic!("{}: rule {rule:?} does not fit figure {fig:?}", ind.id),
    }
}

fn numeric(v: &EvidenceValue) -> Option<f64> {
    match v {
        EvidenceValue::Number(n) => Some(*n),
        EvidenceValue::Text(_) => None,
    }
}

#[test]
fn every_threshold_of_every_indicator_is_met_at_the_number_not_below_it() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut rows = 0;
    for ind in &rules().indicators {
        for th in &ind.thresholds {
            rows += 1;
            let a = asset_for(th);
            let (at, below, above) = probes(ind, th);
            let what = |p: &Probe| {
                format!(
                    "{} {:?} on {:?}/{:?}/{:?}",
                    ind.id,
                    p,
                    a.kind(),
                    a.level(),
                    a.size()
                )
            };
            for p in &at {
                checked += 1;
                let g = grade(&a, &figures_for(ind, p));
                // A value a higher row also lists (a designation scale: 特大范围 meets the 重大 and
                // 较大 rows too) grades at that higher row where it applies.
                let want = expected(ind, &a, p).max(th.level);
                if g.level != want {
                    failures.push(format!(
                        "at the threshold: {} → {}, want {}",
                        what(p),
                        g.level,
                        want
                    ));
                }
                let Some(e) = g.evidence.iter().find(|e| e.indicator == ind.id) else {
                    failures.push(format!(
                        "at the threshold: {} has no evidence naming the indicator",
                        what(p)
                    ));
                    continue;
                };
                if e.level != want {
                    failures.push(format!(
                        "evidence level for {}: {} ≠ {}",
                        what(p),
                        e.level,
                        want
                    ));
                }
                let shown = match (&th.rule, p) {
                    (Rule::AtLeast(v), _) => {
                        numeric(&e.threshold) == Some(*v) && numeric(&e.value) == Some(*v)
                    }
                    (Rule::AnyOf(_), Probe::Category(x)) => {
                        e.value == EvidenceValue::Text(x.clone())
                    }
                    _ => true,
                };
                if !shown {
                    failures.push(format!(
                        "evidence for {} should show the value and threshold: {e:?}",
                        what(p)
                    ));
                }
                if e.unit != Some(ind.unit.key()) {
                    failures.push(format!(
                        "evidence for {} should carry unit {}",
                        what(p),
                        ind.unit.key()
                    ));
                }
            }
            for p in &below {
                checked += 1;
                let got = level(&a, &figures_for(ind, p));
                let want = expected(ind, &a, p);
                if got >= th.level || got != want {
                    failures.push(format!(
                        "just below: {} → {got}, want {want} (< {})",
                        what(p),
                        th.level
                    ));
                }
            }
            for p in &above {
                checked += 1;
                let got = level(&a, &figures_for(ind, p));
                if got != th.level {
                    failures.push(format!(
                        "just above: {} → {got}, want {}",
                        what(p),
                        th.level
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The shipped guide: 15 indicators, 42 threshold rows (row 3's shares have one or two).
    assert_eq!(rows, 42, "threshold rows in grading.toml");
    assert!(
        checked >= 3 * rows,
        "only {checked} checks ran for {rows} rows"
    );
}

#[test]
fn an_ongoing_duration_is_measured_up_to_the_grading_instant() {
    // The same sweep for durations, with the interval still open and graded at the instant it
    // reaches each threshold (and 1 ms before).
    let mut failures = Vec::new();
    for ind in &rules().indicators {
        let (Figure::Duration(d), Some(unit)) = (ind.figure, ind.unit.millis()) else {
            continue;
        };
        for th in &ind.thresholds {
            let Rule::AtLeast(v) = th.rule else { continue };
            let a = asset_for(th);
            let mut f = Figures::default();
            f.set_intervals(d, vec![interval(t0(), None)]);
            let reach = t0().plus(Millis((v * unit as f64).round() as i64));
            let at = evaluate(rules(), &a, &f, reach).level;
            let before = evaluate(rules(), &a, &f, reach.minus(MS)).level;
            if at != th.level || before >= th.level {
                failures.push(format!("{} {v}: at {at}, 1 ms before {before}", ind.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_ruleset_encodes_every_quantitative_row_of_the_guide() {
    let ids: Vec<&str> = rules().indicators.iter().map(|i| i.id.as_str()).collect();
    for id in [
        "site_unreachable_hours",         // row 1
        "cii_whole_outage_minutes",       // row 2
        "cii_main_function_outage_hours", // row 2
        "population_share_provincial",    // row 3
        "population_share_prefectural",   // row 3
        "affected_population",            // row 3
        "data_leak",                      // row 4
        "personal_info_records",          // row 5
        "defacement_home_page_hours",     // row 6
        "defacement_other_page_hours",    // row 6
        "defacement_reposts",             // row 6
        "defacement_views",               // row 6
        "defacement_designated_spread",   // row 6
        "economic_loss_cny",              // row 7
        "analyst_finding",                // row 8
    ] {
        assert!(
            ids.contains(&id),
            "no indicator {id} in grading.toml (have {ids:?})"
        );
    }
    assert_eq!(rules().id, "cn-2025");
}

// ------------------------------------------------------------------ row 2: CII outages

#[test]
fn cii_whole_outage_10_minutes_is_relatively_major() {
    assert_eq!(level(&cii(), &lasting("outage.whole", minutes(10))), RMajor);
    assert_eq!(
        level(&cii(), &lasting("outage.whole", less(minutes(10), MS))),
        General
    );
}

#[test]
fn cii_whole_outage_1_hour_is_major_not_the_2023_draft_2_hours() {
    assert_eq!(level(&cii(), &lasting("outage.whole", hours(1.0))), Major);
    assert_eq!(
        level(&cii(), &lasting("outage.whole", less(hours(1.0), MS))),
        RMajor
    );
    assert_eq!(level(&cii(), &lasting("outage.whole", hours(1.5))), Major);
}

#[test]
fn cii_whole_outage_6_hours_is_particularly_major() {
    assert_eq!(level(&cii(), &lasting("outage.whole", hours(6.0))), PMajor);
    assert_eq!(
        level(&cii(), &lasting("outage.whole", less(hours(6.0), MS))),
        Major
    );
}

#[test]
fn cii_main_function_outage_30_minutes_3_hours_24_hours() {
    let f = |d| level(&cii(), &lasting("outage.main_function", d));
    assert_eq!(f(less(minutes(30), MS)), General);
    assert_eq!(f(minutes(30)), RMajor);
    assert_eq!(f(less(hours(3.0), MS)), RMajor);
    assert_eq!(f(hours(3.0)), Major);
    assert_eq!(f(less(hours(24.0), MS)), Major);
    assert_eq!(f(hours(24.0)), PMajor);
}

#[test]
fn cii_outage_rows_do_not_apply_to_non_cii_assets() {
    let day = hours(24.0);
    for a in [
        asset("other", None),
        asset("party_gov_portal", Some("national")),
        asset("network_platform", Some("super_large")),
        no_asset(),
    ] {
        assert_eq!(level(&a, &lasting("outage.whole", day)), General, "{a:?}");
        assert_eq!(
            level(&a, &lasting("outage.main_function", day)),
            General,
            "{a:?}"
        );
    }
}

// ------------------------------------------------------------------ rows 3, 5, 7: counts

#[test]
fn personal_info_1_million_10_million_100_million() {
    let f = |n: f64| level(&no_asset(), &amount("personal_info_records", n));
    assert_eq!(f(999_999.0), General);
    assert_eq!(f(1_000_000.0), RMajor);
    assert_eq!(f(9_999_999.0), RMajor);
    assert_eq!(f(10_000_000.0), Major);
    assert_eq!(f(99_999_999.0), Major);
    assert_eq!(f(100_000_000.0), PMajor);
}

#[test]
fn economic_loss_5_million_20_million_100_million_cny() {
    let f = |n: f64| level(&no_asset(), &amount("economic_loss_cny", n));
    assert_eq!(f(4_999_999.99), General);
    assert_eq!(f(5_000_000.0), RMajor);
    assert_eq!(f(19_999_999.0), RMajor);
    assert_eq!(f(20_000_000.0), Major);
    assert_eq!(f(99_999_999.0), Major);
    assert_eq!(f(100_000_000.0), PMajor);
}

#[test]
fn affected_population_100_thousand_1_million_10_million() {
    let f = |n: f64| level(&no_asset(), &amount("affected_population", n));
    assert_eq!(f(99_999.0), General);
    assert_eq!(f(100_000.0), RMajor);
    assert_eq!(f(999_999.0), RMajor);
    assert_eq!(f(1_000_000.0), Major);
    assert_eq!(f(9_999_999.0), Major);
    assert_eq!(f(10_000_000.0), PMajor);
}

#[test]
fn population_share_30_and_50_percent_prefectural_and_50_percent_provincial() {
    let pre = |s: f64| {
        level(
            &no_asset(),
            &amount("affected_population_share.prefectural", s),
        )
    };
    let pro = |s: f64| {
        level(
            &no_asset(),
            &amount("affected_population_share.provincial", s),
        )
    };
    assert_eq!(pre(0.299), General);
    assert_eq!(pre(0.30), RMajor);
    assert_eq!(pre(0.499), RMajor);
    assert_eq!(pre(0.50), Major);
    assert_eq!(
        pre(1.0),
        Major,
        "a prefecture-level share alone never reaches 特别重大"
    );
    assert_eq!(pro(0.499), General);
    assert_eq!(pro(0.50), PMajor);
}

// ------------------------------------------------------------------ row 4 and row 8: findings

#[test]
fn data_leak_is_graded_by_the_threat_it_poses() {
    let f = |v: &str| level(&no_asset(), &finding("data_leak", v));
    assert_eq!(f("important:relatively_serious"), RMajor);
    assert_eq!(f("core:relatively_serious"), RMajor);
    assert_eq!(f("important:serious"), Major);
    assert_eq!(f("core:serious"), Major);
    assert_eq!(f("important:especially_serious"), PMajor);
    assert_eq!(f("core:especially_serious"), PMajor);
    assert_eq!(f("ordinary:serious"), General, "ordinary data is not row 4");
}

#[test]
fn an_analyst_finding_sets_the_level_it_names() {
    let f = |v: &str| level(&no_asset(), &finding("finding", v));
    assert_eq!(f("relatively_major"), RMajor);
    assert_eq!(f("major"), Major);
    assert_eq!(f("particularly_major"), PMajor);
}

// ------------------------------------------------------------------ row 6: defacement

fn provincial_gov_portal() -> AssetInfo {
    asset("party_gov_portal", Some("provincial"))
}

#[test]
fn defacement_of_a_home_page_30_minutes_2_hours_6_hours() {
    let f = |d| level(&provincial_gov_portal(), &lasting("defacement.home", d));
    assert_eq!(f(less(minutes(30), MS)), General);
    assert_eq!(f(minutes(30)), RMajor);
    assert_eq!(f(less(hours(2.0), MS)), RMajor);
    assert_eq!(f(hours(2.0)), Major);
    assert_eq!(f(less(hours(6.0), MS)), Major);
    assert_eq!(f(hours(6.0)), PMajor);
}

#[test]
fn defacement_of_other_pages_2_hours_12_hours_24_hours() {
    let f = |d| level(&provincial_gov_portal(), &lasting("defacement.other", d));
    assert_eq!(f(less(hours(2.0), MS)), General);
    assert_eq!(f(hours(2.0)), RMajor);
    assert_eq!(f(less(hours(12.0), MS)), RMajor);
    assert_eq!(f(hours(12.0)), Major);
    assert_eq!(f(less(hours(24.0), MS)), Major);
    assert_eq!(f(hours(24.0)), PMajor);
}

#[test]
fn defacement_reposts_1_thousand_10_thousand_100_thousand() {
    let f = |n: f64| level(&provincial_gov_portal(), &amount("defacement.reposts", n));
    assert_eq!(f(999.0), General);
    assert_eq!(f(1_000.0), RMajor);
    assert_eq!(f(10_000.0), Major);
    assert_eq!(f(99_999.0), Major);
    assert_eq!(f(100_000.0), PMajor);
}

#[test]
fn defacement_views_10_thousand_100_thousand_1_million() {
    let f = |n: f64| level(&provincial_gov_portal(), &amount("defacement.views", n));
    assert_eq!(f(9_999.0), General);
    assert_eq!(f(10_000.0), RMajor);
    assert_eq!(f(100_000.0), Major);
    assert_eq!(f(999_999.0), Major);
    assert_eq!(f(1_000_000.0), PMajor);
}

#[test]
fn a_designated_spread_grades_at_the_designated_scale() {
    let f = |v: &str| {
        level(
            &provincial_gov_portal(),
            &finding("defacement.designated", v),
        )
    };
    assert_eq!(f("relatively_major"), RMajor);
    assert_eq!(f("major"), Major);
    assert_eq!(f("particularly_major"), PMajor);
}

#[test]
fn a_super_large_platform_defaced_with_100000_reposts_is_particularly_major_a_large_platforms_is_major(
) {
    let reposts = amount("defacement.reposts", 100_000.0);
    assert_eq!(
        level(&asset("network_platform", Some("super_large")), &reposts),
        PMajor
    );
    assert_eq!(
        level(&asset("network_platform", Some("large")), &reposts),
        Major
    );
    assert_eq!(
        level(&asset("network_platform", Some("other")), &reposts),
        RMajor,
        "较大 names every network platform"
    );
}

#[test]
fn defacement_rows_follow_the_sites_each_level_names() {
    let six_hours_home = lasting("defacement.home", hours(6.0));
    // 特别重大: provincial-level+ Party/government portals, central key news sites.
    assert_eq!(
        level(
            &asset("party_gov_portal", Some("national")),
            &six_hours_home
        ),
        PMajor
    );
    assert_eq!(
        level(&asset("key_news_site", Some("national")), &six_hours_home),
        PMajor
    );
    // 重大: prefecture-level+ portals (incl. enterprises), provincial-level+ news sites.
    assert_eq!(
        level(
            &asset("party_gov_portal", Some("prefectural")),
            &six_hours_home
        ),
        Major
    );
    assert_eq!(
        level(
            &asset("enterprise_portal", Some("national")),
            &six_hours_home
        ),
        Major
    );
    assert_eq!(
        level(&asset("key_news_site", Some("provincial")), &six_hours_home),
        Major
    );
    // 较大: any portal, news site or platform.
    assert_eq!(
        level(&asset("party_gov_portal", Some("county")), &six_hours_home),
        RMajor
    );
    assert_eq!(
        level(
            &asset("key_news_site", Some("prefectural")),
            &six_hours_home
        ),
        RMajor
    );
    // Not a site the row names.
    assert_eq!(level(&asset("other", None), &six_hours_home), General);
    assert_eq!(level(&cii(), &six_hours_home), General);
}

// ------------------------------------------------------------------ row 1: site unreachable

#[test]
fn a_site_unreachable_2_hours_6_hours_24_hours() {
    let f = |d| level(&provincial_gov_portal(), &lasting("unreachable", d));
    assert_eq!(f(less(hours(2.0), MS)), General);
    assert_eq!(f(hours(2.0)), RMajor);
    assert_eq!(f(less(hours(6.0), MS)), RMajor);
    assert_eq!(f(hours(6.0)), Major);
    assert_eq!(f(less(hours(24.0), MS)), Major);
    assert_eq!(f(hours(24.0)), PMajor);
}

#[test]
fn a_county_portal_unreachable_for_30_hours_stays_general() {
    let a = asset("party_gov_portal", Some("county"));
    assert_eq!(level(&a, &lasting("unreachable", hours(30.0))), General);
    assert_eq!(
        level(
            &asset("enterprise_portal", Some("county")),
            &lasting("unreachable", hours(30.0))
        ),
        General
    );
}

#[test]
fn a_prefectural_portal_or_provincial_news_site_unreachable_for_30_hours_is_major_at_most() {
    let long = lasting("unreachable", hours(30.0));
    assert_eq!(
        level(&asset("party_gov_portal", Some("prefectural")), &long),
        Major
    );
    assert_eq!(
        level(&asset("enterprise_portal", Some("provincial")), &long),
        Major
    );
    assert_eq!(
        level(&asset("key_news_site", Some("provincial")), &long),
        Major
    );
    assert_eq!(
        level(&asset("key_news_site", Some("national")), &long),
        PMajor
    );
    assert_eq!(
        level(&asset("party_gov_portal", Some("national")), &long),
        PMajor
    );
}

#[test]
fn unreachability_of_sites_row_1_does_not_name_is_not_graded() {
    let long = lasting("unreachable", hours(30.0));
    assert_eq!(
        level(&asset("key_news_site", Some("prefectural")), &long),
        General
    );
    assert_eq!(
        level(&asset("network_platform", Some("super_large")), &long),
        General
    );
    assert_eq!(level(&cii(), &long), General);
    assert_eq!(level(&no_asset(), &long), General);
}

// ------------------------------------------------------------------ combining rows, evidence

#[test]
fn the_highest_level_any_one_indicator_meets_wins_and_leads_the_evidence() {
    let mut f = amount("personal_info_records", 1_200_000.0);
    f.set_amount(amount_fig("economic_loss_cny"), 25_000_000.0);
    let g = grade(&no_asset(), &f);
    assert_eq!(g.level, Major);
    let named: Vec<(&str, Level)> = g
        .evidence
        .iter()
        .map(|e| (e.indicator.as_str(), e.level))
        .collect();
    assert_eq!(
        named,
        vec![
            ("economic_loss_cny", Major),
            ("personal_info_records", RMajor)
        ]
    );
}

fn amount_fig(figure: &str) -> klaxon::settings::ruleset::AmountFigure {
    match figure.parse::<Figure>() {
        Ok(Figure::Amount(a)) => a,
        _ => panic!("{figure} is not an amount"),
    }
}

#[test]
fn evidence_names_the_indicator_its_value_and_the_threshold_it_met() {
    let g = grade(&cii(), &lasting("outage.whole", minutes(65)));
    assert_eq!(g.level, Major);
    let e = &g.evidence[0];
    assert_eq!(e.indicator, "cii_whole_outage_minutes");
    assert_eq!(e.value, EvidenceValue::Number(65.0));
    assert_eq!(e.threshold, EvidenceValue::Number(60.0));
    assert_eq!(e.level, Major);
    assert_eq!(e.unit, Some("minutes"));

    let g = grade(&no_asset(), &amount("personal_info_records", 12_000_000.0));
    let e = &g.evidence[0];
    assert_eq!(
        (e.indicator.as_str(), &e.value, &e.threshold),
        (
            "personal_info_records",
            &EvidenceValue::Number(12_000_000.0),
            &EvidenceValue::Number(10_000_000.0)
        )
    );
}

#[test]
fn evidence_never_overstates_a_duration() {
    // 2 h minus one second of home-page defacement: 1.99 h, not a rounded-up 2.
    let g = grade(
        &provincial_gov_portal(),
        &lasting("defacement.home", less(hours(2.0), Millis(SECOND))),
    );
    assert_eq!(g.level, RMajor);
    assert_eq!(g.evidence[0].value, EvidenceValue::Number(1.99));
}

#[test]
fn overlapping_intervals_count_once() {
    // Two reports of the same CII outage, 08:00–08:40 and 08:30–09:05: 65 minutes, not 75.
    let mut f = Figures::default();
    let d = match "outage.whole".parse::<Figure>() {
        Ok(Figure::Duration(d)) => d,
        _ => unreachable!(),
    };
    f.set_intervals(
        d,
        vec![
            interval(common::ts("08:00"), Some(common::ts("08:40"))),
            interval(common::ts("08:30"), Some(common::ts("09:05"))),
        ],
    );
    let g = grade(&cii(), &f);
    assert_eq!(g.level, Major);
    assert_eq!(g.evidence[0].value, EvidenceValue::Number(65.0));
}

#[test]
fn nothing_measured_is_general_with_no_evidence() {
    let g = grade(&cii(), &Figures::default());
    assert_eq!(g.level, General);
    assert!(g.evidence.is_empty());
}
