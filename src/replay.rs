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
//!
//! [`catch_up_as_of`] (`klaxon replay --as-of`) answers the other question: what `klaxon run`
//! sends when it reads the same records as a backlog at a given instant (after downtime, or
//! a feed of old alerts). It drives the engines the way the live processor does, with the clock
//! standing at that instant, so missed repeats fold as they do live.

use crate::admission::{admit, Window};
use crate::decode::{decode_with, DecodeError, Expect, Mappings};
use crate::engine::{input_route_token, Engine};
use crate::model::{Escalation, Input};
use crate::runtime::keyed::{partition_for, routing_key};
use crate::settings::Config;
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
    let mut records = read_records(
        &text,
        max_bytes,
        mappings,
        &Window::REPLAY,
        &mut summary,
        &mut on_bad,
    );
    records.sort_by_key(|(t, n, _)| (*t, *n));
    summary.records = records.len();
    let total = records.len();
    for (done, (t, _, input)) in records.into_iter().enumerate() {
        if done % 8192 == 0 {
            on_progress(done, total);
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

/// `klaxon replay --as-of AT`: the input as `klaxon run` processes it when it reads it as a
/// backlog at `at` — one engine per state partition (`state.partitions`), each record on its
/// incident's partition as the router puts it; records in input order (a topic's order);
/// admitted by the live window around `at` (`input.max_event_age`, `input.max_event_skew`);
/// before each record, its engine's timers due up to just before the record's own time fire,
/// never past `at`, and after the input every timer due by `at` fires at `at`, in bounded
/// steps. So missed overdue repeats fold into one `report.overdue` per report, and stale
/// reminders are not sent, exactly as live (docs/robustness.md). Events are written engine by
/// engine in the order each made them; the live service interleaves partitions as its batches
/// fall, so compare the two as sets of lines.
pub fn catch_up_as_of<R: BufRead, W: Write>(
    config: &Config,
    mut input: R,
    at: Timestamp,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    let s = &config.settings;
    let mut summary = Summary::default();
    let mut text = Vec::new();
    input.read_to_end(&mut text)?;
    let records = read_records(
        &text,
        s.input.max_record_bytes,
        &config.mappings,
        &s.event_window(at),
        &mut summary,
        &mut on_bad,
    );
    summary.records = records.len();
    let partitions = s.state.partitions.max(1);
    let mut engines: Vec<Engine> = (0..partitions)
        .map(|_| Engine::from_config(config))
        .collect();
    for (t, _, input) in records {
        let token = input_route_token(&input, &config.registry, &s.correlation.group_by);
        let p = partition_for(&routing_key(token), partitions);
        let Some(engine) = usize::try_from(p).ok().and_then(|p| engines.get_mut(p)) else {
            continue;
        };
        summary.events += fire_due(engine, t.before().min(at), out)?;
        engine.handle(input);
        summary.events += drain(engine, out)?;
    }
    for engine in &mut engines {
        summary.events += fire_due(engine, at, out)?;
    }
    Ok(summary)
}

/// Every timer due by `now` fired at `now`, in bounded steps, as the live processor fires
/// them: overdue repeats that fell due by `now` fold into one. Returns how many events.
fn fire_due<W: Write>(engine: &mut Engine, now: Timestamp, out: &mut W) -> io::Result<usize> {
    let mut n = 0;
    loop {
        let more = engine.handle_timeout(now);
        n += drain(engine, out)?;
        if !more {
            return Ok(n);
        }
    }
}

/// Every line of `text` decoded and admitted by `window`, with its time and 1-based line
/// number, in input order; the rest reported to `on_bad`. A command without a usable `at` is
/// taken as received at the time of the record before it (the first record's, if none is).
fn read_records<'t>(
    text: &'t [u8],
    max_bytes: usize,
    mappings: &Mappings,
    window: &Window,
    summary: &mut Summary,
    on_bad: &mut impl FnMut(&BadLine),
) -> Vec<(Timestamp, usize, Input<'t>)> {
    let mut records: Vec<(Timestamp, usize, Input<'t>)> = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let decoded = decode_with(line, Expect::Either, max_bytes, mappings)
            .and_then(|input| admit(&input, window).map(|()| input));
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
    for (t, _, input) in &mut records {
        if let Input::Command(c) = input {
            if c.event_time().is_none() {
                c.received_at = Some(*t);
            }
        }
    }
    records
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
