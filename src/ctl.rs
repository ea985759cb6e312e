//! `klaxon ctl`: the desk from a terminal or a script (docs/spec.md §9). It talks to the desk's API
//! only (`--desk URL`, default `$KLAXON_DESK`, else `http://127.0.0.1:8090`), with the token in
//! `$KLAXON_TOKEN`; the desk authenticates, checks the role, sets `by`, signs and writes.
//!
//! With `--key FILE --key-id ID` (a key of your own from `klaxon keygen`, listed in
//! `[[commands.keys]]` with your principal), ctl signs each command itself: it asks the desk who
//! the token is (`/api/v1/me`), writes the whole command (`by`, `incident_id`, `at`), signs those
//! bytes and sends them with the `klaxon-signature` header; the desk checks and forwards them
//! untouched, and the events record your key's id as `via`. Your command is then attributable to
//! your key, not only to the desk's. The key file never leaves the machine ctl runs on.
//!
//! The HTTP client is `reqwest` with rustls: a well-kept client that speaks HTTPS without the
//! system's OpenSSL, so `ctl` reaches a desk behind a TLS-terminating proxy from any machine.
//!
//! Exit codes (stable, for scripts):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (a command: written and acknowledged by Kafka) |
//! | 2 | wrong usage (a flag, an argument) |
//! | 3 | not authenticated: `$KLAXON_TOKEN` unset, or the desk does not know the token |
//! | 4 | not allowed: the token's role may not send this command |
//! | 5 | no such incident |
//! | 6 | the desk refused the input (a field is wrong; the message names it) |
//! | 7 | the desk could not be reached, or could not write the command (nothing was written) |
//! | 8 | the engine refused the command after it was written (`command.rejected`: nothing changed) |
//!
//! After a command is written, ctl waits up to `--wait` seconds (default 10; 0: do not wait) for
//! its outcome in the incident's timeline: applied, or refused by the engine with the reason (a
//! filing with no report outstanding, a bad signature…). Without that a user reads "accepted" and
//! walks away from a command that changed nothing.

use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

pub const EXIT_OK: u8 = 0;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNAUTHENTICATED: u8 = 3;
pub const EXIT_FORBIDDEN: u8 = 4;
pub const EXIT_NOT_FOUND: u8 = 5;
pub const EXIT_INVALID: u8 = 6;
pub const EXIT_UNAVAILABLE: u8 = 7;
pub const EXIT_REJECTED: u8 = 8;

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The desk's base URL.
    #[arg(long, env = "KLAXON_DESK", default_value = "http://127.0.0.1:8090")]
    pub desk: String,
    /// Print the desk's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Sign commands with this private key (`klaxon keygen --out FILE`) instead of letting the
    /// desk sign them. Needs `--key-id`.
    #[arg(long, global = true, env = "KLAXON_KEY", requires = "key_id")]
    pub key: Option<std::path::PathBuf>,
    /// The id of `--key` in `[[commands.keys]]`.
    #[arg(long, global = true, env = "KLAXON_KEY_ID", requires = "key")]
    pub key_id: Option<String>,
    /// Seconds to wait for a command's outcome (applied, or refused by the engine); 0: do not.
    #[arg(long, global = true, default_value_t = 10)]
    pub wait: u64,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Open incidents, nearest deadline first, with countdowns.
    List {
        /// open (default: incidents open or with a report still due), closed, all.
        #[arg(long)]
        status: Option<String>,
        /// A level (major, relatively_major, …), or several separated by commas.
        #[arg(long)]
        level: Option<String>,
        /// Operator id.
        #[arg(long)]
        operator: Option<String>,
        /// Province, e.g. 广东省.
        #[arg(long)]
        province: Option<String>,
    },
    /// One incident: reports, figures, evidence, timers, recipients, channels, draft, timeline.
    Show { id: String },
    /// Acknowledge an incident.
    Ack {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Record that a report was filed (stops its countdown).
    File {
        id: String,
        /// initial, follow_up or summary (default: the oldest outstanding).
        #[arg(long)]
        kind: Option<String>,
        /// How it was filed (e.g. 12387).
        #[arg(long)]
        channel: Option<String>,
        /// The authority's reference number.
        #[arg(long)]
        reference: Option<String>,
        /// When it was filed, RFC 3339 (default: now). Earlier than now by more than the
        /// tolerance is recorded as backdated.
        #[arg(long)]
        at: Option<String>,
        /// The report carried items （一）（二） only: a supplement (补报) falls due.
        #[arg(long)]
        partial: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Important new circumstances after a filed report: a follow-up report (续报) falls due.
    FollowUp {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// The incident has ended (a due report still stands).
    Resolve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// A false positive: stops every timer (lead).
    Dismiss {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Set the level by judgement (lead); `--level computed` hands back to the figures.
    Regrade {
        id: String,
        #[arg(long)]
        level: String,
        #[arg(long)]
        reason: String,
    },
    /// Merge the incident into another (lead); outstanding reports move with it.
    Merge {
        id: String,
        #[arg(long)]
        into: String,
    },
}

/// Something went wrong, in plain words, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Runs one `ctl` invocation; returns the exit code.
pub async fn run(args: CtlArgs) -> u8 {
    match run_inner(&args).await {
        Ok(out) => {
            print!("{out}");
            EXIT_OK
        }
        Err(f) => {
            eprintln!("klaxon ctl: {}", f.message);
            f.code
        }
    }
}

async fn run_inner(args: &CtlArgs) -> Result<String, Failure> {
    let token = std::env::var("KLAXON_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            fail(
                EXIT_UNAUTHENTICATED,
                "no token: set KLAXON_TOKEN to your desk token",
            )
        })?;
    let base = args.desk.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(fail(
            EXIT_USAGE,
            format!("--desk {base:?} is not an http:// or https:// URL"),
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("klaxon-ctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            fail(
                EXIT_UNAVAILABLE,
                format!("cannot start the HTTP client: {e}"),
            )
        })?;
    let desk = Client {
        http: client,
        base,
        token,
    };
    match &args.action {
        Action::List {
            status,
            level,
            operator,
            province,
        } => {
            let mut q: Vec<(&str, &str)> = Vec::new();
            for (k, v) in [
                ("status", status),
                ("level", level),
                ("operator", operator),
                ("province", province),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let v = desk.get("/api/v1/incidents", &q).await?;
            Ok(if args.json {
                format!("{v}\n")
            } else {
                render_list(&v)
            })
        }
        Action::Show { id } => {
            let v = desk
                .get(&format!("/api/v1/incidents/{}", path_segment(id)), &[])
                .await?;
            Ok(if args.json {
                format!("{v}\n")
            } else {
                render_detail(&v)
            })
        }
        other => {
            let Some((id, mut body)) = command_body(other) else {
                return Err(fail(EXIT_USAGE, "not a command"));
            };
            let path = format!("/api/v1/incidents/{}/commands", path_segment(id));
            let v = match (&args.key, &args.key_id) {
                (Some(file), Some(key_id)) => {
                    let signer = crate::signing::CommandSigner::load(file, key_id)
                        .map_err(|e| fail(EXIT_USAGE, format!("--key {e}")))?;
                    let me = desk.get("/api/v1/me", &[]).await?;
                    let by = me["name"].as_str().unwrap_or_default().to_string();
                    if let Value::Object(o) = &mut body {
                        o.insert("incident_id".into(), Value::String(id.to_string()));
                        o.insert("by".into(), Value::String(by));
                        if !o.contains_key("at") {
                            let now = chrono::Utc::now()
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                            o.insert("at".into(), Value::String(now));
                        }
                    }
                    let bytes = body.to_string().into_bytes();
                    let signature = signer.sign(&bytes);
                    desk.post_signed(&path, bytes, &signature).await?
                }
                _ => desk.post(&path, &body).await?,
            };
            let outcome = match args.wait {
                0 => None,
                secs => Some(desk.outcome(&v["command"], Duration::from_secs(secs)).await),
            };
            let c = &v["command"];
            let mut out = if args.json {
                let mut v = v.clone();
                if let (Value::Object(o), Some(oc)) = (&mut v, &outcome) {
                    o.insert("outcome".into(), oc.json());
                }
                format!("{v}\n")
            } else {
                format!(
                    "{} {} accepted: written as {} at {} (via {})\n",
                    s(&c["command"]),
                    s(&c["incident_id"]),
                    s(&c["by"]),
                    s(&c["at"]),
                    s(&c["via"]),
                )
            };
            match outcome {
                Some(Outcome::Rejected(reason)) => {
                    print!("{out}");
                    Err(fail(
                        EXIT_REJECTED,
                        format!("the engine refused it, nothing changed: {reason}"),
                    ))
                }
                Some(Outcome::Applied(kind)) if !args.json => {
                    let _ = writeln!(out, "applied: {kind}");
                    Ok(out)
                }
                Some(Outcome::Pending) | None if !args.json => {
                    let _ = writeln!(
                        out,
                        "not seen applied yet: `klaxon ctl show {}` shows the outcome",
                        s(&c["incident_id"])
                    );
                    Ok(out)
                }
                _ => Ok(out),
            }
        }
    }
}

/// Only the characters an incident id has; anything else is percent-encoded.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The command body of a command action (`None` for `list` and `show`).
fn command_body(a: &Action) -> Option<(&str, Value)> {
    let mut body = serde_json::Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            body.insert(k.into(), Value::String(v.clone()));
        }
    };
    let (id, command) = match a {
        Action::Ack { id, note } => {
            put("note", note);
            (id, "ack")
        }
        Action::File {
            id,
            kind,
            channel,
            reference,
            at,
            note,
            ..
        } => {
            put("report_kind", kind);
            put("channel", channel);
            put("reference", reference);
            put("at", at);
            put("note", note);
            (id, "report_filed")
        }
        Action::Resolve { id, note } => {
            put("note", note);
            (id, "resolve")
        }
        Action::FollowUp { id, reason } => {
            put("reason", &Some(reason.clone()));
            (id, "follow_up")
        }
        Action::Dismiss { id, reason } => {
            put("reason", &Some(reason.clone()));
            (id, "dismiss")
        }
        Action::Regrade { id, level, reason } => {
            put("level", &Some(level.clone()));
            put("reason", &Some(reason.clone()));
            (id, "regrade")
        }
        Action::Merge { id, into } => {
            put("into", &Some(into.clone()));
            (id, "merge")
        }
        Action::List { .. } | Action::Show { .. } => return None,
    };
    if let Action::File { partial: true, .. } = a {
        body.insert("partial".into(), Value::Bool(true));
    }
    body.insert("command".into(), Value::String(command.into()));
    Some((id.as_str(), Value::Object(body)))
}

/// What became of a written command.
enum Outcome {
    /// The first event it caused (`incident.acknowledged`, `report.filed`, …).
    Applied(String),
    /// `command.rejected`, with the reason.
    Rejected(String),
    /// Nothing in the timeline yet.
    Pending,
}

impl Outcome {
    fn json(&self) -> Value {
        match self {
            Outcome::Applied(kind) => serde_json::json!({"status": "applied", "event": kind}),
            Outcome::Rejected(reason) => {
                serde_json::json!({"status": "rejected", "reason": reason})
            }
            Outcome::Pending => serde_json::json!({"status": "pending"}),
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, Failure> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token);
        self.send(req).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(crate::desk::api::CLIENT_HEADER, "ctl")
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// Watches the incident's timeline for the events of `command` (the desk's echo of what it
    /// wrote: same `command`, `by` and `at`) until `wait` passes. Errors while watching only
    /// mean the outcome is not known.
    async fn outcome(&self, command: &Value, wait: Duration) -> Outcome {
        let id = s(&command["incident_id"]);
        let path = format!("/api/v1/incidents/{}", path_segment(id));
        let until = std::time::Instant::now() + wait;
        loop {
            if let Ok(v) = self.get(&path, &[]).await {
                let mine = v["timeline"].as_array().and_then(|t| {
                    t.iter().find(|m| {
                        m["command"] == command["command"]
                            && m["by"] == command["by"]
                            && m["at"] == command["at"]
                    })
                });
                if let Some(m) = mine {
                    return match s(&m["type"]) {
                        "command.rejected" => Outcome::Rejected(s(&m["detail"]).to_string()),
                        kind => Outcome::Applied(kind.to_string()),
                    };
                }
            }
            if std::time::Instant::now() >= until {
                return Outcome::Pending;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A pre-signed command: `bytes` exactly as signed.
    async fn post_signed(
        &self,
        path: &str,
        bytes: Vec<u8>,
        signature: &str,
    ) -> Result<Value, Failure> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(crate::desk::api::CLIENT_HEADER, "ctl")
            .header(crate::signing::HEADER, signature)
            .header("content-type", "application/json")
            .body(bytes);
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req.send().await.map_err(|e| {
            fail(
                EXIT_UNAVAILABLE,
                format!(
                    "cannot reach the desk at {} ({}); is `klaxon run` or `klaxon desk` running, and is --desk right?",
                    self.base,
                    plain_error(&e)
                ),
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            fail(
                EXIT_UNAVAILABLE,
                format!("the desk's answer was cut off: {}", plain_error(&e)),
            )
        })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let said = v["error"].as_str().unwrap_or(text.trim()).to_string();
        let field = v["field"]
            .as_str()
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        Err(match status {
            401 => fail(
                EXIT_UNAUTHENTICATED,
                format!("the desk does not accept this token: {said}"),
            ),
            403 => fail(EXIT_FORBIDDEN, format!("not allowed: {said}")),
            404 => fail(EXIT_NOT_FOUND, format!("not found: {said}")),
            400 | 413 | 409 | 422 => {
                fail(EXIT_INVALID, format!("the desk refused it: {said}{field}"))
            }
            _ => fail(
                EXIT_UNAVAILABLE,
                format!("the desk could not do it (HTTP {status}): {said}"),
            ),
        })
    }
}

/// A reqwest error without the URL and token noise.
fn plain_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within 30 s".into()
    } else if e.is_connect() {
        "connection refused or host unreachable".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            let _ = write!(s, ": {inner}");
            src = inner.source();
        }
        s
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// `1h 05m left`, `12m 30s left`, `OVERDUE 3m` — a countdown a person reads at a glance.
pub fn countdown(seconds: i64) -> String {
    let a = seconds.unsigned_abs();
    let (d, h, m, sec) = (a / 86_400, a % 86_400 / 3600, a % 3600 / 60, a % 60);
    let body = if d > 0 {
        format!("{d}d {h:02}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {sec:02}s")
    };
    if seconds < 0 {
        format!("OVERDUE {body}")
    } else {
        format!("{body} left")
    }
}

fn level_text(v: &Value) -> String {
    format!("{} {}", s(&v["level_zh"]), s(&v["level"]))
}

/// Pads to `width` display columns (CJK characters take two).
fn pad(text: &str, width: usize) -> String {
    let w: usize = text.chars().map(char_width).sum();
    let mut out = text.to_string();
    for _ in w..width {
        out.push(' ');
    }
    out
}

fn char_width(c: char) -> usize {
    if matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6)
    {
        2
    } else {
        1
    }
}

fn truncate(text: &str, width: usize) -> String {
    let mut w = 0;
    let mut out = String::new();
    for c in text.chars() {
        let cw = char_width(c);
        if w + cw > width {
            out.push('…');
            break;
        }
        w += cw;
        out.push(c);
    }
    out
}

fn render_list(v: &Value) -> String {
    let empty = Vec::new();
    let list = v["incidents"].as_array().unwrap_or(&empty);
    let mut out = String::new();
    let _ = writeln!(out, "{} incident(s) at {}", list.len(), s(&v["now"]));
    if list.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{}{}{}{}{}OPERATOR / TITLE",
        pad("COUNTDOWN", 18),
        pad("LEVEL 级别", 26),
        pad("REPORT", 11),
        pad("STATUS", 10),
        pad("ID", 27),
    );
    for inc in list {
        let (count, report) = match inc["seconds_remaining"].as_i64() {
            Some(secs) => {
                let r = inc["reports"]
                    .as_array()
                    .and_then(|rs| {
                        rs.iter()
                            .filter(|r| r["outstanding"].as_bool() == Some(true))
                            .min_by_key(|r| r["seconds_remaining"].as_i64().unwrap_or(i64::MAX))
                    })
                    .map(|r| s(&r["label"]).to_string())
                    .unwrap_or_default();
                (countdown(secs), r)
            }
            None => ("-".to_string(), String::new()),
        };
        let mut status = s(&inc["status"]).to_string();
        if inc["acknowledged"].as_bool() == Some(true) && status == "open" {
            status.push_str(" ack");
        }
        let who = format!(
            "{} {}",
            inc["operator"]["name"]
                .as_str()
                .or(inc["operator"]["id"].as_str())
                .unwrap_or("-"),
            inc["title"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "{}{}{}{}{}{}",
            pad(&count, 18),
            pad(&level_text(inc), 26),
            pad(&report, 11),
            pad(&status, 10),
            pad(s(&inc["id"]), 27),
            truncate(&who, 60)
        );
    }
    out
}

fn render_detail(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}",
        s(&v["id"]),
        v["title"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "  level {}   status {}{}   opened {}   alerts {}",
        level_text(v),
        s(&v["status"]),
        if v["acknowledged"].as_bool() == Some(true) {
            " (acknowledged)"
        } else {
            ""
        },
        s(&v["opened_at"]),
        v["alert_count"]
    );
    let op = &v["operator"];
    let _ = writeln!(
        out,
        "  operator {} ({}, {}, {})",
        op["name"].as_str().unwrap_or("-"),
        op["id"].as_str().unwrap_or("-"),
        s(&op["class"]),
        op["province"].as_str().unwrap_or("-")
    );
    let empty = Vec::new();
    let arr = |k: &str| v[k].as_array().unwrap_or(&empty).clone();
    let reports = arr("reports");
    if !reports.is_empty() {
        let _ = writeln!(out, "Reports:");
        for r in &reports {
            let state = if let Some(at) = r["filed_at"].as_str() {
                let mut t = format!("filed {at} by {}", r["filed_by"].as_str().unwrap_or("-"));
                if let Some(rec) = r["filed_received_at"].as_str() {
                    let _ = write!(t, " (received {rec})");
                }
                if r["backdated"].as_bool() == Some(true) {
                    t.push_str(" BACKDATED");
                }
                if r["filed_late"].as_bool() == Some(true) {
                    t.push_str(" LATE");
                }
                t
            } else if r["cancelled"].as_bool() == Some(true) {
                "cancelled".to_string()
            } else {
                countdown(r["seconds_remaining"].as_i64().unwrap_or(0))
            };
            let _ = writeln!(
                out,
                "  {:<12} due {}  {}",
                s(&r["label"]),
                s(&r["deadline"]),
                state
            );
        }
    }
    let recipients = arr("recipients");
    if !recipients.is_empty() {
        let names: Vec<&str> = recipients.iter().map(|r| s(&r["name"])).collect();
        let _ = writeln!(out, "Recipients: {}", names.join("、"));
    }
    let channels = arr("channels");
    if !channels.is_empty() {
        let list: Vec<String> = channels
            .iter()
            .map(|c| format!("{} {}", s(&c["kind"]), s(&c["value"])))
            .collect();
        let _ = writeln!(out, "Channels: {}", list.join(" · "));
    }
    let matched = arr("matched");
    if !matched.is_empty() {
        let _ = writeln!(out, "Evidence:");
        for m in &matched {
            let _ = writeln!(
                out,
                "  {} = {} (threshold ≥ {}) → {}",
                s(&m["indicator"]),
                m["value"],
                m["threshold"],
                s(&m["level"])
            );
        }
    }
    let timers = arr("timers");
    if !timers.is_empty() {
        let _ = writeln!(out, "Pending timers:");
        for t in &timers {
            let _ = writeln!(
                out,
                "  {} {} {}  ({})",
                s(&t["at"]),
                s(&t["kind"]),
                t["report"].as_str().unwrap_or(""),
                countdown(t["seconds_remaining"].as_i64().unwrap_or(0))
            );
        }
    }
    let timeline = arr("timeline");
    if !timeline.is_empty() {
        let _ = writeln!(out, "Timeline:");
        for m in &timeline {
            let mut line = format!("  {}  {}", s(&m["at"]), s(&m["type"]));
            if let Some(k) = m["report_kind"].as_str() {
                let _ = write!(line, " {k}");
            }
            if let Some(by) = m["by"].as_str() {
                let _ = write!(line, "  by {by} via {}", m["via"].as_str().unwrap_or("-"));
            }
            if let Some(r) = m["received_at"].as_str() {
                let _ = write!(line, " (received {r})");
            }
            if m["backdated"].as_bool() == Some(true) {
                line.push_str(" BACKDATED");
            }
            if let Some(d) = m["detail"].as_str() {
                let _ = write!(line, " — {d}");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(items) = v["draft"]["items"].as_array() {
        let _ = writeln!(out, "Draft (art. 7):");
        for it in items {
            let _ = writeln!(
                out,
                "  {}. {}\n     {}",
                it["item"],
                s(&it["title"]),
                s(&it["content"])
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_at_a_glance() {
        assert_eq!(countdown(3900), "1h 05m left");
        assert_eq!(countdown(750), "12m 30s left");
        assert_eq!(countdown(-180), "OVERDUE 3m 00s");
        assert_eq!(countdown(2 * 86_400 + 3600), "2d 01h left");
    }

    #[test]
    fn chinese_text_is_padded_by_display_width() {
        assert_eq!(pad("重大 major", 12), "重大 major  ");
    }

    #[test]
    fn the_body_carries_no_by() {
        let action = Action::Dismiss {
            id: "INC-1".into(),
            reason: "test".into(),
        };
        let (id, body) = command_body(&action).unwrap();
        assert_eq!(id, "INC-1");
        assert_eq!(
            body,
            serde_json::json!({"command": "dismiss", "reason": "test"})
        );
    }
}
