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
}
