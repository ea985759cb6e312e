//! Rate-limited log lines for what clients and the network can repeat without end: bad records,
//! rejected commands, a broker that is down. A flood of bad input, or librdkafka's error callback
//! while the broker is away, must not flood the log (the disk, the log shipper, the person
//! reading it). Per kind, the first few lines of each interval are written; the rest are counted
//! and summed up in one line ("suppressed K more") when the interval is over. The metrics keep
//! the exact counts: this only decides what is written.
//!
//! The decision is plain data with the instant passed in ([`LogLimit::note`], [`LogLimit::due`]),
//! so it is tested without a clock; [`LogLimit::admit`] and [`LogLimit::flush`] read the clock
//! and write the summary lines.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A kind of line: what happened (`record dead-lettered`) and a bounded reason code.
pub type Kind = (&'static str, &'static str);

/// Bad records and rejected commands: the first 5 of each reason every 30 s, each with its
/// details (enough to find the sender), then one summary.
pub static BAD_INPUT: LogLimit = LogLimit::new(5, Duration::from_secs(30));

/// Kafka client errors (the broker down, a transport failure): one line per kind every 30 s,
/// the next carrying how many were left out. librdkafka reports them per connection attempt,
/// several a second while a broker is away.
pub static CLIENT_ERRORS: LogLimit = LogLimit::new(1, Duration::from_secs(30));

/// Per kind, at most `burst` lines every `every`.
pub struct LogLimit {
    burst: u32,
    every: Duration,
    windows: Mutex<BTreeMap<Kind, Window>>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether to write this occurrence's line.
    pub log: bool,
    /// Lines of this kind left out in the interval that just ended: write the summary first.
    pub suppressed_before: u64,
}

impl LogLimit {
    pub const fn new(burst: u32, every: Duration) -> Self {
        LogLimit {
            burst,
            every,
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Notes one occurrence of `kind` at `now`.
    pub fn note(&self, kind: Kind, now: Instant) -> Verdict {
        let Ok(mut windows) = self.windows.lock() else {
            // A panic elsewhere poisoned the lock: log rather than lose the line.
            return Verdict {
                log: true,
                suppressed_before: 0,
            };
        };
        let fresh = Window {
            start: now,
            logged: 0,
            suppressed: 0,
        };
        let w = windows.entry(kind).or_insert(fresh);
        let mut suppressed_before = 0;
        if now.saturating_duration_since(w.start) >= self.every {
            suppressed_before = w.suppressed;
            *w = fresh;
        }
        let log = w.logged < self.burst;
        if log {
            w.logged += 1;
        } else {
            w.suppressed += 1;
        }
        Verdict {
            log,
            suppressed_before,
        }
    }

    /// The kinds whose interval is over with lines left out, and how many; their windows end
    /// (a later occurrence starts a new one). In kind order.
    pub fn due(&self, now: Instant) -> Vec<(Kind, u64)> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        windows.retain(|kind, w| {
            if now.saturating_duration_since(w.start) < self.every {
                return true;
            }
            if w.suppressed > 0 {
                out.push((*kind, w.suppressed));
            }
            false
        });
        out
    }

    /// [`LogLimit::note`] on the clock, writing the summary of the interval just ended if lines
    /// were left out in it. Returns whether to write this occurrence's line.
    pub fn admit(&self, kind: Kind) -> bool {
        let v = self.note(kind, Instant::now());
        if v.suppressed_before > 0 {
            self.summary(kind, v.suppressed_before);
        }
        v.log
    }

    /// Writes the summaries of every interval that is over (call it now and then: a flood that
    /// stops still gets its summary).
    pub fn flush(&self) {
        for (kind, n) in self.due(Instant::now()) {
            self.summary(kind, n);
        }
    }

    fn summary(&self, (what, reason): Kind, n: u64) {
        tracing::warn!(
            what,
            reason,
            suppressed = n,
            interval_s = self.every.as_secs(),
            "suppressed {n} more \"{what}\" lines ({reason}) in the last interval; the metrics count every one"
        );
    }
}

/// Flushes the summaries of every limiter (the stages call it now and then).
pub fn flush_all() {
    BAD_INPUT.flush();
    CLIENT_ERRORS.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Kind = ("record dead-lettered", "not_json");
    const OTHER: Kind = ("record dead-lettered", "too_large");

    #[test]
    fn a_flood_is_logged_a_few_lines_an_interval_and_summed_up() {
        let limit = LogLimit::new(5, Duration::from_secs(30));
        let t0 = Instant::now();
        let logged = (0..10_000)
            .filter(|i| limit.note(DEAD, t0 + Duration::from_millis(*i)).log)
            .count();
        assert_eq!(logged, 5, "the first 5 of the interval");
        // Another reason has its own allowance.
        assert!(limit.note(OTHER, t0).log);
        // Nothing is due before the interval is over.
        assert_eq!(limit.due(t0 + Duration::from_secs(29)), vec![]);
        // The next occurrence after the interval says how many were left out, and is logged.
        let v = limit.note(DEAD, t0 + Duration::from_secs(31));
        assert_eq!(
            v,
            Verdict {
                log: true,
                suppressed_before: 9_995
            }
        );
    }

    #[test]
    fn a_flood_that_stops_is_summed_up_by_the_flush() {
        let limit = LogLimit::new(1, Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..100 {
            limit.note(DEAD, t0 + Duration::from_millis(i));
        }
        limit.note(OTHER, t0);
        let due = limit.due(t0 + Duration::from_secs(30));
        // Only the kind with lines left out gets a summary; both windows end.
        assert_eq!(due, vec![(DEAD, 99)]);
        assert_eq!(limit.due(t0 + Duration::from_secs(90)), vec![]);
        // A new occurrence starts afresh.
        assert!(limit.note(DEAD, t0 + Duration::from_secs(91)).log);
        assert!(!limit.note(DEAD, t0 + Duration::from_secs(92)).log);
    }

    #[test]
    fn a_trickle_is_never_suppressed() {
        let limit = LogLimit::new(5, Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..100u64 {
            let v = limit.note(DEAD, t0 + Duration::from_secs(10 * i));
            assert!(v.log);
            assert_eq!(v.suppressed_before, 0);
        }
    }
}
