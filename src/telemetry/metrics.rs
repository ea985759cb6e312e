//! Every metric Klaxon exports, in one place. Names follow `klaxon_<noun>_<unit>`; labels come
//! from bounded sets only (topic, reason code, level, event type, report kind) — never an
//! incident id or a raw error string.

use crate::decode::DecodeError;
use crate::engine::Stats;
use crate::model::escalation::EventType;
use crate::model::{Level, ReportKind};
use crate::time::Timestamp;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Metrics {
    registry: Registry,
    pub alerts_consumed: IntCounterVec,
    pub records_processed: IntCounter,
    pub records_rejected: IntCounterVec,
    pub commands: IntCounterVec,
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
    pub ready: IntGauge,
    pub kafka_errors: IntCounterVec,
    /// Grading events (incident.opened, incident.graded) that left a row unassessed, by row
    /// (an indicator id of the ruleset: a bounded set) and reason code.
    pub unassessed: IntCounterVec,
    assigned: AtomicBool,
    restored: AtomicBool,
    brokers_up: AtomicBool,
}

/// Commands whose names may appear as a label; anything else counts as `unknown`.
pub const COMMANDS: [&str; 7] = [
    "ack",
    "report_filed",
    "follow_up",
    "resolve",
    "dismiss",
    "regrade",
    "merge",
];

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
            registry,
            assigned: AtomicBool::new(false),
            restored: AtomicBool::new(false),
            brokers_up: AtomicBool::new(false),
        };
        // Pre-register bounded label values so dashboards show zeros, not gaps.
        for code in DecodeError::CODES {
            m.records_rejected.with_label_values(&[code]);
        }
        for t in EventType::ALL {
            m.escalations.with_label_values(&[t.key()]);
        }
        for l in Level::DESCENDING {
            m.incidents_open.with_label_values(&[l.key()]);
        }
        for k in ReportKind::ALL {
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
        Ok(m)
    }

    pub fn render(&self) -> String {
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
        for k in ReportKind::ALL {
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

    pub fn is_ready(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
            && self.restored.load(Ordering::Relaxed)
            && self.brokers_up.load(Ordering::Relaxed)
    }

    fn update_ready(&self) {
        self.ready.set(i64::from(self.is_ready()));
    }
}

/// Every metric name, for tests that check dashboards and alert rules only use real series.
pub const EXPORTED: [&str; 17] = [
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
    "klaxon_ready",
    "klaxon_kafka_errors_total",
    "klaxon_grading_unassessed_total",
];

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = m.render();
        for name in EXPORTED {
            assert!(text.contains(name), "{name} missing from /metrics");
        }
    }
}
