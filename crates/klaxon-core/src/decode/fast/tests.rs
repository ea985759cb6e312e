use super::*;
use proptest::prelude::*;

/// One line of the load harness (`klaxon::loadtest::alert_line(50, 2000, …)`): the shape the
/// core benchmark pushes through the fast path.
const LOAD_LINE: &str = concat!(
    r#"{"id":"load-000000050","timestamp":"2026-11-24T09:00:00+08:00","source":"suricata","#,
    r#""title":"ET EXPLOIT Possible data exfiltration via DNS tunnelling (long TXT queries)","category":"data_leak","#,
    r#""incident_key":"load-key-50","operator":"hz-ecom","asset":{"id":"asset-50","name":"Member centre API gateway","kind":"other"},"#,
    r#""impact":{"personal_info_records":1200000,"economic_loss_cny":500,"affected_population":150},"#,
    r#""src_ip":"203.0.113.50","dest_ip":"198.51.100.50","signature_id":2027865,"rev":4,"severity":2,"#,
    r#""flow_id":1000000050,"app_proto":"dns","host":"sensor-18.soc.example.cn"}"#
);

/// The contract: whatever the fast path accepts, serde accepts and decodes identically; the
/// keys it lists are serde's.
fn agrees_with_serde(text: &str) -> Result<(), TestCaseError> {
    let Some(s) = scan(text, true) else {
        return Ok(());
    };
    let keys = super::super::top_keys(text);
    prop_assert!(keys.is_ok(), "fast path accepted invalid JSON: {text}");
    let keys = keys.unwrap_or_default();
    prop_assert_eq!(&s.keys, &keys, "keys of {}", text);
    prop_assert_eq!(s.command, keys.iter().any(|k| k == "command"));
    if let Some(alert) = s.alert {
        let reference = serde_json::from_str::<Alert>(text);
        prop_assert!(
            reference.is_ok(),
            "fast path accepted what serde rejects ({:?}): {}",
            reference.err(),
            text
        );
        prop_assert_eq!(Some(*alert), reference.ok(), "decoding of {}", text);
    }
    Ok(())
}

const KEYS: &[&str] = &[
    "id",
    "timestamp",
    "source",
    "title",
    "category",
    "incident_key",
    "detail",
    "operator",
    "asset",
    "impact",
    "command",
    "extra",
    "i\\u0064",
];

/// Values fit and unfit for the fields above, and odd JSON.
const VALUES: &[&str] = &[
    r#""a-1""#,
    r#""""#,
    r#""  ""#,
    r#""中文 ✓""#,
    r#""a\"b""#,
    r#""\u0041\n""#,
    r#""\x""#,
    r#""\u12G4""#,
    r#""2026-11-24T08:00:00+08:00""#,
    r#""2026-11-24T08:00:00.123Z""#,
    r#""2026-11-24 08:00""#,
    "null",
    "true",
    "fals",
    "0",
    "-0",
    "007",
    "12",
    "1.5",
    "1.",
    ".5",
    "1e3",
    "1E+2",
    "1e",
    "-",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "[]",
    "[1, [2, {\"a\": null}], \"x\"]",
    "[1,]",
    "{}",
    r#"{"a":{"b":[{"c":"d\\e"}]}}"#,
    r#"{"id":"x","class":"cii","province":"广东省"}"#,
    r#"{"id":"x","id":"y"}"#,
    r#"{"class":"bogus"}"#,
    r#"{"id":1}"#,
    r#"{"name":null,"kind":"cii_system","level":"national","size":"large","operator":"o"}"#,
    r#"{"personal_info_records":5,"affected_population":0,"economic_loss_cny":12}"#,
    r#"{"personal_info_records":-1}"#,
    r#"{"personal_info_records":1.5}"#,
    r#"{"affected_population":1,"affected_population":2}"#,
    r#"{"economic_loss_cny":12.5}"#,
    r#"{"economic_loss_cny":-0.0}"#,
    r#"{"economic_loss_cny":18446744073709551616}"#,
    r#"{"economic_loss_cny":1e400}"#,
    r#"{"economic_loss_cny":null,"personal_info_records":null}"#,
    r#"{"outage":{"scope":"main_function","since":"2026-11-24T08:00:00Z","until":null}}"#,
    r#"{"outage":{"scope":"weird"}}"#,
    r#"{"unreachable":{"since":"2026-11-24T08:00:00Z"},"finding":{"level":"major"}}"#,
    r#"{"defacement":{"designated":true,"views":10},"data_leak":{"class":"core","threat":"serious"}}"#,
    r#"{"ransom":{"amount":1.5e3,"currency":"BTC"},"affected_population_share":{"provincial":0.2}}"#,
    r#"{"affected_population_share":{"provincial":1.5}}"#,
    r#"{"finding":{"level":"nope"}}"#,
];

/// JSON whitespace, and (last, rarely picked) a space JSON does not allow.
const SPACE: &[&str] = &["", "", "", " ", "\n", "\t ", "\r\n", "\u{a0}"];

fn record() -> impl Strategy<Value = String> {
    let member = (
        0..KEYS.len(),
        0..VALUES.len(),
        0..SPACE.len(),
        0..SPACE.len(),
    );
    let base = (
        prop::sample::select(vec![r#""a-1""#, r#""x""#]),
        prop::sample::select(vec![
            r#""2026-11-24T08:00:00+08:00""#,
            r#""2026-11-24T00:00:00Z""#,
        ]),
    );
    (
        base,
        prop::collection::vec(member, 0..6),
        0..SPACE.len(),
        prop_oneof![
            12 => Just(""),
            1 => prop::sample::select(vec![" ", "\n", "x", "}", "{}"]),
        ],
    )
        .prop_map(|((id, ts), members, lead, tail)| {
            let mut parts = vec![format!(r#""id":{id}"#), format!(r#""timestamp":{ts}"#)];
            for (k, v, a, b) in members {
                parts.push(format!(
                    r#"{}"{}"{}:{}{}"#,
                    SPACE[a], KEYS[k], SPACE[b], SPACE[a], VALUES[v]
                ));
            }
            // Members rotate so that required fields are sometimes late or overridden.
            let n = parts.len();
            parts.rotate_left(lead % n);
            format!("{}{{{}}}{tail}", SPACE[lead], parts.join(","))
        })
}

/// A JSON object of the alert's field table, written by hand so that key order and escapes
/// are the generator's: `(key, value)` where the value is JSON text or a nested object.
enum Node {
    Leaf(&'static str),
    Object(Vec<(String, Node)>),
}

fn insert(into: &mut Vec<(String, Node)>, path: &[&str], example: &'static str) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        into.push((first.to_string(), Node::Leaf(example)));
        return;
    }
    if !into
        .iter()
        .any(|(k, n)| k == first && matches!(n, Node::Object(_)))
    {
        into.push((first.to_string(), Node::Object(Vec::new())));
    }
    for (k, n) in into.iter_mut() {
        if k == first {
            if let Node::Object(inner) = n {
                insert(inner, rest, example);
                return;
            }
        }
    }
}

/// Writes a node: members in an order drawn from `seed`, a key's first letter escaped as
/// `\u00XX` when `escape` says so, and an unknown member added where `extra` says.
fn write(node: &Node, seed: &mut u64, escape: &[bool], extra: &[bool], out: &mut String) {
    match node {
        Node::Leaf(v) => out.push_str(v),
        Node::Object(members) => {
            let mut order: Vec<usize> = (0..members.len()).collect();
            for i in (1..order.len()).rev() {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                order.swap(i, ((*seed >> 33) % (i as u64 + 1)) as usize);
            }
            out.push('{');
            let mut first = true;
            for (n, i) in order.into_iter().enumerate() {
                let (k, v) = &members[i];
                if !first {
                    out.push(',');
                }
                first = false;
                if extra.get(n).copied().unwrap_or(false) {
                    out.push_str(r#""x_unknown":{"id":[1,"a"],"impact":null},"#);
                }
                let key = if escape.get(n).copied().unwrap_or(false) {
                    let mut c = k.chars();
                    let head = c.next().map_or(0, |c| c as u32);
                    format!("\\u{head:04x}{}", c.as_str())
                } else {
                    k.clone()
                };
                out.push_str(&format!("\"{key}\":"));
                write(v, seed, escape, extra, out);
            }
            out.push('}');
        }
    }
}

/// Records of any subset of the alert's field table (`model::alert::FIELDS`), each field with
/// its example value: every field the alert has is exercised, so one the fast path drops or
/// misreads shows up as a disagreement with serde.
fn table_record() -> impl Strategy<Value = String> {
    let n = crate::model::alert::FIELDS.len();
    (
        prop::collection::vec(prop::bool::weighted(0.7), n),
        any::<u64>(),
        prop::collection::vec(prop::bool::weighted(0.1), 12),
        prop::collection::vec(prop::bool::weighted(0.05), 12),
    )
        .prop_map(move |(keep, mut seed, escape, extra)| {
            let mut root = Vec::new();
            for (f, keep) in crate::model::alert::FIELDS.iter().zip(keep) {
                // `id` and `timestamp` always: without them there is nothing to compare.
                if keep || f.path == "id" || f.path == "timestamp" {
                    let path: Vec<&str> = f.path.split('.').collect();
                    insert(&mut root, &path, f.example);
                }
            }
            let mut out = String::new();
            write(&Node::Object(root), &mut seed, &escape, &extra, &mut out);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn records_of_every_alert_field_decode_as_serde_decodes_them(text in table_record()) {
        agrees_with_serde(&text)?;
    }

    #[test]
    fn generated_records_decode_as_serde_decodes_them(text in record()) {
        agrees_with_serde(&text)?;
    }

    /// The word-at-a-time scans against the obvious byte loops, on any bytes from anywhere
    /// (mostly plain content, so that runs cross the 16- and 8-byte steps).
    #[test]
    fn scans_agree_with_byte_loops(
        bytes in prop::collection::vec(prop_oneof![
            // Stops too, so that some lie before `from`.
            8 => prop::sample::select(b"abc019 \x7f\xc3\xa9\"\\\x01".to_vec()),
            1 => any::<u8>(),
        ], 0..80),
        from in 0..80usize,
    ) {
        let from = from.min(bytes.len());
        let stop = |c: &u8| *c == b'"' || *c == b'\\' || *c < 0x20;
        let plain = bytes[from..].iter().position(stop).map_or(bytes.len(), |p| from + p);
        prop_assert_eq!(plain_run(&bytes, from), plain);
        let digits = bytes[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(bytes.len(), |p| from + p);
        prop_assert_eq!(digit_run(&bytes, from), digits);
    }

    /// Real-shaped lines with bytes deleted, inserted or replaced.
    #[test]
    fn mutated_records_decode_as_serde_decodes_them(
        line in 0..4usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(
            b"\"{}[],:\\ 0159-.eEnulltrfs\x01\xc3\xa9".to_vec())), 1..4),
    ) {
        let lines = [
            LOAD_LINE.to_string(),
            r#"{"id":"suricata-000123","timestamp":"2026-11-24T08:00:00+08:00","source":"suricata","operator":{"id":"gd-grid","class":"cii","province":"广东省","sector":"energy"},"asset":"scada-01","impact":{"outage":{"scope":"whole","since":"2026-11-24T07:55:00+08:00","until":null},"affected_population":1200000}}"#.to_string(),
            r#"{"id":"w-1","timestamp":"2026-11-24T01:12:08.514+08:00","title":"sshd: brute force","rule_id":"5712","tags":["a",{"b":[1,2.5e-3,-0]}],"impact":{"economic_loss_cny":1234.5,"finding":{"level":"relatively_major","reason":"x"}}}"#.to_string(),
            r#"{"command":"ack","incident_id":"INC-1","at":"2026-11-24T08:00:00+08:00","by":"alice"}"#.to_string(),
        ];
        let mut bytes = lines[line].clone().into_bytes();
        for (at, op, b) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => { bytes.remove(i); }
                1 => bytes.insert(i, b),
                _ if i < bytes.len() => bytes[i] = b,
                _ => {}
            }
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            agrees_with_serde(text)?;
        }
    }
}

#[test]
fn the_common_shapes_take_the_fast_path() {
    let mut lines: Vec<String> = include_str!("../../../../../examples/day.jsonl")
        .lines()
        // Commands, and the day's deliberately broken records, are not alerts.
        .filter(|l| !l.contains("\"command\"") && serde_json::from_str::<Alert>(l).is_ok())
        .map(str::to_owned)
        .collect();
    lines.push(LOAD_LINE.to_string());
    for line in &lines {
        let reference = serde_json::from_str::<Alert>(line).ok();
        let s = scan(line, false).unwrap_or_else(|| panic!("scanned: {line}"));
        if line.contains('\\') {
            assert!(s.alert.is_none(), "escapes are left to serde: {line}");
        } else {
            assert!(s.alert.is_some(), "fast path took: {line}");
            assert_eq!(s.alert.map(|a| *a), reference, "{line}");
        }
    }
}

#[test]
fn a_record_without_its_required_fields_is_left_to_serde() {
    for line in [
        r#"{"timestamp":"2026-11-24T08:00:00Z","title":"t"}"#,
        r#"{"id":"a","title":"t","impact":{"personal_info_records":5}}"#,
        r#"{"title":"t"}"#,
    ] {
        let s = scan(line, false).unwrap_or_else(|| panic!("scanned: {line}"));
        assert!(s.alert.is_none(), "{line}");
    }
    let s = scan(r#"{"timestamp":"2026-11-24T08:00:00Z","id":"a"}"#, false);
    assert!(s.and_then(|s| s.alert).is_some());
}

#[test]
fn plain_runs_stop_at_the_first_quote_backslash_or_control_character() {
    // Space, DEL and UTF-8 bytes (all >= 0x80) are content; lengths cross the 16-byte and
    // 8-byte steps at every offset.
    let text = "abc defghijklmnopqrstuvwxyz\u{7f}0123456789中文";
    for stop in ["\"", "\\", "\n", "\u{1f}", "\u{0}"] {
        for at in 0..text.len() {
            if !text.is_char_boundary(at) {
                continue;
            }
            let s = format!("{}{stop}{}", &text[..at], &text[at..]);
            for from in 0..=at {
                assert_eq!(plain_run(s.as_bytes(), from), at, "{s:?} from {from}");
            }
        }
    }
    assert_eq!(plain_run(text.as_bytes(), 3), text.len());
    assert_eq!(plain_run(b"", 0), 0);
}

#[test]
fn digit_runs_stop_at_the_first_byte_that_is_not_a_digit() {
    let digits = "01234567890123456789";
    // Each neighbour of the digits in byte order, and bytes that differ by the high bit.
    for stop in [
        b'/', b':', b'.', b'e', b'-', b' ', 0, 0x7f, 0x80, 0xb0, 0xb9, 0xff,
    ] {
        for at in 0..=digits.len() {
            let mut s = digits.as_bytes()[..at].to_vec();
            s.push(stop);
            s.extend_from_slice(&digits.as_bytes()[at..]);
            for from in 0..=at {
                assert_eq!(digit_run(&s, from), at, "{s:?} from {from}");
            }
        }
    }
    assert_eq!(digit_run(digits.as_bytes(), 3), digits.len());
    assert_eq!(digit_run(b"", 0), 0);
}

#[test]
fn deep_nesting_is_left_to_serde() {
    let deep = format!(
        r#"{{"id":"a","timestamp":"2026-11-24T00:00:00Z","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(scan(&deep, true).is_none());
}

/// The fast path takes a record of every field of the table (it does not leave the full schema
/// to serde), and reads it as serde does.
#[test]
fn a_record_of_every_field_takes_the_fast_path() {
    let text = crate::model::alert::record_of(crate::model::alert::FIELDS.iter()).to_string();
    let s = scan(&text, true).expect("the fast path takes it");
    assert!(s.alert.is_some(), "the fast path took no alert from {text}");
    agrees_with_serde(&text).expect("agrees with serde");
}
