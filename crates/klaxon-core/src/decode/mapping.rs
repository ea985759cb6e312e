//! Field mappings: how an alert in a SIEM's shape (Elastic Common Schema, OCSF, …) becomes the
//! native alert of docs/spec.md §1.
//!
//! A mapping is data, `<config dir>/mappings/<name>.toml`:
//!
//! - `[recognise]` — how to tell the shape: `all` paths must be present, at least one of `any`
//!   (when given), and none of `none`; `envelope` names objects that may hold a record of the
//!   shape (`_source` of an indexer document). Loading refuses two active mappings unless one
//!   lists in `none` a path the other requires, so that no record fits two formats, whatever
//!   their order.
//! - `[require]` — values a recognised record must have (`class_uid = [2001, 2004]`); a record of
//!   the shape with another value is rejected, naming the field.
//! - `[fields."<native field>"]` — for each native field (`id`, `timestamp`, `operator.id`,
//!   `impact.outage.since`, …): `from`, an ordered list of sources (the first present one wins),
//!   an optional literal `default`, an optional `transform`, and for times an optional `zone`
//!   (the source's zone, for times it writes without an offset).
//!
//! A source is a dotted path (`kibana.alert.rule.name`, `resources[0].uid`) that reads nested
//! objects and flat dotted keys alike (`{"kibana.alert.rule.name": …}` and
//! `{"kibana": {"alert": …}}`, or any mix), or a template such as `"{event.module}-{id}"` whose
//! every `{path}` must be present; `{?path}` only requires the path to be present and inserts
//! nothing. Null and blank strings count as absent.
//!
//! [`Mapping::to_native`] is a pure function from the decoded record to the native alert JSON,
//! which then goes through the native decoder, so validation and its messages stay in one place;
//! [`Mapped::explain`] then names the *source* field in a rejection.

use super::DecodeError;
use crate::settings::{line_of, read_toml, Issue, Issues};
use crate::time::{parse_zone, TimeProblem, Timestamp};
use chrono::FixedOffset;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The directory of mapping files inside the config directory.
pub const DIR: &str = "mappings";
/// The name of the native format in `input.formats`.
pub const NATIVE: &str = "native";

/// Plain-id forms a mapping may fill besides the alert's fields: they read better in a mapping
/// whose source is a plain id.
const ALIASES: [&str; 2] = ["operator", "asset"];

/// The native fields a mapping may fill (docs/spec.md §1): every field of the alert's field
/// table ([`crate::model::alert::FIELDS`]), and the aliases `operator` and `asset`.
pub fn targets() -> impl Iterator<Item = &'static str> {
    crate::model::alert::FIELDS
        .iter()
        .map(|f| f.path)
        .chain(ALIASES)
}

/// Native fields every mapping must fill (the native alert requires them).
const REQUIRED: [&str; 2] = ["id", "timestamp"];

// ------------------------------------------------------------------------------------ paths

/// A dotted source path with optional array indexes: `a.b[0].c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath {
    text: String,
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seg {
    name: String,
    index: Vec<usize>,
}

impl SourcePath {
    pub fn parse(text: &str) -> Result<SourcePath, String> {
        if text.is_empty() {
            return Err("empty path".into());
        }
        if text.trim() != text {
            return Err(format!("path {text:?} has surrounding spaces"));
        }
        let mut segs = Vec::new();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() {
                return Err(format!("path {text:?} has an empty segment"));
            }
            if name.contains([']', '{', '}']) {
                return Err(format!("path {text:?}: unexpected character in {name:?}"));
            }
            let mut index = Vec::new();
            while !rest.is_empty() {
                let Some(inner) = rest.strip_prefix('[') else {
                    return Err(format!("path {text:?}: expected `[` after `]`"));
                };
                let Some(end) = inner.find(']') else {
                    return Err(format!("path {text:?}: unclosed `[`"));
                };
                let n = inner[..end].parse::<usize>().map_err(|_| {
                    format!(
                        "path {text:?}: index {:?} is not a whole number",
                        &inner[..end]
                    )
                })?;
                index.push(n);
                rest = &inner[end + 1..];
            }
            segs.push(Seg {
                name: name.to_string(),
                index,
            });
        }
        Ok(SourcePath {
            text: text.to_string(),
            segs,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, through nested objects and flat dotted keys alike.
    pub fn get<'v>(&self, record: &'v Value) -> Option<&'v Value> {
        resolve(record, &self.segs)
    }

    fn root(&self) -> &str {
        self.segs.first().map(|s| s.name.as_str()).unwrap_or("")
    }
}

fn resolve<'v>(v: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    if segs.is_empty() {
        return Some(v);
    }
    let obj = v.as_object()?;
    // Flat keys that can stand for the first k segments ("kibana.alert.rule.name"), longest first:
    // a document may spell some levels flat and others nested.
    let mut keys = Vec::with_capacity(segs.len());
    let mut key = String::new();
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        key.push_str(&s.name);
        keys.push(key.clone());
        if !s.index.is_empty() {
            break; // a flat key cannot run through an array index
        }
    }
    for (k, key) in keys.iter().enumerate().rev() {
        let (Some(mut child), Some(seg)) = (obj.get(key), segs.get(k)) else {
            continue;
        };
        let mut found = true;
        for &i in &seg.index {
            match child.as_array().and_then(|a| a.get(i)) {
                Some(c) => child = c,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        if let Some(v) = segs.get(k + 1..).and_then(|rest| resolve(child, rest)) {
            return Some(v);
        }
    }
    None
}

/// Null and blank strings count as absent.
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        _ => true,
    }
}

// ------------------------------------------------------------------------------------ sources

/// Where a native field's value comes from: a path, or a template of paths.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Path(SourcePath),
    Template { text: String, pieces: Vec<Piece> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(SourcePath),
    Present(SourcePath),
}

impl Source {
    fn parse(s: &str) -> Result<Source, String> {
        if !s.contains(['{', '}']) {
            return SourcePath::parse(s).map(Source::Path);
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let text = &rest[..open];
            if text.contains('}') {
                return Err(format!("template {s:?}: `}}` without `{{`"));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!("template {s:?}: unclosed `{{`"));
            };
            let inner = &after[..close];
            if inner.contains('{') {
                return Err(format!("template {s:?}: nested `{{`"));
            }
            match inner.strip_prefix('?') {
                Some(p) => pieces.push(Piece::Present(
                    SourcePath::parse(p).map_err(|e| format!("template {s:?}: {e}"))?,
                )),
                None => pieces.push(Piece::Value(
                    SourcePath::parse(inner).map_err(|e| format!("template {s:?}: {e}"))?,
                )),
            }
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("template {s:?}: `}}` without `{{`"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Source::Template {
            text: s.to_string(),
            pieces,
        })
    }

    fn text(&self) -> &str {
        match self {
            Source::Path(p) => p.as_str(),
            Source::Template { text, .. } => text,
        }
    }

    /// The value, if present.
    fn eval(&self, record: &Value) -> Option<Value> {
        match self {
            Source::Path(p) => p.get(record).filter(|v| present(v)).cloned(),
            Source::Template { pieces, .. } => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Value(p) => match p.get(record).filter(|v| present(v))? {
                            Value::String(s) => out.push_str(s),
                            Value::Number(n) => out.push_str(&n.to_string()),
                            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                            _ => return None,
                        },
                        Piece::Present(p) => {
                            p.get(record).filter(|v| present(v))?;
                        }
                    }
                }
                Some(Value::String(out))
            }
        }
    }
}

// ------------------------------------------------------------------------------------ transforms

/// Simple conversions from a source value to what the native field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// A time as text, in the forms [`Timestamp::parse`] reads (RFC 3339, also `+hhmm`
    /// offsets or a space before the time), or without an offset when the field declares the
    /// source's `zone`; or epoch seconds / milliseconds as a number, told apart by magnitude
    /// (below 10^11 is seconds).
    Timestamp,
    /// Epoch milliseconds (number or string of digits) → RFC 3339.
    EpochMs,
    /// Epoch seconds (number or string of digits) → RFC 3339.
    EpochS,
    /// A whole number, or a string of digits (ECS `labels.*` are keyword strings).
    Integer,
    /// A number, or a numeric string.
    Number,
    /// `true`/`false`, also as strings (other text is passed on as it is).
    Boolean,
    /// Strings as they are; numbers and booleans as text.
    String,
    /// Text in lower case.
    Lowercase,
}

impl Transform {
    pub const ALL: [(&'static str, Transform); 8] = [
        ("timestamp", Transform::Timestamp),
        ("epoch_ms", Transform::EpochMs),
        ("epoch_s", Transform::EpochS),
        ("integer", Transform::Integer),
        ("number", Transform::Number),
        ("boolean", Transform::Boolean),
        ("string", Transform::String),
        ("lowercase", Transform::Lowercase),
    ];

    fn parse(s: &str) -> Result<Transform, String> {
        Transform::ALL
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let known: Vec<&str> = Transform::ALL.iter().map(|(k, _)| *k).collect();
                format!("unknown transform {s:?} (known: {})", known.join(", "))
            })
    }

    /// `zone`: the source's declared zone, for times written without an offset.
    fn apply(self, v: &Value, zone: Option<FixedOffset>) -> Result<Value, Problem> {
        match self {
            Transform::Timestamp => match v {
                Value::String(s) => time_text(s, zone).map(Value::String),
                Value::Number(_) => epoch(v, Unit::Auto).map(Value::String),
                other => Err(Problem::Type(format!(
                    "expected a time (RFC 3339 text or epoch number), got {}",
                    kind(other)
                ))),
            },
            Transform::EpochMs => epoch(v, Unit::Millis).map(Value::String),
            Transform::EpochS => epoch(v, Unit::Seconds).map(Value::String),
            Transform::Integer => integer(v),
            Transform::Number => number(v),
            Transform::Boolean => match v {
                Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Value::String(s) if s.trim().eq_ignore_ascii_case("false") => {
                    Ok(Value::Bool(false))
                }
                // Other text is left for the native field to judge (`designated` also takes a
                // scale such as "major").
                Value::Bool(_) | Value::String(_) => Ok(v.clone()),
                other => Err(Problem::Type(format!(
                    "expected a boolean, got {}",
                    kind(other)
                ))),
            },
            Transform::String | Transform::Lowercase => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(Problem::Type(format!("expected text, got {}", kind(other))))
                    }
                };
                Ok(Value::String(if self == Transform::Lowercase {
                    s.to_lowercase()
                } else {
                    s
                }))
            }
        }
    }
}

/// Why a transform failed: a value of the wrong JSON type, or a bad value of the right type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Type(String),
    Value(String),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A time for the native alert, read by the one parser of every path ([`Timestamp::parse`]).
/// A time with an offset is passed on as it was written (the native decoder reads the same
/// forms); one without is read in the mapping's declared `zone` and written in it, or
/// rejected (the instant would be a guess).
fn time_text(s: &str, zone: Option<FixedOffset>) -> Result<String, Problem> {
    let s = s.trim();
    match Timestamp::parse(s) {
        Ok(_) => Ok(s.to_string()),
        Err(e) if e.problem == TimeProblem::NoOffset => match zone {
            Some(z) => Timestamp::parse_in(s, Some(z))
                .map(|t| t.format(z))
                .map_err(|e| Problem::Value(e.to_string())),
            None => Err(Problem::Value(e.to_string())),
        },
        Err(e) => Err(Problem::Value(e.to_string())),
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
    /// Seconds below 10^11 (until the year 5138), milliseconds above (after 1973-03-03).
    Auto,
}

fn epoch(v: &Value, unit: Unit) -> Result<String, Problem> {
    let bad = |what: String| {
        Problem::Value(format!(
            "epoch time {what} is out of range (years 0000 to 9999)"
        ))
    };
    let n: f64 = match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| Problem::Value(format!("{n} is not an epoch time")))?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
            Problem::Value(format!("{s:?} is not an epoch time (a number is needed)"))
        })?,
        other => {
            return Err(Problem::Type(format!(
                "expected an epoch time (a number), got {}",
                kind(other)
            )))
        }
    };
    let unit_ms = match unit {
        Unit::Seconds => 1000,
        Unit::Millis => 1,
        Unit::Auto if n.abs() < 1e11 => 1000,
        Unit::Auto => 1,
    };
    // Integers stay exact; fractions of a millisecond are dropped.
    let t = match v.as_i64() {
        Some(i) => Timestamp::from_epoch_int(i, unit_ms),
        None => Timestamp::from_epoch(n, unit_ms),
    }
    .ok_or_else(|| bad(v.to_string()))?;
    Ok(t.format(chrono::Offset::fix(&chrono::Utc)))
}

fn integer(v: &Value) -> Result<Value, Problem> {
    let not = |s: String| Problem::Value(format!("{s} is not a non-negative whole number"));
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Value::from(u));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Value::from(f as u64)),
                _ => Err(not(n.to_string())),
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| not(format!("{s:?}"))),
        other => Err(Problem::Type(format!(
            "expected a whole number, got {}",
            kind(other)
        ))),
    }
}

fn number(v: &Value) -> Result<Value, Problem> {
    match v {
        Value::Number(_) => Ok(v.clone()),
        Value::String(s) => {
            let t = s.trim();
            if let Ok(u) = t.parse::<u64>() {
                return Ok(Value::from(u));
            }
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Value::from(i));
            }
            t.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| Problem::Value(format!("{s:?} is not a number")))
        }
        other => Err(Problem::Type(format!(
            "expected a number, got {}",
            kind(other)
        ))),
    }
}

// ------------------------------------------------------------------------------------ mappings

/// How one native field is filled.
#[derive(Debug, Clone)]
struct FieldRule {
    target: String,
    sources: Vec<Source>,
    default: Option<Value>,
    transform: Option<Transform>,
    /// The source's zone for times written without an offset (`timestamp` transform only).
    zone: Option<FixedOffset>,
}

impl FieldRule {
    fn required(&self) -> bool {
        REQUIRED.contains(&self.target.as_str())
    }

    fn sources_text(&self) -> String {
        let v: Vec<&str> = self.sources.iter().map(Source::text).collect();
        v.join(", ")
    }

    /// The value and where it came from (empty: the default); `Err` names the source whose
    /// value is bad.
    fn eval(&self, record: &Value) -> Result<Option<(Value, String)>, (String, Problem)> {
        for src in &self.sources {
            if let Some(v) = src.eval(record) {
                let v = match self.transform {
                    Some(t) => t
                        .apply(&v, self.zone)
                        .map_err(|p| (src.text().to_string(), p))?,
                    None => v,
                };
                return Ok(Some((v, src.text().to_string())));
            }
        }
        Ok(self.default.clone().map(|d| (d, String::new())))
    }
}

/// The first path segment of each top-level key: `kibana` for a flat `kibana.alert.uuid`, the
/// key itself when it has no dot. A mapping's path matches a key exactly when its first segment
/// is the key's root.
pub fn key_roots<K: AsRef<str>>(keys: &[K]) -> Vec<&str> {
    keys.iter()
        .map(|k| {
            let k = k.as_ref();
            // A byte loop: keys are short, and `split_once`'s searcher cost ~75 instructions a
            // key to set up.
            k.bytes().position(|b| b == b'.').map_or(k, |dot| &k[..dot])
        })
        .collect()
}

/// One SIEM shape and how it maps onto the native alert.
#[derive(Debug, Clone)]
pub struct Mapping {
    name: String,
    all: Vec<SourcePath>,
    any: Vec<SourcePath>,
    /// Paths a record of this shape never has (present and not null: not this shape).
    none: Vec<SourcePath>,
    /// Objects that may hold a record of this shape (`_source` of an indexer document).
    envelope: Vec<SourcePath>,
    require: Vec<(SourcePath, Vec<Value>)>,
    fields: Vec<FieldRule>,
}

/// The native alert JSON a mapping produced, and which source filled each native field.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub format: String,
    pub native: Value,
    /// (native field, source path or template)
    pub provenance: Vec<(String, String)>,
}

impl Mapping {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cheap pre-check on the roots of the record's top-level keys ([`key_roots`]): could it be
    /// of this shape? Runs for every record and mapping, so it compares whole roots (mostly a
    /// length check), not prefixes: ~2,100 instructions a record before, on the shipped four
    /// mappings (callgrind, `core_profile replay`).
    pub fn may_recognise(&self, key_roots: &[&str]) -> bool {
        let has = |p: &SourcePath| key_roots.contains(&p.root());
        (self.all.iter().all(has) && (self.any.is_empty() || self.any.iter().any(has)))
            || self.envelope.iter().any(has)
    }

    /// Is the record of this shape (itself, or inside one of the mapping's envelopes)?
    pub fn recognises(&self, record: &Value) -> bool {
        self.view(record).is_some()
    }

    /// The object of this shape: the record itself, or the first envelope that holds one
    /// (with the envelope's path, to name fields in rejections).
    fn view<'v>(&self, record: &'v Value) -> Option<(&'v Value, Option<&SourcePath>)> {
        if self.shape_of(record) {
            return Some((record, None));
        }
        self.envelope.iter().find_map(|e| {
            e.get(record)
                .filter(|inner| self.shape_of(inner))
                .map(|inner| (inner, Some(e)))
        })
    }

    fn shape_of(&self, record: &Value) -> bool {
        let has = |p: &SourcePath| p.get(record).is_some_and(|v| !v.is_null());
        record.is_object()
            && self.all.iter().all(has)
            && (self.any.is_empty() || self.any.iter().any(has))
            && !self.none.iter().any(has)
    }

    /// The conditions of recognition, per way of recognising a record (itself; each
    /// envelope): paths that must all be present, one of which must be, none of which may be.
    fn views(&self) -> Vec<(Vec<&str>, Vec<&str>, Vec<&str>)> {
        fn text(v: &[SourcePath]) -> Vec<&str> {
            v.iter().map(SourcePath::as_str).collect()
        }
        let mut out = vec![(text(&self.all), text(&self.any), text(&self.none))];
        for e in &self.envelope {
            out.push((vec![e.as_str()], Vec::new(), Vec::new()));
        }
        out
    }

    /// `None` when no record can be of both shapes (some path one requires, the other
    /// forbids); else where they may meet, for the message.
    pub fn may_overlap(&self, other: &Mapping) -> Option<String> {
        let apart = |a: &(Vec<&str>, Vec<&str>, Vec<&str>),
                     b: &(Vec<&str>, Vec<&str>, Vec<&str>)| {
            a.0.iter().any(|p| b.2.contains(p))
                || (!a.1.is_empty() && a.1.iter().all(|p| b.2.contains(p)))
        };
        for (i, a) in self.views().iter().enumerate() {
            for (j, b) in other.views().iter().enumerate() {
                if !apart(a, b) && !apart(b, a) {
                    let how = |m: &Mapping, k: usize| match k {
                        0 => format!("{} records", m.name),
                        k => format!(
                            "{} records inside `{}`",
                            m.name,
                            m.envelope.get(k - 1).map_or("", SourcePath::as_str)
                        ),
                    };
                    return Some(format!("{} and {}", how(self, i), how(other, j)));
                }
            }
        }
        None
    }

    /// The native alert JSON for a record of this shape (pure: no I/O, no clock).
    pub fn to_native(&self, record: &Value) -> Result<Mapped, DecodeError> {
        let (record, envelope) = self.view(record).unwrap_or((record, None));
        // A field inside an envelope is named by its whole path.
        let within = |p: &str| match envelope {
            Some(e) => format!("{}.{p}", e.as_str()),
            None => p.to_string(),
        };
        for (path, allowed) in &self.require {
            let got = path.get(record);
            if !got.is_some_and(|v| allowed.contains(v)) {
                let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                return Err(match got {
                    None | Some(Value::Null) => DecodeError::MissingField(within(path.as_str())),
                    Some(v) => DecodeError::BadValue {
                        field: within(path.as_str()),
                        problem: format!(
                            "{v} is not accepted by the {} mapping (accepted: {})",
                            self.name,
                            allowed.join(", ")
                        ),
                    },
                });
            }
        }
        let mut out = Map::new();
        let mut provenance = Vec::new();
        for f in &self.fields {
            match f.eval(record) {
                Ok(Some((v, src))) => {
                    set_path(&mut out, &f.target, v);
                    let src = if src.is_empty() {
                        format!("mappings/{}.toml fields.{}.default", self.name, f.target)
                    } else {
                        within(&src)
                    };
                    provenance.push((f.target.clone(), src));
                }
                Ok(None) if f.required() => {
                    let mut sources = f.sources_text();
                    if let Some(e) = envelope {
                        sources.push_str(&format!(" (inside `{}`)", e.as_str()));
                    }
                    return Err(DecodeError::MappedMissing {
                        format: self.name.clone(),
                        field: f.target.clone(),
                        sources,
                    });
                }
                Ok(None) => {}
                Err((field, p)) => {
                    let field = within(&field);
                    let note = format!("({} mapping → `{}`)", self.name, f.target);
                    return Err(match p {
                        Problem::Type(problem) => DecodeError::WrongType {
                            field,
                            problem: format!("{problem} {note}"),
                        },
                        Problem::Value(problem) => DecodeError::BadValue {
                            field,
                            problem: format!("{problem} {note}"),
                        },
                    });
                }
            }
        }
        // An operator or asset known by its id alone is written as the plain id, as people write
        // native alerts (the registry fills in the rest either way).
        for party in ["operator", "asset"] {
            let lone_id = match out.get(party) {
                Some(Value::Object(o)) if o.len() == 1 => o.get("id").cloned(),
                _ => None,
            };
            if let Some(id) = lone_id {
                out.insert(party.to_string(), id);
            }
        }
        Ok(Mapped {
            format: self.name.clone(),
            native: Value::Object(out),
            provenance,
        })
    }
}

/// Sets `a.b.c` in a JSON object, creating the objects on the way.
fn set_path(out: &mut Map<String, Value>, path: &str, v: Value) {
    let mut cur = out;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            // `operator` and `operator.id` may both be mapped: the id goes inside the object.
            match cur.get_mut(p) {
                Some(Value::Object(o)) => {
                    o.insert("id".into(), v);
                }
                _ => {
                    cur.insert(p.to_string(), v);
                }
            }
            return;
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            // `operator` was set as an id before `operator.name`: keep it as the object's id.
            let id = std::mem::take(entry);
            let mut o = Map::new();
            o.insert("id".into(), id);
            *entry = Value::Object(o);
        }
        let Value::Object(next) = entry else {
            return;
        };
        cur = next;
    }
}

impl Mapped {
    /// The native alert as JSON text.
    pub fn native_text(&self) -> String {
        self.native.to_string()
    }

    /// A rejection of the native alert, rewritten to name the source field it came from.
    pub fn explain(&self, e: DecodeError) -> DecodeError {
        let note = |native: &str| format!("({} mapping → `{native}`)", self.format);
        match e {
            DecodeError::WrongType { field, problem } => match self.source_of(&field) {
                Some(src) => DecodeError::WrongType {
                    problem: format!("{problem} {}", note(&field)),
                    field: src.to_string(),
                },
                None => DecodeError::WrongType { field, problem },
            },
            DecodeError::BadValue { field, problem } => match self.source_of(&field) {
                Some(src) => DecodeError::BadValue {
                    problem: format!("{problem} {}", note(&field)),
                    field: src.to_string(),
                },
                None => DecodeError::BadValue { field, problem },
            },
            other => other,
        }
    }

    /// The source that filled `native` (or the field it is part of, or a part of it).
    fn source_of(&self, native: &str) -> Option<&str> {
        let native = native.trim_start_matches('.');
        self.provenance
            .iter()
            .find(|(t, _)| t == native)
            .or_else(|| {
                self.provenance.iter().find(|(t, _)| {
                    native.starts_with(t.as_str()) && native[t.len()..].starts_with('.')
                        || t.starts_with(native) && t[native.len()..].starts_with('.')
                })
            })
            .map(|(_, s)| s.as_str())
    }
}

/// The active input formats: whether native alerts are accepted, and the mappings tried (in
/// `input.formats` order) before native decoding.
#[derive(Debug, Clone)]
pub struct Mappings {
    native: bool,
    active: Vec<Mapping>,
    /// Mappings found in mappings/ but not listed in `input.formats`: a record of their shape
    /// is rejected as of a format not accepted, not read as a native alert by chance (a Wazuh
    /// alert has an `id` and a `timestamp`, all a native alert needs).
    inactive: Vec<Mapping>,
}

impl Default for Mappings {
    fn default() -> Self {
        Mappings::native_only()
    }
}

/// Native alerts only, no mapping.
pub static NATIVE_ONLY: Mappings = Mappings::native_only();

impl Mappings {
    pub const fn native_only() -> Self {
        Mappings {
            native: true,
            active: Vec::new(),
            inactive: Vec::new(),
        }
    }

    pub fn accepts_native(&self) -> bool {
        self.native
    }

    pub fn active(&self) -> &[Mapping] {
        &self.active
    }

    /// Mappings loaded but not listed in `input.formats`.
    pub fn inactive(&self) -> &[Mapping] {
        &self.inactive
    }

    /// The active formats in a line for `check-config`: the mappings (each recognising a
    /// shape no other active one does), then what becomes of other records.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.active.iter().map(Mapping::name).collect();
        let mapped = if names.is_empty() {
            "no mapping".to_string()
        } else {
            format!("mappings {}", names.join(", "))
        };
        let rest = if self.native {
            "other records are read as native alerts"
        } else {
            "other records are dead-lettered (unknown_format)"
        };
        format!("input formats: {mapped} (no record fits two); {rest}")
    }

    /// The accepted formats, in order (`native` last: it is the fallback).
    pub fn formats(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.active.iter().map(Mapping::name).collect();
        if self.native {
            v.push(NATIVE);
        }
        v
    }
}

mod load;
pub(crate) use load::load;
pub use load::parse;

#[cfg(test)]
mod tests;
