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
    /// Filed with items （一）（二） only: a supplement (补报) followed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// `desk`, `ctl` or the signing key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// When Klaxon received the filing (`at` is what the sender claims).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Timestamp>,
    /// `at` is earlier than the receipt by more than `commands.backdate_tolerance`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backdated: bool,
}

/// One report that is or was due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    /// Follow-up or supplement number (1, 2, …); 0 for the initial and summary reports.
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

    /// `initial`, `follow_up.2`, `summary`, `supplement.1`: the part of event ids that names
    /// the report.
    pub fn label(&self) -> String {
        match self.kind {
            ReportKind::FollowUp | ReportKind::Supplement => {
                format!("{}.{}", self.kind.key(), self.seq)
            }
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
        let count = self.overdue_count.saturating_add(1);
        Some((
            self.deadline.plus(rule.overdue.offset(count)),
            Step::Overdue { count },
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

/// The route whose deadline binds: the strictest of [`routes`] (an incident on a CII asset takes
/// the CII route's window whatever the operator's class).
pub fn route_class(rules: &Ruleset, op: &OperatorInfo, asset: &AssetInfo) -> OperatorClass {
    routes(rules, op, asset)[0]
}

/// Every route that applies, strictest window first (ties: the operator's own class first).
///
/// Art. 4 names the reporter by what the incident involves: an incident that involves CII goes to
/// the CII protection department and public security; an organ reports to its cyberspace work
/// body; other operators to the provincial cyberspace office. When an incident is on a CII asset
/// of an organ or of an "other" operator, both duties hold: the report goes to every applicable
/// route's recipients, and the strictest deadline binds (Klaxon's reading: the Measures do not
/// say one route replaces the other).
pub fn routes(rules: &Ruleset, op: &OperatorInfo, asset: &AssetInfo) -> Vec<OperatorClass> {
    let mut out = vec![op.class];
    let on_cii = asset
        .kind()
        .is_some_and(|k| rules.cii_asset_kinds.iter().any(|c| **c == *k));
    if on_cii && op.class != OperatorClass::Cii {
        out.push(OperatorClass::Cii);
    }
    out.sort_by_key(|c| (rules.route(*c).window, *c != op.class));
    out
}

/// The window for a report of `kind` on `route`.
pub fn window(rules: &Ruleset, route: OperatorClass, kind: ReportKind) -> Millis {
    rules
        .report_rule(kind)
        .window
        .unwrap_or(rules.route(route).window)
}
