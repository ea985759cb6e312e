//! The fast path of native alert decoding: one pass over the text, no intermediate tree, each
//! kept string borrowed from the text, and the top-level keys (which the format mappings look
//! at) collected on the way instead of in a second pass.
//!
//! It is deliberately incomplete. On anything it is not sure of — an escape in a string it keeps,
//! a duplicate field, a value of an unexpected type, a malformed document — it gives up, and the
//! caller decodes the record with serde, which is the reference: it also writes the error
//! message that names the field. So this path never accepts a record serde would reject and
//! never decodes one differently; the property tests below hold it to that on generated and
//! mutated records. Rare nested parts (outage, defacement, ransom, …) are handed to serde on
//! their own slice of the text.

use crate::model::alert::{AssetFields, Impact, OperatorFields, Ref, Text};
use crate::model::Alert;
use crate::time::Timestamp;
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// What one pass over a record's top level found.
#[derive(Debug)]
pub(crate) struct Scanned<'a> {
    /// The top-level keys in order (as `top_keys` gives them); collected only when asked for.
    pub keys: Vec<Cow<'a, str>>,
    /// Whether there is a top-level `command` key.
    pub command: bool,
    /// The alert, when the record is a native alert this pass fully understood (boxed as
    /// `Input` holds it, so that it is not copied again).
    pub alert: Option<Box<Alert<'a>>>,
}

/// Scans `text`. `None`: the text is not something this path can vouch for (the caller decodes
/// it with serde, which decides what it is). `Some` with `alert: None`: well-formed JSON whose
/// keys are listed, but not a native alert this path decodes.
pub(crate) fn scan(text: &str, want_keys: bool) -> Option<Scanned<'_>> {
    let mut c = Cursor {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut out = Scanned {
        // Room for a typical record's keys at once: growing 0 → 4 → … → 32 cost ~800
        // instructions a record in `klaxon replay` (callgrind).
        keys: Vec::with_capacity(if want_keys { 32 } else { 0 }),
        command: false,
        alert: None,
    };
    let mut draft = AlertDraft::new();
    let mut fit = true;
    let mut members = c.open(1)?;
    while let Some(key) = c.member(&mut members)? {
        if want_keys {
            out.keys.push(Cow::Borrowed(key));
        }
        if key == "command" {
            out.command = true;
        }
        let (seen, a) = (&mut draft.seen, &mut *draft.alert);
        let got = match key {
            "id" => c.put(seen, 1 << 0, &mut a.id, Cursor::non_empty_string),
            "timestamp" => c.put(seen, 1 << 1, &mut a.timestamp, Cursor::timestamp),
            "source" => c.put(seen, 1 << 2, &mut a.source, Cursor::opt_string),
            "title" => c.put(seen, 1 << 3, &mut a.title, Cursor::opt_string),
            "category" => c.put(seen, 1 << 4, &mut a.category, Cursor::opt_string),
            "incident_key" => c.put(seen, 1 << 5, &mut a.incident_key, Cursor::opt_string),
            "operator" => c.put(seen, 1 << 6, &mut a.operator, Cursor::operator),
            "asset" => c.put(seen, 1 << 7, &mut a.asset, Cursor::asset),
            "impact" => c.once(seen, 1 << 8, |c| c.impact(&mut a.impact)),
            "detail" => c.put(seen, 1 << 9, &mut a.detail, Cursor::opt_string),
            _ => c.skip_field(1).map(|()| Got::Value(())),
        }?;
        if matches!(got, Got::Unfit) {
            fit = false;
        }
    }
    c.ws();
    if c.i != c.b.len() {
        return None;
    }
    if fit {
        out.alert = draft.finish();
    }
    Some(out)
}

/// A value that is well-formed JSON but not what the field accepts (`Unfit`): the record is
/// left to serde, which says what is wrong with it.
enum Got<T> {
    Value(T),
    Unfit,
}

/// The alert being decoded, written in place in the box `Input` will hold (an alert is ~400
/// bytes: building it on the stack and moving it in cost a copy, and more for its impact), and
/// which fields have been seen: a second sighting makes the record unfit, as serde rejects
/// duplicate fields.
struct AlertDraft<'a> {
    alert: Box<Alert<'a>>,
    /// One bit per field, in the order of `scan`'s match; `id` and `timestamp` are required.
    seen: u32,
}

impl<'a> AlertDraft<'a> {
    const REQUIRED: u32 = 0b11;

    fn new() -> Self {
        AlertDraft {
            alert: Box::new(Alert {
                id: Text::Borrowed(""),
                timestamp: Timestamp(0),
                source: None,
                title: None,
                category: None,
                incident_key: None,
                detail: None,
                operator: None,
                asset: None,
                impact: Impact::default(),
            }),
            seen: 0,
        }
    }

    fn finish(self) -> Option<Box<Alert<'a>>> {
        (self.seen & Self::REQUIRED == Self::REQUIRED).then_some(self.alert)
    }
}

/// Deeper than this, give up (serde's own limit is 128).
const MAX_DEPTH: u32 = 64;

/// Bytes that end a run of plain string content: `"`, `\` and control characters.
const STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A byte of ones in each lane, and each lane's high bit: the eight-bytes-at-a-time scans.
const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = ONES << 7;

/// The index of the first `"`, `\` or control character at or after `from` (or the length),
/// since string content is most of an alert: sixteen bytes at a time with SSE2 where there is
/// room, then eight at a time (as serde_json does), then one.
#[inline(always)]
fn plain_run(b: &[u8], from: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
    let from = match unsafe { sixteen_at_a_time(b, from) } {
        Ok(stop) => return stop,
        Err(tail) => tail,
    };
    let mut i = from;
    while let Some(Ok(word)) = b.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(word);
        // The lowest flagged byte of each test is exact (borrows only run upwards).
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| !STOPS[usize::from(c)]) {
        i += 1;
    }
    i
}

/// [`plain_run`]'s SSE2 part: `Ok(stop)`, or `Err(i)` when fewer than sixteen bytes are left at
/// `i` without a stop. Safe code only (the vector is built from a `u128`, which compiles to one
/// unaligned load); `unsafe` is needed only to call it, as with any `target_feature` function.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn sixteen_at_a_time(b: &[u8], from: usize) -> Result<usize, usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x,
    };
    let mut i = from;
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let x = u128::from_le_bytes(*chunk);
        let v = _mm_set_epi64x((x >> 64) as i64, x as i64);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned: a byte is a control character when min(byte, 0x1f) is the byte itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control));
        if mask != 0 {
            return Ok(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    Err(i)
}

/// The index of the first byte at or after `from` that is not an ASCII digit (or the length):
/// eight bytes at a time, since SIEMs send long numbers (flow ids, signature ids, byte counts).
#[inline]
fn digit_run(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(word) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        // After the xor a digit is a byte below 10: its high bit is clear, and adding 0x76 to
        // its low seven bits leaves bit 7 clear (no carry crosses bytes: 0x7f + 0x76 < 0x100).
        let x = u64::from_le_bytes(*word) ^ (ONES * u64::from(b'0'));
        let not_digit = (x | ((x & !HIGH) + ONES * 0x76)) & HIGH;
        if not_digit != 0 {
            return i + (not_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Where [`Cursor::member`] is in an object.
struct Members {
    first: bool,
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Whitespace is rare between tokens (SIEMs send compact JSON), so the first byte is
    /// tested once against the whole class before the loop.
    #[inline]
    fn ws(&mut self) {
        if self.b.get(self.i).is_none_or(|&c| c > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next significant byte, not consumed. The byte at the cursor is read once: it is
    /// the answer unless it is whitespace.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if c > b' ' {
            return Some(c);
        }
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// Parses one field value into `slot`, unless its bit in `seen` says it came before.
    #[inline(always)]
    fn put<T>(
        &mut self,
        seen: &mut u32,
        bit: u32,
        slot: &mut T,
        parse: impl FnOnce(&mut Self) -> Option<Got<T>>,
    ) -> Option<Got<()>> {
        self.once(seen, bit, |c| {
            Some(match parse(c)? {
                Got::Value(v) => {
                    *slot = v;
                    Got::Value(())
                }
                Got::Unfit => Got::Unfit,
            })
        })
    }

    /// Runs `parse` for a field whose bit is `bit`: unfit if the field came before.
    #[inline(always)]
    fn once(
        &mut self,
        seen: &mut u32,
        bit: u32,
        parse: impl FnOnce(&mut Self) -> Option<Got<()>>,
    ) -> Option<Got<()>> {
        let duplicate = *seen & bit != 0;
        *seen |= bit;
        Some(match parse(self)? {
            Got::Value(()) if !duplicate => Got::Value(()),
            _ => Got::Unfit,
        })
    }

    /// The members of an object: `on_member` is called with each key, the cursor on its value.
    fn object(
        &mut self,
        depth: u32,
        mut on_member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        let mut members = self.open(depth)?;
        while let Some(key) = self.member(&mut members)? {
            on_member(self, key)?;
        }
        Some(())
    }

    /// Enters an object (the cursor before its `{`): [`Cursor::member`] then yields its keys.
    /// The top level loops over its members itself rather than through [`Cursor::object`]'s
    /// callback, which the compiler kept out of line: a call, and a large frame, per member
    /// (−330 instructions an alert). Nested objects keep the callback: looping there measured
    /// slower.
    fn open(&mut self, depth: u32) -> Option<Members> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        Some(Members { first: true })
    }

    /// The next member's key, the cursor then on its value (no `ws` here: every value parser
    /// starts with `peek`, and serde, which `by_serde` hands a slice to, takes leading
    /// whitespace); `Some(None)` once the object has ended.
    #[inline(always)]
    fn member(&mut self, members: &mut Members) -> Option<Option<&'a str>> {
        let next = self.peek()?;
        if std::mem::take(&mut members.first) {
            if next == b'}' {
                self.i += 1;
                return Some(None);
            }
        } else {
            self.i += 1;
            match next {
                b',' => {}
                b'}' => return Some(None),
                _ => return None,
            }
        }
        if self.peek()? != b'"' {
            return None;
        }
        // A key with an escape could spell a known field: leave it to serde.
        let key = self.string()?.ok()?;
        self.eat(b':')?;
        Some(Some(key))
    }

    /// A string at the cursor (which is on its opening quote). `Err(())`: well-formed but with
    /// escapes, so not a plain slice of the text. Inlined into each caller: an alert has ~37
    /// strings of ~13 bytes, and a call's prologue cost as much as scanning one.
    #[inline(always)]
    fn string(&mut self) -> Option<Result<&'a str, ()>> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = plain_run(self.b, self.i);
            match self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a raw control character: serde rejects it
            }
        }
        let end = self.i;
        self.i += 1;
        if escaped {
            return Some(Err(()));
        }
        // SAFETY: `start` is just after the opening quote and `end` at the closing one.
        Some(Ok(unsafe { self.token(start, end) }?))
    }

    /// A number token, checked against JSON's grammar (as serde's is).
    fn number(&mut self) -> Option<&'a str> {
        let start = self.i;
        self.skip_number()?;
        // SAFETY: `start` is at the number's first byte and `self.i` just after its last, and
        // a number is ASCII.
        unsafe { self.token(start, self.i) }
    }

    /// The text from `start` to `end`, without `str::get`'s two character-boundary checks:
    /// they ran ~37 times an alert, and cost ~15 instructions each.
    ///
    /// # Safety
    /// `start` and `end` must each be next to an ASCII byte of the text (just after one, or
    /// at one, or at an end of the text): in UTF-8 those are always character boundaries.
    #[inline(always)]
    unsafe fn token(&self, start: usize, end: usize) -> Option<&'a str> {
        let bytes = self.b.get(start..end)?;
        debug_assert!(self.s.is_char_boundary(start) && self.s.is_char_boundary(end));
        // SAFETY: `bytes` is cut from `self.s`, which is UTF-8, at character boundaries (the
        // caller's promise), so it is UTF-8 too.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    /// [`Cursor::number`] without the token: what skipping needs.
    #[inline(always)]
    fn skip_number(&mut self) -> Option<()> {
        let digits = |c: &mut Self| {
            let from = c.i;
            c.i = digit_run(c.b, c.i);
            c.i > from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        Some(())
    }

    /// Skips any value, checking that it is well-formed.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth + 1, |c, _| c.skip(depth + 1)),
            b'[' => {
                if depth + 1 > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    /// Skips the value of a field this path does not read. Most are strings and numbers (a
    /// SIEM's addresses, ids and counts: eight of a typical alert's ~20 fields), so those two
    /// are inlined here rather than reached through [`Cursor::skip`]'s recursive call.
    #[inline(always)]
    fn skip_field(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'0'..=b'9' => self.skip_number(),
            _ => self.skip(depth),
        }
    }

    /// Skips a value the field does not take.
    fn unfit<T>(&mut self, depth: u32) -> Option<Got<T>> {
        self.skip(depth).map(|()| Got::Unfit)
    }

    /// A plain string, as serde's `String` takes it (escaped ones are left to serde).
    #[inline(always)]
    fn plain(&mut self, depth: u32) -> Option<Got<&'a str>> {
        if self.peek()? != b'"' {
            return self.unfit(depth);
        }
        Some(match self.string()? {
            Ok(s) => Got::Value(s),
            Err(()) => Got::Unfit,
        })
    }

    fn opt_string(&mut self) -> Option<Got<Option<Text<'a>>>> {
        self.opt_string_at(2)
    }

    /// A `#[serde(default)]` optional string (`Text`, or `String` in an inline operator): a
    /// string or null.
    #[inline(always)]
    fn opt_string_at<S: From<&'a str>>(&mut self, depth: u32) -> Option<Got<Option<S>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(Got::Value(None));
        }
        Some(match self.plain(depth)? {
            Got::Value(s) => Got::Value(Some(S::from(s))),
            Got::Unfit => Got::Unfit,
        })
    }

    /// The alert id: a string that is not blank.
    fn non_empty_string(&mut self) -> Option<Got<Text<'a>>> {
        Some(match self.plain(1)? {
            Got::Value(s) if !s.trim().is_empty() => Got::Value(Text::from(s)),
            _ => Got::Unfit,
        })
    }

    fn timestamp(&mut self) -> Option<Got<Timestamp>> {
        Some(match self.plain(1)? {
            Got::Value(s) => Timestamp::parse_rfc3339(s).map_or(Got::Unfit, Got::Value),
            Got::Unfit => Got::Unfit,
        })
    }

    /// `Option<u64>`: digits only (a sign, fraction or exponent is left to serde).
    #[inline(always)]
    fn opt_count(&mut self, depth: u32) -> Option<Got<Option<u64>>> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(Got::Value(None))
            }
            b'0'..=b'9' => {
                // One pass for the usual plain integer; anything else goes through `number`'s
                // grammar check and the standard parser, as before.
                let start = self.i;
                let mut value = Some(0u64);
                while let Some(&d) = self.b.get(self.i).filter(|d| d.is_ascii_digit()) {
                    value = value.and_then(|v| v.checked_mul(10)?.checked_add(u64::from(d - b'0')));
                    self.i += 1;
                }
                if self.i - start > 1 && self.b.get(start) == Some(&b'0') {
                    return None; // a leading zero: not JSON
                }
                if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
                    self.i = start;
                    let token = self.number()?;
                    return Some(
                        token
                            .parse::<u64>()
                            .map_or(Got::Unfit, |v| Got::Value(Some(v))),
                    );
                }
                Some(value.map_or(Got::Unfit, |v| Got::Value(Some(v))))
            }
            _ => self.unfit(depth),
        }
    }

    /// The slice of one value, handed to serde: for the rare nested parts.
    fn by_serde<T: DeserializeOwned>(&mut self, depth: u32) -> Option<Got<T>> {
        let start = self.i;
        self.skip(depth)?;
        let slice = self.s.get(start..self.i)?;
        Some(serde_json::from_str(slice).map_or(Got::Unfit, Got::Value))
    }

    /// `economic_loss_cny`: a non-negative amount. Integers that fit in a u64 are converted
    /// here exactly as serde converts them; other numbers go through serde's float parser.
    fn opt_amount(&mut self, depth: u32) -> Option<Got<Option<f64>>> {
        let value = match self.peek()? {
            b'0'..=b'9' => {
                let start = self.i;
                let token = self.number()?;
                match token.parse::<u64>() {
                    Ok(v) => Some(v as f64),
                    Err(_) => match serde_json::from_str::<f64>(self.s.get(start..self.i)?) {
                        Ok(v) => Some(v),
                        Err(_) => return Some(Got::Unfit),
                    },
                }
            }
            b'n' => {
                self.literal(b"null")?;
                None
            }
            _ => return self.unfit(depth),
        };
        Some(match value {
            Some(v) if !(v >= 0.0 && v.is_finite()) => Got::Unfit,
            v => Got::Value(v),
        })
    }

    /// `impact`, written in place into the draft's (default) impact.
    fn impact(&mut self, d: &mut Impact) -> Option<Got<()>> {
        if self.peek()? != b'{' {
            return self.unfit(1);
        }
        let mut seen = 0u32;
        let mut fit = true;
        self.object(2, |c, key| {
            let s = &mut seen;
            let got = match key {
                "outage" => c.put(s, 1 << 0, &mut d.outage, |c| c.by_serde(2)),
                "unreachable" => c.put(s, 1 << 1, &mut d.unreachable, |c| c.by_serde(2)),
                "defacement" => c.put(s, 1 << 2, &mut d.defacement, |c| c.by_serde(2)),
                "affected_population" => {
                    c.put(s, 1 << 3, &mut d.affected_population, |c| c.opt_count(2))
                }
                "affected_population_share" => {
                    c.put(s, 1 << 4, &mut d.affected_population_share, |c| {
                        c.by_serde(2)
                    })
                }
                "personal_info_records" => {
                    c.put(s, 1 << 5, &mut d.personal_info_records, |c| c.opt_count(2))
                }
                "economic_loss_cny" => {
                    c.put(s, 1 << 6, &mut d.economic_loss_cny, |c| c.opt_amount(2))
                }
                "data_leak" => c.put(s, 1 << 7, &mut d.data_leak, |c| c.by_serde(2)),
                "ransom" => c.put(s, 1 << 8, &mut d.ransom, |c| c.by_serde(2)),
                "finding" => c.put(s, 1 << 9, &mut d.finding, |c| c.by_serde(2)),
                _ => c.skip(2).map(|()| Got::Value(())),
            }?;
            fit &= matches!(got, Got::Value(()));
            Some(())
        })?;
        Some(if fit { Got::Value(()) } else { Got::Unfit })
    }

    /// `operator`: a registry id, or an inline object.
    fn operator(&mut self) -> Option<Got<Option<Ref<'a, OperatorFields>>>> {
        self.reference(|c, s, f: &mut OperatorFields, key| match key {
            "id" => c.put(s, 1 << 0, &mut f.id, |c| c.opt_string_at(2)),
            "name" => c.put(s, 1 << 1, &mut f.name, |c| c.opt_string_at(2)),
            "class" => c.put(s, 1 << 2, &mut f.class, |c| c.by_serde(2)),
            "province" => c.put(s, 1 << 3, &mut f.province, |c| c.opt_string_at(2)),
            "sector" => c.put(s, 1 << 4, &mut f.sector, |c| c.opt_string_at(2)),
            "organ" => c.put(s, 1 << 5, &mut f.organ, |c| c.opt_string_at(2)),
            _ => c.skip(2).map(|()| Got::Value(())),
        })
    }

    /// `asset`: a registry id, or an inline object.
    fn asset(&mut self) -> Option<Got<Option<Ref<'a, AssetFields<'a>>>>> {
        self.reference(|c, s, f: &mut AssetFields<'a>, key| match key {
            "id" => c.put(s, 1 << 0, &mut f.id, |c| c.opt_string_at(2)),
            "name" => c.put(s, 1 << 1, &mut f.name, |c| c.opt_string_at(2)),
            "kind" => c.put(s, 1 << 2, &mut f.kind, |c| c.opt_string_at(2)),
            "level" => c.put(s, 1 << 3, &mut f.level, |c| c.opt_string_at(2)),
            "size" => c.put(s, 1 << 4, &mut f.size, |c| c.opt_string_at(2)),
            "operator" => c.put(s, 1 << 5, &mut f.operator, |c| c.opt_string_at(2)),
            _ => c.skip(2).map(|()| Got::Value(())),
        })
    }

    /// `Option<Ref<T>>`: null, a non-blank id, or an object read member by member straight
    /// into its box (`member` gets the bit set of the fields seen).
    fn reference<T: Default>(
        &mut self,
        mut member: impl FnMut(&mut Self, &mut u32, &mut T, &'a str) -> Option<Got<()>>,
    ) -> Option<Got<Option<Ref<'a, T>>>> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(Got::Value(None))
            }
            b'"' => Some(match self.plain(1)? {
                Got::Value(s) if !s.trim().is_empty() => Got::Value(Some(Ref::Id(Text::from(s)))),
                _ => Got::Unfit,
            }),
            b'{' => {
                let mut fields = Box::<T>::default();
                let mut seen = 0u32;
                let mut fit = true;
                self.object(2, |c, key| {
                    fit &= matches!(member(c, &mut seen, &mut fields, key)?, Got::Value(()));
                    Some(())
                })?;
                Some(if fit {
                    Got::Value(Some(Ref::Inline(fields)))
                } else {
                    Got::Unfit
                })
            }
            _ => self.unfit(1),
        }
    }
}

#[cfg(test)]
mod tests;
