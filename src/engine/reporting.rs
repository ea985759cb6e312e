//! Reporting obligations: when an incident becomes reportable, which route and window apply, and
//! each report's reminders and repeated overdue steps.

use super::correlate::{AssetInfo, OperatorInfo};
use crate::model::{OperatorClass, ReportKind};
use crate::settings::ruleset::{ReportRule, Ruleset};
use crate::time::{Millis, Timestamp};
use serde::{Deserialize, Serialize};

/// Who filed a report, when and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filed {
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// One report that is or was due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    /// Follow-up number (1, 2, …); 0 for the initial and summary reports.
    pub seq: u32,
    /// When the obligation arose.
    pub due_from: Timestamp,
    pub deadline: Timestamp,
    /// Index of the next reminder lead to send.
    pub next_reminder: usize,
    pub overdue_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed: Option<Box<Filed>>,
    /// Stopped by `dismiss` or folded away by `merge`.
    pub cancelled: bool,
    /// The escalation policy the report follows and its steps fired (SPEC §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Box<super::escalation_policy::Paging>>,
}

/// The next thing a report's timer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Reminder { index: usize, lead: Millis },
    Overdue { count: u32 },
}

impl Report {
    pub fn new(kind: ReportKind, seq: u32, due_from: Timestamp, window: Millis) -> Self {
        Report {
            kind,
            seq,
            due_from,
            deadline: due_from.plus(window),
            next_reminder: 0,
            overdue_count: 0,
            filed: None,
            cancelled: false,
            paging: None,
        }
    }

    /// `initial`, `follow_up.2`, `summary`: the part of event ids that names the report.
    pub fn label(&self) -> String {
        match self.kind {
            ReportKind::FollowUp => format!("follow_up.{}", self.seq),
            k => k.key().to_string(),
        }
    }

    pub fn outstanding(&self) -> bool {
        self.filed.is_none() && !self.cancelled
    }

    /// The next reminder (skipping leads longer than the window) or overdue repeat.
    pub fn next_step(&self, rule: &ReportRule) -> Option<(Timestamp, Step)> {
        if !self.outstanding() {
            return None;
        }
        for (index, lead) in rule.reminders.iter().enumerate().skip(self.next_reminder) {
            let at = self.deadline.minus(*lead);
            if at > self.due_from {
                return Some((at, Step::Reminder { index, lead: *lead }));
            }
        }
        let every = Millis(
            rule.overdue_every
                .0
                .saturating_mul(self.overdue_count as i64),
        );
        Some((
            self.deadline.plus(every),
            Step::Overdue {
                count: self.overdue_count + 1,
            },
        ))
    }

    /// Records that `step` fired.
    pub fn advance(&mut self, step: Step) {
        match step {
            Step::Reminder { index, .. } => self.next_reminder = index + 1,
            Step::Overdue { count } => {
                self.next_reminder = usize::MAX;
                self.overdue_count = count;
            }
        }
    }
}

/// The route an incident reports on: its operator's class, except that an incident on a CII
/// asset takes the CII route whatever the operator says — the stricter deadline wins.
pub fn route_class(rules: &Ruleset, op: &OperatorInfo, asset: &AssetInfo) -> OperatorClass {
    match asset.kind() {
        Some(k) if rules.cii_asset_kinds.iter().any(|c| **c == *k) => OperatorClass::Cii,
        _ => op.class,
    }
}

/// The window for a report of `kind` on `route`.
pub fn window(rules: &Ruleset, route: OperatorClass, kind: ReportKind) -> Millis {
    rules
        .report_rule(kind)
        .window
        .unwrap_or(rules.route(route).window)
}
