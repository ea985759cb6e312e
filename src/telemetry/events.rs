//! Internal events: each thing the service tells its operators about, as a small struct whose
//! `emit` writes the metric and the log line together (vector's `internal_events` habit). A call
//! site says what happened; how it is counted and worded lives here, once, so the count and the
//! line cannot drift apart. Labels are bounded: reason codes, kinds, sink names from the config;
//! ids and free text go only into the log line. Lines that clients or the network can repeat
//! without end go through the [`ratelimit`](super::ratelimit) limiters; the metrics count every
//! occurrence.

use super::ratelimit::{BAD_INPUT, CLIENT_ERRORS};
use super::Metrics;
use crate::decode::DecodeError;
use crate::delivery::DeliveryMetrics;

/// An input record that cannot be used went to the dead-letter topic.
pub struct RecordDeadLettered<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a DecodeError,
}

impl RecordDeadLettered<'_> {
    pub fn emit(self, metrics: &Metrics) {
        let code = self.error.code();
        metrics.records_rejected.with_label_values(&[code]).inc();
        // A flood of bad records writes a few lines per reason and interval, then a summary.
        if BAD_INPUT.admit(("record dead-lettered", code)) {
            tracing::warn!(topic = self.topic, partition = self.partition, offset = self.offset, reason = code, error = %self.error, "record dead-lettered");
        }
    }
}

/// A record of the repartition topic that does not decode (only across incompatible versions):
/// skipped, as the router had validated it.
pub struct RepartitionRecordSkipped<'a> {
    pub partition: i32,
    pub offset: i64,
    pub error: &'a DecodeError,
}

impl RepartitionRecordSkipped<'_> {
    /// Logged only: `klaxon_records_rejected_total` counts dead-lettered input records.
    pub fn emit(self) {
        let code = self.error.code();
        if BAD_INPUT.admit(("undecodable repartition record", code)) {
            tracing::error!(partition = self.partition, offset = self.offset, error = %self.error, "undecodable record on the repartition topic skipped");
        }
    }
}

/// A keyed alert whose key or partition is not the routing key computed from it went through
/// the repartition topic after all.
pub struct AlertRerouted {
    pub partition: i32,
    pub offset: i64,
}

impl AlertRerouted {
    pub fn emit(self, metrics: &Metrics) {
        metrics.records_rerouted.inc();
        tracing::debug!(
            partition = self.partition,
            offset = self.offset,
            "keyed alert re-routed: its key or partition is not the routing key computed from it"
        );
    }
}

/// A command whose signature did not hold (or was missing where one is required): refused
/// before the engine, changing nothing.
pub struct CommandRefused<'a> {
    pub command: &'a str,
    pub by: &'a str,
    pub incident_id: &'a str,
    /// The refusal's code (`bad_signature`, `unsigned`, `principal_not_allowed`, …).
    pub reason: &'static str,
}

impl CommandRefused<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics
            .commands_refused
            .with_label_values(&[self.reason])
            .inc();
        metrics.command(self.command, false);
        if BAD_INPUT.admit(("command refused", self.reason)) {
            tracing::warn!(
                command = self.command,
                by = self.by,
                incident_id = self.incident_id,
                reason = self.reason,
                "command refused: it changes nothing"
            );
        }
    }
}

/// A command the engine handled: applied, or rejected with a `command.rejected` event.
pub struct CommandHandled<'a> {
    pub command: &'a str,
    /// The decoder's problem code when the record was malformed (`wrong_type`, …).
    pub malformed: Option<&'static str>,
    /// `Some((incident id, reason))` when the engine rejected it.
    pub rejected: Option<(&'a str, &'a str)>,
}

impl CommandHandled<'_> {
    pub fn emit(self, metrics: &Metrics) {
        if let Some(code) = self.malformed {
            metrics.commands_invalid.with_label_values(&[code]).inc();
        }
        metrics.command(self.command, self.rejected.is_none());
        if let Some((incident_id, reason)) = self.rejected {
            // Malformed commands by the problem's code; the engine's other rejections (unknown
            // incident, nothing outstanding, …) as `not_applicable`.
            let code = self.malformed.unwrap_or("not_applicable");
            if BAD_INPUT.admit(("command rejected", code)) {
                tracing::warn!(
                    command = self.command,
                    incident_id,
                    reason,
                    "command rejected: it changes nothing"
                );
            }
        }
    }
}

/// An error the Kafka client reported (a broker away, a transport failure); it retries.
pub struct KafkaClientError<'a> {
    /// `all_brokers_down`, `transport`, `authentication`, `other`.
    pub kind: &'static str,
    pub reason: &'a str,
}

impl KafkaClientError<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics.kafka_errors.with_label_values(&[self.kind]).inc();
        // librdkafka reports a broker that is away per connection attempt: one line per kind
        // and interval, the count in the metric (and in the next line's summary).
        if CLIENT_ERRORS.admit(("kafka client error", self.kind)) {
            tracing::warn!(
                kind = self.kind,
                reason = self.reason,
                "kafka client error; retrying"
            );
        }
    }
}

/// A consumer's poll failed. `fatal`: the consumer cannot go on (the caller stops).
pub struct ConsumeError<'a> {
    pub error: &'a rdkafka::error::KafkaError,
    pub fatal: bool,
}

impl ConsumeError<'_> {
    pub fn emit(self, metrics: &Metrics) {
        let kind = if self.fatal { "fatal" } else { "consume" };
        metrics.kafka_errors.with_label_values(&[kind]).inc();
        if self.fatal {
            tracing::error!(error = %self.error, "fatal consumer error");
        } else if CLIENT_ERRORS.admit(("consume error", "consume")) {
            tracing::warn!(error = %self.error, "consume error");
        }
    }
}

/// The engine forgot alert ids before `state.dedup_window` ended (`state.max_dedup_ids`
/// reached). `log`: whether this occurrence writes the line (the caller spaces them).
pub struct DedupIdsEvicted {
    pub count: u64,
    pub max_dedup_ids: usize,
    pub log: bool,
}

impl DedupIdsEvicted {
    pub fn emit(self, metrics: &Metrics) {
        metrics.dedup_evicted.inc_by(self.count);
        if self.log {
            tracing::warn!(
                total = metrics.dedup_evicted.get(),
                max_dedup_ids = self.max_dedup_ids,
                "alert ids forgotten before state.dedup_window ended: raise state.max_dedup_ids or shorten state.dedup_window (each incident's 32 most recent ids still de-duplicate)"
            );
        }
    }
}

/// The delivery stage gave up on an event for a sink and wrote it to the delivery dead-letter
/// topic.
pub struct DeliveryDeadLettered<'a> {
    pub sink: &'a str,
    pub event_id: &'a str,
    pub attempts: u32,
    pub error: &'a str,
    pub topic: &'a str,
}

impl DeliveryDeadLettered<'_> {
    pub fn emit(self, metrics: &DeliveryMetrics) {
        metrics.dead_lettered.with_label_values(&[self.sink]).inc();
        tracing::warn!(
            sink = self.sink,
            event_id = self.event_id,
            attempts = self.attempts,
            error = self.error,
            topic = self.topic,
            "event dead-lettered"
        );
    }
}

/// How one event's delivery to a sink ended: delivered, refused for good by the sink (a 4xx),
/// or failed on every attempt.
pub enum DeliveryEnded<'a> {
    Delivered {
        sink: &'a str,
    },
    Refused {
        sink: &'a str,
        event_id: &'a str,
        error: &'a str,
    },
    Exhausted {
        sink: &'a str,
        event_id: &'a str,
        attempts: u32,
        error: &'a str,
    },
}

impl DeliveryEnded<'_> {
    pub fn emit(self, metrics: &DeliveryMetrics) {
        let (sink, outcome) = match self {
            DeliveryEnded::Delivered { sink } => (sink, "delivered"),
            DeliveryEnded::Refused {
                sink,
                event_id,
                error,
            } => {
                tracing::warn!(
                    sink,
                    event_id,
                    error,
                    "webhook refused the event; not retried"
                );
                (sink, "rejected")
            }
            DeliveryEnded::Exhausted {
                sink,
                event_id,
                attempts,
                error,
            } => {
                tracing::warn!(
                    sink,
                    event_id,
                    attempts,
                    error,
                    "webhook delivery exhausted"
                );
                (sink, "exhausted")
            }
        };
        metrics.deliveries.with_label_values(&[sink, outcome]).inc();
    }
}
