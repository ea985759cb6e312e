//! Event-time admission: the check at the edge of the core that a record's times are plausible
//! before it may reach the engine. Both drivers use [`admit`]: the live router with a window
//! around its processing clock ([`Window::live`]), `replay` with a fixed range ([`Window::REPLAY`],
//! since there the input's own span is the clock). A rejected record is dead-lettered (live) or
//! reported with its line number (replay) as `event_time_out_of_range`, and counted like every
//! other rejection.
//!
//! Why it exists (#18): the engine trusts event time — deadlines, repeats and durations are
//! computed from it — so one alert dated `0001-01-01T00:00:00Z` (Go's zero `time.Time`, which
//! real shippers emit) put its deadline two thousand years behind the clock, and one dated
//! 9999-12-31 dragged a replay's clock eight thousand years ahead. Neither is a date any
//! incident happened at; both are bugs upstream, and the sender should hear about them.
//!
//! Pure: the clock is a parameter.

use crate::decode::DecodeError;
use crate::model::alert::Span;
use crate::model::Input;
use crate::time::{Millis, Timestamp, DAY, HOUR};

/// The instants a record's times may take, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

/// Default of `input.max_event_age`: a little over a year. Long enough for a late import of the
/// past year's alerts (an archive re-sent after an outage, a year-end review back-filling what a
/// SIEM found) — such alerts are still graded and their reports fall due (overdue at once,
/// folded into one event each) — yet far short of the defaults broken shippers write: year 1,
/// the Unix epoch.
pub const DEFAULT_MAX_AGE: Millis = Millis(400 * DAY);

/// Default of `input.max_event_skew`: how far ahead of the processing clock a record may be.
/// Hosts without NTP drift seconds to minutes; an hour keeps them. A timestamp written in local
/// time but labelled `Z` is hours off (+8 h in China Standard Time): that is rejected, and the
/// sender learns of it now rather than when a deadline comes out eight hours late.
pub const DEFAULT_MAX_SKEW: Millis = Millis(HOUR);

impl Window {
    /// `replay`'s fixed range: 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z (exclusive).
    /// Replays are of recorded or made-up days; nothing outside this century is either, and it
    /// keeps out year 1, year 9999 and the Unix epoch.
    pub const REPLAY: Window = Window {
        earliest: Timestamp(946_684_800_000),
        latest: Timestamp(4_102_444_800_000 - 1),
    };

    /// The live service's window: at most `max_age` behind `now`, at most `max_skew` ahead.
    pub fn live(now: Timestamp, max_age: Millis, max_skew: Millis) -> Self {
        Window {
            earliest: now.minus(max_age),
            latest: now.plus(max_skew),
        }
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

/// Checks every time a record carries: an alert's `timestamp` and the ends of its intervals
/// (`impact.outage`, `impact.unreachable`, `impact.defacement`), a command's `at`. Each must lie
/// in `window`, and no interval may end before it begins (an absent `since` is the alert's
/// `timestamp`). The error names the first field at fault.
pub fn admit(input: &Input<'_>, window: &Window) -> Result<(), DecodeError> {
    match input {
        // A command whose `at` is unusable is rejected by the engine, naming `at`.
        Input::Command(c) if c.problem().is_some_and(|p| !p.at_usable) => Ok(()),
        Input::Command(c) => check(window, "at", c.at),
        Input::Alert(a) => {
            check(window, "timestamp", a.timestamp)?;
            let i = &a.impact;
            let spans = [
                ("impact.outage", i.outage.as_ref().map(|o| &o.span)),
                ("impact.unreachable", i.unreachable.as_ref()),
                ("impact.defacement", i.defacement.as_ref().map(|d| &d.span)),
            ];
            for (name, span) in spans {
                if let Some(span) = span {
                    interval(window, name, span, a.timestamp)?;
                }
            }
            Ok(())
        }
    }
}

fn interval(
    window: &Window,
    name: &str,
    span: &Span,
    timestamp: Timestamp,
) -> Result<(), DecodeError> {
    if let Some(since) = span.since {
        check(window, &format!("{name}.since"), since)?;
    }
    if let Some(until) = span.until {
        check(window, &format!("{name}.until"), until)?;
        let (since, from) = match span.since {
            Some(s) => (s, format!("`{name}.since`")),
            None => (
                timestamp,
                "the alert's `timestamp` (no `since` given)".to_string(),
            ),
        };
        if until < since {
            return Err(DecodeError::BadValue {
                field: format!("{name}.until"),
                problem: format!(
                    "the interval ends before it begins: {} is before {from} {}",
                    utc(until),
                    utc(since)
                ),
            });
        }
    }
    Ok(())
}

fn check(window: &Window, field: &str, t: Timestamp) -> Result<(), DecodeError> {
    if window.contains(t) {
        return Ok(());
    }
    Err(DecodeError::EventTimeOutOfRange {
        field: field.to_string(),
        value: utc(t),
        earliest: utc(window.earliest),
        latest: utc(window.latest),
    })
}

fn utc(t: Timestamp) -> String {
    use chrono::Offset;
    t.format(chrono::Utc.fix())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Expect};

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("time")
    }

    fn judge(line: &str, w: &Window) -> Result<(), DecodeError> {
        let input = decode(line.as_bytes(), Expect::Either, 0).expect("decodes");
        admit(&input, w)
    }

    #[test]
    fn year_one_and_year_9999_are_out_of_range_live_and_in_replay() {
        let now = at("2026-11-24T08:00:00Z");
        let live = Window::live(now, DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW);
        for w in [live, Window::REPLAY] {
            for ts in [
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "1970-01-01T00:00:00Z",
            ] {
                let e = judge(&format!(r#"{{"id":"a","timestamp":"{ts}"}}"#), &w).unwrap_err();
                assert_eq!(e.code(), "event_time_out_of_range");
                assert!(e.to_string().contains("`timestamp`"), "{e}");
            }
        }
        let e = judge(r#"{"id":"a","timestamp":"0001-01-01T00:00:00Z"}"#, &live).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `timestamp` is 0001-01-01T00:00:00+00:00, outside the accepted event times \
             2025-10-20T08:00:00+00:00 to 2026-11-24T09:00:00+00:00"
        );
    }

    #[test]
    fn the_live_window_is_400_days_back_and_an_hour_ahead() {
        let now = at("2026-11-24T08:00:00Z");
        let w = Window::live(now, DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW);
        assert!(w.contains(now.minus(DEFAULT_MAX_AGE)));
        assert!(!w.contains(now.minus(DEFAULT_MAX_AGE).before()));
        assert!(w.contains(at("2026-11-24T09:00:00Z")));
        assert!(!w.contains(at("2026-11-24T09:00:00.001Z")));
    }

    #[test]
    fn interval_ends_are_checked_and_an_inverted_interval_names_its_field() {
        let w = Window::REPLAY;
        let e = judge(
            r#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"outage":{"since":"0001-01-01T00:00:00Z"}}}"#,
            &w,
        )
        .unwrap_err();
        assert_eq!(e.code(), "event_time_out_of_range");
        assert!(e.to_string().contains("`impact.outage.since`"), "{e}");
        let e = judge(
            r#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"unreachable":{"since":"2026-11-24T08:00:00Z","until":"2026-11-24T07:00:00Z"}}}"#,
            &w,
        )
        .unwrap_err();
        assert_eq!(e.code(), "bad_value");
        assert!(e.to_string().contains("`impact.unreachable.until`"), "{e}");
        assert!(e.to_string().contains("ends before it begins"), "{e}");
        // No `since`: the interval began at the alert's timestamp.
        let e = judge(
            r#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"defacement":{"until":"2026-11-24T07:00:00Z"}}}"#,
            &w,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`impact.defacement.until`"), "{e}");
        assert!(judge(
            r#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"outage":{"since":"2026-11-24T07:00:00Z","until":"2026-11-24T07:00:00Z"}}}"#,
            &w,
        )
        .is_ok());
    }

    #[test]
    fn a_command_at_is_checked() {
        let e = judge(
            r#"{"command":"ack","incident_id":"INC-1","at":"9999-01-01T00:00:00Z"}"#,
            &Window::REPLAY,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`at`"), "{e}");
    }
}
