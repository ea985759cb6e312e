//! The desk's benchmark (a measurement, not a timed test): `cargo bench --bench desk`.
//!
//! 1. Memory per incident in the desk's view, against the engine's, both counted by the same
//!    counting allocator (live heap bytes, no allocator overhead), for `DESK_BENCH_INCIDENTS`
//!    (default 1,000,000) open reportable incidents.
//! 2. Rebuilding the view of those incidents from their changelog records (the CPU side of a
//!    restart: decoding and inserting; reading them off Kafka is measured by the load harness'
//!    restore phase), and applying their escalation events to the timelines.
//! 3. Listing 10,000 open incidents as the API answers (filter, sort by nearest deadline, build
//!    the entries with recipients and countdowns, serialize to JSON): p50, p99 and max over 300
//!    requests.
//!
//! Figures are printed; `docs/desk.md` records them.

use klaxon::decode::{decode, Expect};
use klaxon::desk::view::{Filter, View};
use klaxon::engine::Engine;
use klaxon::settings;
use klaxon::time::Timestamp;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// An engine with `n` open reportable incidents (one alert each: 2 M personal records, 较大),
/// and the escalation events they produced, as JSON, for the first `keep_events` incidents.
fn engine_with(config: &settings::Config, n: usize, keep_events: usize) -> (Engine, Vec<String>) {
    let mut e = Engine::from_config(config);
    let mut events = Vec::new();
    for i in 0..n {
        let line = format!(
            r#"{{"id":"d-{i}","timestamp":"2026-11-24T08:{:02}:{:02}+08:00","incident_key":"d-{i}","operator":"gd-grid","title":"Member data exfiltration","impact":{{"personal_info_records":2000000}}}}"#,
            (i / 60) % 60,
            i % 60
        );
        if let Ok(input) = decode(line.as_bytes(), Expect::Alert, 0) {
            e.handle(input);
        }
        while let Some(ev) = e.poll_output() {
            if i < keep_events {
                events.push(ev.to_json());
            }
        }
    }
    (e, events)
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a small smoke run then.
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("DESK_BENCH_INCIDENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 1_000_000 } else { 2_000 });
    let requests = if measuring { 300 } else { 5 };
    let config = match settings::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(1);
        }
    };
    let offset = config.settings.utc_offset();
    println!("desk benchmark: {n} open reportable incidents");

    // 1. The engine's memory, then the changelog image.
    let base = live();
    let t = Instant::now();
    let (engine, sample_events) = engine_with(&config, n, 1);
    let engine_bytes = live() - base;
    println!(
        "  engine: built in {:.1} s, {:.0} bytes per incident (live heap)",
        t.elapsed().as_secs_f64(),
        engine_bytes as f64 / n as f64
    );
    let records: Vec<(String, Vec<u8>)> = engine
        .incidents_sorted()
        .into_iter()
        .filter_map(|i| Some((i.id.to_string(), serde_json::to_vec(i).ok()?)))
        .collect();
    drop(engine);
    let image: usize = records.iter().map(|(_, r)| r.len()).sum();
    println!(
        "  changelog image: {:.0} MiB, {} bytes per record",
        image as f64 / 1048576.0,
        image / records.len().max(1)
    );

    // 2. Rebuild the view from the changelog, then the timelines from the escalations.
    let base = live();
    let t = Instant::now();
    let mut view = View::default();
    for (key, value) in &records {
        let _ = view.apply_state(key.as_bytes(), Some(value));
    }
    let rebuild = t.elapsed();
    let state_bytes = live() - base;
    println!(
        "  view: rebuilt {} incidents from their changelog records in {:.2} s ({:.0} k records/s); {:.0} bytes per incident (state)",
        view.len(),
        rebuild.as_secs_f64(),
        records.len() as f64 / rebuild.as_secs_f64() / 1000.0,
        state_bytes as f64 / n as f64
    );
    // Each incident's own events (opened, graded, report.due with its draft): the sample
    // incident's, with the id replaced.
    let sample_id = records
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| sample_events.iter().all(|e| e.contains(k.as_str())))
        .unwrap_or_default();
    let t = Instant::now();
    let mut applied = 0usize;
    let mut event_bytes = 0usize;
    for (key, _) in &records {
        for ev in &sample_events {
            let text = ev.replace(&sample_id, key);
            event_bytes += text.len();
            if view.apply_event(text.as_bytes()).is_ok() {
                applied += 1;
            }
        }
    }
    let timelines = t.elapsed();
    let view_bytes = live() - base;
    println!(
        "  timelines: {applied} events ({} bytes each on average) applied in {:.2} s ({:.0} k events/s); view total {:.0} bytes per incident ({} moments)",
        event_bytes / applied.max(1),
        timelines.as_secs_f64(),
        applied as f64 / timelines.as_secs_f64() / 1000.0,
        view_bytes as f64 / n as f64,
        view.moments()
    );
    drop(view);
    drop(records);

    // 3. Listing 10,000 open incidents.
    let m = 10_000.min(n);
    let (engine, _) = engine_with(&config, m, 0);
    let mut view = View::default();
    for inc in engine.incidents_sorted() {
        if let Ok(bytes) = serde_json::to_vec(inc) {
            let _ = view.apply_state(inc.id.to_string().as_bytes(), Some(&bytes));
        }
    }
    drop(engine);
    let wanted = match (Filter::default()).check() {
        Ok(w) => w,
        Err((f, e)) => {
            eprintln!("{f}: {e}");
            std::process::exit(1);
        }
    };
    let now = Timestamp::parse_rfc3339("2026-11-24T08:30:00+08:00").unwrap_or(Timestamp(0));
    let mut took = Vec::new();
    let mut size = 0;
    for _ in 0..requests {
        let t = Instant::now();
        let list = view.list(&config.ruleset, &wanted, now, offset);
        let body = serde_json::to_vec(&list).unwrap_or_default();
        took.push(t.elapsed());
        size = body.len();
        assert_eq!(list.len(), m);
    }
    took.sort();
    let pct = |p: f64| {
        took[((took.len() as f64 * p) as usize).min(took.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "  list of {m} open incidents ({:.1} MiB of JSON): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} requests",
        size as f64 / 1048576.0,
        pct(0.5),
        pct(0.99),
        took.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        took.len()
    );
}
