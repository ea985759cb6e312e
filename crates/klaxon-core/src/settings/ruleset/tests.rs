use super::*;
use crate::time::{DAY, HOUR, MINUTE};
use proptest::prelude::*;

fn shipped() -> OverdueSchedule {
    OverdueSchedule::new(
        Millis(30 * MINUTE),
        &[
            (Millis(2 * HOUR), Millis(4 * HOUR)),
            (Millis(DAY), Millis(DAY)),
        ],
    )
}

#[test]
fn the_shipped_schedule_backs_off_to_daily() {
    let s = shipped();
    let offsets: Vec<String> = (1..=14).map(|n| s.offset(n).to_string()).collect();
    assert_eq!(
        offsets,
        [
            "0s", "30m", "1h", "1h30m", "2h", "6h", "10h", "14h", "18h", "22h", "1d", "2d", "3d",
            "4d"
        ]
    );
    assert_eq!(
        s.describe(),
        "every 30m until 2h, then every 4h until 1d, then every 1d"
    );
    // Ten days late: 10 steps in the first day, then one a day.
    assert_eq!(s.step_at(Millis(10 * DAY)), 20);
    assert_eq!(s.step_at(Millis(-1)), 0);
    assert_eq!(
        OverdueSchedule::every(Millis(30 * MINUTE))
            .offset(3)
            .to_string(),
        "1h"
    );
}

proptest! {
    /// `step_at` is the inverse of `offset`: the step due at an offset is that step, and
    /// just before it the one before.
    #[test]
    fn step_at_inverts_offset(n in 1u32..5000, a in 1i64..300, b in 1i64..300, c in 1i64..3000) {
        let s = OverdueSchedule::new(
            Millis(a * MINUTE),
            &[(Millis(a * MINUTE * 3), Millis(b * MINUTE)), (Millis(a * MINUTE * 3 + c * MINUTE), Millis(c * MINUTE))],
        );
        let at = s.offset(n);
        prop_assert_eq!(s.step_at(at), n);
        prop_assert_eq!(s.step_at(Millis(at.0 - 1)), n - 1);
        prop_assert!(s.offset(n + 1) > at);
    }
}
