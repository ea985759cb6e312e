//! Grading: the ruleset's indicators applied to an incident's figures at an instant. Returns the
//! level and the evidence; also finds the next instant an ongoing duration lifts the level.

use super::correlate::{AssetInfo, Figures};
use crate::model::escalation::{Evidence, EvidenceValue};
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

/// The level alone, without building evidence: the hot path for alerts that change nothing.
pub fn level(rules: &Ruleset, asset: &AssetInfo, figures: &Figures, at: Timestamp) -> Level {
    let mut level = Level::General;
    for ind in &rules.indicators {
        if !present(ind, figures) {
            continue;
        }
        for th in &ind.thresholds {
            if th.level <= level {
                break; // sorted highest first: nothing better here
            }
            if applies(th, asset) && meets(ind, th, figures, at).is_some() {
                level = th.level;
                break;
            }
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
            let Some(when) = figures.reaches_at(fig, to_millis(v, unit_ms)) else {
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

fn applies(t: &Threshold, asset: &AssetInfo) -> bool {
    t.applies(
        asset.kind.as_deref(),
        asset.level.as_deref(),
        asset.size.as_deref(),
    )
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
            let d = figures.duration_at(fig, at);
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
