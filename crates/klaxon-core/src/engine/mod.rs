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

use crate::model::alert::{Alert, Ransom, Ref, Text};
use crate::model::escalation::{
    AssetSummary, CommandEcho, EventType, Evidence, EvidenceValue, OperatorSummary, PageTarget,
    Upgrade,
};
use crate::model::{Command, Escalation, Input, Level, ReportKind};
use crate::settings::escalation::OnEvent;
use crate::settings::ruleset::{Figure, Ruleset, AMOUNT_FIGURES};
use crate::settings::{Config, Registry};
use crate::time::{Millis, Timestamp};
use chrono::FixedOffset;
use correlate::{AssetInfo, AssetParts, Figures, OperatorInfo};
use grade::{Crossing, Grade};
use reporting::{Filed, Report, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use timers::{TimerKind, TimerSet};

/// Deterministic incident id: the first alert's day (in the output offset), then 48 bits: the
/// correlation key's 24-bit routing token and 24 bits of a hash of the key and the first alert's
/// time. Rendered `INC-20261124-7f3a9c2e01ab`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentId {
    pub day: u32,
    pub hash: u64,
}

impl fmt::Display for IncidentId {
    /// Every event names its incident twice, so the usual shape is rendered by hand; anything
    /// wider (only a hand-made snapshot has it) goes through `write!`, which gives the same text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.day >= 100_000_000 || self.hash >> 48 != 0 {
            return write!(f, "INC-{:08}-{:012x}", self.day, self.hash);
        }
        let mut b = *b"INC-00000000-000000000000";
        let mut day = self.day;
        for d in b[4..12].iter_mut().rev() {
            *d = b'0' + (day % 10) as u8;
            day /= 10;
        }
        for (i, d) in b[13..].iter_mut().enumerate() {
            *d = b"0123456789abcdef"[((self.hash >> (44 - 4 * i)) & 0xf) as usize];
        }
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for IncidentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an incident id (INC-YYYYMMDD-hhhhhhhhhhhh)");
        let rest = s.strip_prefix("INC-").ok_or_else(bad)?;
        let (day, hash) = rest.split_once('-').ok_or_else(bad)?;
        if day.len() != 8 || hash.len() != 12 {
            return Err(bad());
        }
        Ok(IncidentId {
            day: day.parse().map_err(|_| bad())?,
            hash: u64::from_str_radix(hash, 16).map_err(|_| bad())?,
        })
    }
}

impl IncidentId {
    /// The routing token embedded in the id: the same as its correlation key's.
    pub fn route_token(&self) -> u32 {
        ((self.hash >> 24) & 0xff_ffff) as u32
    }
}

/// 24 bits that decide which partition owns a correlation key. Incident ids carry them, so a
/// command naming an incident is routed to the same partition as the alerts that opened it.
pub fn route_token(correlation_key: &str) -> u32 {
    ((fnv1a(&[correlation_key.as_bytes()]) >> 40) & 0xff_ffff) as u32
}

/// [`route_token`] of the correlation key `k:{key}`, without building the string (the router
/// computes one per record).
fn explicit_route_token(key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"k:"
        .iter()
        .chain(key.as_bytes())
        .chain(std::iter::once(&0xffu8))
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h >> 40) & 0xff_ffff) as u32
}

#[cfg(test)]
mod route_token_tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_explicit_key_routes_as_its_correlation_key(key in ".{0,40}") {
            prop_assert_eq!(
                super::explicit_route_token(&key),
                super::route_token(&format!("k:{key}"))
            );
        }
    }
}

const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// FNV-1a over `bytes`, from state `h`. A plain indexed loop, so that it also runs at compile
/// time (the namespaces' prefixes below) and compiles without iterator adapters: it runs over
/// every alert's id and key.
#[inline]
const fn fnv128(mut h: u128, bytes: &[u8]) -> u128 {
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u128).wrapping_mul(FNV128_PRIME);
        i += 1;
    }
    h
}

/// The state after the `alert` namespace and its separator, computed once at compile time.
const ALERT_NAMESPACE: u128 = fnv128(fnv128(FNV128_OFFSET, b"alert"), &[0xff]);

/// A 128-bit FNV-1a hash of the parts, namespaced: the dedup set keeps these instead of the
/// ids themselves (no allocation per alert; collisions are out of reach at 2^-64 odds). Each
/// part, the namespace first, is followed by a 0xff byte (which UTF-8 never contains).
pub(crate) fn dedup_key(namespace: &[u8], parts: &[&[u8]]) -> u128 {
    let mut h = fnv128(fnv128(FNV128_OFFSET, namespace), &[0xff]);
    for p in parts {
        h = fnv128(fnv128(h, p), &[0xff]);
    }
    h
}

/// `dedup_key(b"alert", &[id])`, from the namespace's precomputed state: it runs on every alert.
pub(crate) fn alert_dedup_key(id: &[u8]) -> u128 {
    fnv128(fnv128(ALERT_NAMESPACE, id), &[0xff])
}

/// The 128-bit hash a correlation key is indexed by (the maps never hold the strings).
pub(crate) fn key_hash(key: &str) -> u128 {
    fnv128(FNV128_OFFSET, key.as_bytes())
}

/// The state after an explicit key's `k:` prefix, computed once at compile time.
const EXPLICIT_KEY_PREFIX: u128 = fnv128(FNV128_OFFSET, b"k:");

/// [`key_hash`] of `k:` followed by an explicit `incident_key`, without building the string.
pub(crate) fn explicit_key_hash(key: &str) -> u128 {
    fnv128(EXPLICIT_KEY_PREFIX, key.as_bytes())
}

/// Builds the bucket hashers of the engine's maps, whose keys are already hashes (128-bit FNV of
/// a correlation key or an alert id) or an incident id. The keys come from alert content that an
/// attacker can shape, and FNV is public: without a secret, keys that fall into the same buckets
/// could be searched for offline and sent to turn every lookup into a long probe (hash
/// flooding). So the bucket hash mixes in two keys drawn per engine from the process's random
/// source, as std's `RandomState` does, with one 64×64-bit multiply. The keys only place entries
/// in a table: nothing iterates these maps in an order that reaches an output, so replays stay
/// byte-identical.
#[derive(Clone)]
pub(crate) struct SeededPrehash {
    start: u64,
    /// Odd, so the multiply loses no information.
    multiplier: u64,
}

impl Default for SeededPrehash {
    fn default() -> Self {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        SeededPrehash {
            start: random.hash_one(0u8),
            multiplier: random.hash_one(1u8) | 1,
        }
    }
}

impl std::hash::BuildHasher for SeededPrehash {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher {
            state: self.start,
            multiplier: self.multiplier,
        }
    }
}

/// A hasher for keys that are already hashes; see [`SeededPrehash`].
pub(crate) struct PrehashedHasher {
    state: u64,
    multiplier: u64,
}

impl std::hash::Hasher for PrehashedHasher {
    /// Both halves of the product: every bit of the state reaches the low bits that pick a
    /// bucket, through a multiplier the sender of the keys cannot know.
    fn finish(&self) -> u64 {
        let product = u128::from(self.state) * u128::from(self.multiplier);
        (product as u64) ^ ((product >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.state = (self.state ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.state ^= (v as u64) ^ ((v >> 64) as u64);
    }
    /// An `IncidentId` is a u32 and a u64: one multiply each instead of twelve bytewise steps
    /// (the map is looked up a few times per input; its iteration order is never observed).
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.state = (self.state ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A [`dedup_key`] as the dedup set holds it: two `u64` halves (alignment 8), so an entry with
/// its expiry takes 24 bytes instead of the 32 a `u128` (alignment 16) pads it to, in both the
/// map and the expiry queue, for up to `state.max_dedup_ids` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DedupId([u64; 2]);

impl From<u128> for DedupId {
    fn from(k: u128) -> Self {
        DedupId([k as u64, (k >> 64) as u64])
    }
}

impl std::hash::Hash for DedupId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from(self.0[0]) | u128::from(self.0[1]) << 64);
    }
}

/// FNV-1a: tiny, stable across platforms and releases (unlike `DefaultHasher`).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Open,
    Resolved { at: Timestamp },
    Dismissed { at: Timestamp },
    Merged { into: IncidentId },
}

/// One incident: its figures, its grade, its reports and its pending timers. Plain data, so it
/// can be snapshotted to the changelog and restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    /// Boxed strings and slices where a field rarely changes, not `String`s and `Vec`s: 8 bytes
    /// less each, so an incident is 384 bytes (the allocator's 384-byte class) instead of 424
    /// (its 448-byte class), and there are a million of them.
    pub key: Box<str>,
    pub opened_at: Timestamp,
    pub last_alert_at: Timestamp,
    pub last_activity: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub sources: Box<[Box<str>]>,
    pub operator: Arc<OperatorInfo>,
    pub asset: Arc<AssetInfo>,
    pub figures: Figures,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Boxed strs: 16 bytes an id instead of 24, up to `max_alert_ids` (50) of them.
    pub alert_ids: Vec<Box<str>>,
    pub alert_count: u64,
    /// The highest level the figures have reached (levels do not fall on figures alone).
    pub computed: Level,
    /// An analyst's `regrade`, which wins until the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_level: Option<Box<(Level, String)>>,
    /// The level last announced.
    pub level: Level,
    pub graded_seq: u32,
    pub acks: u32,
    pub status: Status,
    /// t0: when the incident became reportable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reportable_at: Option<Timestamp>,
    /// The level at the last filed report (a rise above it makes a follow-up due).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_level: Option<Level>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub reports: Box<[Report]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing: Option<Box<Crossing>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ransom: Option<Box<Ransom>>,
    /// This incident's entries in the timer set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<(Timestamp, TimerKind)>,
    /// The most recent alert ids and command keys applied to it, newest last: restored into the
    /// dedup set after a restart, so a re-delivered record changes nothing.
    /// Kept as 128-bit hashes (`dedup_key`), not strings. (Redelivery after a restart is caught by
    /// `applied_offset`; these catch a SIEM sending the same alert again.)
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "decimal_u128s::deserialize"
    )]
    pub recent_ids: Vec<u128>,
    /// Offset (in its partition of the repartition topic) of the last record applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_offset: Option<i64>,
}

/// `recent_ids` as the changelog has always held them (decimal JSON numbers), read faster.
/// serde_json reads a 128-bit number by copying its digits into a buffer and parsing that with
/// checked 128-bit arithmetic, a digit at a time: ~1,200 instructions an id, over a quarter of
/// restoring an incident of ten alerts (callgrind). Here each number's raw text is taken as it
/// stands in the record and read 19 digits at a time into a `u64`. The format is unchanged, so
/// older and newer versions read each other's changelog.
mod decimal_u128s {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde_json::value::RawValue;
    use std::fmt;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u128>, D::Error> {
        d.deserialize_seq(Numbers)
    }

    struct Numbers;

    impl<'de> Visitor<'de> for Numbers {
        type Value = Vec<u128>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of unsigned 128-bit integers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u128>, A::Error> {
            // Grown as serde's own `Vec` would: sized for 32 ids up front, an incident restored
            // with three would hold 512 bytes for them.
            let mut out = Vec::new();
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                let text = raw.get();
                out.push(parse(text).ok_or_else(|| {
                    A::Error::custom(format!(
                        "recent_ids: not an unsigned 128-bit integer: {text}"
                    ))
                })?);
            }
            Ok(out)
        }
    }

    /// A decimal `u128`, or `None` for anything else (a sign, a fraction, an exponent, too big).
    pub(super) fn parse(text: &str) -> Option<u128> {
        let digits = text.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // The first chunk takes the remainder, so every later one is exactly 19 digits.
        let first = match digits.len() % 19 {
            0 => 19,
            n => n,
        };
        let (head, rest) = digits.split_at(first);
        let mut value = u128::from(chunk(head));
        for c in rest.chunks(19) {
            value = value
                .checked_mul(10_000_000_000_000_000_000)?
                .checked_add(u128::from(chunk(c)))?;
        }
        Some(value)
    }

    /// Up to 19 ASCII digits (already checked) as a number: cannot overflow a `u64`.
    fn chunk(digits: &[u8]) -> u64 {
        digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
    }
}

/// The most events one [`Engine::handle_timeout`] step queues before it returns (the timer
/// that reaches it may add a few more: a regrade's `incident.graded` and `report.due`). Small
/// enough that a driver sends a step's events in one batch; large enough that the per-step
/// overhead does not show.
pub const TIMEOUT_STEP_EVENTS: usize = 256;

/// The most timers one [`Engine::handle_timeout`] step fires, events or not (expiries make
/// none), so a step's time is bounded too.
pub const TIMEOUT_STEP_TIMERS: usize = 1024;

/// How many alert ids and command keys an incident remembers for de-duplication after restore.
pub const RECENT_IDS: usize = 32;

/// How many distinct alert sources an incident lists.
const MAX_SOURCES: usize = 16;

/// How many characters of an alert's `detail` an incident keeps beside its source.
const MAX_DETAIL: usize = 120;

/// The first `max` characters of `s`, and `…` if there were more.
fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..i])),
        None => std::borrow::Cow::Borrowed(s),
    }
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    fn effective(&self) -> Level {
        self.override_level.as_ref().map_or(self.computed, |b| b.0)
    }
}

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
        let mut sum = [false; AMOUNT_FIGURES];
        for (fig, how) in &c.settings.correlation.combine {
            if let (Ok(Figure::Amount(a)), "sum") = (fig.parse::<Figure>(), how.as_str()) {
                sum[a as usize] = true;
            }
        }
        EngineOptions {
            offset: c.settings.utc_offset(),
            group_by: c.settings.correlation.group_by.clone(),
            quiet_period: c.settings.quiet_period(),
            sum,
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
    incidents: HashMap<IncidentId, Box<Incident>, SeededPrehash>,
    /// Correlation key (hashed) → the latest incident opened for it: the one that takes its
    /// alerts while open (a new one is opened only when the latest no longer takes alerts), and
    /// the one `@key` commands address.
    latest_by_key: HashMap<u128, IncidentId, SeededPrehash>,
    /// Alert ids seen within the dedup window, with the order they expire in.
    seen: HashMap<DedupId, Timestamp, SeededPrehash>,
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
    counters: Counters,
    /// The source offset of the record being handled, if the driver gave one.
    offset: Option<i64>,
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
            counters: Counters::default(),
            dirty: None,
            operators: HashSet::new(),
            assets: HashSet::new(),
            since_sweep: 0,
            offset: None,
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
    pub fn handle(&mut self, input: Input) {
        self.handle_from(input, None);
    }

    /// [`Engine::handle`] for a record at `offset` of the partition this engine owns. An incident
    /// remembers the offset of the last record applied to it, so a record delivered again after a
    /// restart (its state already in the changelog, its offset not yet committed) is recognised
    /// and changes nothing: state updates are applied exactly once, whatever the redelivery.
    pub fn handle_from(&mut self, input: Input, offset: Option<i64>) {
        self.clock = self.clock.max(input.time());
        self.offset = offset;
        match input {
            Input::Alert(mut a) => self.handle_alert(&mut a),
            Input::Command(c) => self.handle_command(*c),
        }
        self.offset = None;
        self.expire_dedup();
        self.sweep_interned();
    }

    /// Whether the record being handled was already applied to `inc` (see `handle_from`).
    fn already_applied(&self, inc: &Incident) -> bool {
        matches!((self.offset, inc.applied_offset), (Some(o), Some(a)) if o <= a)
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
        let latest = self
            .latest_by_key
            .get(&key_hash(&inc.key))
            .and_then(|id| self.incidents.get(id))
            .map(|x| x.opened_at);
        if latest.is_none_or(|t| t <= inc.opened_at) {
            self.latest_by_key.insert(key_hash(&inc.key), inc.id);
        }
        let expires = inc.last_activity.plus(self.opts.dedup_window);
        for &id in &inc.recent_ids {
            self.remember_id(id, expires);
        }
        self.clock = self.clock.max(inc.last_activity);
        inc.timers.clear();
        inc.operator = self.intern((*inc.operator).clone());
        inc.asset = self.intern_asset((*inc.asset).clone());
        self.schedule(&mut inc);
        self.incidents.insert(inc.id, Box::new(inc));
    }

    /// The shared copy of `op`.
    fn intern(&mut self, op: OperatorInfo) -> Arc<OperatorInfo> {
        interned(&mut self.operators, op)
    }

    /// The shared copy of `asset`.
    fn intern_asset(&mut self, asset: AssetInfo) -> Arc<AssetInfo> {
        interned(&mut self.assets, asset)
    }

    /// Drops interned operators and assets that no incident holds any more (now and then: assets
    /// such as host names come and go with their incidents).
    fn sweep_interned(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep < 65_536 {
            return;
        }
        self.since_sweep = 0;
        self.operators.retain(|a| Arc::strong_count(a) > 1);
        self.assets.retain(|a| Arc::strong_count(a) > 1);
    }

    /// Removes an incident (a tombstone read during restore).
    pub fn remove(&mut self, id: &IncidentId) {
        if let Some(mut inc) = self.incidents.remove(id) {
            self.timers.reschedule(inc.id, &mut inc.timers, &[]);
            self.forget(&inc);
        }
    }

    /// Notes an alert id or command key as applied to `inc`.
    fn remember(&mut self, inc: &mut Incident, key: u128, expires: Timestamp) {
        self.remember_id(key, expires);
        // Once full, the oldest goes: shift in place rather than remove and push.
        if inc.recent_ids.len() >= RECENT_IDS {
            inc.recent_ids.copy_within(1.., 0);
            if let Some(last) = inc.recent_ids.last_mut() {
                *last = key;
            }
        } else {
            push_small(&mut inc.recent_ids, key, RECENT_IDS);
        }
    }

    /// Adds an id to the dedup set. Past `max_dedup_ids`, the oldest ids are forgotten early:
    /// memory stays bounded whatever the alert rate (each id costs ~110 bytes, so a week of
    /// 1,000 alerts/s would need 65 GB), and the incident's own most recent ids still catch a
    /// re-sent alert (`handle_alert`).
    fn remember_id(&mut self, key: u128, expires: Timestamp) {
        let key = DedupId::from(key);
        self.seen.insert(key, expires);
        self.seen_order.push_back((expires, key));
        while self.seen.len() > self.opts.max_dedup_ids {
            let Some((exp, id)) = self.seen_order.pop_front() else {
                break;
            };
            if self.seen.get(&id) == Some(&exp) {
                self.seen.remove(&id);
                self.dedup_evicted += 1;
            }
        }
    }

    /// How many ids were forgotten before their dedup window ended since the last call (the
    /// `klaxon_dedup_evicted_total` metric): a sign that `state.max_dedup_ids` is too small for
    /// the alert rate and `state.dedup_window`.
    pub fn take_dedup_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.dedup_evicted)
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

    // ------------------------------------------------------------------ alerts

    /// Takes the alert mutably only to move its id into the incident instead of copying it.
    fn handle_alert(&mut self, alert: &mut Alert) {
        let dedup = alert_dedup_key(alert.id.as_bytes());
        if self.seen.contains_key(&DedupId::from(dedup)) {
            self.counters.duplicates += 1;
            return;
        }
        self.counters.alerts += 1;
        let expires = self.clock.plus(self.opts.dedup_window);

        let at = alert.timestamp;
        // Resolving operator and asset (registry lookups, copies) is needed for a derived key, for
        // a new incident, and to fill in what an incident does not know yet — not otherwise.
        let mut parties = None;
        let explicit = alert.incident_key.as_deref().filter(|k| !k.is_empty());
        let (derived, kh) = match explicit {
            Some(k) => (None, explicit_key_hash(k)),
            None => {
                let (op, asset) = resolve_parties(&self.registry, alert);
                let key = correlate::correlation_key(alert, &op, &asset, &self.opts.group_by);
                parties = Some((op, asset));
                let kh = key_hash(&key);
                (Some(key), kh)
            }
        };
        // The latest incident for the key is taken out of the map (one lookup), updated, and put
        // back; `apply_alert` and what it calls may then use the whole engine, map included.
        let quiet = self.opts.quiet_period;
        let latest = match self.latest_by_key.get(&kh) {
            Some(id) => self.incidents.remove(id),
            None => None,
        };
        // An id the bounded dedup set has forgotten may still be one of the incident's own most
        // recent: a re-sent alert changes nothing (SPEC §1), even after the window.
        if let Some(inc) = latest.as_ref().filter(|i| i.recent_ids.contains(&dedup)) {
            self.counters.duplicates += 1;
            let id = inc.id;
            if let Some(inc) = latest {
                self.incidents.insert(id, inc);
            }
            return;
        }
        match latest {
            // An incident with an outage still going on does not go quiet: the outage is still
            // happening, so its alerts still belong to it.
            Some(mut inc)
                if inc.is_open()
                    && (at.since(inc.last_alert_at) <= quiet || inc.figures.any_ongoing()) =>
            {
                if self.already_applied(&inc) {
                    self.counters.duplicates += 1;
                } else {
                    self.apply_alert(&mut inc, alert, parties, dedup, expires);
                }
                self.incidents.insert(inc.id, inc);
            }
            ended => {
                if let Some(inc) = ended {
                    self.incidents.insert(inc.id, inc);
                }
                let (op, asset) = parties
                    .take()
                    .unwrap_or_else(|| resolve_parties(&self.registry, alert));
                let key = derived.unwrap_or_else(|| format!("k:{}", explicit.unwrap_or_default()));
                let opened = self.outbox.len();
                let mut inc = self.open_incident(key, kh, alert, op, asset);
                self.apply_alert(&mut inc, alert, None, dedup, expires);
                // `incident.opened` says which rows its first alert leaves unassessed.
                if let Some(ev) = self
                    .outbox
                    .get_mut(opened)
                    .filter(|e| e.kind == EventType::IncidentOpened)
                {
                    ev.unassessed = grade::unassessed(
                        &self.rules,
                        &inc.operator,
                        &inc.asset,
                        &inc.figures,
                        inc.level,
                    );
                }
                self.incidents.insert(inc.id, inc);
            }
        }
    }

    /// Applies an alert to the incident it joins (or opened). `parties`: the alert's operator
    /// and asset, if already resolved.
    fn apply_alert(
        &mut self,
        inc: &mut Incident,
        alert: &mut Alert,
        mut parties: Option<(OperatorInfo, AssetParts)>,
        dedup: u128,
        expires: Timestamp,
    ) {
        let at = alert.timestamp;
        // Later alerts fill in what the first did not say.
        let known =
            inc.operator.id.is_some() && (inc.asset.id().is_some() || inc.asset.kind().is_some());
        let inline = match (&alert.operator, &alert.asset) {
            (Some(Ref::Inline(o)), _) if adds_operator(&inc.operator, o) => true,
            (_, Some(Ref::Inline(a))) => adds_asset(&inc.asset, a),
            _ => false,
        };
        if !known || inline {
            let (op, asset) = parties
                .take()
                .unwrap_or_else(|| resolve_parties(&self.registry, alert));
            let mut merged = (*inc.operator).clone();
            merge_info(&mut merged, op);
            if merged != *inc.operator {
                inc.operator = self.intern(merged);
            }
            let mut merged = inc.asset.parts();
            merge_asset(&mut merged, asset);
            let merged = AssetInfo::from(merged);
            if merged != *inc.asset {
                inc.asset = self.intern_asset(merged);
            }
        }
        if inc.title.is_none() {
            inc.title = alert.title.take().map(boxed_text);
        }
        if inc.category.is_none() {
            inc.category = alert.category.take().map(boxed_text);
        }
        if let Some(src) = alert.source.take() {
            // With the source's own word on the detection (a rule's level, a severity): the
            // draft shows it beside the source, and nothing grades on it.
            let src = match alert.detail.take() {
                Some(d) => Text::Owned(format!("{src}（{}）", clip(&d, MAX_DETAIL))),
                None => src,
            };
            if !inc.sources.iter().any(|s| **s == *src) && inc.sources.len() < MAX_SOURCES {
                push_boxed(&mut inc.sources, boxed_text(src));
            }
        }
        if alert.impact.ransom.is_some() {
            inc.ransom = alert.impact.ransom.take();
        }
        inc.figures.apply(alert, &self.opts.sum);
        inc.alert_count += 1;
        if inc.alert_ids.len() < self.opts.max_alert_ids {
            push_small(
                &mut inc.alert_ids,
                boxed_text(std::mem::take(&mut alert.id)),
                self.opts.max_alert_ids,
            );
        }
        inc.last_alert_at = inc.last_alert_at.max(at);
        inc.last_activity = inc.last_activity.max(at);
        inc.applied_offset = self.offset.or(inc.applied_offset);
        self.regrade(inc, at, None);
        self.remember(inc, dedup, expires);
        self.schedule(inc);
        self.mark_dirty(inc.id);
    }

    /// Opens an incident for correlation key `key` (hashed: `kh`).
    fn open_incident(
        &mut self,
        key: String,
        kh: u128,
        alert: &mut Alert,
        operator: OperatorInfo,
        asset: AssetParts,
    ) -> Box<Incident> {
        let day = alert.timestamp.ymd(self.opts.offset);
        let ts = alert.timestamp.0.to_le_bytes();
        let token = u64::from(route_token(&key)) << 24;
        let mut n: u32 = 0;
        let id = loop {
            let low = fnv1a(&[key.as_bytes(), &ts, &n.to_le_bytes()]) & 0xff_ffff;
            let id = IncidentId {
                day,
                hash: token | low,
            };
            if !self.incidents.contains_key(&id) {
                break id;
            }
            n += 1;
        };
        self.latest_by_key.insert(kh, id);
        let inc = Incident {
            id,
            key: key.into_boxed_str(),
            opened_at: alert.timestamp,
            last_alert_at: alert.timestamp,
            last_activity: alert.timestamp,
            title: alert.title.take().map(boxed_text),
            category: alert.category.take().map(boxed_text),
            sources: Box::default(),
            operator: self.intern(operator),
            asset: self.intern_asset(AssetInfo::from(asset)),
            figures: Figures::default(),
            alert_ids: Vec::new(),
            alert_count: 0,
            computed: Level::General,
            override_level: None,
            level: Level::General,
            graded_seq: 0,
            acks: 0,
            status: Status::Open,
            reportable_at: None,
            reported_level: None,
            reports: Box::default(),
            crossing: None,
            warned: None,
            ransom: None,
            timers: Vec::new(),
            recent_ids: Vec::new(),
            applied_offset: None,
        };
        let mut ev = self.event(
            &inc,
            EventType::IncidentOpened,
            String::new(),
            alert.timestamp,
        );
        ev.alert_ids = vec![alert.id.to_string()];
        ev.level = Some(Level::General);
        ev.level_zh = Some(Level::General.zh());
        self.outbox.push_back(ev);
        Box::new(inc)
    }

    // ------------------------------------------------------------------ grading and reporting

    /// Re-evaluates the grade at `at`; announces a change; opens the reports it makes due.
    /// `analyst` is the evidence of a `regrade`.
    fn regrade(&mut self, inc: &mut Incident, at: Timestamp, analyst: Option<Evidence>) {
        inc.computed = grade::level_above(&self.rules, &inc.asset, &inc.figures, at, inc.computed);
        let new_level = inc.effective();
        let previous = inc.level;
        // Evidence is built only when an event will carry it.
        let floor = self.rules.floor;
        let needs_evidence = new_level != previous
            || analyst.is_some()
            || (new_level >= floor
                && (inc.reportable_at.is_none()
                    || inc.reported_level.is_some_and(|r| new_level > r)));
        let grade = if needs_evidence {
            grade::evaluate(&self.rules, &inc.asset, &inc.figures, at)
        } else {
            // Read by nothing: events and reports are made only where evidence is needed.
            Grade {
                level: inc.computed,
                evidence: Vec::new(),
            }
        };
        if new_level != previous || analyst.is_some() {
            inc.level = new_level;
            inc.graded_seq += 1;
            let mut ev = self.event(
                inc,
                EventType::IncidentGraded,
                format!("/{}", inc.graded_seq),
                at,
            );
            ev.previous_level = Some(previous);
            ev.matched = match &analyst {
                Some(e) => vec![e.clone()],
                None => grade.evidence.clone(),
            };
            ev.unassessed = grade::unassessed(
                &self.rules,
                &inc.operator,
                &inc.asset,
                &inc.figures,
                inc.level,
            );
            ev.alert_ids = inc.alert_ids.iter().map(|id| id.to_string()).collect();
            ev.alert_count = Some(inc.alert_count);
            self.outbox.push_back(ev);
        }
        inc.crossing = if inc.is_open() && inc.override_level.is_none() && inc.figures.any_ongoing()
        {
            grade::next_crossing(&self.rules, &inc.asset, &inc.figures, at, inc.level).map(Box::new)
        } else {
            None
        };
        if inc.status == Status::Open || matches!(inc.status, Status::Resolved { .. }) {
            self.open_reports(inc, at, &grade, analyst.as_ref());
        }
    }

    fn open_reports(
        &mut self,
        inc: &mut Incident,
        at: Timestamp,
        grade: &Grade,
        analyst: Option<&Evidence>,
    ) {
        if inc.level < self.rules.floor {
            return;
        }
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        if inc.reportable_at.is_none() {
            let t0 = match self.rules.clock_starts {
                crate::settings::ruleset::ClockStart::FloorReached => at,
                crate::settings::ruleset::ClockStart::FirstAlert => inc.opened_at.min(at),
            };
            inc.reportable_at = Some(t0);
            let mut r = Report::new(
                ReportKind::Initial,
                0,
                t0,
                reporting::window(&self.rules, route, ReportKind::Initial),
            );
            self.report_due(inc, &mut r, at, grade, analyst);
            push_boxed(&mut inc.reports, r);
            return;
        }
        // A rise above the level of the last filed report makes a follow-up due, unless one is
        // already outstanding (it will carry the new level).
        let Some(reported) = inc.reported_level else {
            return;
        };
        if inc.level > reported
            && !inc
                .reports
                .iter()
                .any(|r| r.kind == ReportKind::FollowUp && r.outstanding())
        {
            let seq = inc
                .reports
                .iter()
                .filter(|r| r.kind == ReportKind::FollowUp)
                .count() as u32
                + 1;
            let mut r = Report::new(
                ReportKind::FollowUp,
                seq,
                at,
                reporting::window(&self.rules, route, ReportKind::FollowUp),
            );
            self.report_due(inc, &mut r, at, grade, analyst);
            push_boxed(&mut inc.reports, r);
        }
    }

    /// Makes the next follow-up (续报) or supplement (补报) report of `inc` due from `at`, on the
    /// binding route's window for that kind, and announces it. `why`: the reason and command of
    /// a `follow_up` command.
    fn report_more(
        &mut self,
        inc: &mut Incident,
        kind: ReportKind,
        at: Timestamp,
        why: Option<(String, CommandEcho)>,
    ) {
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        let seq = inc.reports.iter().filter(|r| r.kind == kind).count() as u32 + 1;
        let mut r = Report::new(kind, seq, at, reporting::window(&self.rules, route, kind));
        let grade = grade::evaluate(&self.rules, &inc.asset, &inc.figures, at);
        let due = self.outbox.len();
        self.report_due(inc, &mut r, at, &grade, None);
        // The `report.due` (pages of its escalation policy follow it) echoes the command.
        if let (Some((reason, echo)), Some(ev)) = (
            why,
            self.outbox
                .get_mut(due)
                .filter(|e| e.kind == EventType::ReportDue),
        ) {
            ev.reason = Some(reason);
            ev.command = Some(echo);
        }
        push_boxed(&mut inc.reports, r);
    }

    /// Announces a report that fell due, then starts its escalation (SPEC §10): the policy it
    /// follows, and the pages of its `on = "report.due"` steps, after the `report.due` event.
    fn report_due(
        &mut self,
        inc: &Incident,
        r: &mut Report,
        at: Timestamp,
        grade: &Grade,
        analyst: Option<&Evidence>,
    ) {
        let mut ev = self.report_event(inc, EventType::ReportDue, r, format!("/{}", r.label()), at);
        self.address(inc, r, &mut ev);
        ev.channels = draft::channels(&self.rules);
        ev.matched = match analyst {
            Some(e) => vec![e.clone()],
            None => grade.evidence.clone(),
        };
        ev.unassessed = grade::unassessed(
            &self.rules,
            &inc.operator,
            &inc.asset,
            &inc.figures,
            inc.level,
        );
        ev.alert_ids = inc.alert_ids.iter().map(|id| id.to_string()).collect();
        ev.alert_count = Some(inc.alert_count);
        let mut d = draft::draft(&self.rules, inc, grade, inc.level, self.opts.offset);
        if r.kind == ReportKind::Supplement {
            draft::mark_already_reported(&mut d);
        }
        ev.draft = Some(d);
        self.outbox.push_back(ev);
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        r.paging = escalation_policy::select(&self.rules.escalation, inc.level, r.kind, route)
            .map(|p| Box::new(escalation_policy::Paging::new(p)));
        self.page_on(inc, r, OnEvent::Due, String::new(), at);
    }

    /// Pages the `on` steps of report `r` that fire with its event `on`; `extra` tells repeats
    /// of the event apart in the event ids (`/2` for the second overdue, `/10m` for a reminder).
    fn page_on(&mut self, inc: &Incident, r: &Report, on: OnEvent, extra: String, at: Timestamp) {
        for step in escalation_policy::on_steps(&self.rules.escalation, r, on) {
            self.page(inc, r, step, &extra, at);
        }
    }

    /// Emits the `escalation.page` of step `step` of the policy report `r` follows.
    fn page(&mut self, inc: &Incident, r: &Report, step: usize, extra: &str, at: Timestamp) {
        let rules = self.rules.clone();
        let Some(policy) = escalation_policy::policy_of(&rules.escalation, r) else {
            return;
        };
        let Some(s) = policy.steps.get(step) else {
            return;
        };
        let suffix = format!("/{}/{}{extra}", r.label(), step + 1);
        let mut ev = self.report_event(inc, EventType::EscalationPage, r, suffix, at);
        ev.policy = Some(policy.name.clone());
        ev.step = Some(step as u32 + 1);
        ev.targets = s
            .notify
            .iter()
            .map(|id| {
                let t = rules.escalation.targets.get(id);
                PageTarget {
                    id: id.clone(),
                    name: t.and_then(|t| t.name.clone()),
                    labels: t.map(|t| t.labels.clone()).unwrap_or_default(),
                }
            })
            .collect();
        ev.reason = Some(escalation_policy::reason(s, r, at, self.opts.offset));
        self.address(inc, r, &mut ev);
        self.outbox.push_back(ev);
    }

    /// Computes the timers an incident wants and puts them in the set.
    fn schedule(&mut self, inc: &mut Incident) {
        // Built in a reused buffer: most calls want what is already armed and change nothing.
        let mut wanted = std::mem::take(&mut self.wanted);
        wanted.clear();
        if let Some(c) = &inc.crossing {
            wanted.push((c.at, TimerKind::Crossing));
            if inc.warned.is_none_or(|w| w < c.level) {
                let warn_at =
                    c.at.minus(self.rules.upgrade_warning_lead)
                        .max(inc.last_activity);
                wanted.push((warn_at.min(c.at), TimerKind::UpgradeWarning));
            }
        }
        for (n, r) in inc.reports.iter().enumerate() {
            if let Some((at, _)) = r.next_step(self.rules.report_rule(r.kind)) {
                wanted.push((at, TimerKind::Report(n as u16)));
            }
            if let Some((at, _)) = escalation_policy::next_timed(&self.rules.escalation, r) {
                wanted.push((at, TimerKind::Page(n as u16)));
            }
        }
        // An incident leaves the state only when nothing is owed and nothing is still going on.
        let ongoing = inc.is_open() && inc.figures.any_ongoing();
        if !ongoing && !inc.reports.iter().any(|r| r.outstanding()) {
            let quiet_end = inc.last_alert_at.plus(self.opts.quiet_period);
            let from = if inc.is_open() {
                quiet_end.max(inc.last_activity)
            } else {
                inc.last_activity
            };
            // An earlier expiry already armed stays: when it fires it re-checks and re-arms, so
            // the timer set is not touched on every alert.
            let desired = from.plus(self.opts.retention);
            let armed = inc
                .timers
                .iter()
                .find(|(_, k)| *k == TimerKind::Expire)
                .map(|(t, _)| *t);
            wanted.push((
                armed.filter(|t| *t <= desired).unwrap_or(desired),
                TimerKind::Expire,
            ));
        }
        if wanted != inc.timers {
            self.timers.reschedule(inc.id, &mut inc.timers, &wanted);
        }
        self.wanted = wanted;
    }

    /// Fires one timer due at `at`, the driver's clock reading `now`; returns false if the
    /// incident leaves the state.
    fn fire(&mut self, inc: &mut Incident, at: Timestamp, kind: TimerKind, now: Timestamp) -> bool {
        match kind {
            TimerKind::Crossing => {
                inc.last_activity = inc.last_activity.max(at);
                self.regrade(inc, at, None);
            }
            TimerKind::UpgradeWarning => {
                if let Some(c) = inc.crossing.clone() {
                    inc.warned = Some(c.level);
                    // Too late to warn: the crossing itself fires in this same catch-up.
                    if c.at < now {
                        return true;
                    }
                    let mut ev = self.event(
                        inc,
                        EventType::UpgradeWarning,
                        format!("/{}", c.level.key()),
                        at,
                    );
                    ev.upgrade = Some(Upgrade {
                        to_level: c.level,
                        to_level_zh: c.level.zh(),
                        crossing_at: c.at.format(self.opts.offset),
                        seconds_until: c.at.since(at).seconds(),
                        indicator: c.indicator.clone(),
                        threshold: EvidenceValue::Number(c.threshold),
                    });
                    self.outbox.push_back(ev);
                }
            }
            TimerKind::Report(n) => {
                let Some(r) = inc.reports.get(n as usize).cloned() else {
                    return true;
                };
                let rule = self.rules.report_rule(r.kind);
                let Some((_, step)) = r.next_step(rule) else {
                    return true;
                };
                let mut at = at;
                let mut folded = 0;
                let step = match step {
                    Step::Reminder { index, .. } => {
                        // Stale: the deadline has passed, or a later reminder is due as well;
                        // skipped without a word (the overdue step or the later reminder speaks).
                        let mut rest = r.clone();
                        rest.advance(step);
                        let later_due = matches!(rest.next_step(rule),
                            Some((t, Step::Reminder { .. })) if t <= now);
                        if now >= r.deadline || later_due {
                            if let Some(r) = inc.reports.get_mut(n as usize) {
                                r.next_reminder = if now >= r.deadline {
                                    usize::MAX
                                } else {
                                    index + 1
                                };
                            }
                            return true;
                        }
                        step
                    }
                    Step::Overdue { count } => {
                        let latest = rule.overdue.step_at(now.since(r.deadline));
                        if latest > count {
                            folded = latest - count;
                            at = r.deadline.plus(rule.overdue.offset(latest));
                            Step::Overdue { count: latest }
                        } else {
                            step
                        }
                    }
                };
                let (kind, suffix) = match step {
                    Step::Reminder { lead, .. } => (
                        EventType::ReportReminder,
                        format!("/{}/{}", r.label(), lead),
                    ),
                    Step::Overdue { count } => (
                        EventType::ReportOverdue,
                        format!("/{}/{}", r.label(), count),
                    ),
                };
                let mut ev = self.report_event(inc, kind, &r, suffix, at);
                match step {
                    Step::Reminder { lead, .. } => ev.reminder_before = Some(lead.to_string()),
                    Step::Overdue { count } => {
                        ev.overdue_count = Some(count);
                        if folded > 0 {
                            ev.overdue_for = Some(at.since(r.deadline).to_string());
                            ev.folded_repeats = Some(folded);
                        }
                    }
                }
                // The level may have risen since the report fell due: the onward duty follows it.
                self.address(inc, &r, &mut ev);
                self.outbox.push_back(ev);
                let (on, extra) = match step {
                    Step::Reminder { lead, .. } => (OnEvent::Reminder, format!("/{lead}")),
                    Step::Overdue { count } => (OnEvent::Overdue, format!("/{count}")),
                };
                self.page_on(inc, &r, on, extra, at);
                if let Some(r) = inc.reports.get_mut(n as usize) {
                    r.advance(step);
                }
            }
            TimerKind::Page(n) => {
                let Some(r) = inc.reports.get(n as usize).cloned() else {
                    return true;
                };
                // Fires only the step that is due: the timer was armed from the same state.
                let Some((due, step)) = escalation_policy::next_timed(&self.rules.escalation, &r)
                else {
                    return true;
                };
                if due <= at {
                    self.page(inc, &r, step, "", at);
                    if let Some(p) = inc
                        .reports
                        .get_mut(n as usize)
                        .and_then(|r| r.paging.as_mut())
                    {
                        p.mark_fired(step);
                    }
                }
            }
            TimerKind::Expire => {
                let quiet_end = inc.last_alert_at.plus(self.opts.quiet_period);
                let from = if inc.is_open() {
                    quiet_end.max(inc.last_activity)
                } else {
                    inc.last_activity
                };
                let ongoing = inc.is_open() && inc.figures.any_ongoing();
                if !ongoing
                    && from.plus(self.opts.retention) <= at
                    && inc.reports.iter().all(|r| !r.outstanding())
                {
                    return false;
                }
            }
        }
        true
    }

    fn forget(&mut self, inc: &Incident) {
        if self.latest_by_key.get(&key_hash(&inc.key)) == Some(&inc.id) {
            self.latest_by_key.remove(&key_hash(&inc.key));
        }
    }

    fn expire_dedup(&mut self) {
        while let Some((exp, _)) = self.seen_order.front() {
            if *exp > self.clock {
                break;
            }
            if let Some((exp, id)) = self.seen_order.pop_front() {
                if self.seen.get(&id) == Some(&exp) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    // ------------------------------------------------------------------ commands

    fn handle_command(&mut self, mut cmd: Command) {
        // Found malformed at the edge (a field of the wrong type, `at` unreadable, a name not in
        // the list): rejected before any incident is looked at, naming the fields at fault.
        if let Some(problem) = cmd.problem.take() {
            if !problem.at_usable {
                cmd.at = cmd.received_at.unwrap_or(self.clock);
            }
            return self.reject(&cmd, problem.reason);
        }
        let target = match self.find_incident(cmd.incident_id.as_deref()) {
            Ok(id) => id,
            Err(reason) => return self.reject(&cmd, reason),
        };
        let Some(mut inc) = self.incidents.remove(&target) else {
            return self.reject(&cmd, "unknown incident".into());
        };
        if self.seen.contains_key(&DedupId::from(command_key(&cmd))) || self.already_applied(&inc) {
            // A re-delivered command (at-least-once upstream): already applied.
            self.incidents.insert(inc.id, inc);
            return;
        }
        let first_event = self.outbox.len();
        let result = self.apply_command(&mut inc, &cmd);
        match result {
            Ok(()) => {
                // Every event a command causes says who sent it and how (SPEC §9), including the
                // regrades and reports that follow from it.
                for ev in self.outbox.iter_mut().skip(first_event) {
                    if ev.command.is_none() {
                        ev.command =
                            Some(echo(&cmd, self.opts.offset, self.opts.backdate_tolerance));
                    }
                }
                self.counters.commands_applied += 1;
                self.mark_dirty(inc.id);
                if let Status::Merged { into } = inc.status {
                    self.mark_dirty(into);
                }
                let expires = self.clock.plus(self.opts.dedup_window);
                self.remember(&mut inc, command_key(&cmd), expires);
                inc.applied_offset = self.offset.or(inc.applied_offset);
                inc.last_activity = inc.last_activity.max(cmd.at);
                self.schedule(&mut inc);
                self.incidents.insert(inc.id, inc);
            }
            Err(reason) => {
                self.incidents.insert(inc.id, inc);
                self.reject(&cmd, reason);
            }
        }
    }

    fn find_incident(&self, given: Option<&str>) -> Result<IncidentId, String> {
        let given = given
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or("missing incident_id")?;
        if let Some(key) = given.strip_prefix('@') {
            return self
                .latest_by_key
                .get(&explicit_key_hash(key))
                .copied()
                .ok_or_else(|| format!("no incident with incident_key {key:?}"));
        }
        let id: IncidentId = given.parse()?;
        if self.incidents.contains_key(&id) {
            Ok(id)
        } else {
            Err(format!("unknown incident {given}"))
        }
    }

    fn apply_command(&mut self, inc: &mut Incident, cmd: &Command) -> Result<(), String> {
        let at = cmd.at;
        let closed = |inc: &Incident| match &inc.status {
            Status::Dismissed { .. } => Some("the incident was dismissed".to_string()),
            Status::Merged { into } => Some(format!("the incident was merged into {into}")),
            _ => None,
        };
        match cmd.command.as_str() {
            "ack" => {
                inc.acks += 1;
                // Ends the `unless = "acknowledged"` steps of the reports now due (SPEC §10).
                for r in inc.reports.iter_mut().filter(|r| r.outstanding()) {
                    if let Some(p) = r.paging.as_mut() {
                        p.acknowledged = true;
                    }
                }
                let mut ev = self.event(
                    inc,
                    EventType::IncidentAcknowledged,
                    format!("/{}", inc.acks),
                    at,
                );
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
            }
            "report_filed" => {
                let wanted = match cmd.report_kind.as_deref() {
                    None => None,
                    Some(k) => Some(k.parse::<ReportKind>()?),
                };
                let n = inc
                    .reports
                    .iter()
                    .position(|r| r.outstanding() && wanted.is_none_or(|k| r.kind == k))
                    .ok_or_else(|| match wanted {
                        Some(k) => format!("no {} report is outstanding", k.key()),
                        None => "no report is outstanding".to_string(),
                    })?;
                let partial = cmd.partial == Some(true);
                if partial
                    && !matches!(
                        inc.reports[n].kind,
                        ReportKind::Initial | ReportKind::FollowUp
                    )
                {
                    return Err(format!(
                        "`partial` applies to an initial or follow-up report (items （一）（二） first, art. 7); the outstanding {} report is filed whole",
                        inc.reports[n].label()
                    ));
                }
                let filed = Filed {
                    at,
                    by: cmd.by.clone(),
                    channel: cmd.channel.clone(),
                    reference: cmd.reference.clone(),
                    via: cmd.via.clone(),
                    received_at: cmd.received_at,
                    backdated: backdated(cmd, self.opts.backdate_tolerance),
                    partial,
                };
                let r = {
                    let r = &mut inc.reports[n];
                    r.filed = Some(Box::new(filed));
                    r.clone()
                };
                if r.kind != ReportKind::Summary {
                    inc.reported_level =
                        Some(inc.reported_level.map_or(inc.level, |l| l.max(inc.level)));
                }
                let mut ev = self.report_event(
                    inc,
                    EventType::ReportFiled,
                    &r,
                    format!("/{}", r.label()),
                    at,
                );
                ev.onward = self.onward(inc, &r);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
                if partial {
                    // 补报: the rest of the report (items （三）–（八）) falls due, with its own timers.
                    self.report_more(inc, ReportKind::Supplement, at, None);
                }
            }
            "resolve" => {
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                if let Status::Resolved { .. } = inc.status {
                    return Err("the incident is already resolved".into());
                }
                inc.figures.close_ongoing(at);
                inc.status = Status::Resolved { at };
                inc.crossing = None;
                let mut ev = self.event(inc, EventType::IncidentResolved, String::new(), at);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
                if inc.reportable_at.is_some() {
                    let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
                    let mut r = Report::new(
                        ReportKind::Summary,
                        0,
                        at,
                        reporting::window(&self.rules, route, ReportKind::Summary),
                    );
                    let grade = grade::evaluate(&self.rules, &inc.asset, &inc.figures, at);
                    self.report_due(inc, &mut r, at, &grade, None);
                    push_boxed(&mut inc.reports, r);
                }
            }
            "dismiss" => {
                let reason = required(&cmd.reason, "reason")?;
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                inc.status = Status::Dismissed { at };
                inc.crossing = None;
                for r in &mut inc.reports {
                    if r.outstanding() {
                        r.cancelled = true;
                    }
                }
                let mut ev = self.event(inc, EventType::IncidentDismissed, String::new(), at);
                ev.reason = Some(reason);
                ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
                self.outbox.push_back(ev);
            }
            "regrade" => {
                let reason = required(&cmd.reason, "reason")?;
                let level_text = required(&cmd.level, "level")?;
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                let evidence;
                if level_text == "computed" {
                    inc.override_level = None;
                    evidence = Evidence {
                        indicator: "analyst_regrade".into(),
                        value: EvidenceValue::Text(reason),
                        threshold: EvidenceValue::Text("back to computed grading".into()),
                        level: inc.computed,
                        unit: None,
                    };
                } else {
                    let level: Level = level_text.parse()?;
                    inc.override_level = Some(Box::new((level, reason.clone())));
                    evidence = Evidence {
                        indicator: "analyst_regrade".into(),
                        value: EvidenceValue::Text(reason),
                        threshold: EvidenceValue::Text("analyst judgement".into()),
                        level,
                        unit: None,
                    };
                }
                self.regrade(inc, at, Some(evidence));
            }
            "follow_up" => {
                // 续报 (art. 7): important new circumstances, or a milestone of the investigation,
                // after a report was made.
                let reason = required(&cmd.reason, "reason")?;
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                if !inc
                    .reports
                    .iter()
                    .any(|r| r.kind != ReportKind::Summary && r.filed.is_some())
                {
                    return Err("no report has been filed yet: a follow-up (续报) follows a filed report; put the new circumstances in the report that is due".into());
                }
                if let Some(r) = inc
                    .reports
                    .iter()
                    .find(|r| r.kind == ReportKind::FollowUp && r.outstanding())
                {
                    return Err(format!(
                        "{} is already due (deadline {}): put the new circumstances in it",
                        r.label(),
                        r.deadline.format(self.opts.offset)
                    ));
                }
                self.report_more(
                    inc,
                    ReportKind::FollowUp,
                    at,
                    Some((
                        reason,
                        echo(cmd, self.opts.offset, self.opts.backdate_tolerance),
                    )),
                );
            }
            "merge" => {
                let into = self
                    .find_incident(cmd.into.as_deref())
                    .map_err(|e| format!("merge target: {e}"))?;
                if into == inc.id {
                    return Err("cannot merge an incident into itself".into());
                }
                if let Some(why) = closed(inc) {
                    return Err(why);
                }
                let Some(mut target) = self.incidents.remove(&into) else {
                    return Err("merge target: unknown incident".into());
                };
                if let Some(why) = closed(&target) {
                    self.incidents.insert(into, target);
                    return Err(format!("merge target: {why}"));
                }
                self.merge_into(inc, &mut target, cmd);
                self.schedule(&mut target);
                self.incidents.insert(into, target);
            }
            other => {
                return Err(format!(
                    "unknown command {other:?} (expected {})",
                    crate::model::CommandName::listed()
                ))
            }
        }
        Ok(())
    }

    /// Folds `src` into `dst`: alerts, figures and the earlier reporting clock; `src`'s outstanding
    /// reports move with it, so no deadline is lost.
    fn merge_into(&mut self, src: &mut Incident, dst: &mut Incident, cmd: &Command) {
        let at = cmd.at;
        dst.figures.absorb(&src.figures, &self.opts.sum);
        dst.alert_count += src.alert_count;
        for id in &src.alert_ids {
            if dst.alert_ids.len() < self.opts.max_alert_ids && !dst.alert_ids.contains(id) {
                push_exact(&mut dst.alert_ids, id.clone());
            }
        }
        dst.computed = dst.computed.max(src.computed);
        dst.reportable_at = match (dst.reportable_at, src.reportable_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        dst.reported_level = dst.reported_level.max(src.reported_level);
        for r in &mut src.reports {
            if r.outstanding() {
                let mut moved = r.clone();
                let numbered = matches!(moved.kind, ReportKind::FollowUp | ReportKind::Supplement);
                if numbered {
                    moved.seq =
                        dst.reports.iter().filter(|x| x.kind == moved.kind).count() as u32 + 1;
                }
                // An incident has one initial and one summary report (their labels are part of
                // event ids): when both sides owe one, the earlier deadline is the one that binds.
                let single = !numbered;
                match dst
                    .reports
                    .iter_mut()
                    .find(|x| single && x.kind == moved.kind)
                {
                    None => push_boxed(&mut dst.reports, moved),
                    Some(x) if x.outstanding() && moved.deadline < x.deadline => *x = moved,
                    Some(_) => {}
                }
                r.cancelled = true;
            }
        }
        src.status = Status::Merged { into: dst.id };
        src.crossing = None;
        let mut ev = self.event(src, EventType::IncidentMerged, String::new(), at);
        ev.merged_into = Some(dst.id.to_string());
        ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
        self.outbox.push_back(ev);
        dst.last_activity = dst.last_activity.max(at);
        self.regrade(dst, at, None);
    }

    /// A command refused before it reached an incident (its signature, SPEC §9): it changes
    /// nothing and yields `command.rejected` with the refusal's code as `reason`.
    pub fn refuse(&mut self, cmd: &Command, reason: &str) {
        self.reject(cmd, reason.to_string());
    }

    fn reject(&mut self, cmd: &Command, reason: String) {
        self.counters.commands_rejected += 1;
        let given = cmd.incident_id.clone().unwrap_or_default();
        let h = fnv1a(&[
            cmd.command.as_bytes(),
            given.as_bytes(),
            &cmd.at.0.to_le_bytes(),
            cmd.by.as_deref().unwrap_or("").as_bytes(),
            cmd.reason.as_deref().unwrap_or("").as_bytes(),
            cmd.report_kind.as_deref().unwrap_or("").as_bytes(),
            cmd.level.as_deref().unwrap_or("").as_bytes(),
            cmd.into.as_deref().unwrap_or("").as_bytes(),
        ]);
        let mut ev = Escalation::new(
            format!("CMD-{:016x}/command.rejected", h),
            EventType::CommandRejected,
            given,
            cmd.at,
            cmd.at.format(self.opts.offset),
        );
        ev.reason = Some(reason);
        ev.command = Some(echo(cmd, self.opts.offset, self.opts.backdate_tolerance));
        self.outbox.push_back(ev);
    }

    // ------------------------------------------------------------------ event builders

    fn event(&self, inc: &Incident, kind: EventType, suffix: String, at: Timestamp) -> Escalation {
        let incident_id = inc.id.to_string();
        let mut ev = Escalation::new(
            [incident_id.as_str(), "/", kind.key(), &suffix].concat(),
            kind,
            incident_id,
            at,
            at.format(self.opts.offset),
        );
        ev.title = inc.title.as_deref().map(str::to_owned);
        ev.level = Some(inc.level);
        ev.level_zh = Some(inc.level.zh());
        ev.operator = inc.operator.id.as_ref().map(|id| OperatorSummary {
            id: id.clone(),
            name: inc.operator.name.clone(),
            class: inc.operator.class,
            province: inc.operator.province.clone(),
        });
        ev.asset = inc.asset.id().map(|id| AssetSummary {
            id: id.to_owned(),
            name: inc.asset.name().map(str::to_owned),
            kind: inc.asset.kind().map(str::to_owned),
        });
        ev
    }

    /// Who a report goes to (every applicable route's recipients), and the onward duty at the
    /// incident's current level on the route whose deadline binds.
    fn address(&self, inc: &Incident, r: &Report, ev: &mut Escalation) {
        let routes = reporting::routes(&self.rules, &inc.operator, &inc.asset);
        ev.recipients = draft::recipients_of(&self.rules, &routes, &inc.operator);
        ev.onward = self.onward(inc, r);
    }

    /// The authority's onward step for report `r`, counted from the filing once filed (收到报告后),
    /// and until then from the operator's deadline (the latest the report can arrive).
    fn onward(&self, inc: &Incident, r: &Report) -> Option<crate::model::escalation::Onward> {
        let route = reporting::route_class(&self.rules, &inc.operator, &inc.asset);
        draft::onward(
            &self.rules,
            route,
            &inc.operator,
            inc.level,
            r.filed.as_ref().map_or(r.deadline, |f| f.at),
            self.opts.offset,
        )
    }

    fn report_event(
        &self,
        inc: &Incident,
        kind: EventType,
        r: &Report,
        suffix: String,
        at: Timestamp,
    ) -> Escalation {
        let mut ev = self.event(inc, kind, suffix, at);
        ev.report_kind = Some(r.kind);
        ev.deadline = Some(r.deadline.format(self.opts.offset));
        ev.seconds_remaining = Some(r.deadline.since(at).seconds());
        ev
    }
}

/// Registry entry, then inline fields on top. An unknown operator is of class `other`.
pub fn resolve_parties(registry: &Registry, alert: &Alert) -> (OperatorInfo, AssetParts) {
    let mut asset = AssetParts::default();
    // An alert's `Text`, made a `String` only at the end: keeping it a `String` throughout
    // measured 57 more instructions per alert on the hot path (callgrind, `core_profile`).
    let mut asset_operator: Option<Text<'_>> = None;
    match &alert.asset {
        Some(Ref::Id(id)) => {
            asset.id = Some(id.as_ref().into());
            if let Some(e) = registry.assets.get(id.as_ref()) {
                asset.name = boxed(&e.name);
                asset.kind = boxed(&e.kind);
                asset.level = boxed(&e.level);
                asset.size = boxed(&e.size);
                asset_operator = e.operator.as_deref().map(Text::from);
            }
        }
        Some(Ref::Inline(f)) => {
            if let Some(e) =
                f.id.as_ref()
                    .and_then(|id| registry.assets.get(id.as_ref()))
            {
                asset.name = boxed(&e.name);
                asset.kind = boxed(&e.kind);
                asset.level = boxed(&e.level);
                asset.size = boxed(&e.size);
                asset_operator = e.operator.as_deref().map(Text::from);
            }
            asset.id = boxed(&f.id).or(asset.id);
            asset.name = boxed(&f.name).or(asset.name);
            asset.kind = boxed(&f.kind).or(asset.kind);
            asset.level = boxed(&f.level).or(asset.level);
            asset.size = boxed(&f.size).or(asset.size);
            asset_operator = f.operator.clone().or(asset_operator);
        }
        None => {}
    }
    let (op_id, inline) = match &alert.operator {
        Some(Ref::Id(id)) => (Some(id.to_string()), None),
        Some(Ref::Inline(f)) => (f.id.clone(), Some(f)),
        None => (asset_operator.map(Text::into_owned), None),
    };
    let mut op = OperatorInfo {
        id: op_id.clone(),
        class_unknown: true,
        ..OperatorInfo::default()
    };
    if let Some(e) = op_id.as_ref().and_then(|id| registry.operators.get(id)) {
        op.name = e.name.clone();
        if let Some(c) = e.class {
            op.class = c;
            op.class_unknown = false;
        }
        op.province = e.province.clone();
        op.sector = e.sector.clone();
        op.organ = e.organ.clone();
    }
    if let Some(f) = inline {
        op.name = f.name.clone().or(op.name);
        if let Some(c) = f.class {
            op.class = c;
            op.class_unknown = false;
        }
        op.province = f.province.clone().or(op.province);
        op.sector = f.sector.clone().or(op.sector);
        op.organ = f.organ.clone().or(op.organ);
    }
    (op, asset)
}

/// An optional string as an asset keeps it.
fn boxed<S: AsRef<str>>(s: &Option<S>) -> Option<Box<str>> {
    s.as_ref().map(|s| Box::from(s.as_ref()))
}

/// An alert's string as an incident keeps it (exactly sized, on the heap).
fn boxed_text(s: Text<'_>) -> Box<str> {
    Box::from(s.as_ref())
}

/// The identity of a command for de-duplication: a hash of everything it says.
fn command_key(cmd: &Command) -> u128 {
    let parts: [&[u8]; 11] = [
        cmd.command.as_bytes(),
        cmd.incident_id.as_deref().unwrap_or("").as_bytes(),
        &cmd.at.0.to_le_bytes(),
        cmd.by.as_deref().unwrap_or("").as_bytes(),
        cmd.channel.as_deref().unwrap_or("").as_bytes(),
        cmd.reference.as_deref().unwrap_or("").as_bytes(),
        cmd.note.as_deref().unwrap_or("").as_bytes(),
        cmd.report_kind.as_deref().unwrap_or("").as_bytes(),
        cmd.reason.as_deref().unwrap_or("").as_bytes(),
        cmd.level.as_deref().unwrap_or("").as_bytes(),
        cmd.into.as_deref().unwrap_or("").as_bytes(),
    ];
    // `partial` joins the hash only when given, so that the keys of commands without it (kept in
    // the changelog's recent ids) stay what they were.
    match cmd.partial {
        None => dedup_key(b"command", &parts),
        Some(p) => {
            let mut more = parts.to_vec();
            more.push(if p { b"partial=true" } else { b"partial=false" });
            dedup_key(b"command", &more)
        }
    }
}

/// The routing token of an input, computed the way the engine would correlate it.
pub fn input_route_token(input: &Input, registry: &Registry, group_by: &[String]) -> u32 {
    match input {
        Input::Alert(a) => match a.incident_key.as_deref().filter(|k| !k.is_empty()) {
            // An explicit key is the correlation key: no registry lookups, no copies.
            Some(k) => explicit_route_token(k),
            None => {
                let (op, asset) = resolve_parties(registry, a);
                route_token(&correlate::correlation_key(a, &op, &asset, group_by))
            }
        },
        Input::Command(c) => {
            let given = c.incident_id.as_deref().unwrap_or("").trim();
            if let Some(key) = given.strip_prefix('@') {
                route_token(&format!("k:{key}"))
            } else {
                given
                    .parse::<IncidentId>()
                    .map(|id| id.route_token())
                    .unwrap_or(0)
            }
        }
    }
}

/// The one shared copy of `v` in `pool`, added if new.
fn interned<T: std::hash::Hash + Eq>(pool: &mut HashSet<Arc<T>>, v: T) -> Arc<T> {
    if let Some(a) = pool.get(&v) {
        return a.clone();
    }
    let a = Arc::new(v);
    pool.insert(a.clone());
    a
}

/// Pushes without the usual doubling: an incident's lists are short and there are a million
/// incidents, so spare capacity (4 slots by default) would be most of their memory.
fn push_exact<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// [`push_exact`] for a boxed slice (lists that rarely grow: an incident's reports, sources).
fn push_boxed<T>(b: &mut Box<[T]>, x: T) {
    let mut v = std::mem::take(b).into_vec();
    push_exact(&mut v, x);
    *b = v.into_boxed_slice();
}

/// [`push_exact`] for the lists that grow with every alert: growing by exactly one would
/// reallocate on every alert, so a full list gains up to two spare slots (none on the first push,
/// which is all most incidents get, and never room beyond `limit`, the most it will hold).
fn push_small<T>(v: &mut Vec<T>, x: T, limit: usize) {
    if v.len() == v.capacity() {
        let spare = v.len().min(2).min(limit.saturating_sub(v.len() + 1));
        v.reserve_exact(1 + spare);
    }
    v.push(x);
}

fn echo(cmd: &Command, offset: FixedOffset, tolerance: Millis) -> CommandEcho {
    CommandEcho {
        command: cmd.command.clone(),
        by: cmd.by.clone(),
        via: cmd.via.clone(),
        channel: cmd.channel.clone(),
        reference: cmd.reference.clone(),
        note: cmd.note.clone(),
        received_at: cmd.received_at.map(|t| t.format(offset)),
        backdated: backdated(cmd, tolerance),
    }
}

/// Whether a command claims a time earlier than its receipt by more than `tolerance`.
fn backdated(cmd: &Command, tolerance: Millis) -> bool {
    cmd.received_at
        .is_some_and(|r| r.since(cmd.at).0 > tolerance.0)
}

fn required(v: &Option<String>, name: &str) -> Result<String, String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("`{name}` is required"))
}

/// Whether an inline operator says something the incident does not know yet.
fn adds_operator(known: &OperatorInfo, f: &crate::model::alert::OperatorFields) -> bool {
    let new = |have: &Option<String>, given: &Option<String>| given.is_some() && have.is_none();
    (f.id.is_some() && f.id != known.id)
        || (f.class.is_some() && known.class_unknown)
        || new(&known.name, &f.name)
        || new(&known.province, &f.province)
        || new(&known.sector, &f.sector)
        || new(&known.organ, &f.organ)
}

/// Whether an inline asset says something the incident does not know yet.
fn adds_asset(known: &AssetInfo, f: &crate::model::alert::AssetFields) -> bool {
    let new = |have: Option<&str>, given: &Option<Text>| given.is_some() && have.is_none();
    (f.id.is_some() && f.id.as_deref() != known.id())
        || new(known.name(), &f.name)
        || new(known.kind(), &f.kind)
        || new(known.level(), &f.level)
        || new(known.size(), &f.size)
}

fn merge_info(into: &mut OperatorInfo, from: OperatorInfo) {
    if into.id.is_none() {
        *into = from;
        return;
    }
    if into.id == from.id {
        into.name = into.name.take().or(from.name);
        // A class learnt later replaces the one assumed.
        if into.class_unknown && !from.class_unknown {
            into.class = from.class;
            into.class_unknown = false;
        }
        into.province = into.province.take().or(from.province);
        into.sector = into.sector.take().or(from.sector);
        into.organ = into.organ.take().or(from.organ);
    }
}

fn merge_asset(into: &mut AssetParts, from: AssetParts) {
    if into.id.is_none() && into.kind.is_none() {
        *into = from;
        return;
    }
    if into.id == from.id {
        into.name = into.name.take().or(from.name);
        into.kind = into.kind.take().or(from.kind);
        into.level = into.level.take().or(from.level);
        into.size = into.size.take().or(from.size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes are persisted (dedup ids in the changelog) and shape incident ids, so the
    /// precomputed prefixes must give exactly the byte-by-byte FNV-1a of the old definition.
    #[test]
    fn hashes_with_precomputed_prefixes_equal_the_plain_definition() {
        let reference = |parts: &[&[u8]], separated: bool| {
            let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
            for p in parts {
                let sep: &[u8] = if separated { &[0xff] } else { &[] };
                for b in p.iter().chain(sep) {
                    h ^= u128::from(*b);
                    h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
                }
            }
            h
        };
        for id in ["", "a", "suricata-000123", "中文-ключ-🔑", &"x".repeat(300)] {
            let b = id.as_bytes();
            assert_eq!(alert_dedup_key(b), reference(&[b"alert", b], true));
            assert_eq!(dedup_key(b"alert", &[b]), reference(&[b"alert", b], true));
            assert_eq!(
                dedup_key(b"command", &[b, b"x"]),
                reference(&[b"command", b, b"x"], true)
            );
            assert_eq!(key_hash(id), reference(&[b], false));
            assert_eq!(explicit_key_hash(id), reference(&[b"k:", b], false));
        }
        // Pinned (computed independently), so a change to the reference cannot hide one here.
        assert_eq!(
            alert_dedup_key(b"a-1"),
            0xb571_9629_ad80_15c9_65fe_4bd2_07f8_df28_u128
        );
    }

    /// Keys an attacker searched for offline so that their hashes share the low 20 bits: with a
    /// public bucket hash they would all fall into one bucket of any table up to a million
    /// slots. Mixed with the engine's secret keys they spread as random keys would.
    #[test]
    fn keys_crafted_to_share_their_low_bits_still_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // The halves' XOR is what the hasher takes: its low 20 bits are the same for every key.
        let crafted: Vec<DedupId> = (0..4096)
            .map(|_| {
                let high = next();
                let folded = next() << 20 | 0xa_bcde;
                DedupId::from(u128::from(high) << 64 | u128::from(high ^ folded))
            })
            .collect();
        let public = SeededPrehash {
            start: 0,
            multiplier: 1,
        };
        assert_eq!(
            crafted.iter().map(|k| public.hash_one(k) & 0xfff).max(),
            crafted.iter().map(|k| public.hash_one(k) & 0xfff).min(),
            "without the secret they would share one bucket"
        );
        let seeded = SeededPrehash::default();
        let buckets: HashSet<u64> = crafted.iter().map(|k| seeded.hash_one(k) & 0xfff).collect();
        // 4,096 random keys fill ~2,590 of 4,096 buckets.
        assert!(buckets.len() > 2_048, "{} buckets used", buckets.len());
    }

    #[test]
    fn push_small_keeps_at_most_two_spare_slots_and_none_past_the_limit() {
        let mut v: Vec<u32> = Vec::new();
        push_small(&mut v, 0, 50);
        assert_eq!(v.capacity(), 1, "a one-alert incident holds exactly one");
        for i in 1..50 {
            push_small(&mut v, i, 50);
            assert!(v.capacity() - v.len() <= 2);
        }
        assert_eq!(v.capacity(), 50);
        let mut w: Vec<u32> = Vec::new();
        for i in 0..4 {
            push_small(&mut w, i, 4);
        }
        assert_eq!(w.capacity(), 4);
    }

    proptest::proptest! {
        #[test]
        fn recent_ids_read_as_the_standard_parser_reads_them(
            n in proptest::prelude::any::<u128>(),
            text in "[0-9]{0,41}|[-+.eE0-9]{1,8}",
        ) {
            proptest::prop_assert_eq!(decimal_u128s::parse(&n.to_string()), Some(n));
            // JSON has no leading `+`, which `str::parse` would take.
            let standard = text.parse::<u128>().ok().filter(|_| !text.starts_with('+'));
            proptest::prop_assert_eq!(decimal_u128s::parse(&text), standard);
        }
    }

    #[test]
    fn an_incident_remembers_its_newest_ids_oldest_first() {
        let mut e = Engine::from_config(&shipped_config());
        for i in 0..40 {
            e.handle(keyed_alert(&format!("a-{i}"), i));
        }
        let inc = e.incidents_sorted()[0];
        let want: Vec<u128> = (8..40)
            .map(|i| dedup_key(b"alert", &[format!("a-{i}").as_bytes()]))
            .collect();
        assert_eq!(inc.recent_ids, want);
        assert_eq!(inc.recent_ids.capacity(), RECENT_IDS);
        assert!(inc.alert_ids.capacity() <= inc.alert_ids.len() + 2);
    }

    fn shipped_config() -> crate::settings::Config {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        crate::settings::load(&dir).expect("config")
    }

    fn engine_with_dedup_bound(max_dedup_ids: usize) -> Engine {
        let c = shipped_config();
        let opts = EngineOptions {
            max_dedup_ids,
            ..EngineOptions::from_config(&c)
        };
        Engine::new(
            Arc::new(c.ruleset.clone()),
            Arc::new(c.registry.clone()),
            opts,
        )
    }

    fn keyed_alert(id: &str, second: u32) -> Input<'static> {
        let line = format!(
            r#"{{"id":"{id}","timestamp":"2026-11-24T08:00:{second:02}+08:00","incident_key":"k"}}"#
        );
        crate::decode::decode(line.as_bytes(), crate::decode::Expect::Alert, 0)
            .expect("alert")
            .into_owned()
    }

    #[test]
    fn the_dedup_set_is_bounded_and_an_incident_still_knows_its_recent_alerts() {
        let mut e = engine_with_dedup_bound(3);
        for i in 0..5 {
            e.handle(keyed_alert(&format!("a-{i}"), i));
        }
        assert_eq!(e.stats(Timestamp(0)).dedup_ids, 3);
        assert_eq!(e.take_dedup_evicted(), 2);
        assert_eq!(e.take_dedup_evicted(), 0, "counted once");
        // The set forgot a-0, but the incident's own recent ids did not: still a duplicate.
        e.handle(keyed_alert("a-0", 10));
        assert_eq!(e.incidents_sorted()[0].alert_count, 5);
        assert_eq!(e.counters().duplicates, 1);
    }

    #[test]
    fn past_the_bound_and_the_recent_ids_a_resent_alert_is_applied_again() {
        // The documented price of the bound: memory stays fixed, the window shrinks.
        let mut e = engine_with_dedup_bound(3);
        for i in 0..(RECENT_IDS as u32 + 5) {
            e.handle(keyed_alert(&format!("a-{i}"), i));
        }
        e.handle(keyed_alert("a-0", 59));
        assert_eq!(e.incidents_sorted()[0].alert_count, RECENT_IDS as u64 + 6);
        assert_eq!(e.stats(Timestamp(0)).dedup_ids, 3);
    }

    #[test]
    fn incidents_share_one_copy_of_an_asset_and_the_pool_holds_it_once() {
        let mut e = engine_with_dedup_bound(100);
        for (id, key, host) in [("a1", "k1", "h1"), ("a2", "k2", "h1"), ("a3", "k3", "h2")] {
            let line = format!(
                r#"{{"id":"{id}","timestamp":"2026-11-24T08:00:00+08:00","incident_key":"{key}","asset":{{"id":"{host}","kind":"other"}}}}"#
            );
            e.handle(
                crate::decode::decode(line.as_bytes(), crate::decode::Expect::Alert, 0)
                    .expect("alert"),
            );
        }
        let by_key = |k: &str| {
            e.incidents_sorted()
                .into_iter()
                .find(|i| *i.key == format!("k:{k}"))
                .map(|i| i.asset.clone())
                .expect("incident")
        };
        assert!(Arc::ptr_eq(&by_key("k1"), &by_key("k2")));
        assert!(!Arc::ptr_eq(&by_key("k1"), &by_key("k3")));
        assert_eq!(e.assets.len(), 2);
        // The pool, the two incidents and the clone just returned: no other copy anywhere.
        assert_eq!(Arc::strong_count(&by_key("k1")), 1 + 2 + 1);
    }

    #[test]
    fn each_partition_engine_gets_its_share_of_the_dedup_bound() {
        let opts = EngineOptions::from_config(&shipped_config());
        assert_eq!(opts.max_dedup_ids, 2_000_000);
        assert_eq!(opts.clone().one_partition_of(6).max_dedup_ids, 333_334);
        assert_eq!(opts.one_partition_of(0).max_dedup_ids, 2_000_000);
    }

    #[test]
    fn incident_ids_render_as_write_would() {
        let ids = [
            (20261124, 0x7f3a_9c2e_01ab),
            (0, 0),
            (99_999_999, 0xffff_ffff_ffff),
            (100_000_000, 1),
            (7, 0x1_0000_0000_0000),
            (u32::MAX, u64::MAX),
        ];
        for (day, hash) in ids {
            let id = IncidentId { day, hash };
            assert_eq!(id.to_string(), format!("INC-{day:08}-{hash:012x}"));
            if day < 100_000_000 && hash >> 48 == 0 {
                assert_eq!(id.to_string().parse::<IncidentId>(), Ok(id));
            }
        }
    }

    #[test]
    fn timers_are_kept_without_spare_capacity() {
        let mut set = TimerSet::default();
        let id = IncidentId { day: 1, hash: 2 };
        let mut current = Vec::new();
        let wanted = vec![
            (Timestamp(5), TimerKind::Crossing),
            (Timestamp(9), TimerKind::Expire),
        ];
        set.reschedule(id, &mut current, &wanted);
        assert_eq!((current.as_slice(), current.capacity()), (&wanted[..], 2));
        set.reschedule(id, &mut current, &wanted[1..]);
        assert_eq!((current.as_slice(), current.capacity()), (&wanted[1..], 1));
        assert_eq!(set.len(), 1);
        set.reschedule(id, &mut current, &[]);
        assert_eq!((current.capacity(), set.len()), (0, 0));
    }
}
