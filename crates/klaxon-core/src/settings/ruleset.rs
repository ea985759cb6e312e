//! The ruleset: the grading guide (`grading.toml`), the reporting rules (`reporting.toml`) and the
//! recipient directory (`recipients.toml`). The engine knows no regulator's number: every
//! threshold, window, reminder and recipient comes from here, so another regime (say NIS2's 24 h
//! early warning, 72 h notification and one-month final report) is a second set of these files.

use super::{read_toml, Issue, Issues};
use crate::model::{Level, OperatorClass, ReportKind};
use crate::time::{Millis, HOUR, MINUTE};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

pub const GRADING: &str = "grading.toml";
pub const REPORTING: &str = "reporting.toml";
pub const RECIPIENTS: &str = "recipients.toml";

// ---------------------------------------------------------------- the figure vocabulary

/// A figure the engine measures on an incident. Indicators in config name one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    Duration(DurationFigure),
    Amount(AmountFigure),
    Category(CategoryFigure),
}

/// Durations: unions of intervals that keep growing while ongoing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DurationFigure {
    OutageWhole = 0,
    OutageMainFunction = 1,
    Unreachable = 2,
    DefacementHome = 3,
    DefacementOther = 4,
}

/// Counts and amounts: combined by max (revised totals) or sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AmountFigure {
    AffectedPopulation = 0,
    PopulationShareProvincial = 1,
    PopulationSharePrefectural = 2,
    PersonalInfoRecords = 3,
    EconomicLossCny = 4,
    DefacementReposts = 5,
    DefacementViews = 6,
}

/// Qualitative findings: sets of values seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CategoryFigure {
    /// `class:threat`, e.g. `important:serious`.
    DataLeak = 0,
    /// The designated scale of a defacement's spread, as a level key.
    DefacementDesignated = 1,
    /// An analyst's qualitative finding, as a level key.
    Finding = 2,
}

pub const DURATION_FIGURES: usize = 5;
pub const AMOUNT_FIGURES: usize = 7;
pub const CATEGORY_FIGURES: usize = 3;

impl Figure {
    /// This figure's bit in a set of figures (see `Figures::present`): durations, then amounts,
    /// then categories.
    pub fn bit(self) -> u32 {
        1 << match self {
            Figure::Duration(f) => f as usize,
            Figure::Amount(f) => DURATION_FIGURES + f as usize,
            Figure::Category(f) => DURATION_FIGURES + AMOUNT_FIGURES + f as usize,
        }
    }
}

impl FromStr for Figure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use AmountFigure as A;
        use CategoryFigure as C;
        use DurationFigure as D;
        Ok(match s {
            "outage.whole" => Figure::Duration(D::OutageWhole),
            "outage.main_function" => Figure::Duration(D::OutageMainFunction),
            "unreachable" => Figure::Duration(D::Unreachable),
            "defacement.home" => Figure::Duration(D::DefacementHome),
            "defacement.other" => Figure::Duration(D::DefacementOther),
            "affected_population" => Figure::Amount(A::AffectedPopulation),
            "affected_population_share.provincial" => Figure::Amount(A::PopulationShareProvincial),
            "affected_population_share.prefectural" => {
                Figure::Amount(A::PopulationSharePrefectural)
            }
            "personal_info_records" => Figure::Amount(A::PersonalInfoRecords),
            "economic_loss_cny" => Figure::Amount(A::EconomicLossCny),
            "defacement.reposts" => Figure::Amount(A::DefacementReposts),
            "defacement.views" => Figure::Amount(A::DefacementViews),
            "data_leak" => Figure::Category(C::DataLeak),
            "defacement.designated" => Figure::Category(C::DefacementDesignated),
            "finding" => Figure::Category(C::Finding),
            _ => {
                return Err(format!(
                    "unknown figure {s:?} (known: {})",
                    FIGURE_NAMES.join(", ")
                ))
            }
        })
    }
}

pub const FIGURE_NAMES: [&str; 15] = [
    "outage.whole",
    "outage.main_function",
    "unreachable",
    "defacement.home",
    "defacement.other",
    "affected_population",
    "affected_population_share.provincial",
    "affected_population_share.prefectural",
    "personal_info_records",
    "economic_loss_cny",
    "defacement.reposts",
    "defacement.views",
    "data_leak",
    "defacement.designated",
    "finding",
];

/// The unit an indicator's value and thresholds are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Hours,
    Minutes,
    Count,
    Share,
    Cny,
    Finding,
}

impl Unit {
    pub fn key(self) -> &'static str {
        match self {
            Unit::Hours => "hours",
            Unit::Minutes => "minutes",
            Unit::Count => "count",
            Unit::Share => "share",
            Unit::Cny => "cny",
            Unit::Finding => "finding",
        }
    }

    /// Milliseconds per unit for durations.
    pub fn millis(self) -> Option<i64> {
        match self {
            Unit::Hours => Some(HOUR),
            Unit::Minutes => Some(MINUTE),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- validated ruleset

/// Which assets a threshold row applies to: `kind` or `kind:qualifier` (level or size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetSelector {
    pub kind: String,
    pub qualifier: Option<String>,
}

impl AssetSelector {
    pub fn matches(&self, kind: Option<&str>, level: Option<&str>, size: Option<&str>) -> bool {
        if kind != Some(self.kind.as_str()) {
            return false;
        }
        match &self.qualifier {
            None => true,
            Some(q) => level == Some(q.as_str()) || size == Some(q.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Value ≥ threshold, in the indicator's unit ("以上" includes the number).
    AtLeast(f64),
    /// One of these category values was seen.
    AnyOf(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub level: Level,
    pub rule: Rule,
    /// `None`: applies to every incident.
    pub assets: Option<Vec<AssetSelector>>,
}

impl Threshold {
    pub fn applies(&self, kind: Option<&str>, level: Option<&str>, size: Option<&str>) -> bool {
        match &self.assets {
            None => true,
            Some(sel) => sel.iter().any(|s| s.matches(kind, level, size)),
        }
    }
}

/// How a duration figure's intervals (from one or several alerts) are measured.
///
/// The Guide's durations are continuous — 「持续…以上」, 「中断运行…以上」, 「不能访问…以上」 — so the
/// shipped guide measures the longest continuous episode: two separate 40-minute CII outages are
/// not a one-hour outage. Intervals that overlap, touch, or lie less than `flap_gap` apart are one
/// episode, measured from its first start to its last end (a system that flaps is down, as far as
/// its users are concerned, from the first failure to the last recovery, and missing a report costs
/// more than an extra one). `Sum` adds the separate episodes up (the length of the union): a
/// per-indicator option for a regime whose durations are cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    LongestEpisode { flap_gap: Millis },
    Sum,
}

/// The default flap gap: episodes closer than this are one interruption.
pub const DEFAULT_FLAP_GAP: Millis = Millis(15 * MINUTE);

#[derive(Clone, Debug, PartialEq)]
pub struct Indicator {
    pub id: String,
    pub figure: Figure,
    pub unit: Unit,
    /// How the figure is measured, for durations (ignored for amounts and categories).
    pub measure: Measure,
    /// Where the row comes from, for the explanation.
    pub source: String,
    /// Highest level first.
    pub thresholds: Vec<Threshold>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientEntry {
    pub id: String,
    pub name: String,
    pub role: String,
    pub province: Option<String>,
    pub sector: Option<String>,
    pub organ: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OnwardRule {
    pub from_level: Level,
    pub within: Millis,
    pub to_roles: Vec<String>,
    /// Roles the first recipient notifies (通报) alongside its onward report, with no deadline of
    /// their own (the "other" route: 同级有关部门).
    pub notify_roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub name: String,
    pub window: Millis,
    pub recipient_roles: Vec<String>,
    pub onward: Option<OnwardRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReportRule {
    /// `None`: the route's window.
    pub window: Option<Millis>,
    /// Lead times before the deadline, largest first.
    pub reminders: Vec<Millis>,
    /// When `report.overdue` repeats after the deadline (see [`OverdueSchedule`]).
    pub overdue: OverdueSchedule,
}

/// When an unfiled report's `report.overdue` repeats: step 1 at the deadline, then every
/// `every` until the first phase's `after`, then at that phase's pace, and so on; the last phase
/// repeats for as long as the report is outstanding. The shipped rule for the initial report is
/// every 30 min for the first 2 h (the Measures' windows are 1-4 h: a duty officer still acting
/// on it hears about it twice an hour), then every 4 h up to a day (someone is told each shift),
/// then daily (a report a day late needs a daily nudge, not 48 of them). A fixed 30 min repeat
/// without end was what let one record dated year 0001 make ~35 M events in one step (#18).
///
/// The schedule is pure arithmetic on the step number, so the live service and `replay` repeat
/// at the same instants, and a step's number (part of its `event_id`) says where it falls.
#[derive(Clone, Debug, PartialEq)]
pub struct OverdueSchedule {
    /// `(from, every)` by offset from the deadline, ascending `from`, the first from 0.
    phases: Vec<(Millis, Millis)>,
}

impl OverdueSchedule {
    /// Every `every` after the deadline, forever.
    pub fn every(every: Millis) -> Self {
        OverdueSchedule {
            phases: vec![(Millis(0), every)],
        }
    }

    /// `every` from the deadline, then each `(after, every)` from `after` past the deadline.
    /// Phases must start in ascending order and every interval be positive (validated by
    /// the ruleset loader); a phase that would start before the previous one is ignored.
    pub fn new(every: Millis, then: &[(Millis, Millis)]) -> Self {
        let mut phases = vec![(Millis(0), Millis(every.0.max(1)))];
        for &(after, every) in then {
            if phases.last().is_some_and(|(from, _)| after > *from) {
                phases.push((after, Millis(every.0.max(1))));
            }
        }
        OverdueSchedule { phases }
    }

    /// The first interval (the old `overdue_every`).
    pub fn first_every(&self) -> Millis {
        self.phases.first().map_or(Millis(1), |p| p.1)
    }

    /// How many steps fall in phase `i` (before the next one starts), or `None` for the last.
    fn steps_in(&self, i: usize) -> Option<u64> {
        let (from, every) = self.phases[i];
        let next = self.phases.get(i + 1)?.0;
        Some(((next.0 - from.0) as u64).div_ceil(every.0 as u64))
    }

    /// Offset from the deadline of step `n` (1-based: step 1 is at the deadline itself).
    pub fn offset(&self, n: u32) -> Millis {
        let mut k = u64::from(n.max(1) - 1);
        for i in 0..self.phases.len() {
            let (from, every) = self.phases[i];
            match self.steps_in(i) {
                Some(steps) if k >= steps => k -= steps,
                _ => {
                    let k = i64::try_from(k).unwrap_or(i64::MAX);
                    return Millis(from.0.saturating_add(k.saturating_mul(every.0)));
                }
            }
        }
        Millis(i64::MAX)
    }

    /// The latest step whose offset is at most `elapsed` past the deadline (0 before the
    /// deadline): where a catch-up that finds the deadline `elapsed` behind lands.
    pub fn step_at(&self, elapsed: Millis) -> u32 {
        if elapsed.0 < 0 {
            return 0;
        }
        let mut before: u64 = 0;
        for i in 0..self.phases.len() {
            let (from, every) = self.phases[i];
            match (self.steps_in(i), self.phases.get(i + 1)) {
                (Some(steps), Some((next, _))) if elapsed >= *next => before += steps,
                _ => {
                    let within = (elapsed.0 - from.0) as u64 / every.0 as u64 + 1;
                    return u32::try_from(before + within).unwrap_or(u32::MAX);
                }
            }
        }
        u32::try_from(before).unwrap_or(u32::MAX)
    }

    /// `30m until 2h, then 4h until 1d, then 1d`: the schedule in words, for docs and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (i, (_, every)) in self.phases.iter().enumerate() {
            match self.phases.get(i + 1) {
                Some((next, _)) => parts.push(format!("every {every} until {next}")),
                None => parts.push(format!("every {every}")),
            }
        }
        parts.join(", then ")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStart {
    /// The event time at which the incident first reached the floor (default).
    FloorReached,
    /// The first alert's time.
    FirstAlert,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ruleset {
    pub id: String,
    pub name: String,
    /// kind → allowed qualifiers (levels or sizes).
    pub asset_kinds: BTreeMap<String, Vec<String>>,
    pub indicators: Vec<Indicator>,
    pub floor: Level,
    pub clock_starts: ClockStart,
    pub upgrade_warning_lead: Millis,
    /// Duration episodes closer than this merge (`[durations] flap_gap` in grading.toml).
    pub flap_gap: Millis,
    /// Asset kinds that put an incident on the `cii` route whatever the operator's class.
    pub cii_asset_kinds: Vec<String>,
    /// Indexed by `OperatorClass as usize`: cii, central_state_organ, other.
    pub routes: [Route; 3],
    /// Indexed by `ReportKind as usize`: initial, follow_up, summary, supplement.
    pub reports: [ReportRule; 4],
    pub channels: Vec<(String, String)>,
    pub draft_titles: Vec<String>,
    pub recipients: Vec<RecipientEntry>,
    /// Escalation policies (`escalation.toml`), loaded beside the ruleset.
    pub escalation: super::escalation::EscalationPolicies,
}

impl Ruleset {
    pub fn route(&self, class: OperatorClass) -> &Route {
        &self.routes[class as usize]
    }

    pub fn report_rule(&self, kind: ReportKind) -> &ReportRule {
        &self.reports[kind as usize]
    }

    pub fn knows_province(&self, p: &str) -> bool {
        self.recipients
            .iter()
            .any(|r| r.province.as_deref() == Some(p))
    }

    /// Recipients for one role, matched on the operator's province, sector and organ. A directory
    /// entry whose field is `*` is a fallback used only when nothing matches exactly.
    pub fn resolve_role(
        &self,
        role: &str,
        province: Option<&str>,
        sector: Option<&str>,
        organ: Option<&str>,
    ) -> Vec<&RecipientEntry> {
        let fits = |want: &Option<String>, have: Option<&str>, wildcard: bool| match want.as_deref()
        {
            None => true,
            Some("*") => wildcard,
            Some(w) => have == Some(w),
        };
        let pick = |wildcard: bool| -> Vec<&RecipientEntry> {
            self.recipients
                .iter()
                .filter(|r| r.role == role)
                .filter(|r| {
                    fits(&r.province, province, wildcard)
                        && fits(&r.sector, sector, wildcard)
                        && fits(&r.organ, organ, wildcard)
                })
                .filter(|r| {
                    wildcard
                        == [&r.province, &r.sector, &r.organ]
                            .iter()
                            .any(|f| f.as_deref() == Some("*"))
                })
                .collect()
        };
        let exact = pick(false);
        if exact.is_empty() {
            pick(true)
        } else {
            exact
        }
    }
}

// ---------------------------------------------------------------- raw file shapes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradingFile {
    ruleset: RulesetHeader,
    asset_kinds: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    durations: Option<RawDurations>,
    indicator: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDurations {
    flap_gap: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesetHeader {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    id: String,
    figure: String,
    unit: String,
    source: String,
    /// Durations only: "longest_episode" (default) or "sum".
    episodes: Option<String>,
    threshold: Vec<RawThreshold>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    level: String,
    at_least: Option<f64>,
    any_of: Option<Vec<String>>,
    assets: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportingFile {
    floor: String,
    clock_starts: String,
    upgrade_warning_lead: String,
    #[serde(default)]
    cii_asset_kinds: Vec<String>,
    routes: BTreeMap<String, RawRoute>,
    reports: BTreeMap<String, RawReport>,
    channels: Vec<RawChannel>,
    draft: RawDraft,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    window: String,
    recipients: Vec<String>,
    onward: Option<RawOnward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnward {
    from_level: String,
    within: String,
    to: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    window: Option<String>,
    #[serde(default)]
    reminders: Vec<String>,
    overdue_every: String,
    /// Later phases of the overdue repeat: `[{ after = "2h", every = "4h" }, …]`.
    #[serde(default)]
    overdue_then: Vec<RawPhase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    after: String,
    every: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDraft {
    items: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientsFile {
    recipient: Vec<RawRecipient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient {
    id: String,
    name: String,
    role: String,
    province: Option<String>,
    sector: Option<String>,
    organ: Option<String>,
}

// ---------------------------------------------------------------- loading and validation

pub(crate) fn load(dir: &Path, issues: &mut Vec<Issue>) -> Option<Ruleset> {
    let grading: Option<GradingFile> = read_toml(dir, GRADING, issues);
    let reporting: Option<ReportingFile> = read_toml(dir, REPORTING, issues);
    let recipients: Option<RecipientsFile> = read_toml(dir, RECIPIENTS, issues);
    let (grading, reporting, recipients) = (grading?, reporting?, recipients?);
    let before = issues.len();
    let file = |name: &str| dir.join(name).display().to_string();
    let gfile = file(GRADING);
    let rfile = file(REPORTING);
    let dfile = file(RECIPIENTS);

    let recipients = validate_recipients(
        recipients,
        &mut Issues {
            file: &dfile,
            list: issues,
        },
    );
    let (indicators, flap_gap) = validate_grading(
        &grading,
        &mut Issues {
            file: &gfile,
            list: issues,
        },
    );
    let roles: BTreeSet<&str> = recipients.iter().map(|r| r.role.as_str()).collect();
    let reporting = validate_reporting(
        reporting,
        &grading.asset_kinds,
        &roles,
        &mut Issues {
            file: &rfile,
            list: issues,
        },
    );
    if issues.len() > before {
        return None;
    }
    let (floor, clock_starts, lead, cii_asset_kinds, routes, reports, channels, draft_titles) =
        reporting?;
    Some(Ruleset {
        id: grading.ruleset.id,
        name: grading.ruleset.name,
        asset_kinds: grading.asset_kinds,
        indicators,
        floor,
        clock_starts,
        upgrade_warning_lead: lead,
        flap_gap,
        cii_asset_kinds,
        routes,
        reports,
        channels,
        draft_titles,
        recipients,
        escalation: Default::default(),
    })
}

fn validate_recipients(file: RecipientsFile, issues: &mut Issues) -> Vec<RecipientEntry> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in file.recipient.into_iter().enumerate() {
        let key = format!("recipient[{i}]");
        if r.id.trim().is_empty() || r.name.trim().is_empty() || r.role.trim().is_empty() {
            issues.add(&key, "id, name and role must be non-empty");
        }
        if !seen.insert(r.id.clone()) {
            issues.add(
                format!("{key}.id"),
                format!("duplicate recipient id {:?}", r.id),
            );
        }
        out.push(RecipientEntry {
            id: r.id,
            name: r.name,
            role: r.role,
            province: r.province,
            sector: r.sector,
            organ: r.organ,
        });
    }
    out
}

fn validate_grading(g: &GradingFile, issues: &mut Issues) -> (Vec<Indicator>, Millis) {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    if g.ruleset.id.trim().is_empty() {
        issues.add("ruleset.id", "must be non-empty");
    }
    // Zero is allowed: then only overlapping or touching intervals merge.
    let flap_gap = match &g.durations {
        None => DEFAULT_FLAP_GAP,
        Some(d) => match Millis::parse_human(&d.flap_gap) {
            Ok(m) if m.0 >= 0 => m,
            Ok(_) => {
                issues.add("durations.flap_gap", "must not be negative");
                DEFAULT_FLAP_GAP
            }
            Err(e) => {
                issues.add("durations.flap_gap", e);
                DEFAULT_FLAP_GAP
            }
        },
    };
    for (i, raw) in g.indicator.iter().enumerate() {
        let key = format!("indicator[{i}] ({})", raw.id);
        if !ids.insert(raw.id.as_str()) {
            issues.add(format!("{key}.id"), "duplicate indicator id");
        }
        if raw.source.trim().is_empty() {
            issues.add(
                format!("{key}.source"),
                "cite the guide row this indicator encodes",
            );
        }
        let figure = match raw.figure.parse::<Figure>() {
            Ok(f) => Some(f),
            Err(e) => {
                issues.add(format!("{key}.figure"), e);
                None
            }
        };
        let unit = match (raw.unit.as_str(), figure) {
            ("hours", Some(Figure::Duration(_))) => Some(Unit::Hours),
            ("minutes", Some(Figure::Duration(_))) => Some(Unit::Minutes),
            ("count", Some(Figure::Amount(_))) => Some(Unit::Count),
            ("share", Some(Figure::Amount(_))) => Some(Unit::Share),
            ("cny", Some(Figure::Amount(_))) => Some(Unit::Cny),
            ("finding", Some(Figure::Category(_))) => Some(Unit::Finding),
            (u, Some(_)) => {
                issues.add(format!("{key}.unit"), format!("unit {u:?} does not fit figure {:?} (durations: hours|minutes; amounts: count|share|cny; categories: finding)", raw.figure));
                None
            }
            _ => None,
        };
        let measure = match (raw.episodes.as_deref(), figure) {
            (None | Some("longest_episode"), _) => Measure::LongestEpisode { flap_gap },
            (Some("sum"), Some(Figure::Duration(_))) => Measure::Sum,
            (Some("sum"), Some(_)) => {
                issues.add(
                    format!("{key}.episodes"),
                    "only a duration figure has episodes (amounts combine through correlation.combine)",
                );
                Measure::Sum
            }
            (Some(other), _) => {
                issues.add(
                    format!("{key}.episodes"),
                    format!("expected \"longest_episode\" or \"sum\", got {other:?}"),
                );
                Measure::LongestEpisode { flap_gap }
            }
        };
        let mut thresholds = Vec::new();
        let mut levels_seen = BTreeSet::new();
        for (j, t) in raw.threshold.iter().enumerate() {
            let tkey = format!("{key}.threshold[{j}]");
            let level = match t.level.parse::<Level>() {
                Ok(Level::General) => {
                    issues.add(
                        format!("{tkey}.level"),
                        "general is the residual level and has no thresholds",
                    );
                    continue;
                }
                Ok(l) => l,
                Err(e) => {
                    issues.add(format!("{tkey}.level"), e);
                    continue;
                }
            };
            if !levels_seen.insert(level) {
                issues.add(
                    format!("{tkey}.level"),
                    format!("second threshold for level {level}"),
                );
            }
            let rule = match (t.at_least, &t.any_of, figure) {
                (Some(v), None, Some(Figure::Duration(_) | Figure::Amount(_))) => {
                    if !(v.is_finite() && v > 0.0) {
                        issues.add(
                            format!("{tkey}.at_least"),
                            format!("must be a positive number, got {v}"),
                        );
                    }
                    if unit == Some(Unit::Share) && v > 1.0 {
                        issues.add(
                            format!("{tkey}.at_least"),
                            format!("a share is a fraction from 0 to 1, got {v}"),
                        );
                    }
                    Rule::AtLeast(v)
                }
                (None, Some(vals), Some(Figure::Category(_))) => {
                    if vals.is_empty() {
                        issues.add(format!("{tkey}.any_of"), "must list at least one value");
                    }
                    Rule::AnyOf(vals.clone())
                }
                (_, _, Some(Figure::Category(_))) => {
                    issues.add(
                        &tkey,
                        "a category figure needs `any_of` (and no `at_least`)",
                    );
                    continue;
                }
                (_, _, Some(_)) => {
                    issues.add(
                        &tkey,
                        "a duration or amount figure needs `at_least` (and no `any_of`)",
                    );
                    continue;
                }
                _ => continue,
            };
            let assets = t.assets.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(k, s)| {
                        let (kind, qual) = match s.split_once(':') {
                            Some((k, q)) => (k, Some(q.to_string())),
                            None => (s.as_str(), None),
                        };
                        match g.asset_kinds.get(kind) {
                            None => {
                                issues.add(format!("{tkey}.assets[{k}]"), format!("unknown asset kind {kind:?}"));
                                None
                            }
                            Some(quals) => {
                                if let Some(q) = &qual {
                                    if !quals.contains(q) {
                                        issues.add(format!("{tkey}.assets[{k}]"), format!("{q:?} is not a level or size of {kind:?} (allowed: {quals:?})"));
                                        return None;
                                    }
                                }
                                Some(AssetSelector { kind: kind.to_string(), qualifier: qual })
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            });
            thresholds.push(Threshold {
                level,
                rule,
                assets,
            });
        }
        thresholds.sort_by_key(|t| std::cmp::Reverse(t.level));
        // A higher level must not be easier to reach than a lower one on the same assets.
        for w in thresholds.windows(2) {
            if let (Rule::AtLeast(hi), Rule::AtLeast(lo)) = (&w[0].rule, &w[1].rule) {
                if hi < lo && w[0].assets == w[1].assets {
                    issues.add(
                        &key,
                        format!(
                            "threshold for {} ({hi}) is below the one for {} ({lo})",
                            w[0].level, w[1].level
                        ),
                    );
                }
            }
        }
        // Only when none are written: thresholds skipped for their own errors (or an unknown
        // figure) have already been reported.
        if raw.threshold.is_empty() {
            issues.add(&key, "has no thresholds");
        }
        if let (Some(figure), Some(unit)) = (figure, unit) {
            out.push(Indicator {
                id: raw.id.clone(),
                figure,
                unit,
                measure,
                source: raw.source.clone(),
                thresholds,
            });
        }
    }
    (out, flap_gap)
}

type ReportingParts = (
    Level,
    ClockStart,
    Millis,
    Vec<String>,
    [Route; 3],
    [ReportRule; 4],
    Vec<(String, String)>,
    Vec<String>,
);

fn validate_reporting(
    r: ReportingFile,
    kinds: &BTreeMap<String, Vec<String>>,
    roles: &BTreeSet<&str>,
    issues: &mut Issues,
) -> Option<ReportingParts> {
    let dur = |key: &str, s: &str, issues: &mut Issues| -> Millis {
        match Millis::parse_human(s) {
            Ok(d) if d.0 > 0 => d,
            Ok(_) => {
                issues.add(key, "must be longer than zero");
                Millis(1)
            }
            Err(e) => {
                issues.add(key, e);
                Millis(1)
            }
        }
    };
    let floor = match r.floor.parse::<Level>() {
        Ok(Level::General) => {
            issues.add(
                "floor",
                "the floor must be a graded level (general is residual)",
            );
            Level::RelativelyMajor
        }
        Ok(l) => l,
        Err(e) => {
            issues.add("floor", e);
            Level::RelativelyMajor
        }
    };
    let clock_starts = match r.clock_starts.as_str() {
        "floor_reached" => ClockStart::FloorReached,
        "first_alert" => ClockStart::FirstAlert,
        other => {
            issues.add(
                "clock_starts",
                format!("expected floor_reached or first_alert, got {other:?}"),
            );
            ClockStart::FloorReached
        }
    };
    let lead = dur("upgrade_warning_lead", &r.upgrade_warning_lead, issues);
    for (i, k) in r.cii_asset_kinds.iter().enumerate() {
        if !kinds.contains_key(k) {
            issues.add(
                format!("cii_asset_kinds[{i}]"),
                format!("unknown asset kind {k:?}"),
            );
        }
    }
    let check_roles = |key: String, list: &[String], issues: &mut Issues| {
        if list.is_empty() {
            issues.add(&key, "must name at least one recipient role");
        }
        for (i, role) in list.iter().enumerate() {
            if !roles.contains(role.as_str()) {
                issues.add(
                    format!("{key}[{i}]"),
                    format!("no recipient in recipients.toml has role {role:?}"),
                );
            }
        }
    };
    let mut routes = Vec::new();
    for class in ["cii", "central_state_organ", "other"] {
        let key = format!("routes.{class}");
        let Some(raw) = r.routes.get(class) else {
            issues.add(&key, "missing: every operator class needs a route");
            continue;
        };
        let window = dur(&format!("{key}.window"), &raw.window, issues);
        check_roles(format!("{key}.recipients"), &raw.recipients, issues);
        let onward = raw.onward.as_ref().map(|o| {
            let from_level = o.from_level.parse::<Level>().unwrap_or_else(|e| {
                issues.add(format!("{key}.onward.from_level"), e);
                Level::Major
            });
            check_roles(format!("{key}.onward.to"), &o.to, issues);
            if !o.notify.is_empty() {
                check_roles(format!("{key}.onward.notify"), &o.notify, issues);
            }
            OnwardRule {
                from_level,
                within: dur(&format!("{key}.onward.within"), &o.within, issues),
                to_roles: o.to.clone(),
                notify_roles: o.notify.clone(),
            }
        });
        routes.push(Route {
            name: class.to_string(),
            window,
            recipient_roles: raw.recipients.clone(),
            onward,
        });
    }
    for k in r.routes.keys() {
        if !["cii", "central_state_organ", "other"].contains(&k.as_str()) {
            issues.add(
                format!("routes.{k}"),
                "unknown operator class (expected cii, central_state_organ, other)",
            );
        }
    }
    let mut reports = Vec::new();
    for kind in ["initial", "follow_up", "summary", "supplement"] {
        let key = format!("reports.{kind}");
        // 补报 came later than the other three: a ruleset without its own rules uses the initial
        // report's reminders and overdue repeats, and the route's window.
        if kind == "supplement" && !r.reports.contains_key(kind) {
            if let Some(initial) = reports.first().cloned() {
                reports.push(ReportRule {
                    window: None,
                    ..initial
                });
            }
            continue;
        }
        let Some(raw) = r.reports.get(kind) else {
            issues.add(
                &key,
                "missing: initial, follow_up and summary each need rules",
            );
            continue;
        };
        let window = raw
            .window
            .as_ref()
            .map(|w| dur(&format!("{key}.window"), w, issues));
        if kind == "summary" && window.is_none() {
            issues.add(
                format!("{key}.window"),
                "the summary report needs its own window (e.g. \"30d\")",
            );
        }
        let mut reminders: Vec<Millis> = raw
            .reminders
            .iter()
            .enumerate()
            .map(|(i, s)| dur(&format!("{key}.reminders[{i}]"), s, issues))
            .collect();
        reminders.sort_by(|a, b| b.cmp(a));
        reminders.dedup();
        reports.push(ReportRule {
            window,
            reminders,
            overdue: {
                let every = dur(&format!("{key}.overdue_every"), &raw.overdue_every, issues);
                let mut then = Vec::new();
                let mut last = Millis(0);
                for (i, ph) in raw.overdue_then.iter().enumerate() {
                    let k = format!("{key}.overdue_then[{i}]");
                    let after = dur(&format!("{k}.after"), &ph.after, issues);
                    let every = dur(&format!("{k}.every"), &ph.every, issues);
                    if after <= last {
                        issues.add(
                            format!("{k}.after"),
                            format!("must be later than the phase before it ({last})"),
                        );
                    }
                    last = last.max(after);
                    then.push((after, every));
                }
                OverdueSchedule::new(every, &then)
            },
        });
    }
    for k in r.reports.keys() {
        if !["initial", "follow_up", "summary", "supplement"].contains(&k.as_str()) {
            issues.add(
                format!("reports.{k}"),
                "unknown report kind (expected initial, follow_up, summary, supplement)",
            );
        }
    }
    if r.draft.items.is_empty() {
        issues.add(
            "draft.items",
            "list the report's items (Measures art. 7 has eight)",
        );
    }
    let routes: [Route; 3] = routes.try_into().ok()?;
    let reports: [ReportRule; 4] = reports.try_into().ok()?;
    let channels = r.channels.into_iter().map(|c| (c.kind, c.value)).collect();
    Some((
        floor,
        clock_starts,
        lead,
        r.cii_asset_kinds,
        routes,
        reports,
        channels,
        r.draft.items,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY, HOUR, MINUTE};
    use proptest::prelude::*;

    fn shipped() -> OverdueSchedule {
        OverdueSchedule::new(
            Millis(30 * MINUTE),
            &[
                (Millis(2 * HOUR), Millis(4 * HOUR)),
                (Millis(DAY), Millis(DAY)),
            ],
        )
    }

    #[test]
    fn the_shipped_schedule_backs_off_to_daily() {
        let s = shipped();
        let offsets: Vec<String> = (1..=14).map(|n| s.offset(n).to_string()).collect();
        assert_eq!(
            offsets,
            [
                "0s", "30m", "1h", "1h30m", "2h", "6h", "10h", "14h", "18h", "22h", "1d", "2d",
                "3d", "4d"
            ]
        );
        assert_eq!(
            s.describe(),
            "every 30m until 2h, then every 4h until 1d, then every 1d"
        );
        // Ten days late: 10 steps in the first day, then one a day.
        assert_eq!(s.step_at(Millis(10 * DAY)), 20);
        assert_eq!(s.step_at(Millis(-1)), 0);
        assert_eq!(
            OverdueSchedule::every(Millis(30 * MINUTE))
                .offset(3)
                .to_string(),
            "1h"
        );
    }

    proptest! {
        /// `step_at` is the inverse of `offset`: the step due at an offset is that step, and
        /// just before it the one before.
        #[test]
        fn step_at_inverts_offset(n in 1u32..5000, a in 1i64..300, b in 1i64..300, c in 1i64..3000) {
            let s = OverdueSchedule::new(
                Millis(a * MINUTE),
                &[(Millis(a * MINUTE * 3), Millis(b * MINUTE)), (Millis(a * MINUTE * 3 + c * MINUTE), Millis(c * MINUTE))],
            );
            let at = s.offset(n);
            prop_assert_eq!(s.step_at(at), n);
            prop_assert_eq!(s.step_at(Millis(at.0 - 1)), n - 1);
            prop_assert!(s.offset(n + 1) > at);
        }
    }
}
