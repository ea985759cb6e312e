//! Kafka client wiring: configuration (with pass-through librdkafka properties), the client
//! context that feeds metrics and readiness, rebalance notifications, and topic creation.

use super::RuntimeError;
use crate::settings::Settings;
use crate::telemetry::Metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
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
        "brokers={} instance_id={} properties=[{}]",
        settings.kafka.brokers,
        instance_id(settings)
            .as_deref()
            .unwrap_or("(none: dynamic membership)"),
        names.join(",")
    )
}

/// How long the broker may hold a fetch that finds no records (librdkafka's default is 500 ms).
/// Real Kafka answers as soon as records arrive, so this costs latency only on brokers that
/// hold every fetch for the whole wait, as the local test broker does; there it is the floor of
/// each hop. Lower values cost those brokers CPU on every idle fetch.
pub const FETCH_WAIT_MS: &str = "10";

/// How long the broker waits for a silent member before it gives its partitions to others
/// (librdkafka's default is 45 s). It bounds the takeover after a node is lost for good, and on a
/// broker that ignores static membership (the local test broker re-forms the group, holding the
/// first join for half of it) every restart: 10 s keeps a restart within docs/spec.md §8's 15 s there.
/// Real Kafka accepts 6 s to 30 min (`group.min/max.session.timeout.ms`). Heartbeats come from
/// librdkafka's own thread, so a busy engine does not miss them; only a network or broker stall
/// longer than this moves partitions (and a static member gets the same ones back on rejoin).
pub const SESSION_TIMEOUT_MS: &str = "10000";
/// A third of the session timeout, as Kafka recommends: three missed heartbeats before expiry.
pub const HEARTBEAT_INTERVAL_MS: &str = "1000";
/// How often librdkafka commits the offsets a stage stored (the router's cadence under a steady
/// stream; it commits sooner when its input goes quiet, see [`super::commit_cadence`]).
pub const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// This instance's identity in the consumer groups: `kafka.instance_id` (which the settings fill
/// from `$KLAXON_INSTANCE_ID` when unset), else the host name — stable across restarts in a
/// StatefulSet or on a VM, unique per container in compose. `None` when it is `""` (static
/// membership off) or no host name can be read.
pub fn instance_id(settings: &Settings) -> Option<String> {
    match &settings.kafka.instance_id {
        Some(id) => Some(id.trim().to_string()).filter(|id| !id.is_empty()),
        None => host_name(),
    }
}

/// The host name: the kernel's (a container's or pod's own), else `$HOSTNAME`. Only the
/// characters Kafka accepts in `group.instance.id` are kept.
fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(200)
        .collect();
    Some(name).filter(|n| !n.is_empty())
}

/// The `group.instance.id` of one consumer group, `<instance_id>.<stage>`: each of Klaxon's
/// groups (`router`, `processor`, and any later stage with a group of its own) gets a distinct
/// one, so that an id is never shared by two members of one group within an instance. `None`
/// without an instance id (dynamic membership).
pub fn group_instance_id(settings: &Settings, stage: &str) -> Option<String> {
    instance_id(settings).map(|id| format!("{id}.{stage}"))
}

/// A consumer group member that stores offsets itself (after the broker acknowledged what the
/// record caused) and lets librdkafka commit the stored offsets. `stage` names the member's
/// static identity ([`group_instance_id`]). `kafka.properties` win over every default here,
/// `group.instance.id`, `session.timeout.ms` and `heartbeat.interval.ms` included.
pub fn consumer_config(settings: &Settings, group: &str, stage: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("group.id", group);
    if let Some(id) = group_instance_id(settings, stage) {
        c.set("group.instance.id", id);
    }
    c.set("session.timeout.ms", SESSION_TIMEOUT_MS);
    c.set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS);
    c.set("enable.auto.commit", "true");
    c.set(
        "auto.commit.interval.ms",
        AUTO_COMMIT_INTERVAL.as_millis().to_string(),
    );
    c.set("enable.auto.offset.store", "false");
    // A compliance tool must not skip alerts that arrived before its group existed.
    c.set("auto.offset.reset", "earliest");
    c.set("enable.partition.eof", "false");
    for (key, value) in FETCH_DEFAULTS {
        c.set(key, value);
    }
    let mut c = merge(c, &base_config(settings), PRODUCER_ONLY);
    // A session timeout of the user's own keeps the heartbeat at a third of it.
    let user = |k: &str| {
        settings
            .kafka
            .properties
            .keys()
            .any(|p| p.replace('_', ".") == k)
    };
    if user("session.timeout.ms") && !user("heartbeat.interval.ms") {
        if let Some(ms) = c
            .get("session.timeout.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            c.set("heartbeat.interval.ms", (ms / 3).max(1).to_string());
        }
    }
    c
}

/// How much a consumer fetches ahead of what it has handed over (librdkafka's
/// `queued.max.messages.kbytes`; its default is 64 MiB per consumer, and `klaxon run` has four):
/// 16 MiB is several of the stages' 4,096-record batches, so reading does not wait on it, while
/// a backlog no longer sits in memory a quarter of a GiB at a time (#18). `kafka.properties`
/// may set it.
pub const PREFETCH_KBYTES: &str = "16384";

/// How long librdkafka waits before fetching again for a partition whose prefetch queue was
/// full (`fetch.queue.backoff.ms`; its default is 1 s). With the prefetch bounded, a consumer
/// reading a backlog fills the queue again and again, and each time sat idle for a second: the
/// desk's rebuild of 1 M incidents through the local broker took 31 s, and 5.7 × less with 10 ms
/// (200,000 records: 6.35 s → 1.12 s; `cargo bench --bench desk`, docs/desk.md).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// How every consumer that reads a backlog fetches, unless `kafka.properties` says otherwise:
/// the stages' ([`consumer_config`]) and the desk's feed.
pub const FETCH_DEFAULTS: [(&str, &str); 3] = [
    ("fetch.wait.max.ms", FETCH_WAIT_MS),
    ("queued.max.messages.kbytes", PREFETCH_KBYTES),
    ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS),
];

/// Sets [`FETCH_DEFAULTS`] on a backlog reader built from [`base_config`], except those that
/// `kafka.properties` already set.
pub fn add_fetch_defaults(cfg: &mut ClientConfig) {
    for (key, value) in FETCH_DEFAULTS {
        if cfg.get(key).is_none() {
            cfg.set(key, value);
        }
    }
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
    "queued.",
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
    /// The partitions, and when the broker's assignment arrived (restarts are timed by it).
    Assigned(Vec<i32>, std::time::Instant),
    Revoked(Vec<i32>),
}

/// Feeds statistics into metrics and readiness, counts errors, and hands assignment changes to
/// the stage that owns the consumer (the processor restores state for new partitions).
pub struct KlaxonContext {
    pub metrics: Arc<Metrics>,
    pub rebalances: Option<UnboundedSender<RebalanceEvent>>,
    /// Which topics' lag this client reports.
    pub lag_topics: Vec<String>,
}

impl KlaxonContext {
    /// A context that only reports errors and broker health: producers, restore readers.
    pub fn plain(metrics: Arc<Metrics>) -> Self {
        KlaxonContext {
            metrics,
            rebalances: None,
            lag_topics: Vec::new(),
        }
    }
}

impl ClientContext for KlaxonContext {
    fn stats(&self, stats: Statistics) {
        // Every few seconds in every client: summaries of rate-limited lines are written here
        // even when the flood has stopped and no stage loop is turning.
        crate::telemetry::ratelimit::flush_all();
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
        crate::telemetry::events::KafkaClientError { kind, reason }.emit(&self.metrics);
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

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                let since_start_s = super::started().elapsed().as_secs_f64();
                tracing::info!(?parts, since_start_s, "partitions assigned");
                if let Some(tx) = &self.rebalances {
                    let _ = tx.send(RebalanceEvent::Assigned(parts, std::time::Instant::now()));
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
    let mut topics: Vec<NewTopic> = t
        .all()
        .into_iter()
        .map(|name| {
            let topic = NewTopic::new(name, n, TopicReplication::Fixed(-1));
            if name == t.changelog {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
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

/// The error to stop a stage with after its consumer reported a fatal error (librdkafka's
/// consumer is unusable after one): [`RuntimeError::Fenced`] when the broker fenced this static
/// member out (`FENCED_INSTANCE_ID`: another process joined with the same `group.instance.id`).
pub fn fatal_error<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    group: &str,
    instance: Option<&str>,
    error: &KafkaError,
) -> RuntimeError {
    let (code, reason) = client
        .fatal_error()
        .unwrap_or((RDKafkaErrorCode::Fatal, error.to_string()));
    if code == RDKafkaErrorCode::FencedInstanceId {
        RuntimeError::Fenced {
            group: group.to_string(),
            instance: instance.unwrap_or("?").to_string(),
            reason,
        }
    } else {
        RuntimeError::Fatal {
            group: group.to_string(),
            reason: format!("{code}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(instance: Option<&str>, props: &[(&str, &str)]) -> Settings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut s = crate::settings::load(&dir).expect("config").settings;
        s.kafka.instance_id = instance.map(str::to_string);
        s.kafka.properties = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    #[test]
    fn each_group_gets_the_instance_id_with_its_own_suffix_and_the_short_session() {
        let s = settings(Some("klaxon-0"), &[]);
        let router = consumer_config(&s, "klaxon", "router");
        let processor = consumer_config(&s, "klaxon.processor", "processor");
        assert_eq!(router.get("group.instance.id"), Some("klaxon-0.router"));
        assert_eq!(
            processor.get("group.instance.id"),
            Some("klaxon-0.processor")
        );
        assert_eq!(router.get("session.timeout.ms"), Some(SESSION_TIMEOUT_MS));
        assert_eq!(
            router.get("heartbeat.interval.ms"),
            Some(HEARTBEAT_INTERVAL_MS)
        );
        // Producers get none of it.
        assert_eq!(producer_config(&s).get("group.instance.id"), None);
    }

    #[test]
    fn without_an_id_setting_the_host_name_is_the_id_and_an_empty_one_turns_it_off() {
        let host = host_name().expect("a host name on this machine");
        assert_eq!(
            group_instance_id(&settings(None, &[]), "router"),
            Some(format!("{host}.router"))
        );
        let off = settings(Some(""), &[]);
        assert_eq!(instance_id(&off), None);
        assert_eq!(
            consumer_config(&off, "klaxon", "router").get("group.instance.id"),
            None
        );
    }

    #[test]
    fn kafka_properties_win_over_every_membership_default() {
        let s = settings(
            Some("klaxon-0"),
            &[
                ("group.instance.id", "mine"),
                ("session_timeout_ms", "30000"),
            ],
        );
        let c = consumer_config(&s, "klaxon", "router");
        assert_eq!(c.get("group.instance.id"), Some("mine"));
        assert_eq!(c.get("session.timeout.ms"), Some("30000"));
        // A session of one's own keeps three heartbeats in it.
        assert_eq!(c.get("heartbeat.interval.ms"), Some("10000"));
        let s = settings(
            Some("klaxon-0"),
            &[
                ("session.timeout.ms", "30000"),
                ("heartbeat.interval.ms", "2000"),
            ],
        );
        let c = consumer_config(&s, "klaxon", "router");
        assert_eq!(c.get("heartbeat.interval.ms"), Some("2000"));
    }
}
