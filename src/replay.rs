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
//! record ([`run_file_with_progress`]). `--as-of` reads in input order, so it reads a chunk at
//! a time from a file or standard input alike.

use crate::admission::{admit, Window};
use crate::decode::{decode_with, DecodeError, Expect, Mappings};
use crate::engine::{input_route_token, Engine};
use crate::model::{Escalation, Input};
use crate::runtime::keyed::{partition_for, routing_key};
use crate::settings::Config;
use crate::time::Timestamp;
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
    run_with_progress(engine, input, reading, out, on_bad, &mut |_, _| {})
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

/// [`run_with`], reporting (records read, records to process) as it goes, for a progress bar.
pub fn run_with_progress<R: BufRead, W: Write>(
    engine: &mut Engine,
    mut input: R,
    reading: Reading<'_>,
    out: &mut W,
    mut on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(usize, usize),
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    // The whole input is read into one buffer and each record decoded once, its strings
    // borrowed from the buffer, then sorted by time and applied: the fastest way, for ~2.3 ×
    // the input's size in memory. A large file is replayed in two passes instead
    // ([`run_file_with_progress`]), holding 32 bytes per record (docs/benchmarks.md).
    let mut text = Vec::new();
    input.read_to_end(&mut text)?;
    let mut records = read_records(
        &text,
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
            on_progress(done, total);
        }
        summary.events += apply(engine, r.time, r.input, out)?;
    }
    if let Some(u) = reading.until {
        summary.events += advance(engine, u, out)?;
    }
    on_progress(total, total);
    Ok(summary)
}

/// Inputs up to this many bytes are replayed in memory ([`run_with_progress`]: the fastest,
/// holding each record decoded, ~2.3 × the input's size); a larger file is replayed in two
/// passes from the file ([`run_file_with_progress`]), holding 32 bytes per record.
pub const HOLD_DECODED_MAX_BYTES: u64 = 1 << 30;

/// [`run_with_progress`] for a file: in memory when it is at most `hold_max_bytes` long (or not
/// a regular file: a pipe is read once, so it is held), otherwise in two passes, so that a
/// replay of months of alerts needs memory for its incidents and 32 bytes per record, not for
/// its whole text decoded. Pass one reads the file in chunks of 64 MiB, each decoded on every
/// core, and keeps each record's time and place; pass two sorts those and reads each record
/// again where it lies, decodes it again and applies it. The output is byte-identical either
/// way; two passes take longer (each record is decoded twice, the second time on one thread).
pub fn run_file_with_progress<W: Write>(
    engine: &mut Engine,
    file: &File,
    hold_max_bytes: u64,
    reading: Reading<'_>,
    out: &mut W,
    on_bad: impl FnMut(&BadLine),
    on_progress: &mut dyn FnMut(usize, usize),
) -> io::Result<Summary> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() <= hold_max_bytes {
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

/// How much of a large file pass one decodes at a time (a line longer than this is read whole).
const CHUNK_BYTES: usize = 64 << 20;

/// A record of a large file, as pass one leaves it for pass two.
struct Placed {
    time: Timestamp,
    line: usize,
    at: u64,
    len: usize,
}

/// A replay of a file in two passes (see [`run_file_with_progress`]).
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
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> io::Result<Summary> {
        let mut summary = Summary::default();
        let mut placed = self.place_records(&mut summary, &mut on_bad)?;
        let first = first_time(placed.iter().map(|p| p.time));
        for p in placed.iter_mut().filter(|p| p.time == Timestamp::MIN) {
            p.time = first;
        }
        placed.sort_by_key(|p| (p.time, p.line));
        summary.records = placed.len();
        let total = placed.len();
        let mut line = Vec::new();
        for (done, p) in placed.iter().enumerate() {
            if done % 8192 == 0 {
                on_progress(done, total);
            }
            line.resize(p.len, 0);
            read_exact_at(self.file, &mut line, p.at).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("the input changed while it was replayed: {e}"),
                )
            })?;
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            let Reading {
                max_bytes,
                mappings,
                ..
            } = self.reading;
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
        if let Some(u) = self.reading.until {
            summary.events += advance(engine, u, out)?;
        }
        on_progress(total, total);
        Ok(summary)
    }

    /// Pass one: every admitted record's time and place, in file order; the rest reported.
    fn place_records(
        &self,
        summary: &mut Summary,
        on_bad: &mut impl FnMut(&BadLine),
    ) -> io::Result<Vec<Placed>> {
        let mut placed = Vec::new();
        let mut position = Position::default();
        let mut reader = self.file;
        // From where the file stands, as a replay held in memory would read it.
        let base = io::Seek::stream_position(&mut reader)?;
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
        }
        Ok(placed)
    }
}

/// An input read a chunk of whole lines at a time (pass one of a large file, `--as-of`), so
/// that memory does not grow with it. A line longer than any record may be is read past, a
/// chunk at a time, rather than held, and reported as too large.
struct LineChunks<R> {
    reader: R,
    buf: Vec<u8>,
    eof: bool,
    /// The last chunk has been handed out.
    done: bool,
    /// Bytes at the start of `buf` handed out as the last chunk, with its newline: dropped at
    /// the next call.
    handed: usize,
    /// Where `buf` starts in the input.
    base: u64,
    chunk_bytes: usize,
    max_bytes: usize,
}

impl<R: Read> LineChunks<R> {
    fn new(reader: R, base: u64, chunk_bytes: usize, max_bytes: usize) -> Self {
        LineChunks {
            reader,
            buf: Vec::new(),
            eof: false,
            done: false,
            handed: 0,
            base,
            chunk_bytes: chunk_bytes.max(1),
            max_bytes,
        }
    }

    /// The next chunk — whole lines, the newline after the last one left out — and where it
    /// starts in the input; `None` after the last. A line passed over counts in `position`
    /// and is reported to `on_bad`.
    fn next_chunk(
        &mut self,
        position: &mut Position,
        summary: &mut Summary,
        on_bad: &mut impl FnMut(&BadLine),
    ) -> io::Result<Option<(u64, &[u8])>> {
        let handed = std::mem::take(&mut self.handed).min(self.buf.len());
        self.buf.drain(..handed);
        self.base += handed as u64;
        if self.done {
            return Ok(None);
        }
        // Fill the buffer to a chunk, and on until it holds a whole line.
        let mut want = self.chunk_bytes;
        let end = loop {
            fill(&mut self.reader, &mut self.buf, want, &mut self.eof)?;
            let last_newline = memchr::memrchr(b'\n', &self.buf);
            if let Some(newline) = last_newline.filter(|_| !self.eof) {
                break newline;
            }
            // No newline: the buffer is the start of one line. Longer than any record may be,
            // it is passed over rather than held, however long it is.
            let too_long = self.max_bytes > 0 && self.buf.len() > self.max_bytes.saturating_add(1);
            if last_newline.is_none() && too_long {
                let skipped = skip_line(
                    &mut self.reader,
                    &mut self.buf,
                    &mut self.eof,
                    self.chunk_bytes,
                )?;
                position.lines += 1;
                if !skipped.blank {
                    summary.rejected += 1;
                    on_bad(&BadLine {
                        line: position.lines,
                        error: DecodeError::TooLarge {
                            size: skipped.size,
                            max: self.max_bytes,
                        },
                    });
                }
                self.base += skipped.consumed;
                want = self.chunk_bytes;
                continue;
            }
            if self.eof {
                self.done = true;
                break self.buf.len();
            }
            want = want.saturating_mul(2);
        };
        self.handed = end + 1;
        Ok(Some((self.base, self.buf.get(..end).unwrap_or_default())))
    }
}

/// Reads on from `reader` until `buf` holds `want` bytes or the file ends (`eof`).
fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, want: usize, eof: &mut bool) -> io::Result<()> {
    if !*eof && buf.len() < want {
        let missing = want - buf.len();
        // Room for a chunk first: growing as it reads would hold two copies at a time.
        buf.reserve_exact(missing.min(CHUNK_BYTES));
        reader.by_ref().take(missing as u64).read_to_end(buf)?;
        *eof = buf.len() < want;
    }
    Ok(())
}

/// A line [`skip_line`] passed over.
struct Skipped {
    /// Its length as the decoder counts it (a CR before the newline left out).
    size: usize,
    /// Nothing but whitespace: skipped without a word, as a blank line is.
    blank: bool,
    /// Bytes read past, the newline included.
    consumed: u64,
}

/// Reads past the line `buf` starts with, a chunk at a time and without holding it; `buf` is
/// left with what follows the line's newline.
fn skip_line<R: Read>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    eof: &mut bool,
    chunk_bytes: usize,
) -> io::Result<Skipped> {
    let (mut raw, mut blank, mut cr) = (0usize, true, false);
    loop {
        let newline = memchr::memchr(b'\n', buf);
        let part = buf.get(..newline.unwrap_or(buf.len())).unwrap_or_default();
        raw += part.len();
        blank = blank && part.iter().all(u8::is_ascii_whitespace);
        if let Some(&last) = part.last() {
            cr = last == b'\r';
        }
        let size = raw - usize::from(cr);
        if let Some(newline) = newline {
            buf.drain(..=newline);
            return Ok(Skipped {
                size,
                blank,
                consumed: raw as u64 + 1,
            });
        }
        buf.clear();
        if *eof {
            return Ok(Skipped {
                size,
                blank,
                consumed: raw as u64,
            });
        }
        fill(reader, buf, chunk_bytes.max(1), eof)?;
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

/// How many threads decode an input of `len` bytes: one per core the process may use, at most
/// 8, and only as many as give each at least [`BYTES_PER_DECODE_THREAD`] (below that, starting
/// a thread costs more than it saves).
fn decode_threads(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.min(8).min(len / BYTES_PER_DECODE_THREAD).max(1)
}

/// 1 MiB: ~1,800 alerts of ~580 bytes, a few milliseconds of decoding.
const BYTES_PER_DECODE_THREAD: usize = 1 << 20;

/// A decoded record, with its time and where it is in the input.
struct Held<'t> {
    /// `Timestamp::MIN` for a command without a usable `at` before any other record, until
    /// [`settle_times`].
    time: Timestamp,
    /// 1-based, counted from the start of the input.
    line: usize,
    /// Where its line starts in the text given to [`read_records`], and its length in bytes
    /// (a CR before the newline included).
    at: usize,
    len: usize,
    input: Input<'t>,
}

/// Where reading stands between calls of [`read_records`] on consecutive parts of one input:
/// the lines before, and the time of the last record (which a command without a usable `at`
/// takes).
struct Position {
    lines: usize,
    last_time: Timestamp,
}

impl Default for Position {
    fn default() -> Self {
        Position {
            lines: 0,
            last_time: Timestamp::MIN,
        }
    }
}

/// Every line of `text` decoded and admitted by `window`, with its time, 1-based line number
/// (after `position`'s lines) and place, in input order; the rest reported to `on_bad`, in
/// line order. A command without a usable `at` is taken as received at the time of the record
/// before it (its time is `Timestamp::MIN` when no record is before it: [`settle_times`]).
///
/// Decoding is pure and each line stands alone, so a large input is cut at line boundaries
/// into `threads` pieces (the callers pass [`decode_threads`]) decoded side by side; the pieces
/// are then joined in input order, so the result (and every replay) is the same on any number
/// of threads. Decoding is about half of a replay's work; the engine, which must see the
/// records one after another in time order, runs on one thread after.
#[allow(clippy::too_many_arguments)]
fn read_records<'t>(
    text: &'t [u8],
    threads: usize,
    max_bytes: usize,
    mappings: &Mappings,
    window: &Window,
    position: &mut Position,
    summary: &mut Summary,
    on_bad: &mut impl FnMut(&BadLine),
) -> Vec<Held<'t>> {
    let pieces = line_pieces(text, threads);
    let decode =
        |&(at, piece): &(usize, &'t [u8])| decode_piece(piece, at, max_bytes, mappings, window);
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
    let mut records: Vec<Held<'t>> =
        Vec::with_capacity(decoded.iter().map(|p| p.records.len()).sum());
    for piece in decoded {
        for mut r in piece.records {
            // A command whose `at` is unusable has no time of its own: it is taken as received
            // at the time of the record before it in the file (the replay's clock there), and
            // the engine answers it with `command.rejected` at that time.
            if let Input::Command(c) = &r.input {
                if c.event_time().is_none() {
                    r.time = position.last_time;
                }
            }
            r.line += position.lines;
            position.last_time = r.time;
            records.push(r);
        }
        for mut bad in piece.bad {
            bad.line += position.lines;
            summary.rejected += 1;
            on_bad(&bad);
        }
        position.lines += piece.lines;
    }
    records
}

/// `text` cut into at most `n` pieces of about equal size, each with where it starts, each
/// ending just before a newline (the newline itself belongs to no piece), so that splitting
/// each piece at its newlines gives exactly the lines of `text`, in order.
fn line_pieces(text: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    let mut pieces = Vec::with_capacity(n);
    let (mut start, mut rest) = (0, text);
    for left in (2..=n).rev() {
        let target = rest.len() / left;
        let Some(newline) = rest
            .get(target..)
            .and_then(|tail| memchr::memchr(b'\n', tail))
            .map(|at| target + at)
        else {
            break;
        };
        let (piece, tail) = rest.split_at(newline);
        pieces.push((start, piece));
        start += newline + 1;
        rest = tail.get(1..).unwrap_or_default();
    }
    pieces.push((start, rest));
    pieces
}

/// One piece's lines decoded: line numbers count from 1 at the piece's first line; places
/// from the start of the whole text.
struct DecodedPiece<'t> {
    /// Admitted records; a command without a usable `at` has no time yet (`Timestamp::MIN`),
    /// since the record before it may be in the piece before.
    records: Vec<Held<'t>>,
    bad: Vec<BadLine>,
    lines: usize,
}

/// `text` split at its newlines, as `text.split(|b| *b == b'\n')` splits it, the newlines
/// found by `memchr` (SIMD, many bytes at a time): the slice splitter's byte-by-byte test was
/// a tenth of a replay's samples.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut newlines = memchr::memchr_iter(b'\n', text);
    let (mut start, mut done) = (0, false);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match newlines.next() {
            Some(newline) => {
                let line = text.get(start..newline);
                start = newline + 1;
                line
            }
            None => {
                done = true;
                text.get(start..)
            }
        }
    })
}

fn decode_piece<'t>(
    piece: &'t [u8],
    starts_at: usize,
    max_bytes: usize,
    mappings: &Mappings,
    window: &Window,
) -> DecodedPiece<'t> {
    let mut decoded = DecodedPiece {
        records: Vec::new(),
        bad: Vec::new(),
        lines: 0,
    };
    let mut at = starts_at;
    for (i, raw) in split_lines(piece).enumerate() {
        decoded.lines = i + 1;
        let line_at = at;
        at += raw.len() + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match decode_with(line, Expect::Either, max_bytes, mappings)
            .and_then(|input| admit(&input, window).map(|()| input))
        {
            Ok(input) => decoded.records.push(Held {
                time: match &input {
                    Input::Command(c) if c.event_time().is_none() => Timestamp::MIN,
                    _ => input.time(),
                },
                line: i + 1,
                at: line_at,
                len: raw.len(),
                input,
            }),
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
    fn lines_are_split_as_the_slice_splitter_splits_them() {
        let texts: [&[u8]; 8] = [
            b"",
            b"\n",
            b"\n\n",
            b"one line",
            b"a\nb\n",
            b"a\r\n\nbb\nccc",
            b"\n{\"x\":1}\n\n{\"y\":2}",
            &[b'a'; 100],
        ];
        for text in texts {
            let expected: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            assert_eq!(split_lines(text).collect::<Vec<_>>(), expected, "{text:?}");
        }
    }

    #[test]
    fn pieces_joined_by_newlines_are_the_text_and_start_where_they_say() {
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
                let bytes: Vec<&[u8]> = pieces.iter().map(|p| p.1).collect();
                assert_eq!(bytes.join(&b'\n'), text, "{n} pieces of {text:?}");
                for (at, piece) in pieces {
                    assert_eq!(&text[at..at + piece.len()], piece);
                }
            }
        }
    }

    /// Lines of every kind, out of time order: alerts, commands without a usable `at` (which
    /// take the time of the record before them; the first line is one), and lines that are
    /// skipped (bad JSON, an alert of year 0001, blank), spread through the input, CRLF and LF
    /// endings mixed.
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
                &mut Position::default(),
                &mut summary,
                &mut |b: &BadLine| bad.push(b.clone()),
            );
            let records: Vec<String> = records
                .iter()
                .map(|r| format!("{:?} {} {} {} {:?}", r.time, r.line, r.at, r.len, r.input))
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
        assert_eq!(
            line_pieces(text.as_bytes(), 2)[1].1,
            second_piece.as_bytes()
        );
        let mut records = read_records(
            text.as_bytes(),
            2,
            0,
            &NATIVE_ONLY,
            &Window::REPLAY,
            &mut Position::default(),
            &mut Summary::default(),
            &mut |_: &BadLine| {},
        );
        settle_times(&mut records);
        let times: Vec<_> = records.iter().map(|r| (r.time, r.line)).collect();
        let t = records[0].time;
        assert_eq!(times, [(t, 1), (t, 2)]);
        assert!(matches!(&records[1].input, Input::Command(c) if c.received_at == Some(t)));
    }

    #[test]
    fn a_large_input_is_decoded_on_more_than_one_thread_when_there_are_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(decode_threads(0), 1);
        assert_eq!(decode_threads(BYTES_PER_DECODE_THREAD - 1), 1);
        assert_eq!(decode_threads(100 * BYTES_PER_DECODE_THREAD), cores.min(8));
    }

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
                passes.run(&mut engine, &mut out, on_bad, &mut |_, _| {})
            } else {
                run_file_with_progress(
                    &mut engine,
                    &file,
                    hold_max_bytes,
                    reading,
                    &mut out,
                    on_bad,
                    &mut |_, _| {},
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
