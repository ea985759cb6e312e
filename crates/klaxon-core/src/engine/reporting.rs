//! Reporting obligations: when an incident becomes reportable, which route and window apply, and
//! each report's reminders and repeated overdue steps.

use super::correlate::{AssetInfo, OperatorInfo};
use crate::model::{OperatorClass, ReportKind};
use crate::settings::ruleset::{ReportRule, Ruleset};
use crate::time::{Millis, Timestamp};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::*;

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
    /// The escalation policy the report follows and its steps fired (docs/spec.md §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<super::escalation_policy::Paging>,
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

    /// Takes `replaced`'s place in its incident (a merge whose other side owes the same single
    /// report with an earlier deadline). Event ids name the incident and the report's label, not
    /// which side the obligation came from, so what `replaced` already announced under that label
    /// (reminders, overdue repeats, escalation steps) is not announced again: every id stays
    /// unique. An ack of the surviving incident counts for the report it now owes, and a report
    /// whose own side followed no policy keeps the one `replaced` followed.
    pub fn take_place_of(&mut self, replaced: &Report) {
        self.next_reminder = self.next_reminder.max(replaced.next_reminder);
        self.overdue_count = self.overdue_count.max(replaced.overdue_count);
        match (self.paging.as_mut(), replaced.paging.as_ref()) {
            (Some(mine), Some(theirs)) => {
                mine.fired |= theirs.fired;
                mine.acknowledged |= theirs.acknowledged;
            }
            (None, Some(theirs)) => self.paging = Some(theirs.clone()),
            _ => {}
        }
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

// The report lifecycle in the engine: grading, opening reports, reminders and overdue steps.

impl Engine {
    /// Re-evaluates the grade at `at`; announces a change; opens the reports it makes due.
    /// `analyst` is the evidence of a `regrade`.
    pub(super) fn regrade(&mut self, inc: &mut Incident, at: Timestamp, analyst: Option<Evidence>) {
        inc.computed = grade::level_above(&self.rules, &inc.asset, &inc.figures, at, inc.computed);
        let new_level = inc.effective();
        let previous = inc.level;
        // Evidence is built only when an event will carry it.
        let floor = self.rules.floor;
        let needs_evidence = new_level != previous
            || analyst.is_some()
            || (new_level >= floor
                && (inc.reportable_at.is_none()
                    || inc.reported_level.is_some_and(|r| new_level > r)));
        let grade = if needs_evidence {
            grade::evaluate(&self.rules, &inc.asset, &inc.figures, at)
        } else {
            // Read by nothing: events and reports are made only where evidence is needed.
            Grade {
                level: inc.computed,
                evidence: Vec::new(),
            }
        };
        if new_level != previous || analyst.is_some() {
            inc.level = new_level;
            inc.graded_seq += 1;
            let mut ev = self.event(
                inc,
                EventType::IncidentGraded,
                format!("/{}", inc.graded_seq),
                at,
            );
            ev.previous_level = Some(previous);
            ev.matched = match &analyst {
                Some(e) => vec![e.clone()],
                None => grade.evidence.clone(),
            };
            ev.unassessed = inc.unassessed_at(&self.rules, inc.level);
            ev.alert_ids = inc.alert_ids.iter().map(|id| id.to_string()).collect();
            ev.alert_count = Some(inc.alert_count);
            self.outbox.push_back(ev);
        }
        inc.crossing = if inc.is_open() && inc.override_level.is_none() && inc.figures.any_ongoing()
        {
            grade::next_crossing(&self.rules, &inc.asset, &inc.figures, at, inc.level).map(Box::new)
        } else {
            None
        };
        if inc.status == Status::Open || matches!(inc.status, Status::Resolved { .. }) {
            self.open_reports(inc, at, &grade, analyst.as_ref());
        }
    }

    pub(super) fn open_reports(
        &mut self,
        inc: &mut Incident,
        at: Timestamp,
        grade: &Grade,
        analyst: Option<&Evidence>,
    ) {
        if inc.level < self.rules.floor {
            return;
        }
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        if inc.reportable_at.is_none() {
            let t0 = match self.rules.clock_starts {
                crate::settings::ruleset::ClockStart::FloorReached => at,
                crate::settings::ruleset::ClockStart::FirstAlert => inc.opened_at.min(at),
            };
            inc.reportable_at = Some(t0);
            let mut r = Report::new(
                ReportKind::Initial,
                0,
                t0,
                reporting::window(&self.rules, route, ReportKind::Initial),
            );
            self.report_due(inc, &mut r, at, grade, analyst);
            push_boxed(&mut inc.reports, r);
            return;
        }
        // A rise above the level of the last filed report makes a follow-up due, unless one is
        // already outstanding (it will carry the new level).
        let Some(reported) = inc.reported_level else {
            return;
        };
        if inc.level > reported
            && !inc
                .reports
                .iter()
                .any(|r| r.kind == ReportKind::FollowUp && r.outstanding())
        {
            let seq = inc
                .reports
                .iter()
                .filter(|r| r.kind == ReportKind::FollowUp)
                .count() as u32
                + 1;
            let mut r = Report::new(
                ReportKind::FollowUp,
                seq,
                at,
                reporting::window(&self.rules, route, ReportKind::FollowUp),
            );
            self.report_due(inc, &mut r, at, grade, analyst);
            push_boxed(&mut inc.reports, r);
        }
    }

    /// Makes the next follow-up (续报) or supplement (补报) report of `inc` due from `at`, on the
    /// binding route's window for that kind, and announces it. `why`: the reason and command of
    /// a `follow_up` command.
    pub(super) fn report_more(
        &mut self,
        inc: &mut Incident,
        kind: ReportKind,
        at: Timestamp,
        why: Option<(String, CommandEcho)>,
    ) {
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        let seq = inc.reports.iter().filter(|r| r.kind == kind).count() as u32 + 1;
        let mut r = Report::new(kind, seq, at, reporting::window(&self.rules, route, kind));
        let grade = grade::evaluate(&self.rules, &inc.asset, &inc.figures, at);
        let due = self.outbox.len();
        self.report_due(inc, &mut r, at, &grade, None);
        // The `report.due` (pages of its escalation policy follow it) echoes the command.
        if let (Some((reason, echo)), Some(ev)) = (
            why,
            self.outbox
                .get_mut(due)
                .filter(|e| e.kind == EventType::ReportDue),
        ) {
            ev.reason = Some(reason);
            ev.command = Some(echo);
        }
        push_boxed(&mut inc.reports, r);
    }

    /// Announces a report that fell due, then starts its escalation (docs/spec.md §10): the policy it
    /// follows, and the pages of its `on = "report.due"` steps, after the `report.due` event.
    pub(super) fn report_due(
        &mut self,
        inc: &Incident,
        r: &mut Report,
        at: Timestamp,
        grade: &Grade,
        analyst: Option<&Evidence>,
    ) {
        let mut ev = self.report_event(inc, EventType::ReportDue, r, format!("/{}", r.label()), at);
        self.address(inc, r, &mut ev);
        ev.channels = draft::channels(&self.rules);
        ev.matched = match analyst {
            Some(e) => vec![e.clone()],
            None => grade.evidence.clone(),
        };
        ev.unassessed = inc.unassessed_at(&self.rules, inc.level);
        ev.alert_ids = inc.alert_ids.iter().map(|id| id.to_string()).collect();
        ev.alert_count = Some(inc.alert_count);
        let mut d = draft::draft(&self.rules, inc, grade, inc.level, self.opts.offset);
        if r.kind == ReportKind::Supplement {
            draft::mark_already_reported(&mut d);
        }
        ev.draft = Some(d);
        self.outbox.push_back(ev);
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        r.paging = escalation_policy::select(&self.rules.escalation, inc.level, r.kind, route)
            .map(escalation_policy::Paging::new);
        self.page_on(inc, r, OnEvent::Due, String::new(), at);
    }

    /// Pages the `on` steps of report `r` that fire with its event `on`; `extra` tells repeats
    /// of the event apart in the event ids (`/2` for the second overdue, `/10m` for a reminder).
    pub(super) fn page_on(
        &mut self,
        inc: &Incident,
        r: &Report,
        on: OnEvent,
        extra: String,
        at: Timestamp,
    ) {
        for step in escalation_policy::on_steps(&self.rules.escalation, r, on) {
            self.page(inc, r, step, &extra, at);
        }
    }

    /// Emits the `escalation.page` of step `step` of the policy report `r` follows.
    pub(super) fn page(
        &mut self,
        inc: &Incident,
        r: &Report,
        step: usize,
        extra: &str,
        at: Timestamp,
    ) {
        let rules = self.rules.clone();
        let Some(policy) = escalation_policy::policy_of(&rules.escalation, r) else {
            return;
        };
        let Some(s) = policy.steps.get(step) else {
            return;
        };
        let suffix = format!("/{}/{}{extra}", r.label(), step + 1);
        let mut ev = self.report_event(inc, EventType::EscalationPage, r, suffix, at);
        ev.policy = Some(policy.name.to_string());
        ev.step = Some(step as u32 + 1);
        ev.targets = s
            .notify
            .iter()
            .map(|id| {
                let t = rules.escalation.targets.get(id);
                PageTarget {
                    id: id.clone(),
                    name: t.and_then(|t| t.name.clone()),
                    labels: t.map(|t| t.labels.clone()).unwrap_or_default(),
                }
            })
            .collect();
        ev.reason = Some(escalation_policy::reason(s, r, at, self.opts.offset));
        self.address(inc, r, &mut ev);
        self.outbox.push_back(ev);
    }

    /// Computes the timers an incident wants and puts them in the set.
    pub(super) fn schedule(&mut self, inc: &mut Incident) {
        // Built in a reused buffer: most calls want what is already armed and change nothing.
        let mut wanted = std::mem::take(&mut self.wanted);
        wanted.clear();
        if let Some(c) = &inc.crossing {
            wanted.push((c.at, TimerKind::Crossing));
            if inc.warned.is_none_or(|w| w < c.level) {
                let warn_at =
                    c.at.minus(self.rules.upgrade_warning_lead)
                        .max(inc.last_activity);
                wanted.push((warn_at.min(c.at), TimerKind::UpgradeWarning));
            }
        }
        for (n, r) in inc.reports.iter().enumerate() {
            if let Some((at, _)) = r.next_step(self.rules.report_rule(r.kind)) {
                wanted.push((at, TimerKind::Report(n as u16)));
            }
            if let Some((at, _)) = escalation_policy::next_timed(&self.rules.escalation, r) {
                wanted.push((at, TimerKind::Page(n as u16)));
            }
        }
        // An incident leaves the state only when nothing is owed and nothing is still going on.
        let ongoing = inc.is_open() && inc.figures.any_ongoing();
        if !ongoing && !inc.reports.iter().any(|r| r.outstanding()) {
            let quiet_end = inc.last_alert_at.plus(self.opts.quiet_period);
            let from = if inc.is_open() {
                quiet_end.max(inc.last_activity)
            } else {
                inc.last_activity
            };
            // An earlier expiry already armed stays: when it fires it re-checks and re-arms, so
            // the timer set is not touched on every alert.
            let desired = from.plus(self.opts.retention);
            let armed = inc
                .timers
                .iter()
                .find(|(_, k)| *k == TimerKind::Expire)
                .map(|(t, _)| *t);
            wanted.push((
                armed.filter(|t| *t <= desired).unwrap_or(desired),
                TimerKind::Expire,
            ));
        }
        if wanted != inc.timers {
            self.timers.reschedule(inc.id, &mut inc.timers, &wanted);
        }
        self.wanted = wanted;
    }

    /// Fires one timer due at `at`, the driver's clock reading `now`; returns false if the
    /// incident leaves the state.
    pub(super) fn fire(
        &mut self,
        inc: &mut Incident,
        at: Timestamp,
        kind: TimerKind,
        now: Timestamp,
    ) -> bool {
        match kind {
            TimerKind::Crossing => {
                inc.last_activity = inc.last_activity.max(at);
                self.regrade(inc, at, None);
            }
            TimerKind::UpgradeWarning => {
                if let Some(c) = inc.crossing.clone() {
                    inc.warned = Some(c.level);
                    // Too late to warn: the crossing itself fires in this same catch-up.
                    if c.at < now {
                        return true;
                    }
                    let mut ev = self.event(
                        inc,
                        EventType::UpgradeWarning,
                        format!("/{}", c.level.key()),
                        at,
                    );
                    ev.upgrade = Some(Upgrade {
                        to_level: c.level,
                        to_level_zh: c.level.zh(),
                        crossing_at: c.at.format(self.opts.offset),
                        seconds_until: c.at.since(at).seconds(),
                        indicator: c.indicator.clone(),
                        threshold: EvidenceValue::Number(c.threshold),
                    });
                    self.outbox.push_back(ev);
                }
            }
            TimerKind::Report(n) => {
                let Some(r) = inc.reports.get(n as usize).cloned() else {
                    return true;
                };
                let rule = self.rules.report_rule(r.kind);
                let Some((_, step)) = r.next_step(rule) else {
                    return true;
                };
                let mut at = at;
                let mut folded = 0;
                let step = match step {
                    Step::Reminder { index, .. } => {
                        // Stale: the deadline has passed, or a later reminder is due as well;
                        // skipped without a word (the overdue step or the later reminder speaks).
                        let mut rest = r.clone();
                        rest.advance(step);
                        let later_due = matches!(rest.next_step(rule),
                            Some((t, Step::Reminder { .. })) if t <= now);
                        if now >= r.deadline || later_due {
                            if let Some(r) = inc.reports.get_mut(n as usize) {
                                r.next_reminder = if now >= r.deadline {
                                    usize::MAX
                                } else {
                                    index + 1
                                };
                            }
                            return true;
                        }
                        step
                    }
                    Step::Overdue { count } => {
                        let latest = rule.overdue.step_at(now.since(r.deadline));
                        if latest > count {
                            folded = latest - count;
                            at = r.deadline.plus(rule.overdue.offset(latest));
                            Step::Overdue { count: latest }
                        } else {
                            step
                        }
                    }
                };
                let (kind, suffix) = match step {
                    Step::Reminder { lead, .. } => (
                        EventType::ReportReminder,
                        format!("/{}/{}", r.label(), lead),
                    ),
                    Step::Overdue { count } => (
                        EventType::ReportOverdue,
                        format!("/{}/{}", r.label(), count),
                    ),
                };
                let mut ev = self.report_event(inc, kind, &r, suffix, at);
                match step {
                    Step::Reminder { lead, .. } => ev.reminder_before = Some(lead.to_string()),
                    Step::Overdue { count } => {
                        ev.overdue_count = Some(count);
                        if folded > 0 {
                            ev.overdue_for = Some(at.since(r.deadline).to_string());
                            ev.folded_repeats = Some(folded);
                        }
                    }
                }
                // The level may have risen since the report fell due: the onward duty follows it.
                self.address(inc, &r, &mut ev);
                self.outbox.push_back(ev);
                let (on, extra) = match step {
                    Step::Reminder { lead, .. } => (OnEvent::Reminder, format!("/{lead}")),
                    Step::Overdue { count } => (OnEvent::Overdue, format!("/{count}")),
                };
                self.page_on(inc, &r, on, extra, at);
                if let Some(r) = inc.reports.get_mut(n as usize) {
                    r.advance(step);
                }
            }
            TimerKind::Page(n) => {
                let Some(r) = inc.reports.get(n as usize).cloned() else {
                    return true;
                };
                // Fires only the step that is due: the timer was armed from the same state.
                let Some((due, step)) = escalation_policy::next_timed(&self.rules.escalation, &r)
                else {
                    return true;
                };
                if due <= at {
                    self.page(inc, &r, step, "", at);
                    if let Some(p) = inc
                        .reports
                        .get_mut(n as usize)
                        .and_then(|r| r.paging.as_mut())
                    {
                        p.mark_fired(step);
                    }
                }
            }
            TimerKind::Expire => {
                let quiet_end = inc.last_alert_at.plus(self.opts.quiet_period);
                let from = if inc.is_open() {
                    quiet_end.max(inc.last_activity)
                } else {
                    inc.last_activity
                };
                let ongoing = inc.is_open() && inc.figures.any_ongoing();
                if !ongoing
                    && from.plus(self.opts.retention) <= at
                    && inc.reports.iter().all(|r| !r.outstanding())
                {
                    return false;
                }
            }
        }
        true
    }
}
