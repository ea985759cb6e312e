//! The event-time driver: reads JSON lines (alerts and commands), orders them by event time
//! (ties keep file order), and drives the engine with the clock set to each record's time, so
//! timers fire exactly where they fall between records. With `until`, the clock then advances
//! to that instant.
//!
//! Records whose times are implausible (outside [`Window::REPLAY`], or an interval that ends
//! before it begins) are reported like any bad line and skipped: they never move the clock.
//!
//! Ordering by event time reconstructs what a live service would have seen with no delivery
//! delay; it is also what makes the output come out in time order.

use crate::admission::{admit, Window};
use crate::decode::{decode_with, DecodeError, Expect, Mappings};
use crate::engine::Engine;
use crate::model::{Escalation, Input};
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

/// Runs the whole input through `engine`, writing one event per line to `out`. Native records
/// only; [`run_with`] also reads the formats of the config's field mappings.
pub fn run<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    max_bytes: usize,
    until: Option<Timestamp>,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    run_with(
        engine,
        input,
        max_bytes,
        &crate::decode::mapping::NATIVE_ONLY,
        until,
        out,
        on_bad,
    )
}

/// [`run`] with the input formats of `mappings` (`Config::mappings`): ECS, OCSF, … alerts are
/// mapped onto the native model, everything else is read as native.
pub fn run_with<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    max_bytes: usize,
    mappings: &Mappings,
    until: Option<Timestamp>,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    run_with_progress(
        engine,
        input,
        max_bytes,
        mappings,
        until,
        out,
        on_bad,
        &mut |_, _| {},
    )
}

/// [`run_with`], reporting (records read, records to process) as it goes, for a progress bar.
#[allow(clippy::too_many_arguments)]
pub fn run_with_progress<R: BufRead, W: Write>(
    engine: &mut Engine,
    mut input: R,
    max_bytes: usize,
    mappings: &Mappings,
    until: Option<Timestamp>,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(usize, usize),
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    // The whole input is read into one buffer and each record decoded once, its strings
    // borrowed from the buffer, then sorted by time and applied. Decoding each record a second
    // time after sorting instead held ~500 bytes less per alert (176 against 273 MB of RSS for
    // 200,000 alerts of ~580 bytes, the text itself 116 MB) but took 1.4 × as long (median of
    // 5: 0.62 against 0.43 s): replay is an offline tool whose input is in memory either way,
    // and its speed is what a backtest of a rule change waits on (docs/benchmarks.md).
    let mut text = Vec::new();
    input.read_to_end(&mut text)?;
    let mut records: Vec<(Timestamp, usize, Input<'_>)> = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let decoded = decode_with(line, Expect::Either, max_bytes, mappings)
            .and_then(|input| admit(&input, &Window::REPLAY).map(|()| input));
        match decoded {
            // A command whose `at` is unusable has no time of its own: it is taken as received
            // at the time of the record before it in the file (the replay's clock there), and
            // the engine answers it with `command.rejected` at that time.
            Ok(Input::Command(c)) if c.event_time().is_none() => {
                let t = records.last().map_or(Timestamp::MIN, |r| r.0);
                records.push((t, i + 1, Input::Command(c)));
            }
            Ok(input) => records.push((input.time(), i + 1, input)),
            Err(error) => {
                summary.rejected += 1;
                on_bad(&BadLine { line: i + 1, error });
            }
        }
    }
    // Such a command before any other record takes the first record's time.
    let first = records
        .iter()
        .map(|r| r.0)
        .find(|t| *t != Timestamp::MIN)
        .unwrap_or(Window::REPLAY.earliest);
    for r in records.iter_mut().filter(|r| r.0 == Timestamp::MIN) {
        r.0 = first;
    }
    records.sort_by_key(|(t, n, _)| (*t, *n));
    summary.records = records.len();
    let total = records.len();
    for (done, (t, _, mut input)) in records.into_iter().enumerate() {
        if done % 8192 == 0 {
            on_progress(done, total);
        }
        if let Input::Command(c) = &mut input {
            if c.event_time().is_none() {
                c.received_at = Some(t);
            }
        }
        // Timers due strictly before the record fire first; one due at the very same instant
        // fires after it, so a report filed at its deadline is on time.
        summary.events += advance(engine, t.before(), out)?;
        engine.handle(input);
        summary.events += drain(engine, out)?;
    }
    if let Some(u) = until {
        summary.events += advance(engine, u, out)?;
    }
    on_progress(total, total);
    Ok(summary)
}

/// Fires the timers due by `to`, each at its own instant, writing their events as each bounded
/// step makes them; returns how many. Event time advances continuously in a replay, as the
/// wall clock does under a live service that keeps up, so no repeat is folded and no reminder
/// is stale: the output is what such a service would have sent, one step at a time (memory
/// stays flat however many timers fall due between two records).
pub fn advance<W: Write>(engine: &mut Engine, to: Timestamp, out: &mut W) -> io::Result<usize> {
    let mut n = 0;
    while let Some(t) = engine.poll_timeout().filter(|t| *t <= to) {
        engine.handle_timeout(t);
        n += drain(engine, out)?;
    }
    Ok(n)
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
