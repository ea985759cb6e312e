//! Plain data: alerts, commands, levels and escalation events. Serde types, no logic.

pub mod alert;
pub mod command;
pub mod escalation;
pub mod level;

pub use alert::Alert;
pub use command::{
    Action, ActionFields, Command, CommandName, CommandProblem, FieldProblem, RegradeTo,
};
pub use escalation::Escalation;
pub use level::{Level, OperatorClass, ReportKind};

/// One decoded input record.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    Alert(Box<Alert<'a>>),
    Command(Box<Command>),
}

impl Input<'_> {
    /// The input with every string its own (see [`Alert::into_owned`]).
    pub fn into_owned(self) -> Input<'static> {
        match self {
            Input::Alert(a) => Input::Alert(Box::new(a.into_owned())),
            Input::Command(c) => Input::Command(c),
        }
    }

    /// The event time of the record.
    pub fn time(&self) -> crate::time::Timestamp {
        match self {
            Input::Alert(a) => a.timestamp,
            // A command whose `at` is unusable and whose receipt is unknown has no time of
            // its own: the earliest instant moves no clock.
            Input::Command(c) => c.event_time().unwrap_or(crate::time::Timestamp::MIN),
        }
    }
}
