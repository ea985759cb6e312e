//! The `klaxon` binary as a user runs it: `check-config`, `replay` and `grade`, with their exit
//! codes and the messages a person reads.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn klaxon(args: &[&str]) -> Output {
    klaxon_with_stdin(args, None)
}

fn klaxon_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_klaxon"));
    cmd.args(args)
        .current_dir(common::manifest_dir())
        .env_remove("KLAXON_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run klaxon");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("klaxon output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shipped_config() -> PathBuf {
    common::manifest_dir().join("config")
}

/// A temporary copy of the shipped config directory (with its `mappings/`).
fn config_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("config dir") {
            let path = entry.expect("entry").path();
            let dest = to.join(path.file_name().expect("name"));
            if path.is_dir() {
                copy(&path, &dest);
            } else {
                std::fs::copy(&path, &dest).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy(&shipped_config(), dir.path());
    dir
}

/// Replaces the first occurrence of `from` in `dir/file`.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} should contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

/// Removes the text from `start` up to (not including) `end` in `dir/file`.
fn cut(dir: &Path, file: &str, start: &str, end: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    let (a, b) = (
        text.find(start).expect("start"),
        text.find(end).expect("end"),
    );
    std::fs::write(&path, format!("{}{}", &text[..a], &text[b..])).expect("write");
}

fn dir_arg(d: &tempfile::TempDir) -> String {
    d.path().display().to_string()
}

// ------------------------------------------------------------------ check-config

#[test]
fn check_config_accepts_the_shipped_config() {
    let o = klaxon(&["check-config", "--config", "config"]);
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(&o)
    );
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("input formats: mappings ecs, ocsf, eve, wazuh (no record fits two)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_config_rejects_an_instance_id_kafka_would_refuse_naming_where_it_came_from() {
    let o = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .args(["check-config", "--config", "config"])
        .current_dir(common::manifest_dir())
        .env_remove("KLAXON_CONFIG")
        .env("KLAXON_INSTANCE_ID", "klaxon 0")
        .output()
        .expect("run klaxon");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kafka.instance_id (from $KLAXON_INSTANCE_ID)")
            && err.contains("' ' is not allowed"),
        "{err}"
    );
}

#[test]
fn check_config_reports_every_problem_with_its_file_and_key() {
    let d = config_copy();
    let p = d.path();
    edit(p, "grading.toml", "level = \"major\"", "level = \"majr\"");
    edit(
        p,
        "grading.toml",
        "figure = \"personal_info_records\"",
        "figure = \"personal_info_recs\"",
    );
    cut(
        p,
        "reporting.toml",
        "[routes.central_state_organ]",
        "[routes.other]",
    );
    edit(
        p,
        "reporting.toml",
        "overdue_every = \"30m\"",
        "overdue_every = \"half an hour\"",
    );

    let o = klaxon(&["check-config", "--config", &dir_arg(&d)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    let has = |file: &str, key: &str, problem: &str| {
        err.lines()
            .any(|l| l.contains(file) && l.contains(key) && l.contains(problem))
    };
    assert!(
        has(
            "grading.toml",
            "(site_unreachable_hours).threshold[1].level",
            "majr"
        ),
        "{err}"
    );
    assert!(
        has(
            "grading.toml",
            "(personal_info_records).figure",
            "personal_info_recs"
        ),
        "{err}"
    );
    assert!(
        has("reporting.toml", "routes.central_state_organ", "missing"),
        "{err}"
    );
    assert!(
        has(
            "reporting.toml",
            "reports.initial.overdue_every",
            "half an hour"
        ),
        "{err}"
    );
    assert!(
        err.contains("4 configuration problem"),
        "every problem at once, counted: {err}"
    );
}

#[test]
fn check_config_rejects_a_dedup_set_that_holds_nothing() {
    let d = config_copy();
    edit(
        d.path(),
        "default.toml",
        "max_dedup_ids = 2000000",
        "max_dedup_ids = 0",
    );
    let o = klaxon(&["check-config", "--config", &dir_arg(&d)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.contains("default.toml")
            && l.contains("state.max_dedup_ids")
            && l.contains("must be positive")),
        "{err}"
    );
}

#[test]
fn check_config_names_the_line_of_a_toml_syntax_error() {
    let d = config_copy();
    edit(
        d.path(),
        "reporting.toml",
        "floor = \"relatively_major\"",
        "floor = relatively_major\"",
    );
    let o = klaxon(&["check-config", "--config", &dir_arg(&d)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.contains("reporting.toml") && l.contains("line ")),
        "{err}"
    );
}

#[test]
fn check_config_checks_the_registry_against_the_ruleset() {
    let d = config_copy();
    edit(
        d.path(),
        "registry.toml",
        "kind = \"network_platform\"\nsize = \"super_large\"",
        "kind = \"platform\"",
    );
    let o = klaxon(&["check-config", "--config", &dir_arg(&d)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.contains("registry.toml") && l.contains("assets.hz-ecom-mall.kind")),
        "{err}"
    );
}

// ------------------------------------------------------------------ replay

/// Held in memory (the default for a file this size) and read in two passes
/// (`--hold-max-mib 0`: each record's time and place, then each read again in time order), from
/// the file, from a pipe (copied to a temporary file first) and from standard input redirected
/// from the file (read where it lies).
#[test]
fn replay_of_the_example_day_prints_the_golden_events_and_reports_bad_lines() {
    let root = common::manifest_dir();
    let golden = std::fs::read(root.join("tests/golden/day/expected.jsonl")).expect("golden file");
    let day_path = root.join("examples/day.jsonl");
    let day = std::fs::read_to_string(&day_path).expect("the example day");
    for hold in [None, Some("0")] {
        for source in ["file", "pipe", "redirect"] {
            let mut args = vec!["replay", "--until", "2026-11-25T00:00:00+08:00"];
            if let Some(mib) = hold {
                args.extend(["--hold-max-mib", mib]);
            }
            let name = if source == "file" {
                "examples/day.jsonl"
            } else {
                "-"
            };
            args.push(name);
            let o = match source {
                "file" => klaxon(&args),
                "pipe" => klaxon_with_stdin(&args, Some(&day)),
                _ => Command::new(env!("CARGO_BIN_EXE_klaxon"))
                    .args(&args)
                    .current_dir(&root)
                    .env_remove("KLAXON_CONFIG")
                    .stdin(std::fs::File::open(&day_path).expect("the example day"))
                    .output()
                    .expect("run klaxon"),
            };
            assert!(
                o.status.success(),
                "exit {:?}: {}",
                o.status.code(),
                stderr(&o)
            );
            assert!(
                o.stdout == golden,
                "the CLI prints what the golden replay blessed ({source}, {args:?})"
            );
            let err = stderr(&o);
            for n in [25, 54, 57] {
                assert!(
                    err.contains(&format!("{name}:{n}:")),
                    "line {n} reported ({source}, {args:?}): {err}"
                );
            }
        }
    }
}

#[test]
fn replay_reports_each_bad_line_with_its_number_and_reason_and_exits_0() {
    let d = tempfile::tempdir().expect("tempdir");
    let file = d.path().join("in.jsonl");
    let good = r#"{"id":"a1","timestamp":"2026-11-24T08:00:00+08:00","operator":"sz-tech","asset":"sz-tech-vpn","impact":{"personal_info_records":1200000}}"#;
    let text = format!(
        "{good}\nthis is not json\n{}\n\n{}\n",
        r#"{"id":"a2","operator":"sz-tech"}"#,
        r#"{"id":"a3","timestamp":"2026-11-24T09:00:00+08:00","impact":{"personal_info_records":"many"}}"#
    );
    std::fs::write(&file, text).expect("write input");
    let o = klaxon(&["replay", &file.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let line = |n: usize| {
        err.lines()
            .find(|l| l.contains(&format!("in.jsonl:{n}:")))
            .unwrap_or_else(|| panic!("no report for line {n}: {err}"))
            .to_string()
    };
    assert!(line(2).contains("not JSON"), "{}", line(2));
    assert!(line(3).contains("timestamp"), "{}", line(3));
    assert!(
        line(5).contains("impact.personal_info_records"),
        "{}",
        line(5)
    );
    assert!(
        !err.contains("in.jsonl:4:"),
        "a blank line is not an error: {err}"
    );
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.contains("\"report.due\"")),
        "the good line is still processed: {out}"
    );
}

/// A reportable alert at 08:00 on 2026-11-24 (its initial report due within the hour).
const REPORTABLE: &str = r#"{"id":"a1","timestamp":"2026-11-24T08:00:00+08:00","operator":"gd-grid","asset":"gd-grid-ami","impact":{"personal_info_records":1200000}}"#;

/// `klaxon replay` with `clock` (`--until T` or `--as-of T`) over `input` on standard input:
/// exits 0; its output and events.
fn replay_stdin(clock: [&str; 2], input: &str) -> (Output, Vec<serde_json::Value>) {
    let o = klaxon_with_stdin(&["replay", clock[0], clock[1], "-"], Some(input));
    assert!(o.status.success(), "{}", stderr(&o));
    let events = common::parse_lines(&o.stdout);
    (o, events)
}

#[test]
fn replay_reads_standard_input() {
    let (_, events) = replay_stdin(
        ["--until", "2026-11-24T09:00:00+08:00"],
        &format!("{REPORTABLE}\n"),
    );
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.contains(&"report.due") && types.contains(&"report.overdue"),
        "{types:?}"
    );
}

#[test]
fn replay_of_a_missing_file_fails_with_a_clear_message() {
    let o = klaxon(&["replay", "no/such/file.jsonl"]);
    assert!(!o.status.success());
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains("no/such/file.jsonl") && err.contains("cannot read"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // A directory is not taken for a pipe to copy.
    let o = klaxon(&["replay", "examples"]);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains("cannot replay examples: it is a directory"),
        "{err}"
    );
    assert!(!err.contains("temporary file"), "{err}");
}

#[test]
fn replay_with_an_unreadable_config_fails_with_a_clear_message() {
    let o = klaxon(&["replay", "--config", "no/such/config", "examples/day.jsonl"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("no/such/config"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn replay_rejects_an_until_without_an_offset() {
    let o = klaxon(&[
        "replay",
        "--until",
        "2026-11-25 00:00",
        "examples/day.jsonl",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--until"), "{}", stderr(&o));
}

#[test]
fn replay_as_of_reads_a_day_old_alert_as_a_catch_up_and_names_its_bad_lines() {
    let (o, events) = replay_stdin(
        ["--as-of", "2026-11-25T09:00:00+08:00"],
        &format!("{REPORTABLE}\nnot json\n"),
    );
    let err = stderr(&o);
    assert!(err.contains("-:2: skipped:"), "{err}");
    assert!(
        err.contains("caught up on 1 records as of 2026-11-25T01:00:00+00:00 (1 skipped)"),
        "{err}"
    );
    let overdue: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "report.overdue" && e["report_kind"] == "initial")
        .collect();
    // A day of missed repeats, said once.
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert!(overdue[0]["folded_repeats"].as_u64().unwrap_or(0) > 1);
    assert!(!events.iter().any(|e| e["type"] == "report.reminder"));
}

#[test]
fn replay_refuses_until_and_as_of_together_and_an_as_of_out_of_range() {
    let o = klaxon(&[
        "replay",
        "--until",
        "2026-11-25T00:00:00Z",
        "--as-of",
        "2026-11-25T00:00:00Z",
        "examples/day.jsonl",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = klaxon(&[
        "replay",
        "--as-of",
        "1999-01-01T00:00:00Z",
        "examples/day.jsonl",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--as-of: 1999-01-01T00:00:00+00:00 is outside the replayable range"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

// ------------------------------------------------------------------ grade

#[test]
fn grade_prints_the_level_and_the_indicator_with_its_threshold() {
    let d = tempfile::tempdir().expect("tempdir");
    let file = d.path().join("alert.json");
    std::fs::write(
        &file,
        r#"{"id":"m-1","timestamp":"2026-11-24T08:00:00+08:00","operator":"gd-grid","asset":"gd-grid-scada",
            "impact":{"outage":{"scope":"whole","since":"2026-11-24T07:55:00+08:00","until":null}}}"#,
    )
    .expect("write alert");
    let o = klaxon(&[
        "grade",
        "--at",
        "2026-11-24T09:00:00+08:00",
        &file.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Level: major"), "{out}");
    assert!(out.contains("重大"), "{out}");
    assert!(
        out.contains("cii_whole_outage_minutes = 65 minutes (threshold ≥ 60 minutes)"),
        "{out}"
    );
    assert!(
        out.contains("deadline 2026-11-24T09:05:00+08:00"),
        "t0 is the 08:05 crossing: {out}"
    );
}

#[test]
fn grade_of_an_alert_below_every_threshold_says_general_and_no_report() {
    let alert = r#"{"id":"m-1","timestamp":"2026-11-24T08:00:00+08:00","operator":"sz-tech","asset":"sz-tech-vpn","impact":{"personal_info_records":999999}}"#;
    let o = klaxon_with_stdin(&["grade", "-"], Some(alert));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Level: general"), "{out}");
    assert!(out.contains("no report is due"), "{out}");
}

#[test]
fn grade_of_invalid_input_fails_with_the_reason() {
    let o = klaxon_with_stdin(&["grade", "-"], Some(r#"{"id":"m-1"}"#));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("timestamp"), "{}", stderr(&o));
}

/// #18: an environment override's error names the variable, not `default.toml`.
#[test]
fn a_bad_environment_override_is_reported_under_its_variable() {
    for (var, value) in [
        ("KLAXON__STATE__RETENTION", "forever"),
        ("KLAXON__STATE__PARTITIONS", "abc"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_klaxon"))
            .arg("check-config")
            .current_dir(common::manifest_dir())
            .env_remove("KLAXON_CONFIG")
            .env(var, value)
            .output()
            .expect("run klaxon");
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("environment variable {var}:")),
            "{var}: {err}"
        );
        assert!(!err.contains("default.toml"), "{err}");
    }
}

/// `klaxon run` serves the desk and the metrics endpoint; one address for both cannot work, and
/// `check-config` says so before anything starts.
#[test]
fn check_config_rejects_the_desk_and_the_metrics_endpoint_on_one_address() {
    let o = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .arg("check-config")
        .current_dir(common::manifest_dir())
        .env_remove("KLAXON_CONFIG")
        .env("KLAXON__METRICS__LISTEN", "127.0.0.1:8090")
        .output()
        .expect("run klaxon");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("desk.listen"), "{err}");
    assert!(err.contains("metrics.listen"), "{err}");
}

/// A port already taken (often by a Klaxon still running) stops `klaxon run` at once, with the
/// key and the address to look at, said once.
#[test]
fn run_on_a_taken_port_names_the_setting_and_the_address_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    for (key, var, other) in [
        (
            "metrics.listen",
            "KLAXON__METRICS__LISTEN",
            "KLAXON__DESK__LISTEN",
        ),
        (
            "desk.listen",
            "KLAXON__DESK__LISTEN",
            "KLAXON__METRICS__LISTEN",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_klaxon"))
            .arg("run")
            .current_dir(common::manifest_dir())
            .env_remove("KLAXON_CONFIG")
            .env(var, &addr)
            .env(other, &free)
            // Nothing listens here: the listeners are bound before Kafka is asked anything.
            .env("KAFKA_BROKERS", "127.0.0.1:1")
            .stdin(Stdio::null())
            .output()
            .expect("run klaxon");
        assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
        let err = stderr(&o);
        let line = err
            .lines()
            .find(|l| l.starts_with("klaxon: "))
            .unwrap_or_else(|| panic!("{key}: no error line in {err}"));
        assert!(line.contains(&format!("{key} {addr}: ")), "{line}");
        assert_eq!(line.matches("in use").count(), 1, "{line}");
    }
}
