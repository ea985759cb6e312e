//! Durability against a real broker: `klaxon run` killed with SIGKILL at random moments while
//! alerts and commands flow, and a second instance taking over a dead one's partitions. The
//! judge is `klaxon replay` on the same input: the set of escalation `event_id`s must be the same
//! (none lost, none invented); duplicates are allowed (at least once) and reported.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// A deterministic pseudo-random sequence (the seed is printed, so a failure can be re-run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// One incident's records (a CII operator: 1 h to report): three alerts that raise the count (较大, then 重大), a re-sent
/// duplicate, and a filing 40 s later — between the 30-min reminder (+30 s) and the 10-min one
/// (+50 s), so the comparison never hangs on a race between a command and a timer.
fn incident_records(
    key: &str,
    produced_at_offset: i64,
    at: impl Fn(i64) -> String,
) -> Vec<(i64, &'static str, String)> {
    // Alerts are dated 29 min 30 s back (discovered late): their 30-min reminders fall due 30 s
    // after they are sent. The filing is dated when it is sent, 40 s after the first alert.
    let ts = |s: i64| at(s - 1770);
    let leak = |n: u32, s: i64, count: u64| {
        serde_json::json!({"id": format!("{key}-{n}"), "timestamp": ts(s), "incident_key": key, "operator": "gd-grid",
                           "title": "bulk export", "impact": {"personal_info_records": count}})
        .to_string()
    };
    let o = produced_at_offset;
    vec![
        (o, "alerts", leak(1, o, 1_000_000)),
        (o + 2, "alerts", leak(2, o + 2, 1_500_000)),
        (o + 3, "alerts", leak(1, o, 1_000_000)),
        (o + 4, "alerts", leak(3, o + 4, 12_000_000)),
        (
            o + 40,
            "commands",
            serde_json::json!({"command": "report_filed", "incident_id": format!("@{key}"), "at": at(o + 40), "by": "oncall", "report_kind": "initial"}).to_string(),
        ),
    ]
}

/// Event ids (with `at` no later than `cutoff`) of a replay of `lines` up to `cutoff`.
fn replay_ids(lines: &[String], cutoff: &str) -> BTreeSet<String> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .args(["replay", "--config"])
        .arg(root().join("config"))
        .args(["--until", cutoff])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cutoff_ts = chrono::DateTime::parse_from_rfc3339(cutoff).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| {
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap() <= cutoff_ts
        })
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

/// All escalations until none arrives for `quiet`: (event_id → copies), restricted to `at ≤ cutoff`.
async fn live_ids(topic: &str, cutoff: &str, quiet: Duration) -> BTreeMap<String, usize> {
    let c = consumer(topic);
    let mut last = Instant::now();
    let mut all = Vec::new();
    let hard_stop = Instant::now() + Duration::from_secs(120);
    while last.elapsed() < quiet && Instant::now() < hard_stop {
        let got = read_until(&c, Duration::from_millis(500), |_| false).await;
        if !got.is_empty() {
            last = Instant::now();
        }
        all.extend(got);
    }
    let cutoff_ts = chrono::DateTime::parse_from_rfc3339(cutoff).unwrap();
    let mut ids = BTreeMap::new();
    for r in all {
        let e = r.json();
        if chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap() <= cutoff_ts {
            *ids.entry(e["event_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    ids
}

fn compare(name: &str, live: &BTreeMap<String, usize>, replay: &BTreeSet<String>) {
    let live_set: BTreeSet<String> = live.keys().cloned().collect();
    let lost: Vec<&String> = replay.difference(&live_set).collect();
    let invented: Vec<&String> = live_set.difference(replay).collect();
    let duplicates: usize = live.values().map(|n| n - 1).sum();
    println!("{name}: {} distinct events expected, {} seen, lost {}, invented {}, duplicate deliveries {}", replay.len(), live_set.len(), lost.len(), invented.len(), duplicates);
    assert!(lost.is_empty(), "lost: {lost:#?}");
    assert!(invented.is_empty(), "invented: {invented:#?}");
}

/// A restarted instance must resume within this long, or the test fails: a liveness guard, not
/// a performance bound (docs/spec.md §8 asks for 15 s; the measured times are printed).
const RESUME_GUARD: Duration = Duration::from_secs(60);

/// Waits until `k` has resumed (partitions assigned and restored) and returns the time from its
/// start as the test saw it, and the process's own `resumed:` figures.
async fn wait_resumed(k: &Klaxon, spawned: Instant) -> (f64, f64, f64) {
    while spawned.elapsed() < RESUME_GUARD {
        if let Some((assigned, restored)) = k.resumed() {
            return (spawned.elapsed().as_secs_f64(), assigned, restored);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "not resumed within {RESUME_GUARD:?} of its start; logs:\n{}",
        k.logs.lock().unwrap().join("\n")
    );
}

/// The crash test, on the shipped `config/` (only the broker address, the group and topic names
/// and the metrics port differ; the instance id is the host name's default): alerts and commands
/// flow while the process is SIGKILLed at random moments (each once the previous start has
/// resumed, so every restart is timed) and started again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_escalation_and_invents_none() {
    let t = Topics::new(&unique("crash"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut rng = Lcg(seed);
    println!("seed {seed}");
    let mut k = Klaxon::start_shipped(&t, &[]);
    let mut spawned = Instant::now();
    let (first, ..) = wait_resumed(&k, spawned).await;
    println!("first start (a new group): resumed after {first:.1} s");
    let p = producer();
    // 24 incidents starting every 2 s, each with 5 records spread over 40 s.
    let mut plan: Vec<(i64, &'static str, String, String)> = Vec::new();
    let base = chrono::Utc::now();
    for i in 0..24 {
        let key = format!("crash-{i}");
        let at_from_start = move |s: i64| {
            (base + chrono::Duration::seconds(s))
                .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        };
        for (off, topic, line) in incident_records(&key, 2 * i, at_from_start) {
            plan.push((off, topic, line, key.clone()));
        }
    }
    plan.sort_by_key(|(off, ..)| *off);
    let mut kill_at: Vec<i64> = (0..4).map(|_| 2 + (rng.next() % 80) as i64).collect();
    kill_at.sort();
    println!("kills at +{kill_at:?} s (each no earlier than the previous start's resumption)");
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut restarts: Vec<(f64, f64, f64)> = Vec::new();
    let mut resumed = true;
    let mut plan = plan.into_iter().peekable();
    while plan.peek().is_some() || !kill_at.is_empty() || !resumed {
        let now_s = start.elapsed().as_secs() as i64;
        if !resumed {
            if let Some((assigned, restored)) = k.resumed() {
                let seen = spawned.elapsed().as_secs_f64();
                println!("restart {}: resumed {seen:.1} s after its start (process: assigned {assigned:.1} s, restored {restored:.1} s)", restarts.len() + 1);
                restarts.push((seen, assigned, restored));
                resumed = true;
            } else {
                assert!(
                    spawned.elapsed() < RESUME_GUARD,
                    "restart {} not resumed within {RESUME_GUARD:?}; logs:\n{}",
                    restarts.len() + 1,
                    k.logs.lock().unwrap().join("\n")
                );
            }
        }
        if resumed && kill_at.first().is_some_and(|at| now_s >= *at) {
            kill_at.remove(0);
            k.sigkill();
            k = Klaxon::start_shipped(&t, &[]);
            spawned = Instant::now();
            resumed = false;
        }
        while let Some((_, topic, line, key)) = plan.next_if(|(off, ..)| *off <= now_s) {
            let topic = if topic == "alerts" {
                &t.alerts
            } else {
                &t.commands
            };
            produce(&p, topic, Some(&key), line.as_bytes()).await;
            sent.push(line);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    k.wait_ready(Duration::from_secs(60));
    // Compare what is due up to 10 s ago (the 30- and 10-min reminders of every incident).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let cutoff = at(-10);
    let live = live_ids(&t.escalations, &cutoff, Duration::from_secs(5)).await;
    let replay = replay_ids(&sent, &cutoff);
    let kills = restarts.len();
    println!("runs {}, kills {kills}, records {}", kills + 1, sent.len());
    let mut seen: Vec<f64> = restarts.iter().map(|r| r.0).collect();
    seen.sort_by(f64::total_cmp);
    println!(
        "restart → resumed over {kills} kills: min {:.1} s, median {:.1} s, max {:.1} s",
        seen[0],
        seen[kills / 2],
        seen[kills - 1]
    );
    compare("crash test", &live, &replay);
    assert!(kills >= 4, "killed {kills} times");
    assert!(
        replay
            .iter()
            .any(|id| id.ends_with("report.reminder/initial/30m")),
        "the test covers timers"
    );
    assert!(k.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_takes_over_a_killed_ones_partitions_and_fires_their_timers() {
    let t = Topics::new(&unique("takeover"));
    // Dynamic membership: the local broker never drops a static member whose session expired
    // (measured: a killed static member's partitions stayed assigned to it, unowned, for as long
    // as we watched), so a takeover of an instance that does not come back cannot be tested on
    // it with static membership. Real Kafka removes a static member when its session expires
    // (KIP-345); deploy/README.md, "Restart and static membership".
    let dynamic = [("KLAXON__KAFKA__INSTANCE_ID", "")];
    let mut a = Klaxon::start(&t, &dynamic);
    a.wait_ready(Duration::from_secs(60));
    let p = producer();
    // 30 incidents on all partitions; their 30-min reminders fall due 20–25 s from now.
    let mut sent = Vec::new();
    for i in 0..30 {
        let key = format!("takeover-{i}");
        let line = serde_json::json!({"id": format!("{key}-1"), "timestamp": at(-1780 + (i % 5)), "incident_key": key,
            "operator": "gd-grid", "asset": "hz-ecom-member-center", "impact": {"personal_info_records": 2_000_000}})
        .to_string();
        produce(&p, &t.alerts, Some(&key), line.as_bytes()).await;
        sent.push(line);
    }
    // A second instance joins: a rebalance while the timers run.
    let b = Klaxon::start(&t, &dynamic);
    b.wait_ready(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    a.sigkill();
    // B restores A's partitions and fires what fell due meanwhile.
    let until = Instant::now() + Duration::from_secs(60);
    let restores = |k: &Klaxon| {
        k.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("partition state restored"))
            .count()
    };
    let restored_before = restores(&b);
    let mut takeover = None;
    while Instant::now() < until {
        let n = restores(&b);
        if n > restored_before {
            takeover = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = takeover.expect("the surviving instance restored the dead one's partitions");
    println!(
        "takeover (kill → partitions restored on the survivor): {:.1} s",
        takeover.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let cutoff = at(-5);
    let live = live_ids(&t.escalations, &cutoff, Duration::from_secs(5)).await;
    let replay = replay_ids(&sent, &cutoff);
    compare("takeover test", &live, &replay);
    assert!(
        replay
            .iter()
            .filter(|id| id.ends_with("report.reminder/initial/30m"))
            .count()
            >= 30
    );
    drop(b);
}
