//! Kafka client wiring: configuration (with pass-through librdkafka properties), the client
//! context that feeds metrics and readiness, rebalance notifications, and topic creation.

use crate::settings::Settings;
use crate::telemetry::Metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Base client config: brokers and every `kafka.properties` entry. Property names given with `_`
/// (environment overrides) are turned back into librdkafka's dotted names.
pub fn base_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers);
    c.set("client.id", "klaxon");
    c.set("statistics.interval.ms", "5000");
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &settings.kafka.properties {
        c.set(k.replace('_', "."), v);
    }
    c
}

/// Property names that are safe to log (values never are).
pub fn describe(settings: &Settings) -> String {
    let names: Vec<&str> = settings
        .kafka
        .properties
        .keys()
        .map(String::as_str)
        .collect();
    format!(
        "brokers={} properties=[{}]",
        settings.kafka.brokers,
        names.join(",")
    )
}

/// How long the broker may hold a fetch that finds no records (librdkafka's default is 500 ms).
/// Real Kafka answers as soon as records arrive, so this costs latency only on brokers that
/// hold every fetch for the whole wait, as the local test broker does; there it is the floor of
/// each hop. Lower values cost those brokers CPU on every idle fetch.
pub const FETCH_WAIT_MS: &str = "10";

/// A consumer group member that stores offsets itself (after the broker acknowledged what the
/// record caused) and lets librdkafka commit the stored offsets.
pub fn consumer_config(settings: &Settings, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("group.id", group);
    c.set("enable.auto.commit", "true");
    c.set("auto.commit.interval.ms", "1000");
    c.set("enable.auto.offset.store", "false");
    // A compliance tool must not skip alerts that arrived before its group existed.
    c.set("auto.offset.reset", "earliest");
    c.set("enable.partition.eof", "false");
    c.set("fetch.wait.max.ms", FETCH_WAIT_MS);
    merge(c, &base_config(settings), PRODUCER_ONLY)
}

/// Properties that only one kind of client understands; librdkafka warns when the other gets them.
const CONSUMER_ONLY: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.",
    "auto.offset.reset",
    "enable.auto.",
    "auto.commit.",
    "fetch.",
    "max.poll.",
    "isolation.level",
    "partition.assignment.strategy",
    "enable.partition.eof",
];
const PRODUCER_ONLY: &[&str] = &[
    "acks",
    "linger.ms",
    "enable.idempotence",
    "compression.",
    "batch.",
    "message.timeout.ms",
    "queue.buffering.",
    "transactional.",
    "retries",
    "delivery.timeout.ms",
];

/// Idempotent, acks=all: an acknowledged escalation is durable and not duplicated by retries.
pub fn producer_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c.set("linger.ms", "2");
    c.set("message.timeout.ms", "30000");
    // Changelog records are JSON and compress several-fold.
    c.set("compression.type", "lz4");
    merge(c, &base_config(settings), CONSUMER_ONLY)
}

/// `overrides` (the user's properties) win over Klaxon's defaults; properties meant only for the
/// other kind of client (`skip`, by prefix) are left out.
fn merge(mut defaults: ClientConfig, overrides: &ClientConfig, skip: &[&str]) -> ClientConfig {
    for (k, v) in overrides.config_map().iter() {
        if !skip.iter().any(|p| k.starts_with(p)) {
            defaults.set(*k, *v);
        }
    }
    defaults
}

/// A partition assignment change, sent to the driver loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Feeds statistics into metrics and readiness, counts errors, and (for the processor) pauses
/// newly assigned partitions until their state is restored.
pub struct KlaxonContext {
    pub metrics: Arc<Metrics>,
    pub rebalances: Option<UnboundedSender<RebalanceEvent>>,
    pub pause_on_assign: bool,
    /// Which topics' lag this client reports.
    pub lag_topics: Vec<String>,
}

impl KlaxonContext {
    /// A context that only reports errors and broker health: producers, restore readers.
    pub fn plain(metrics: Arc<Metrics>) -> Self {
        KlaxonContext {
            metrics,
            rebalances: None,
            pause_on_assign: false,
            lag_topics: Vec::new(),
        }
    }
}

impl ClientContext for KlaxonContext {
    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.metrics.set_brokers_up(up);
        let mut lag: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, topic) in &stats.topics {
            if !self.lag_topics.iter().any(|t| t == name) {
                continue;
            }
            let sum = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(|p| p.consumer_lag)
                .sum();
            lag.insert(name.as_str(), sum);
        }
        for (t, v) in lag {
            self.metrics.consumer_lag.with_label_values(&[t]).set(v);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.metrics.set_brokers_up(false);
                "all_brokers_down"
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure) => "transport",
            Some(RDKafkaErrorCode::Authentication)
            | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => "authentication",
            _ => "other",
        };
        self.metrics.kafka_errors.with_label_values(&[kind]).inc();
        tracing::warn!(kind, reason, "kafka client error; retrying");
    }
}

impl ConsumerContext for KlaxonContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = partitions(tpl);
            tracing::info!(?parts, "partitions revoked");
            if let Some(tx) = &self.rebalances {
                let _ = tx.send(RebalanceEvent::Revoked(parts));
            }
            self.metrics.set_assigned(false);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(?parts, "partitions assigned");
                if self.pause_on_assign && tpl.count() > 0 {
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::error!(error = %e, "cannot pause partitions for restore");
                    }
                }
                if let Some(tx) = &self.rebalances {
                    let _ = tx.send(RebalanceEvent::Assigned(parts));
                }
                self.metrics.set_assigned(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                self.metrics
                    .kafka_errors
                    .with_label_values(&["rebalance"])
                    .inc();
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
                self.metrics
                    .kafka_errors
                    .with_label_values(&["commit"])
                    .inc();
                tracing::warn!(error = %e, "offset commit failed; will retry with the next commit");
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut v: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Creates the topics Klaxon uses if they are missing. Existing topics are left alone.
pub async fn ensure_topics(settings: &Settings) -> Result<(), KafkaError> {
    let admin: AdminClient<_> = base_config(settings).create()?;
    let n = settings.state.partitions;
    let t = &settings.topics;
    let mut topics = vec![
        NewTopic::new(&t.alerts, n, TopicReplication::Fixed(-1)),
        NewTopic::new(&t.commands, n, TopicReplication::Fixed(-1)),
        NewTopic::new(&t.escalations, n, TopicReplication::Fixed(-1)),
        NewTopic::new(&t.dead_letter, n, TopicReplication::Fixed(-1)),
        NewTopic::new(&t.repartition, n, TopicReplication::Fixed(-1)),
        NewTopic::new(&t.changelog, n, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact"),
    ];
    let extra: Vec<String> = settings.routing.iter().map(|r| r.topic.clone()).collect();
    for e in &extra {
        topics.push(NewTopic::new(e, n, TopicReplication::Fixed(-1)));
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(topics.iter(), &opts).await?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, partitions = n, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists")
            }
            Err((name, code)) => {
                tracing::warn!(topic = %name, error = %code, "could not create topic")
            }
        }
    }
    Ok(())
}
