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
        decode_threads(text.len()),
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
        decode_threads(text.len()),
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

/// How many threads decode an input of `len` bytes: one per core the process may use, at most
/// 8, and only as many as give each at least [`BYTES_PER_DECODE_THREAD`] (below that, starting
/// a thread costs more than it saves).
fn decode_threads(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.min(8).min(len / BYTES_PER_DECODE_THREAD).max(1)
}

/// 1 MiB: ~1,800 alerts of ~580 bytes, a few milliseconds of decoding.
const BYTES_PER_DECODE_THREAD: usize = 1 << 20;

/// Every line of `text` decoded and admitted by `window`, with its time and 1-based line
/// number, in input order; the rest reported to `on_bad`, in line order. A command without a
/// usable `at` is taken as received at the time of the record before it (the first record's,
/// if none is).
///
/// Decoding is pure and each line stands alone, so a large input is cut at line boundaries
/// into `threads` pieces (the callers pass [`decode_threads`]) decoded side by side; the pieces
/// are then joined in input order, so the result (and every replay) is the same on any number
/// of threads. Decoding is about half of a replay's work; the engine, which must see the
/// records one after another in time order, runs on one thread after.
fn read_records<'t>(
    text: &'t [u8],
    threads: usize,
    max_bytes: usize,
    mappings: &Mappings,
    window: &Window,
    summary: &mut Summary,
    on_bad: &mut impl FnMut(&BadLine),
) -> Vec<(Timestamp, usize, Input<'t>)> {
    let pieces = line_pieces(text, threads);
    let decode = |piece: &'t [u8]| decode_piece(piece, max_bytes, mappings, window);
    let decoded: Vec<DecodedPiece<'t>> = match pieces.split_first() {
        None => Vec::new(),
        Some((first, [])) => vec![decode(first)],
        Some((first, rest)) => std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|piece| scope.spawn(move || decode(piece)))
                .collect();
            let mut decoded = vec![decode(first)];
            for handle in others {
                match handle.join() {
                    Ok(piece) => decoded.push(piece),
                    // Decoding does not panic on any input; if it ever did, the replay stops
                    // with that panic, as it would on one thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            decoded
        }),
    };
    let mut records: Vec<(Timestamp, usize, Input<'t>)> =
        Vec::with_capacity(decoded.iter().map(|p| p.records.len()).sum());
    let mut lines_before = 0;
    for piece in decoded {
        for (mut t, line, input) in piece.records {
            // A command whose `at` is unusable has no time of its own: it is taken as received
            // at the time of the record before it in the file (the replay's clock there), and
            // the engine answers it with `command.rejected` at that time.
            if let Input::Command(c) = &input {
                if c.event_time().is_none() {
                    t = records.last().map_or(Timestamp::MIN, |r| r.0);
                }
            }
            records.push((t, lines_before + line, input));
        }
        for mut bad in piece.bad {
            bad.line += lines_before;
            summary.rejected += 1;
            on_bad(&bad);
        }
        lines_before += piece.lines;
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

/// `text` cut into at most `n` pieces of about equal size, each ending just before a newline
/// (the newline itself belongs to no piece), so that splitting each piece at its newlines gives
/// exactly the lines of `text`, in order.
fn line_pieces(text: &[u8], n: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(n);
    let mut rest = text;
    for left in (2..=n).rev() {
        let target = rest.len() / left;
        let Some(newline) = rest
            .get(target..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
            .map(|at| target + at)
        else {
            break;
        };
        let (piece, tail) = rest.split_at(newline);
        pieces.push(piece);
        rest = tail.get(1..).unwrap_or_default();
    }
    pieces.push(rest);
    pieces
}

/// One piece's lines decoded: line numbers count from 1 at the piece's first line.
struct DecodedPiece<'t> {
    /// Admitted records with their times; a command without a usable `at` has none yet
    /// (`Timestamp::MIN`), since the record before it may be in the piece before.
    records: Vec<(Timestamp, usize, Input<'t>)>,
    bad: Vec<BadLine>,
    lines: usize,
}

fn decode_piece<'t>(
    piece: &'t [u8],
    max_bytes: usize,
    mappings: &Mappings,
    window: &Window,
) -> DecodedPiece<'t> {
    let mut decoded = DecodedPiece {
        records: Vec::new(),
        bad: Vec::new(),
        lines: 0,
    };
    for (i, line) in piece.split(|&b| b == b'\n').enumerate() {
        decoded.lines = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match decode_with(line, Expect::Either, max_bytes, mappings)
            .and_then(|input| admit(&input, window).map(|()| input))
        {
            Ok(input) => {
                let t = match &input {
                    Input::Command(c) if c.event_time().is_none() => Timestamp::MIN,
                    _ => input.time(),
                };
                decoded.records.push((t, i + 1, input));
            }
            Err(error) => decoded.bad.push(BadLine { line: i + 1, error }),
        }
    }
    decoded
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::mapping::NATIVE_ONLY;

    #[test]
    fn pieces_joined_by_newlines_are_the_text() {
        let texts: [&[u8]; 7] = [
            b"",
            b"\n",
            b"one line, no newline",
            b"a\nb\nc\n",
            b"\n\n\nlong line at the end ................................",
            b"a\r\nbb\r\n\r\nccc\ndddd\neeeee\nffffff\n",
            b"no newline until the very end ...........................\n",
        ];
        for text in texts {
            for n in 1..=9 {
                let pieces = line_pieces(text, n);
                assert!(!pieces.is_empty() && pieces.len() <= n);
                assert_eq!(pieces.join(&b'\n'), text, "{n} pieces of {text:?}");
            }
        }
    }

    /// Lines of every kind, out of time order: alerts, commands without a usable `at` (which
    /// take the time of the record before them), and lines that are skipped (bad JSON, an alert
    /// of year 0001, blank), spread through the input, CRLF and LF endings mixed.
    fn mixed_input() -> String {
        let mut text = String::new();
        for i in 0..240 {
            let line = match i % 12 {
                0 => r#"{"command":"ack","incident_id":"INC-1","at":"yesterday","by":"alice"}"#
                    .into(),
                3 => "{not json".into(),
                5 => String::new(),
                7 => crate::loadtest::alert_line(i, 17, "0001-01-01T00:00:00Z"),
                _ => {
                    // Out of order: the hours go round, the days do not.
                    let ts = format!("2026-11-{:02}T{:02}:00:00+08:00", 10 + i / 48, (i * 7) % 24);
                    crate::loadtest::alert_line(i, 17, &ts)
                }
            };
            text.push_str(&line);
            text.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
        }
        text
    }

    #[test]
    fn records_are_the_same_on_any_number_of_threads() {
        let text = mixed_input();
        let read = |threads| {
            let (mut summary, mut bad) = (Summary::default(), Vec::new());
            let records = read_records(
                text.as_bytes(),
                threads,
                0,
                &NATIVE_ONLY,
                &Window::REPLAY,
                &mut summary,
                &mut |b: &BadLine| bad.push(b.clone()),
            );
            let records: Vec<String> = records
                .iter()
                .map(|(t, line, input)| format!("{t:?} {line} {input:?}"))
                .collect();
            (records, bad, summary)
        };
        let one = read(1);
        assert_eq!(one.0.len(), 180, "8 alerts and a command of every 12 lines");
        assert_eq!(
            one.2.rejected, 40,
            "the bad JSON and the year-0001 alert of every 12"
        );
        assert!(one.1.windows(2).all(|w| w[0].line < w[1].line));
        for threads in 2..=7 {
            assert_eq!(read(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn a_command_first_in_its_piece_takes_the_time_of_the_record_ending_the_piece_before() {
        let alert = crate::loadtest::alert_line(1, 1, "2026-11-24T10:00:00+08:00");
        let command = r#"{"command":"ack","incident_id":"INC-1","at":"yesterday","by":"alice"}"#;
        let text = format!("{alert}\n{command}\n");
        let second_piece = format!("{command}\n");
        assert_eq!(line_pieces(text.as_bytes(), 2)[1], second_piece.as_bytes());
        let records = read_records(
            text.as_bytes(),
            2,
            0,
            &NATIVE_ONLY,
            &Window::REPLAY,
            &mut Summary::default(),
            &mut |_: &BadLine| {},
        );
        let times: Vec<_> = records.iter().map(|(t, line, _)| (*t, *line)).collect();
        assert_eq!(times, [(records[0].0, 1), (records[0].0, 2)]);
        assert!(matches!(&records[1].2, Input::Command(c) if c.received_at == Some(records[0].0)));
    }

    #[test]
    fn a_large_input_is_decoded_on_more_than_one_thread_when_there_are_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(decode_threads(0), 1);
        assert_eq!(decode_threads(BYTES_PER_DECODE_THREAD - 1), 1);
        assert_eq!(decode_threads(100 * BYTES_PER_DECODE_THREAD), cores.min(8));
    }
}
