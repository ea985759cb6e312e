//! Event time: a millisecond instant, RFC 3339 parsing and printing, and human durations.
//!
//! The core keeps time as plain milliseconds since the Unix epoch so that timers sort cheaply and
//! state serializes compactly; the offset of the *input* is irrelevant once parsed, and the offset
//! of the *output* is a setting (`output.utc_offset`).

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, TimeZone};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An instant in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A span of time in milliseconds (may be negative when it is a difference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

impl Timestamp {
    /// Parses RFC 3339 with a mandatory offset (`Z` or `±hh:mm`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        if let Some(t) = fast_rfc3339(s.as_bytes()) {
            return Ok(t);
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|e| format!("not an RFC 3339 time with an offset ({e}): {s:?}"))
    }

    /// The instant just before this one: timers due at an input's own instant fire after it.
    pub fn before(self) -> Timestamp {
        Timestamp(self.0.saturating_sub(1))
    }

    pub fn plus(self, d: Millis) -> Timestamp {
        Timestamp(self.0.saturating_add(d.0))
    }

    pub fn minus(self, d: Millis) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.0))
    }

    pub fn since(self, earlier: Timestamp) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 in the given offset; fractional seconds only when present.
    pub fn format(self, offset: FixedOffset) -> String {
        match offset.timestamp_millis_opt(self.0).single() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            None => format!("@{}ms", self.0),
        }
    }

    /// `YYYYMMDD` of this instant in the given offset (used in incident ids).
    pub fn ymd(self, offset: FixedOffset) -> u32 {
        match offset.timestamp_millis_opt(self.0).single() {
            Some(t) => {
                let d = t.date_naive();
                let year = u32::try_from(d.year()).unwrap_or(0);
                year * 10_000 + d.month() * 100 + d.day()
            }
            None => 0,
        }
    }
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` without allocating; anything else
/// (and leap seconds) goes to chrono, which decides. Agrees with chrono wherever it answers
/// (a property test checks).
fn fast_rfc3339(b: &[u8]) -> Option<Timestamp> {
    fn num(b: &[u8]) -> Option<i64> {
        let mut n = 0i64;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            ms *= 10;
        }
    }
    let offset_s = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = num(&[*h1, *h2])?;
            let om = num(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(Timestamp(secs * 1000 + ms))
}

/// Parses an output offset such as `+08:00`, `-05:30` or `Z`.
pub fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    if s == "Z" || s == "z" || s == "+00:00" {
        return FixedOffset::east_opt(0).ok_or_else(|| "bad offset".to_string());
    }
    let bad = || format!("expected an offset like +08:00, got {s:?}");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

impl Millis {
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(SECOND)
    }

    /// Parses durations such as `90s`, `30m`, `1h`, `1h30m`, `30d`.
    pub fn parse_human(s: &str) -> Result<Millis, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: i64 = 0;
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => SECOND,
                'm' => MINUTE,
                'h' => HOUR,
                'd' => DAY,
                _ => {
                    return Err(format!(
                        "unknown unit {c:?} in duration {s:?} (use s, m, h, d)"
                    ))
                }
            };
            let n: i64 = num
                .parse()
                .map_err(|_| format!("missing number before {c:?} in duration {s:?}"))?;
            total = total.saturating_add(n.saturating_mul(unit));
            num.clear();
        }
        if !num.is_empty() {
            return Err(format!("duration {s:?} needs a unit (s, m, h, d)"));
        }
        Ok(Millis(total))
    }
}

impl fmt::Display for Millis {
    /// Short human form: `1h30m`, `10m`, `30d`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        if ms == 0 {
            return f.write_str("0s");
        }
        let parts = [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")];
        for (unit, name) in parts {
            if ms >= unit {
                write!(f, "{}{}", ms / unit, name)?;
                ms %= unit;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

/// Serde helper: a duration written as a human string in config files.
pub mod human {
    use super::Millis;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        Millis::parse_human(&s).map_err(serde::de::Error::custom)
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Millis>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| Millis::parse_human(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_in_the_output_offset() {
        let t = Timestamp::parse_rfc3339("2026-11-24T00:00:00Z").unwrap();
        let cst = parse_offset("+08:00").unwrap();
        assert_eq!(t.format(cst), "2026-11-24T08:00:00+08:00");
        assert_eq!(t.ymd(cst), 20261124);
    }

    #[test]
    fn the_fast_parser_agrees_with_chrono() {
        for s in [
            "2026-11-24T08:00:00+08:00",
            "2026-11-24T08:00:00.5+08:00",
            "2026-11-24T08:00:00.123456-05:30",
            "1999-12-31T23:59:59Z",
            "2000-02-29T12:00:00.001Z",
            "2024-03-01T00:00:00+14:00",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
            assert_eq!(fast_rfc3339(s.as_bytes()), Some(Timestamp(chrono)), "{s}");
        }
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T08:00:00",
            "2026-11-24T08:00:00.Z",
        ] {
            assert_eq!(fast_rfc3339(s.as_bytes()), None, "{s}");
        }
    }

    proptest::proptest! {
        /// Any instant of years 0001–9999, in any offset (or `Z`), with 0–9 fraction digits: the
        /// fast parser answers, and as chrono does.
        #[test]
        fn the_fast_parser_agrees_with_chrono_on_any_instant(
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            digits in 0usize..10,
            zulu in proptest::bool::ANY,
        ) {
            let offset_min = if zulu { 0 } else { offset_min };
            let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&offset);
            let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            if digits > 0 {
                s.push('.');
                s.push_str(&format!("{:09}", nanos)[..digits]);
            }
            if zulu {
                s.push('Z');
            } else {
                s.push_str(&t.format("%:z").to_string());
            }
            let chrono = DateTime::parse_from_rfc3339(&s).unwrap().timestamp_millis();
            proptest::prop_assert_eq!(fast_rfc3339(s.as_bytes()), Some(Timestamp(chrono)), "{}", s);
        }

        /// Mangled times: when the fast parser answers at all, chrono agrees.
        #[test]
        fn the_fast_parser_never_answers_differently_from_chrono(
            edits in proptest::collection::vec(
                (0usize..32, proptest::sample::select(b"09+-:.TtZz 5\x00".to_vec())),
                1..4,
            ),
        ) {
            let mut b = b"2024-02-29T23:59:59.999+08:00".to_vec();
            for (at, byte) in edits {
                let at = at % (b.len() + 1);
                if at == b.len() { b.push(byte) } else { b[at] = byte }
            }
            if let Some(fast) = fast_rfc3339(&b) {
                let s = std::str::from_utf8(&b).unwrap();
                let chrono = DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis());
                proptest::prop_assert_eq!(Ok(fast.0), chrono.map_err(|e| e.to_string()), "{}", s);
            }
        }
    }

    #[test]
    fn rejects_times_without_offset() {
        assert!(Timestamp::parse_rfc3339("2026-11-24T08:00:00").is_err());
    }

    #[test]
    fn human_durations_round_trip() {
        for s in ["30m", "1h", "1h30m", "30d", "45s"] {
            assert_eq!(Millis::parse_human(s).unwrap().to_string(), s);
        }
        assert!(Millis::parse_human("10").is_err());
        assert!(Millis::parse_human("10y").is_err());
    }
}
