//! Commands from people and ticketing systems (SPEC §2), as decoded. Which commands exist and
//! which fields each needs is checked by the engine, so that a wrong command becomes a
//! `command.rejected` event the sender can see, not a dead letter.

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
}
