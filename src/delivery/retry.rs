//! When to try again: exponential backoff with jitter, and which answers are worth retrying.
//! Pure (the random draw is passed in), so the schedule is tested without waiting.

use std::time::Duration;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The sink took it (2xx).
    Delivered,
    /// Worth another try: a transport error, a timeout, 408, 429 or 5xx.
    Retry(String),
    /// Trying again cannot help: any other 4xx (or a 3xx: redirects are not followed, since a
    /// redirected POST would lose its body or its signature's meaning).
    Permanent(String),
}

impl Attempt {
    /// Classifies an HTTP status code.
    pub fn from_status(code: u16) -> Attempt {
        match code {
            200..=299 => Attempt::Delivered,
            408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {code}")),
            _ => Attempt::Permanent(format!("HTTP {code}")),
        }
    }

    /// The bounded label of the attempts metric.
    pub fn label(&self) -> &'static str {
        match self {
            Attempt::Delivered => "ok",
            Attempt::Retry(_) => "retryable_error",
            Attempt::Permanent(_) => "permanent_error",
        }
    }
}

/// Exponential backoff: attempt `n` (1-based, the attempt that just failed) waits
/// `initial · 2^(n−1)`, capped at `max`, then scaled into `[½, 1]` of that by `jitter` ∈ [0, 1)
/// ("equal jitter": retries of many events failing together spread out, and none waits less
/// than half its step).
pub fn backoff(initial: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let step = initial.saturating_mul(1u32 << exp).min(max);
    let scale = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    step.mul_f64(scale)
}

/// A small random source for jitter (xorshift seeded from the process's random state): jitter
/// needs no cryptographic quality, and a crate for it would be one more dependency.
pub struct Jitter(u64);

impl Default for Jitter {
    fn default() -> Self {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x6b6c_6178u32);
        Jitter(seed | 1)
    }
}

impl Jitter {
    /// A draw in [0, 1).
    pub fn draw(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_keeps_at_least_half() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(
            backoff(i, m, 1, 0.999_999),
            Duration::from_secs(1).mul_f64(0.9999995)
        );
        assert_eq!(backoff(i, m, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(i, m, 4, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(i, m, 10, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(i, m, 100, 0.0), Duration::from_secs(30));
        let mut j = Jitter::default();
        for _ in 0..1000 {
            let x = j.draw();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn only_transient_answers_are_retried() {
        assert_eq!(Attempt::from_status(204), Attempt::Delivered);
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(Attempt::from_status(code), Attempt::Retry(_)),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(Attempt::from_status(code), Attempt::Permanent(_)),
                "{code}"
            );
        }
    }
}
