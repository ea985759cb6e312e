//! Escalation events (docs/spec.md §6): what Klaxon tells on-call engineers and ticketing systems.
//!
//! Field order here is the order on the wire. Optional fields are omitted when empty so that each
//! event type carries only what it is about.

use super::level::{Level, OperatorClass, ReportKind};
use crate::time::Timestamp;
use serde::Serialize;
use strum::{EnumString, IntoStaticStr, VariantArray};

/// What an escalation event is about. Each name (`incident.opened`, …) is spelled once, in the
/// strum attribute; the wire form, metrics labels and settings all read it through [`EventType::key`].
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    IntoStaticStr,
    EnumString,
    VariantArray,
)]
pub enum EventType {
    #[strum(serialize = "incident.opened")]
    IncidentOpened,
    #[strum(serialize = "incident.graded")]
    IncidentGraded,
    #[strum(serialize = "grade.upgrade_warning")]
    UpgradeWarning,
    #[strum(serialize = "report.due")]
    ReportDue,
    #[strum(serialize = "report.reminder")]
    ReportReminder,
    #[strum(serialize = "report.overdue")]
    ReportOverdue,
    #[strum(serialize = "report.filed")]
    ReportFiled,
    #[strum(serialize = "incident.acknowledged")]
    IncidentAcknowledged,
    #[strum(serialize = "incident.resolved")]
    IncidentResolved,
    #[strum(serialize = "incident.dismissed")]
    IncidentDismissed,
    #[strum(serialize = "incident.merged")]
    IncidentMerged,
    #[strum(serialize = "command.rejected")]
    CommandRejected,
    #[strum(serialize = "escalation.page")]
    EscalationPage,
}

impl EventType {
    /// Every type, in declaration order.
    pub const ALL: &'static [EventType] = <Self as strum::VariantArray>::VARIANTS;

    pub fn key(self) -> &'static str {
        self.into()
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// One escalation event.
#[derive(Clone, Debug, Serialize)]
pub struct Escalation {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub incident_id: String,
    pub at: String,
    /// `at` as an instant, for ordering and metrics; not on the wire.
    #[serde(skip)]
    pub at_ms: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level_zh: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_level: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_kind: Option<ReportKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_remaining: Option<i64>,
    /// Reminder lead (`30m`) or overdue repeat number, for reminder/overdue events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue_count: Option<u32>,
    /// `escalation.page`: the policy and the step (1-based, in the policy's order) that fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// `escalation.page`: who is paged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<PageTarget>,
    /// On a `report.overdue` that stands for several repeats (the clock jumped over them: a
    /// backlog, a restart after downtime): how long past the deadline it is (`10d`). Ordinary
    /// steps leave it out (their `seconds_remaining` says the same), so their output is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue_for: Option<String>,
    /// With `overdue_for`: how many earlier repeats this one event stands for, not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_repeats: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Recipient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onward: Option<Onward>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Upgrade>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<Evidence>,
    /// Rows that could not be assessed for a missing fact (incident.opened, incident.graded,
    /// report.due).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unassessed: Vec<Unassessed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alert_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandEcho>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<Draft>,
}

impl Escalation {
    /// A bare event; builders fill in what the type needs.
    pub fn new(
        event_id: String,
        kind: EventType,
        incident_id: String,
        at: Timestamp,
        at_text: String,
    ) -> Self {
        Escalation {
            event_id,
            kind,
            incident_id,
            at: at_text,
            at_ms: at,
            title: None,
            level: None,
            level_zh: None,
            previous_level: None,
            report_kind: None,
            deadline: None,
            seconds_remaining: None,
            reminder_before: None,
            overdue_count: None,
            policy: None,
            step: None,
            targets: Vec::new(),
            overdue_for: None,
            folded_repeats: None,
            recipients: Vec::new(),
            onward: None,
            channels: Vec::new(),
            upgrade: None,
            matched: Vec::new(),
            unassessed: Vec::new(),
            alert_ids: Vec::new(),
            alert_count: None,
            operator: None,
            asset: None,
            command: None,
            reason: None,
            merged_into: None,
            draft: None,
        }
    }

    /// One JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing plain owned data cannot fail; fall back to a marker rather than panic.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"serialize_error\":{:?}}}", e.to_string()))
    }
}

/// One target of a page: its key in `escalation.toml`, its readable name, and the labels the
/// delivery stage puts on its Alertmanager alert.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PageTarget {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Recipient {
    pub id: String,
    pub name: String,
}

/// What the first recipient must do next, for major and above (Measures art. 4).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Onward {
    pub within_minutes: i64,
    pub deadline: String,
    pub to: Vec<Recipient>,
    /// Notified alongside (通报), with no deadline of their own: the "other" route's 同级有关部门.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Recipient>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Channel {
    pub kind: String,
    pub value: String,
}

/// A coming level rise of an ongoing incident.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Upgrade {
    pub to_level: Level,
    pub to_level_zh: &'static str,
    pub crossing_at: String,
    pub seconds_until: i64,
    pub indicator: String,
    pub threshold: EvidenceValue,
}

/// Why a level was reached: one indicator, its value, the threshold it met and that level.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evidence {
    pub indicator: String,
    pub value: EvidenceValue,
    pub threshold: EvidenceValue,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EvidenceValue {
    Number(f64),
    Text(String),
}

impl Serialize for EvidenceValue {
    /// Whole numbers as integers (`3`, not `3.0`), as a person writes thresholds.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EvidenceValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                s.serialize_i64(*n as i64)
            }
            EvidenceValue::Number(n) => s.serialize_f64(*n),
            EvidenceValue::Text(t) => s.serialize_str(t),
        }
    }
}

impl std::fmt::Display for EvidenceValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                write!(f, "{}", *n as i64)
            }
            EvidenceValue::Number(n) => write!(f, "{n}"),
            EvidenceValue::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OperatorSummary {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub class: OperatorClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AssetSummary {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The command an event answers, echoed for the audit trail.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Default)]
pub struct CommandEcho {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `desk`, `ctl` or the id of the key that signed the command (docs/spec.md §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the sender claims (`at`) beside when Klaxon received it (the event's own `at` is the
    /// claimed time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// The command claims a time earlier than its receipt by more than
    /// `commands.backdate_tolerance`: a late filing must not pass as on time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backdated: bool,
}

/// A row of the guide the known facts could not assess (a fact it depends on is missing): the
/// level stays what the known facts give, and the duty officer sees which fact to find.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Unassessed {
    /// The indicator id (a row of the guide, as `grading.toml` names it).
    pub row: String,
    /// A code from [`Unassessed::REASONS`] (also the metric label).
    pub reason: &'static str,
    /// In words.
    pub detail: String,
}

impl Unassessed {
    pub const REASONS: [&'static str; 4] = [
        "asset_kind_missing",
        "asset_level_missing",
        "asset_size_missing",
        "operator_class_unknown",
    ];
}

/// The pre-filled report (Measures art. 7): one entry per item, with what Klaxon knows and
/// whether a person must still complete it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Draft {
    /// When more than one reporting route applies (a CII asset of an organ or of an "other"
    /// operator): every route's recipients, and that the strictest deadline binds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    pub items: Vec<DraftItem>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DraftItem {
    pub item: u8,
    pub title: String,
    pub content: String,
    pub to_complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one spelling of each type is what goes on the wire, and reads back.
    #[test]
    fn every_event_type_serialises_as_its_key_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for &t in EventType::ALL {
            let wire = serde_json::to_string(&t).expect("serialises");
            assert_eq!(wire, format!("\"{}\"", t.key()));
            assert_eq!(t.key().parse::<EventType>(), Ok(t));
            assert!(seen.insert(t.key()), "{} twice", t.key());
        }
        assert_eq!(EventType::ALL.len(), 13);
        assert_eq!(EventType::ALL[0].key(), "incident.opened");
        assert!("incident.Opened".parse::<EventType>().is_err());
    }
}
