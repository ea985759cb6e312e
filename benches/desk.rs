//! The desk's benchmark (a measurement, not a timed test): `cargo bench --bench desk`.
//!
//! 1. Memory per incident in the desk's view, against the engine's, both counted by the same
//!    counting allocator (live heap bytes, no allocator overhead), for `DESK_BENCH_INCIDENTS`
//!    (default 1,000,000) open reportable incidents.
//! 2. Rebuilding the view of those incidents from their changelog records (the CPU side of a
//!    restart: decoding and inserting; reading them off Kafka is measured by the load harness'
//!    restore phase), and applying their escalation events to the timelines.
//!    Three rebuilds: min / median / max.
//! 3. Listing 10,000 open incidents: `GET /api/v1/incidents` over loopback HTTP against the desk's
//!    own router (authentication, the view's lock, filter, sort by nearest deadline, entries with
//!    recipients and countdowns, JSON, axum/hyper), one client at a time: min, p50, p99 and max
//!    over 300 requests. The view alone (no HTTP) is timed too, to show where the time goes.
//! 4. With `KAFKA_BROKERS` set (`eval "$(scripts/broker.sh start)"`): the rebuild through the real
//!    feed from a real broker: `DESK_BENCH_BROKER_INCIDENTS` (default 100,000) changelog records
//!    produced to a fresh 6-partition topic, then the time until the desk's feed holds them all.
//!
//! Figures are printed; `docs/desk.md` records them. Nothing here asserts a time.

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
    // As `klaxon` itself runs (klaxon::allocator): without transparent huge pages.
    let _ = klaxon::allocator::without_transparent_huge_pages();
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

    // 2. Rebuild the view from the changelog (three times), then the timelines from the
    //    escalations.
    let mut rebuilds = Vec::new();
    let mut state_bytes = 0;
    let mut view = View::default();
    for _ in 0..3 {
        drop(std::mem::take(&mut view));
        let base = live();
        let t = Instant::now();
        for (key, value) in &records {
            let _ = view.apply_state(key.as_bytes(), Some(value));
        }
        rebuilds.push(t.elapsed().as_secs_f64());
        state_bytes = live() - base;
    }
    let base = live() - state_bytes;
    rebuilds.sort_by(f64::total_cmp);
    println!(
        "  view: rebuilt {} incidents from their changelog records in min {:.2} / median {:.2} / max {:.2} s ({:.0} k records/s at the median); {:.0} bytes per incident (state)",
        view.len(),
        rebuilds[0],
        rebuilds[1],
        rebuilds[2],
        records.len() as f64 / rebuilds[1] / 1000.0,
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
    let broker_records: Vec<(String, Vec<u8>)> = match std::env::var("KAFKA_BROKERS") {
        Ok(_) => {
            let b: usize = std::env::var("DESK_BENCH_BROKER_INCIDENTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if measuring { 100_000 } else { 1_000 });
            records.into_iter().take(b).collect()
        }
        Err(_) => Vec::new(),
    };

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
    for _ in 0..requests {
        let t = Instant::now();
        let list = view.list(&config.ruleset, &wanted, now, offset);
        let body = serde_json::to_vec(&list).unwrap_or_default();
        took.push(t.elapsed());
        assert_eq!(list.len(), m);
        drop(body);
    }
    report(&format!("  view.list of {m} + JSON (no HTTP)"), took, None);

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            std::process::exit(1);
        }
    };
    let mut config = config;
    config
        .settings
        .desk
        .principals
        .push(klaxon::settings::service::PrincipalSettings {
            name: "bench".into(),
            role: "viewer".into(),
            token_sha256: klaxon::desk::auth::token_sha256("bench-token"),
        });
    let config = std::sync::Arc::new(config);
    rt.block_on(async {
        let desk = match klaxon::desk::Desk::new(
            config.clone(),
            std::sync::Arc::new(klaxon::telemetry::Metrics::new().expect("metrics")),
            klaxon::runtime::clock::Clock::simulated(now, 1.0),
        ) {
            Ok(d) => std::sync::Arc::new(d),
            Err(e) => {
                eprintln!("desk: {e}");
                std::process::exit(1);
            }
        };
        if let Ok(mut v) = desk.view.write() {
            *v = view;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, klaxon::desk::api::router(desk)).await;
        });
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/api/v1/incidents");
        let mut took = Vec::new();
        let mut size = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let body = client
                .get(&url)
                .bearer_auth("bench-token")
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("GET /api/v1/incidents")
                .bytes()
                .await
                .expect("body");
            took.push(t.elapsed());
            size = body.len();
        }
        report(
            &format!("  GET /api/v1/incidents, {m} open incidents, over loopback HTTP"),
            took,
            Some(size),
        );
        server.abort();
    });

    // 4. The rebuild from a real broker, through the desk's own feed.
    if !broker_records.is_empty() {
        rt.block_on(from_broker(&config, broker_records));
    }
}

/// Prints min / p50 / p99 / max of `took`.
fn report(what: &str, mut took: Vec<std::time::Duration>, size: Option<usize>) {
    took.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(took[((took.len() as f64 * p) as usize).min(took.len() - 1)]);
    println!(
        "{what}{}: min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} requests",
        size.map(|s| format!(" ({:.1} MiB of JSON)", s as f64 / 1048576.0))
            .unwrap_or_default(),
        took.first().copied().map(ms).unwrap_or(0.0),
        pct(0.5),
        pct(0.99),
        took.last().copied().map(ms).unwrap_or(0.0),
        took.len()
    );
}

/// Produces `records` to a fresh 6-partition changelog topic on `$KAFKA_BROKERS`, then times the
/// desk's feed (as `klaxon desk` runs it) from its start until the view holds them all.
async fn from_broker(config: &settings::Config, records: Vec<(String, Vec<u8>)>) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let n = records.len();
    let prefix = format!("desk-bench-{}", std::process::id());
    let mut config = config.clone();
    config.settings = config.settings.isolated(&prefix);
    let s = &config.settings;
    let base = klaxon::runtime::kafka::base_config(s);
    let admin: AdminClient<_> = base.create().expect("admin client");
    let topics = [
        NewTopic::new(&s.topics.changelog, 6, TopicReplication::Fixed(1)),
        NewTopic::new(&s.topics.escalations, 6, TopicReplication::Fixed(1)),
    ];
    let _ = admin.create_topics(&topics, &AdminOptions::new()).await;
    let producer: BaseProducer = klaxon::runtime::kafka::producer_config(s)
        .create()
        .expect("producer");
    let t = Instant::now();
    for (key, value) in &records {
        let mut record = BaseRecord::to(&s.topics.changelog).key(key).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(std::time::Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(std::time::Duration::from_secs(120))
        .expect("flush");
    println!(
        "  broker: {n} changelog records produced in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(records);
    // The same records read by a bare consumer (no decoding, no view): what fetching from this
    // broker costs by itself.
    {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let mut cfg = klaxon::runtime::kafka::base_config(s);
        cfg.set("group.id", format!("{prefix}.raw"));
        cfg.set("enable.auto.commit", "false");
        cfg.set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = cfg.create().expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..6 {
            let _ = tpl.add_partition_offset(&s.topics.changelog, p, rdkafka::Offset::Beginning);
        }
        consumer.assign(&tpl).expect("assign");
        let t = Instant::now();
        let mut got = 0;
        while got < n && t.elapsed() < std::time::Duration::from_secs(300) {
            if let Some(Ok(_)) = consumer.poll(std::time::Duration::from_millis(100)) {
                got += 1;
            }
        }
        println!(
            "  broker: a bare consumer read {got} records in {:.2} s ({:.0} k records/s)",
            t.elapsed().as_secs_f64(),
            got as f64 / t.elapsed().as_secs_f64() / 1000.0
        );
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let desk = std::sync::Arc::new(
            klaxon::desk::Desk::new(
                std::sync::Arc::new(config.clone()),
                std::sync::Arc::new(klaxon::telemetry::Metrics::new().expect("metrics")),
                klaxon::runtime::clock::Clock::wall(),
            )
            .expect("desk"),
        );
        let t = Instant::now();
        let feed = tokio::spawn(klaxon::desk::feed::run(
            desk.clone(),
            desk.closing.subscribe(),
        ));
        let mut held = 0;
        while t.elapsed() < std::time::Duration::from_secs(300) {
            held = desk.view.read().map(|v| v.len()).unwrap_or(0);
            if held >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        times.push(t.elapsed().as_secs_f64());
        let _ = desk.closing.send(true);
        let _ = feed.await;
        if held < n {
            println!("  broker: the feed held only {held} of {n} after 300 s");
            return;
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  broker: the desk's feed rebuilt the view of {n} incidents from the broker in min {:.2} / median {:.2} / max {:.2} s ({:.0} k records/s at the median)",
        times[0],
        times[1],
        times[2],
        n as f64 / times[1] / 1000.0
    );
}
