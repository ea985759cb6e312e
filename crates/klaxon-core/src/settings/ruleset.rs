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

mod load;
pub(crate) use load::load;

#[cfg(test)]
mod tests;
