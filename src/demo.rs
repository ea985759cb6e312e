//! `klaxon demo`: the README's first command. Runs the live service against a broker on a
//! simulated clock (a day of the example alerts in minutes; the rules are the real ones), feeds
//! `examples/day.jsonl` as the clock reaches each record's time, and prints the escalations as
//! they arrive, for a person, with their countdowns.

use crate::runtime::clock::Clock;
use crate::settings::Config;
use crate::telemetry::Metrics;
use crate::time::Timestamp;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct DemoOptions {
    pub start: Timestamp,
    pub until: Timestamp,
    pub speed: f64,
    pub color: bool,
}

/// Runs the demo until the simulated clock reaches `until` or `interrupt` resolves.
pub async fn run(
    mut config: Config,
    input: &Path,
    opts: DemoOptions,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let prefix = format!("klaxon-demo-{}", crate::runtime::clock::wall_now().0);
    config.settings = config.settings.isolated(&prefix);
    config.settings.state.partitions = 3;
    // Pages reach people through the delivery stage (docs/spec.md §10): here a local webhook receiver,
    // standing in for the SOC's pager, prints each page as it arrives, signature checked.
    let pager = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo pager: {e}"))?;
    let pager_port = pager.local_addr().map_err(|e| e.to_string())?.port();
    config.settings.delivery.enabled = true;
    config.settings.delivery.webhooks = vec![crate::settings::delivery::WebhookSettings {
        name: "demo-pager".into(),
        url: format!("http://127.0.0.1:{pager_port}/page"),
        events: vec!["escalation.page".into()],
        secret_env: std::env::var(DEMO_SECRET_ENV)
            .ok()
            .map(|_| DEMO_SECRET_ENV.into()),
    }];
    let desk = demo_desk(&mut config, &prefix)?;
    let s = &config.settings;
    let offset = s.utc_offset();
    let text = std::fs::read_to_string(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let records = schedule(&text);
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let clock = Clock::simulated(opts.start, opts.speed);
    let brokers = config.settings.kafka.brokers.clone();

    println!("Klaxon demo — broker {brokers}, topics {prefix}.*");
    println!(
        "Simulated clock from {} at {}× real time: one hour of the example day passes in {:.0} s.",
        opts.start.format(offset),
        opts.speed,
        3600.0 / opts.speed
    );
    println!("The rules are the real ones (1 h / 2 h / 4 h windows, 30 and 10 min reminders). Ctrl-C stops.");
    println!(
        "Duty desk: http://{} — sign in with the token {} (role lead), or:\n  KLAXON_TOKEN={} {} ctl --desk http://{} list\n",
        config.settings.desk.listen,
        desk.token,
        desk.token,
        this_binary(),
        config.settings.desk.listen
    );

    let (stop_tx, service) = crate::runtime::spawn(config.clone(), metrics.clone(), clock.clone());
    let stop_rx = stop_tx.subscribe();
    let pager_task = tokio::spawn(run_pager(pager, opts.color, stop_rx.clone()));
    let printer = tokio::spawn(print_events(
        config.clone(),
        clock.clone(),
        offset,
        opts.color,
        stop_rx.clone(),
    ));
    let feeder = tokio::spawn(feed(
        config.clone(),
        clock.clone(),
        records,
        metrics.clone(),
        stop_rx.clone(),
    ));
    let until = opts.until;
    let end = {
        let clock = clock.clone();
        async move {
            loop {
                if clock.now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    tokio::select! {
        _ = end => println!("\nThe simulated day is over."),
        _ = interrupt => println!("\nInterrupted."),
    }
    let _ = stop_tx.send(true);
    let _ = feeder.await;
    let _ = printer.await;
    let _ = pager_task.await;
    let _ = std::fs::remove_dir_all(&desk.dir);
    match service.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// What the demo set up for the desk: a signing key in a private directory (removed at the
/// end) and a token.
struct DemoDesk {
    dir: std::path::PathBuf,
    token: String,
}

/// The demo's key set-up (README, "The duty desk"): a fresh Ed25519 key, trusted for every
/// principal, signs the example day's commands and the desk's; a fresh token signs in as `lead`
/// (unless the config already names principals). Nothing is written to the config directory.
fn demo_desk(config: &mut Config, prefix: &str) -> Result<DemoDesk, String> {
    let dir = std::env::temp_dir().join(prefix);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_file = dir.join("demo.key");
    let public = crate::signing::generate(&key_file).map_err(|e| e.to_string())?;
    let c = &mut config.settings;
    c.commands
        .keys
        .push(crate::settings::service::CommandKeySettings {
            id: "demo".into(),
            public_key: public,
            principals: vec!["*".into()],
        });
    c.desk.enabled = true;
    c.desk.signing_key_file = Some(key_file.display().to_string());
    c.desk.signing_key_id = Some("demo".into());
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| format!("no random source: {e}"))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    c.desk
        .principals
        .push(crate::settings::service::PrincipalSettings {
            name: "demo".into(),
            role: "lead".into(),
            token_sha256: crate::desk::auth::token_sha256(&token),
        });
    // Another demo (or a desk) already on the port: take a free one rather than fail.
    if std::net::TcpListener::bind(&c.desk.listen).is_err() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        c.desk.listen = free.to_string();
    }
    Ok(DemoDesk { dir, token })
}

/// Records with their event times; a line whose time cannot be read keeps its neighbour's.
fn schedule(text: &str) -> Vec<(Timestamp, bool, String)> {
    let mut out = Vec::new();
    let mut last = Timestamp(0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Option<Value> = serde_json::from_str(line).ok();
        let is_command = v.as_ref().is_some_and(|v| v.get("command").is_some());
        let t = v
            .as_ref()
            .and_then(|v| v.get(if is_command { "at" } else { "timestamp" }))
            .and_then(Value::as_str)
            .and_then(|s| Timestamp::parse_rfc3339(s).ok())
            .unwrap_or(last);
        last = t;
        out.push((t, is_command, line.to_string()));
    }
    out.sort_by_key(|(t, _, _)| *t);
    out
}

async fn feed(
    config: Arc<Config>,
    clock: Clock,
    records: Vec<(Timestamp, bool, String)>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let s = &config.settings;
    let producer: FutureProducer = match ClientConfig::new()
        .set("bootstrap.servers", &s.kafka.brokers)
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("demo feeder: {e}");
            return;
        }
    };
    let signer = match (&s.desk.signing_key_file, &s.desk.signing_key_id) {
        (Some(f), Some(id)) => crate::signing::CommandSigner::load(Path::new(f), id).ok(),
        _ => None,
    };
    while !metrics.is_ready() {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    for (t, is_command, line) in records {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(clock.until(t)) => {}
        }
        let topic = if is_command {
            &s.topics.commands
        } else {
            &s.topics.alerts
        };
        // Commands are signed (docs/spec.md §9) and stamped with the simulated time of their receipt.
        let mut record = FutureRecord::<(), _>::to(topic)
            .payload(line.as_bytes())
            .timestamp(clock.now().0);
        if let (true, Some(signer)) = (is_command, &signer) {
            let sig = signer.sign(line.as_bytes());
            record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
                rdkafka::message::Header {
                    key: crate::signing::HEADER,
                    value: Some(sig.as_bytes()),
                },
            ));
        }
        if let Err((e, _)) = producer.send(record, Duration::from_secs(10)).await {
            eprintln!("demo feeder: {e}");
        }
    }
}

/// How to run this binary again from the current directory (`target/debug/klaxon` after
/// `scripts/demo.sh`): a new user has no `klaxon` on their PATH yet, and the ctl line the demo
/// prints should work when pasted.
fn this_binary() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "klaxon".into();
    };
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|r| r.display().to_string()));
    relative.unwrap_or_else(|| exe.display().to_string())
}

async fn print_events(
    config: Arc<Config>,
    clock: Clock,
    offset: chrono::FixedOffset,
    color: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let s = &config.settings;
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &s.kafka.brokers)
        .set("group.id", format!("{}.printer", s.kafka.group_id))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo printer: {e}");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[&s.topics.escalations, &s.topics.dead_letter]) {
        eprintln!("demo printer: {e}");
        return;
    }
    // Reports still due: event id of the report.due → (incident, kind, deadline).
    let mut due: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if !due.is_empty() {
                    println!("{}", countdown_line(&due, clock.now(), offset, color));
                }
            }
            m = consumer.recv() => {
                let Ok(m) = m else { continue };
                let payload = m.payload().unwrap_or(&[]);
                if m.topic() == s.topics.dead_letter {
                    let reason = m.headers().and_then(|h| h.iter().find(|h| h.key == "klaxon-error")).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                    println!("{}", paint(color, "2", &format!("  dead-lettered: {reason}")));
                    continue;
                }
                let Ok(ev) = serde_json::from_slice::<Value>(payload) else { continue };
                // Pages are printed by the pager as they arrive through the delivery stage.
                if ev["type"] == "escalation.page" {
                    continue;
                }
                track(&mut due, &ev);
                println!("{}", format_event(&ev, color));
            }
        }
    }
}

fn track(due: &mut BTreeMap<(String, String), Timestamp>, ev: &Value) {
    let inc = ev["incident_id"].as_str().unwrap_or("").to_string();
    let kind = ev["report_kind"].as_str().unwrap_or("").to_string();
    let deadline = ev["deadline"]
        .as_str()
        .and_then(|d| Timestamp::parse_rfc3339(d).ok());
    match ev["type"].as_str() {
        Some("report.due") => {
            if let Some(d) = deadline {
                due.insert((inc, kind), d);
            }
        }
        Some("report.filed") => {
            due.remove(&(inc, kind));
        }
        Some("incident.dismissed") => due.retain(|(i, _), _| *i != inc),
        _ => {}
    }
}

fn countdown_line(
    due: &BTreeMap<(String, String), Timestamp>,
    now: Timestamp,
    offset: chrono::FixedOffset,
    color: bool,
) -> String {
    let mut items: Vec<(&(String, String), &Timestamp)> = due.iter().collect();
    items.sort_by_key(|(_, d)| **d);
    let parts: Vec<String> = items
        .iter()
        .take(4)
        .map(|((inc, kind), d)| {
            // Whole minutes: a countdown, not a stopwatch.
            let left = crate::time::Millis(d.since(now).0 / 60_000 * 60_000);
            let text = if left.0 >= 0 {
                format!("{left} left")
            } else {
                format!("OVERDUE {}", crate::time::Millis(-left.0))
            };
            format!("{} {} {}", short(inc), kind, text)
        })
        .collect();
    paint(
        color,
        "36",
        &format!(
            "  ⏱  {} — reports due: {}",
            &now.format(offset)[11..16],
            parts.join(" · ")
        ),
    )
}

fn short(id: &str) -> &str {
    id.get(13..).unwrap_or(id)
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// One event as a person reads it at 3 a.m.
pub fn format_event(ev: &Value, color: bool) -> String {
    let time = ev["at"]
        .as_str()
        .and_then(|a| a.get(11..19))
        .unwrap_or("--:--:--");
    let kind = ev["type"].as_str().unwrap_or("?");
    let level = ev["level_zh"].as_str().unwrap_or("");
    let id = ev["incident_id"].as_str().unwrap_or("");
    let who = ev["operator"]["name"]
        .as_str()
        .or(ev["operator"]["id"].as_str())
        .unwrap_or("");
    let what = ev["title"].as_str().unwrap_or("");
    let (label, code) = match kind {
        "incident.opened" => ("opened", "2"),
        "incident.graded" => ("GRADED", "1;33"),
        "grade.upgrade_warning" => ("UPGRADE AHEAD", "33"),
        "report.due" => ("REPORT DUE", "1;31"),
        "report.reminder" => ("reminder", "31"),
        "report.overdue" => ("OVERDUE", "1;41;97"),
        "report.filed" => ("filed", "32"),
        "incident.acknowledged" => ("acknowledged", "32"),
        "incident.resolved" => ("resolved", "32"),
        "incident.dismissed" => ("dismissed", "2"),
        "incident.merged" => ("merged", "2"),
        "command.rejected" => ("COMMAND REJECTED", "35"),
        _ => (kind, "0"),
    };
    let mut line = format!(
        "{time}  {:<4}  {:<16} {}  {} {}",
        level,
        paint(color, code, label),
        short(id),
        who,
        what
    );
    let mut detail = Vec::new();
    match kind {
        "incident.graded" => {
            let prev = ev["previous_level"].as_str().unwrap_or("");
            let why: Vec<String> = ev["matched"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|e| {
                            format!(
                                "{} {} ≥ {}",
                                e["indicator"].as_str().unwrap_or(""),
                                e["value"],
                                e["threshold"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            detail.push(format!(
                "{prev} → {}: {}",
                ev["level"].as_str().unwrap_or(""),
                why.join("; ")
            ));
        }
        "grade.upgrade_warning" => {
            let u = &ev["upgrade"];
            detail.push(format!(
                "will reach {} at {} ({} ≥ {}) if it goes on",
                u["to_level_zh"].as_str().unwrap_or(""),
                u["crossing_at"]
                    .as_str()
                    .and_then(|a| a.get(11..16))
                    .unwrap_or(""),
                u["indicator"].as_str().unwrap_or(""),
                u["threshold"]
            ));
        }
        "report.due" | "report.reminder" | "report.overdue" | "report.filed" => {
            let to: Vec<&str> = ev["recipients"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["name"].as_str()).collect())
                .unwrap_or_default();
            let left = ev["seconds_remaining"].as_i64().unwrap_or(0);
            let left_text = if left >= 0 {
                format!("{} left", crate::time::Millis(left * 1000))
            } else {
                format!("{} late", crate::time::Millis(-left * 1000))
            };
            let deadline = ev["deadline"]
                .as_str()
                .and_then(|a| a.get(5..16))
                .unwrap_or("");
            let mut d = format!(
                "{} report due {deadline} ({left_text})",
                ev["report_kind"].as_str().unwrap_or("")
            );
            if !to.is_empty() {
                d.push_str(&format!(" → {}", to.join("、")));
            }
            if let Some(o) = ev["onward"].as_object() {
                d.push_str(&format!(
                    "; onward within {} min",
                    o.get("within_minutes").and_then(Value::as_i64).unwrap_or(0)
                ));
            }
            detail.push(d);
        }
        "command.rejected" | "incident.dismissed" => {
            detail.push(ev["reason"].as_str().unwrap_or("").to_string())
        }
        _ => {}
    }
    for d in detail {
        line.push_str("\n                              ");
        line.push_str(&d);
    }
    line
}

/// The variable holding the demo pager's HMAC secret (`klaxon demo` sets a random one).
pub const DEMO_SECRET_ENV: &str = "KLAXON_DEMO_WEBHOOK_SECRET";

/// The demo's pager: a webhook receiver on loopback that prints each page it is sent, with
/// whether its `X-Klaxon-Signature` checks out, until `stop`.
async fn run_pager(
    listener: tokio::net::TcpListener,
    color: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let secret = std::env::var(DEMO_SECRET_ENV).unwrap_or_default();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let secret = secret.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            let signed = parts
                .headers
                .get(crate::delivery::signature::HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|sig| {
                    crate::delivery::signature::verify(secret.as_bytes(), &body, sig)
                });
            if let Ok(ev) = serde_json::from_slice::<Value>(&body) {
                println!("{}", format_page(&ev, signed, color));
            }
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await;
}

/// One page as the demo pager prints it: who is paged and why.
pub fn format_page(ev: &Value, signed: bool, color: bool) -> String {
    let time = ev["at"]
        .as_str()
        .and_then(|a| a.get(11..19))
        .unwrap_or("--:--:--");
    let targets: Vec<String> = ev["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    t["name"]
                        .as_str()
                        .or(t["id"].as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{time}  {:<4}  {:<16} {}  → {}\n                              {}  [webhook, {}]",
        ev["level_zh"].as_str().unwrap_or(""),
        paint(color, "1;35", "PAGE"),
        short(ev["incident_id"].as_str().unwrap_or("")),
        targets.join(", "),
        ev["reason"].as_str().unwrap_or(""),
        if signed { "signature ok" } else { "UNSIGNED" },
    )
}
