//! Commands: addressing an incident, applying the six commands (ack, regrade, file, close,
//! merge, follow-up…), rejecting what cannot apply, and the echo an event carries.

use super::*;
use crate::model::{Action, RegradeTo};

/// The identity of a command for de-duplication: a hash of everything it says.
pub(super) fn command_key(cmd: &Command) -> u128 {
    let parts: [&[u8]; 11] = [
        cmd.command.as_bytes(),
        cmd.incident_id.as_deref().unwrap_or("").as_bytes(),
        &cmd.at.0.to_le_bytes(),
        cmd.by.as_deref().unwrap_or("").as_bytes(),
        cmd.channel.as_deref().unwrap_or("").as_bytes(),
        cmd.reference.as_deref().unwrap_or("").as_bytes(),
        cmd.note.as_deref().unwrap_or("").as_bytes(),
        cmd.report_kind.as_deref().unwrap_or("").as_bytes(),
        cmd.reason.as_deref().unwrap_or("").as_bytes(),
        cmd.level.as_deref().unwrap_or("").as_bytes(),
        cmd.into.as_deref().unwrap_or("").as_bytes(),
    ];
    // `partial` joins the hash only when given, so that the keys of commands without it (kept in
    // the changelog's recent ids) stay what they were.
    match cmd.partial {
        None => dedup_key(b"command", &parts),
        Some(p) => {
            let mut more = parts.to_vec();
            more.push(if p { b"partial=true" } else { b"partial=false" });
            dedup_key(b"command", &more)
        }
    }
}

pub(super) fn echo(cmd: &Command, offset: FixedOffset, tolerance: Millis) -> CommandEcho {
    CommandEcho {
        command: cmd.command.clone(),
        by: cmd.by.clone(),
        via: cmd.via.clone(),
        channel: cmd.channel.clone(),
        reference: cmd.reference.clone(),
        note: cmd.note.clone(),
        received_at: cmd.received_at.map(|t| t.format(offset)),
        backdated: backdated(cmd, tolerance),
    }
}

/// Whether a command claims a time earlier than its receipt by more than `tolerance`.
pub(super) fn backdated(cmd: &Command, tolerance: Millis) -> bool {
    cmd.received_at
        .is_some_and(|r| r.since(cmd.at).0 > tolerance.0)
}

impl Engine {
    pub(super) fn handle_command(&mut self, mut cmd: Command) -> CommandOutcome {
        // Found malformed at the edge (a field of the wrong type, `at` unreadable, a name not in
        // the list, a field the command needs missing): rejected before any incident is looked
        // at, naming the fields at fault.
        let action = match &cmd.action {
            Ok(action) => action.clone(),
            Err(problem) => {
                let reason = problem.reason.clone();
                if !problem.at_usable {
                    cmd.at = cmd.received_at.unwrap_or(self.clock);
                }
                return self.reject(&cmd, reason);
            }
        };
        let target = match self.find_incident(cmd.incident_id.as_deref()) {
            Ok(id) => id,
            Err(reason) => return self.reject(&cmd, reason),
        };
        let Some(mut inc) = self.incidents.remove(&target) else {
            return self.reject(&cmd, "unknown incident".into());
        };
        if self.seen.contains_key(&DedupId::from(command_key(&cmd))) || self.already_applied(&inc) {
            // A re-delivered command (at-least-once upstream): already applied.
            self.incidents.insert(inc.id, inc);
            return CommandOutcome::Redelivered;
        }
        let first_event = self.outbox.len();
        let result = self.apply_command(&mut inc, &cmd, action);
        match result {
            Ok(()) => {
                // Every event a command causes says who sent it and how (docs/spec.md §9), including the
                // regrades and reports that follow from it.
                for ev in self.outbox.iter_mut().skip(first_event) {
                    if ev.command.is_none() {
                        ev.command =
                            Some(echo(&cmd, self.opts.offset, self.opts.backdate_tolerance));
                    }
                }
                self.counters.commands_applied += 1;
                self.mark_dirty(inc.id);
                if let Status::Merged { into } = inc.status {
                    self.mark_dirty(into);
                }
                let expires = self.clock.plus(self.opts.dedup_window);
                self.remember(&mut inc, command_key(&cmd), expires);
                inc.applied_seq = self.seq.or(inc.applied_seq);
                inc.last_activity = inc.last_activity.max(cmd.at);
                self.schedule(&mut inc);
                self.incidents.insert(inc.id, inc);
                CommandOutcome::Applied
            }
            Err(reason) => {
                self.incidents.insert(inc.id, inc);
                self.reject(&cmd, reason)
            }
        }
    }

    pub(super) fn find_incident(&self, given: Option<&str>) -> Result<IncidentId, String> {
        match Address::of(given)? {
            Address::Key(key) => self
                .latest_by_key
                .get(&explicit_key_hash(key))
                .copied()
                .ok_or_else(|| format!("no incident with incident_key {key:?}")),
            Address::Id(id) if self.incidents.contains_key(&id) => Ok(id),
            Address::Id(_) => Err(format!("unknown incident {}", given.unwrap_or("").trim())),
        }
    }

    pub(super) fn apply_command(
        &mut self,
        inc: &mut Incident,
        cmd: &Command,
        action: Action,
    ) -> Result<(), String> {
        let at = cmd.at;
        let closed = |inc: &Incident| match &inc.status {
            Status::Dismissed { .. } => Some("the incident was dismissed".to_string()),
            Status::Merged { into } => Some(format!("the incident was merged into {into}")),
            _ => None,
        };
        match action {
            Action::Ack => {
                inc.acks += 1;
                // Ends the `unless = "acknowledged"` steps of the reports now due (docs/spec.md §10).
                for r in inc.reports.iter_mut().filter(|r| r.outstanding()) {
                    if let Some(p) = r.paging.as_mut() {
                        p.acknowledged = true;
                    }
                }
                let mut ev = self.event(
                    inc,
                    EventType::IncidentAcknowledged,
                    format!("/{}", inc.acks),
                    at,
                );
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
            }
            Action::ReportFiled {
                kind: wanted,
                partial,
            } => {
                let n = inc
                    .reports
                    .iter()
                    .position(|r| r.outstanding() && wanted.is_none_or(|k| r.kind == k))
                    .ok_or_else(|| match wanted {
                        Some(k) => format!("no {} report is outstanding", k.key()),
                        None => "no report is outstanding".to_string(),
                    })?;
                if partial
                    && !matches!(
                        inc.reports[n].kind,
                        ReportKind::Initial | ReportKind::FollowUp
                    )
                {
                    return Err(format!(
                        "`partial` applies to an initial or follow-up report (items （一）（二） first, art. 7); the outstanding {} report is filed whole",
                        inc.reports[n].label()
                    ));
                }
                let filed = Filed {
                    at,
                    by: cmd.by.clone(),
                    channel: cmd.channel.clone(),
                    reference: cmd.reference.clone(),
                    via: cmd.via.clone(),
                    received_at: cmd.received_at,
                    backdated: backdated(cmd, self.opts.backdate_tolerance),
                    partial,
                };
                let r = {
                    let r = &mut inc.reports[n];
                    r.filed = Some(Box::new(filed));
                    r.clone()
                };
                if r.kind != ReportKind::Summary {
                    inc.reported_level =
                        Some(inc.reported_level.map_or(inc.level, |l| l.max(inc.level)));
                }
                let mut ev = self.report_event(
                    inc,
                    EventType::ReportFiled,
                    &r,
                    format!("/{}", r.label()),
                    at,
                );
                ev.onward = self.onward(inc, &r);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
                if partial {
                    // 补报: the rest of the report (items （三）–（八）) falls due, with its own timers.
                    self.report_more(inc, ReportKind::Supplement, at, None);
                }
            }
            Action::Resolve => {
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                if let Status::Resolved { .. } = inc.status {
                    return Err("the incident is already resolved".into());
                }
                inc.figures.close_ongoing(at);
                inc.status = Status::Resolved { at };
                inc.crossing = None;
                let mut ev = self.event(inc, EventType::IncidentResolved, String::new(), at);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
                // One summary report per incident (its label is part of event ids), as a merge
                // keeps one: a summary moved in from a merged incident that was resolved first
                // already runs its clock (the earlier deadline binds), and one already filed
                // counts for the incident it now belongs to.
                let has_summary = inc.reports.iter().any(|r| r.kind == ReportKind::Summary);
                if inc.reportable_at.is_some() && !has_summary {
                    let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
                    let mut r = Report::new(
                        ReportKind::Summary,
                        0,
                        at,
                        reporting::window(&self.rules, route, ReportKind::Summary),
                    );
                    let grade = grade::evaluate(&self.rules, &inc.asset, &inc.figures, at);
                    self.report_due(inc, &mut r, at, &grade, None);
                    push_boxed(&mut inc.reports, r);
                }
            }
            Action::Dismiss { reason } => {
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                inc.status = Status::Dismissed { at };
                inc.crossing = None;
                for r in &mut inc.reports {
                    if r.outstanding() {
                        r.cancelled = true;
                    }
                }
                let mut ev = self.event(inc, EventType::IncidentDismissed, String::new(), at);
                ev.reason = Some(reason);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
            }
            Action::Regrade { to, reason } => {
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                let evidence = match to {
                    RegradeTo::Computed => {
                        inc.override_level = None;
                        Evidence {
                            indicator: "analyst_regrade".into(),
                            value: EvidenceValue::Text(reason),
                            threshold: EvidenceValue::Text("back to computed grading".into()),
                            level: inc.computed,
                            unit: None,
                        }
                    }
                    RegradeTo::Level(level) => {
                        inc.override_level = Some(Box::new((level, reason.clone())));
                        Evidence {
                            indicator: "analyst_regrade".into(),
                            value: EvidenceValue::Text(reason),
                            threshold: EvidenceValue::Text("analyst judgement".into()),
                            level,
                            unit: None,
                        }
                    }
                };
                self.regrade(inc, at, Some(evidence));
            }
            Action::FollowUp { reason } => {
                // 续报 (art. 7): important new circumstances, or a milestone of the investigation,
                // after a report was made.
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                if !inc
                    .reports
                    .iter()
                    .any(|r| r.kind != ReportKind::Summary && r.filed.is_some())
                {
                    return Err("no report has been filed yet: a follow-up (续报) follows a filed report; put the new circumstances in the report that is due".into());
                }
                if let Some(r) = inc
                    .reports
                    .iter()
                    .find(|r| r.kind == ReportKind::FollowUp && r.outstanding())
                {
                    return Err(format!(
                        "{} is already due (deadline {}): put the new circumstances in it",
                        r.label(),
                        r.deadline.format(self.opts.offset)
                    ));
                }
                self.report_more(
                    inc,
                    ReportKind::FollowUp,
                    at,
                    Some((
                        reason,
                        echo(cmd, self.opts.offset, self.opts.backdate_tolerance),
                    )),
                );
            }
            Action::Merge { into } => {
                let into = self
                    .find_incident(Some(&into))
                    .map_err(|e| format!("merge target: {e}"))?;
                if into == inc.id {
                    return Err("cannot merge an incident into itself".into());
                }
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                let Some(mut target) = self.incidents.remove(&into) else {
                    return Err("merge target: unknown incident".into());
                };
                if let Some(why) = closed(&target) {
                    self.incidents.insert(into, target);
                    return Err(format!("merge target: {why}"));
                }
                self.merge_into(inc, &mut target, cmd);
                self.schedule(&mut target);
                self.incidents.insert(into, target);
            }
        }
        Ok(())
    }

    /// Folds `src` into `dst`: alerts, figures and the earlier reporting clock; `src`'s outstanding
    /// reports move with it, so no deadline is lost.
    pub(super) fn merge_into(&mut self, src: &mut Incident, dst: &mut Incident, cmd: &Command) {
        let at = cmd.at;
        dst.figures.absorb(&src.figures, &self.opts.sum);
        dst.alert_count += src.alert_count;
        for id in &src.alert_ids {
            if dst.alert_ids.len() < self.opts.max_alert_ids && !dst.alert_ids.contains(id) {
                push_exact(&mut dst.alert_ids, id.clone());
            }
        }
        dst.computed = dst.computed.max(src.computed);
        dst.reportable_at = match (dst.reportable_at, src.reportable_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        dst.reported_level = dst.reported_level.max(src.reported_level);
        for r in &mut src.reports {
            if r.outstanding() {
                let mut moved = r.clone();
                let numbered = matches!(moved.kind, ReportKind::FollowUp | ReportKind::Supplement);
                if numbered {
                    moved.seq =
                        dst.reports.iter().filter(|x| x.kind == moved.kind).count() as u32 + 1;
                }
                // An incident has one initial and one summary report (their labels are part of
                // event ids): when both sides owe one, the earlier deadline is the one that binds.
                let single = !numbered;
                match dst
                    .reports
                    .iter_mut()
                    .find(|x| single && x.kind == moved.kind)
                {
                    None => push_boxed(&mut dst.reports, moved),
                    Some(x) if x.outstanding() && moved.deadline < x.deadline => {
                        moved.take_place_of(x);
                        *x = moved;
                    }
                    Some(_) => {}
                }
                r.cancelled = true;
            }
        }
        src.status = Status::Merged { into: dst.id };
        src.crossing = None;
        let mut ev = self.event(src, EventType::IncidentMerged, String::new(), at);
        ev.merged_into = Some(dst.id.to_string());
        ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
        self.outbox.push_back(ev);
        dst.last_activity = dst.last_activity.max(at);
        self.regrade(dst, at, None);
    }

    /// A command refused before it reached an incident (its signature, docs/spec.md §9): it changes
    /// nothing and yields `command.rejected` with the refusal's code as `reason`.
    pub fn refuse(&mut self, cmd: &Command, reason: &str) -> CommandOutcome {
        self.reject(cmd, reason.to_string())
    }

    pub(super) fn reject(&mut self, cmd: &Command, reason: String) -> CommandOutcome {
        self.counters.commands_rejected += 1;
        let given = cmd.incident_id.clone().unwrap_or_default();
        let h = fnv1a(&[
            cmd.command.as_bytes(),
            given.as_bytes(),
            &cmd.at.0.to_le_bytes(),
            cmd.by.as_deref().unwrap_or("").as_bytes(),
            cmd.reason.as_deref().unwrap_or("").as_bytes(),
            cmd.report_kind.as_deref().unwrap_or("").as_bytes(),
            cmd.level.as_deref().unwrap_or("").as_bytes(),
            cmd.into.as_deref().unwrap_or("").as_bytes(),
        ]);
        let mut ev = Escalation::new(
            format!("CMD-{:016x}/command.rejected", h),
            EventType::CommandRejected,
            given,
            cmd.at,
            cmd.at.format(self.opts.offset),
        );
        ev.reason = Some(reason.clone());
        ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
        self.outbox.push_back(ev);
        CommandOutcome::Rejected(reason)
    }
}
