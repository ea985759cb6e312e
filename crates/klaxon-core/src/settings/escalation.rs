//! Escalation policies as data (`escalation.toml`, docs/spec.md §10): who is paged, when, and until what.
//!
//! A policy matches a reporting obligation (a report that fell due) by the incident's level, the
//! report's kind and the operator class of its route; the **first** policy in the file that
//! matches is the one the obligation follows (order the file from the most to the least
//! specific). Its steps fire on an event of the report (`on`), a delay after the report fell due
//! (`after`), or a lead before its deadline (`before_deadline`), `unless` the incident was
//! acknowledged or the report filed by then. Targets are named once and carry the labels that
//! Alertmanager routes on.
//!
//! The file is optional: without it nobody is paged (the reporting events still flow).

use super::{Issue, Issues};
use crate::model::{Level, OperatorClass, ReportKind};
use crate::time::Millis;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub const FILE: &str = "escalation.toml";

/// The most steps a policy may have: the engine keeps which fired in a 32-bit mask.
pub const MAX_STEPS: usize = 32;

/// Labels Klaxon sets itself on Alertmanager alerts: a target may not override them.
pub const RESERVED_LABELS: [&str; 7] = [
    "alertname",
    "incident_id",
    "level",
    "report_kind",
    "operator",
    "province",
    "severity",
];

/// The validated policies and targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscalationPolicies {
    pub policies: Vec<Policy>,
    /// Target name → target.
    pub targets: BTreeMap<String, Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Shared with every report that follows the policy ([`crate::engine::escalation_policy::Paging`]).
    pub name: Arc<str>,
    /// Matches incidents at this level or above (any level when absent).
    pub level_at_least: Option<Level>,
    /// Matches these report kinds (any when empty).
    pub report_kinds: Vec<ReportKind>,
    /// Matches these operator classes of the report's route (any when empty).
    pub operator_classes: Vec<OperatorClass>,
    pub steps: Vec<PolicyStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStep {
    pub when: When,
    pub unless: Option<Unless>,
    /// Target names, each defined under `[targets]`.
    pub notify: Vec<String>,
}

/// When a step fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// With the report's own event.
    On(OnEvent),
    /// This long after the report fell due.
    After(Millis),
    /// This long before the report's deadline (at the moment it fell due, if the window is
    /// shorter than the lead: a person must still hear of it).
    BeforeDeadline(Millis),
}

/// The report events a step can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEvent {
    Due,
    Reminder,
    Overdue,
}

impl OnEvent {
    pub fn key(self) -> &'static str {
        match self {
            OnEvent::Due => "report.due",
            OnEvent::Reminder => "report.reminder",
            OnEvent::Overdue => "report.overdue",
        }
    }
}

/// What ends a step before it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unless {
    /// An `ack` of the incident after the report fell due.
    Acknowledged,
    /// The report was filed (filing ends every step of the report: see the engine).
    Filed,
}

impl Unless {
    pub fn key(self) -> &'static str {
        match self {
            Unless::Acknowledged => "acknowledged",
            Unless::Filed => "filed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A readable name for people ("Duty officer (SOC L1)"); the key when absent.
    pub name: Option<String>,
    /// Labels added to the Alertmanager alert of a page for this target (routing keys).
    pub labels: BTreeMap<String, String>,
}

impl EscalationPolicies {
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| &*p.name == name)
    }
}

impl Policy {
    /// Whether an obligation of `kind` on `route` at `level` follows this policy.
    pub fn matches(&self, level: Level, kind: ReportKind, route: OperatorClass) -> bool {
        self.level_at_least.is_none_or(|l| level >= l)
            && (self.report_kinds.is_empty() || self.report_kinds.contains(&kind))
            && (self.operator_classes.is_empty() || self.operator_classes.contains(&route))
    }
}

// ------------------------------------------------------------------ the file as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    policy: Vec<RawPolicy>,
    #[serde(default)]
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default, rename = "match")]
    matches: RawMatch,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    level_at_least: Option<String>,
    report_kind: Option<OneOrMany>,
    operator_class: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    on: Option<String>,
    after: Option<String>,
    before_deadline: Option<String>,
    unless: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn label_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

pub(crate) fn load(dir: &Path, issues: &mut Vec<Issue>) -> Option<EscalationPolicies> {
    if !dir.join(FILE).exists() {
        return Some(EscalationPolicies::default());
    }
    let file: File = super::read_toml(dir, FILE, issues)?;
    let path = dir.join(FILE).display().to_string();
    let before = issues.len();
    let out = validate(
        file,
        &mut Issues {
            file: &path,
            list: issues,
        },
    );
    (issues.len() == before).then_some(out)
}

fn validate(file: File, issues: &mut Issues) -> EscalationPolicies {
    let mut targets = BTreeMap::new();
    for (name, t) in file.targets {
        let key = format!("targets.{name}");
        if name.trim().is_empty() {
            issues.add(&key, "a target needs a non-empty name");
        }
        for (label, value) in &t.labels {
            if !label_name_ok(label) {
                issues.add(
                    format!("{key}.labels.{label}"),
                    "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                );
            } else if RESERVED_LABELS.contains(&label.as_str()) {
                issues.add(
                    format!("{key}.labels.{label}"),
                    format!(
                        "Klaxon sets this label itself (reserved: {})",
                        RESERVED_LABELS.join(", ")
                    ),
                );
            }
            if value.is_empty() {
                issues.add(format!("{key}.labels.{label}"), "must not be empty");
            }
        }
        targets.insert(
            name,
            Target {
                name: t.name.filter(|n| !n.trim().is_empty()),
                labels: t.labels,
            },
        );
    }
    let mut policies: Vec<Policy> = Vec::new();
    for (i, p) in file.policy.into_iter().enumerate() {
        let key = format!("policy[{i}]");
        if p.name.trim().is_empty() {
            issues.add(format!("{key}.name"), "must not be empty");
        } else if p.name.contains('/') {
            issues.add(
                format!("{key}.name"),
                "must not contain '/' (it is part of event ids)",
            );
        } else if policies.iter().any(|q| *q.name == *p.name) {
            issues.add(
                format!("{key}.name"),
                format!("duplicate policy name {:?}", p.name),
            );
        }
        let level_at_least = match p.matches.level_at_least.as_deref().map(str::parse) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                issues.add(format!("{key}.match.level_at_least"), e);
                None
            }
        };
        let mut report_kinds = Vec::new();
        for (j, k) in p
            .matches
            .report_kind
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match k.parse::<ReportKind>() {
                Ok(k) => report_kinds.push(k),
                Err(e) => issues.add(format!("{key}.match.report_kind[{j}]"), e),
            }
        }
        let mut operator_classes = Vec::new();
        for (j, c) in p
            .matches
            .operator_class
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match c.parse::<OperatorClass>() {
                Ok(c) => operator_classes.push(c),
                Err(e) => issues.add(format!("{key}.match.operator_class[{j}]"), e),
            }
        }
        if p.steps.is_empty() {
            issues.add(format!("{key}.steps"), "a policy needs at least one step");
        }
        if p.steps.len() > MAX_STEPS {
            issues.add(
                format!("{key}.steps"),
                format!("at most {MAX_STEPS} steps, got {}", p.steps.len()),
            );
        }
        let mut steps = Vec::new();
        for (j, s) in p.steps.into_iter().enumerate() {
            let skey = format!("{key}.steps[{j}]");
            if let Some(step) = validate_step(s, &skey, &targets, issues) {
                steps.push(step);
            }
        }
        policies.push(Policy {
            name: p.name.into(),
            level_at_least,
            report_kinds,
            operator_classes,
            steps,
        });
    }
    EscalationPolicies { policies, targets }
}

fn validate_step(
    s: RawStep,
    key: &str,
    targets: &BTreeMap<String, Target>,
    issues: &mut Issues,
) -> Option<PolicyStep> {
    let duration = |field: &str, v: &str, issues: &mut Issues| match Millis::parse_human(v) {
        Ok(m) if m.0 >= 0 => Some(m),
        Ok(_) => {
            issues.add(format!("{key}.{field}"), "must not be negative");
            None
        }
        Err(e) => {
            issues.add(format!("{key}.{field}"), e);
            None
        }
    };
    let given = [
        s.on.is_some(),
        s.after.is_some(),
        s.before_deadline.is_some(),
    ];
    let when = match (&s.on, &s.after, &s.before_deadline) {
        _ if given.iter().filter(|g| **g).count() != 1 => {
            issues.add(
                key,
                "a step needs exactly one of `on`, `after` or `before_deadline`",
            );
            None
        }
        (Some(on), _, _) => match on.as_str() {
            "report.due" => Some(When::On(OnEvent::Due)),
            "report.reminder" => Some(When::On(OnEvent::Reminder)),
            "report.overdue" => Some(When::On(OnEvent::Overdue)),
            other => {
                issues.add(
                    format!("{key}.on"),
                    format!(
                        "unknown event {other:?} (expected report.due, report.reminder or report.overdue)"
                    ),
                );
                None
            }
        },
        (_, Some(a), _) => duration("after", a, issues).map(When::After),
        (_, _, Some(b)) => duration("before_deadline", b, issues).map(When::BeforeDeadline),
        _ => None,
    };
    let unless = match s.unless.as_deref() {
        None => None,
        Some("acknowledged") => Some(Unless::Acknowledged),
        Some("filed") => Some(Unless::Filed),
        Some(other) => {
            issues.add(
                format!("{key}.unless"),
                format!("unknown condition {other:?} (expected acknowledged or filed)"),
            );
            None
        }
    };
    if s.notify.is_empty() {
        issues.add(format!("{key}.notify"), "must name at least one target");
    }
    for (k, t) in s.notify.iter().enumerate() {
        if !targets.contains_key(t) {
            issues.add(
                format!("{key}.notify[{k}]"),
                format!(
                    "unknown target {t:?} (define it as [targets.{t}]; known: {})",
                    targets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    Some(PolicyStep {
        when: when?,
        unless,
        notify: s.notify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<EscalationPolicies, Vec<Issue>> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), text).expect("write");
        let mut issues = Vec::new();
        let out = load(dir.path(), &mut issues);
        match out {
            Some(p) if issues.is_empty() => Ok(p),
            _ => Err(issues),
        }
    }

    fn keys(issues: &[Issue]) -> Vec<String> {
        issues.iter().map(|i| i.key.clone()).collect()
    }

    #[test]
    fn the_shipped_policy_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut issues = Vec::new();
        let p = load(&dir, &mut issues).expect("loads");
        assert!(issues.is_empty(), "{issues:?}");
        assert!(!p.policies.is_empty());
    }

    #[test]
    fn a_missing_file_means_nobody_is_paged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut issues = Vec::new();
        assert_eq!(
            load(dir.path(), &mut issues),
            Some(EscalationPolicies::default())
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let err = check(
            r#"
[[policy]]
name = "p"
match = { level_at_least = "huge", report_kind = ["initial", "later"], operator_class = "cii" }
steps = [
  { on = "report.due", notify = ["duty"] },
  { on = "report.filed", notify = ["duty"] },
  { after = "10x", unless = "acknowledged", notify = ["lead"] },
  { after = "10m", before_deadline = "5m", notify = ["duty"] },
  { before_deadline = "30m", unless = "sleeping", notify = [] },
]
[[policy]]
name = "p"
steps = []
[targets.duty]
labels = { team = "soc", alertname = "x", "bad-label" = "y" }
"#,
        )
        .expect_err("invalid");
        let got = keys(&err);
        for want in [
            "policy[0].match.level_at_least",
            "policy[0].match.report_kind[1]",
            "policy[0].steps[1].on",
            "policy[0].steps[2].after",
            "policy[0].steps[2].notify[0]",
            "policy[0].steps[3]",
            "policy[0].steps[4].unless",
            "policy[0].steps[4].notify",
            "policy[1].name",
            "policy[1].steps",
            "targets.duty.labels.alertname",
            "targets.duty.labels.bad-label",
        ] {
            assert!(got.iter().any(|k| k == want), "{want} missing in {got:?}");
        }
        assert!(err.iter().all(|i| i.file.ends_with(FILE)));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = check("[[policy]]\nname = \"p\"\nsteps = []\nescalate = true\n")
            .expect_err("unknown field");
        assert!(err[0].problem.contains("escalate"), "{err:?}");
        assert_eq!(err[0].key, "line 4");
    }

    #[test]
    fn matching_takes_level_kind_and_class() {
        let p = check(
            r#"
[[policy]]
name = "cii-major"
match = { level_at_least = "major", report_kind = "initial", operator_class = ["cii"] }
steps = [{ on = "report.due", notify = ["duty"] }]
[targets.duty]
"#,
        )
        .expect("valid");
        let pol = &p.policies[0];
        assert!(pol.matches(Level::Major, ReportKind::Initial, OperatorClass::Cii));
        assert!(pol.matches(
            Level::ParticularlyMajor,
            ReportKind::Initial,
            OperatorClass::Cii
        ));
        assert!(!pol.matches(
            Level::RelativelyMajor,
            ReportKind::Initial,
            OperatorClass::Cii
        ));
        assert!(!pol.matches(Level::Major, ReportKind::Summary, OperatorClass::Cii));
        assert!(!pol.matches(Level::Major, ReportKind::Initial, OperatorClass::Other));
    }
}
