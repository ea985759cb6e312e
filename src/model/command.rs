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
}
