//! Settings of the delivery stage (`[delivery]` in `default.toml`, docs/spec.md §10): where pages go
//! (Prometheus Alertmanager, webhooks), how hard to try, and how much to hold at once.

use crate::time::Millis;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Run the delivery stage inside `klaxon run` (`klaxon deliver` runs it on its own).
    #[serde(default)]
    pub enabled: bool,
    /// Its own consumer group on `topics.escalations` (default `<kafka.group_id>.delivery`), so
    /// it reads at its own pace and never holds up the engine.
    #[serde(default)]
    pub group_id: Option<String>,
    /// The most events being delivered at once; past it the consumer is paused (back-pressure
    /// instead of an unbounded queue) and resumed at half.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Attempts per event and sink before it goes to `topics.delivery_dead_letter`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry waits about this long, each later one twice as long (with jitter), up to
    /// `max_backoff`.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: String,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
    /// Per HTTP request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    /// The duty desk's address, for the links in alerts (`<desk_url>/incidents/<id>`).
    #[serde(default = "default_desk_url")]
    pub desk_url: String,
    /// `/metrics`, `/healthz`, `/readyz` of `klaxon deliver` (in `klaxon run` the service's own).
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub alertmanager: AlertmanagerSettings,
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// The durations above, parsed once by [`validate`], which reports every bad one.
    #[serde(skip)]
    pub durations: DeliveryDurations,
}

/// `initial_backoff`, `max_backoff`, `request_timeout` and `alertmanager.resend_every` as
/// durations. [`Default`] is their defaults, for the moment between deserializing and
/// validating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryDurations {
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub resend_every: std::time::Duration,
}

impl Default for DeliveryDurations {
    fn default() -> Self {
        DeliveryDurations {
            initial_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(60),
            request_timeout: std::time::Duration::from_secs(10),
            resend_every: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Base URL (`http://alertmanager:9093`); empty: no Alertmanager.
    #[serde(default)]
    pub url: String,
    /// Open alerts are re-sent this often, with `endsAt` four periods ahead (as Prometheus does),
    /// so an alert stays firing while its obligation is open and lapses only if Klaxon stops.
    #[serde(default = "default_resend_every")]
    pub resend_every: String,
    /// Alerts per POST.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The most open alerts kept for re-sending (memory bound); past it the oldest is dropped
    /// and lapses at its `endsAt`.
    #[serde(default = "default_max_open_alerts")]
    pub max_open_alerts: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// A short name: the `sink` label of the metrics and the dead-letter header.
    pub name: String,
    pub url: String,
    /// Event types sent (default: `escalation.page`).
    #[serde(default = "default_webhook_events")]
    pub events: Vec<String>,
    /// The environment variable holding the HMAC secret (never in a file, never logged).
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl Default for AlertmanagerSettings {
    fn default() -> Self {
        AlertmanagerSettings {
            url: String::new(),
            resend_every: default_resend_every(),
            max_batch: default_max_batch(),
            max_open_alerts: default_max_open_alerts(),
        }
    }
}

fn default_max_in_flight() -> usize {
    256
}
fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff() -> String {
    "1s".into()
}
fn default_max_backoff() -> String {
    "1m".into()
}
fn default_request_timeout() -> String {
    "10s".into()
}
fn default_desk_url() -> String {
    "http://127.0.0.1:8090".into()
}
fn default_listen() -> String {
    "127.0.0.1:9465".into()
}
fn default_resend_every() -> String {
    "1m".into()
}
fn default_max_batch() -> usize {
    64
}
fn default_max_open_alerts() -> usize {
    10_000
}
fn default_webhook_events() -> Vec<String> {
    vec!["escalation.page".into()]
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            enabled: false,
            group_id: None,
            max_in_flight: default_max_in_flight(),
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            request_timeout: default_request_timeout(),
            desk_url: default_desk_url(),
            listen: default_listen(),
            alertmanager: AlertmanagerSettings::default(),
            webhooks: Vec::new(),
            durations: DeliveryDurations::default(),
        }
    }
}

impl DeliverySettings {
    pub fn initial_backoff(&self) -> std::time::Duration {
        self.durations.initial_backoff
    }
    pub fn max_backoff(&self) -> std::time::Duration {
        self.durations.max_backoff
    }
    pub fn request_timeout(&self) -> std::time::Duration {
        self.durations.request_timeout
    }
    pub fn resend_every(&self) -> std::time::Duration {
        self.durations.resend_every
    }
    /// Whether any sink is configured.
    pub fn has_sinks(&self) -> bool {
        !self.alertmanager.url.trim().is_empty() || !self.webhooks.is_empty()
    }
}

fn http_url_ok(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len()
}

/// Every problem, as (key, problem); fills [`DeliverySettings::durations`].
pub fn validate(d: &mut DeliverySettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |k: String, p: String| out.push((k, p));
    let mut parsed = DeliveryDurations::default();
    for (key, v, into) in [
        (
            "delivery.initial_backoff",
            &d.initial_backoff,
            &mut parsed.initial_backoff,
        ),
        (
            "delivery.max_backoff",
            &d.max_backoff,
            &mut parsed.max_backoff,
        ),
        (
            "delivery.request_timeout",
            &d.request_timeout,
            &mut parsed.request_timeout,
        ),
        (
            "delivery.alertmanager.resend_every",
            &d.alertmanager.resend_every,
            &mut parsed.resend_every,
        ),
    ] {
        match Millis::parse_human(v) {
            Ok(m) if m.0 > 0 => *into = std::time::Duration::from_millis(m.0 as u64),
            Ok(_) => add(key.into(), "must be positive".into()),
            Err(e) => add(key.into(), e),
        }
    }
    d.durations = parsed;
    if d.max_in_flight == 0 {
        add("delivery.max_in_flight".into(), "must be positive".into());
    }
    if d.max_attempts == 0 {
        add("delivery.max_attempts".into(), "must be at least 1".into());
    }
    if d.alertmanager.max_batch == 0 {
        add(
            "delivery.alertmanager.max_batch".into(),
            "must be positive".into(),
        );
    }
    if d.alertmanager.max_open_alerts == 0 {
        add(
            "delivery.alertmanager.max_open_alerts".into(),
            "must be positive".into(),
        );
    }
    let am = d.alertmanager.url.trim();
    if !am.is_empty() && !http_url_ok(am) {
        add(
            "delivery.alertmanager.url".into(),
            format!("expected an http:// or https:// URL, got {am:?}"),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in d.webhooks.iter().enumerate() {
        let key = format!("delivery.webhooks[{i}]");
        if w.name.trim().is_empty() || w.name == "alertmanager" {
            add(
                format!("{key}.name"),
                "a non-empty name other than \"alertmanager\" is required".into(),
            );
        } else if !names.insert(w.name.clone()) {
            add(
                format!("{key}.name"),
                format!("duplicate webhook name {:?}", w.name),
            );
        }
        if !http_url_ok(w.url.trim()) {
            add(
                format!("{key}.url"),
                format!("expected an http:// or https:// URL, got {:?}", w.url),
            );
        }
        for (j, t) in w.events.iter().enumerate() {
            if !crate::model::escalation::EventType::ALL
                .iter()
                .any(|e| e.key() == t)
            {
                add(
                    format!("{key}.events[{j}]"),
                    format!("unknown event type {t:?}"),
                );
            }
        }
        if let Some(env) = &w.secret_env {
            if env.trim().is_empty() {
                add(
                    format!("{key}.secret_env"),
                    "names the environment variable holding the secret: must not be empty".into(),
                );
            }
        }
    }
    out
}
