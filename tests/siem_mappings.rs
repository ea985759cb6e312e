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
        let format = ["ecs", "ocsf", "eve", "wazuh"]
            .into_iter()
            .find(|f| name.starts_with(&format!("{f}-")))
            .unwrap_or_else(|| panic!("fixture {name}: name it ecs-…, ocsf-…, eve-… or wazuh-…"));
        out.push((f, native, format));
    }
    assert!(
        out.len() >= 6,
        "expected the ECS, OCSF, EVE and Wazuh fixtures, got {out:?}"
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
fn the_shipped_config_activates_every_mapping_and_native() {
    assert_eq!(
        config().mappings.formats(),
        ["ecs", "ocsf", "eve", "wazuh", "native"]
    );
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
    // The plain `replay::run` reads native records only, knowing no mapping; an ECS/OCSF line
    // is then a bad line. (Not Wazuh alerts, raw or ECS-indexed: a Wazuh alert has an `id`
    // and a `timestamp`, all a native alert needs. Where the mappings are loaded, even
    // inactive, such a record is rejected as of a format not listed: see input_formats_….)
    for (mapped, _, _) in pairs() {
        let name = mapped.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains("wazuh") {
            continue;
        }
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

/// ../shared/samples beside the repository (or `$KLAXON_SAMPLES`); from a worktree under
/// `wt/`, two levels up. `None` (with a note) where there is none: the copies in
/// tests/fixtures/samples are checked all the same.
fn samples() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KLAXON_SAMPLES").map(PathBuf::from),
        Some(manifest().join("../shared/samples")),
        Some(manifest().join("../../shared/samples")),
    ];
    let found = candidates.into_iter().flatten().find(|d| d.is_dir());
    if found.is_none() {
        eprintln!("note: ../shared/samples not found: only the copies in tests/fixtures/samples are checked");
    }
    found
}

/// What a sample record must become.
enum Expected {
    /// An alert of this format, with this id, time (as UTC) and title.
    Alert {
        format: &'static str,
        id: &'static str,
        time: &'static str,
        title: &'static str,
    },
    /// A rejection with this code, naming this field, and saying this.
    Rejected {
        code: &'static str,
        field: &'static str,
        says: &'static str,
    },
}

type Row = (&'static str, usize, Expected);

fn ok(
    file: &'static str,
    line: usize,
    format: &'static str,
    id: &'static str,
    time: &'static str,
    title: &'static str,
) -> Row {
    (
        file,
        line,
        Expected::Alert {
            format,
            id,
            time,
            title,
        },
    )
}

fn no(
    file: &'static str,
    line: usize,
    code: &'static str,
    field: &'static str,
    says: &'static str,
) -> Row {
    (file, line, Expected::Rejected { code, field, says })
}

/// Every record of ../shared/samples (README there), by file and line. The times were checked
/// by hand against each record's own offset (and, where the record carries it, against the
/// UTC copy its producer wrote beside it: Wazuh's `@timestamp` and `fields.timestamp`, the id's
/// epoch seconds, Elastic's `@timestamp`).
///
/// Of note: EVE alerts without `tx_id` are identified by flow, signature and time; the first and
/// third lines of test-eve-logs_alerts are one alert (same flow, signature and time: Elastic's
/// test copied it with other metadata), so they share an id and the second is a duplicate.
/// Prowler's example outputs all carry the placeholder uid `<finding_uid>`: one id for ten
/// findings. Prowler 3.6.1 wrote its time without an offset: rejected, naming `time`.
fn expected() -> Vec<Row> {
    vec![
    ok("ecs/elastic-integrations_snort_log_sample_event.jsonl", 1, "ecs", "snort-1000015-1:AwywM3uuS+luH6U/hUKtj2x2LWU=-2022-09-05T16:02:55.000-05:00", "2022-09-05T21:02:55.000Z", "Pinging..."),
    ok("ecs/elastic-integrations_suricata_eve_alert_ecs.jsonl", 1, "ecs", "OISF-2013028-1:f/fhhymxTWawzKqC6BHu3U8J4Rw=-2018-10-03T14:42:44.836Z", "2018-10-03T14:42:44.836Z", "ET POLICY curl User-Agent Outbound"),
    ok("ecs/elastic-integrations_suricata_eve_alert_ecs.jsonl", 2, "ecs", "OISF-2610003-1:W6fjhboFUwyEchJ3ELaqSBzDEJE=-2020-06-26T15:00:03.342Z", "2020-06-26T15:00:03.342Z", "SURICATA TLS on unusual port"),
    ok("ecs/kibana_security-solution_detection-alert_8.1.0.jsonl", 1, "ecs", "30a75fe46d3dbdfab55982036f77a8d60e2d1112e96f277c3b8c22f9bb57817a", "2022-03-19T02:48:12.634Z", "threat-match-rule"),
    ok("ecs/kibana_security-solution_legacy-signal_7.16.0.jsonl", 1, "ecs", "signal-62f9a8c0-aac9-11ec-aa31-c9ea2cb79db7-P2yvt38BIyEvspK05HSe", "2022-03-23T16:50:51.493Z", "threat-match-rule"),
    no("ocsf/prowler-3.6.1_docs_security_finding_2001.jsonl", 1, "bad_value", "time", "no UTC offset"),
    no("ocsf/prowler-3.6.1_docs_security_finding_2001.jsonl", 2, "bad_value", "time", "no UTC offset"),
    ok("ocsf/prowler_docs_detection_finding_2004.jsonl", 1, "ocsf", "prowler-aws-ecs_task_definitions_no_environment_secrets-123456789012-eu-central-1-manufacturer-api:7", "2025-01-27T16:36:46.000Z", "Check if secrets exists in ECS task definitions environment variables"),
    ok("ocsf/prowler_docs_detection_finding_2004.jsonl", 2, "ocsf", "prowler-aws-accessanalyzer_enabled-730736567048-ap-northeast-1-analyzer/unknown", "2026-02-05T06:38:40.000Z", "IAM Access Analyzer is enabled"),
    ok("ocsf/prowler_example_output_aws_detection_finding_2004.jsonl", 1, "ocsf", "<finding_uid>", "2025-02-14T13:27:03.000Z", "Check if IAM Access Analyzer is enabled"),
    ok("ocsf/prowler_example_output_aws_detection_finding_2004.jsonl", 2, "ocsf", "<finding_uid>", "2025-02-14T13:27:03.000Z", "Maintain current contact details."),
    ok("ocsf/prowler_example_output_aws_detection_finding_2004.jsonl", 3, "ocsf", "<finding_uid>", "2025-02-14T13:27:03.000Z", "Maintain different contact details to security, billing and operations."),
    ok("ocsf/prowler_example_output_aws_detection_finding_2004.jsonl", 4, "ocsf", "<finding_uid>", "2025-02-14T13:27:03.000Z", "Ensure security contact information is registered."),
    ok("ocsf/prowler_example_output_aws_detection_finding_2004.jsonl", 5, "ocsf", "<finding_uid>", "2025-02-14T13:27:03.000Z", "Ensure security questions are registered in the AWS account."),
    ok("ocsf/prowler_example_output_gcp_detection_finding_2004.jsonl", 1, "ocsf", "<finding_uid>", "2025-02-14T13:27:20.000Z", "Ensure API Keys Only Exist for Active Services"),
    ok("ocsf/prowler_example_output_gcp_detection_finding_2004.jsonl", 2, "ocsf", "<finding_uid>", "2025-02-14T13:27:20.000Z", "Ensure Image Vulnerability Analysis using AR Container Analysis or a third-party provider"),
    ok("ocsf/prowler_example_output_gcp_detection_finding_2004.jsonl", 3, "ocsf", "<finding_uid>", "2025-02-14T13:27:20.000Z", "Ensure That RDP Access Is Restricted From the Internet"),
    ok("ocsf/prowler_example_output_gcp_detection_finding_2004.jsonl", 4, "ocsf", "<finding_uid>", "2025-02-14T13:27:20.000Z", "Ensure That RDP Access Is Restricted From the Internet"),
    ok("ocsf/prowler_example_output_gcp_detection_finding_2004.jsonl", 5, "ocsf", "<finding_uid>", "2025-02-14T13:27:20.000Z", "Ensure That RDP Access Is Restricted From the Internet"),
    ok("suricata/elastic-integrations_test-eve-alerts_event-original.jsonl", 1, "eve", "suricata-2191386088856669-0-1:2013028", "2018-10-03T14:42:44.836Z", "ET POLICY curl User-Agent Outbound"),
    ok("suricata/elastic-integrations_test-eve-alerts_event-original.jsonl", 2, "eve", "suricata-764842923400056-0-1:2013504", "2018-10-04T09:34:59.009Z", "ET POLICY GNU/Linux APT User-Agent Outbound likely related to package management"),
    ok("suricata/elastic-integrations_test-eve-alerts_event-original.jsonl", 3, "eve", "suricata-112424506237238-0-1:2013504", "2018-10-04T09:34:59.168Z", "ET POLICY GNU/Linux APT User-Agent Outbound likely related to package management"),
    ok("suricata/elastic-integrations_test-eve-alerts_event-original.jsonl", 4, "eve", "suricata-991192778198299-1:2610003-2020-06-26T11:00:03.342282-0400", "2020-06-26T15:00:03.342Z", "SURICATA TLS on unusual port"),
    ok("suricata/elastic-integrations_test-eve-logs_alerts.jsonl", 1, "eve", "suricata-1805461738637437-1:2100498-2021-01-27T01:28:11.488362+0100", "2021-01-27T00:28:11.488Z", "GPL ATTACK_RESPONSE id check returned root"),
    ok("suricata/elastic-integrations_test-eve-logs_alerts.jsonl", 2, "eve", "suricata-904992230150281-0-1:2024833", "2018-07-05T19:07:20.910Z", "ET POLICY Observed IP Lookup Domain (l2 .io in TLS SNI)"),
    ok("suricata/elastic-integrations_test-eve-logs_alerts.jsonl", 3, "eve", "suricata-1805461738637437-1:2100498-2021-01-27T01:28:11.488362+0100", "2021-01-27T00:28:11.488Z", "GPL ATTACK_RESPONSE id check returned root"),
    ok("suricata/oisf-suricata_docs_eve-json-format_alert.jsonl", 1, "eve", "suricata-586497171462735-4-1:2018358", "2017-04-07T21:24:37.251Z", "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1"),
    ok("wazuh/wazuh-documentation_virustotal-integration_alerts.jsonl", 1, "wazuh", "wazuh-1668705462.50453", "2022-11-17T17:17:42.694Z", "File added to the system."),
    ok("wazuh/wazuh-documentation_virustotal-integration_alerts.jsonl", 2, "wazuh", "wazuh-1668705463.51155", "2022-11-17T17:17:43.637Z", "VirusTotal: Error: Check credentials"),
    ok("wazuh/wazuh-documentation_virustotal-integration_alerts.jsonl", 3, "wazuh", "wazuh-1668705733.90632", "2022-11-17T17:22:13.236Z", "VirusTotal: Error: Public API request rate limit reached"),
    ok("wazuh/wazuh-documentation_virustotal-integration_alerts.jsonl", 4, "wazuh", "wazuh-1668705727.84464", "2022-11-17T17:22:07.974Z", "VirusTotal: Alert - /media/user/software/suspicious-file10.exe - No positives found"),
    ok("wazuh/wazuh-documentation_virustotal-integration_alerts.jsonl", 5, "wazuh", "wazuh-1668706225.104492", "2022-11-17T17:30:25.085Z", "VirusTotal: Alert - /media/user/software/eicar.com - 66 engines detected this file"),
    ok("wazuh/wazuh-indexer_sl_integration_test.jsonl", 1, "wazuh", "wazuh-1708023911.181468", "2024-02-15T19:05:11.486Z", "The CVE-2007-4559 that affected python3.10 was solved due to a package removal/update or a system upgrade"),
    ok("wazuh/wazuh-indexer_sl_integration_test.jsonl", 2, "wazuh", "wazuh-1708024054.185097", "2024-02-15T19:07:34.606Z", "sshd: authentication success."),
    ok("wazuh/wazuh-indexer_sl_integration_test.jsonl", 3, "wazuh", "wazuh-1708024665.185992", "2024-02-15T19:17:45.245Z", "PAM: Login session opened."),
    ok("wazuh/wazuh-indexer_wazuh-event.sample.jsonl", 1, "wazuh", "wazuh-1707402914.872885", "2024-02-08T14:35:14.334Z", "Shellshock attack attempt"),
    ok("wazuh/wazuh_v4.14.7_integratord-test_alert.jsonl", 1, "wazuh", "wazuh-1652272159.1549653", "2022-05-11T12:29:19.905Z", "sshd: brute force trying to get access to the system. Non existent user."),
    ]
}

/// Checks every record of every `.jsonl` under `root/<kind>/` against [`expected`]; returns how
/// many records of each kind became alerts, and how many were read.
fn check_samples(root: &Path) -> (std::collections::BTreeMap<String, (usize, usize)>, usize) {
    let table = expected();
    let mut counts = std::collections::BTreeMap::new();
    let mut seen = 0;
    for kind in ["ecs", "ocsf", "suricata", "wazuh"] {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(root.join(kind)) {
            Ok(d) => d.map(|e| e.expect("entry").path()).collect(),
            Err(_) => continue,
        };
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
        {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let rel = format!("{kind}/{name}");
            for (i, line) in lines(f).iter().enumerate() {
                seen += 1;
                let at = format!("{}:{}", f.display(), i + 1);
                let want = table
                    .iter()
                    .find(|(file, n, _)| *file == rel && *n == i + 1)
                    .map(|(_, _, w)| w)
                    .unwrap_or_else(|| panic!("{at}: no expectation for this record"));
                let entry = counts.entry(kind.to_string()).or_insert((0, 0));
                entry.1 += 1;
                match (decode(line), want) {
                    (
                        Ok(d),
                        Expected::Alert {
                            format,
                            id,
                            time,
                            title,
                        },
                    ) => {
                        assert_eq!(
                            d.mapped.as_ref().map(|m| m.format.as_str()),
                            Some(*format),
                            "{at}"
                        );
                        let klaxon::model::Input::Alert(a) = d.input else {
                            panic!("{at}: not an alert")
                        };
                        assert_eq!(a.id, *id, "{at}: id");
                        let t = klaxon::time::Timestamp::parse(time).expect("expected time");
                        assert_eq!(a.timestamp, t, "{at}: time");
                        assert_eq!(a.title.as_deref(), Some(*title), "{at}: title");
                        entry.0 += 1;
                    }
                    (Err(e), Expected::Rejected { code, field, says }) => {
                        let msg = e.to_string();
                        assert_eq!(e.code(), *code, "{at}: {msg}");
                        assert!(msg.contains(&format!("`{field}`")), "{at}: {msg}");
                        assert!(msg.contains(says), "{at}: {msg}");
                    }
                    (Ok(d), Expected::Rejected { .. }) => {
                        panic!("{at}: expected a rejection, got {:?}", d.input)
                    }
                    (Err(e), Expected::Alert { .. }) => panic!("{at}: rejected: {e}"),
                }
            }
        }
    }
    (counts, seen)
}

#[test]
fn the_copied_samples_map_as_expected() {
    // tests/fixtures/samples: the Apache-2.0 samples, byte for byte (NOTICE.md there).
    let (counts, seen) = check_samples(&fixtures().join("../samples"));
    assert_eq!(seen, 18, "{counts:?}");
    assert_eq!(counts.get("wazuh"), Some(&(4, 4)), "{counts:?}");
    assert_eq!(counts.get("ocsf"), Some(&(12, 14)), "{counts:?}");
    for f in [
        "wazuh/wazuh-indexer_sl_integration_test.jsonl",
        "ocsf/prowler_docs_detection_finding_2004.jsonl",
    ] {
        let copy = std::fs::read(fixtures().join("../samples").join(f)).expect("copy");
        if let Some(root) = samples() {
            assert_eq!(
                copy,
                std::fs::read(root.join(f)).expect("original"),
                "{f}: a verbatim copy"
            );
        }
    }
}

#[test]
fn every_raw_sample_maps_or_is_rejected_naming_the_field() {
    let Some(root) = samples() else { return };
    let (counts, seen) = check_samples(&root);
    eprintln!("records that map, of those read, per source: {counts:?}");
    assert_eq!(seen, 37, "{counts:?}");
    assert_eq!(counts.get("suricata"), Some(&(8, 8)), "{counts:?}");
    assert_eq!(counts.get("wazuh"), Some(&(10, 10)), "{counts:?}");
    assert_eq!(counts.get("ecs"), Some(&(5, 5)), "{counts:?}");
    assert_eq!(counts.get("ocsf"), Some(&(12, 14)), "{counts:?}");
    assert_eq!(expected().len(), 37, "one expectation per record");
}

/// The rule's own rating is kept beside the source for the report draft, and grades nothing:
/// with its impact figure the Wazuh fixture makes a report due whose draft names the rule and
/// its level; without figures, a Wazuh level-12 and a Suricata severity-1 alert open general
/// incidents (nothing to report) that still list the rule beside the source.
#[test]
fn a_rule_level_is_kept_for_the_draft_and_never_graded() {
    let text = std::fs::read_to_string(fixtures().join("wazuh-alerts.jsonl")).expect("read");
    let (out, _) = replay(&text, &config().mappings);
    let due = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event"))
        .find(|e| e["type"] == "report.due")
        .expect("a report.due");
    let item5 = due["draft"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["item"] == 5))
        .map(|i| i["content"].as_str().unwrap_or("").to_string())
        .expect("draft item 5");
    assert!(
        item5.contains("告警来源：wazuh（rule 100512, level 12）"),
        "{item5}"
    );

    let mut w = fixture_record("wazuh-alerts.jsonl", 0);
    w["labels"] = json!({});
    let mut e = fixture_record("eve-suricata.jsonl", 0);
    e["labels"] = json!({"klaxon_operator": "sh-bank", "klaxon_asset": "sh-bank-portal"});
    for (rec, says) in [
        (w, "wazuh（rule 100512, level 12）"),
        (e, "suricata（signature 1:1000231:2, severity 1）"),
    ] {
        let line = rec.to_string();
        let d = decode(&line).expect("maps");
        let mut engine = Engine::from_config(config());
        let t = d.input.time();
        engine.handle_timeout(t);
        engine.handle(d.input);
        let mut types = Vec::new();
        while let Some(ev) = engine.poll_output() {
            types.push(serde_json::to_value(&ev).expect("event json")["type"].clone());
        }
        assert!(
            !types.contains(&json!("report.due")),
            "a rule's rating must not grade: {types:?}"
        );
        let incs = engine.incidents_sorted();
        let sources: Vec<&str> = incs[0].sources.iter().map(|s| &**s).collect();
        assert_eq!(sources, [says]);
    }
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
    let from = "formats = [\"native\", \"ecs\", \"ocsf\", \"eve\", \"wazuh\"]";
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
    // An ECS record is not read as native by chance (it has an `id` and a `timestamp`, all a
    // native alert needs): its mapping is loaded, only not listed.
    let e = dec(&c, &ecs).expect_err("ECS is off");
    assert_eq!(e.code(), "unknown_format", "{e}");
    assert!(e.to_string().contains("in the ecs format"), "{e}");
    assert!(e.to_string().contains("`input.formats`"), "{e}");
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
        text.replace(
            "formats = [\"native\", \"ecs\", \"ocsf\", \"eve\", \"wazuh\"]\n",
            "",
        ),
    )
    .expect("write");
    assert_eq!(
        load(d.path()).expect("loads").mappings.formats(),
        ["ecs", "eve", "ocsf", "wazuh", "native"]
    );
    std::fs::remove_dir_all(d.path().join("mappings")).expect("rm mappings");
    assert_eq!(
        load(d.path()).expect("loads").mappings.formats(),
        ["native"]
    );
}

#[test]
fn a_mapping_that_declares_its_sources_zone_reads_times_without_an_offset() {
    // Prowler 3.6.1 wrote `"time": "2023-06-30 10:28:55.297615"`: rejected by the shipped
    // OCSF mapping (the instant would be a guess), read once the mapping says Prowler wrote UTC.
    let line =
        lines(&fixtures().join("../samples/ocsf/prowler-3.6.1_docs_security_finding_2001.jsonl"))
            .remove(0);
    let e = decode(&line).expect_err("no offset");
    assert_names(&e, "bad_value", "time", "no UTC offset");
    assert!(
        e.to_string().contains("+0800"),
        "the accepted forms are listed: {e}"
    );

    let d = config_copy();
    let p = d.path().join("mappings/ocsf.toml");
    let text = std::fs::read_to_string(&p).expect("read");
    let from = "[fields.timestamp]\nfrom = [\"time\", \"time_dt\"]\ntransform = \"timestamp\"\n";
    assert!(text.contains(from));
    std::fs::write(&p, text.replace(from, &format!("{from}zone = \"UTC\"\n"))).expect("write");
    let c = load(d.path()).expect("loads");
    let got = decode_record(line.as_bytes(), Expect::Alert, 0, &c.mappings).expect("maps");
    let klaxon::model::Input::Alert(a) = got.input else {
        panic!("not an alert")
    };
    assert_eq!(
        a.timestamp,
        klaxon::time::Timestamp::parse("2023-06-30T10:28:55.297Z").expect("time")
    );

    // A zone is checked when the mapping loads.
    std::fs::write(
        &p,
        text.replace(from, &format!("{from}zone = \"Asia/Shanghai\"\n")),
    )
    .expect("write");
    let err = load(d.path()).expect_err("bad zone");
    assert!(
        err.contains("fields.timestamp.zone") && err.contains("+0800"),
        "{err}"
    );
    let title = "[fields.title]\nfrom = [\"finding_info.title\", \"finding.title\", \"message\"]\n";
    assert!(text.contains(title));
    std::fs::write(
        &p,
        text.replace(title, &format!("{title}zone = \"+08:00\"\n")),
    )
    .expect("write");
    let err = load(d.path()).expect_err("a zone on text");
    assert!(err.contains("fields.title.zone"), "{err}");
}

#[test]
fn two_mappings_that_could_take_one_record_are_refused() {
    // A home-made mapping for Wazuh-like records beside the shipped wazuh.toml: a record
    // could fit both, and which one read it would depend on their order.
    let d = config_copy();
    std::fs::write(
        d.path().join("mappings/hids.toml"),
        "[recognise]\nall = [\"timestamp\", \"rule.id\"]\n[fields.id]\nfrom = [\"id\"]\n\
         [fields.timestamp]\nfrom = [\"timestamp\"]\ntransform = \"timestamp\"\n",
    )
    .expect("write");
    set_formats(d.path(), "[\"native\", \"wazuh\", \"hids\"]");
    let err = load(d.path()).expect_err("overlapping mappings");
    assert!(
        err.contains("hids.toml: recognise.none")
            && err.contains("both wazuh records and hids records"),
        "{err}"
    );
    // Excluding the other's shape settles it.
    std::fs::write(
        d.path().join("mappings/hids.toml"),
        "[recognise]\nall = [\"timestamp\", \"rule.id\"]\nnone = [\"manager.name\", \"_source\"]\n\
         [fields.id]\nfrom = [\"id\"]\n[fields.timestamp]\nfrom = [\"timestamp\"]\n\
         transform = \"timestamp\"\n",
    )
    .expect("write");
    let c = load(d.path()).expect("loads");
    assert_eq!(c.mappings.formats(), ["wazuh", "hids", "native"]);
    // A Wazuh alert is Wazuh's, a bare one the home-made mapping's.
    let w = lines(&fixtures().join("wazuh-alerts.jsonl")).remove(0);
    let fmt = |l: &str| {
        decode_record(l.as_bytes(), Expect::Alert, 0, &c.mappings)
            .map(|d| d.mapped.map(|m| m.format))
            .expect("decodes")
    };
    assert_eq!(fmt(&w).as_deref(), Some("wazuh"));
    let bare = r#"{"timestamp":"2026-11-24T08:00:00+0800","rule":{"id":"1"},"id":"h-1"}"#;
    assert_eq!(fmt(bare).as_deref(), Some("hids"));
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

/// The Kubernetes StatefulSet mounts each mapping file as an item of its own: one the shipped
/// `input.formats` names but the pod lacks would stop the service at start-up.
#[test]
fn the_kubernetes_deployment_mounts_every_shipped_mapping() {
    let deployment = std::fs::read_to_string(manifest().join("deploy/k8s/statefulset.yaml"))
        .expect("statefulset.yaml");
    let configmap = std::fs::read_to_string(manifest().join("deploy/k8s/configmap.yaml"))
        .expect("configmap.yaml");
    for name in config().mappings.formats() {
        if name == "native" {
            continue;
        }
        assert!(
            deployment.contains(&format!("- key: {name}.toml\n"))
                && deployment.contains(&format!("path: mappings/{name}.toml\n")),
            "deploy/k8s/statefulset.yaml does not mount mappings/{name}.toml"
        );
        assert!(
            configmap.contains(&format!("  {name}.toml: |")),
            "deploy/k8s/configmap.yaml does not show mappings/{name}.toml"
        );
    }
}
