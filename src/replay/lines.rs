//! How a replay's input becomes records: read a chunk of whole lines at a time
//! ([`LineChunks`], so that memory does not grow with the input), cut into one piece per core
//! and decoded side by side ([`read_records`]), each record with its time, line number and
//! place in the input.

use super::{BadLine, Summary};
use crate::admission::{admit, Window};
use crate::decode::{decode_with, DecodeError, Expect, Mappings};
use crate::model::Input;
use crate::time::Timestamp;
use std::io::{self, Read};

/// How much of a large file pass one decodes at a time (a line longer than this is read whole).
pub(super) const CHUNK_BYTES: usize = 64 << 20;

/// An input read a chunk of whole lines at a time (pass one of a large file, `--as-of`), so
/// that memory does not grow with it. A line longer than any record may be is read past, a
/// chunk at a time, rather than held, and reported as too large.
pub(super) struct LineChunks<R> {
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
    pub(super) fn new(reader: R, base: u64, chunk_bytes: usize, max_bytes: usize) -> Self {
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
    pub(super) fn next_chunk(
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

/// How many threads decode an input of `len` bytes: one per core the process may use, at most
/// 8, and only as many as give each at least [`BYTES_PER_DECODE_THREAD`] (below that, starting
/// a thread costs more than it saves).
pub(super) fn decode_threads(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.min(8).min(len / BYTES_PER_DECODE_THREAD).max(1)
}

/// 1 MiB: ~1,800 alerts of ~580 bytes, a few milliseconds of decoding.
const BYTES_PER_DECODE_THREAD: usize = 1 << 20;

/// A decoded record, with its time and where it is in the input.
pub(super) struct Held<'t> {
    /// `Timestamp::MIN` for a command without a usable `at` before any other record, until
    /// [`settle_times`].
    pub(super) time: Timestamp,
    /// 1-based, counted from the start of the input.
    pub(super) line: usize,
    /// Where its line starts in the text given to [`read_records`], and its length in bytes
    /// (a CR before the newline included).
    pub(super) at: usize,
    pub(super) len: usize,
    pub(super) input: Input<'t>,
}

/// Where reading stands between calls of [`read_records`] on consecutive parts of one input:
/// the lines before, and the time of the last record (which a command without a usable `at`
/// takes).
pub(super) struct Position {
    pub(super) lines: usize,
    pub(super) last_time: Timestamp,
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
pub(super) fn read_records<'t>(
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
pub fn line_pieces(text: &[u8], n: usize) -> Vec<(usize, &[u8])> {
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
pub fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::decode::mapping::NATIVE_ONLY;
    use crate::replay::settle_times;

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
    pub(in crate::replay) fn mixed_input() -> String {
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
}
