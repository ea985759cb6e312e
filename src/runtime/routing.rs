//! Where an escalation event goes: `topics.escalations`, plus every routing rule whose filters it
//! matches (by event type and minimum level).

use crate::model::Escalation;
use crate::settings::Settings;

pub fn topics_for<'a>(settings: &'a Settings, ev: &Escalation) -> Vec<&'a str> {
    let mut out = vec![settings.topics.escalations.as_str()];
    for (i, rule) in settings.routing.iter().enumerate() {
        let type_ok = rule.types.is_empty() || rule.types.iter().any(|t| t == ev.kind.key());
        let level_ok = match settings.parsed.routing_min_level.get(i).copied().flatten() {
            Some(min) => ev.level.is_some_and(|l| l >= min),
            None => true,
        };
        if type_ok && level_ok && !out.contains(&rule.topic.as_str()) {
            out.push(rule.topic.as_str());
        }
    }
    out
}
