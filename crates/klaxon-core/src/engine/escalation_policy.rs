//! Escalation steps as timers (docs/spec.md §10): which policy a reporting obligation follows, when its
//! next step is due, which steps an event or a command ends, and the reason a person reads.
//!
//! Pure: everything here is a function of the report's state, the policies and the time passed
//! in. A report keeps its [`Paging`] (the policy it follows and the steps already fired) in the
//! incident state, so the steps are persisted in the changelog, restored after a crash, and
//! replayed like every other timer; a step fires at most once because its bit is set as it fires.
//!
//! Decisions the spec leaves open, made here:
//! - The policy is chosen when the report falls due (the first that matches, in file order) and
//!   kept for that report: the steps a person was promised do not shift under them. A level rise
//!   after filing makes a follow-up report due, which chooses again.
//! - `acknowledged` means an `ack` of the incident **after** the report fell due: an ack of the
//!   incident before it became reportable did not take on the reporting duty.
//! - Filing a report ends every remaining step of it (filing is the strongest acknowledgement);
//!   dismissing ends all (the reports are cancelled); resolving ends none (a due report stays due).
//! - A `before_deadline` lead longer than the window fires when the report falls due.
//! - A policy or step removed from the config while a report follows it pages no more for it.

use super::reporting::Report;
use crate::model::ReportKind;
use crate::settings::escalation::{EscalationPolicies, OnEvent, Policy, PolicyStep, Unless, When};
use crate::time::{Millis, Timestamp};
use chrono::FixedOffset;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A report's escalation: the policy it follows and what has happened to its steps. Held in
/// the report itself, its policy's name shared with the configuration's (`Policy::name`; a
/// restore swaps each read copy for it, [`Engine::restore`](super::Engine::restore)): with the
/// shipped policies every reportable incident has one, and a box and a name of its own cost
/// ~48 bytes an incident at a million open incidents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paging {
    pub policy: Arc<str>,
    /// Bit `i` set: step `i` (a timed one) has fired.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fired: u32,
    /// The incident was acknowledged after the report fell due.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledged: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Paging {
    pub fn new(policy: &Policy) -> Self {
        Paging {
            policy: policy.name.clone(),
            fired: 0,
            acknowledged: false,
        }
    }

    pub fn has_fired(&self, step: usize) -> bool {
        step < 32 && self.fired & (1 << step) != 0
    }

    pub fn mark_fired(&mut self, step: usize) {
        if step < 32 {
            self.fired |= 1 << step;
        }
    }
}

/// The policy an obligation of `kind` on `route` at `level` follows: the first that matches.
pub fn select(
    policies: &EscalationPolicies,
    level: crate::model::Level,
    kind: ReportKind,
    route: crate::model::OperatorClass,
) -> Option<&Policy> {
    policies
        .policies
        .iter()
        .find(|p| p.matches(level, kind, route))
}

/// Whether `unless` has ended a step of `r`.
fn ended(unless: Option<Unless>, paging: &Paging, r: &Report) -> bool {
    match unless {
        None => false,
        Some(Unless::Acknowledged) => paging.acknowledged,
        Some(Unless::Filed) => r.filed.is_some(),
    }
}

/// The instant a timed step of `r` is due (`None` for an `on` step).
pub fn step_time(step: &PolicyStep, r: &Report) -> Option<Timestamp> {
    match step.when {
        When::On(_) => None,
        When::After(d) => Some(r.due_from.plus(d)),
        When::BeforeDeadline(d) => Some(r.deadline.minus(d).max(r.due_from)),
    }
}

/// The report's policy, if it follows one that still exists.
pub fn policy_of<'a>(policies: &'a EscalationPolicies, r: &Report) -> Option<&'a Policy> {
    r.paging.as_ref().and_then(|p| policies.policy(&p.policy))
}

/// The next timed step of `r` that has neither fired nor been ended: (instant, step index),
/// earliest first, ties to the earlier step.
pub fn next_timed(policies: &EscalationPolicies, r: &Report) -> Option<(Timestamp, usize)> {
    if !r.outstanding() {
        return None;
    }
    let paging = r.paging.as_ref()?;
    let policy = policies.policy(&paging.policy)?;
    policy
        .steps
        .iter()
        .enumerate()
        .filter(|(i, s)| !paging.has_fired(*i) && !ended(s.unless, paging, r))
        .filter_map(|(i, s)| step_time(s, r).map(|at| (at, i)))
        .min()
}

/// The `on` steps of `r` that fire with its event `on`, in policy order.
pub fn on_steps(policies: &EscalationPolicies, r: &Report, on: OnEvent) -> Vec<usize> {
    let (Some(paging), Some(policy)) = (r.paging.as_ref(), policy_of(policies, r)) else {
        return Vec::new();
    };
    if !r.outstanding() {
        return Vec::new();
    }
    policy
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.when == When::On(on) && !ended(s.unless, paging, r))
        .map(|(i, _)| i)
        .collect()
}

fn report_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Initial => "initial report",
        ReportKind::FollowUp => "follow-up report",
        ReportKind::Summary => "summary report",
        ReportKind::Supplement => "supplement report",
    }
}

/// Whole minutes (rounded towards zero) of a duration, for people.
fn minutes(d: Millis) -> String {
    Millis((d.0 / crate::time::MINUTE) * crate::time::MINUTE).to_string()
}

/// The reason a person reads on the page: what happened, and how long is left.
pub fn reason(step: &PolicyStep, r: &Report, at: Timestamp, offset: FixedOffset) -> String {
    let name = report_name(r.kind);
    let deadline = r.deadline.format(offset);
    let left = r.deadline.since(at);
    let clock = if left.0 >= 0 {
        format!("deadline {deadline}, {} left", minutes(left))
    } else {
        format!(
            "deadline {deadline} passed {} ago",
            minutes(Millis(-left.0))
        )
    };
    let what = match (step.when, step.unless) {
        (When::On(OnEvent::Due), _) => format!("the {name} fell due"),
        (When::On(OnEvent::Reminder), _) => format!("reminder: the {name} is not filed yet"),
        (When::On(OnEvent::Overdue), _) => format!("the {name} is overdue and not filed"),
        (When::After(d), Some(Unless::Acknowledged)) => {
            format!("not acknowledged {d} after the {name} fell due")
        }
        (When::After(d), Some(Unless::Filed)) => format!("not filed {d} after the {name} fell due"),
        (When::After(d), None) => format!("{d} since the {name} fell due"),
        (When::BeforeDeadline(d), Some(Unless::Acknowledged)) => {
            format!("not acknowledged with {d} to go before the {name} deadline")
        }
        (When::BeforeDeadline(d), _) => {
            format!("the {name} is not filed with {d} to go before its deadline")
        }
    };
    format!("{what} ({clock})")
}

/// How a step reads in words (`after 10m unless acknowledged`), for explanations and docs.
pub fn describe(step: &PolicyStep) -> String {
    let when = match step.when {
        When::On(e) => format!("on {}", e.key()),
        When::After(d) => format!("after {d}"),
        When::BeforeDeadline(d) => format!("{d} before the deadline"),
    };
    match step.unless {
        Some(u) => format!("{when} unless {}", u.key()),
        None => when,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::escalation::PolicyStep;
    use crate::time::MINUTE;

    fn report() -> Report {
        let mut r = Report::new(ReportKind::Initial, 0, Timestamp(0), Millis(60 * MINUTE));
        r.paging = Some(Paging {
            policy: "p".into(),
            fired: 0,
            acknowledged: false,
        });
        r
    }

    fn policies(steps: Vec<PolicyStep>) -> EscalationPolicies {
        EscalationPolicies {
            policies: vec![Policy {
                name: "p".into(),
                level_at_least: None,
                report_kinds: vec![],
                operator_classes: vec![],
                steps,
            }],
            targets: Default::default(),
        }
    }

    fn step(when: When, unless: Option<Unless>) -> PolicyStep {
        PolicyStep {
            when,
            unless,
            notify: vec!["x".into()],
        }
    }

    #[test]
    fn the_earliest_unfired_unended_step_is_next() {
        let p = policies(vec![
            step(When::On(OnEvent::Due), None),
            step(
                When::BeforeDeadline(Millis(30 * MINUTE)),
                Some(Unless::Filed),
            ),
            step(When::After(Millis(10 * MINUTE)), Some(Unless::Acknowledged)),
        ]);
        let mut r = report();
        assert_eq!(next_timed(&p, &r), Some((Timestamp(10 * MINUTE), 2)));
        if let Some(g) = r.paging.as_mut() {
            g.acknowledged = true;
        }
        assert_eq!(next_timed(&p, &r), Some((Timestamp(30 * MINUTE), 1)));
        if let Some(g) = r.paging.as_mut() {
            g.mark_fired(1);
        }
        assert_eq!(next_timed(&p, &r), None);
    }

    #[test]
    fn a_lead_longer_than_the_window_fires_when_the_report_falls_due() {
        let p = policies(vec![step(When::BeforeDeadline(Millis(90 * MINUTE)), None)]);
        assert_eq!(next_timed(&p, &report()), Some((Timestamp(0), 0)));
    }

    #[test]
    fn a_filed_or_cancelled_report_has_no_next_step() {
        let p = policies(vec![step(When::After(Millis(MINUTE)), None)]);
        let mut r = report();
        r.cancelled = true;
        assert_eq!(next_timed(&p, &r), None);
        assert!(on_steps(&p, &r, OnEvent::Overdue).is_empty());
    }

    #[test]
    fn reasons_read_as_sentences() {
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        let s = step(When::After(Millis(10 * MINUTE)), Some(Unless::Acknowledged));
        assert_eq!(
            reason(&s, &report(), Timestamp(10 * MINUTE), offset),
            "not acknowledged 10m after the initial report fell due \
             (deadline 1970-01-01T09:00:00+08:00, 50m left)"
        );
        let s = step(When::On(OnEvent::Overdue), None);
        assert_eq!(
            reason(&s, &report(), Timestamp(95 * MINUTE), offset),
            "the initial report is overdue and not filed \
             (deadline 1970-01-01T09:00:00+08:00 passed 35m ago)"
        );
        assert_eq!(describe(&s), "on report.overdue");
    }
}
