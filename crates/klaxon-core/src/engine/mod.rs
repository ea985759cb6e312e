//! The sans-IO core: alerts and commands in, escalation events out, timers on an explicit clock.
//!
//! Call order (as in quinn-proto): for each input, first [`Engine::handle_timeout`] with the
//! current time (so timers due before the input fire first), then [`Engine::handle`]; drain
//! [`Engine::poll_output`] after each call; sleep until [`Engine::poll_timeout`]. The engine never
//! reads the clock and does no I/O: the same inputs and timeouts give the same events, byte for
//! byte, which is what makes `klaxon replay` and restores trustworthy.
//!
//! An input is processed at its own event time (the alert's `timestamp`, the command's `at`), so
//! the events it causes do not depend on when it happened to arrive.

pub mod correlate;
pub mod draft;
pub mod escalation_policy;
pub mod grade;
pub mod reporting;
pub mod timers;

mod alerts;
mod commands;
mod dedup;
mod events;
mod hashing;
mod incident;
mod memory;
mod route_token;

pub use alerts::resolve_parties;
pub(crate) use hashing::SeededHash;
pub(crate) use hashing::{alert_dedup_key, dedup_key, explicit_key_hash, fnv1a, key_hash};
pub use incident::{Address, Incident, IncidentId, Status, RECENT_IDS};
pub use route_token::{input_route_token, route_token};

#[allow(unused_imports)]
use {alerts::*, commands::*, dedup::*, incident::*, memory::*, route_token::*};

use crate::model::alert::{Alert, Ransom, Ref, Text};
use crate::model::escalation::{
    AssetSummary, CommandEcho, EventType, Evidence, EvidenceValue, OperatorSummary, PageTarget,
    Upgrade,
};
use crate::model::{Command, Escalation, Input, Level, ReportKind};
use crate::settings::escalation::OnEvent;
use crate::settings::ruleset::{Ruleset, AMOUNT_FIGURES};
use crate::settings::{Config, Registry};
use crate::time::{Millis, Timestamp};
use chrono::FixedOffset;
use correlate::{AssetInfo, AssetParts, Figures, OperatorInfo};
use grade::{Crossing, Grade};
use reporting::{Filed, Report};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use timers::{TimerKind, TimerSet};

/// The most events one [`Engine::handle_timeout`] step queues before it returns (the timer
/// that reaches it may add a few more: a regrade's `incident.graded` and `report.due`). Small
/// enough that a driver sends a step's events in one batch; large enough that the per-step
/// overhead does not show.
pub const TIMEOUT_STEP_EVENTS: usize = 256;

/// The most timers one [`Engine::handle_timeout`] step fires, events or not (expiries make
/// none), so a step's time is bounded too.
pub const TIMEOUT_STEP_TIMERS: usize = 1024;

/// Engine options derived from the service settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub offset: FixedOffset,
    pub group_by: Vec<String>,
    pub quiet_period: Millis,
    pub sum: [bool; AMOUNT_FIGURES],
    pub max_alert_ids: usize,
    pub retention: Millis,
    pub dedup_window: Millis,
    /// The most alert ids (and command hashes) remembered for de-duplication; past it the
    /// oldest are forgotten before their window ends (see [`Engine::take_dedup_evicted`]).
    pub max_dedup_ids: usize,
    /// A command received later than its `at` by more than this is marked `backdated`.
    pub backdate_tolerance: Millis,
}

impl EngineOptions {
    pub fn from_config(c: &Config) -> Self {
        EngineOptions {
            offset: c.settings.utc_offset(),
            group_by: c.settings.correlation.group_by.clone(),
            quiet_period: c.settings.quiet_period(),
            sum: c.settings.parsed.sum,
            max_alert_ids: c.settings.correlation.max_alert_ids,
            retention: c.settings.retention(),
            dedup_window: c.settings.dedup_window(),
            max_dedup_ids: c.settings.state.max_dedup_ids,
            backdate_tolerance: c.settings.backdate_tolerance(),
        }
    }

    /// The options of one partition's engine in a service that spreads its state over
    /// `partitions` engines: the dedup bound is the whole service's, so each gets its share.
    pub fn one_partition_of(mut self, partitions: i32) -> Self {
        let n = usize::try_from(partitions).unwrap_or(1).max(1);
        self.max_dedup_ids = self.max_dedup_ids.div_ceil(n);
        self
    }
}

/// What [`Engine::handle`] did with one input, so that a driver need not read it off the
/// events (which say it to downstream systems).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    Alert,
    Command(CommandOutcome),
}

/// What became of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    /// It changed its incident (its events are in the output).
    Applied,
    /// The same command again (at-least-once upstream, or a record delivered again after a
    /// restart): already applied, nothing changes and nothing is emitted.
    Redelivered,
    /// Refused, with the reason its `command.rejected` event carries: nothing changed.
    Rejected(String),
}

/// Counters for metrics and the load harness.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub alerts: u64,
    pub duplicates: u64,
    pub commands_applied: u64,
    pub commands_rejected: u64,
}

/// A point-in-time view of the state, for gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub incidents: usize,
    pub open_by_level: [usize; 4],
    /// Indexed by `ReportKind as usize`.
    pub reports_due: [usize; 4],
    pub reports_overdue: [usize; 4],
    pub nearest_deadline: Option<Timestamp>,
    pub dedup_ids: usize,
    pub timers: usize,
}

/// Sums the statistics of several engines (one per owned partition).
pub fn stats_total<'a>(engines: impl Iterator<Item = &'a Engine>, now: Timestamp) -> Stats {
    let mut total = Stats::default();
    for e in engines {
        let s = e.stats(now);
        total.incidents += s.incidents;
        total.dedup_ids += s.dedup_ids;
        total.timers += s.timers;
        for i in 0..4 {
            total.open_by_level[i] += s.open_by_level[i];
        }
        for i in 0..ReportKind::ALL.len() {
            total.reports_due[i] += s.reports_due[i];
            total.reports_overdue[i] += s.reports_overdue[i];
        }
        total.nearest_deadline = match (total.nearest_deadline, s.nearest_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    total
}

/// The core state machine.
pub struct Engine {
    rules: Arc<Ruleset>,
    registry: Arc<Registry>,
    opts: EngineOptions,
    /// Boxed: an incident is taken out and put back for every input, and moving a pointer is
    /// cheaper than moving the incident.
    incidents: HashMap<IncidentId, Box<Incident>, SeededHash>,
    /// Correlation key (hashed) → the latest incident opened for it: the one that takes its
    /// alerts while open (a new one is opened only when the latest no longer takes alerts), and
    /// the one `@key` commands address.
    latest_by_key: HashMap<u128, IncidentId, SeededHash>,
    /// Alert ids seen within the dedup window, with the order they expire in.
    seen: HashMap<DedupId, Timestamp, SeededHash>,
    seen_order: VecDeque<(Timestamp, DedupId)>,
    /// Ids forgotten before their window ended because `max_dedup_ids` was reached, since the
    /// driver last asked.
    dedup_evicted: u64,
    timers: TimerSet,
    /// Scratch for `schedule`: the timers an incident wants.
    wanted: Vec<(Timestamp, TimerKind)>,
    outbox: VecDeque<Escalation>,
    /// The latest event time handled (a watermark: it never goes back).
    clock: Timestamp,
    /// Incidents opened so far (after a restore: the most any restored incident had seen), so
    /// each knows its place in the opening order (`Incident::opened_seq`).
    opened: u32,
    counters: Counters,
    /// The input sequence number of the record being handled, if the driver gave one.
    seq: Option<i64>,
    /// One shared copy per distinct operator (see `OperatorInfo`). Grows with the number of
    /// distinct operators seen, which is small (organisations, not hosts).
    /// A set of `Arc`s, looked up by value (`Arc<T>: Borrow<T>`): a map from the value to its
    /// `Arc` would hold every value twice, and assets can be one per incident (hosts).
    operators: HashSet<Arc<OperatorInfo>>,
    assets: HashSet<Arc<AssetInfo>>,
    /// Inputs handled since the interners were last swept of entries no incident uses.
    since_sweep: u32,
    /// Incidents changed since the last `take_dirty` (for the changelog). `None` until a driver
    /// asks for change tracking (replay has no changelog).
    dirty: Option<BTreeSet<IncidentId>>,
}

impl Engine {
    pub fn new(rules: Arc<Ruleset>, registry: Arc<Registry>, opts: EngineOptions) -> Self {
        Engine {
            rules,
            registry,
            opts,
            incidents: HashMap::default(),

            latest_by_key: HashMap::default(),
            seen: HashMap::default(),
            seen_order: VecDeque::new(),
            dedup_evicted: 0,
            timers: TimerSet::default(),
            wanted: Vec::new(),
            outbox: VecDeque::new(),
            clock: Timestamp(i64::MIN),
            opened: 0,
            counters: Counters::default(),
            dirty: None,
            operators: HashSet::new(),
            assets: HashSet::new(),
            since_sweep: 0,
            seq: None,
        }
    }

    pub fn from_config(c: &Config) -> Self {
        Engine::new(
            Arc::new(c.ruleset.clone()),
            Arc::new(c.registry.clone()),
            EngineOptions::from_config(c),
        )
    }

    pub fn rules(&self) -> &Ruleset {
        &self.rules
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn incident(&self, id: &IncidentId) -> Option<&Incident> {
        self.incidents.get(id).map(|b| &**b)
    }

    /// Incidents sorted by id (deterministic order for snapshots and listings).
    pub fn incidents_sorted(&self) -> Vec<&Incident> {
        let mut v: Vec<&Incident> = self.incidents.values().map(|b| &**b).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Handles one alert or command at its own event time.
    pub fn handle(&mut self, input: Input) -> Handled {
        self.handle_from(input, None)
    }

    /// [`Engine::handle`] for the record numbered `seq` in the input this engine owns (numbers
    /// increase along the input; the live driver passes the record's offset in its partition).
    /// An incident remembers the number of the last record applied to it, so a record delivered
    /// again after a restart (its state already in the changelog, its position not yet
    /// committed) is recognised and changes nothing: state updates are applied exactly once,
    /// whatever the redelivery.
    pub fn handle_from(&mut self, input: Input, seq: Option<i64>) -> Handled {
        self.clock = self.clock.max(input.time());
        self.seq = seq;
        let handled = match input {
            Input::Alert(mut a) => {
                self.handle_alert(&mut a);
                Handled::Alert
            }
            Input::Command(c) => Handled::Command(self.handle_command(*c)),
        };
        self.seq = None;
        self.expire_dedup();
        self.sweep_interned();
        handled
    }

    /// Whether the record being handled was already applied to `inc` (see `handle_from`).
    fn already_applied(&self, inc: &Incident) -> bool {
        matches!((self.seq, inc.applied_seq), (Some(o), Some(a)) if o <= a)
    }

    /// The next instant a timer is due.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Fires timers due at or before `now`, in time order, one bounded step at a time: it
    /// stops once [`TIMEOUT_STEP_EVENTS`] events are queued or [`TIMEOUT_STEP_TIMERS`] timers
    /// fired. Returns whether timers due by `now` remain: the driver drains
    /// [`Engine::poll_output`] and calls again (see [`Engine::due`]), so events leave, offsets
    /// advance and shutdown is heard between steps however far the clock jumped. A spurious
    /// call does nothing.
    ///
    /// `now` is also what makes a timer stale: a reminder fired when its deadline (or a later
    /// reminder's instant) has already passed is not sent, an upgrade warning whose crossing
    /// has passed is not sent, and the overdue repeats that fell due by `now` fold into one
    /// `report.overdue` (the latest, with `overdue_for` and `folded_repeats`). A driver whose
    /// clock advances continuously (`replay` steps to each timer's own instant) never folds;
    /// one whose clock jumped (a backlog, a restart after downtime) says so once per report
    /// instead of once per missed repeat.
    pub fn handle_timeout(&mut self, now: Timestamp) -> bool {
        self.clock = self.clock.max(now);
        let queued = self.outbox.len();
        let mut fired = 0;
        while self.outbox.len() - queued < TIMEOUT_STEP_EVENTS && fired < TIMEOUT_STEP_TIMERS {
            let Some((at, id, kind)) = self.timers.pop_due(now) else {
                break;
            };
            fired += 1;
            let Some(mut inc) = self.incidents.remove(&id) else {
                continue;
            };
            inc.timers.retain(|e| *e != (at, kind));
            let keep = self.fire(&mut inc, at, kind, now);
            if keep {
                self.schedule(&mut inc);
                self.incidents.insert(id, inc);
            } else {
                self.timers.reschedule(id, &mut inc.timers, &[]);
                self.forget(&inc);
            }
            self.mark_dirty(id);
        }
        self.expire_dedup();
        self.due(now)
    }

    /// Whether a timer is due at or before `now` (another [`Engine::handle_timeout`] step).
    pub fn due(&self, now: Timestamp) -> bool {
        self.timers.next().is_some_and(|t| t <= now)
    }

    /// The next event to emit.
    pub fn poll_output(&mut self) -> Option<Escalation> {
        self.outbox.pop_front()
    }

    /// The call sequence a synchronous driver runs for the clock reaching `now`: every
    /// [`Engine::handle_timeout`] step until nothing is due, each step's events handed to `emit`
    /// as [`Engine::poll_output`] gives them. (The live processor runs the same steps itself,
    /// because it sends each step's events and checks for shutdown between them; `klaxon replay`
    /// steps timer by timer, at each timer's own instant.)
    pub fn run_timers(&mut self, now: Timestamp, mut emit: impl FnMut(Escalation)) {
        loop {
            let more = self.handle_timeout(now);
            while let Some(ev) = self.poll_output() {
                emit(ev);
            }
            if !more {
                break;
            }
        }
    }

    /// One input as a synchronous driver hands it over: the timers due before its event time
    /// fire first ([`Engine::run_timers`]), then [`Engine::handle`]; every event goes to `emit`.
    pub fn feed(&mut self, input: Input, mut emit: impl FnMut(Escalation)) {
        self.run_timers(input.time().before(), &mut emit);
        self.handle(input);
        while let Some(ev) = self.poll_output() {
            emit(ev);
        }
    }

    /// Ids of incidents changed since the last call; an id whose incident is gone was dropped
    /// (write a tombstone).
    pub fn take_dirty(&mut self) -> Vec<IncidentId> {
        match &mut self.dirty {
            Some(d) => std::mem::take(d).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Starts tracking changed incidents for [`Engine::take_dirty`] (the live driver's changelog).
    pub fn track_changes(&mut self) {
        self.dirty.get_or_insert_with(BTreeSet::new);
    }

    fn mark_dirty(&mut self, id: IncidentId) {
        if let Some(d) = &mut self.dirty {
            d.insert(id);
        }
    }

    /// Puts a snapshotted incident back (changelog restore): rebuilds the key indexes and the
    /// dedup set, and re-arms its timers. Timers already due fire at the next `handle_timeout`,
    /// under the same event ids as before.
    pub fn restore(&mut self, mut inc: Incident) {
        if let Some(old) = self.incidents.remove(&inc.id) {
            self.forget(&old);
            let mut old_timers = old.timers;
            self.timers.reschedule(old.id, &mut old_timers, &[]);
        }
        // The key's latest incident is the one opened last (see `Incident::opened_seq`).
        let latest = self
            .latest_by_key
            .get(&key_hash(&inc.key))
            .and_then(|id| self.incidents.get(id))
            .map(|x| (x.opened_seq, x.opened_at));
        if latest.is_none_or(|l| l <= (inc.opened_seq, inc.opened_at)) {
            self.latest_by_key.insert(key_hash(&inc.key), inc.id);
        }
        self.opened = self.opened.max(inc.opened_seq);
        let expires = inc.last_activity.plus(self.opts.dedup_window);
        for &id in &inc.recent_ids {
            self.remember_id(id, expires);
        }
        self.clock = self.clock.max(inc.last_activity);
        inc.timers.clear();
        inc.operator = self.intern((*inc.operator).clone());
        inc.asset = self.intern_asset((*inc.asset).clone());
        for paging in inc.reports.iter_mut().filter_map(|r| r.paging.as_mut()) {
            if let Some(policy) = self.rules.escalation.policy(&paging.policy) {
                paging.policy = policy.name.clone();
            }
        }
        self.schedule(&mut inc);
        self.incidents.insert(inc.id, Box::new(inc));
    }

    /// Removes an incident (a tombstone read during restore).
    pub fn remove(&mut self, id: &IncidentId) {
        if let Some(mut inc) = self.incidents.remove(id) {
            self.timers.reschedule(inc.id, &mut inc.timers, &[]);
            self.forget(&inc);
        }
    }

    pub fn stats(&self, now: Timestamp) -> Stats {
        let mut s = Stats {
            incidents: self.incidents.len(),
            dedup_ids: self.seen.len(),
            timers: self.timers.len(),
            ..Stats::default()
        };
        for inc in self.incidents.values() {
            if inc.is_open() {
                s.open_by_level[inc.level.index()] += 1;
            }
            for r in inc.reports.iter().filter(|r| r.outstanding()) {
                if r.deadline <= now {
                    s.reports_overdue[r.kind as usize] += 1;
                } else {
                    s.reports_due[r.kind as usize] += 1;
                }
                s.nearest_deadline = Some(
                    s.nearest_deadline
                        .map_or(r.deadline, |d: Timestamp| d.min(r.deadline)),
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
