//! Criterion benchmarks of the core, on ~600-byte alerts: parse, correlate+grade, timer
//! scheduling and firing, serialize, and the whole path bytes → escalation JSON.
//! Run: `cargo bench --bench core`. Results: README, "Benchmarks".

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use klaxon::decode::{decode, Expect};
use klaxon::engine::Engine;
use klaxon::model::Input;
use klaxon::settings;
use std::path::Path;

/// The same allocator as the `klaxon` binary, so the numbers are the service's.
#[global_allocator]
static GLOBAL: klaxon::allocator::Allocator = klaxon::allocator::Allocator;

fn config() -> settings::Config {
    settings::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .expect("shipped config loads")
}

/// The load harness's realistic ~600-byte alerts: `keys` distinct incidents, every 7th alert a
/// repeat id, every 50th crossing a threshold; times spread over an hour.
fn alerts(n: usize, keys: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let ts = format!("2026-11-24T09:{:02}:{:02}+08:00", (i / 1000) % 60, i % 60);
            klaxon::loadtest::alert_line(i, keys, &ts).into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    // As `klaxon` itself runs (klaxon::allocator): without transparent huge pages.
    let _ = klaxon::allocator::without_transparent_huge_pages();
    let config = config();
    let raw = alerts(20_000, 2_000);
    let avg = raw.iter().map(Vec::len).sum::<usize>() / raw.len();
    println!("alert size: {avg} bytes on average");
    let decoded: Vec<Input> = raw
        .iter()
        .map(|b| decode(b, Expect::Alert, 0).expect("bench alert decodes"))
        .collect();

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(raw.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            raw.iter()
                .map(|r| decode(black_box(r), Expect::Alert, 0).is_ok() as usize)
                .sum::<usize>()
        })
    });
    g.bench_function("correlate_grade", |b| {
        b.iter_batched(
            || (Engine::from_config(&config), decoded.clone()),
            |(mut e, inputs)| {
                for i in inputs {
                    e.handle(i);
                }
                let mut n = 0;
                while e.poll_output().is_some() {
                    n += 1;
                }
                // Returned, so that criterion drops the engine outside the measurement.
                (n, e)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("parse_correlate_grade_serialize", |b| {
        b.iter_batched(
            || Engine::from_config(&config),
            |mut e| {
                let mut bytes = 0usize;
                for r in &raw {
                    if let Ok(i) = decode(r, Expect::Alert, 0) {
                        e.handle(i);
                    }
                    while let Some(ev) = e.poll_output() {
                        bytes += ev.to_json().len();
                    }
                }
                (bytes, e)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // Serialize: the escalations one replay of the input produces.
    let mut e = Engine::from_config(&config);
    let mut events = Vec::new();
    for i in decoded.clone() {
        e.handle(i);
        while let Some(ev) = e.poll_output() {
            events.push(ev);
        }
    }
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("escalations_to_json", |b| {
        b.iter(|| events.iter().map(|e| e.to_json().len()).sum::<usize>())
    });
    g.finish();

    // Timers: 2,000 reportable incidents, each with reminders and overdue steps, fired over a day.
    let mut g = c.benchmark_group("timers");
    let reportable: Vec<Input> = (0..2_000)
        .map(|i| {
            let line = format!(r#"{{"id":"t-{i}","timestamp":"2026-11-24T08:{:02}:00+08:00","incident_key":"t-{i}","operator":"hz-ecom","impact":{{"personal_info_records":2000000}}}}"#, i % 60);
            decode(line.as_bytes(), Expect::Alert, 0)
                .expect("decodes")
                .into_owned()
        })
        .collect();
    g.throughput(Throughput::Elements(reportable.len() as u64));
    g.bench_function("schedule_and_fire_a_day", |b| {
        b.iter_batched(
            || {
                let mut e = Engine::from_config(&config);
                for i in reportable.clone() {
                    e.handle(i);
                }
                while e.poll_output().is_some() {}
                e
            },
            |mut e| {
                let mut t = klaxon::time::Timestamp::parse_rfc3339("2026-11-24T09:00:00+08:00")
                    .expect("time");
                let end = klaxon::time::Timestamp::parse_rfc3339("2026-11-25T08:00:00+08:00")
                    .expect("time");
                let mut fired = 0;
                while t < end {
                    t = t.plus(klaxon::time::Millis(60_000));
                    e.run_timers(t, |_| fired += 1);
                }
                fired
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
