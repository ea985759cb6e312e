//! Bytes → [`Input`] or a [`DecodeError`] whose [`code`](DecodeError::code) is at once the
//! dead-letter reason header and the metric label, so the three never drift apart.
//!
//! [`decode`] reads native records only. [`decode_with`] first tries the configured field
//! [`mapping`]s (ECS, OCSF, …): a record of a recognised shape becomes native alert JSON, which
//! then goes through the same native decoding; other records are decoded as native ones.

mod fast;
pub mod mapping;

pub use mapping::Mappings;

use crate::model::command::{CommandName, CommandProblem};
use crate::model::{Alert, Command, Input};
use serde::Deserialize;
use std::borrow::Cow;
use thiserror::Error;

/// Why a record was rejected. The message names the field and the problem.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record is {size} bytes, larger than the maximum of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("record is not valid UTF-8 (first bad byte at {at})")]
    NotUtf8 { at: usize },
    #[error("record is not JSON: {0}")]
    NotJson(String),
    #[error("record is JSON but not an object")]
    NotObject,
    #[error("missing required field `{0}`")]
    MissingField(String),
    #[error("field `{field}` has the wrong type: {problem}")]
    WrongType { field: String, problem: String },
    #[error("field `{field}` is invalid: {problem}")]
    BadValue { field: String, problem: String },
    /// A mapped record has none of the sources of a required native field.
    #[error("missing required field `{field}`: the {format} mapping found none of {sources}")]
    MappedMissing {
        format: String,
        field: String,
        sources: String,
    },
    /// The record is of a shape a loaded mapping recognises, but `input.formats` leaves it out.
    #[error("record is in the {format} format, which `input.formats` does not list (accepted: {accepted})")]
    InactiveFormat { format: String, accepted: String },
    /// A time the record carries is implausible (see [`crate::admission`]).
    #[error("field `{field}` is {value}, outside the accepted event times {earliest} to {latest}")]
    EventTimeOutOfRange {
        field: String,
        value: String,
        earliest: String,
        latest: String,
    },
    /// No active mapping recognises the record, and native records are not accepted.
    #[error("record is in none of the accepted formats ({accepted}; see input.formats)")]
    UnknownFormat { accepted: String },
}

impl DecodeError {
    /// Stable, bounded reason code.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::NotUtf8 { .. } => "not_utf8",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::NotObject => "not_object",
            DecodeError::MissingField(_) | DecodeError::MappedMissing { .. } => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadValue { .. } => "bad_value",
            DecodeError::UnknownFormat { .. } | DecodeError::InactiveFormat { .. } => {
                "unknown_format"
            }
            DecodeError::EventTimeOutOfRange { .. } => "event_time_out_of_range",
        }
    }

    /// Every reason code, for pre-registering metric series.
    pub const CODES: [&'static str; 9] = [
        "too_large",
        "not_utf8",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "bad_value",
        "unknown_format",
        "event_time_out_of_range",
    ];
}

/// Which shape a record is expected to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Alert,
    Command,
    /// Replay files mix both: a record with a `command` field is a command.
    Either,
}

/// Decodes one native record. `max_bytes` of 0 means no limit.
pub fn decode(bytes: &[u8], expect: Expect, max_bytes: usize) -> Result<Input<'_>, DecodeError> {
    let text = prelude(bytes, max_bytes)?;
    if expect != Expect::Command {
        if let Some(fast::Scanned {
            alert: Some(alert),
            command,
            ..
        }) = fast::scan(text, false)
        {
            if !command || expect == Expect::Alert {
                return Ok(Input::Alert(alert));
            }
        }
    }
    let expect = match expect {
        Expect::Either => {
            if has_command_field(text)? {
                Expect::Command
            } else {
                Expect::Alert
            }
        }
        other => other,
    };
    native(text, expect)
}

/// A decoded record, and the native alert JSON when a mapping produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    pub input: Input<'a>,
    pub mapped: Option<MappedRecord>,
}

/// What a mapping made of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRecord {
    /// The mapping's name (`ecs`, `ocsf`, …).
    pub format: String,
    /// The native alert as JSON text: what the record means in Klaxon's own format.
    pub native: String,
}

/// Decodes one record of any accepted format: alerts of a shape an active mapping recognises
/// are mapped onto the native model first; commands are always native. `max_bytes` of 0 means
/// no limit.
pub fn decode_with<'a>(
    bytes: &'a [u8],
    expect: Expect,
    max_bytes: usize,
    mappings: &Mappings,
) -> Result<Input<'a>, DecodeError> {
    decode_record(bytes, expect, max_bytes, mappings).map(|d| d.input)
}

/// [`decode_with`], also returning the native JSON of a mapped record (the router forwards
/// that, so that later stages read native records only).
pub fn decode_record<'a>(
    bytes: &'a [u8],
    expect: Expect,
    max_bytes: usize,
    mappings: &Mappings,
) -> Result<Decoded<'a>, DecodeError> {
    if mappings.active().is_empty() && mappings.inactive().is_empty() && mappings.accepts_native() {
        return decode(bytes, expect, max_bytes).map(|input| Decoded {
            input,
            mapped: None,
        });
    }
    let text = prelude(bytes, max_bytes)?;
    // One pass lists the keys and, for a plain native alert, decodes it too.
    let (keys, fast_alert): (Vec<Cow<str>>, _) = match fast::scan(text, true) {
        Some(s) => (s.keys, s.alert),
        None => (top_keys(text)?.into_iter().map(Cow::Owned).collect(), None),
    };
    let is_command = match expect {
        Expect::Either => keys.iter().any(|k| k == "command"),
        other => other == Expect::Command,
    };
    if is_command {
        return native(text, Expect::Command).map(|input| Decoded {
            input,
            mapped: None,
        });
    }
    let roots = mapping::key_roots(&keys);
    let mut record: Option<serde_json::Value> = None;
    for m in mappings.active() {
        if !m.may_recognise(&roots) {
            continue;
        }
        let value = match &record {
            Some(v) => v,
            None => record.insert(serde_json::from_str(text).map_err(classify_plain)?),
        };
        if !m.recognises(value) {
            continue;
        }
        let mapped = m.to_native(value)?;
        let native_text = mapped.native_text();
        let alert = parse::<Alert>(&native_text).map_err(|e| mapped.explain(e))?;
        return Ok(Decoded {
            input: Input::Alert(Box::new(alert)),
            mapped: Some(MappedRecord {
                format: mapped.format,
                native: native_text,
            }),
        });
    }
    // A shape whose mapping is loaded but not listed is not read as native by chance.
    for m in mappings.inactive() {
        if !m.may_recognise(&roots) {
            continue;
        }
        let value = match &record {
            Some(v) => v,
            None => record.insert(serde_json::from_str(text).map_err(classify_plain)?),
        };
        if m.recognises(value) {
            return Err(DecodeError::InactiveFormat {
                format: m.name().to_string(),
                accepted: mappings.formats().join(", "),
            });
        }
    }
    if mappings.accepts_native() {
        if let Some(alert) = fast_alert {
            return Ok(Decoded {
                input: Input::Alert(alert),
                mapped: None,
            });
        }
        return native(text, Expect::Alert).map(|input| Decoded {
            input,
            mapped: None,
        });
    }
    Err(DecodeError::UnknownFormat {
        accepted: mappings.formats().join(", "),
    })
}

/// `bytes` as text, or the offset of the first byte that is not UTF-8. simdutf8 validates ~600
/// bytes in about half of std's instructions; on the rare failure, std's validator says where
/// the text went wrong.
pub fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| {
        std::str::from_utf8(bytes)
            .err()
            .map_or(0, |e| e.valid_up_to())
    })
}

/// Size, UTF-8 and "is it an object" checks shared by every format.
fn prelude(bytes: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    if max_bytes > 0 && bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    let text = utf8(bytes).map_err(|at| DecodeError::NotUtf8 { at })?;
    // A byte-order mark is not content: some Windows shippers start every record with one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => DecodeError::NotObject,
            Err(e) => classify_plain(e),
        });
    }
    Ok(text)
}

fn native(text: &str, expect: Expect) -> Result<Input<'_>, DecodeError> {
    match expect {
        Expect::Command => command(text).map(|c| Input::Command(Box::new(c))),
        _ => parse::<Alert>(text).map(|a| Input::Alert(Box::new(a))),
    }
}

/// Decodes a command, validated once here at the edge. A JSON object whose `command` is a
/// string is a command, however wrong the rest: a field of the wrong type or an unreadable
/// value is left out, a missing or unreadable `at` is marked unusable, a name not in
/// [`CommandName::ALL`] is noted, and the command comes back with a [`CommandProblem`] for its
/// action that names every field at fault; the engine answers it with `command.rejected` and
/// changes nothing. The sender hears why, which a dead letter would not tell them. A well-formed
/// record's action is read by [`Command::check`] (a field its command needs missing or
/// unreadable is a problem the same way). Only a record that is not a JSON object, or names no
/// command, is an error (a dead letter).
pub fn command(text: &str) -> Result<Command, DecodeError> {
    let first = match parse::<Command>(text) {
        Ok(mut c) => match c.name() {
            Some(name) => {
                c.action = c.check(name).map_err(|p| {
                    Box::new(CommandProblem {
                        reason: p.to_string(),
                        code: p.code(),
                        at_usable: true,
                    })
                });
                return Ok(c);
            }
            None => DecodeError::BadValue {
                field: "command".into(),
                problem: format!(
                    "unknown command {:?} (expected {})",
                    c.command,
                    CommandName::listed()
                ),
            },
        },
        Err(e) => e,
    };
    let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
    else {
        return Err(first);
    };
    if !matches!(map.get("command"), Some(serde_json::Value::String(_))) {
        return Err(first);
    }
    let mut problems = vec![first];
    let mut at_usable = true;
    // Each round removes (or, for `at`, replaces) one field, so this ends within a round per
    // field; the bound only guards against a field that keeps failing.
    for _ in 0..=map.len() + 1 {
        let field = match problems.last() {
            Some(DecodeError::MissingField(f)) => f.clone(),
            Some(DecodeError::WrongType { field, .. } | DecodeError::BadValue { field, .. }) => {
                field.clone()
            }
            _ => break,
        };
        // The top-level key at fault (`a.b` → `a`).
        let key = field.split('.').next().unwrap_or(&field).to_string();
        if key == "at" {
            at_usable = false;
            map.insert(
                "at".into(),
                serde_json::Value::String(PLACEHOLDER_AT.into()),
            );
        } else if key != "command" {
            map.remove(&key);
        }
        let value = serde_json::Value::Object(map.clone());
        let next = serde_path_to_error::deserialize::<_, Command>(&value).map_err(|e| {
            let path = e.path().to_string();
            classify_value(path, e.into_inner())
        });
        match next {
            Ok(mut c) => {
                if key != "command" && c.name().is_none() {
                    problems.push(DecodeError::BadValue {
                        field: "command".into(),
                        problem: format!(
                            "unknown command {:?} (expected {})",
                            c.command,
                            CommandName::listed()
                        ),
                    });
                }
                let reason = problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                c.action = Err(Box::new(CommandProblem {
                    reason,
                    code: problems.first().map_or("bad_value", DecodeError::code),
                    at_usable,
                }));
                return Ok(c);
            }
            Err(e) => {
                if problems.iter().any(|p| p == &e) {
                    break;
                }
                problems.push(e);
            }
        }
    }
    problems
        .into_iter()
        .next()
        .map_or(Err(DecodeError::NotObject), Err)
}

/// What a command whose `at` is unusable carries in its place; see [`Command::event_time`].
const PLACEHOLDER_AT: &str = "2000-01-01T00:00:00Z";

fn classify_value(path: String, e: serde_json::Error) -> DecodeError {
    classify(path, e)
}

/// The top-level keys of a JSON object (values skipped, not built).
fn top_keys(text: &str) -> Result<Vec<String>, DecodeError> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(text)
        .map(|k| k.0)
        .map_err(classify_plain)
}

/// A cheap first pass for mixed input: is there a top-level `command` key?
fn has_command_field(text: &str) -> Result<bool, DecodeError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        command: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_str(text).map_err(classify_plain)?;
    Ok(probe.command.is_some())
}

/// Parses on the fast path; only a record that fails is parsed again with path tracking, so the
/// error can name the field (path tracking costs about a fifth of the parse).
fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    if let Ok(v) = serde_json::from_str::<T>(text) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        classify(path, e.into_inner())
    })?;
    de.end().map_err(classify_plain)?;
    Ok(value)
}

fn classify_plain(e: serde_json::Error) -> DecodeError {
    classify(".".to_string(), e)
}

fn classify(path: String, e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let msg = e.to_string();
    // serde_json appends " at line L column C"; the field path says more to a person.
    let problem = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => DecodeError::NotJson(problem),
        Category::Data => {
            if let Some(rest) = problem.strip_prefix("missing field `") {
                let name = rest.trim_end_matches('`');
                let field = if path == "." || path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                DecodeError::MissingField(field)
            } else if let Some(rest) = problem.strip_prefix("duplicate field `") {
                // Name the field itself, not the object holding it.
                let name = rest.trim_end_matches('`');
                let field = if path == "." || path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                DecodeError::BadValue {
                    field,
                    problem: "appears more than once in the record".into(),
                }
            } else if path == "." && problem.starts_with("invalid type") {
                DecodeError::NotObject
            } else if problem.starts_with("invalid type") {
                DecodeError::WrongType {
                    field: path,
                    problem,
                }
            } else {
                DecodeError::BadValue {
                    field: path,
                    problem,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(s: &[u8]) -> DecodeError {
        match decode(s, Expect::Either, 1024) {
            Err(e) => e,
            Ok(i) => panic!("expected a rejection, got {i:?}"),
        }
    }

    #[test]
    fn accepts_the_spec_example() {
        let line = r#"{"id":"suricata-000123","timestamp":"2026-11-24T08:00:00+08:00","source":"suricata",
          "operator":{"id":"gd-grid","class":"cii","province":"广东省","sector":"energy"},
          "asset":"scada-01",
          "impact":{"outage":{"scope":"whole","since":"2026-11-24T07:55:00+08:00","until":null},
                    "affected_population":1200000}}"#;
        let Ok(Input::Alert(a)) = decode(line.as_bytes(), Expect::Either, 0) else {
            panic!("should decode")
        };
        assert_eq!(a.id, "suricata-000123");
        assert_eq!(a.impact.affected_population, Some(1_200_000));
    }

    #[test]
    fn each_rejection_names_field_and_problem() {
        assert_eq!(reject(b"\xff\xfe").code(), "not_utf8");
        assert_eq!(
            reject(&[br#"{"id":""#.as_slice(), "中".as_bytes(), b"\xff\"}"].concat()).to_string(),
            "record is not valid UTF-8 (first bad byte at 10)"
        );
        assert_eq!(reject(b"{\"id\": ").code(), "not_json");
        assert_eq!(reject(b"[1,2]").code(), "not_object");
        let e = reject(br#"{"id":"a"}"#);
        assert_eq!(e.code(), "missing_field");
        assert_eq!(e.to_string(), "missing required field `timestamp`");
        let e = reject(br#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"personal_info_records":"many"}}"#);
        assert_eq!(e.code(), "wrong_type");
        assert!(
            e.to_string().contains("impact.personal_info_records"),
            "{e}"
        );
        let e = reject(br#"{"id":"a","timestamp":"yesterday"}"#);
        assert_eq!(e.code(), "bad_value");
        assert!(e.to_string().contains("`timestamp`"), "{e}");
        let e = reject(br#"{"id":"","timestamp":"2026-11-24T08:00:00Z"}"#);
        assert!(
            e.to_string().contains("`id`") && e.to_string().contains("non-empty"),
            "{e}"
        );
        let e = reject(br#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"affected_population_share":{"provincial":1.5}}}"#);
        assert!(
            e.to_string()
                .contains("impact.affected_population_share.provincial"),
            "{e}"
        );
        assert_eq!(reject(&[b' '; 2000]).code(), "too_large");
    }

    proptest::proptest! {
        /// The fast validator accepts exactly what std's does, and a rejection names the byte
        /// std names: records of UTF-8 text, some bytes then overwritten with arbitrary ones.
        #[test]
        fn utf8_is_judged_as_std_judges_it(
            text in "[ -~é中😀]{0,80}",
            damage in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..3),
        ) {
            let mut bytes = format!(r#"{{"id":"{text}"}}"#).into_bytes();
            for (at, byte) in damage {
                let n = bytes.len();
                bytes[at % n] = byte;
            }
            let got = decode(&bytes, Expect::Either, 0);
            match std::str::from_utf8(&bytes) {
                Ok(_) => {
                    let rejected_as_not_utf8 = matches!(got, Err(DecodeError::NotUtf8 { .. }));
                    proptest::prop_assert!(!rejected_as_not_utf8);
                }
                Err(e) => proptest::prop_assert_eq!(got.err(), Some(DecodeError::NotUtf8 { at: e.valid_up_to() })),
            }
        }
    }

    /// #18: a byte-order mark is accepted; a duplicate key names itself.
    #[test]
    fn a_bom_is_skipped_and_a_duplicate_key_is_named() {
        let line = "\u{feff}{\"id\":\"a\",\"timestamp\":\"2026-11-24T08:00:00Z\"}";
        assert!(matches!(
            decode(line.as_bytes(), Expect::Either, 0),
            Ok(Input::Alert(_))
        ));
        let e = reject(br#"{"id":"a","id":"b","timestamp":"2026-11-24T08:00:00Z"}"#);
        assert_eq!(e.code(), "bad_value");
        assert_eq!(
            e.to_string(),
            "field `id` is invalid: appears more than once in the record"
        );
        let e = reject(br#"{"id":"a","timestamp":"2026-11-24T08:00:00Z","impact":{"outage":{"since":"2026-11-24T08:00:00Z","since":"2026-11-24T08:00:00Z"}}}"#);
        assert!(e.to_string().contains("`impact.outage.since`"), "{e}");
    }

    #[test]
    fn commands_are_told_apart_by_their_command_field() {
        let line = br#"{"command":"ack","incident_id":"INC-1","at":"2026-11-24T08:00:00+08:00","by":"alice"}"#;
        assert!(matches!(
            decode(line, Expect::Either, 0),
            Ok(Input::Command(_))
        ));
        let (_, p) = problem(r#"{"command":"ack","incident_id":"INC-1"}"#);
        assert_eq!(p.reason, "missing required field `at`");
    }

    fn problem(line: &str) -> (Command, CommandProblem) {
        match decode(line.as_bytes(), Expect::Command, 0) {
            Ok(Input::Command(c)) => match c.problem().cloned() {
                Some(p) => (*c, p),
                None => panic!("expected a problem: {line}"),
            },
            other => panic!("expected a command, got {other:?}"),
        }
    }

    /// #18: a command with a field of the wrong type is still a command (the engine answers it
    /// with `command.rejected` naming the field); only records that name no command are dead
    /// letters.
    #[test]
    fn a_malformed_command_is_a_command_with_a_problem() {
        let (c, p) = problem(
            r#"{"command":"regrade","incident_id":"INC-1","at":"2026-11-24T08:00:00Z","level":3,"reason":"r"}"#,
        );
        assert_eq!(c.command, "regrade");
        assert_eq!(c.incident_id.as_deref(), Some("INC-1"));
        assert_eq!(c.level, None);
        assert_eq!(c.reason.as_deref(), Some("r"));
        assert_eq!(p.code, "wrong_type");
        assert!(p.at_usable);
        assert_eq!(
            p.reason,
            "field `level` has the wrong type: invalid type: integer `3`, expected a string"
        );
        assert_eq!(c.event_time(), Some(c.at));

        let (c, p) = problem(r#"{"command":"ack","incident_id":42,"at":true,"by":"alice"}"#);
        assert_eq!(c.by.as_deref(), Some("alice"));
        assert!(!p.at_usable);
        assert!(
            p.reason.contains("field `incident_id` has the wrong type"),
            "{}",
            p.reason
        );
        assert!(
            p.reason.contains("field `at` has the wrong type"),
            "{}",
            p.reason
        );
        assert_eq!(c.event_time(), None);

        for (line, field, code) in [
            (
                r#"{"command":"ack","incident_id":"INC-1","at":null}"#,
                "`at`",
                "wrong_type",
            ),
            (
                r#"{"command":"ack","incident_id":"INC-1"}"#,
                "`at`",
                "missing_field",
            ),
            (
                r#"{"command":"ack","incident_id":"INC-1","at":"yesterday"}"#,
                "`at`",
                "bad_value",
            ),
            (
                r#"{"command":"report_filed","incident_id":"INC-1","at":"2026-11-24T08:00:00Z","partial":"yes"}"#,
                "`partial`",
                "wrong_type",
            ),
            (
                r#"{"command":"escalate","incident_id":"INC-1","at":"2026-11-24T08:00:00Z"}"#,
                "`command`",
                "bad_value",
            ),
            // Well-formed, but without a field its command needs, or with one unreadable.
            (
                r#"{"command":"dismiss","incident_id":"INC-1","at":"2026-11-24T08:00:00Z"}"#,
                "`reason` is required",
                "missing_field",
            ),
            (
                r#"{"command":"regrade","incident_id":"INC-1","at":"2026-11-24T08:00:00Z","reason":"r","level":"huge"}"#,
                "\"huge\"",
                "bad_value",
            ),
            (
                r#"{"command":"ack","incident_id":"INC-1","at":"2026-11-24T08:00:00Z","by":"a","by":"b"}"#,
                "`by`",
                "bad_value",
            ),
        ] {
            let (_, p) = problem(line);
            assert!(p.reason.contains(field), "{line}: {}", p.reason);
            assert_eq!(p.code, code, "{line}");
        }
        let (_, p) = problem(r#"{"command":"escalate","at":7}"#);
        assert!(
            p.reason.contains("unknown command \"escalate\""),
            "{}",
            p.reason
        );
        assert!(p.reason.contains("`at`"), "{}", p.reason);

        // Nothing to attribute: dead letters, as before.
        for (line, code) in [
            ("[1]", "not_object"),
            ("{\"command\":", "not_json"),
            (
                r#"{"incident_id":"INC-1","at":"2026-11-24T08:00:00Z"}"#,
                "missing_field",
            ),
            (
                r#"{"command":7,"incident_id":"INC-1","at":"2026-11-24T08:00:00Z"}"#,
                "wrong_type",
            ),
        ] {
            let e = decode(line.as_bytes(), Expect::Command, 0).unwrap_err();
            assert_eq!(e.code(), code, "{line}");
        }
        // A good command carries no problem; `Either` (replay) decodes the same way.
        let line = br#"{"command":"ack","incident_id":"INC-1","at":"2026-11-24T08:00:00Z"}"#;
        let Ok(Input::Command(c)) = decode(line, Expect::Either, 0) else {
            panic!("should decode")
        };
        assert_eq!(c.action, Ok(crate::model::Action::Ack));
        let Ok(Input::Command(c)) = decode(br#"{"command":"ack","level":3}"#, Expect::Either, 0)
        else {
            panic!("should decode")
        };
        assert!(c.problem().is_some());
    }
}
