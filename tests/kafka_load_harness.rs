//! The end-to-end load harness (`scripts/load.sh` runs `klaxon load-test`) on a tiny workload
//! against the real broker: every phase runs and reports, so the README's benchmark command cannot
//! rot unnoticed. Its figures are printed, never asserted: speed belongs to the benchmarks, not to
//! tests. What is asserted is what must hold at any speed: every backlog is fully processed and
//! every latency probe's incident is opened.

mod kafka_support;

use kafka_support::{brokers, root};
use std::process::Command;

/// `probes N/M` in a latency line: how many probes arrived of how many were sent.
fn probes(line: &str) -> Option<(usize, usize)> {
    let rest = line.split("probes ").nth(1)?;
    let (got, rest) = rest.split_once('/')?;
    let sent = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((got.parse().ok()?, sent.parse().ok()?))
}

#[test]
fn the_load_harness_runs_every_phase_and_reports_each() {
    let out = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .args([
            "load-test",
            "--alerts",
            "300",
            "--keys",
            "30",
            "--rounds",
            "2",
        ])
        // Every 2nd of 200 alerts a probe: 100 probes, enough for a p99 that is not their maximum.
        .args([
            "--latency-seconds",
            "1",
            "--latency-rate",
            "200",
            "--probe-every",
            "2",
        ])
        .args(["--scale-incidents", "300", "--restore-incidents", "300"])
        .arg("--drop-round-topics")
        .env("KAFKA_BROKERS", brokers())
        // The dedup phase fills the set to its bound and feeds as much again: keep it small.
        .env("KLAXON__STATE__MAX_DEDUP_IDS", "1000")
        .current_dir(root())
        .output()
        .expect("run klaxon load-test");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "load-test failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "round 1: passthrough ",
        "round 2: passthrough ",
        "klaxon / passthrough over 2 alternating rounds: min ",
        "klaxon with keyed input / passthrough: min ",
        "once running (from the first record out to done; the start left out): klaxon / passthrough min ",
        // Klaxon joins as a static member on the shipped settings: so does a second passthrough.
        "round 1: passthrough joining as a static member, as Klaxon does ",
        "against the passthrough joining as a static member (the baseline above joins as a dynamic one): klaxon min ",
        "client CPU per alert, min/median/max: passthrough ",
        "latency passthrough: ",
        "latency klaxon: ",
        "latency klaxon with keyed input: ",
        "latency passthrough with the keyed feed: ",
        "p99 against the passthrough's on the same feed: klaxon ",
        "of which Klaxon's processor, from a batch's receipt",
        "timer fire error (arrival − due), n=",
        "restore through Kafka: 300 incidents",
        "scale: 300 open reportable incidents",
        "the same with an asset of its own per incident",
        "dedup set bounded at 1000: ",
    ] {
        assert!(report.contains(expected), "no {expected:?} in:\n{report}");
    }
    for line in report.lines().filter(|l| l.starts_with("latency ")) {
        let (got, sent) = probes(line).unwrap_or_else(|| panic!("no probe count in {line:?}"));
        assert!(sent == 100 && got == sent, "probes lost: {line}");
        assert!(line.contains("(1 of 100 slower)"), "{line}");
    }
    // With --drop-round-topics each throughput round's topics are deleted once measured: the
    // local broker keeps every topic in memory, and a long backlog's copies would exhaust it.
    let prefix = report_prefix(&report).expect("the report names its topic prefix");
    let left: Vec<String> = topic_names()
        .into_iter()
        .filter(|t| {
            // Round N's topics are `<prefix>.rN.…`; `<prefix>.repartition` and the rest belong
            // to the later phases.
            t.strip_prefix(&format!("{prefix}.r"))
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(left.is_empty(), "round topics left on the broker: {left:?}");
}

/// The harness's topic prefix (`klaxon-load-<ms>`), from its first line.
fn report_prefix(report: &str) -> Option<String> {
    let rest = report.lines().next()?.split("(topics under ").nth(1)?;
    Some(rest.split_once(".*")?.0.to_string())
}

/// Every topic the broker lists.
fn topic_names() -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("a metadata client");
    let metadata = consumer
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .expect("the broker's metadata");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}
