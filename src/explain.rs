//! `klaxon grade`: treats every alert given as one incident, grades it at an instant and explains
//! the level in words a duty officer can paste into a report.

use crate::decode::{decode_with, Expect, Mappings};
use crate::engine::draft::{explain_evidence, onward, recipients, recipients_of};
use crate::engine::{grade, reporting, Engine};
use crate::model::{Input, Level};
use crate::time::Timestamp;
use std::fmt::Write as _;

/// Parses the input: JSON lines, one JSON object, or a JSON array of alerts. Native alerts only;
/// [`parse_alerts_with`] also reads the formats of the config's field mappings.
pub fn parse_alerts(text: &str, max_bytes: usize) -> Result<Vec<Input<'static>>, String> {
    parse_alerts_with(text, max_bytes, &crate::decode::mapping::NATIVE_ONLY)
}

/// [`parse_alerts`] with the input formats of `mappings` (`Config::mappings`).
pub fn parse_alerts_with(
    text: &str,
    max_bytes: usize,
    mappings: &Mappings,
) -> Result<Vec<Input<'static>>, String> {
    let trimmed = text.trim_start();
    let records: Vec<String> = if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("not a JSON array of alerts: {e}"))?;
        values.iter().map(|v| v.to_string()).collect()
    } else if trimmed.starts_with('{') && serde_json::from_str::<serde_json::Value>(trimmed).is_ok()
    {
        vec![trimmed.to_string()]
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match decode_with(r.as_bytes(), Expect::Alert, max_bytes, mappings) {
            Ok(Input::Alert(mut a)) => {
                // One incident, whatever the alerts' own keys say.
                a.incident_key = Some("klaxon-grade".into());
                out.push(Input::Alert(a).into_owned());
            }
            Ok(Input::Command(_)) => {
                return Err(format!("record {}: commands are not graded", i + 1))
            }
            Err(e) => return Err(format!("record {}: {e}", i + 1)),
        }
    }
    if out.is_empty() {
        return Err("no alert given".into());
    }
    Ok(out)
}

/// Grades the alerts as one incident at `at` (default: the latest alert's time) and explains.
pub fn explain(engine: &mut Engine, mut alerts: Vec<Input<'_>>, at: Option<Timestamp>) -> String {
    alerts.sort_by_key(|a| a.time());
    let last = alerts.last().map(|a| a.time()).unwrap_or(Timestamp(0));
    let at = at.unwrap_or(last).max(last);
    for a in alerts {
        engine.feed(a, drop);
    }
    engine.run_timers(at, drop);
    let offset = engine.options().offset;
    let rules = engine.rules().clone();
    let Some(inc) = engine.incidents_sorted().into_iter().next().cloned() else {
        return "no incident\n".into();
    };
    let g = grade::evaluate(&rules, &inc.asset, &inc.figures, at);
    let level = inc.level;
    let mut s = String::new();
    let _ = writeln!(s, "Incident {} graded at {}", inc.id, at.format(offset));
    let _ = writeln!(s, "Level: {}（{}网络安全事件）", level, level.zh());
    let op = &inc.operator;
    let _ = writeln!(
        s,
        "Operator: {} — class {}, province {}",
        op.name.as_deref().or(op.id.as_deref()).unwrap_or("unknown"),
        op.class.key(),
        op.province.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        s,
        "Asset: {} — kind {}",
        inc.asset.name().or(inc.asset.id()).unwrap_or("unknown"),
        inc.asset.kind().unwrap_or("unknown")
    );
    let unassessed = inc.unassessed_at(&rules, level);
    if g.evidence.is_empty() && !unassessed.is_empty() {
        let _ = writeln!(s, "\nNo indicator of the guide is met on the known facts, but some rows could not be assessed (below): the incident is 一般 (general) only until the missing facts are known.");
    } else if g.evidence.is_empty() {
        let _ = writeln!(s, "\nNo quantitative indicator of the guide is met: the incident is 一般 (general), with no reporting duty.");
    } else {
        let _ = writeln!(
            s,
            "\nWhy (the guide grades on any one indicator; \"以上\" includes the number):"
        );
        for e in &g.evidence {
            let source = rules
                .indicators
                .iter()
                .find(|i| i.id == e.indicator)
                .map(|i| i.source.as_str())
                .unwrap_or("");
            let _ = writeln!(s, "  - {}\n      source: {}", explain_evidence(e), source);
        }
    }
    if !unassessed.is_empty() {
        let _ = writeln!(
            s,
            "\nNot assessed — a fact is missing, so the level may be higher than the known facts give:"
        );
        for u in &unassessed {
            let _ = writeln!(s, "  - {} [{}]: {}", u.row, u.reason, u.detail);
        }
    }
    if level != g.level && inc.override_level.is_some() {
        let _ = writeln!(
            s,
            "  (an analyst regrade sets the level; the figures alone give {})",
            g.level
        );
    }
    if let Some(c) = &inc.crossing {
        let _ = writeln!(
            s,
            "\nStill growing: {} reaches {} at {} ({} ≥ {}), unless it ends first.",
            inc.id,
            c.level,
            c.at.format(offset),
            c.indicator,
            c.threshold
        );
    }
    if level >= rules.floor {
        let routes = reporting::routes(&rules, op, &inc.asset);
        let route = routes[0];
        let r = rules.route(route);
        let t0 = inc.reportable_at.unwrap_or(at);
        let deadline = t0.plus(r.window);
        let to: Vec<String> = recipients_of(&rules, &routes, op)
            .into_iter()
            .map(|r| r.name)
            .collect();
        let _ = writeln!(
            s,
            "\nReporting: {} and above must be reported (Measures art. 4).",
            rules.floor
        );
        let _ = writeln!(
            s,
            "  route {}: within {} of {} — deadline {}",
            route.key(),
            r.window,
            t0.format(offset),
            deadline.format(offset)
        );
        if routes.len() > 1 {
            let _ = writeln!(
                s,
                "  {} routes apply: the report goes to every route's recipients, and the strictest deadline ({}) binds:",
                routes.len(),
                r.window
            );
            for other in &routes {
                let names: Vec<String> = recipients(&rules, *other, op)
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                let _ = writeln!(
                    s,
                    "    route {}: within {} to {}",
                    other.key(),
                    rules.route(*other).window,
                    names.join("；")
                );
            }
        }
        let _ = writeln!(s, "  to: {}", to.join("；"));
        if let Some(o) = onward(&rules, route, op, level, deadline, offset) {
            let names: Vec<String> = o.to.into_iter().map(|r| r.name).collect();
            let notify: Vec<String> = o.notify.into_iter().map(|r| r.name).collect();
            let _ = writeln!(
                s,
                "  onward ({} and above): the recipient reports to {} within {} minutes of receiving the report{}",
                Level::Major,
                names.join("、"),
                o.within_minutes,
                if notify.is_empty() {
                    String::new()
                } else {
                    format!(", and notifies {}", notify.join("、"))
                }
            );
        }
        let channels: Vec<String> = rules
            .channels
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  channels: {}", channels.join("; "));
    } else {
        let _ = writeln!(
            s,
            "\nReporting: below the floor ({}); no report is due.",
            rules.floor
        );
    }
    s
}
