//! Event builders: the escalation event an incident or a report produces, addressed to its
//! pages and onward targets.

use super::*;

impl Engine {
    pub(super) fn event(
        &self,
        inc: &Incident,
        kind: EventType,
        suffix: String,
        at: Timestamp,
    ) -> Escalation {
        let incident_id = inc.id.to_string();
        let mut ev = Escalation::new(
            [incident_id.as_str(), "/", kind.key(), &suffix].concat(),
            kind,
            incident_id,
            at,
            at.format(self.opts.offset),
        );
        ev.title = inc.title.as_deref().map(str::to_owned);
        ev.level = Some(inc.level);
        ev.level_zh = Some(inc.level.zh());
        ev.operator = inc.operator.id.as_ref().map(|id| OperatorSummary {
            id: id.clone(),
            name: inc.operator.name.clone(),
            class: inc.operator.class,
            province: inc.operator.province.clone(),
        });
        ev.asset = inc.asset.id().map(|id| AssetSummary {
            id: id.to_owned(),
            name: inc.asset.name().map(str::to_owned),
            kind: inc.asset.kind().map(str::to_owned),
        });
        ev
    }

    /// Who a report goes to (every applicable route's recipients), and the onward duty at the
    /// incident's current level on the route whose deadline binds.
    pub(super) fn address(&self, inc: &Incident, r: &Report, ev: &mut Escalation) {
        let routes = reporting::routes(&self.rules, &inc.operator, &inc.asset);
        ev.recipients = draft::recipients_of(&self.rules, &routes, &inc.operator);
        ev.onward = self.onward(inc, r);
    }

    /// The authority's onward step for report `r`, counted from the filing once filed (收到报告后),
    /// and until then from the operator's deadline (the latest the report can arrive).
    pub(super) fn onward(
        &self,
        inc: &Incident,
        r: &Report,
    ) -> Option<crate::model::escalation::Onward> {
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        draft::onward(
            &self.rules,
            route,
            &inc.operator,
            inc.level,
            r.filed.as_ref().map_or(r.deadline, |f| f.at),
            self.opts.offset,
        )
    }

    pub(super) fn report_event(
        &self,
        inc: &Incident,
        kind: EventType,
        r: &Report,
        suffix: String,
        at: Timestamp,
    ) -> Escalation {
        let mut ev = self.event(inc, kind, suffix, at);
        ev.report_kind = Some(r.kind);
        ev.deadline = Some(r.deadline.format(self.opts.offset));
        ev.seconds_remaining = Some(r.deadline.since(at).seconds());
        ev
    }
}
