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
    /// The next timed escalation step (docs/spec.md §10) of report number `n`: after the report's own
    /// event at the same instant, so a page follows the reminder it goes with.
    Page(u16),
    /// A closed (or dormant) incident with nothing outstanding leaves the state.
    Expire,
}

/// All pending timers of all incidents, ordered by (instant, incident, kind).
#[derive(Clone, Debug, Default)]
pub struct TimerSet {
    set: BTreeSet<Entry>,
}

/// One timer, flat: ordered as the tuple (instant, incident, kind) is (fields compare in
/// declaration order, and `IncidentId` orders by day, then hash), but 24 bytes where the tuple,
/// with its nested 16-byte `IncidentId`, takes 32. There is about one per open incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Timestamp,
    day: u32,
    hash: u64,
    kind: TimerKind,
}

impl Entry {
    fn new(at: Timestamp, id: IncidentId, kind: TimerKind) -> Self {
        Entry {
            at,
            day: id.day,
            hash: id.hash,
            kind,
        }
    }

    fn parts(self) -> (Timestamp, IncidentId, TimerKind) {
        let id = IncidentId {
            day: self.day,
            hash: self.hash,
        };
        (self.at, id, self.kind)
    }
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
            self.set.remove(&Entry::new(at, id, kind));
        }
        for &(at, kind) in wanted {
            self.set.insert(Entry::new(at, id, kind));
        }
        if current.capacity() == wanted.len() {
            current.extend_from_slice(wanted);
        } else {
            *current = wanted.to_vec();
        }
    }

    /// The earliest pending instant.
    pub fn next(&self) -> Option<Timestamp> {
        self.set.first().map(|e| e.at)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, IncidentId, TimerKind)> {
        match self.set.first() {
            Some(e) if e.at <= now => self.set.pop_first().map(Entry::parts),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The flat entry sorts exactly as the tuple it stands for.
        #[test]
        fn entries_order_as_their_tuples(
            a in (0i64..4, 0u32..3, 0u64..3, 0u16..3),
            b in (0i64..4, 0u32..3, 0u64..3, 0u16..3),
        ) {
            let tuple = |(t, d, h, k): (i64, u32, u64, u16)| {
                let kind = match k {
                    0 => TimerKind::Crossing,
                    1 => TimerKind::Report(d as u16),
                    _ => TimerKind::Expire,
                };
                (Timestamp(t), IncidentId { day: d, hash: h }, kind)
            };
            let (x, y) = (tuple(a), tuple(b));
            let (ex, ey) = (Entry::new(x.0, x.1, x.2), Entry::new(y.0, y.1, y.2));
            prop_assert_eq!(ex.cmp(&ey), x.cmp(&y));
            prop_assert_eq!(ex.parts(), x);
        }
    }
}
