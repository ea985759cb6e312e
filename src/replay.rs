//! The event-time driver: reads JSON lines (alerts and commands), orders them by event time
//! (ties keep file order), and drives the engine with the clock set to each record's time, so
//! timers fire exactly where they fall between records. With `until`, the clock then advances
//! to that instant.
//!
//! Ordering by event time reconstructs what a live service would have seen with no delivery
//! delay; it is also what makes the output come out in time order.

use crate::decode::{decode, DecodeError, Expect};
use crate::engine::Engine;
use crate::model::Escalation;
use crate::time::Timestamp;
use std::io::{self, BufRead, Write};

/// A line that was skipped, with its 1-based number.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    pub line: usize,
    pub error: DecodeError,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub rejected: usize,
    pub events: usize,
}

/// Runs the whole input through `engine`, writing one event per line to `out`.
pub fn run<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    max_bytes: usize,
    until: Option<Timestamp>,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut records = Vec::new();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let trimmed = line.strip_suffix(b"\r").unwrap_or(&line);
        if trimmed.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match decode(trimmed, Expect::Either, max_bytes) {
            Ok(input) => records.push((input.time(), i + 1, input)),
            Err(error) => {
                summary.rejected += 1;
                on_bad(&BadLine { line: i + 1, error });
            }
        }
    }
    records.sort_by_key(|(t, n, _)| (*t, *n));
    summary.records = records.len();
    for (t, _, input) in records {
        // Timers due strictly before the record fire first; one due at the very same instant
        // fires after it, so a report filed at its deadline is on time.
        engine.handle_timeout(t.before());
        summary.events += drain(engine, out)?;
        engine.handle(input);
        summary.events += drain(engine, out)?;
    }
    if let Some(u) = until {
        engine.handle_timeout(u);
        summary.events += drain(engine, out)?;
    }
    Ok(summary)
}

/// Writes every pending event; returns how many.
pub fn drain<W: Write>(engine: &mut Engine, out: &mut W) -> io::Result<usize> {
    let mut n = 0;
    while let Some(ev) = engine.poll_output() {
        write_event(&ev, out)?;
        n += 1;
    }
    Ok(n)
}

pub fn write_event<W: Write>(ev: &Escalation, out: &mut W) -> io::Result<()> {
    serde_json::to_writer(&mut *out, ev).map_err(io::Error::other)?;
    out.write_all(b"\n")
}
