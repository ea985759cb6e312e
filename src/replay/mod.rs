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
//!
//! Memory: a replay holds its input decoded while it sorts it (~2.3 × the input's size); a
//! file larger than `--hold-max-mib` is replayed in two passes instead, holding 32 bytes per
//! record, and a pipe is copied to a temporary file first ([`run_input_with_progress`]).
//! `--as-of` reads in input order, so it reads a chunk at a time from a file or standard input
//! alike.

mod lines;

use crate::admission::Window;
use crate::decode::{decode_with, DecodeError, Expect, Mappings};
use crate::engine::{input_route_token, Engine};
use crate::model::{Escalation, Input};
use crate::runtime::keyed::{partition_for, routing_key};
use crate::settings::Config;
use crate::time::Timestamp;
use lines::{decode_threads, read_records, Held, LineChunks, Position, CHUNK_BYTES};
/// How replay cuts and splits its input; the replay benchmark's baseline cuts its own the same way.
pub use lines::{line_pieces, split_lines};
use std::fs::File;
use std::io::{self, BufRead, Read, Write};

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
    let reading = Reading {
        max_bytes,
        mappings,
        until,
    };
    run_with_progress(engine, input, reading, out, on_bad, &mut |_| {})
}

/// How far a replay has come, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A pipe being copied to a temporary file ([`run_input_with_progress`]): bytes so far, of
    /// an unknown whole.
    Copying { bytes: u64 },
    /// Pass one of a replay in two passes: bytes of the file read and decoded so far, of all.
    Reading { bytes: u64, of: u64 },
    /// Records applied to the engine so far, of all, in time order.
    Applying { records: usize, of: usize },
}

/// How a replay reads its records and where its clock ends.
#[derive(Clone, Copy)]
pub struct Reading<'m> {
    /// The largest record accepted (`input.max_record_bytes`; 0: no limit).
    pub max_bytes: usize,
    /// The input formats (`Config::mappings`).
    pub mappings: &'m Mappings,
    /// After the input, the clock advances to this instant, so timers up to it fire.
    pub until: Option<Timestamp>,
}

/// [`run_with`], reporting its [`Progress`] as it goes.
pub fn run_with_progress<R: BufRead, W: Write>(
    engine: &mut Engine,
    mut input: R,
    reading: Reading<'_>,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(Progress),
) -> io::Result<Summary> {
    let mut text = Vec::new();
    input.read_to_end(&mut text)?;
    run_held(engine, &text, reading, out, on_bad, on_progress)
}

/// The whole input in one buffer, each record decoded once, its strings borrowed from the
/// buffer, then sorted by time and applied: the fastest way, for ~2.3 × the input's size in
/// memory. A large input is replayed in two passes instead ([`run_input_with_progress`]),
/// holding 32 bytes per record (docs/benchmarks.md).
fn run_held<W: Write>(
    engine: &mut Engine,
    text: &[u8],
    reading: Reading<'_>,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(Progress),
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut records = read_records(
        text,
        decode_threads(text.len()),
        reading.max_bytes,
        reading.mappings,
        &Window::REPLAY,
        &mut Position::default(),
        &mut summary,
        &mut on_bad,
    );
    settle_times(&mut records);
    records.sort_by_key(|r| (r.time, r.line));
    summary.records = records.len();
    let total = records.len();
    for (done, r) in records.into_iter().enumerate() {
        if done % 8192 == 0 {
            on_progress(Progress::Applying {
                records: done,
                of: total,
            });
        }
        summary.events += apply(engine, r.time, r.input, out)?;
    }
    if let Some(u) = reading.until {
        summary.events += advance(engine, u, out)?;
    }
    on_progress(Progress::Applying {
        records: total,
        of: total,
    });
    Ok(summary)
}

/// Inputs up to this many bytes are replayed in memory ([`run_with_progress`]: the fastest,
/// holding each record decoded, ~2.3 × the input's size); a larger file is replayed in two
/// passes from the file ([`run_input_with_progress`]), holding 32 bytes per record.
pub const HOLD_DECODED_MAX_BYTES: u64 = 1 << 30;

/// Where a replay reads its input from ([`run_input_with_progress`]).
pub enum Source<'a> {
    /// A file; one that is not a regular file (a named pipe, `<(zcat …)`) is read as a stream.
    File(&'a File),
    /// A stream that can be read only once (standard input from a pipe).
    Stream(&'a mut dyn Read),
}

/// [`run_with_progress`] for a file or a stream. A regular file is held in memory when it is
/// at most `hold_max_bytes` long, otherwise replayed in two passes, so that a replay of months
/// of alerts needs memory for its incidents and 32 bytes per record, not for its whole text
/// decoded. Pass one reads the file in chunks of 64 MiB, each decoded on every core, and keeps
/// each record's time and place; pass two sorts those and reads each record again where it
/// lies, decodes it again and applies it. The output is byte-identical either way; two passes
/// take longer (each record is decoded twice, the second time on one thread).
///
/// A stream is copied to an anonymous temporary file first (`tempfile::tempfile`: in `$TMPDIR`,
/// unlinked from the start, so it is gone when the replay ends or dies), reporting
/// [`Progress::Copying`], then replayed from it as a file: `zcat month.jsonl.gz | klaxon replay
/// -` needs the month's size on disk, not 2.3 × it in memory. (Reading a stream into memory first
/// and spilling past the limit was slower and held a GiB more.) Where no temporary file can be
/// made (a read-only filesystem), the stream is held, as it always was before.
pub fn run_input_with_progress<W: Write>(
    engine: &mut Engine,
    source: Source<'_>,
    hold_max_bytes: u64,
    reading: Reading<'_>,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(Progress),
) -> io::Result<Summary> {
    let (mut pipe, spool): (&File, File);
    let file = match source {
        Source::File(file) if file.metadata()?.is_file() => file,
        Source::File(file) if file.metadata()?.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a directory, not a file of JSON lines",
            ));
        }
        other => {
            let stream: &mut dyn Read = match other {
                Source::File(file) => {
                    pipe = file;
                    &mut pipe
                }
                Source::Stream(stream) => stream,
            };
            let Ok(mut copy) = tempfile::tempfile() else {
                let mut text = Vec::new();
                stream.read_to_end(&mut text)?;
                return run_held(engine, &text, reading, out, on_bad, on_progress);
            };
            copy_reporting(stream, &mut copy, on_progress)?;
            io::Seek::rewind(&mut copy).map_err(in_temporary_file)?;
            spool = copy;
            &spool
        }
    };
    if file.metadata()?.len() <= hold_max_bytes {
        let input = io::BufReader::new(file);
        return run_with_progress(engine, input, reading, out, on_bad, on_progress);
    }
    let passes = TwoPasses {
        file,
        chunk_bytes: CHUNK_BYTES,
        reading,
    };
    passes.run(engine, out, on_bad, on_progress)
}

/// `input` into `spool` through one reused 1 MiB buffer, reporting [`Progress::Copying`] every
/// 64 MiB: a month of alerts from `zcat` takes a minute to arrive, and a bar that stands still
/// that long looks hung. (`io::copy` would `splice` pipe to file but says nothing as it goes; it
/// was no faster: 2 M alerts piped replayed in 5.4–5.9 s with it, 4.6–4.8 s with this.)
fn copy_reporting(
    input: &mut dyn Read,
    spool: &mut File,
    on_progress: &mut dyn FnMut(Progress),
) -> io::Result<u64> {
    const REPORT_EVERY: u64 = 64 << 20;
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut reported) = (0u64, 0u64);
    on_progress(Progress::Copying { bytes });
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading the input: {e}"))),
        };
        spool.write_all(&buf[..n]).map_err(in_temporary_file)?;
        bytes += n as u64;
        if bytes - reported >= REPORT_EVERY {
            on_progress(Progress::Copying { bytes });
            reported = bytes;
        }
    }
    on_progress(Progress::Copying { bytes });
    Ok(bytes)
}

/// An error of the temporary file a stream is copied to, saying where it is (a full disk is the
/// likely cause, and `$TMPDIR` the remedy).
fn in_temporary_file(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "copying the input to a temporary file in {} ($TMPDIR): {e}",
            std::env::temp_dir().display()
        ),
    )
}

/// A record of a large file, as pass one leaves it for pass two.
struct Placed {
    time: Timestamp,
    line: usize,
    at: u64,
    len: usize,
}

/// A replay of a file in two passes (see [`run_input_with_progress`]).
struct TwoPasses<'a> {
    file: &'a File,
    chunk_bytes: usize,
    reading: Reading<'a>,
}

impl TwoPasses<'_> {
    fn run<W: Write>(
        &self,
        engine: &mut Engine,
        out: &mut W,
        mut on_bad: impl FnMut(&BadLine),
        on_progress: &mut dyn FnMut(Progress),
    ) -> io::Result<Summary> {
        let mut summary = Summary::default();
        let mut placed = self.place_records(&mut summary, &mut on_bad, on_progress)?;
        let first = first_time(placed.iter().map(|p| p.time));
        for p in placed.iter_mut().filter(|p| p.time == Timestamp::MIN) {
            p.time = first;
        }
        placed.sort_by_key(|p| (p.time, p.line));
        summary.records = placed.len();
        let total = placed.len();
        let Reading {
            max_bytes,
            mappings,
            until,
        } = self.reading;
        let mut line = Vec::new();
        for (done, p) in placed.iter().enumerate() {
            if done % 8192 == 0 {
                on_progress(Progress::Applying {
                    records: done,
                    of: total,
                });
            }
            line.resize(p.len, 0);
            read_exact_at(self.file, &mut line, p.at).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("the input changed while it was replayed: {e}"),
                )
            })?;
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            match decode_with(text, Expect::Either, max_bytes, mappings) {
                Ok(mut input) => {
                    stamp_received_at(&mut input, p.time);
                    summary.events += apply(engine, p.time, input, out)?;
                }
                // Pass one decoded these very bytes: only a file changed in between gets here.
                Err(error) => {
                    summary.records -= 1;
                    summary.rejected += 1;
                    on_bad(&BadLine {
                        line: p.line,
                        error,
                    });
                }
            }
        }
        if let Some(u) = until {
            summary.events += advance(engine, u, out)?;
        }
        on_progress(Progress::Applying {
            records: total,
            of: total,
        });
        Ok(summary)
    }

    /// Pass one: every admitted record's time and place, in file order; the rest reported.
    fn place_records(
        &self,
        summary: &mut Summary,
        on_bad: &mut impl FnMut(&BadLine),
        on_progress: &mut dyn FnMut(Progress),
    ) -> io::Result<Vec<Placed>> {
        let mut placed = Vec::new();
        let mut position = Position::default();
        let mut reader = self.file;
        // From where the file stands, as a replay held in memory would read it.
        let base = io::Seek::stream_position(&mut reader)?;
        let of = self.file.metadata()?.len().saturating_sub(base);
        on_progress(Progress::Reading { bytes: 0, of });
        let mut chunks = LineChunks::new(reader, base, self.chunk_bytes, self.reading.max_bytes);
        while let Some((at, chunk)) = chunks.next_chunk(&mut position, summary, on_bad)? {
            let records = read_records(
                chunk,
                decode_threads(chunk.len()),
                self.reading.max_bytes,
                self.reading.mappings,
                &Window::REPLAY,
                &mut position,
                summary,
                on_bad,
            );
            placed.extend(records.into_iter().map(|r| Placed {
                time: r.time,
                line: r.line,
                at: at + r.at as u64,
                len: r.len,
            }));
            let bytes = (at + chunk.len() as u64).saturating_sub(base).min(of);
            on_progress(Progress::Reading { bytes, of });
        }
        // Past a last line longer than any record too, read outside the chunks.
        on_progress(Progress::Reading { bytes: of, of });
        Ok(placed)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// Applies one record at its time: timers due strictly before it fire first; one due at the
/// very same instant fires after it, so a report filed at its deadline is on time. Returns how
/// many events were written.
fn apply<W: Write>(
    engine: &mut Engine,
    time: Timestamp,
    input: Input<'_>,
    out: &mut W,
) -> io::Result<usize> {
    let mut n = advance(engine, time.before(), out)?;
    engine.handle(input);
    n += drain(engine, out)?;
    Ok(n)
}

/// The time a command without a usable `at` is taken as received at (see [`read_records`]).
fn stamp_received_at(input: &mut Input<'_>, time: Timestamp) {
    if let Input::Command(c) = input {
        if c.event_time().is_none() {
            c.received_at = Some(time);
        }
    }
}

/// Gives commands without a usable `at` their time: the record's before them, or the first
/// record's when none is before them (see [`read_records`]).
fn settle_times(records: &mut [Held<'_>]) {
    let first = first_time(records.iter().map(|r| r.time));
    for r in records {
        if r.time == Timestamp::MIN {
            r.time = first;
        }
        stamp_received_at(&mut r.input, r.time);
    }
}

/// The first real time among `times`: what a command without a usable `at` before any other
/// record takes (they are `Timestamp::MIN` until then).
fn first_time(mut times: impl Iterator<Item = Timestamp>) -> Timestamp {
    times
        .find(|t| *t != Timestamp::MIN)
        .unwrap_or(Window::REPLAY.earliest)
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
    input: R,
    at: Timestamp,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    catch_up_in_chunks(config, input, at, CHUNK_BYTES, out, on_bad)
}

/// [`catch_up_as_of`], reading `chunk_bytes` at a time.
fn catch_up_in_chunks<R: Read, W: Write>(
    config: &Config,
    input: R,
    at: Timestamp,
    chunk_bytes: usize,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
) -> io::Result<Summary> {
    let s = &config.settings;
    let window = s.event_window(at);
    let mut summary = Summary::default();
    let mut catch_up = CatchUp {
        config,
        at,
        engines: (0..s.state.partitions.max(1))
            .map(|_| Engine::from_config(config))
            .collect(),
    };
    // In input order, so it is read a chunk at a time: memory does not grow with the input.
    let max_bytes = s.input.max_record_bytes;
    let mut chunks = LineChunks::new(input, 0, chunk_bytes, max_bytes);
    let mut position = Position::default();
    // Commands without a usable `at` before any record with a time take the first such
    // record's time (see `read_records`), so they wait for it.
    let mut waiting: Vec<Input<'static>> = Vec::new();
    while let Some((_, chunk)) = chunks.next_chunk(&mut position, &mut summary, &mut on_bad)? {
        let records = read_records(
            chunk,
            decode_threads(chunk.len()),
            max_bytes,
            &config.mappings,
            &window,
            &mut position,
            &mut summary,
            &mut on_bad,
        );
        for r in records {
            summary.records += 1;
            if r.time == Timestamp::MIN {
                waiting.push(r.input.into_owned());
                continue;
            }
            for command in waiting.drain(..) {
                summary.events += catch_up.apply(r.time, command, out)?;
            }
            summary.events += catch_up.apply(r.time, r.input, out)?;
        }
    }
    for command in waiting {
        summary.events += catch_up.apply(Window::REPLAY.earliest, command, out)?;
    }
    for engine in &mut catch_up.engines {
        summary.events += fire_due(engine, at, out)?;
    }
    Ok(summary)
}

/// The engines of a `--as-of` replay, one per state partition.
struct CatchUp<'c> {
    config: &'c Config,
    at: Timestamp,
    engines: Vec<Engine>,
}

impl CatchUp<'_> {
    /// Applies one record at `time` on its incident's partition, as the router routes it,
    /// after the timers of that partition due just before it (never past `at`); returns how
    /// many events were written.
    fn apply<W: Write>(
        &mut self,
        time: Timestamp,
        mut input: Input<'_>,
        out: &mut W,
    ) -> io::Result<usize> {
        stamp_received_at(&mut input, time);
        let s = &self.config.settings;
        let token = input_route_token(&input, &self.config.registry, &s.correlation.group_by);
        let p = partition_for(&routing_key(token), s.state.partitions.max(1));
        let Some(engine) = usize::try_from(p)
            .ok()
            .and_then(|p| self.engines.get_mut(p))
        else {
            return Ok(0);
        };
        let mut n = fire_due(engine, time.before().min(self.at), out)?;
        engine.handle(input);
        n += drain(engine, out)?;
        Ok(n)
    }
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
    use super::lines::tests::mixed_input;
    use super::*;

    fn shipped_config() -> Config {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        crate::settings::load(&dir).expect("the shipped config loads")
    }

    /// Output, summary and skipped lines of a replay in memory and of one in two passes with
    /// chunks of `chunk_bytes`, of `text` written to a file.
    type Outcome = (String, Summary, Vec<BadLine>);

    fn both_ways(text: &str, chunk_bytes: usize, until: Option<Timestamp>) -> (Outcome, Outcome) {
        let max_bytes = shipped_config().settings.input.max_record_bytes;
        both_ways_at_most(text, chunk_bytes, max_bytes, until)
    }

    /// [`both_ways`], records of at most `max_bytes`.
    fn both_ways_at_most(
        text: &str,
        chunk_bytes: usize,
        max_bytes: usize,
        until: Option<Timestamp>,
    ) -> (Outcome, Outcome) {
        let config = shipped_config();
        let path = std::env::temp_dir().join(format!(
            "klaxon-replay-two-passes-{}-{chunk_bytes}-{max_bytes}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("a temporary file");
        let run = |hold_max_bytes: u64| {
            let file = File::open(&path).expect("the temporary file");
            let (mut out, mut bad) = (Vec::new(), Vec::new());
            let mut engine = Engine::from_config(&config);
            let reading = Reading {
                max_bytes,
                mappings: &config.mappings,
                until,
            };
            let passes = TwoPasses {
                file: &file,
                chunk_bytes,
                reading,
            };
            let on_bad = |b: &BadLine| bad.push(b.clone());
            let summary = if hold_max_bytes == 0 {
                let mut seen = Vec::new();
                let summary = passes.run(&mut engine, &mut out, on_bad, &mut |p| seen.push(p));
                if let Ok(summary) = &summary {
                    assert_progress(&seen, text.len() as u64, summary.records);
                }
                summary
            } else {
                run_input_with_progress(
                    &mut engine,
                    Source::File(&file),
                    hold_max_bytes,
                    reading,
                    &mut out,
                    on_bad,
                    &mut |_| {},
                )
            }
            .expect("a replay of a file that stays the same");
            (String::from_utf8_lossy(&out).into_owned(), summary, bad)
        };
        let held = run(u64::MAX);
        let two_passes = run(0);
        let _ = std::fs::remove_file(&path);
        (held, two_passes)
    }

    /// A two-pass replay's progress: pass one's bytes grow to the file's length, then the
    /// records applied grow to all of them.
    fn assert_progress(seen: &[Progress], file_bytes: u64, records: usize) {
        let reading: Vec<u64> = seen
            .iter()
            .map_while(|p| match p {
                Progress::Reading { bytes, of } => {
                    assert_eq!(*of, file_bytes, "{seen:?}");
                    Some(*bytes)
                }
                _ => None,
            })
            .collect();
        assert_eq!(reading.first(), Some(&0), "{seen:?}");
        assert_eq!(reading.last(), Some(&file_bytes), "{seen:?}");
        assert!(reading.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        let applying: Vec<(usize, usize)> = seen[reading.len()..]
            .iter()
            .map(|p| match p {
                Progress::Applying { records, of } => (*records, *of),
                other => panic!("{other:?} among the records applied: {seen:?}"),
            })
            .collect();
        assert!(applying.iter().all(|(_, of)| *of == records), "{seen:?}");
        assert!(applying.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(applying.last(), Some(&(records, records)), "{seen:?}");
    }

    #[test]
    fn a_stream_copied_to_a_temporary_file_replays_as_if_held_in_memory() {
        let text = mixed_input();
        let config = shipped_config();
        let until = Timestamp::parse_rfc3339("2026-11-20T00:00:00+08:00").ok();
        let reading = Reading {
            max_bytes: config.settings.input.max_record_bytes,
            mappings: &config.mappings,
            until,
        };
        // `None`: held in memory, never copied.
        let run = |hold_max_bytes: Option<u64>| -> Outcome {
            let (mut out, mut bad) = (Vec::new(), Vec::new());
            let mut engine = Engine::from_config(&config);
            let on_bad = |b: &BadLine| bad.push(b.clone());
            let summary = match hold_max_bytes {
                None => run_with_progress(
                    &mut engine,
                    text.as_bytes(),
                    reading,
                    &mut out,
                    on_bad,
                    &mut |_| {},
                ),
                Some(hold) => {
                    let mut seen = Vec::new();
                    let summary = run_input_with_progress(
                        &mut engine,
                        Source::Stream(&mut text.as_bytes()),
                        hold,
                        reading,
                        &mut out,
                        on_bad,
                        &mut |p| seen.push(p),
                    );
                    // The copy reports from 0 to the input's length first.
                    let copied = seen
                        .iter()
                        .take_while(|p| matches!(p, Progress::Copying { .. }))
                        .count();
                    assert_eq!(seen.first(), Some(&Progress::Copying { bytes: 0 }));
                    assert_eq!(
                        seen.get(copied - 1),
                        Some(&Progress::Copying {
                            bytes: text.len() as u64
                        })
                    );
                    if let (Ok(summary), true) = (&summary, hold < text.len() as u64) {
                        assert_progress(&seen[copied..], text.len() as u64, summary.records);
                    }
                    summary
                }
            }
            .expect("a replay from memory");
            (String::from_utf8_lossy(&out).into_owned(), summary, bad)
        };
        let held = run(None);
        assert!(held.1.events > 0 && held.1.rejected == 40);
        // Copied, then held (at the limit and far under it) or read in two passes (over the
        // limit by a byte, by most of it, and with nothing held at all).
        let len = text.len() as u64;
        for hold_max_bytes in [u64::MAX, len, len - 1, 100, 0] {
            let copied = run(Some(hold_max_bytes));
            assert_eq!(copied.1, held.1, "held at most {hold_max_bytes} bytes");
            assert_eq!(copied.2, held.2, "held at most {hold_max_bytes} bytes");
            assert!(copied.0 == held.0, "held at most {hold_max_bytes} bytes");
        }
    }

    #[test]
    fn two_passes_over_a_file_give_the_same_replay_as_holding_it() {
        let text = mixed_input();
        let until = Timestamp::parse_rfc3339("2026-11-20T00:00:00+08:00").ok();
        // Chunks of one byte (every line longer than a chunk), smaller and larger than a line,
        // and the whole input in one.
        for chunk_bytes in [1, 100, 700, 4096, 1 << 20] {
            let (held, two_passes) = both_ways(&text, chunk_bytes, until);
            assert!(held.1.events > 0 && held.1.rejected == 40);
            assert_eq!(two_passes.1, held.1, "chunks of {chunk_bytes} bytes");
            assert_eq!(two_passes.2, held.2, "chunks of {chunk_bytes} bytes");
            assert!(
                two_passes.0 == held.0,
                "chunks of {chunk_bytes} bytes: the events differ"
            );
        }
    }

    #[test]
    fn two_passes_replay_the_example_day_to_its_golden_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let day = std::fs::read_to_string(root.join("examples/day.jsonl")).expect("example day");
        let golden = std::fs::read(root.join("tests/golden/day/expected.jsonl")).expect("golden");
        let until = Timestamp::parse_rfc3339("2026-11-25T00:00:00+08:00").ok();
        let (held, two_passes) = both_ways(&day, 512, until);
        let golden = String::from_utf8_lossy(&golden);
        assert!(held.0 == golden, "held in memory: not the golden day");
        assert!(two_passes.0 == golden, "in two passes: not the golden day");
    }

    #[test]
    fn a_line_longer_than_any_record_is_passed_over_in_two_passes_and_reported_as_when_held() {
        let alert = |i: usize| crate::loadtest::alert_line(i, 3, "2026-11-24T10:00:00+08:00");
        let long = format!("{{\"id\":\"{}\"}}", "x".repeat(5_000));
        let blank = " ".repeat(5_000);
        let text = format!(
            "{}\n{long}\r\n{}\n{blank}\n{}\n{long}\n{}\n{long}",
            alert(1),
            alert(2),
            alert(3),
            alert(4)
        );
        // Chunks smaller than the long lines, and records of at most 1,000 bytes.
        for chunk_bytes in [64, 700, 1_500] {
            let (held, two_passes) = both_ways_at_most(&text, chunk_bytes, 1_000, None);
            let bad: Vec<_> = held
                .2
                .iter()
                .map(|b| (b.line, b.error.to_string()))
                .collect();
            let too_large = "record is 5009 bytes, larger than the maximum of 1000".to_string();
            assert_eq!(
                bad,
                [
                    (2, too_large.clone()),
                    (6, too_large.clone()),
                    (8, too_large)
                ],
                "the CR is not counted; the blank line is not reported"
            );
            assert_eq!(two_passes.2, held.2, "chunks of {chunk_bytes} bytes");
            assert_eq!(two_passes.1, held.1, "chunks of {chunk_bytes} bytes");
            assert!(two_passes.0 == held.0, "chunks of {chunk_bytes} bytes");
        }
    }

    #[test]
    fn a_catch_up_reads_its_input_a_chunk_at_a_time_with_the_same_result() {
        let config = shipped_config();
        // Commands without a usable `at` first (they wait for the first record with a time),
        // a line longer than any record, and the mixed lines.
        let command = r#"{"command":"ack","incident_id":"INC-1","at":"later","by":"bob"}"#;
        let long = format!("{{\"id\":\"{}\"}}", "x".repeat(70_000));
        let text = format!("{command}\n{command}\n{long}\n{}", mixed_input());
        let at = Timestamp::parse_rfc3339("2026-11-20T00:00:00+08:00").expect("a time");
        let catch_up = |chunk_bytes| {
            let (mut out, mut bad) = (Vec::new(), Vec::new());
            let summary = catch_up_in_chunks(
                &config,
                text.as_bytes(),
                at,
                chunk_bytes,
                &mut out,
                |b: &BadLine| bad.push(b.clone()),
            )
            .expect("a catch-up into memory");
            (String::from_utf8_lossy(&out).into_owned(), summary, bad)
        };
        let whole = catch_up(1 << 24);
        assert_eq!(whole.1.records, 182);
        assert_eq!(whole.2.first().map(|b| b.line), Some(3), "the long line");
        assert!(
            whole.0.contains(r#""received_at":"2026-11-10"#),
            "{}",
            whole.0
        );
        for chunk_bytes in [1, 100, 700, 4096] {
            let chunked = catch_up(chunk_bytes);
            assert_eq!(chunked.1, whole.1, "chunks of {chunk_bytes} bytes");
            assert_eq!(chunked.2, whole.2, "chunks of {chunk_bytes} bytes");
            assert!(chunked.0 == whole.0, "chunks of {chunk_bytes} bytes");
        }
    }
}
