//! SIEM field mappings (config/mappings/*.toml): ECS and OCSF alerts decode onto the native model,
//! replay to exactly the escalations of their native equivalents, bad mapped records are rejected
//! naming the source field, every real sample in ../shared/samples decodes or is rejected with a
//! reason, `input.formats` chooses the active mappings, and a mapped alert goes through the live
//! service (Kafka in, escalations out).

mod kafka_support;

use klaxon::decode::{decode_record, DecodeError, Decoded, Expect, Mappings};
use klaxon::engine::Engine;
use klaxon::settings::{self, Config};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const UNTIL: &str = "2026-11-24T23:59:59+08:00";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        settings::load(&manifest().join("config"))
            .unwrap_or_else(|e| panic!("shipped config must load: {e}"))
    })
}

fn fixtures() -> PathBuf {
    manifest().join("tests/fixtures/siem")
}

/// (mapped fixture, its native equivalent, the expected format).
fn pairs() -> Vec<(PathBuf, PathBuf, &'static str)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/siem")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !name.ends_with(".jsonl") || name.ends_with(".native.jsonl") {
            continue;
        }
        let native = f.with_file_name(name.replace(".jsonl", ".native.jsonl"));
        assert!(
            native.exists(),
            "{name} has no native equivalent {native:?}"
        );
        let format = if name.starts_with("ecs-") {
            "ecs"
        } else if name.starts_with("ocsf-") {
            "ocsf"
        } else {
            panic!("fixture {name}: name it ecs-… or ocsf-…")
        };
        out.push((f, native, format));
    }
    assert!(
        out.len() >= 4,
        "expected the ECS and OCSF fixtures, got {out:?}"
    );
    out
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn decode(line: &str) -> Result<Decoded<'_>, DecodeError> {
    decode_record(
        line.as_bytes(),
        Expect::Either,
        config().settings.input.max_record_bytes,
        &config().mappings,
    )
}

fn replay(text: &str, mappings: &Mappings) -> (Vec<u8>, usize) {
    let mut engine = Engine::from_config(config());
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let until = klaxon::time::Timestamp::parse_rfc3339(UNTIL).expect("until");
    klaxon::replay::run_with(
        &mut engine,
        text.as_bytes(),
        config().settings.input.max_record_bytes,
        mappings,
        Some(until),
        &mut out,
        |b| bad.push(format!("line {}: {}", b.line, b.error)),
    )
    .expect("replay into memory");
    assert!(bad.is_empty(), "skipped lines: {bad:?}");
    let n = out.iter().filter(|b| **b == b'\n').count();
    (out, n)
}

// ------------------------------------------------------------------ fixtures

#[test]
fn the_shipped_config_activates_native_ecs_and_ocsf() {
    assert_eq!(config().mappings.formats(), ["ecs", "ocsf", "native"]);
}

#[test]
fn every_fixture_decodes_and_maps_to_its_native_equivalent() {
    for (mapped, native, format) in pairs() {
        let (m, n) = (lines(&mapped), lines(&native));
        assert_eq!(m.len(), n.len(), "{mapped:?}: one native line per record");
        for (i, (ml, nl)) in m.iter().zip(&n).enumerate() {
            let where_ = format!("{}:{}", mapped.display(), i + 1);
            let dm = decode(ml).unwrap_or_else(|e| panic!("{where_}: {e}"));
            let dn = decode(nl).unwrap_or_else(|e| panic!("{where_} (native): {e}"));
            assert_eq!(
                dm.mapped.as_ref().map(|r| r.format.as_str()),
                Some(format),
                "{where_}: recognised as {format}"
            );
            assert!(
                dn.mapped.is_none(),
                "{where_}: the native line stays native"
            );
            assert_eq!(dm.input, dn.input, "{where_}: maps to the native line");
            // The native JSON forwarded by the router decodes to the same alert.
            let forwarded = dm.mapped.expect("mapped").native;
            let again = decode(&forwarded).unwrap_or_else(|e| panic!("{where_}: {e}"));
            assert_eq!(again.input, dn.input, "{where_}: forwarded native JSON");
        }
    }
}

#[test]
fn mapped_fixtures_replay_to_the_same_escalations_as_their_native_equivalents() {
    for (mapped, native, _) in pairs() {
        let m = std::fs::read_to_string(&mapped).expect("read");
        let n = std::fs::read_to_string(&native).expect("read");
        let (out_m, count) = replay(&m, &config().mappings);
        let (out_n, _) = replay(&n, &config().mappings);
        assert_eq!(
            String::from_utf8_lossy(&out_m),
            String::from_utf8_lossy(&out_n),
            "{}: escalations differ from its native equivalent",
            mapped.display()
        );
        let text = String::from_utf8_lossy(&out_m);
        assert!(
            text.contains("\"type\":\"report.due\""),
            "{}: the fixture should make a report due ({count} events):\n{text}",
            mapped.display()
        );
    }
}

#[test]
fn native_replay_without_mappings_rejects_the_mapped_fixtures() {
    // The plain `replay::run` reads native records only; an ECS/OCSF line is then a bad line.
    for (mapped, _, _) in pairs() {
        let text = std::fs::read_to_string(&mapped).expect("read");
        let mut engine = Engine::from_config(config());
        let mut bad = 0;
        let s = klaxon::replay::run(
            &mut engine,
            text.as_bytes(),
            0,
            None,
            &mut Vec::new(),
            |_| bad += 1,
        )
        .expect("replay");
        assert_eq!(s.records, 0, "{mapped:?}");
        assert_eq!(bad, lines(&mapped).len(), "{mapped:?}");
    }
}

// ------------------------------------------------------------------ rejections

fn fixture_record(file: &str, n: usize) -> Value {
    serde_json::from_str(&lines(&fixtures().join(file))[n]).expect("fixture JSON")
}

fn reject(v: &Value) -> DecodeError {
    match decode(&v.to_string()) {
        Err(e) => e,
        Ok(d) => panic!("expected a rejection of {v}, got {:?}", d.input),
    }
}

/// Asserts the rejection's code and that its message names `field` (in backticks).
fn assert_names(e: &DecodeError, code: &str, field: &str, also: &str) {
    let msg = e.to_string();
    assert_eq!(e.code(), code, "{msg}");
    assert!(
        msg.contains(&format!("`{field}`")),
        "should name `{field}`: {msg}"
    );
    assert!(msg.contains(also), "should say {also:?}: {msg}");
}

#[test]
fn bad_mapped_records_are_rejected_naming_the_source_field() {
    // A figure that is not a number (ECS labels are strings): the transform names the label.
    let mut w = fixture_record("ecs-wazuh.jsonl", 0);
    w["labels"]["klaxon_personal_info_records"] = json!("about a million");
    assert_names(
        &reject(&w),
        "bad_value",
        "labels.klaxon_personal_info_records",
        "impact.personal_info_records",
    );

    // A value the native model rejects (operator class): the native error, renamed to the label.
    let mut w = fixture_record("ecs-wazuh.jsonl", 0);
    w["labels"]["klaxon_operator_class"] = json!("critical");
    assert_names(
        &reject(&w),
        "bad_value",
        "labels.klaxon_operator_class",
        "operator.class",
    );

    // Same with a flat dotted label key.
    let mut w = fixture_record("ecs-wazuh.jsonl", 1);
    w["labels.klaxon_personal_info_records"] = json!(["1", "2"]);
    assert_names(
        &reject(&w),
        "wrong_type",
        "labels.klaxon_personal_info_records",
        "expected a whole number",
    );

    // A time without an offset.
    let mut s = fixture_record("ecs-suricata.jsonl", 0);
    s["labels"]["klaxon_unreachable_since"] = json!("2026-11-24 10:00:00");
    assert_names(
        &reject(&s),
        "bad_value",
        "labels.klaxon_unreachable_since",
        "no UTC offset",
    );

    // A designation that is neither true nor a scale: the native check, named by its label.
    let mut k = fixture_record("ecs-kibana-detection.jsonl", 2);
    k["labels"]["klaxon_defacement_designated"] = json!("ture");
    assert_names(
        &reject(&k),
        "bad_value",
        "labels.klaxon_defacement_designated",
        "impact.defacement.designated",
    );

    // No source for the id: the rejection lists where the mapping looked.
    let mut s = fixture_record("ecs-suricata.jsonl", 0);
    s.as_object_mut().expect("object").remove("network");
    let e = reject(&s);
    assert_names(&e, "missing_field", "id", "kibana.alert.uuid, event.id");

    // A bad @timestamp.
    let mut k = fixture_record("ecs-kibana-detection.jsonl", 0);
    k["@timestamp"] = json!("yesterday");
    assert_names(&reject(&k), "bad_value", "@timestamp", "not a time");

    // OCSF: another class, an epoch out of range, a finding without uid.
    let mut p = fixture_record("ocsf-prowler.jsonl", 0);
    p["class_uid"] = json!(3002);
    assert_names(
        &reject(&p),
        "bad_value",
        "class_uid",
        "accepted: 2004, 2001",
    );
    let mut p = fixture_record("ocsf-prowler.jsonl", 0);
    p["time"] = json!(1e300);
    assert_names(&reject(&p), "bad_value", "time", "out of range");
    let mut p = fixture_record("ocsf-prowler.jsonl", 1);
    p["finding_info"]
        .as_object_mut()
        .expect("finding_info")
        .remove("uid");
    assert_names(
        &reject(&p),
        "missing_field",
        "id",
        "finding_info.uid, finding.uid",
    );
    let mut p = fixture_record("ocsf-prowler.jsonl", 1);
    p["unmapped"]["klaxon_data_leak_threat"] = json!(null);
    let e = reject(&p);
    assert_eq!(e.code(), "missing_field", "{e}");
    assert!(e.to_string().contains("impact.data_leak.threat"), "{e}");
}

// ------------------------------------------------------------------ the real samples

/// ../shared/samples beside the repository (CI has it; elsewhere the test says so and passes).
fn samples() -> Option<PathBuf> {
    let dir = manifest().join("../shared/samples");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found: the raw-sample check is skipped",
            dir.display()
        );
        None
    }
}

#[test]
fn every_raw_sample_decodes_or_is_rejected_with_a_reason() {
    let Some(root) = samples() else { return };
    let mut seen = 0;
    for kind in ["ecs", "ocsf", "suricata", "wazuh"] {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(root.join(kind)) {
            Ok(d) => d.map(|e| e.expect("entry").path()).collect(),
            Err(e) => panic!("{}/{kind}: {e}", root.display()),
        };
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
        {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for (i, line) in lines(f).iter().enumerate() {
                seen += 1;
                let at = format!("{kind}/{name}:{}", i + 1);
                match decode(line) {
                    Ok(d) => {
                        let fmt = d
                            .mapped
                            .as_ref()
                            .map(|m| m.format.as_str())
                            .unwrap_or("native");
                        eprintln!("{at}: decoded as {fmt}");
                        match kind {
                            "ecs" | "ocsf" => assert_eq!(fmt, kind, "{at}"),
                            // Raw IDS/HIDS lines are not native alerts (no id or no RFC 3339 time).
                            _ => panic!("{at}: a raw {kind} line should not pass as an alert"),
                        }
                    }
                    Err(e) => {
                        eprintln!("{at}: rejected [{}] {e}", e.code());
                        assert!(DecodeError::CODES.contains(&e.code()), "{at}");
                        let msg = e.to_string();
                        assert!(
                            msg.contains('`'),
                            "{at}: the reason should name a field: {msg}"
                        );
                        match kind {
                            "ecs" => panic!("{at}: every ECS sample should decode: {msg}"),
                            // Prowler 3.6.1 (OCSF 1.0 Security Finding) wrote `time` without an offset.
                            "ocsf" => assert!(
                                name.contains("3.6.1")
                                    && msg.contains("`time`")
                                    && msg.contains("no UTC offset"),
                                "{at}: {msg}"
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    assert!(seen >= 30, "only {seen} sample lines read");
}

#[test]
fn ecs_samples_map_the_fields_a_soc_relies_on() {
    let Some(root) = samples() else { return };
    let first = |rel: &str| lines(&root.join(rel)).remove(0);
    let alert = |line: &str| match decode(line).expect("decodes").input {
        klaxon::model::Input::Alert(a) => a.into_owned(),
        other => panic!("not an alert: {other:?}"),
    };
    let k = alert(&first(
        "ecs/kibana_security-solution_detection-alert_8.1.0.jsonl",
    ));
    assert_eq!(
        k.id,
        "30a75fe46d3dbdfab55982036f77a8d60e2d1112e96f277c3b8c22f9bb57817a"
    );
    assert_eq!(k.title.as_deref(), Some("threat-match-rule"));
    assert_eq!(k.source.as_deref(), Some("elastic-security"));
    let legacy = alert(&first(
        "ecs/kibana_security-solution_legacy-signal_7.16.0.jsonl",
    ));
    assert_eq!(
        legacy.id,
        "signal-62f9a8c0-aac9-11ec-aa31-c9ea2cb79db7-P2yvt38BIyEvspK05HSe"
    );
    let s = alert(&first(
        "ecs/elastic-integrations_suricata_eve_alert_ecs.jsonl",
    ));
    assert_eq!(
        s.title.as_deref(),
        Some("ET POLICY curl User-Agent Outbound")
    );
    assert_eq!(s.source.as_deref(), Some("suricata"));
    assert_eq!(s.category.as_deref(), Some("Attempted Information Leak"));
    let p = alert(&first("ocsf/prowler_docs_detection_finding_2004.jsonl"));
    assert_eq!(
        p.title.as_deref(),
        Some("Check if secrets exists in ECS task definitions environment variables")
    );
    assert_eq!(p.timestamp.0, 1_737_995_806_000, "Prowler's epoch seconds");
    // Severity is not a grading level: nothing in the impact, so the incident stays general.
    assert_eq!(p.impact, klaxon::model::alert::Impact::default());
}

// ------------------------------------------------------------------ configuration

/// A temporary copy of the shipped config directory, subdirectories included.
fn config_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let p = e.expect("entry").path();
            let dest = to.join(p.file_name().expect("name"));
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).expect("copy");
            }
        }
    }
    let d = tempfile::tempdir().expect("tempdir");
    copy(&manifest().join("config"), d.path());
    d
}

fn set_formats(dir: &Path, formats: &str) {
    let p = dir.join("default.toml");
    let text = std::fs::read_to_string(&p).expect("read");
    let from = "formats = [\"native\", \"ecs\", \"ocsf\"]";
    assert!(text.contains(from));
    std::fs::write(&p, text.replace(from, &format!("formats = {formats}"))).expect("write");
}

fn load(dir: &Path) -> Result<Config, String> {
    settings::load(dir).map_err(|e| e.to_string())
}

#[test]
fn input_formats_choose_the_active_mappings() {
    let ecs = lines(&fixtures().join("ecs-wazuh.jsonl")).remove(0);
    let ocsf = lines(&fixtures().join("ocsf-prowler.jsonl")).remove(0);
    let native = lines(&fixtures().join("ecs-wazuh.native.jsonl")).remove(0);
    let dec = |c: &Config, l: &str| {
        decode_record(l.as_bytes(), Expect::Alert, 0, &c.mappings).map(|d| d.input.into_owned())
    };

    let d = config_copy();
    set_formats(d.path(), "[\"native\"]");
    let c = load(d.path()).expect("loads");
    assert_eq!(c.mappings.formats(), ["native"]);
    // Read as native, a Wazuh alert's own `timestamp` has no RFC 3339 offset.
    let e = dec(&c, &ecs).expect_err("ECS is off");
    assert_eq!(e.code(), "bad_value", "{e}");
    assert!(dec(&c, &native).is_ok());

    let d = config_copy();
    set_formats(d.path(), "\"ocsf, ecs\"");
    let c = load(d.path()).expect("loads");
    assert_eq!(c.mappings.formats(), ["ocsf", "ecs"]);
    assert!(dec(&c, &ecs).is_ok() && dec(&c, &ocsf).is_ok());
    let e = dec(&c, &native).expect_err("native is off");
    assert_eq!(e.code(), "unknown_format");
    assert!(e.to_string().contains("ocsf, ecs"), "{e}");
    // Commands are always native.
    let cmd = r#"{"command":"ack","incident_id":"INC-1","at":"2026-11-24T08:00:00+08:00"}"#;
    assert!(decode_record(cmd.as_bytes(), Expect::Either, 0, &c.mappings).is_ok());

    let d = config_copy();
    set_formats(d.path(), "[\"native\", \"splunk\", \"native\"]");
    let err = load(d.path()).expect_err("unknown format");
    assert!(
        err.contains("default.toml: input.formats[1]: unknown format \"splunk\""),
        "{err}"
    );
    assert!(
        err.contains("input.formats[2]: \"native\" is listed twice"),
        "{err}"
    );

    // Without the key: native plus every mapping found (configs from before mappings existed).
    let d = config_copy();
    let p = d.path().join("default.toml");
    let text = std::fs::read_to_string(&p).expect("read");
    std::fs::write(
        &p,
        text.replace("formats = [\"native\", \"ecs\", \"ocsf\"]\n", ""),
    )
    .expect("write");
    assert_eq!(
        load(d.path()).expect("loads").mappings.formats(),
        ["ecs", "ocsf", "native"]
    );
    std::fs::remove_dir_all(d.path().join("mappings")).expect("rm mappings");
    assert_eq!(
        load(d.path()).expect("loads").mappings.formats(),
        ["native"]
    );
}

#[test]
fn broken_mapping_files_are_reported_with_file_and_key() {
    let d = config_copy();
    let p = d.path().join("mappings/ecs.toml");
    let text = std::fs::read_to_string(&p).expect("read");
    let text = text
        .replace(
            "[fields.\"impact.affected_population\"]\nfrom = [\"labels.klaxon_affected_population\"]\ntransform = \"integer\"",
            "[fields.\"impact.affected_population\"]\nfrom = [\"labels.klaxon_affected_population\"]\ntransform = \"int\"",
        )
        .replace("[fields.category]", "[fields.categroy]")
        .replace("\"signal-{signal.rule.id}-{signal.parent.id}\"", "\"signal-{signal.rule.id\"");
    std::fs::write(&p, text).expect("write");
    std::fs::write(d.path().join("mappings/broken.toml"), "not toml [").expect("write");
    std::fs::copy(
        d.path().join("mappings/ocsf.toml"),
        d.path().join("mappings/Native.toml"),
    )
    .expect("copy");
    let err = load(d.path()).expect_err("broken mappings");
    let has = |file: &str, key: &str, problem: &str| {
        err.lines()
            .any(|l| l.contains(file) && l.contains(key) && l.contains(problem))
    };
    assert!(
        has(
            "ecs.toml",
            "fields.impact.affected_population.transform",
            "unknown transform \"int\""
        ),
        "{err}"
    );
    assert!(
        has("ecs.toml", "fields.categroy", "not a native alert field"),
        "{err}"
    );
    assert!(has("ecs.toml", "fields.id.from[2]", "unclosed"), "{err}");
    assert!(has("broken.toml", "line 1", ""), "{err}");
    assert!(has("Native.toml", "", "must be a format name"), "{err}");
}

// ------------------------------------------------------------------ live: Kafka in, escalations out

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_alert_goes_through_the_live_service() {
    use kafka_support::*;
    let t = Topics::new(&unique("siem"));
    let mut k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    // The Wazuh fixture, detected now: 1.35 million personal-information records.
    let mut w = fixture_record("ecs-wazuh.jsonl", 0);
    w["@timestamp"] = json!(at(0));
    w["id"] = json!(format!("{}.1", t.prefix));
    produce(&p, &t.alerts, None, w.to_string().as_bytes()).await;
    // And one with a bad figure: dead-lettered, the reason naming the label.
    let mut bad = w.clone();
    bad["id"] = json!(format!("{}.2", t.prefix));
    bad["labels"]["klaxon_personal_info_records"] = json!("lots");
    produce(&p, &t.alerts, None, bad.to_string().as_bytes()).await;

    let c = consumer(&t.escalations);
    let got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    let due = got
        .iter()
        .map(Record::json)
        .find(|e| e["type"] == "report.due")
        .unwrap_or_else(|| panic!("no report.due in {:?}", types(&got)));
    assert_eq!(due["level"], "relatively_major");
    assert_eq!(due["operator"]["id"], "hz-ecom");
    assert_eq!(due["alert_ids"], json!([format!("wazuh-{}.1", t.prefix)]));
    assert_eq!(due["matched"][0]["indicator"], "personal_info_records");

    let dlq = consumer(&t.dlq);
    let dead = read_until(&dlq, Duration::from_secs(30), |r| !r.is_empty()).await;
    let rec = dead.first().expect("a dead-lettered record");
    assert_eq!(rec.payload, bad.to_string().into_bytes(), "original bytes");
    assert_eq!(
        rec.headers.get("klaxon-reason").map(String::as_str),
        Some("bad_value")
    );
    let why = rec.headers.get("klaxon-error").cloned().unwrap_or_default();
    assert!(
        why.contains("`labels.klaxon_personal_info_records`"),
        "{why}"
    );
    assert_eq!(k.sigterm().code(), Some(0));
}

// ------------------------------------------------------------------ robustness

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// Paths the shipped mappings read, spelled nested and flat.
    const PATHS: [&str; 22] = [
        "@timestamp",
        "time",
        "time_dt",
        "class_uid",
        "metadata.version",
        "kibana.alert.uuid",
        "event.id",
        "event.module",
        "id",
        "finding_info",
        "finding_info.uid",
        "resources",
        "cloud.account.uid",
        "labels",
        "labels.klaxon_operator",
        "labels.klaxon_outage_since",
        "labels.klaxon_personal_info_records",
        "labels.klaxon_defacement_designated",
        "labels.klaxon_population_share_provincial",
        "unmapped.klaxon_affected_population",
        "unmapped.klaxon_data_leak_class",
        "signal.rule.threat",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter_map("finite", |f| {
                serde_json::Number::from_f64(f).map(Value::Number)
            }),
            ".{0,10}".prop_map(Value::String),
            prop::sample::select(vec![
                "2026-11-24T08:00:00+0800",
                "2026-11-24 08:00:00",
                "1795478712",
                "-1",
                "true",
                "major",
                "1e400",
                "",
            ])
            .prop_map(|s| json!(s)),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Sets `path` either as a flat dotted key or nested.
    fn set(doc: &mut Value, path: &str, v: Value, flat: bool) {
        if flat || !path.contains('.') {
            doc[path] = v;
            return;
        }
        let mut cur = doc;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            if !cur[*p].is_object() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        cur[parts[parts.len() - 1]] = v;
    }

    fn base() -> impl Strategy<Value = Value> {
        let mut all = Vec::new();
        for (mapped, _, _) in pairs() {
            for l in lines(&mapped) {
                all.push(serde_json::from_str::<Value>(&l).expect("fixture"));
            }
        }
        prop::sample::select(all)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn mapping_never_panics_and_rejects_with_a_known_code(
            mut doc in base(),
            edits in prop::collection::vec(
                (prop::sample::select(PATHS.to_vec()), value(), any::<bool>()), 1..4),
        ) {
            for (path, v, flat) in edits {
                set(&mut doc, path, v, flat);
            }
            match decode(&doc.to_string()) {
                Ok(d) => {
                    // Whatever is accepted, the engine copes with.
                    let mut e = Engine::from_config(config());
                    e.handle_timeout(d.input.time());
                    e.handle(d.input);
                    while e.poll_output().is_some() {}
                }
                Err(e) => {
                    prop_assert!(DecodeError::CODES.contains(&e.code()));
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}
