//! Correlation: which incident an alert joins, and how an incident's figures combine over its
//! alerts (max or sum for amounts, the longest continuous episode — or the sum of episodes — for
//! durations, set union for findings).

use crate::model::alert::{Alert, OutageScope, Page, Span};
use crate::settings::ruleset::{
    AmountFigure, CategoryFigure, DurationFigure, Measure, AMOUNT_FIGURES, DURATION_FIGURES,
};
use crate::time::{Millis, Timestamp};
use serde::{Deserialize, Serialize};

/// The resolved operator of an incident. Incidents share one copy per distinct operator
/// (`Engine` interns them): a million incidents of a few hundred operators hold a few hundred.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OperatorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub class: crate::model::OperatorClass,
    /// No class was given anywhere (no registry entry with one, none inline): `other` is assumed,
    /// and a row that turns on the operator being CII says so (`unassessed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub class_unknown: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organ: Option<String>,
}

/// An asset's fields as resolved from an alert and the registry, before they are packed into
/// the [`AssetInfo`] an incident holds. Also the changelog's shape of an asset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetParts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Box<str>>,
}

/// The resolved asset of an incident, shared like `OperatorInfo`, and packed: its fields in one
/// string with where each ends, so an asset is two allocations (56 + the text) instead of six
/// (96 + one per field). Assets can be one per incident (hosts, as ECS's `host.name` gives), and
/// at a million incidents this is what keeps each incident within 1 KiB.
#[derive(Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "AssetParts")]
pub struct AssetInfo {
    /// The present fields, concatenated in the order of [`AssetParts`].
    text: Box<str>,
    /// Where each field ends in `text` (an absent field is empty).
    ends: [u32; 5],
    /// Bit `i` set: field `i` is present (an empty string is not an absent field).
    present: u8,
}

impl From<AssetParts> for AssetInfo {
    fn from(p: AssetParts) -> Self {
        let fields = [p.id, p.name, p.kind, p.level, p.size];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0u32; 5];
        let mut present = 0u8;
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f {
                text.push_str(f);
                present |= 1 << i;
            }
            // Assets come from records of at most `input.max_record_bytes` (a `usize`, but a
            // Kafka record is far below 4 GiB). Past u32 a field would read cut or empty, never
            // panic: `field` slices with `get`.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        AssetInfo {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }
}

impl AssetInfo {
    fn field(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start as usize..self.ends[i] as usize)
    }

    pub fn id(&self) -> Option<&str> {
        self.field(0)
    }
    pub fn name(&self) -> Option<&str> {
        self.field(1)
    }
    pub fn kind(&self) -> Option<&str> {
        self.field(2)
    }
    /// The administrative level (of a portal or news site).
    pub fn level(&self) -> Option<&str> {
        self.field(3)
    }
    /// The size (of a network platform).
    pub fn size(&self) -> Option<&str> {
        self.field(4)
    }

    /// The fields, unpacked (to merge what a later alert adds).
    pub fn parts(&self) -> AssetParts {
        let owned = |i| self.field(i).map(Box::from);
        AssetParts {
            id: owned(0),
            name: owned(1),
            kind: owned(2),
            level: owned(3),
            size: owned(4),
        }
    }

    /// The fields as the changelog writes them (the same text as an [`AssetParts`]).
    fn view(&self) -> AssetView<'_> {
        AssetView {
            id: self.id(),
            name: self.name(),
            kind: self.kind(),
            level: self.level(),
            size: self.size(),
        }
    }
}

/// [`AssetParts`] borrowed, to serialize an [`AssetInfo`] without unpacking it.
#[derive(Debug, Serialize)]
struct AssetView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<&'a str>,
}

impl Serialize for AssetInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl std::fmt::Debug for AssetInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

/// The correlation key of an alert: its `incident_key`, else the `group_by` fields. The two
/// namespaces are kept apart so an explicit key never collides with a derived one.
pub fn correlation_key(
    alert: &Alert,
    op: &OperatorInfo,
    asset: &AssetParts,
    group_by: &[String],
) -> String {
    if let Some(k) = alert.incident_key.as_deref().filter(|k| !k.is_empty()) {
        return format!("k:{k}");
    }
    let mut key = String::from("g");
    for f in group_by {
        key.push('\u{1f}');
        let v = match f.as_str() {
            "operator.id" => op.id.as_deref(),
            "asset.id" => asset.id.as_deref(),
            "category" => alert.category.as_deref(),
            "source" => alert.source.as_deref(),
            "title" => alert.title.as_deref(),
            "operator.province" => op.province.as_deref(),
            "asset.kind" => asset.kind.as_deref(),
            _ => None,
        };
        key.push_str(v.unwrap_or(""));
    }
    key
}

/// One interval, identified by its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub since: Timestamp,
    /// `None`: still going on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Event time of the alert that last set `until` (`None` in older snapshots): a revision
    /// older than this one is stale and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised: Option<Timestamp>,
}

/// An incident's figures, stored sparsely: most incidents have one or two of the fifteen, and a
/// million incidents must fit in memory. Each list is ordered by figure (then start).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    intervals: Vec<(u8, Interval)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amounts: Vec<(u8, f64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    categories: Vec<(u8, String)>,
}

/// Inserts at `pos` without the usual doubling (see `engine::push_exact`).
fn insert_exact<T>(v: &mut Vec<T>, pos: usize, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.insert(pos, x);
}

impl Figures {
    /// Drops spare capacity: decoding a changelog record grows each list by doubling (one
    /// figure takes room for four), which the engine's own inserts avoid (`insert_exact`).
    pub fn shrink_to_fit(&mut self) {
        self.intervals.shrink_to_fit();
        self.amounts.shrink_to_fit();
        self.categories.shrink_to_fit();
    }

    /// Adds one alert's figures. `sum[i]` says whether amount `i` adds up instead of taking the max.
    pub fn apply(&mut self, alert: &Alert, sum: &[bool; AMOUNT_FIGURES]) {
        let imp = &alert.impact;
        let at = alert.timestamp;
        if let Some(o) = &imp.outage {
            let fig = match o.scope {
                OutageScope::Whole => DurationFigure::OutageWhole,
                OutageScope::MainFunction => DurationFigure::OutageMainFunction,
            };
            self.upsert(fig, &o.span, at);
        }
        if let Some(s) = &imp.unreachable {
            self.upsert(DurationFigure::Unreachable, s, at);
        }
        if let Some(d) = &imp.defacement {
            let fig = match d.page {
                Page::Home => DurationFigure::DefacementHome,
                Page::Other => DurationFigure::DefacementOther,
            };
            self.upsert(fig, &d.span, at);
            self.amount(
                AmountFigure::DefacementReposts,
                d.reposts.map(|v| v as f64),
                sum,
            );
            self.amount(
                AmountFigure::DefacementViews,
                d.views.map(|v| v as f64),
                sum,
            );
            if let Some(l) = d.designated {
                self.category(CategoryFigure::DefacementDesignated, l.key().to_string());
            }
        }
        self.amount(
            AmountFigure::AffectedPopulation,
            imp.affected_population.map(|v| v as f64),
            sum,
        );
        if let Some(s) = &imp.affected_population_share {
            self.amount(AmountFigure::PopulationShareProvincial, s.provincial, sum);
            self.amount(AmountFigure::PopulationSharePrefectural, s.prefectural, sum);
        }
        self.amount(
            AmountFigure::PersonalInfoRecords,
            imp.personal_info_records.map(|v| v as f64),
            sum,
        );
        self.amount(AmountFigure::EconomicLossCny, imp.economic_loss_cny, sum);
        if let Some(d) = &imp.data_leak {
            self.category(
                CategoryFigure::DataLeak,
                format!("{}:{}", d.class, d.threat),
            );
        }
        if let Some(f) = &imp.finding {
            self.category(CategoryFigure::Finding, f.level.key().to_string());
        }
    }

    /// Folds another incident's figures in (for `merge`).
    pub fn absorb(&mut self, other: &Figures, sum: &[bool; AMOUNT_FIGURES]) {
        for (fig, iv) in &other.intervals {
            let range = self.range(*fig);
            if !self.intervals[range.clone()]
                .iter()
                .any(|(_, x)| x.since == iv.since)
            {
                let pos = range.start
                    + self.intervals[range].partition_point(|(_, x)| x.since < iv.since);
                insert_exact(&mut self.intervals, pos, (*fig, *iv));
            }
        }
        for (fig, v) in &other.amounts {
            self.combine(*fig, *v, sum[*fig as usize]);
        }
        for (fig, v) in &other.categories {
            self.category_index(*fig, v.clone());
        }
    }

    /// The positions of one duration figure's intervals.
    fn range(&self, fig: u8) -> std::ops::Range<usize> {
        let start = self.intervals.partition_point(|(f, _)| *f < fig);
        let end = self.intervals.partition_point(|(f, _)| *f <= fig);
        start..end
    }

    /// One duration figure's intervals, ordered by start.
    pub fn intervals(&self, fig: DurationFigure) -> impl Iterator<Item = &Interval> {
        self.intervals[self.range(fig as u8)]
            .iter()
            .map(|(_, iv)| iv)
    }

    /// Replaces a duration figure's intervals (tests and tools).
    pub fn set_intervals(&mut self, fig: DurationFigure, list: Vec<Interval>) {
        let range = self.range(fig as u8);
        let mut list = list;
        list.sort_by_key(|iv| iv.since);
        self.intervals
            .splice(range, list.into_iter().map(|iv| (fig as u8, iv)));
    }

    /// Sets an amount (tests and tools).
    pub fn set_amount(&mut self, fig: AmountFigure, v: f64) {
        self.amounts.retain(|(f, _)| *f != fig as u8);
        self.combine(fig as u8, v, false);
    }

    /// Replaces a category figure's values (tests and tools).
    pub fn set_categories(&mut self, fig: CategoryFigure, values: Vec<String>) {
        self.categories.retain(|(f, _)| *f != fig as u8);
        for v in values {
            self.category(fig, v);
        }
    }

    /// The figures this incident has any value for, as a set of
    /// [`Figure::bit`](crate::settings::ruleset::Figure::bit)s: grading looks only at indicators
    /// whose figure is here (most incidents have one or two of fifteen).
    pub fn present(&self) -> u32 {
        let mut bits = 0;
        for (f, _) in &self.intervals {
            bits |= 1 << *f;
        }
        for (f, _) in &self.amounts {
            bits |= 1 << (DURATION_FIGURES + usize::from(*f));
        }
        for (f, _) in &self.categories {
            bits |= 1 << (DURATION_FIGURES + AMOUNT_FIGURES + usize::from(*f));
        }
        bits
    }

    pub fn amount_of(&self, fig: AmountFigure) -> Option<f64> {
        self.amounts
            .iter()
            .find(|(f, _)| *f == fig as u8)
            .map(|(_, v)| *v)
    }

    pub fn categories_of(&self, fig: CategoryFigure) -> impl Iterator<Item = &str> {
        self.categories
            .iter()
            .filter(move |(f, _)| *f == fig as u8)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_intervals(&self, fig: DurationFigure) -> bool {
        !self.range(fig as u8).is_empty()
    }

    /// An interval is identified by `since` (default: the alert's time); a later alert with the
    /// same start revises its end. "Later" is event time, not arrival: a delayed "still down"
    /// must not reopen an outage that a newer alert already closed.
    fn upsert(&mut self, fig: DurationFigure, span: &Span, at: Timestamp) {
        let since = span.since.unwrap_or(at);
        let until = span.until.map(|u| u.max(since));
        let range = self.range(fig as u8);
        if let Some((_, iv)) = self.intervals[range.clone()]
            .iter_mut()
            .find(|(_, iv)| iv.since == since)
        {
            if iv.revised.is_none_or(|r| at >= r) {
                iv.until = until;
                iv.revised = Some(at);
            }
            return;
        }
        let pos = range.start + self.intervals[range].partition_point(|(_, iv)| iv.since < since);
        insert_exact(
            &mut self.intervals,
            pos,
            (
                fig as u8,
                Interval {
                    since,
                    until,
                    revised: Some(at),
                },
            ),
        );
    }

    fn amount(&mut self, fig: AmountFigure, v: Option<f64>, sum: &[bool; AMOUNT_FIGURES]) {
        if let Some(v) = v {
            self.combine(fig as u8, v, sum[fig as usize]);
        }
    }

    fn combine(&mut self, fig: u8, v: f64, sum: bool) {
        match self.amounts.iter_mut().find(|(f, _)| *f == fig) {
            Some((_, cur)) => *cur = if sum { *cur + v } else { cur.max(v) },
            None => {
                let pos = self.amounts.partition_point(|(f, _)| *f < fig);
                insert_exact(&mut self.amounts, pos, (fig, v));
            }
        }
    }

    fn category(&mut self, fig: CategoryFigure, v: String) {
        self.category_index(fig as u8, v);
    }

    fn category_index(&mut self, fig: u8, v: String) {
        let key = (fig, v);
        if let Err(pos) = self.categories.binary_search(&key) {
            insert_exact(&mut self.categories, pos, key);
        }
    }

    /// Ends every ongoing interval at `at` (the incident was resolved).
    pub fn close_ongoing(&mut self, at: Timestamp) {
        for (_, iv) in self.intervals.iter_mut() {
            if iv.until.is_none() {
                iv.until = Some(at.max(iv.since));
            }
        }
    }

    pub fn any_ongoing(&self) -> bool {
        self.intervals.iter().any(|(_, iv)| iv.until.is_none())
    }

    pub fn is_ongoing(&self, fig: DurationFigure) -> bool {
        self.intervals(fig).any(|iv| iv.until.is_none())
    }

    /// A duration figure measured up to `at` (see [`Measure`]): the longest continuous episode,
    /// or the length of the union of the intervals.
    pub fn duration_at(&self, fig: DurationFigure, at: Timestamp, measure: Measure) -> Millis {
        match measure {
            Measure::Sum => self.union_at(fig, at),
            Measure::LongestEpisode { flap_gap } => {
                let mut longest = 0i64;
                for (start, end) in self.episodes(fig, flap_gap, Some(at)) {
                    longest = longest.max(end - start);
                }
                Millis(longest)
            }
        }
    }

    /// The instant at which the measure reaches `length` if every ongoing interval goes on
    /// (None if it never does): where a growing duration crosses a threshold.
    pub fn reaches_at(
        &self,
        fig: DurationFigure,
        length: Millis,
        measure: Measure,
    ) -> Option<Timestamp> {
        match measure {
            Measure::Sum => self.union_reaches_at(fig, length),
            Measure::LongestEpisode { flap_gap } => self
                .episodes(fig, flap_gap, None)
                .filter(|(start, end)| end.saturating_sub(*start) >= length.0)
                .map(|(start, _)| Timestamp(start.saturating_add(length.0.max(0))))
                .min(),
        }
    }

    /// The episodes of a duration figure, as (start, end) in milliseconds, in order: intervals
    /// that overlap, touch, or lie less than `flap_gap` apart are one episode, from its first
    /// start to its last end. With `upto`, everything is cut at that instant (an ongoing interval
    /// ends there; one that starts at or after it has not happened yet); without, an ongoing
    /// interval never ends (`i64::MAX`).
    fn episodes(
        &self,
        fig: DurationFigure,
        flap_gap: Millis,
        upto: Option<Timestamp>,
    ) -> impl Iterator<Item = (i64, i64)> + '_ {
        let limit = upto.map_or(i64::MAX, |t| t.0);
        let mut ivs = self
            .intervals(fig)
            .filter(move |iv| iv.since.0 < limit)
            .map(move |iv| {
                let end = iv.until.map_or(limit, |u| u.0.min(limit));
                (iv.since.0, end.max(iv.since.0))
            })
            .peekable();
        std::iter::from_fn(move || {
            let (start, mut end) = ivs.next()?;
            // Sorted by start: the next interval joins while it starts before the episode's end
            // plus the gap (strictly less: a gap of exactly `flap_gap` separates).
            while let Some(&(s, e)) = ivs.peek() {
                if s <= end || s - end < flap_gap.0 {
                    end = end.max(e);
                    ivs.next();
                } else {
                    break;
                }
            }
            Some((start, end))
        })
    }

    /// Length of the union of a duration figure's intervals, measured up to `at` (the `sum`
    /// measure: separate episodes added up).
    fn union_at(&self, fig: DurationFigure, at: Timestamp) -> Millis {
        let mut total = 0i64;
        let mut cursor = i64::MIN;
        for iv in self.intervals(fig) {
            let start = iv.since.0.max(cursor);
            let end = iv.until.map_or(at.0, |u| u.0.min(at.0));
            if end > start {
                total += end - start;
            }
            cursor = cursor.max(end);
        }
        Millis(total)
    }

    /// The instant at which the union's length reaches `length` (None if it never does).
    fn union_reaches_at(&self, fig: DurationFigure, length: Millis) -> Option<Timestamp> {
        let mut acc = 0i64;
        let mut cursor = i64::MIN;
        for iv in self.intervals(fig) {
            let start = iv.since.0.max(cursor);
            match iv.until {
                None => return Some(Timestamp(start + (length.0 - acc).max(0))),
                Some(u) => {
                    let end = u.0;
                    if end > start {
                        if acc + (end - start) >= length.0 {
                            return Some(Timestamp(start + (length.0 - acc).max(0)));
                        }
                        acc += end - start;
                    }
                    cursor = cursor.max(end);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR, MINUTE};

    /// Every field the table lets `correlation.group_by` name takes part in the key: two alerts
    /// that differ only in it fall in different incidents, and alike ones in the same.
    #[test]
    fn every_group_by_field_of_the_table_separates_incidents() {
        use crate::model::alert::{group_by_fields, record_of, FIELDS};
        let registry = crate::settings::registry::Registry::default();
        let fields: Vec<_> = FIELDS.iter().filter(|f| f.path != "incident_key").collect();
        let base = record_of(fields.iter().copied());
        let key = |json: &serde_json::Value, by: &str| {
            let alert: Alert = serde_json::from_value(json.clone()).expect("an alert");
            let (op, asset) = super::super::alerts::resolve_parties(&registry, &alert);
            correlation_key(&alert, &op, &asset, &[by.to_string()])
        };
        let mut n = 0;
        for by in group_by_fields() {
            let mut other = base.clone();
            let mut at = &mut other;
            for p in by.split('.') {
                at = &mut at[p];
            }
            *at = serde_json::Value::String("something else".into());
            assert_eq!(key(&base, by), key(&base.clone(), by), "{by}");
            assert_ne!(
                key(&base, by),
                key(&other, by),
                "{by} is not part of the key"
            );
            n += 1;
        }
        assert!(n >= 7, "{n} group_by fields");
    }

    fn t(h: i64) -> Timestamp {
        Timestamp(h * HOUR)
    }

    fn figs(ivs: &[(i64, Option<i64>)]) -> Figures {
        let mut f = Figures::default();
        f.set_intervals(
            DurationFigure::OutageWhole,
            ivs.iter()
                .map(|&(s, u)| Interval {
                    since: t(s),
                    until: u.map(t),
                    revised: None,
                })
                .collect(),
        );
        f
    }

    const W: DurationFigure = DurationFigure::OutageWhole;
    const LONGEST: Measure = Measure::LongestEpisode {
        flap_gap: Millis(15 * MINUTE),
    };

    fn m(minutes: i64) -> Timestamp {
        Timestamp(minutes * MINUTE)
    }

    fn figs_min(ivs: &[(i64, Option<i64>)]) -> Figures {
        let mut f = Figures::default();
        f.set_intervals(
            W,
            ivs.iter()
                .map(|&(s, u)| Interval {
                    since: m(s),
                    until: u.map(m),
                    revised: None,
                })
                .collect(),
        );
        f
    }

    #[test]
    fn sum_measures_the_union_of_overlapping_intervals_once() {
        let f = figs(&[(0, Some(2)), (1, Some(3)), (5, Some(6))]);
        assert_eq!(f.duration_at(W, t(10), Measure::Sum), Millis(4 * HOUR));
        assert_eq!(f.duration_at(W, t(2), Measure::Sum), Millis(2 * HOUR));
    }

    #[test]
    fn sum_grows_with_an_ongoing_interval_and_its_crossing_is_exact() {
        let f = figs(&[(0, Some(1)), (3, None)]);
        assert_eq!(f.duration_at(W, t(5), Measure::Sum), Millis(3 * HOUR));
        assert_eq!(f.reaches_at(W, Millis(3 * HOUR), Measure::Sum), Some(t(5)));
        assert_eq!(
            f.reaches_at(W, Millis(HOUR / 2), Measure::Sum),
            Some(Timestamp(HOUR / 2))
        );
        let closed = figs(&[(0, Some(1))]);
        assert_eq!(closed.reaches_at(W, Millis(2 * HOUR), Measure::Sum), None);
    }

    /// 「中断运行…以上」 is continuous: overlapping intervals from several alerts are one episode;
    /// episodes two hours apart are not added up.
    #[test]
    fn a_continuous_duration_is_the_longest_episode_not_the_sum() {
        // Two 40-minute outages two hours apart: 40 minutes, not 80.
        let f = figs_min(&[(0, Some(40)), (160, Some(200))]);
        assert_eq!(f.duration_at(W, m(300), LONGEST), Millis(40 * MINUTE));
        assert_eq!(f.duration_at(W, m(300), Measure::Sum), Millis(80 * MINUTE));
        // Overlapping and touching intervals (several alerts about one outage) are one episode.
        let f = figs_min(&[(0, Some(30)), (20, Some(50)), (50, Some(70))]);
        assert_eq!(f.duration_at(W, m(100), LONGEST), Millis(70 * MINUTE));
    }

    /// A system that flaps is one interruption: episodes less than the flap gap apart merge,
    /// gap included; exactly the gap apart they do not.
    #[test]
    fn episodes_closer_than_the_flap_gap_merge_and_at_the_gap_they_do_not() {
        let under = figs_min(&[(0, Some(30)), (44, Some(70))]);
        assert_eq!(under.duration_at(W, m(100), LONGEST), Millis(70 * MINUTE));
        let at_gap = figs_min(&[(0, Some(30)), (45, Some(70))]);
        assert_eq!(at_gap.duration_at(W, m(100), LONGEST), Millis(30 * MINUTE));
        // 14m59.999s apart: still one.
        let mut f = figs_min(&[(0, Some(30))]);
        f.set_intervals(
            W,
            vec![
                Interval {
                    since: m(0),
                    until: Some(m(30)),
                    revised: None,
                },
                Interval {
                    since: Timestamp(45 * MINUTE - 1),
                    until: Some(m(70)),
                    revised: None,
                },
            ],
        );
        assert_eq!(f.duration_at(W, m(100), LONGEST), Millis(70 * MINUTE));
        // A zero gap merges only what overlaps or touches.
        let zero = Measure::LongestEpisode {
            flap_gap: Millis(0),
        };
        let touching = figs_min(&[(0, Some(30)), (30, Some(40)), (41, Some(42))]);
        assert_eq!(touching.duration_at(W, m(100), zero), Millis(40 * MINUTE));
    }

    /// The regrade instant follows the same measure: an ongoing episode crosses a threshold at its
    /// (merged) start plus the threshold, never at the earlier episodes' sum.
    #[test]
    fn an_ongoing_episode_crosses_at_its_own_start_plus_the_threshold() {
        // 40 minutes down, then down again two hours later and still down.
        let f = figs_min(&[(0, Some(40)), (160, None)]);
        assert_eq!(f.duration_at(W, m(190), LONGEST), Millis(40 * MINUTE));
        assert_eq!(f.reaches_at(W, Millis(60 * MINUTE), LONGEST), Some(m(220)));
        assert_eq!(
            f.reaches_at(W, Millis(60 * MINUTE), Measure::Sum),
            Some(m(180))
        );
        // Already reached by a closed episode: that instant (in the past).
        assert_eq!(f.reaches_at(W, Millis(30 * MINUTE), LONGEST), Some(m(30)));
        // Flapping back within the gap: the episode began with the first outage.
        let flap = figs_min(&[(0, Some(40)), (50, None)]);
        assert_eq!(flap.duration_at(W, m(55), LONGEST), Millis(55 * MINUTE));
        assert_eq!(
            flap.reaches_at(W, Millis(60 * MINUTE), LONGEST),
            Some(m(60))
        );
        // Closed and short: never.
        let closed = figs_min(&[(0, Some(40)), (160, Some(200))]);
        assert_eq!(closed.reaches_at(W, Millis(60 * MINUTE), LONGEST), None);
        // Measured at an instant, an interval that has not begun counts nothing.
        assert_eq!(f.duration_at(W, m(100), LONGEST), Millis(40 * MINUTE));
    }

    /// Any mix of present, absent and empty fields packs and unpacks to itself, and the
    /// changelog text is the plain struct's, so state written before packing restores.
    #[test]
    fn a_packed_asset_keeps_every_field_and_the_changelog_shape() {
        use proptest::prelude::*;
        let field = proptest::option::of(".{0,12}");
        proptest!(|(f in proptest::array::uniform5(field))| {
            let parts = AssetParts {
                id: f[0].as_deref().map(Box::from),
                name: f[1].as_deref().map(Box::from),
                kind: f[2].as_deref().map(Box::from),
                level: f[3].as_deref().map(Box::from),
                size: f[4].as_deref().map(Box::from),
            };
            let packed = AssetInfo::from(parts.clone());
            prop_assert_eq!(packed.parts(), parts.clone());
            prop_assert_eq!(packed.id(), f[0].as_deref());
            prop_assert_eq!(packed.size(), f[4].as_deref());
            let json = serde_json::to_string(&packed).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&json, &serde_json::to_string(&parts).map_err(|e| TestCaseError::fail(e.to_string()))?);
            let back: AssetInfo = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, packed);
        });
    }
}
