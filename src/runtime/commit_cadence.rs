//! When the stages make their progress durable. Under a steady stream the processor flushes state
//! and commits offsets every `state.commit_interval`, and the router lets librdkafka commit every
//! second: writes coalesce, and a crash re-reads at most that much input. When the input goes
//! quiet there is nothing left to coalesce, so both commit as soon as it has been quiet for
//! [`QUIET_AFTER`] instead of waiting out the interval: the end of a burst is durable (and a
//! restart re-reads none of it) within tens of milliseconds rather than up to 1.5 s later.
//!
//! An early commit needs a quiet gap after a batch, so a stream that keeps batches coming never
//! triggers one, and a trickle triggers at most one per batch read and one per [`min_gap`] (a
//! tenth of the interval, at most a second).

use std::time::{Duration, Instant};

/// How long the input must stay quiet after a batch before an early commit. Above the fetch wait
/// (10 ms, `kafka::FETCH_WAIT_MS`) that separates the batches of a running stream on brokers that
/// hold an empty fetch for it.
pub const QUIET_AFTER: Duration = Duration::from_millis(50);

/// The least time between two commits when early ones are taken: a tenth of the interval, and at
/// most a second (an operator who sets a long interval to save writes under load still sees a
/// burst made durable within a second of its end).
pub fn min_gap(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_secs(1))
}

/// When to commit early, given the last batch read, the last commit and the regular interval:
/// once the input has been quiet for [`QUIET_AFTER`], not sooner than [`min_gap`] after the last
/// commit, and never later than the interval would.
pub fn early_commit_at(last_batch: Instant, last_commit: Instant, interval: Duration) -> Instant {
    (last_batch + QUIET_AFTER)
        .max(last_commit + min_gap(interval))
        .min(last_commit + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_is_committed_once_the_input_has_been_quiet_briefly() {
        let commit = Instant::now();
        let batch = commit + Duration::from_millis(400);
        assert_eq!(early_commit_at(batch, commit, SECOND), batch + QUIET_AFTER);
    }

    #[test]
    fn early_commits_come_at_most_ten_per_interval() {
        let commit = Instant::now();
        let batch = commit + Duration::from_millis(5);
        assert_eq!(
            early_commit_at(batch, commit, SECOND),
            commit + Duration::from_millis(100)
        );
    }

    #[test]
    fn a_long_interval_still_commits_a_burst_within_a_second() {
        let commit = Instant::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(early_commit_at(commit, commit, hour), commit + SECOND);
        let batch = commit + Duration::from_secs(120);
        assert_eq!(early_commit_at(batch, commit, hour), batch + QUIET_AFTER);
    }

    #[test]
    fn never_later_than_the_interval() {
        let commit = Instant::now();
        let interval = Duration::from_millis(30);
        let batch = commit + Duration::from_millis(20);
        assert_eq!(early_commit_at(batch, commit, interval), commit + interval);
    }
}
