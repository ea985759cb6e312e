//! The core path of `benches/core.rs` once, without criterion, for instruction-exact profilers:
//! `valgrind --tool=callgrind target/release/examples/core_profile [parse|engine|whole|restore]`.
//! (Criterion's timings swing by tens of percent on a shared machine; instruction counts do not.)
//! `core_profile best` times the whole path 40 times and prints the fastest and the median run:
//! the fastest is the least disturbed by neighbours, for comparing two builds run alternately.
//! `core_profile replay` times `klaxon replay` of 200,000 alerts against serde_json parsing the
//! same lines into the typed `Alert` (docs/benchmarks.md), alternating the two.

use klaxon::decode::{decode, Expect};
use klaxon::engine::Engine;
use std::path::Path;

#[global_allocator]
static GLOBAL: klaxon::allocator::Allocator = klaxon::allocator::Allocator;

fn main() -> anyhow::Result<()> {
    // As `klaxon` itself runs (klaxon::allocator): without transparent huge pages.
    let _ = klaxon::allocator::without_transparent_huge_pages();
    let what = std::env::args().nth(1).unwrap_or_else(|| "whole".into());
    let config = klaxon::settings::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))?;
    // `KEYS=20000` gives incidents of one or two alerts, as the load harness's scale phase has.
    let keys = std::env::var("KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(2_000);
    let raw: Vec<Vec<u8>> = (0..20_000)
        .map(|i| {
            let ts = format!("2026-11-24T09:{:02}:{:02}+08:00", (i / 1000) % 60, i % 60);
            klaxon::loadtest::alert_line(i, keys, &ts).into_bytes()
        })
        .collect();
    let mut e = Engine::from_config(&config);
    let mut out = 0usize;
    match what.as_str() {
        "parse" => {
            for r in &raw {
                out += decode(r, Expect::Alert, 0).is_ok() as usize;
            }
        }
        "engine" => {
            let inputs: Vec<_> = raw
                .iter()
                .filter_map(|r| decode(r, Expect::Alert, 0).ok())
                .collect();
            for i in inputs {
                e.handle(i);
                while e.poll_output().is_some() {
                    out += 1;
                }
            }
        }
        "best" => {
            let mut rates = Vec::new();
            for _ in 0..40 {
                let mut e = Engine::from_config(&config);
                let started = std::time::Instant::now();
                out += whole_path(&mut e, &raw);
                rates.push(raw.len() as f64 / started.elapsed().as_secs_f64());
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "whole path: fastest {:.0} k alerts/s, median {:.0} k",
                rates[rates.len() - 1] / 1e3,
                rates[rates.len() / 2] / 1e3
            );
        }
        "replay" => out += replay_against_typed_parse(&config),
        "restore" => {
            // The CPU side of a changelog restore: the 2,000 incidents as records, then back.
            // Count it alone with `--toggle-collect='*restore_all*'`.
            whole_path(&mut e, &raw);
            let records: Vec<Vec<u8>> = e
                .incidents_sorted()
                .into_iter()
                .filter_map(|i| serde_json::to_vec(i).ok())
                .collect();
            out += restore_all(&config, &records);
        }
        _ => out += whole_path(&mut e, &raw),
    }
    println!("{what}: {out}");
    Ok(())
}

/// Parse → correlate → grade → serialize, as the bench's whole path does; the bytes written.
fn whole_path(e: &mut Engine, raw: &[Vec<u8>]) -> usize {
    let mut out = 0;
    for r in raw {
        if let Ok(i) = decode(r, Expect::Alert, 0) {
            e.handle(i);
        }
        while let Some(ev) = e.poll_output() {
            out += ev.to_json().len();
        }
    }
    out
}

/// Changelog records into a fresh engine, as a restore does; the incidents restored.
#[inline(never)]
fn restore_all(config: &klaxon::settings::Config, records: &[Vec<u8>]) -> usize {
    let mut fresh = Engine::from_config(config);
    let mut n = 0;
    for r in records {
        if let Ok(inc) = klaxon::runtime::changelog::incident_from_record(r) {
            fresh.restore(inc);
            n += 1;
        }
    }
    n
}

/// How many lines of `text` serde_json parses into the typed `Alert`. The lines are found as
/// `klaxon replay` finds them (with memchr), so that the baseline is not slowed by a slower split.
fn typed_parse(text: &[u8]) -> usize {
    klaxon::replay::split_lines(text)
        .filter(|line| !line.is_empty())
        .filter(|line| serde_json::from_slice::<klaxon::model::Alert>(line).is_ok())
        .count()
}

/// `klaxon replay` (decode, check, sort by time, correlate, grade, fire timers, write every
/// event) of 200,000 alerts over 2.3 days, against serde_json parsing the same lines into the
/// typed `Alert` alone: 5 runs of each (`RUNS`), alternating; prints min/median/max of both
/// rates and of their ratio, run by run. The first replay runs on memory fresh from the OS (as
/// `klaxon replay` in its own process does), the later ones on memory the allocator kept.
/// `DUMP=<path>` also writes the lines, to time the command itself. Returns the events written
/// by the last replay.
fn replay_against_typed_parse(config: &klaxon::settings::Config) -> usize {
    const ALERTS: usize = 200_000;
    let mut text = Vec::new();
    for i in 0..ALERTS {
        let s = i % 86_400;
        let ts = format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}+08:00",
            24 + i / 86_400,
            s / 3600,
            (s / 60) % 60,
            s % 60
        );
        text.extend_from_slice(klaxon::loadtest::alert_line(i, 5_000, &ts).as_bytes());
        text.push(b'\n');
    }
    if let Ok(path) = std::env::var("DUMP") {
        let _ = std::fs::write(path, &text);
    }
    let (mut parse, mut replay, mut ratio, mut events) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let (mut parse_all, mut ratio_all) = (Vec::new(), Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // `RUNS=1` for a profiler.
    let runs = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let p = typed_parse(&text) as f64 / started.elapsed().as_secs_f64();
        // The same parse on every core, the text cut in halves, quarters… at line boundaries,
        // since replay decodes that way: the stricter baseline.
        let started = std::time::Instant::now();
        let parsed_on_all: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = klaxon::replay::line_pieces(&text, cores)
                .into_iter()
                .map(|(_, piece)| scope.spawn(move || typed_parse(piece)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let p_all = parsed_on_all as f64 / started.elapsed().as_secs_f64();
        let mut engine = Engine::from_config(config);
        let started = std::time::Instant::now();
        let summary = klaxon::replay::run_with(
            &mut engine,
            &text[..],
            0,
            &config.mappings,
            None,
            &mut std::io::sink(),
            |_| {},
        )
        .map_err(|e| eprintln!("replay: {e}"))
        .unwrap_or_default();
        let r = summary.records as f64 / started.elapsed().as_secs_f64();
        drop(engine);
        events = summary.events;
        parse.push(p);
        parse_all.push(p_all);
        replay.push(r);
        ratio.push(r / p);
        ratio_all.push(r / p_all);
    }
    let spread = |v: &mut Vec<f64>, k: f64| {
        v.sort_by(f64::total_cmp);
        format!(
            "{:.2} / {:.2} / {:.2}",
            v[0] / k,
            v[v.len() / 2] / k,
            v[v.len() - 1] / k
        )
    };
    println!(
        "serde_json typed parse: {} k alerts/s; klaxon replay: {} k alerts/s ({events} events); replay / parse: {} × (min / median / max of {runs})",
        spread(&mut parse, 1e3),
        spread(&mut replay, 1e3),
        spread(&mut ratio, 1.0)
    );
    println!(
        "serde_json typed parse on {cores} threads: {} k alerts/s; replay / that: {} ×",
        spread(&mut parse_all, 1e3),
        spread(&mut ratio_all, 1.0)
    );
    events
}
