//! Alerts: de-duplication on arrival, correlation into an incident (a new one or the open one
//! for the key), the parties an alert names, and what an incident learns from each alert.

use super::*;

/// Registry entry, then inline fields on top. An unknown operator is of class `other`.
pub fn resolve_parties(registry: &Registry, alert: &Alert) -> (OperatorInfo, AssetParts) {
    let mut asset = AssetParts::default();
    // An alert's `Text`, made a `String` only at the end: keeping it a `String` throughout
    // measured 57 more instructions per alert on the hot path (callgrind, `core_profile`).
    let mut asset_operator: Option<Text<'_>> = None;
    match &alert.asset {
        Some(Ref::Id(id)) => {
            asset.id = Some(id.as_ref().into());
            if let Some(e) = registry.assets.get(id.as_ref()) {
                asset.name = boxed(&e.name);
                asset.kind = boxed(&e.kind);
                asset.level = boxed(&e.level);
                asset.size = boxed(&e.size);
                asset_operator = e.operator.as_deref().map(Text::from);
            }
        }
        Some(Ref::Inline(f)) => {
            if let Some(e) =
                f.id.as_ref()
                    .and_then(|id| registry.assets.get(id.as_ref()))
            {
                asset.name = boxed(&e.name);
                asset.kind = boxed(&e.kind);
                asset.level = boxed(&e.level);
                asset.size = boxed(&e.size);
                asset_operator = e.operator.as_deref().map(Text::from);
            }
            asset.id = boxed(&f.id).or(asset.id);
            asset.name = boxed(&f.name).or(asset.name);
            asset.kind = boxed(&f.kind).or(asset.kind);
            asset.level = boxed(&f.level).or(asset.level);
            asset.size = boxed(&f.size).or(asset.size);
            asset_operator = f.operator.clone().or(asset_operator);
        }
        None => {}
    }
    let (op_id, inline) = match &alert.operator {
        Some(Ref::Id(id)) => (Some(id.to_string()), None),
        Some(Ref::Inline(f)) => (f.id.clone(), Some(f)),
        None => (asset_operator.map(Text::into_owned), None),
    };
    let mut op = OperatorInfo {
        id: op_id.clone(),
        class_unknown: true,
        ..OperatorInfo::default()
    };
    if let Some(e) = op_id.as_ref().and_then(|id| registry.operators.get(id)) {
        op.name = e.name.clone();
        if let Some(c) = e.class {
            op.class = c;
            op.class_unknown = false;
        }
        op.province = e.province.clone();
        op.sector = e.sector.clone();
        op.organ = e.organ.clone();
    }
    if let Some(f) = inline {
        op.name = f.name.clone().or(op.name);
        if let Some(c) = f.class {
            op.class = c;
            op.class_unknown = false;
        }
        op.province = f.province.clone().or(op.province);
        op.sector = f.sector.clone().or(op.sector);
        op.organ = f.organ.clone().or(op.organ);
    }
    (op, asset)
}

/// An optional string as an asset keeps it.
pub(super) fn boxed<S: AsRef<str>>(s: &Option<S>) -> Option<Box<str>> {
    s.as_ref().map(|s| Box::from(s.as_ref()))
}

/// An alert's string as an incident keeps it (exactly sized, on the heap).
pub(super) fn boxed_text(s: Text<'_>) -> Box<str> {
    Box::from(s.as_ref())
}

/// Whether an inline operator says something the incident does not know yet.
pub(super) fn adds_operator(known: &OperatorInfo, f: &crate::model::alert::OperatorFields) -> bool {
    let new = |have: &Option<String>, given: &Option<String>| given.is_some() && have.is_none();
    (f.id.is_some() && f.id != known.id)
        || (f.class.is_some() && known.class_unknown)
        || new(&known.name, &f.name)
        || new(&known.province, &f.province)
        || new(&known.sector, &f.sector)
        || new(&known.organ, &f.organ)
}

/// Whether an inline asset says something the incident does not know yet.
pub(super) fn adds_asset(known: &AssetInfo, f: &crate::model::alert::AssetFields) -> bool {
    let new = |have: Option<&str>, given: &Option<Text>| given.is_some() && have.is_none();
    (f.id.is_some() && f.id.as_deref() != known.id())
        || new(known.name(), &f.name)
        || new(known.kind(), &f.kind)
        || new(known.level(), &f.level)
        || new(known.size(), &f.size)
}

pub(super) fn merge_info(into: &mut OperatorInfo, from: OperatorInfo) {
    if into.id.is_none() {
        *into = from;
        return;
    }
    if into.id == from.id {
        into.name = into.name.take().or(from.name);
        // A class learnt later replaces the one assumed.
        if into.class_unknown && !from.class_unknown {
            into.class = from.class;
            into.class_unknown = false;
        }
        into.province = into.province.take().or(from.province);
        into.sector = into.sector.take().or(from.sector);
        into.organ = into.organ.take().or(from.organ);
    }
}

pub(super) fn merge_asset(into: &mut AssetParts, from: AssetParts) {
    if into.id.is_none() && into.kind.is_none() {
        *into = from;
        return;
    }
    if into.id == from.id {
        into.name = into.name.take().or(from.name);
        into.kind = into.kind.take().or(from.kind);
        into.level = into.level.take().or(from.level);
        into.size = into.size.take().or(from.size);
    }
}

impl Engine {
    /// Takes the alert mutably only to move its id into the incident instead of copying it.
    pub(super) fn handle_alert(&mut self, alert: &mut Alert) {
        let dedup = alert_dedup_key(alert.id.as_bytes());
        if self.seen.contains_key(&DedupId::from(dedup)) {
            self.counters.duplicates += 1;
            return;
        }
        self.counters.alerts += 1;
        let expires = self.clock.plus(self.opts.dedup_window);

        let at = alert.timestamp;
        // Resolving operator and asset (registry lookups, copies) is needed for a derived key, for
        // a new incident, and to fill in what an incident does not know yet — not otherwise.
        let mut parties = None;
        let explicit = alert.incident_key.as_deref().filter(|k| !k.is_empty());
        let (derived, kh) = match explicit {
            Some(k) => (None, explicit_key_hash(k)),
            None => {
                let (op, asset) = resolve_parties(&self.registry, alert);
                let key = correlate::correlation_key(alert, &op, &asset, &self.opts.group_by);
                parties = Some((op, asset));
                let kh = key_hash(&key);
                (Some(key), kh)
            }
        };
        // The latest incident for the key is taken out of the map (one lookup), updated, and put
        // back; `apply_alert` and what it calls may then use the whole engine, map included.
        let quiet = self.opts.quiet_period;
        let latest = match self.latest_by_key.get(&kh) {
            Some(id) => self.incidents.remove(id),
            None => None,
        };
        // An id the bounded dedup set has forgotten may still be one of the incident's own most
        // recent: a re-sent alert changes nothing (docs/spec.md §1), even after the window.
        if let Some(inc) = latest.as_ref().filter(|i| i.recent_ids.contains(&dedup)) {
            self.counters.duplicates += 1;
            let id = inc.id;
            if let Some(inc) = latest {
                self.incidents.insert(id, inc);
            }
            return;
        }
        match latest {
            // An incident with an outage still going on does not go quiet: the outage is still
            // happening, so its alerts still belong to it.
            Some(mut inc)
                if inc.is_open()
                    && (at.since(inc.last_alert_at) <= quiet || inc.figures.any_ongoing()) =>
            {
                if self.already_applied(&inc) {
                    self.counters.duplicates += 1;
                } else {
                    self.apply_alert(&mut inc, alert, parties, dedup, expires);
                }
                self.incidents.insert(inc.id, inc);
            }
            ended => {
                if let Some(inc) = ended {
                    self.incidents.insert(inc.id, inc);
                }
                let (op, asset) = parties
                    .take()
                    .unwrap_or_else(|| resolve_parties(&self.registry, alert));
                let key = derived.unwrap_or_else(|| format!("k:{}", explicit.unwrap_or_default()));
                let opened = self.outbox.len();
                let mut inc = self.open_incident(key, kh, alert, op, asset);
                self.apply_alert(&mut inc, alert, None, dedup, expires);
                // `incident.opened` says which rows its first alert leaves unassessed.
                if let Some(ev) = self
                    .outbox
                    .get_mut(opened)
                    .filter(|e| e.kind == EventType::IncidentOpened)
                {
                    ev.unassessed = inc.unassessed_at(&self.rules, inc.level);
                }
                self.incidents.insert(inc.id, inc);
            }
        }
    }

    /// Applies an alert to the incident it joins (or opened). `parties`: the alert's operator
    /// and asset, if already resolved.
    pub(super) fn apply_alert(
        &mut self,
        inc: &mut Incident,
        alert: &mut Alert,
        mut parties: Option<(OperatorInfo, AssetParts)>,
        dedup: u128,
        expires: Timestamp,
    ) {
        let at = alert.timestamp;
        // Later alerts fill in what the first did not say.
        let known =
            inc.operator.id.is_some() && (inc.asset.id().is_some() || inc.asset.kind().is_some());
        let inline = match (&alert.operator, &alert.asset) {
            (Some(Ref::Inline(o)), _) if adds_operator(&inc.operator, o) => true,
            (_, Some(Ref::Inline(a))) => adds_asset(&inc.asset, a),
            _ => false,
        };
        if !known || inline {
            let (op, asset) = parties
                .take()
                .unwrap_or_else(|| resolve_parties(&self.registry, alert));
            let mut merged = (*inc.operator).clone();
            merge_info(&mut merged, op);
            if merged != *inc.operator {
                inc.operator = self.intern(merged);
            }
            let mut merged = inc.asset.parts();
            merge_asset(&mut merged, asset);
            let merged = AssetInfo::from(merged);
            if merged != *inc.asset {
                inc.asset = self.intern_asset(merged);
            }
        }
        if inc.title.is_none() {
            inc.title = alert.title.take().map(boxed_text);
        }
        if inc.category.is_none() {
            inc.category = alert.category.take().map(boxed_text);
        }
        if let Some(src) = alert.source.take() {
            // With the source's own word on the detection (a rule's level, a severity): the
            // draft shows it beside the source, and nothing grades on it.
            let src = match alert.detail.take() {
                Some(d) => Text::Owned(format!("{src}（{}）", clip(&d, MAX_DETAIL))),
                None => src,
            };
            if !inc.sources.iter().any(|s| **s == *src) && inc.sources.len() < MAX_SOURCES {
                push_boxed(&mut inc.sources, boxed_text(src));
            }
        }
        if alert.impact.ransom.is_some() {
            inc.ransom = alert.impact.ransom.take();
        }
        inc.figures.apply(alert, &self.opts.sum);
        inc.alert_count += 1;
        if inc.alert_ids.len() < self.opts.max_alert_ids {
            push_small(
                &mut inc.alert_ids,
                boxed_text(std::mem::take(&mut alert.id)),
                self.opts.max_alert_ids,
            );
        }
        inc.last_alert_at = inc.last_alert_at.max(at);
        inc.last_activity = inc.last_activity.max(at);
        inc.applied_seq = self.seq.or(inc.applied_seq);
        self.regrade(inc, at, None);
        self.remember(inc, dedup, expires);
        self.schedule(inc);
        self.mark_dirty(inc.id);
    }

    /// Opens an incident for correlation key `key` (hashed: `kh`).
    pub(super) fn open_incident(
        &mut self,
        key: String,
        kh: u128,
        alert: &mut Alert,
        operator: OperatorInfo,
        asset: AssetParts,
    ) -> Box<Incident> {
        let day = alert.timestamp.ymd(self.opts.offset);
        let ts = alert.timestamp.0.to_le_bytes();
        let token = u64::from(route_token(&key)) << 24;
        let mut n: u32 = 0;
        let id = loop {
            let low = fnv1a(&[key.as_bytes(), &ts, &n.to_le_bytes()]) & 0xff_ffff;
            let id = IncidentId {
                day,
                hash: token | low,
            };
            if !self.incidents.contains_key(&id) {
                break id;
            }
            n += 1;
        };
        self.latest_by_key.insert(kh, id);
        // 4 billion openings per partition engine; past that, ties fall back to opening times.
        self.opened = self.opened.saturating_add(1);
        let inc = Incident {
            id,
            key: key.into_boxed_str(),
            opened_seq: self.opened,
            opened_at: alert.timestamp,
            last_alert_at: alert.timestamp,
            last_activity: alert.timestamp,
            title: alert.title.take().map(boxed_text),
            category: alert.category.take().map(boxed_text),
            sources: Box::default(),
            operator: self.intern(operator),
            asset: self.intern_asset(AssetInfo::from(asset)),
            figures: Figures::default(),
            alert_ids: Vec::new(),
            alert_count: 0,
            computed: Level::General,
            override_level: None,
            level: Level::General,
            graded_seq: 0,
            acks: 0,
            status: Status::Open,
            reportable_at: None,
            reported_level: None,
            reports: Box::default(),
            crossing: None,
            warned: None,
            ransom: None,
            timers: Vec::new(),
            recent_ids: Vec::new(),
            applied_seq: None,
        };
        let mut ev = self.event(
            &inc,
            EventType::IncidentOpened,
            String::new(),
            alert.timestamp,
        );
        ev.alert_ids = vec![alert.id.to_string()];
        ev.level = Some(Level::General);
        ev.level_zh = Some(Level::General.zh());
        self.outbox.push_back(ev);
        Box::new(inc)
    }

    pub(super) fn forget(&mut self, inc: &Incident) {
        if self.latest_by_key.get(&key_hash(&inc.key)) == Some(&inc.id) {
            self.latest_by_key.remove(&key_hash(&inc.key));
        }
    }
}
