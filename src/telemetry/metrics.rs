//! Every metric Klaxon exports, in one place. Names follow `klaxon_<noun>_<unit>`; labels come
//! from bounded sets only (topic, reason code, level, event type, report kind) — never an
//! incident id or a raw error string.

use crate::decode::DecodeError;
use crate::engine::Stats;
use crate::model::escalation::EventType;
use crate::model::{Level, ReportKind};
use crate::time::Timestamp;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Metrics {
    registry: Registry,
    pub alerts_consumed: IntCounterVec,
    pub records_processed: IntCounter,
    pub records_rejected: IntCounterVec,
    pub commands: IntCounterVec,
    /// Commands refused for their signature (docs/spec.md §9), by reason.
    pub commands_refused: IntCounterVec,
    /// Commands rejected as malformed (a field of the wrong type, `at` unreadable, an unknown
    /// name), by the first problem's code: they yield `command.rejected`, not a dead letter.
    pub commands_invalid: IntCounterVec,
    /// Commands the desk accepted (written, acknowledged) or refused, by command and outcome.
    pub desk_commands: IntCounterVec,
    /// Desk API requests by route and status class.
    pub desk_requests: IntCounterVec,
    /// Incidents in the desk's view (its global table).
    pub desk_incidents: IntGauge,
    pub escalations: IntCounterVec,
    pub incidents_open: IntGaugeVec,
    pub reports_due: IntGaugeVec,
    pub reports_overdue: IntGaugeVec,
    pub nearest_deadline: Gauge,
    pub latency: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub state_incidents: IntGauge,
    pub state_dedup_ids: IntGauge,
    pub dedup_evicted: IntCounter,
    /// Alerts read directly from a keyed alerts topic (`kafka.input_keyed`) whose key or
    /// partition was not the one Klaxon computes, sent through the repartition topic instead.
    pub records_rerouted: IntCounter,
    pub ready: IntGauge,
    pub kafka_errors: IntCounterVec,
    /// Grading events (incident.opened, incident.graded) that left a row unassessed, by row
    /// (an indicator id of the ruleset: a bounded set) and reason code.
    pub unassessed: IntCounterVec,
    pub oldest_unprocessed: GaugeVec,
    assigned: AtomicBool,
    restored: AtomicBool,
    brokers_up: AtomicBool,
    /// Per stage ([`Stage`]): progress and the batch in hand, for readiness (see
    /// [`Metrics::is_ready`]).
    stages: [StageWatch; 2],
    /// How long a stage may make no progress while input waits before `/readyz` says 503.
    stall_after_ms: AtomicU64,
    origin: std::time::Instant,
}

/// The two stages of `klaxon run`, watched for progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Router = 0,
    Processor = 1,
}

impl Stage {
    pub fn key(self) -> &'static str {
        match self {
            Stage::Router => "router",
            Stage::Processor => "processor",
        }
    }
}

/// What readiness knows of one stage: when it last moved, the broker timestamp (ms) of the
/// oldest record of the batch in hand (`i64::MIN`: none), and the topics it consumes.
#[derive(Default)]
struct StageWatch {
    progress_ms: AtomicU64,
    oldest_ms: std::sync::atomic::AtomicI64,
    in_hand: AtomicBool,
    topics: std::sync::Mutex<Vec<String>>,
}

/// Commands whose names may appear as a label; anything else counts as `unknown`.
pub const COMMANDS: &[&str] = crate::model::CommandName::NAMES;

/// `name` if it is a known command, else `unknown`: a bounded label.
pub fn command_label(name: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|c| **c == name)
        .copied()
        .unwrap_or("unknown")
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let plain_counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let m = Metrics {
            alerts_consumed: counter(
                "klaxon_alerts_consumed_total",
                "Records consumed from the input topics.",
                &["topic"],
            )?,
            records_processed: plain_counter(
                "klaxon_records_processed_total",
                "Alerts and commands applied by the engines (after the repartition hop).",
            )?,
            records_rejected: counter(
                "klaxon_records_rejected_total",
                "Records sent to the dead-letter topic, by reason.",
                &["reason"],
            )?,
            commands: counter(
                "klaxon_commands_total",
                "Commands handled, by command and outcome (applied, rejected).",
                &["command", "outcome"],
            )?,
            commands_refused: counter(
                "klaxon_commands_refused_total",
                "Commands refused for their signature (unsigned, bad_signature, principal_not_allowed).",
                &["reason"],
            )?,
            commands_invalid: counter(
                "klaxon_commands_invalid_total",
                "Commands rejected as malformed (wrong_type, missing_field, bad_value): answered with command.rejected.",
                &["reason"],
            )?,
            desk_commands: counter(
                "klaxon_desk_commands_total",
                "Commands sent through the desk, by command and outcome (accepted, or why refused).",
                &["command", "outcome"],
            )?,
            desk_requests: counter(
                "klaxon_desk_requests_total",
                "Desk API requests, by route and status code class.",
                &["route", "status"],
            )?,
            desk_incidents: gauge(
                "klaxon_desk_incidents",
                "Incidents in the desk's view (read from the changelog of every partition).",
            )?,
            escalations: counter(
                "klaxon_escalations_emitted_total",
                "Escalation events produced, by type.",
                &["type"],
            )?,
            incidents_open: gauge_vec(
                "klaxon_incidents_open",
                "Open incidents by level.",
                &["level"],
            )?,
            reports_due: gauge_vec(
                "klaxon_reports_due",
                "Reports due and not yet filed, before their deadline.",
                &["report_kind"],
            )?,
            reports_overdue: gauge_vec(
                "klaxon_reports_overdue",
                "Reports past their deadline and not filed.",
                &["report_kind"],
            )?,
            nearest_deadline: {
                let g = Gauge::new("klaxon_nearest_deadline_seconds", "Seconds left on the nearest unfiled report deadline (negative when overdue; NaN when none).")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            latency: {
                let h = Histogram::with_opts(
                    HistogramOpts::new("klaxon_processing_latency_seconds", "From a batch's receipt to the broker's acknowledgement of the escalations it caused.")
                        .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
                )?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            consumer_lag: gauge_vec(
                "klaxon_consumer_lag_records",
                "Consumer lag summed over the partitions of a topic (from librdkafka statistics).",
                &["topic"],
            )?,
            state_incidents: gauge(
                "klaxon_state_incidents",
                "Incidents held in state (open and closed, until retention).",
            )?,
            state_dedup_ids: gauge(
                "klaxon_state_dedup_ids",
                "Alert ids and command keys remembered for de-duplication.",
            )?,
            dedup_evicted: plain_counter(
                "klaxon_dedup_evicted_total",
                "Alert ids forgotten before state.dedup_window ended because state.max_dedup_ids was reached.",
            )?,
            records_rerouted: plain_counter(
                "klaxon_records_rerouted_total",
                "Alerts on a keyed alerts topic (kafka.input_keyed) whose key or partition was not the computed one, re-routed through the repartition topic.",
            )?,
            ready: gauge(
                "klaxon_ready",
                "1 when partitions are assigned, their state restored and a broker is reachable.",
            )?,
            kafka_errors: counter(
                "klaxon_kafka_errors_total",
                "Kafka client errors, by kind.",
                &["kind"],
            )?,
            unassessed: counter(
                "klaxon_grading_unassessed_total",
                "Grading events (incident.opened, incident.graded) with a guide row that could not be assessed for a missing fact, by row and reason.",
                &["row", "reason"],
            )?,
            oldest_unprocessed: {
                let g = GaugeVec::new(
                    Opts::new(
                        "klaxon_oldest_unprocessed_record_age_seconds",
                        "Age (from its broker timestamp) of the oldest record a stage has taken and not finished; 0 when none is in hand.",
                    ),
                    &["stage"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry,
            stages: Default::default(),
            stall_after_ms: AtomicU64::new(60_000),
            origin: std::time::Instant::now(),
            assigned: AtomicBool::new(false),
            restored: AtomicBool::new(false),
            brokers_up: AtomicBool::new(false),
        };
        // Pre-register bounded label values so dashboards show zeros, not gaps.
        for code in DecodeError::CODES {
            m.records_rejected.with_label_values(&[code]);
        }
        for code in ["wrong_type", "missing_field", "bad_value"] {
            m.commands_invalid.with_label_values(&[code]);
        }
        for &t in EventType::ALL {
            m.escalations.with_label_values(&[t.key()]);
        }
        for l in Level::DESCENDING {
            m.incidents_open.with_label_values(&[l.key()]);
        }
        for &k in ReportKind::ALL {
            m.reports_due.with_label_values(&[k.key()]);
            m.reports_overdue.with_label_values(&[k.key()]);
        }
        for kind in [
            "all_brokers_down",
            "transport",
            "authentication",
            "other",
            "consume",
            "commit",
            "rebalance",
        ] {
            m.kafka_errors.with_label_values(&[kind]);
        }
        for c in COMMANDS.iter().chain(std::iter::once(&"unknown")) {
            for outcome in ["applied", "rejected"] {
                m.commands.with_label_values(&[c, outcome]);
            }
        }
        m.nearest_deadline.set(f64::NAN);
        for s in [Stage::Router, Stage::Processor] {
            m.oldest_unprocessed.with_label_values(&[s.key()]).set(0.0);
            m.stages[s as usize]
                .oldest_ms
                .store(i64::MIN, Ordering::Relaxed);
        }
        Ok(m)
    }

    /// The registry, for stages that register their own metrics on the same `/metrics` (the
    /// delivery stage inside `klaxon run`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        self.update_ready();
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn command(&self, name: &str, applied: bool) {
        let name = if COMMANDS.contains(&name) {
            name
        } else {
            "unknown"
        };
        self.commands
            .with_label_values(&[name, if applied { "applied" } else { "rejected" }])
            .inc();
    }

    /// Counts the unassessed rows a grading event carries (no silent 一般).
    pub fn grading_event(&self, ev: &crate::model::Escalation) {
        if matches!(
            ev.kind,
            EventType::IncidentOpened | EventType::IncidentGraded
        ) {
            for u in &ev.unassessed {
                self.unassessed.with_label_values(&[&u.row, u.reason]).inc();
            }
        }
    }

    /// Sets the state gauges from engine statistics (summed over partitions by the caller).
    pub fn set_state(&self, s: &Stats, now: Timestamp) {
        for l in Level::DESCENDING {
            self.incidents_open
                .with_label_values(&[l.key()])
                .set(s.open_by_level[l.index()] as i64);
        }
        for &k in ReportKind::ALL {
            self.reports_due
                .with_label_values(&[k.key()])
                .set(s.reports_due[k as usize] as i64);
            self.reports_overdue
                .with_label_values(&[k.key()])
                .set(s.reports_overdue[k as usize] as i64);
        }
        self.nearest_deadline.set(
            s.nearest_deadline
                .map_or(f64::NAN, |d| d.since(now).0 as f64 / 1000.0),
        );
        self.state_incidents.set(s.incidents as i64);
        self.state_dedup_ids.set(s.dedup_ids as i64);
    }

    pub fn set_assigned(&self, v: bool) {
        self.assigned.store(v, Ordering::Relaxed);
        self.update_ready();
    }

    pub fn set_restored(&self, v: bool) {
        self.restored.store(v, Ordering::Relaxed);
        self.update_ready();
    }

    pub fn set_brokers_up(&self, v: bool) {
        self.brokers_up.store(v, Ordering::Relaxed);
        self.update_ready();
    }

    /// Ready: partitions assigned, state restored, a broker reachable — and neither stage stalled:
    /// a stage that has input waiting (consumer lag on its topics, or a batch in hand) and has
    /// made no progress for `metrics.stall_after` is not processing, whatever else is true
    /// (#18: a loop stuck building millions of events answered ready for minutes).
    pub fn is_ready(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
            && self.restored.load(Ordering::Relaxed)
            && self.brokers_up.load(Ordering::Relaxed)
            && self.stalled().is_none()
    }

    /// The first stage with input waiting and no progress for `stall_after`, if any.
    pub fn stalled(&self) -> Option<Stage> {
        let now = self.elapsed_ms();
        let limit = self.stall_after_ms.load(Ordering::Relaxed);
        [Stage::Router, Stage::Processor].into_iter().find(|&s| {
            let w = &self.stages[s as usize];
            let idle = now.saturating_sub(w.progress_ms.load(Ordering::Relaxed));
            idle > limit && (w.in_hand.load(Ordering::Relaxed) || self.lag_of(s) > 0)
        })
    }

    fn lag_of(&self, s: Stage) -> i64 {
        let topics = self.stages[s as usize]
            .topics
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        topics
            .iter()
            .map(|t| self.consumer_lag.with_label_values(&[t]).get())
            .sum()
    }

    /// Readiness watches `stage`, which consumes `topics`, and calls it stalled after `after`.
    pub fn watch_stage(&self, stage: Stage, topics: &[String], after: std::time::Duration) {
        if let Ok(mut t) = self.stages[stage as usize].topics.lock() {
            *t = topics.to_vec();
        }
        self.stall_after_ms
            .store(after.as_millis() as u64, Ordering::Relaxed);
        self.progress(stage);
    }

    /// `stage` took a batch whose oldest record the broker stamped `oldest_ms`.
    pub fn batch_taken(&self, stage: Stage, oldest_ms: Option<i64>) {
        let w = &self.stages[stage as usize];
        w.in_hand.store(true, Ordering::Relaxed);
        w.oldest_ms
            .store(oldest_ms.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    /// `stage` moved: a chunk of events sent, a round of timers.
    pub fn progress(&self, stage: Stage) {
        let w = &self.stages[stage as usize];
        w.progress_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// `stage` finished the batch in hand.
    pub fn batch_done(&self, stage: Stage) {
        self.progress(stage);
        let w = &self.stages[stage as usize];
        w.in_hand.store(false, Ordering::Relaxed);
        w.oldest_ms.store(i64::MIN, Ordering::Relaxed);
    }

    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn update_ready(&self) {
        let wall = crate::runtime::clock::wall_now().0;
        for s in [Stage::Router, Stage::Processor] {
            let oldest = self.stages[s as usize].oldest_ms.load(Ordering::Relaxed);
            let age = if oldest == i64::MIN {
                0.0
            } else {
                (wall - oldest).max(0) as f64 / 1000.0
            };
            self.oldest_unprocessed
                .with_label_values(&[s.key()])
                .set(age);
        }
        self.ready.set(i64::from(self.is_ready()));
    }
}

/// Every metric name, for tests that check dashboards and alert rules only use real series.
pub const EXPORTED: [&str; 26] = [
    "klaxon_alerts_consumed_total",
    "klaxon_records_processed_total",
    "klaxon_records_rejected_total",
    "klaxon_commands_total",
    "klaxon_escalations_emitted_total",
    "klaxon_incidents_open",
    "klaxon_reports_due",
    "klaxon_reports_overdue",
    "klaxon_nearest_deadline_seconds",
    "klaxon_processing_latency_seconds",
    "klaxon_consumer_lag_records",
    "klaxon_state_incidents",
    "klaxon_state_dedup_ids",
    "klaxon_dedup_evicted_total",
    "klaxon_records_rerouted_total",
    "klaxon_ready",
    "klaxon_kafka_errors_total",
    "klaxon_grading_unassessed_total",
    "klaxon_oldest_unprocessed_record_age_seconds",
    // The delivery stage's (registered on this registry when it runs in-process, and on
    // `klaxon deliver`'s own): see `crate::delivery::DeliveryMetrics`.
    "klaxon_deliveries_total",
    "klaxon_delivery_attempts_total",
    "klaxon_delivery_latency_seconds",
    "klaxon_delivery_dead_lettered_total",
    "klaxon_delivery_in_flight",
    "klaxon_delivery_consumer_paused",
    "klaxon_alertmanager_open_alerts",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_metrics(stall: Duration) -> Metrics {
        let m = Metrics::new().unwrap();
        m.set_assigned(true);
        m.set_restored(true);
        m.set_brokers_up(true);
        m.watch_stage(Stage::Router, &["in".to_string()], stall);
        m.watch_stage(Stage::Processor, &["rep".to_string()], stall);
        m
    }

    use std::time::Duration;

    /// #18: readiness tells the truth about a loop that stopped moving.
    #[test]
    fn a_stage_with_input_waiting_and_no_progress_is_not_ready() {
        let m = ready_metrics(Duration::from_millis(30));
        assert!(m.is_ready());
        // Idle with nothing waiting stays ready however long.
        std::thread::sleep(Duration::from_millis(60));
        assert!(m.is_ready());
        // Input waiting (lag on its topic) and no progress: not ready, and the gauge says so.
        m.consumer_lag.with_label_values(&["rep"]).set(10);
        assert_eq!(m.stalled(), Some(Stage::Processor));
        assert!(m.render().contains("klaxon_ready 0"));
        m.progress(Stage::Processor);
        assert!(m.is_ready());
        // A batch in hand that does not finish: not ready; its oldest record's age is shown.
        m.consumer_lag.with_label_values(&["rep"]).set(0);
        let ten_s_ago = crate::runtime::clock::wall_now().0 - 10_000;
        m.batch_taken(Stage::Router, Some(ten_s_ago));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.stalled(), Some(Stage::Router));
        let text = m.render();
        let age: f64 = text
            .lines()
            .find(|l| {
                l.starts_with("klaxon_oldest_unprocessed_record_age_seconds{stage=\"router\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap();
        assert!((10.0..20.0).contains(&age), "{age}");
        m.batch_done(Stage::Router);
        assert!(m.is_ready());
        assert!(m.render().contains("klaxon_ready 1"));
    }

    #[test]
    fn every_documented_series_is_exported() {
        let m = Metrics::new().unwrap();
        m.latency.observe(0.001);
        m.consumer_lag.with_label_values(&["klaxon.alerts"]).set(0);
        m.alerts_consumed
            .with_label_values(&["klaxon.alerts"])
            .inc();
        m.command("ack", true);
        m.kafka_errors.with_label_values(&["transport"]).inc();
        m.unassessed
            .with_label_values(&["cii_whole_outage_minutes", "asset_kind_missing"])
            .inc();
        let delivery = crate::delivery::DeliveryMetrics::new(m.registry()).unwrap();
        delivery.touch(&["alertmanager".to_string()]);
        let text = m.render();
        for name in EXPORTED {
            assert!(text.contains(name), "{name} missing from /metrics");
        }
    }
}
