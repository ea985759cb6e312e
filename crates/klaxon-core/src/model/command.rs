//! Commands from people and ticketing systems (docs/spec.md §2), as decoded. The command names live in
//! one list, [`CommandName::ALL`]. A command is checked once, at the edge, by
//! [`crate::decode::command`]: the fields it needs (`reason` for dismiss, `level` for regrade, …)
//! are read into one typed [`Action`], and the engine matches on that. A record that names a
//! command but is otherwise malformed (a field of the wrong type, `at` missing or unreadable, a
//! name not in the list, a field its command needs missing or unreadable) still decodes to a
//! [`Command`], its action a [`CommandProblem`]: the engine turns it into a `command.rejected`
//! event the sender can see, not a dead letter. Whether it applies to the incident (is it
//! known, open, is a report outstanding) only the engine can tell.

use super::{Level, ReportKind};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

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
    /// What the command asks for, read from the fields above by the decoder
    /// ([`Command::check`]), or why it cannot be applied. Never read from the record itself: a
    /// command deserialised any other way is unchecked, and rejected as such.
    #[serde(skip, default = "unchecked")]
    pub action: Result<Action, Box<CommandProblem>>,
}

fn unchecked() -> Result<Action, Box<CommandProblem>> {
    Err(Box::new(CommandProblem {
        reason: "the command was not checked by the decoder".into(),
        code: "bad_value",
        at_usable: true,
    }))
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
        match &self.action {
            Err(p) if !p.at_usable => self.received_at,
            _ => Some(self.at),
        }
    }

    /// Why the command cannot be applied, when the decoder found out.
    pub fn problem(&self) -> Option<&CommandProblem> {
        self.action.as_ref().err().map(|p| &**p)
    }

    /// Reads the action this command's fields ask for: the one check of what each command needs.
    pub fn check(&self, name: CommandName) -> Result<Action, FieldProblem> {
        Action::check(
            name,
            &ActionFields {
                report_kind: self.report_kind.as_deref(),
                partial: self.partial,
                reason: self.reason.as_deref(),
                level: self.level.as_deref(),
                into: self.into.as_deref(),
            },
        )
    }
}

/// What a command asks for, each command with the fields it needs, read and checked. Built once
/// at the edge ([`Command::check`]; the desk checks its requests with the same function); the
/// engine matches on it, never on a name's text.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Ack,
    /// `kind`: which outstanding report was filed (the first outstanding one when not given);
    /// `partial`: the report carried items （一）（二） alone (art. 7 补报).
    ReportFiled {
        kind: Option<ReportKind>,
        partial: bool,
    },
    /// 续报 (art. 7): important new circumstances after a report was made.
    FollowUp {
        reason: String,
    },
    Resolve,
    Dismiss {
        reason: String,
    },
    Regrade {
        to: RegradeTo,
        reason: String,
    },
    /// `into`: the incident that absorbs this one, `INC-…` or `@<correlation key>`, as given
    /// (the engine resolves it).
    Merge {
        into: String,
    },
}

/// The level a regrade sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegradeTo {
    /// Back to the level the rules compute (`"level": "computed"`).
    Computed,
    /// The analyst's judgement, kept until the next regrade.
    Level(Level),
}

/// The fields an [`Action`] is read from, as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActionFields<'a> {
    pub report_kind: Option<&'a str>,
    pub partial: Option<bool>,
    pub reason: Option<&'a str>,
    pub level: Option<&'a str>,
    pub into: Option<&'a str>,
}

/// A field a command needs that is missing (or blank), or unreadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    Required {
        field: &'static str,
        command: CommandName,
    },
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl FieldProblem {
    pub fn field(&self) -> &'static str {
        match self {
            FieldProblem::Required { field, .. } | FieldProblem::Invalid { field, .. } => field,
        }
    }

    /// The problem without the field's name: `required for dismiss`, or the parse error.
    pub fn detail(&self) -> String {
        match self {
            FieldProblem::Required { command, .. } => format!("required for {command}"),
            FieldProblem::Invalid { problem, .. } => problem.clone(),
        }
    }

    /// A bounded code for metrics, as the decoder's own (`missing_field`, `bad_value`).
    pub fn code(&self) -> &'static str {
        match self {
            FieldProblem::Required { .. } => "missing_field",
            FieldProblem::Invalid { .. } => "bad_value",
        }
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldProblem::Required { field, .. } => write!(f, "`{field}` is required"),
            FieldProblem::Invalid { problem, .. } => f.write_str(problem),
        }
    }
}

impl Action {
    pub fn name(&self) -> CommandName {
        match self {
            Action::Ack => CommandName::Ack,
            Action::ReportFiled { .. } => CommandName::ReportFiled,
            Action::FollowUp { .. } => CommandName::FollowUp,
            Action::Resolve => CommandName::Resolve,
            Action::Dismiss { .. } => CommandName::Dismiss,
            Action::Regrade { .. } => CommandName::Regrade,
            Action::Merge { .. } => CommandName::Merge,
        }
    }

    /// Reads what command `name` needs from `fields`, in a fixed order (for regrade: `reason`,
    /// then `level`), so a command wrong twice is always rejected for the same field. Text
    /// fields are trimmed; blank is missing. Fields a command does not use are not looked at.
    pub fn check(name: CommandName, fields: &ActionFields<'_>) -> Result<Action, FieldProblem> {
        let required = |field: &'static str, value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or(FieldProblem::Required {
                    field,
                    command: name,
                })
        };
        Ok(match name {
            CommandName::Ack => Action::Ack,
            CommandName::ReportFiled => {
                Action::ReportFiled {
                    kind: match fields.report_kind {
                        None => None,
                        Some(k) => Some(k.parse::<ReportKind>().map_err(|problem| {
                            FieldProblem::Invalid {
                                field: "report_kind",
                                problem,
                            }
                        })?),
                    },
                    partial: fields.partial == Some(true),
                }
            }
            CommandName::FollowUp => Action::FollowUp {
                reason: required("reason", fields.reason)?,
            },
            CommandName::Resolve => Action::Resolve,
            CommandName::Dismiss => Action::Dismiss {
                reason: required("reason", fields.reason)?,
            },
            CommandName::Regrade => {
                let reason = required("reason", fields.reason)?;
                let level = required("level", fields.level)?;
                let to = if level == "computed" {
                    RegradeTo::Computed
                } else {
                    RegradeTo::Level(level.parse::<Level>().map_err(|problem| {
                        FieldProblem::Invalid {
                            field: "level",
                            problem,
                        }
                    })?)
                };
                Action::Regrade { to, reason }
            }
            CommandName::Merge => Action::Merge {
                into: required("into", fields.into)?,
            },
        })
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
/// the desk share. Each name is spelled once, by strum from the variant (`ReportFiled` →
/// `report_filed`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    IntoStaticStr,
    EnumString,
    Display,
    VariantArray,
    VariantNames,
)]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = String,
    parse_err_fn = unknown_command
)]
pub enum CommandName {
    Ack,
    ReportFiled,
    FollowUp,
    Resolve,
    Dismiss,
    Regrade,
    Merge,
}

fn unknown_command(s: &str) -> String {
    unknown::<CommandName>("command", s)
}

/// `unknown report_kind "final" (expected initial, follow_up, summary or supplement)`: the parse
/// error of the enums whose names strum spells.
pub(crate) fn unknown<T: VariantNames>(what: &str, s: &str) -> String {
    format!("unknown {what} {s:?} (expected {})", listed(T::VARIANTS))
}

impl CommandName {
    /// Every command, in declaration order (`name as usize`).
    pub const ALL: &'static [CommandName] = <Self as strum::VariantArray>::VARIANTS;

    /// The names as written on the wire, in [`CommandName::ALL`]'s order.
    pub const NAMES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// "ack, report_filed, …, regrade or merge", for messages.
    pub fn listed() -> String {
        listed(Self::NAMES)
    }
}

/// `a, b or c`, for the messages that list what is accepted.
pub(crate) fn listed(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: CommandName, fields: ActionFields<'_>) -> Result<Action, FieldProblem> {
        Action::check(name, &fields)
    }

    /// Each command gets exactly the fields it needs, typed; blanks count as missing, text is
    /// trimmed, and a field a command does not use is not looked at.
    #[test]
    fn each_command_reads_the_fields_it_needs() {
        let reason = Some("  scanner, change CHG-1 ");
        let trimmed = || "scanner, change CHG-1".to_string();
        let none = ActionFields::default();
        let cases = [
            (CommandName::Ack, none, Action::Ack),
            (
                CommandName::Ack,
                ActionFields {
                    level: Some("nonsense"),
                    ..none
                },
                Action::Ack,
            ),
            (
                CommandName::ReportFiled,
                ActionFields {
                    report_kind: Some("follow_up"),
                    partial: Some(true),
                    ..none
                },
                Action::ReportFiled {
                    kind: Some(ReportKind::FollowUp),
                    partial: true,
                },
            ),
            (
                CommandName::Dismiss,
                ActionFields { reason, ..none },
                Action::Dismiss { reason: trimmed() },
            ),
            (
                CommandName::Regrade,
                ActionFields {
                    reason,
                    level: Some(" 较大 "),
                    ..none
                },
                Action::Regrade {
                    to: RegradeTo::Level(Level::RelativelyMajor),
                    reason: trimmed(),
                },
            ),
            (
                CommandName::Regrade,
                ActionFields {
                    reason,
                    level: Some("computed"),
                    ..none
                },
                Action::Regrade {
                    to: RegradeTo::Computed,
                    reason: trimmed(),
                },
            ),
            (
                CommandName::Merge,
                ActionFields {
                    into: Some(" @host-7 "),
                    ..none
                },
                Action::Merge {
                    into: "@host-7".into(),
                },
            ),
        ];
        for (name, fields, action) in cases {
            assert_eq!(check(name, fields), Ok(action), "{name}");
        }
        for &name in CommandName::ALL {
            let full = ActionFields {
                reason,
                level: Some("major"),
                into: Some("INC-1"),
                ..none
            };
            assert_eq!(check(name, full).map(|a| a.name()), Ok(name));
        }
    }

    /// What a sender reads in `command.rejected` (and the desk in its 422): the field, and why.
    /// A command wrong twice is rejected for the first field in a fixed order.
    #[test]
    fn a_missing_or_unreadable_field_is_named() {
        let p = check(
            CommandName::Dismiss,
            ActionFields {
                reason: Some("   "),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(p.to_string(), "`reason` is required");
        assert_eq!(
            (p.field(), p.detail().as_str()),
            ("reason", "required for dismiss")
        );
        assert_eq!(p.code(), "missing_field");
        let p = check(CommandName::Regrade, ActionFields::default()).unwrap_err();
        assert_eq!(p.field(), "reason");
        let p = check(
            CommandName::Regrade,
            ActionFields {
                reason: Some("r"),
                level: Some("huge"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(p.field(), "level");
        assert_eq!(p.code(), "bad_value");
        assert!(p.to_string().contains("huge"), "{p}");
        let p = check(
            CommandName::ReportFiled,
            ActionFields {
                report_kind: Some("final"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            p.to_string(),
            "unknown report_kind \"final\" (expected initial, follow_up, summary or supplement)"
        );
        for (name, field) in [
            (CommandName::FollowUp, "reason"),
            (CommandName::Merge, "into"),
        ] {
            assert_eq!(
                check(name, ActionFields::default()).map_err(|p| p.field()),
                Err(field)
            );
        }
    }

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
