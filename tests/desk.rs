//! The duty desk (docs/spec.md §9) against the real broker and the real binary: a desk that sees the
//! incidents of every instance, the role matrix, `by` refused, signed / unsigned / forged /
//! out-of-scope commands on the topic, backdated filings, the stream, and `klaxon ctl`.

mod kafka_support;

use kafka_support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn reportable(id: &str, key: &str) -> String {
    // A CII whole outage that began 15 minutes ago: past the 10-minute threshold (较大, 1 h).
    json!({
        "id": id, "timestamp": at(0), "source": "test", "title": "SCADA unreachable", "category": "outage",
        "incident_key": key, "operator": "gd-grid", "asset": "gd-grid-scada",
        "impact": {"outage": {"scope": "whole", "since": at(-900), "until": null}}
    })
    .to_string()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(port: u16) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.expect("desk answers");
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, token: Option<&str>, body: String) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.expect("desk answers");
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        )
    }

    async fn command(&self, id: &str, token: &str, body: Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/incidents/{id}/commands"),
            Some(token),
            body.to_string(),
        )
        .await
    }

    /// Waits until the open list holds at least `n` incidents; returns it.
    async fn wait_list(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let until = Instant::now() + timeout;
        loop {
            let (code, v) = self.get("/api/v1/incidents", Some(VIEWER_TOKEN)).await;
            assert_eq!(code, 200, "{v}");
            let list = v["incidents"].as_array().cloned().unwrap_or_default();
            if list.len() >= n || Instant::now() > until {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the incident's timeline has an entry of `kind`; returns the incident.
    async fn wait_timeline(&self, id: &str, kind: &str, timeout: Duration) -> Value {
        self.wait_incident(id, timeout, |v| {
            v["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|m| m["type"] == kind))
        })
        .await
    }

    /// Waits until the incident satisfies `done` (the view trails the engine by the changelog
    /// flush); returns it.
    async fn wait_incident(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let (_, v) = self
                .get(&format!("/api/v1/incidents/{id}"), Some(VIEWER_TOKEN))
                .await;
            if done(&v) || Instant::now() > until {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_desk_lists_the_incidents_of_both_instances() {
    let t = Topics::new(&unique("desk-two"));
    let a_id = format!("{}-a", t.prefix);
    let b_id = format!("{}-b", t.prefix);
    let a = Klaxon::start(
        &t,
        &[
            ("KLAXON__DESK__ENABLED", "false"),
            ("KLAXON_INSTANCE_ID", &a_id),
        ],
    );
    let b = Klaxon::start(
        &t,
        &[
            ("KLAXON__DESK__ENABLED", "false"),
            ("KLAXON_INSTANCE_ID", &b_id),
        ],
    );
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));
    let desk = Klaxon::start_as("desk", &t, &[]);
    desk.wait_ready(Duration::from_secs(30));
    let p = producer();
    let n = 12;
    for i in 0..n {
        let key = format!("two-{i}");
        produce(
            &p,
            &t.alerts,
            Some(&key),
            reportable(&format!("{key}-a"), &key).as_bytes(),
        )
        .await;
    }
    let api = Api::new(desk.desk_port);
    let list = api.wait_list(n, Duration::from_secs(60)).await;
    assert_eq!(list.len(), n, "the desk shows every incident: {list:#?}");
    // Both instances own some of them (3 partitions split 2 + 1).
    let owned = |k: &Klaxon| metric(k.metrics_port, "klaxon_state_incidents ").unwrap_or(0.0);
    let until = Instant::now() + Duration::from_secs(10);
    while owned(&a) + owned(&b) < n as f64 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (oa, ob) = (owned(&a), owned(&b));
    assert!(
        oa > 0.0 && ob > 0.0,
        "both instances own incidents: {oa} + {ob}"
    );
    assert_eq!(oa + ob, n as f64);
    // Nearest deadline first, countdowns from the deadline.
    let secs: Vec<i64> = list
        .iter()
        .map(|i| i["seconds_remaining"].as_i64().expect("a due report"))
        .collect();
    assert!(secs.windows(2).all(|w| w[0] <= w[1]), "{secs:?}");
    assert!(secs.iter().all(|s| (3000..=3600).contains(s)), "{secs:?}");
    let first = &list[0];
    assert_eq!(first["level"], "relatively_major");
    assert_eq!(first["level_zh"], "较大");
    assert_eq!(first["reports"][0]["kind"], "initial");
    assert_eq!(
        first["reports"][0]["recipients"][0]["id"],
        "energy-cii-protection"
    );
    // One incident in full: evidence, timers, recipients, channels, the draft, the timeline.
    let id = first["id"].as_str().unwrap();
    let v = api
        .wait_timeline(id, "report.due", Duration::from_secs(20))
        .await;
    assert_eq!(v["matched"][0]["indicator"], "cii_whole_outage_minutes");
    assert_eq!(v["draft"]["items"].as_array().map(Vec::len), Some(8));
    assert!(v["timers"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(v["channels"][0]["value"], "12387");
    assert!(v["figures"][0]["minutes"].as_f64().unwrap() >= 15.0);
    let kinds: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"incident.opened") && kinds.contains(&"report.due"),
        "{kinds:?}"
    );
    // Filters.
    let (_, v) = api
        .get(
            "/api/v1/incidents?level=major&province=%E5%B9%BF%E4%B8%9C%E7%9C%81",
            Some(VIEWER_TOKEN),
        )
        .await;
    assert_eq!(v["count"], 0);
    let (_, v) = api
        .get(
            "/api/v1/incidents?level=relatively_major&operator=gd-grid",
            Some(VIEWER_TOKEN),
        )
        .await;
    assert_eq!(v["count"], n);
    let (code, v) = api
        .get("/api/v1/incidents?colour=red", Some(VIEWER_TOKEN))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("colour")), "{v}");
    let (code, v) = api
        .get("/api/v1/incidents?level=huge", Some(VIEWER_TOKEN))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("level")), "{v}");
    drop(desk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_is_allowed_or_refused_per_command_and_by_is_refused() {
    let t = Topics::new(&unique("desk-roles"));
    let k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    for key in ["roles-1", "roles-2"] {
        produce(
            &p,
            &t.alerts,
            Some(key),
            reportable(&format!("{key}-a"), key).as_bytes(),
        )
        .await;
    }
    let api = Api::new(k.desk_port);
    let list = api.wait_list(2, Duration::from_secs(60)).await;
    assert_eq!(list.len(), 2);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let other = list[1]["id"].as_str().unwrap().to_string();

    // Authentication.
    let (code, v) = api.get("/api/v1/incidents", None).await;
    assert_eq!(code, 401, "{v}");
    let (code, _) = api.get("/api/v1/incidents", Some("wrong")).await;
    assert_eq!(code, 401);
    let (code, _) = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(code, 200, "the description is public");
    let (code, v) = api.get("/api/v1/me", Some(DUTY_TOKEN)).await;
    assert_eq!(
        (code, v["name"].as_str(), v["role"].as_str()),
        (200, Some(DUTY), Some("duty_officer"))
    );

    // The role matrix: refusals write nothing, so they come first.
    let bodies = |cmd: &str| match cmd {
        "ack" => json!({"command": "ack"}),
        "report_filed" => {
            json!({"command": "report_filed", "channel": "12387", "reference": "CN-9"})
        }
        "resolve" => json!({"command": "resolve"}),
        "dismiss" => json!({"command": "dismiss", "reason": "false positive"}),
        "regrade" => json!({"command": "regrade", "level": "major", "reason": "judgement"}),
        "merge" => json!({"command": "merge", "into": other}),
        _ => unreachable!(),
    };
    let all = [
        "ack",
        "report_filed",
        "resolve",
        "dismiss",
        "regrade",
        "merge",
    ];
    for cmd in all {
        let (code, v) = api.command(&id, VIEWER_TOKEN, bodies(cmd)).await;
        assert_eq!(code, 403, "viewer may not {cmd}: {v}");
    }
    for cmd in ["dismiss", "regrade", "merge"] {
        let (code, v) = api.command(&id, DUTY_TOKEN, bodies(cmd)).await;
        assert_eq!(code, 403, "duty officer may not {cmd}: {v}");
    }
    // Bad input, named.
    let (code, v) = api
        .command(&id, DUTY_TOKEN, json!({"command": "ack", "by": "mallory"}))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("by")), "{v}");
    let (code, v) = api
        .command(&id, DUTY_TOKEN, json!({"command": "ack", "colour": "red"}))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("colour")), "{v}");
    let (code, v) = api
        .command(&id, DUTY_TOKEN, json!({"command": "delete"}))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("command")), "{v}");
    let (code, v) = api
        .command(&id, LEAD_TOKEN, json!({"command": "dismiss"}))
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("reason")), "{v}");
    let (code, v) = api
        .command(
            &id,
            LEAD_TOKEN,
            json!({"command": "regrade", "level": "huge", "reason": "x"}),
        )
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("level")), "{v}");
    let (code, v) = api
        .command(
            &id,
            DUTY_TOKEN,
            json!({"command": "ack", "at": "yesterday"}),
        )
        .await;
    assert_eq!((code, v["field"].as_str()), (400, Some("at")), "{v}");
    let (code, v) = api
        .command(
            "INC-20990101-000000000000",
            DUTY_TOKEN,
            json!({"command": "ack"}),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    let (code, _) = api
        .get(
            "/api/v1/incidents/INC-20990101-000000000000",
            Some(VIEWER_TOKEN),
        )
        .await;
    assert_eq!(code, 404);
    let big = json!({"command": "ack", "note": "x".repeat(70 * 1024)});
    let (code, v) = api.command(&id, DUTY_TOKEN, big).await;
    assert_eq!(code, 413, "{v}");
    // Nothing above reached the topic: the timeline has no command yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, v) = api
        .get(&format!("/api/v1/incidents/{id}"), Some(VIEWER_TOKEN))
        .await;
    assert!(
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["by"].is_null()),
        "nothing half-applied: {v}"
    );
    assert_eq!(v["acknowledged"], false);

    // Allowed: the duty officer's three, then the lead's three.
    for cmd in ["ack", "report_filed", "resolve"] {
        let (code, v) = api.command(&id, DUTY_TOKEN, bodies(cmd)).await;
        assert_eq!(code, 202, "duty officer may {cmd}: {v}");
        assert_eq!(v["command"]["by"], DUTY);
        assert_eq!(v["command"]["via"], "desk");
    }
    let v = api
        .wait_timeline(&id, "incident.resolved", Duration::from_secs(20))
        .await;
    let filed = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "report.filed")
        .cloned()
        .expect("report.filed in the timeline");
    assert_eq!(
        (filed["by"].as_str(), filed["via"].as_str()),
        (Some(DUTY), Some("desk"))
    );
    assert!(filed["received_at"].is_string());
    assert_ne!(filed["backdated"], true);
    let v = api
        .wait_incident(&id, Duration::from_secs(10), |v| v["status"] == "resolved")
        .await;
    assert_eq!(v["reports"][0]["filed_by"], DUTY);
    assert_eq!(v["reports"][0]["reference"], "CN-9");
    for cmd in ["regrade", "merge"] {
        let (code, v) = api
            .command(&other, LEAD_TOKEN, {
                let mut b = bodies(cmd);
                if cmd == "merge" {
                    b["into"] = json!(id);
                }
                b
            })
            .await;
        assert_eq!(code, 202, "lead may {cmd}: {v}");
        assert_eq!(v["command"]["by"], LEAD);
    }
    let (code, v) = api.command(&id, LEAD_TOKEN, bodies("dismiss")).await;
    assert_eq!(code, 202, "lead may dismiss: {v}");
    let v = api
        .wait_timeline(&other, "incident.merged", Duration::from_secs(20))
        .await;
    let graded = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "incident.graded" && m["by"] == LEAD)
        .cloned();
    assert!(
        graded.is_some(),
        "a regrade's event carries by and via: {v}"
    );
    // Accepted and refused commands are counted.
    let accepted = metric(
        k.metrics_port,
        "klaxon_desk_commands_total{command=\"ack\",outcome=\"accepted\"}",
    );
    assert_eq!(accepted, Some(1.0));
    let forbidden = metric(
        k.metrics_port,
        "klaxon_desk_commands_total{command=\"dismiss\",outcome=\"forbidden\"}",
    );
    assert_eq!(forbidden, Some(2.0));
    // Tokens never reach the logs.
    let logs = k.logs.lock().unwrap().join("\n");
    for token in [VIEWER_TOKEN, DUTY_TOKEN, LEAD_TOKEN] {
        assert!(!logs.contains(token), "a token was logged");
    }
    assert!(logs.contains("desk wrote a command") && logs.contains(DUTY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_and_out_of_scope_commands_change_nothing() {
    let t = Topics::new(&unique("desk-sign"));
    let k = Klaxon::start(&t, &[("KLAXON__DESK__ENABLED", "false")]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    produce(
        &p,
        &t.alerts,
        None,
        reportable("sign-a", "sign-1").as_bytes(),
    )
    .await;
    let c = consumer(&t.escalations);
    read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.due")
    })
    .await;
    // Keyed by the incident, as the desk and `klaxon ctl` write them: one partition, so the
    // refusals come back in the order the commands were written.
    const INCIDENT: &str = "@sign-1";
    let cmd = |by: &str, at_s: i64| {
        json!({"command": "report_filed", "incident_id": INCIDENT, "at": at(at_s), "by": by, "channel": "12387"}).to_string()
    };
    // Unsigned.
    produce_with_signature(
        &p,
        &t.commands,
        Some(INCIDENT),
        cmd("alice", 0).as_bytes(),
        None,
    )
    .await;
    // Forged: a good signature over other bytes.
    let good = signer("test").sign(cmd("alice", 1).as_bytes());
    produce_with_signature(
        &p,
        &t.commands,
        Some(INCIDENT),
        cmd("mallory", 1).as_bytes(),
        Some(&good),
    )
    .await;
    // Out of scope: the narrow key may sign only for alice.
    let bob = cmd("bob", 2);
    let narrow = signer("narrow").sign(bob.as_bytes());
    produce_with_signature(
        &p,
        &t.commands,
        Some(INCIDENT),
        bob.as_bytes(),
        Some(&narrow),
    )
    .await;
    let got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().filter(|t| *t == "command.rejected").count() >= 3
    })
    .await;
    let reasons: Vec<String> = got
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "command.rejected")
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        reasons,
        ["unsigned", "bad_signature", "principal_not_allowed"]
    );
    assert!(
        !types(&got).contains(&"report.filed".to_string()),
        "refused commands change nothing"
    );
    for reason in ["unsigned", "bad_signature", "principal_not_allowed"] {
        let n = metric(
            k.metrics_port,
            &format!("klaxon_commands_refused_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(n, Some(1.0), "{reason} counted");
    }
    assert!(k
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("command refused") && l.contains("principal_not_allowed")));
    // Signed by alice's own key, an hour late: applied, and marked backdated.
    let late = cmd("alice", -3600);
    let sig = signer("narrow").sign(late.as_bytes());
    produce_with_signature(&p, &t.commands, Some(INCIDENT), late.as_bytes(), Some(&sig)).await;
    let got = read_until(&c, Duration::from_secs(30), |r| {
        types(r).iter().any(|t| t == "report.filed")
    })
    .await;
    let filed = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "report.filed")
        .expect("the signed filing applies");
    assert_eq!(filed["command"]["by"], "alice");
    assert_eq!(filed["command"]["via"], "narrow");
    assert_eq!(filed["command"]["backdated"], true, "{filed}");
    assert!(filed["command"]["received_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_an_event_within_a_second_of_it_being_produced() {
    let t = Topics::new(&unique("desk-sse"));
    let desk = Klaxon::start_as("desk", &t, &[]);
    desk.wait_ready(Duration::from_secs(30));
    let p = producer();
    // The topic exists before the desk looks for it.
    let warm =
        json!({"event_id": "INC-20261124-000000000001/incident.opened", "type": "incident.opened",
        "incident_id": "INC-20261124-000000000001", "at": at(0)})
        .to_string();
    produce(&p, &t.escalations, None, warm.as_bytes()).await;
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/stream", desk.desk_port))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp;
    let mut seen = String::new();
    // Let the desk find and read the topic, then time one new event.
    let until = Instant::now() + Duration::from_secs(30);
    while !seen.contains("000000000001") && Instant::now() < until {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), body.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        } else if !seen.contains("000000000001") {
            produce(&p, &t.escalations, None, warm.as_bytes()).await;
        }
    }
    assert!(seen.contains("event: hello"), "{seen}");
    let ev =
        json!({"event_id": "INC-20261124-000000000002/incident.opened", "type": "incident.opened",
        "incident_id": "INC-20261124-000000000002", "at": at(0)})
        .to_string();
    produce(&p, &t.escalations, None, ev.as_bytes()).await;
    let produced = Instant::now();
    let mut got = String::new();
    while !got.contains("000000000002") && produced.elapsed() < Duration::from_secs(5) {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(100), body.chunk()).await
        {
            got.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let took = produced.elapsed();
    assert!(got.contains("event: escalation"), "{got}");
    println!(
        "stream delivered {:.0} ms after the broker acknowledged the event",
        took.as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_secs(1), "delivered after {took:?}");
}

fn ctl(port: u16, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_klaxon"));
    cmd.arg("ctl")
        .arg("--desk")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .env_remove("KLAXON_TOKEN");
    if let Some(t) = token {
        cmd.env("KLAXON_TOKEN", t);
    }
    let out = cmd.output().expect("run klaxon ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_lists_shows_and_sends_commands_with_exit_codes_scripts_can_use() {
    let t = Topics::new(&unique("desk-ctl"));
    let k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    produce(&p, &t.alerts, None, reportable("ctl-a", "ctl-1").as_bytes()).await;
    let api = Api::new(k.desk_port);
    let list = api.wait_list(1, Duration::from_secs(60)).await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let port = k.desk_port;
    let (code, out, err) = ctl(port, Some(VIEWER_TOKEN), &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&id) && out.contains("较大 relatively_major") && out.contains("left"),
        "{out}"
    );
    let (code, out, _) = ctl(port, Some(VIEWER_TOKEN), &["--json", "list"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["incidents"][0]["id"], id.as_str());
    let (code, out, _) = ctl(port, Some(VIEWER_TOKEN), &["show", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Draft (art. 7)") && out.contains("Recipients"),
        "{out}"
    );
    // Commands, and the exit codes.
    let (code, out, err) = ctl(port, Some(DUTY_TOKEN), &["ack", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accepted"), "{out}");
    let (code, _, err) = ctl(port, Some(DUTY_TOKEN), &["dismiss", &id, "--reason", "x"]);
    assert_eq!(code, 4, "forbidden: {err}");
    assert!(err.contains("lead"), "{err}");
    let (code, _, err) = ctl(port, None, &["list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("KLAXON_TOKEN"), "{err}");
    let (code, _, _) = ctl(port, Some("wrong"), &["list"]);
    assert_eq!(code, 3);
    let (code, _, err) = ctl(
        port,
        Some(VIEWER_TOKEN),
        &["show", "INC-20990101-000000000000"],
    );
    assert_eq!(code, 5, "{err}");
    let (code, _, err) = ctl(
        port,
        Some(LEAD_TOKEN),
        &["regrade", &id, "--level", "huge", "--reason", "x"],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("level"), "{err}");
    let (code, _, err) = ctl(free_port(), Some(VIEWER_TOKEN), &["list"]);
    assert_eq!(code, 7, "{err}");
    let (code, _, err) = ctl(
        port,
        Some(DUTY_TOKEN),
        &[
            "file",
            &id,
            "--kind",
            "initial",
            "--channel",
            "12387",
            "--reference",
            "CN-7",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v = api
        .wait_timeline(&id, "report.filed", Duration::from_secs(20))
        .await;
    let filed = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "report.filed")
        .cloned()
        .unwrap();
    assert_eq!(
        (filed["by"].as_str(), filed["via"].as_str()),
        (Some(DUTY), Some("ctl"))
    );
    api.wait_incident(&id, Duration::from_secs(10), |v| {
        !v["reports"][0]["filed_at"].is_null()
    })
    .await;
    let (code, out, _) = ctl(port, Some(VIEWER_TOKEN), &["--json", "list"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["incidents"][0]["reports"][0]["filed_by"], DUTY);
    assert!(
        v["incidents"][0]["nearest_deadline"].is_null(),
        "no clock runs: {v}"
    );
    // A command the engine refuses after it was written: ctl waits for the outcome and says so
    // (exit 8), instead of leaving the user with "accepted".
    let (code, out, err) = ctl(port, Some(DUTY_TOKEN), &["file", &id, "--kind", "initial"]);
    assert_eq!(code, 8, "{out}{err}");
    assert!(
        out.contains("accepted") && err.contains("the engine refused it"),
        "{out}{err}"
    );
    let (code, out, err) = ctl(port, Some(DUTY_TOKEN), &["--json", "resolve", &id]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["outcome"]["status"], "applied", "{v}");
}

/// `klaxon ctl --key FILE --key-id ID`: the duty officer signs with her own key; the desk checks
/// and forwards the bytes untouched; the engine verifies them and records her key as `via`.
/// A key that may not sign for her, a forged signature and a `by` that is not the token's
/// principal are refused by the desk, and nothing reaches the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_signs_commands_with_its_own_key_and_the_desk_forwards_them_untouched() {
    let t = Topics::new(&unique("desk-ctl-key"));
    let k = Klaxon::start(&t, &[]);
    k.wait_ready(Duration::from_secs(60));
    let p = producer();
    produce(&p, &t.alerts, None, reportable("key-a", "key-1").as_bytes()).await;
    let api = Api::new(k.desk_port);
    let list = api.wait_list(1, Duration::from_secs(60)).await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let port = k.desk_port;
    let config = test_config();
    let key = |id: &str| config.join(format!("{id}.key")).display().to_string();
    let commands = consumer(&t.commands);

    // Refused by the desk, nothing written: a key that may sign only for alice, a forged
    // signature (dora's id, another key's bytes), a `by` that is not the token's principal.
    let (code, _, err) = ctl(
        port,
        Some(DUTY_TOKEN),
        &["--key", &key("narrow"), "--key-id", "narrow", "ack", &id],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("principal_not_allowed"), "{err}");
    let (code, _, err) = ctl(
        port,
        Some(DUTY_TOKEN),
        &["--key", &key("narrow"), "--key-id", "dora", "ack", &id],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("bad_signature"), "{err}");
    let body = json!({"command": "ack", "incident_id": id, "at": at(0), "by": LEAD}).to_string();
    let sig = signer("dora").sign(body.as_bytes());
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/incidents/{id}/commands"
        ))
        .bearer_auth(DUTY_TOKEN)
        .header("klaxon-signature", &sig)
        .body(body)
        .send()
        .await
        .expect("desk answers");
    assert_eq!(resp.status().as_u16(), 403);
    let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JSON");
    assert_eq!(v["field"], "by", "{v}");
    // A pre-signed command must carry `at` (the desk cannot add it without breaking the
    // signature).
    let body = json!({"command": "ack", "incident_id": id, "by": DUTY}).to_string();
    let sig = signer("dora").sign(body.as_bytes());
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/incidents/{id}/commands"
        ))
        .bearer_auth(DUTY_TOKEN)
        .header("klaxon-signature", &sig)
        .body(body)
        .send()
        .await
        .expect("desk answers");
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JSON");
    assert_eq!(v["field"], "at", "{v}");

    // Her own key: accepted, forwarded untouched, applied with `via` = her key.
    let (code, out, err) = ctl(
        port,
        Some(DUTY_TOKEN),
        &[
            "--key",
            &key("dora"),
            "--key-id",
            "dora",
            "file",
            &id,
            "--kind",
            "initial",
            "--channel",
            "12387",
            "--reference",
            "CN-9",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("accepted")
            && out.contains("via dora")
            && out.contains("applied: report.filed"),
        "{out}"
    );
    let v = api
        .wait_timeline(&id, "report.filed", Duration::from_secs(20))
        .await;
    let filed = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "report.filed")
        .cloned()
        .unwrap();
    assert_eq!(
        (filed["by"].as_str(), filed["via"].as_str()),
        (Some(DUTY), Some("dora"))
    );
    let records = read_until(&commands, Duration::from_secs(20), |r| !r.is_empty()).await;
    assert_eq!(records.len(), 1, "only the accepted command was written");
    let r = &records[0];
    let sig = r.headers.get("klaxon-signature").expect("signature header");
    assert!(sig.starts_with("ed25519:dora:"), "{sig}");
    assert_eq!(
        sig,
        &signer("dora").sign(&r.payload),
        "the desk wrote the bytes ctl signed, untouched"
    );
    let c = r.json();
    assert_eq!(
        (c["by"].as_str(), c["command"].as_str()),
        (Some(DUTY), Some("report_filed"))
    );
    assert!(c.get("via").is_none(), "{c}");
}
