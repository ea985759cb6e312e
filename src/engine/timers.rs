//! The timer kinds and the one ordered set that holds them all (as mini-redis keeps expiries in a
//! `BTreeSet<(Instant, key)>`): no task per incident, so timers are plain state that replays and
//! restores. Each incident remembers which entries it has in the set, so rescheduling is
//! `O(k log n)`.

use super::IncidentId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What happens when a timer fires. The derived order breaks ties at one instant: a level
/// crossing first, so that the report events at that instant carry the new level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// An ongoing duration meets a higher level's threshold.
    Crossing,
    /// Ahead of a crossing, by the ruleset's lead time.
    UpgradeWarning,
    /// The next reminder or overdue step of report number `n` of the incident.
    Report(u16),
    /// A closed (or dormant) incident with nothing outstanding leaves the state.
    Expire,
}

/// All pending timers of all incidents, ordered by (instant, incident, kind).
#[derive(Clone, Debug, Default)]
pub struct TimerSet {
    set: BTreeSet<(Timestamp, IncidentId, TimerKind)>,
}

impl TimerSet {
    /// Replaces `current` (an incident's entries) with `wanted`, leaving `current` without spare
    /// capacity (an incident holds it as long as it lives).
    pub fn reschedule(
        &mut self,
        id: IncidentId,
        current: &mut Vec<(Timestamp, TimerKind)>,
        wanted: &[(Timestamp, TimerKind)],
    ) {
        for (at, kind) in current.drain(..) {
            self.set.remove(&(at, id, kind));
        }
        for &(at, kind) in wanted {
            self.set.insert((at, id, kind));
        }
        if current.capacity() == wanted.len() {
            current.extend_from_slice(wanted);
        } else {
            *current = wanted.to_vec();
        }
    }

    /// The earliest pending instant.
    pub fn next(&self) -> Option<Timestamp> {
        self.set.first().map(|e| e.0)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, IncidentId, TimerKind)> {
        match self.set.first() {
            Some(e) if e.0 <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
