//! Grading: the ruleset's indicators applied to an incident's figures at an instant. Returns the
//! level and the evidence; also finds the next instant an ongoing duration lifts the level.

use super::correlate::{AssetInfo, Figures, OperatorInfo};
use crate::model::escalation::{Evidence, EvidenceValue, Unassessed};
use crate::model::Level;
use crate::settings::ruleset::{Figure, Indicator, Rule, Ruleset, Threshold, Unit};
use crate::time::{Millis, Timestamp};
use serde::{Deserialize, Serialize};

/// A level with the indicators that reached it (one entry per indicator, its highest level).
#[derive(Clone, Debug, PartialEq)]
pub struct Grade {
    pub level: Level,
    pub evidence: Vec<Evidence>,
}

/// A future instant at which an ongoing duration meets a higher level's threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    pub at: Timestamp,
    pub level: Level,
    pub indicator: String,
    pub threshold: f64,
}

/// Grades `figures` at `at`. Every threshold is "at least" (以上 includes the number).
pub fn evaluate(rules: &Ruleset, asset: &AssetInfo, figures: &Figures, at: Timestamp) -> Grade {
    let mut level = Level::General;
    let mut evidence = Vec::new();
    for ind in rules.indicators.iter().filter(|i| present(i, figures)) {
        for th in ind.thresholds.iter().filter(|t| applies(t, asset)) {
            if let Some((value, threshold)) = meets(ind, th, figures, at) {
                level = level.max(th.level);
                evidence.push(Evidence {
                    indicator: ind.id.clone(),
                    value,
                    threshold,
                    level: th.level,
                    unit: Some(ind.unit.key()),
                });
                break; // thresholds are sorted highest first: this is the indicator's best level
            }
        }
    }
    // Strongest evidence first; ties keep the ruleset's order (stable sort).
    evidence.sort_by_key(|e| std::cmp::Reverse(e.level));
    Grade { level, evidence }
}

/// The level alone, without building evidence: the hot path, run on every alert. Only levels
/// above `floor` are looked for (the caller keeps the higher of the two, as a computed level never
/// falls), only indicators whose figure the incident has are looked at, and each figure is read
/// once per indicator rather than once per threshold. Agrees with `evaluate(..).level.max(floor)`.
pub fn level_above(
    rules: &Ruleset,
    asset: &AssetInfo,
    figures: &Figures,
    at: Timestamp,
    floor: Level,
) -> Level {
    let mut level = floor;
    let present = figures.present();
    for ind in &rules.indicators {
        if present & ind.figure.bit() == 0 {
            continue;
        }
        // Sorted highest first: past the first threshold at or below `level`, nothing is better.
        let candidates = || ind.thresholds.iter().take_while(|t| t.level > level);
        let met = match ind.figure {
            Figure::Amount(f) => match figures.amount_of(f) {
                Some(have) => candidates()
                    .find(|t| matches!(t.rule, Rule::AtLeast(v) if have >= v) && applies(t, asset)),
                None => None,
            },
            Figure::Duration(f) => match ind.unit.millis() {
                Some(unit_ms) if figures.has_intervals(f) => {
                    let d = figures.duration_at(f, at, ind.measure);
                    candidates().find(|t| {
                        matches!(t.rule, Rule::AtLeast(v) if d >= to_millis(v, unit_ms))
                            && applies(t, asset)
                    })
                }
                _ => None,
            },
            Figure::Category(f) => candidates().find(|t| match &t.rule {
                Rule::AnyOf(vals) => {
                    figures
                        .categories_of(f)
                        .any(|seen| vals.iter().any(|v| v == seen))
                        && applies(t, asset)
                }
                Rule::AtLeast(_) => false,
            }),
        };
        if let Some(t) = met {
            level = t.level;
        }
    }
    level
}

/// Whether the incident has any value for the indicator's figure.
fn present(ind: &Indicator, figures: &Figures) -> bool {
    match ind.figure {
        Figure::Duration(f) => figures.has_intervals(f),
        Figure::Amount(f) => figures.amount_of(f).is_some(),
        Figure::Category(f) => figures.categories_of(f).next().is_some(),
    }
}

/// The earliest instant after `at` at which an ongoing duration reaches a threshold above
/// `current` (ties: the higher level).
pub fn next_crossing(
    rules: &Ruleset,
    asset: &AssetInfo,
    figures: &Figures,
    at: Timestamp,
    current: Level,
) -> Option<Crossing> {
    let mut best: Option<Crossing> = None;
    for ind in &rules.indicators {
        let (Figure::Duration(fig), Some(unit_ms)) = (ind.figure, ind.unit.millis()) else {
            continue;
        };
        if !figures.is_ongoing(fig) {
            continue;
        }
        for th in ind
            .thresholds
            .iter()
            .filter(|t| t.level > current && applies(t, asset))
        {
            let Rule::AtLeast(v) = th.rule else { continue };
            let Some(when) = figures.reaches_at(fig, to_millis(v, unit_ms), ind.measure) else {
                continue;
            };
            if when <= at {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => when < b.at || (when == b.at && th.level > b.level),
            };
            if better {
                best = Some(Crossing {
                    at: when,
                    level: th.level,
                    indicator: ind.id.clone(),
                    threshold: v,
                });
            }
        }
    }
    best
}

/// The administrative levels of docs/spec.md §1: a kind whose qualifiers are these has a `level`; any
/// other qualified kind (platforms) has a `size`.
const ADMINISTRATIVE_LEVELS: [&str; 4] = ["national", "provincial", "prefectural", "county"];

/// The rows the known facts could not assess, and why: no silent 一般.
///
/// A row is unassessed when its figure is present, and one of its thresholds above `level` (the
/// level the known facts give) does not apply to the asset as known but would apply to some
/// completion of a missing fact: the asset's `kind` (any row that names sites or systems), or its
/// administrative `level` / platform `size` (rows whose higher levels name them). When the kind
/// of a CII row (its sites all `cii_asset_kinds`) is missing and the operator's class is unknown
/// too, the reason is `operator_class_unknown`: neither fact that would say "CII" is known. The
/// level stays what the known facts give; the event says which fact is missing.
pub fn unassessed(
    rules: &Ruleset,
    op: &OperatorInfo,
    asset: &AssetInfo,
    figures: &Figures,
    level: Level,
) -> Vec<Unassessed> {
    let mut out = Vec::new();
    for ind in rules.indicators.iter().filter(|i| present(i, figures)) {
        let mut reason = None;
        let mut lowest: Option<Level> = None;
        let mut kinds: Vec<&str> = Vec::new();
        for th in ind.thresholds.iter().filter(|t| t.level > level) {
            let Some(selectors) = &th.assets else {
                continue;
            };
            if applies(th, asset) {
                continue;
            }
            let missing = match asset.kind() {
                None => Some(MissingFact::Kind),
                Some(kind) => {
                    let quals = rules.asset_kinds.get(kind).map_or(&[][..], |q| &q[..]);
                    let known = [asset.level(), asset.size()]
                        .into_iter()
                        .flatten()
                        .any(|q| quals.iter().any(|x| x == q));
                    let needs = selectors
                        .iter()
                        .any(|s| s.kind == kind && s.qualifier.is_some());
                    (needs && !known).then(|| {
                        if quals
                            .iter()
                            .any(|q| ADMINISTRATIVE_LEVELS.contains(&q.as_str()))
                        {
                            MissingFact::Level
                        } else {
                            MissingFact::Size
                        }
                    })
                }
            };
            let Some(m) = missing else { continue };
            reason = Some(m);
            lowest = Some(lowest.map_or(th.level, |l| l.min(th.level)));
            for sel in selectors {
                if !kinds.contains(&sel.kind.as_str()) {
                    kinds.push(&sel.kind);
                }
            }
        }
        let (Some(m), Some(lowest)) = (reason, lowest) else {
            continue;
        };
        let could = format!("it could give {}（{}）or above", lowest, lowest.zh());
        let cii_row = kinds
            .iter()
            .all(|k| rules.cii_asset_kinds.iter().any(|c| c == k));
        let (code, detail) = match m {
            MissingFact::Kind if cii_row && op.class_unknown => (
                "operator_class_unknown",
                format!(
                    "the operator's class is unknown (not in the registry, none given) and the asset has no `kind`: this row applies only to {}; {could}",
                    kinds.join(", ")
                ),
            ),
            MissingFact::Kind => (
                "asset_kind_missing",
                format!(
                    "{} asset has no `kind`: this row applies only to {}; {could}",
                    match op.class {
                        crate::model::OperatorClass::Cii if !op.class_unknown => "a CII operator's",
                        _ => "the",
                    },
                    kinds.join(", ")
                ),
            ),
            MissingFact::Level | MissingFact::Size => {
                let field = if m == MissingFact::Level { "level" } else { "size" };
                let kind = asset.kind().unwrap_or_default();
                let quals = rules.asset_kinds.get(kind).map(|q| q.join("|")).unwrap_or_default();
                (
                    if m == MissingFact::Level {
                        "asset_level_missing"
                    } else {
                        "asset_size_missing"
                    },
                    format!(
                        "the {kind} has no `{field}` ({quals}): this row's higher levels depend on it; {could}"
                    ),
                )
            }
        };
        out.push(Unassessed {
            row: ind.id.clone(),
            reason: code,
            detail,
        });
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MissingFact {
    Kind,
    Level,
    Size,
}

fn applies(t: &Threshold, asset: &AssetInfo) -> bool {
    t.applies(asset.kind(), asset.level(), asset.size())
}

fn to_millis(v: f64, unit_ms: i64) -> Millis {
    Millis((v * unit_ms as f64).round() as i64)
}

/// Whether one threshold is met; returns (value, threshold) for the evidence.
fn meets(
    ind: &Indicator,
    th: &Threshold,
    figures: &Figures,
    at: Timestamp,
) -> Option<(EvidenceValue, EvidenceValue)> {
    match (&th.rule, ind.figure) {
        (Rule::AtLeast(v), Figure::Duration(fig)) => {
            let unit_ms = ind.unit.millis()?;
            let d = figures.duration_at(fig, at, ind.measure);
            (d >= to_millis(*v, unit_ms)).then(|| {
                (
                    EvidenceValue::Number(floor2(d.0 as f64 / unit_ms as f64)),
                    EvidenceValue::Number(*v),
                )
            })
        }
        (Rule::AtLeast(v), Figure::Amount(fig)) => {
            let have = figures.amount_of(fig)?;
            (have >= *v).then(|| {
                (
                    EvidenceValue::Number(if ind.unit == Unit::Share {
                        have
                    } else {
                        have.floor()
                    }),
                    EvidenceValue::Number(*v),
                )
            })
        }
        (Rule::AnyOf(vals), Figure::Category(fig)) => figures
            .categories_of(fig)
            .find(|seen| vals.iter().any(|v| v == seen))
            .map(|seen| {
                (
                    EvidenceValue::Text(seen.to_string()),
                    EvidenceValue::Text(vals.join("|")),
                )
            }),
        _ => None,
    }
}

/// Two decimals, rounded down so that evidence never overstates a duration.
fn floor2(x: f64) -> f64 {
    (x * 100.0).floor() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::correlate::{AssetParts, Interval};
    use crate::settings::ruleset::{AmountFigure, CategoryFigure, DurationFigure};
    use crate::time::{HOUR, MINUTE};

    const QUARTER: i64 = 15 * MINUTE;

    /// `level_above` is the hot path's shortcut for `evaluate`: the two must never disagree.
    #[test]
    fn level_above_agrees_with_evaluate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let rules = crate::settings::load(&dir).expect("config").ruleset;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let kinds = [
            None,
            Some("cii_system"),
            Some("party_gov_portal"),
            Some("network_platform"),
            Some("key_news_site"),
        ];
        let quals = [
            None,
            Some("national"),
            Some("provincial"),
            Some("county"),
            Some("super_large"),
            Some("large"),
        ];
        let durations = [
            DurationFigure::OutageWhole,
            DurationFigure::OutageMainFunction,
            DurationFigure::Unreachable,
            DurationFigure::DefacementHome,
            DurationFigure::DefacementOther,
        ];
        let amounts = [
            AmountFigure::AffectedPopulation,
            AmountFigure::PopulationShareProvincial,
            AmountFigure::PersonalInfoRecords,
            AmountFigure::EconomicLossCny,
            AmountFigure::DefacementReposts,
            AmountFigure::DefacementViews,
        ];
        let scales = [0.3, 0.5, 1e3, 1e5, 1e6, 1e7, 1e8, 1e9];
        let categories = [
            (CategoryFigure::DataLeak, "important:serious"),
            (CategoryFigure::DataLeak, "core:relatively_serious"),
            (CategoryFigure::Finding, "major"),
            (CategoryFigure::DefacementDesignated, "relatively_major"),
        ];
        let levels = [
            Level::General,
            Level::RelativelyMajor,
            Level::Major,
            Level::ParticularlyMajor,
        ];
        let mut seen = [0; 4];
        let mut crossings = 0;
        for _ in 0..20_000 {
            let q = quals[next(quals.len() as u64) as usize];
            let asset = AssetInfo::from(AssetParts {
                kind: kinds[next(kinds.len() as u64) as usize].map(Box::from),
                level: q.map(Box::from),
                size: q.map(Box::from),
                ..AssetParts::default()
            });
            let mut f = Figures::default();
            for _ in 0..next(3) {
                // One to three intervals on a figure, in quarter hours: episodes that overlap,
                // touch, flap within the gap or stand apart.
                let fig = durations[next(durations.len() as u64) as usize];
                let list = (0..1 + next(3))
                    .map(|_| {
                        let since = Timestamp(next(96) as i64 * QUARTER);
                        let until =
                            (next(2) == 0).then(|| Timestamp(since.0 + next(120) as i64 * QUARTER));
                        Interval {
                            since,
                            until,
                            revised: None,
                        }
                    })
                    .collect();
                f.set_intervals(fig, list);
            }
            for _ in 0..next(4) {
                let v = scales[next(scales.len() as u64) as usize] * (next(20) as f64 / 10.0);
                f.set_amount(amounts[next(amounts.len() as u64) as usize], v);
            }
            for _ in 0..next(2) {
                let (fig, v) = categories[next(categories.len() as u64) as usize];
                f.set_categories(fig, vec![v.to_string()]);
            }
            let at = Timestamp(next(72) as i64 * HOUR);
            let floor = levels[next(4) as usize];
            seen[evaluate(&rules, &asset, &f, at).level.index()] += 1;
            // The set `level_above` skips indicators by is exactly the figures present.
            for ind in &rules.indicators {
                assert_eq!(
                    f.present() & ind.figure.bit() != 0,
                    present(ind, &f),
                    "{f:?}"
                );
            }
            assert_eq!(
                level_above(&rules, &asset, &f, at, floor),
                evaluate(&rules, &asset, &f, at).level.max(floor),
                "{asset:?} {f:?} at {at:?} above {floor:?}"
            );
            // The regrade instant is exact: at the crossing, the level it names is reached.
            let now = evaluate(&rules, &asset, &f, at).level;
            if let Some(c) = next_crossing(&rules, &asset, &f, at, now) {
                assert!(
                    evaluate(&rules, &asset, &f, c.at).level >= c.level,
                    "{asset:?} {f:?}: crossing {c:?} not met at its instant"
                );
                crossings += 1;
            }
        }
        assert!(
            seen.iter().all(|&n| n > 500),
            "every level is exercised: {seen:?}"
        );
        assert!(crossings > 200, "crossings exercised: {crossings}");
    }
}
