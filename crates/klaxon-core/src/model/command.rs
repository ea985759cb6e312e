//! Commands from people and ticketing systems (docs/spec.md §2), as decoded. The command names live in
//! one list, [`CommandName::ALL`]. A record that names a command but is otherwise malformed (a
//! field of the wrong type, `at` missing or unreadable, a name not in the list) still decodes
//! to a [`Command`], carrying a [`CommandProblem`]: the engine turns it into a
//! `command.rejected` event the sender can see, not a dead letter. Which fields each command
//! needs, and whether it applies to the incident, the engine checks.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Command {
    pub command: String,
    /// `INC-…`, or `@<correlation key>` for the open incident with that key.
    #[serde(default)]
    pub incident_id: Option<String>,
    #[serde(deserialize_with = "super::alert::timestamp")]
    pub at: Timestamp,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub report_kind: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub into: Option<String>,
    /// `report_filed` only: the report carried items （一）（二） alone (art. 7 补报): a
    /// `supplement` report with the rest falls due.
    #[serde(default)]
    pub partial: Option<bool>,
    /// How the command came in: `desk` or `ctl` when the desk wrote it (and signed it with its
    /// own key), otherwise the id of the key that signed it. Set by the processor after checking
    /// the signature; a replay file may name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// When Klaxon received the command (the input record's timestamp), beside the `at` the
    /// sender claims. Never read from the command itself.
    #[serde(skip)]
    pub received_at: Option<Timestamp>,
    /// Why the command cannot be applied, found while decoding it (see [`CommandProblem`]).
    /// Never read from the command itself.
    #[serde(skip)]
    pub problem: Option<Box<CommandProblem>>,
}

impl Command {
    /// The command's name, when it is one of [`CommandName::ALL`].
    pub fn name(&self) -> Option<CommandName> {
        self.command.parse().ok()
    }

    /// The time the command happened at: its own `at`, or, when that was missing or unreadable,
    /// the time Klaxon received it (`None` when that is unknown too: the engine then uses its
    /// own clock, the latest event time it has seen).
    pub fn event_time(&self) -> Option<Timestamp> {
        match &self.problem {
            Some(p) if !p.at_usable => self.received_at,
            _ => Some(self.at),
        }
    }
}

/// What is wrong with a command record that names a command: every field at fault, in one
/// sentence for the `reason` of its `command.rejected` event, and a bounded code for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandProblem {
    /// `field `level` has the wrong type: …`; several problems are joined with `; `.
    pub reason: String,
    /// The first problem's code (`wrong_type`, `missing_field`, `bad_value`): a metric label.
    pub code: &'static str,
    /// Whether `at` was read; when not, [`Command::at`] holds no meaning.
    pub at_usable: bool,
}

/// The commands Klaxon knows (docs/spec.md §2): the one list the decoder, the engine, the metrics and
/// the desk share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandName {
    Ack,
    ReportFiled,
    FollowUp,
    Resolve,
    Dismiss,
    Regrade,
    Merge,
}

impl CommandName {
    pub const ALL: [CommandName; 7] = [
        CommandName::Ack,
        CommandName::ReportFiled,
        CommandName::FollowUp,
        CommandName::Resolve,
        CommandName::Dismiss,
        CommandName::Regrade,
        CommandName::Merge,
    ];

    /// The names as written on the wire, in [`CommandName::ALL`]'s order.
    pub const NAMES: [&'static str; 7] = [
        "ack",
        "report_filed",
        "follow_up",
        "resolve",
        "dismiss",
        "regrade",
        "merge",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// "ack, report_filed, …, regrade or merge", for messages.
    pub fn listed() -> String {
        let (last, rest) = Self::NAMES.split_last().unwrap_or((&"", &[]));
        format!("{} or {last}", rest.join(", "))
    }
}

impl std::str::FromStr for CommandName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| format!("unknown command {s:?} (expected {})", Self::listed()))
    }
}

impl std::fmt::Display for CommandName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        for (i, n) in CommandName::ALL.iter().enumerate() {
            assert_eq!(*n as usize, i);
            assert_eq!(n.as_str().parse::<CommandName>(), Ok(*n));
        }
        assert_eq!(
            "escalate".parse::<CommandName>(),
            Err("unknown command \"escalate\" (expected ack, report_filed, follow_up, resolve, dismiss, regrade or merge)".to_string())
        );
    }
}
