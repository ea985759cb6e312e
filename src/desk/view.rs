//! The desk's view: every incident of every partition, as the changelog last recorded it, and
//! each incident's timeline as the escalations topic told it. Plain data with time passed in:
//! the feed ([`super::feed`]) applies records, the API asks questions with `now`.
//!
//! Countdowns are computed from deadlines at the moment of the question, never from the age of
//! the view; the view itself trails the engine by at most the changelog flush
//! (`state.commit_interval`, 1 s) plus a fetch.
//!
//! Memory: an incident is held as the engine holds it (the same `Incident`, operators and assets
//! shared), minus the dedup hashes only the engine needs, plus a timeline of 32-byte moments;
//! drafts, recipients and evidence are computed when asked for, not stored. `docs/desk.md` has
//! the measured figures.

use crate::engine::correlate::{AssetInfo, OperatorInfo};
use crate::engine::reporting::Report;
use crate::engine::timers::TimerKind;
use crate::engine::{draft, grade, reporting, Incident, IncidentId, Status};
use crate::model::escalation::{Channel, Draft, EventType, Evidence, Recipient};
use crate::model::{Level, ReportKind};
use crate::settings::ruleset::{Figure, Measure, DEFAULT_FLAP_GAP, FIGURE_NAMES};
use crate::settings::Ruleset;
use crate::time::Timestamp;
use chrono::FixedOffset;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One line of an incident's timeline, compact (40 bytes): an incident's escalation events and
/// the commands behind them. What only a command's events have lives behind one box.
#[derive(Clone, Debug, PartialEq)]
pub struct Moment {
    pub at: Timestamp,
    /// The event id after `<incident id>/<type>` (`/initial/3`; empty for `incident.opened`),
    /// or `!` and the whole id when it does not start that way (a rejected command's). Also
    /// what repeated deliveries are recognised by.
    suffix: Box<str>,
    pub extra: Option<Box<MomentExtra>>,
    pub kind: EventType,
    pub level: Option<Level>,
    pub report_kind: Option<ReportKind>,
}

/// What only some moments have. Every incident's page has a reason, few moments a command: the
/// command's fields sit behind their own box so that a reason costs 24 bytes here, not 88.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MomentExtra {
    /// The reason of a page, a rejection, dismissal or regrade; the target of a merge; a
    /// filing's channel and reference.
    pub detail: Option<Box<str>>,
    pub command: Option<Box<CommandEcho>>,
}

/// The command behind a moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommandEcho {
    pub command: Box<str>,
    pub by: Option<Box<str>>,
    pub via: Option<Box<str>>,
    pub received_at: Option<Box<str>>,
    pub backdated: bool,
}

impl Moment {
    fn event_id(&self, incident: &IncidentId) -> String {
        match self.suffix.strip_prefix('!') {
            Some(whole) => whole.to_string(),
            None => format!("{incident}/{}{}", self.kind.key(), self.suffix),
        }
    }
}

/// An incident and its timeline, in one allocation reached through one map: a second map keyed
/// by incident for the timelines cost ~85 bytes an incident at a million (the table's buckets
/// run half empty after a doubling), for nothing.
struct Slot {
    inc: Incident,
    timeline: Vec<Moment>,
}

/// The global table.
#[derive(Default)]
pub struct View {
    incidents: HashMap<IncidentId, Box<Slot>>,
    operators: HashSet<Arc<OperatorInfo>>,
    assets: HashSet<Arc<AssetInfo>>,
    since_sweep: u32,
    /// Timelines whose incident is not (yet) in the view, with the feed's tick (seconds) when
    /// their first event was read: the incident's state normally follows within a second or
    /// two (the timeline then moves into its slot); an incident that left the state (expired,
    /// compacted away) never comes, and its timeline is dropped by [`View::sweep_orphans`].
    orphans: HashMap<IncidentId, (u64, Vec<Moment>)>,
    /// The feed's current tick, for [`Self::orphans`].
    tick: u64,
}

/// How long a timeline may wait for its incident's state.
pub const ORPHAN_GRACE_SECS: u64 = 300;

/// The part of an escalation event the timeline keeps.
#[derive(Deserialize)]
struct EventIn {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    incident_id: String,
    at: String,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    report_kind: Option<ReportKind>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    merged_into: Option<String>,
    #[serde(default)]
    command: Option<CommandIn>,
}

#[derive(Deserialize)]
struct CommandIn {
    command: String,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    backdated: bool,
}

/// Filters of the list (docs/spec.md §9).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `open` (default): open incidents and any incident with a report still due; `closed`: the
    /// rest; `all`.
    #[serde(default)]
    pub status: Option<String>,
    /// One level key, or several separated by commas.
    #[serde(default)]
    pub level: Option<String>,
    /// Operator id.
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub province: Option<String>,
    /// At most this many (the nearest deadlines first).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A filter checked once, so each incident is tested cheaply.
pub struct Wanted {
    status: StatusFilter,
    levels: Option<Vec<Level>>,
    operator: Option<String>,
    province: Option<String>,
    limit: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum StatusFilter {
    Open,
    Closed,
    All,
}

impl Filter {
    /// Checks the filter; the error names the field.
    pub fn check(&self) -> Result<Wanted, (&'static str, String)> {
        let status = match self.status.as_deref().unwrap_or("open") {
            "open" => StatusFilter::Open,
            "closed" => StatusFilter::Closed,
            "all" => StatusFilter::All,
            other => {
                return Err((
                    "status",
                    format!("expected open, closed or all, got {other:?}"),
                ))
            }
        };
        let levels = match self.level.as_deref().filter(|l| !l.trim().is_empty()) {
            None => None,
            Some(l) => Some(
                l.split(',')
                    .map(|x| x.trim().parse::<Level>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ("level", e))?,
            ),
        };
        Ok(Wanted {
            status,
            levels,
            operator: self.operator.clone().filter(|s| !s.is_empty()),
            province: self.province.clone().filter(|s| !s.is_empty()),
            limit: self.limit.unwrap_or(usize::MAX),
        })
    }
}

/// One report of an incident as the list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReportView {
    pub kind: ReportKind,
    /// `follow_up.2`: the name event ids use.
    pub label: String,
    pub due_from: String,
    pub deadline: String,
    /// Seconds left at the time of the answer (negative when overdue).
    pub seconds_remaining: i64,
    pub filed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed_via: Option<String>,
    /// When Klaxon received the filing (`filed_at` is what the sender claimed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed_received_at: Option<String>,
    /// The filing claims a time earlier than its receipt by more than the tolerance.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backdated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Past the deadline and neither filed nor cancelled.
    pub overdue: bool,
    /// Filed late (after the deadline).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub filed_late: bool,
    pub cancelled: bool,
    pub outstanding: bool,
    pub recipients: Vec<Recipient>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OperatorView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub class: crate::model::OperatorClass,
    pub province: Option<String>,
}

/// An incident in the list.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub title: Option<String>,
    pub operator: OperatorView,
    pub level: Level,
    pub level_zh: &'static str,
    /// `open`, `resolved`, `dismissed` or `merged`.
    pub status: &'static str,
    pub opened_at: String,
    pub alert_count: u64,
    pub acknowledged: bool,
    pub reports: Vec<ReportView>,
    /// The nearest deadline of a report still outstanding.
    pub nearest_deadline: Option<String>,
    pub seconds_remaining: Option<i64>,
    #[serde(skip)]
    nearest_ms: Option<Timestamp>,
    #[serde(skip)]
    opened_ms: Timestamp,
}

/// One figure as measured now.
#[derive(Clone, Debug, Serialize)]
pub struct FigureView {
    pub figure: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ongoing: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub episodes: Vec<Episode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Episode {
    pub since: String,
    pub until: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimerView {
    pub at: String,
    pub seconds_remaining: i64,
    /// `crossing`, `upgrade_warning`, `report` (a reminder or overdue step), `page` (an
    /// escalation step, docs/spec.md §10) or `expire`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MomentView {
    pub at: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_kind: Option<ReportKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backdated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One incident in full.
#[derive(Clone, Debug, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub category: Option<String>,
    pub correlation_key: String,
    pub asset: AssetView,
    pub sources: Vec<String>,
    pub alert_ids: Vec<String>,
    pub last_alert_at: String,
    pub reportable_at: Option<String>,
    /// An analyst's regrade that overrides the figures: level and reason.
    pub override_level: Option<(Level, String)>,
    pub computed_level: Level,
    pub figures: Vec<FigureView>,
    /// The indicators that meet their thresholds now.
    pub matched: Vec<Evidence>,
    /// For each matched indicator, the grading guide row it comes from (`source` in
    /// grading.toml), so a person can check the evidence against the Guide.
    pub guide_rows: std::collections::BTreeMap<String, String>,
    pub timers: Vec<TimerView>,
    pub recipients: Vec<Recipient>,
    pub channels: Vec<Channel>,
    pub draft: Draft,
    pub timeline: Vec<MomentView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AssetView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
}

/// What a record changed, for the stream.
pub enum Change {
    Incident(IncidentId),
    Removed(IncidentId),
    Nothing,
}

fn status_key(s: &Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Resolved { .. } => "resolved",
        Status::Dismissed { .. } => "dismissed",
        Status::Merged { .. } => "merged",
    }
}

fn event_type(key: &str) -> Option<EventType> {
    key.parse().ok()
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

impl View {
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    pub fn contains(&self, id: &IncidentId) -> bool {
        self.incidents.contains_key(id)
    }

    /// Applies one changelog record: the incident's latest state, or a tombstone (`None`).
    /// Restore barriers and unreadable records change nothing (the latter is returned as an
    /// error for the log).
    pub fn apply_state(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<Change, String> {
        let Ok(key) = std::str::from_utf8(key) else {
            return Ok(Change::Nothing);
        };
        let Ok(id) = key.parse::<IncidentId>() else {
            // The restore barrier, or a key this version does not know.
            return Ok(Change::Nothing);
        };
        let Some(bytes) = value else {
            self.incidents.remove(&id);
            self.orphans.remove(&id);
            return Ok(Change::Removed(id));
        };
        let mut inc = crate::runtime::changelog::incident_from_record(bytes)?;
        // Only the engine de-duplicates: the desk drops the hashes (up to 512 bytes).
        inc.recent_ids = Vec::new();
        inc.applied_seq = None;
        // Decoded vectors grow by doubling (a single alert id takes room for four): exact, as
        // the engine keeps them.
        inc.alert_ids.shrink_to_fit();
        inc.timers.shrink_to_fit();
        inc.figures.shrink_to_fit();
        inc.operator = interned(&mut self.operators, &inc.operator);
        inc.asset = interned(&mut self.assets, &inc.asset);
        match self.incidents.get_mut(&id) {
            Some(slot) => slot.inc = inc,
            None => {
                let timeline = self.orphans.remove(&id).map(|(_, t)| t).unwrap_or_default();
                self.incidents.insert(id, Box::new(Slot { inc, timeline }));
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= 65_536 {
            self.since_sweep = 0;
            self.operators.retain(|a| Arc::strong_count(a) > 1);
            self.assets.retain(|a| Arc::strong_count(a) > 1);
        }
        Ok(Change::Incident(id))
    }

    /// Applies one escalation event to its incident's timeline. Returns the incident it
    /// concerns, if the event names one.
    pub fn apply_event(&mut self, bytes: &[u8]) -> Result<Option<IncidentId>, String> {
        let ev: EventIn = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Ok(id) = ev.incident_id.parse::<IncidentId>() else {
            // A rejected command that named no incident (or `@key`): nothing to attach it to.
            return Ok(None);
        };
        let Some(kind) = event_type(&ev.kind) else {
            return Ok(None);
        };
        let at = Timestamp::parse_rfc3339(&ev.at).map_err(|e| format!("at: {e}"))?;
        let prefix = format!("{}/{}", ev.incident_id, kind.key());
        let suffix: Box<str> = match ev.event_id.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.into(),
            None => format!("!{}", ev.event_id).into(),
        };
        let tick = self.tick;
        let list = match self.incidents.get_mut(&id) {
            Some(slot) => &mut slot.timeline,
            None => {
                &mut self
                    .orphans
                    .entry(id)
                    .or_insert_with(|| (tick, Vec::new()))
                    .1
            }
        };
        if list.iter().any(|m| m.kind == kind && m.suffix == suffix) {
            return Ok(Some(id));
        }
        let detail = ev
            .reason
            .or(ev.merged_into.map(|m| format!("into {m}")))
            .or_else(|| {
                let c = ev.command.as_ref()?;
                match (&c.channel, &c.reference) {
                    (None, None) => None,
                    (ch, r) => Some(format!(
                        "channel {} reference {}",
                        ch.as_deref().unwrap_or("-"),
                        r.as_deref().unwrap_or("-")
                    )),
                }
            });
        let extra = MomentExtra {
            command: ev.command.map(|c| {
                Box::new(CommandEcho {
                    command: c.command.into_boxed_str(),
                    by: boxed(c.by),
                    via: boxed(c.via),
                    received_at: boxed(c.received_at),
                    backdated: c.backdated,
                })
            }),
            detail: boxed(detail),
        };
        let m = Moment {
            at,
            suffix,
            kind,
            level: ev.level,
            report_kind: ev.report_kind,
            extra: (extra != MomentExtra::default()).then(|| Box::new(extra)),
        };
        // In time order; events of one incident mostly arrive in order.
        let pos = list.partition_point(|x| x.at <= m.at);
        if list.len() == list.capacity() {
            list.reserve_exact(1);
        }
        list.insert(pos, m);
        Ok(Some(id))
    }

    /// The incidents the filter wants, nearest open deadline first (then the newest).
    pub fn list(
        &self,
        rules: &Ruleset,
        w: &Wanted,
        now: Timestamp,
        offset: FixedOffset,
    ) -> Vec<Summary> {
        let mut picked: Vec<&Incident> = self
            .incidents
            .values()
            .map(|s| &s.inc)
            .filter(|inc| wanted(inc, w))
            .collect();
        let key = |inc: &Incident| {
            let nearest = nearest(inc);
            (
                nearest.is_none(),
                nearest,
                std::cmp::Reverse(inc.opened_at),
                inc.id,
            )
        };
        picked.sort_unstable_by_key(|inc| key(inc));
        picked.truncate(w.limit);
        picked
            .into_iter()
            .map(|inc| summary(rules, inc, now, offset))
            .collect()
    }

    /// One incident in full, or `None` if the view does not hold it.
    pub fn show(
        &self,
        rules: &Ruleset,
        id: &IncidentId,
        now: Timestamp,
        offset: FixedOffset,
    ) -> Option<Detail> {
        let slot = self.incidents.get(id)?;
        Some(detail(rules, &slot.inc, &slot.timeline, now, offset))
    }

    /// The list entry of one incident (for the stream).
    pub fn summary(
        &self,
        rules: &Ruleset,
        id: &IncidentId,
        now: Timestamp,
        offset: FixedOffset,
    ) -> Option<Summary> {
        Some(summary(rules, &self.incidents.get(id)?.inc, now, offset))
    }

    /// Whether the incident takes commands, and if not why (for a 409 before writing anything).
    pub fn status_of(&self, id: &IncidentId) -> Option<&'static str> {
        self.incidents.get(id).map(|s| status_key(&s.inc.status))
    }

    /// Advances the feed's clock (seconds since it started) and drops the timelines that waited
    /// longer than [`ORPHAN_GRACE_SECS`] for their incident. Returns how many were dropped.
    pub fn sweep_orphans(&mut self, tick: u64) -> usize {
        self.tick = tick;
        let cutoff = tick.saturating_sub(ORPHAN_GRACE_SECS);
        let before = self.orphans.len();
        self.orphans.retain(|_, (t, _)| *t >= cutoff);
        before - self.orphans.len()
    }

    /// Timeline moments held (for the memory measurement).
    pub fn moments(&self) -> usize {
        self.incidents
            .values()
            .map(|s| s.timeline.len())
            .sum::<usize>()
            + self.orphans.values().map(|(_, t)| t.len()).sum::<usize>()
    }
}

fn interned<T: std::hash::Hash + Eq + Clone>(pool: &mut HashSet<Arc<T>>, v: &Arc<T>) -> Arc<T> {
    if let Some(a) = pool.get(&**v) {
        return a.clone();
    }
    let a = Arc::new((**v).clone());
    pool.insert(a.clone());
    a
}

fn nearest(inc: &Incident) -> Option<Timestamp> {
    inc.reports
        .iter()
        .filter(|r| r.outstanding())
        .map(|r| r.deadline)
        .min()
}

fn wanted(inc: &Incident, w: &Wanted) -> bool {
    let live = inc.is_open() || inc.reports.iter().any(Report::outstanding);
    let status_ok = match w.status {
        StatusFilter::Open => live,
        StatusFilter::Closed => !live,
        StatusFilter::All => true,
    };
    status_ok
        && w.levels.as_ref().is_none_or(|ls| ls.contains(&inc.level))
        && w.operator
            .as_ref()
            .is_none_or(|o| inc.operator.id.as_deref() == Some(o.as_str()))
        && w.province
            .as_ref()
            .is_none_or(|p| inc.operator.province.as_deref() == Some(p.as_str()))
}

fn summary(rules: &Ruleset, inc: &Incident, now: Timestamp, offset: FixedOffset) -> Summary {
    let route = reporting::route_class(rules, &inc.operator, &inc.asset);
    let recipients = if inc.reports.is_empty() {
        Vec::new()
    } else {
        draft::recipients(rules, route, &inc.operator)
    };
    let reports = inc
        .reports
        .iter()
        .map(|r| {
            let filed = r.filed.as_deref();
            ReportView {
                kind: r.kind,
                label: r.label(),
                due_from: r.due_from.format(offset),
                deadline: r.deadline.format(offset),
                seconds_remaining: r.deadline.since(now).seconds(),
                filed_at: filed.map(|f| f.at.format(offset)),
                filed_by: filed.and_then(|f| f.by.clone()),
                filed_via: filed.and_then(|f| f.via.clone()),
                filed_received_at: filed.and_then(|f| f.received_at).map(|t| t.format(offset)),
                backdated: filed.is_some_and(|f| f.backdated),
                channel: filed.and_then(|f| f.channel.clone()),
                reference: filed.and_then(|f| f.reference.clone()),
                overdue: r.outstanding() && r.deadline <= now,
                filed_late: filed.is_some_and(|f| f.at > r.deadline),
                cancelled: r.cancelled,
                outstanding: r.outstanding(),
                recipients: recipients.clone(),
            }
        })
        .collect();
    let nearest_ms = nearest(inc);
    Summary {
        id: inc.id.to_string(),
        title: inc.title.as_deref().map(str::to_owned),
        operator: OperatorView {
            id: inc.operator.id.clone(),
            name: inc.operator.name.clone(),
            class: inc.operator.class,
            province: inc.operator.province.clone(),
        },
        level: inc.level,
        level_zh: inc.level.zh(),
        status: status_key(&inc.status),
        opened_at: inc.opened_at.format(offset),
        alert_count: inc.alert_count,
        acknowledged: inc.acks > 0,
        reports,
        nearest_deadline: nearest_ms.map(|t| t.format(offset)),
        seconds_remaining: nearest_ms.map(|t| t.since(now).seconds()),
        nearest_ms,
        opened_ms: inc.opened_at,
    }
}

fn figures(
    rules: &Ruleset,
    inc: &Incident,
    now: Timestamp,
    offset: FixedOffset,
) -> Vec<FigureView> {
    let mut out = Vec::new();
    // Ongoing durations are measured up to now, or up to the end of a closed incident.
    let upto = match inc.status {
        Status::Resolved { at } | Status::Dismissed { at } => at.min(now),
        _ => now,
    };
    for name in FIGURE_NAMES {
        let Ok(fig) = name.parse::<Figure>() else {
            continue;
        };
        let mut v = FigureView {
            figure: name,
            minutes: None,
            ongoing: None,
            episodes: Vec::new(),
            value: None,
            values: Vec::new(),
        };
        match fig {
            Figure::Duration(d) => {
                if !inc.figures.has_intervals(d) {
                    continue;
                }
                // Measured as the ruleset's indicators on this figure measure it.
                let measure = rules
                    .indicators
                    .iter()
                    .find(|i| i.figure == fig)
                    .map(|i| i.measure)
                    .unwrap_or(Measure::LongestEpisode {
                        flap_gap: DEFAULT_FLAP_GAP,
                    });
                v.minutes = Some(inc.figures.duration_at(d, upto, measure).0 as f64 / 60_000.0);
                v.ongoing = Some(inc.figures.is_ongoing(d));
                v.episodes = inc
                    .figures
                    .intervals(d)
                    .map(|i| Episode {
                        since: i.since.format(offset),
                        until: i.until.map(|u| u.format(offset)),
                    })
                    .collect();
            }
            Figure::Amount(a) => {
                let Some(x) = inc.figures.amount_of(a) else {
                    continue;
                };
                v.value = Some(x);
            }
            Figure::Category(c) => {
                v.values = inc.figures.categories_of(c).map(str::to_owned).collect();
                if v.values.is_empty() {
                    continue;
                }
            }
        }
        out.push(v);
    }
    out
}

fn detail(
    rules: &Ruleset,
    inc: &Incident,
    timeline: &[Moment],
    now: Timestamp,
    offset: FixedOffset,
) -> Detail {
    let upto = match inc.status {
        Status::Resolved { at } | Status::Dismissed { at } => at.min(now),
        _ => now,
    };
    let grade = grade::evaluate(rules, &inc.asset, &inc.figures, upto);
    let route = reporting::route_class(rules, &inc.operator, &inc.asset);
    let label_of = |n: u16| inc.reports.get(usize::from(n)).map(Report::label);
    let timers = inc
        .timers
        .iter()
        .map(|(at, kind)| {
            let (k, report) = match kind {
                TimerKind::Crossing => ("crossing", None),
                TimerKind::UpgradeWarning => ("upgrade_warning", None),
                TimerKind::Report(n) => ("report", label_of(*n)),
                TimerKind::Page(n) => ("page", label_of(*n)),
                TimerKind::Expire => ("expire", None),
            };
            TimerView {
                at: at.format(offset),
                seconds_remaining: at.since(now).seconds(),
                kind: k,
                report,
            }
        })
        .collect();
    let timeline = timeline
        .iter()
        .map(|m| {
            let x = m.extra.as_deref();
            let c = x.and_then(|x| x.command.as_deref());
            let s = |f: fn(&CommandEcho) -> &Option<Box<str>>| {
                c.and_then(|c| f(c).as_deref().map(str::to_owned))
            };
            MomentView {
                at: m.at.format(offset),
                kind: m.kind.key(),
                event_id: m.event_id(&inc.id),
                level: m.level,
                report_kind: m.report_kind,
                command: c.map(|c| c.command.to_string()),
                by: s(|c| &c.by),
                via: s(|c| &c.via),
                received_at: s(|c| &c.received_at),
                backdated: c.is_some_and(|c| c.backdated),
                detail: x.and_then(|x| x.detail.as_deref().map(str::to_owned)),
            }
        })
        .collect();
    Detail {
        summary: summary(rules, inc, now, offset),
        category: inc.category.as_deref().map(str::to_owned),
        correlation_key: inc.key.to_string(),
        asset: AssetView {
            id: inc.asset.id().map(str::to_owned),
            name: inc.asset.name().map(str::to_owned),
            kind: inc.asset.kind().map(str::to_owned),
        },
        sources: inc.sources.iter().map(|s| s.to_string()).collect(),
        alert_ids: inc.alert_ids.iter().map(|s| s.to_string()).collect(),
        last_alert_at: inc.last_alert_at.format(offset),
        reportable_at: inc.reportable_at.map(|t| t.format(offset)),
        override_level: inc.override_level.as_deref().cloned(),
        computed_level: inc.computed,
        figures: figures(rules, inc, now, offset),
        guide_rows: grade
            .evidence
            .iter()
            .filter_map(|e| {
                let row = rules.indicators.iter().find(|i| i.id == e.indicator)?;
                Some((e.indicator.clone(), row.source.clone()))
            })
            .collect(),
        matched: grade.evidence.clone(),
        timers,
        recipients: draft::recipients(rules, route, &inc.operator),
        channels: draft::channels(rules),
        draft: draft::draft(rules, inc, &grade, inc.level, offset),
        timeline,
    }
}

impl Summary {
    /// For sorting merged lists the way [`View::list`] sorts.
    pub fn order_key(&self) -> (bool, Option<Timestamp>, std::cmp::Reverse<Timestamp>) {
        (
            self.nearest_ms.is_none(),
            self.nearest_ms,
            std::cmp::Reverse(self.opened_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Expect};
    use crate::engine::Engine;

    fn config() -> crate::settings::Config {
        crate::settings::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
            .expect("shipped config")
    }

    /// Incidents from alerts (JSON lines), their changelog records and events.
    fn feed(config: &crate::settings::Config, lines: &[String]) -> (View, Vec<IncidentId>) {
        let mut e = Engine::from_config(config);
        let mut events = Vec::new();
        for l in lines {
            let input = decode(l.as_bytes(), Expect::Alert, 0).expect("alert");
            e.handle(input);
            while let Some(ev) = e.poll_output() {
                events.push(ev.to_json());
            }
        }
        let mut view = View::default();
        let mut ids = Vec::new();
        for ev in &events {
            view.apply_event(ev.as_bytes()).expect("event");
            // At-least-once: a repeated event changes nothing.
            view.apply_event(ev.as_bytes()).expect("event");
        }
        for inc in e.incidents_sorted() {
            let bytes = serde_json::to_vec(inc).expect("record");
            view.apply_state(inc.id.to_string().as_bytes(), Some(&bytes))
                .expect("state");
            ids.push(inc.id);
        }
        (view, ids)
    }

    fn alert(key: &str, class_operator: &str, minute: u32, records: u64) -> String {
        format!(
            r#"{{"id":"{key}-1","timestamp":"2026-11-24T08:{minute:02}:00+08:00","incident_key":"{key}","operator":"{class_operator}","impact":{{"personal_info_records":{records}}}}}"#
        )
    }

    #[test]
    fn the_list_puts_the_nearest_deadline_first_and_filters() {
        let c = config();
        let (view, _) = feed(
            &c,
            &[
                alert("late", "gd-grid", 30, 2_000_000),
                alert("early", "gd-grid", 10, 2_000_000),
                alert("quiet", "gd-grid", 20, 10),
            ],
        );
        let now = Timestamp::parse_rfc3339("2026-11-24T08:40:00+08:00").unwrap();
        let off = c.settings.utc_offset();
        let all = Filter::default().check().unwrap();
        let list = view.list(&c.ruleset, &all, now, off);
        let keys: Vec<i64> = list.iter().filter_map(|s| s.seconds_remaining).collect();
        assert_eq!(list.len(), 3);
        assert_eq!(
            keys,
            [30 * 60, 50 * 60],
            "nearest first; the general one has no clock"
        );
        assert!(list[2].nearest_deadline.is_none());
        let major = Filter {
            level: Some("relatively_major".into()),
            ..Filter::default()
        }
        .check()
        .unwrap();
        assert_eq!(view.list(&c.ruleset, &major, now, off).len(), 2);
        assert!(Filter {
            status: Some("gone".into()),
            ..Filter::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn an_incident_shows_its_draft_evidence_and_timeline_and_a_tombstone_removes_it() {
        let c = config();
        let (mut view, ids) = feed(&c, &[alert("one", "gd-grid", 10, 2_000_000)]);
        let now = Timestamp::parse_rfc3339("2026-11-24T08:40:00+08:00").unwrap();
        let d = view
            .show(&c.ruleset, &ids[0], now, c.settings.utc_offset())
            .expect("shown");
        assert_eq!(d.draft.items.len(), 8);
        assert_eq!(d.matched.len(), 1);
        let kinds: Vec<&str> = d.timeline.iter().map(|m| m.kind).collect();
        assert!(
            kinds.contains(&"incident.opened") && kinds.contains(&"report.due"),
            "{kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "report.due").count(),
            1,
            "repeated events are kept once"
        );
        let due = d.timeline.iter().find(|m| m.kind == "report.due").unwrap();
        assert_eq!(due.event_id, format!("{}/report.due/initial", ids[0]));
        view.apply_state(ids[0].to_string().as_bytes(), None)
            .unwrap();
        assert!(view
            .show(&c.ruleset, &ids[0], now, c.settings.utc_offset())
            .is_none());
        assert_eq!(view.moments(), 0);
    }

    #[test]
    fn timelines_whose_incident_never_comes_are_dropped_after_the_grace() {
        let mut view = View::default();
        let ev = r#"{"event_id":"INC-20261124-000000000009/incident.opened","type":"incident.opened","incident_id":"INC-20261124-000000000009","at":"2026-11-24T08:00:00+08:00"}"#;
        assert_eq!(std::mem::size_of::<Moment>(), 40);
        view.sweep_orphans(1);
        view.apply_event(ev.as_bytes()).unwrap();
        assert_eq!(view.moments(), 1);
        assert_eq!(view.sweep_orphans(ORPHAN_GRACE_SECS), 0);
        assert_eq!(view.sweep_orphans(ORPHAN_GRACE_SECS + 2), 1);
        assert_eq!(view.moments(), 0);
        // Restore barriers and unreadable keys change nothing.
        assert!(matches!(
            view.apply_state(b"__klaxon_restore_barrier__", Some(b"x")),
            Ok(Change::Nothing)
        ));
        assert!(view
            .apply_state(b"INC-20261124-000000000009", Some(b"{"))
            .is_err());
    }
}
