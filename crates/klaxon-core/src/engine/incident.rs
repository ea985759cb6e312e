//! The incident: its id, status and persisted state (what the changelog snapshots and a restore
//! puts back), and the bounds on what it remembers.

use super::*;

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

/// How a command names its incident (its `incident_id`): an id, or `@<incident_key>` for the
/// latest incident opened with that explicit key. One reading for the router (which partition)
/// and the engine (which incident).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address<'a> {
    Id(IncidentId),
    Key(&'a str),
}

impl<'a> Address<'a> {
    /// Reads a command's `incident_id` (surrounding blanks ignored).
    pub fn of(given: Option<&'a str>) -> Result<Self, String> {
        let given = given
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or("missing incident_id")?;
        match given.strip_prefix('@') {
            Some(key) => Ok(Address::Key(key)),
            None => given.parse().map(Address::Id),
        }
    }

    /// The routing token of the incident addressed: the partition that owns it.
    pub fn route_token(&self) -> u32 {
        match self {
            Address::Id(id) => id.route_token(),
            Address::Key(key) => super::route_token::explicit_route_token(key),
        }
    }
}

impl IncidentId {
    /// The routing token embedded in the id: the same as its correlation key's.
    pub fn route_token(&self) -> u32 {
        ((self.hash >> 24) & 0xff_ffff) as u32
    }
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
    /// The number of incidents this engine had opened when it opened this one (1, 2, …):
    /// which of a key's incidents is the latest, the one `@<incident_key>` addresses, is the
    /// one opened last — in processing order, which event time need not follow — and a restore
    /// must know it. 0 in snapshots older than the field: their opening times decide. (A u32
    /// keeps the incident in its 384-byte allocation class.)
    #[serde(default)]
    pub opened_seq: u32,
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
    /// `applied_seq`; these catch a SIEM sending the same alert again.)
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "decimal_u128s::deserialize"
    )]
    pub recent_ids: Vec<u128>,
    /// Input sequence number of the last record applied (see [`Engine::handle_from`]; the live
    /// driver passes the record's offset in its partition of the repartition topic). Persisted
    /// under its original name, so snapshots written before the rename restore unchanged.
    #[serde(
        rename = "applied_offset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub applied_seq: Option<i64>,
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

/// How many alert ids and command keys an incident remembers for de-duplication after restore.
pub const RECENT_IDS: usize = 32;

/// How many distinct alert sources an incident lists.
pub(super) const MAX_SOURCES: usize = 16;

/// How many characters of an alert's `detail` an incident keeps beside its source.
pub(super) const MAX_DETAIL: usize = 120;

/// The first `max` characters of `s`, and `…` if there were more.
pub(super) fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..i])),
        None => std::borrow::Cow::Borrowed(s),
    }
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    pub(super) fn effective(&self) -> Level {
        self.override_level.as_ref().map_or(self.computed, |b| b.0)
    }

    /// The rows this incident's known facts could not assess at `level` (see
    /// [`grade::unassessed`]): what `incident.opened`, `incident.graded`, `report.due`, the
    /// draft and `klaxon grade` all say about missing facts.
    pub fn unassessed_at(
        &self,
        rules: &Ruleset,
        level: Level,
    ) -> Vec<crate::model::escalation::Unassessed> {
        grade::unassessed(rules, &self.operator, &self.asset, &self.figures, level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
