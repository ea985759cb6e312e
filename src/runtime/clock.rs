//! The live service's clock. Normally the wall clock; the demo runs a simulated clock that starts
//! at a chosen instant and runs N times faster, so a day of alerts plays in minutes with the real
//! rules (1 h windows, 30 min reminders) unchanged.

use crate::time::Timestamp;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Clock {
    real_origin: Instant,
    sim_origin: Timestamp,
    speed: f64,
}

pub fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

impl Clock {
    pub fn wall() -> Self {
        Clock {
            real_origin: Instant::now(),
            sim_origin: wall_now(),
            speed: 1.0,
        }
    }

    /// A clock reading `start` now and advancing `speed` times faster than real time.
    pub fn simulated(start: Timestamp, speed: f64) -> Self {
        Clock {
            real_origin: Instant::now(),
            sim_origin: start,
            speed: speed.max(0.001),
        }
    }

    pub fn now(&self) -> Timestamp {
        let real = self.real_origin.elapsed().as_millis() as f64;
        Timestamp(self.sim_origin.0 + (real * self.speed) as i64)
    }

    /// Real time to wait until the clock reads `t` (zero if it already has).
    pub fn until(&self, t: Timestamp) -> Duration {
        let ms = (t.0 - self.now().0).max(0) as f64 / self.speed;
        Duration::from_millis(ms.ceil() as u64)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }
}
