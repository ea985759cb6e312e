//! Service settings (`default.toml`), overridable by environment variables `KLAXON__SECTION__KEY`
//! and, for the broker list, `KAFKA_BROKERS`.

use super::Issue;
use crate::time::{parse_offset, Millis};
use chrono::FixedOffset;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "default.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub metrics: MetricsSettings,
    pub output: OutputSettings,
    pub correlation: CorrelationSettings,
    pub input: InputSettings,
    #[serde(default)]
    pub routing: Vec<RoutingRule>,
    #[serde(default)]
    pub state: StateSettings,
    /// The delivery stage (docs/spec.md §10): Alertmanager and webhooks.
    #[serde(default)]
    pub delivery: super::delivery::DeliverySettings,
    /// The duty desk (docs/spec.md §9): the incident API, served by `klaxon desk` and in `klaxon run`.
    #[serde(default)]
    pub desk: DeskSettings,
    /// Who may sign commands on the commands topic (docs/spec.md §9).
    #[serde(default)]
    pub commands: CommandSettings,
    /// The values above that are written as text (durations, the offset, the combine rules,
    /// routing levels), parsed once while the settings are validated. Nothing parses them again.
    #[serde(skip)]
    pub parsed: Parsed,
}

/// The typed values of the settings written as text, filled by validation: every bad one has
/// already been reported as a `check-config` problem with its file and key, so none of them
/// falls back to a default later. ([`Default`] is the shipped `default.toml`'s values, for the
/// moment between deserializing and validating; a test keeps the two equal.)
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub utc_offset: FixedOffset,
    pub quiet_period: Millis,
    pub retention: Millis,
    pub dedup_window: Millis,
    pub commit_interval: Millis,
    pub max_event_age: Millis,
    pub max_event_skew: Millis,
    pub stall_after: Millis,
    pub backdate_tolerance: Millis,
    /// `correlation.combine`: which amount figures are summed over an incident's alerts (the
    /// others take the maximum), indexed by `AmountFigure as usize`.
    pub sum: [bool; super::ruleset::AMOUNT_FIGURES],
    /// `routing[i].min_level`, by rule.
    pub routing_min_level: Vec<Option<crate::model::Level>>,
}

impl Default for Parsed {
    fn default() -> Self {
        use crate::time::{DAY, MINUTE};
        Parsed {
            utc_offset: FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix()),
            quiet_period: Millis(DAY),
            retention: Millis(45 * DAY),
            dedup_window: Millis(7 * DAY),
            commit_interval: Millis(1000),
            max_event_age: crate::admission::DEFAULT_MAX_AGE,
            max_event_skew: crate::admission::DEFAULT_MAX_SKEW,
            stall_after: Millis(MINUTE),
            backdate_tolerance: Millis(5 * MINUTE),
            sum: [false; super::ruleset::AMOUNT_FIGURES],
            routing_min_level: Vec::new(),
        }
    }
}

/// `[desk]`: where the incident API listens, who may use it, and the key it signs commands with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskSettings {
    /// `klaxon run` serves the desk in-process (it reads the changelog of every partition, so
    /// it shows incidents owned by other instances too).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Loopback by default: put a TLS-terminating reverse proxy in front to expose it.
    #[serde(default = "default_desk_listen")]
    pub listen: String,
    /// The Ed25519 private key file (`klaxon keygen --out FILE`) the desk signs the commands it
    /// writes with. Without one the desk can read but refuses commands (503).
    #[serde(default)]
    pub signing_key_file: Option<String>,
    /// The id of that key in `[[commands.keys]]`.
    #[serde(default)]
    pub signing_key_id: Option<String>,
    /// People and systems that may use the API: `name`, `role`, `token_sha256`.
    #[serde(default)]
    pub principals: Vec<PrincipalSettings>,
}

fn default_desk_listen() -> String {
    "127.0.0.1:8090".into()
}

impl Default for DeskSettings {
    fn default() -> Self {
        DeskSettings {
            enabled: true,
            listen: default_desk_listen(),
            signing_key_file: None,
            signing_key_id: None,
            principals: Vec::new(),
        }
    }
}

/// `[[desk.principals]]`: one person or system. The token itself is never stored: only the hex
/// SHA-256 of it (`printf %s "$TOKEN" | sha256sum`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSettings {
    /// Recorded as `by` on every command this principal sends.
    pub name: String,
    /// `viewer`, `duty_officer` or `lead`.
    pub role: String,
    pub token_sha256: String,
}

/// `[commands]`: integrity of the commands topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// Refuse commands without a valid `klaxon-signature` from a key allowed to sign for their
    /// `by` (they change nothing and yield `command.rejected`).
    #[serde(default = "yes")]
    pub require_signature: bool,
    /// A command whose `at` is earlier than its receipt by more than this is marked `backdated`.
    #[serde(default = "default_backdate_tolerance")]
    pub backdate_tolerance: String,
    /// The public keys commands may be signed with.
    #[serde(default)]
    pub keys: Vec<CommandKeySettings>,
}

fn default_backdate_tolerance() -> String {
    "5m".into()
}

impl Default for CommandSettings {
    fn default() -> Self {
        CommandSettings {
            require_signature: true,
            backdate_tolerance: default_backdate_tolerance(),
            keys: Vec::new(),
        }
    }
}

/// `[[commands.keys]]`: one Ed25519 public key and the principals it may sign for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandKeySettings {
    /// Named in the signature header (`ed25519:<id>:<signature>`) and, as `via`, in the events.
    pub id: String,
    /// Base64 of the 32-byte public key (what `klaxon keygen` prints).
    pub public_key: String,
    /// The `by` values this key may sign for; `"*"` for any.
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers (`host:port,…`). `KAFKA_BROKERS` overrides it.
    pub brokers: String,
    pub group_id: String,
    /// Any librdkafka property, passed through verbatim (`security.protocol`, `sasl.*`, `ssl.*`).
    /// Environment overrides use `_` for `.`: `KLAXON__KAFKA__PROPERTIES__SASL_PASSWORD` sets
    /// `sasl.password` (librdkafka property names contain no underscores).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Create missing topics at start (internal topics with `state.partitions` partitions).
    #[serde(default = "yes")]
    pub create_topics: bool,
    /// This instance's stable identity in the consumer groups (static membership, KIP-345): each
    /// group gets `<instance_id>.<stage>` as `group.instance.id`, so a restarted instance takes its
    /// partitions straight back instead of waiting for the broker to expire its old session.
    /// Unset: `$KLAXON_INSTANCE_ID`, else the host name (a StatefulSet's pod name). `""` turns
    /// static membership off. Two running instances must never share it: the broker fences one.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The alerts topic is already keyed and partitioned by Klaxon's routing key (see
    /// `runtime::keyed`): the processor reads it directly and the repartition hop goes for
    /// alerts. Each record is still checked, and one keyed otherwise is re-routed through the
    /// repartition topic. The topic must have `state.partitions` partitions. Off by default:
    /// unkeyed input takes the two-stage path.
    #[serde(default)]
    pub input_keyed: bool,
}

/// The environment variable that names the instance when `kafka.instance_id` is not set.
pub const INSTANCE_ID_ENV: &str = "KLAXON_INSTANCE_ID";

/// Kafka accepts these characters in `group.instance.id` (and at most 249 of them; the stage
/// suffix takes a few).
pub fn check_instance_id(id: &str) -> Result<(), String> {
    if id.len() > 200 {
        return Err(format!("at most 200 characters, got {}", id.len()));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed in {id:?}: Kafka takes only ASCII letters, digits, '.', '_' and '-'"
        )),
        None => Ok(()),
    }
}

fn yes() -> bool {
    true
}

fn default_repartition() -> String {
    "klaxon.repartition".into()
}

fn default_partitions() -> i32 {
    6
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub alerts: String,
    pub commands: String,
    pub escalations: String,
    pub dead_letter: String,
    pub changelog: String,
    /// Internal: alerts and commands re-keyed by their routing token, so that each partition,
    /// and so each instance, owns whole incidents (as Kafka Streams repartitions).
    #[serde(default = "default_repartition")]
    pub repartition: String,
    /// Events a delivery sink could not take after `delivery.max_attempts` (or refused for
    /// good), with the last error in headers.
    #[serde(default = "default_delivery_dead_letter")]
    pub delivery_dead_letter: String,
}

impl Topics {
    /// Every topic Klaxon reads or writes, changelog included: what `ensure_topics` creates and
    /// the load harness deletes. Destructured, so a new topic cannot be left out of either.
    pub fn all(&self) -> [&str; 7] {
        let Topics {
            alerts,
            commands,
            escalations,
            dead_letter,
            changelog,
            repartition,
            delivery_dead_letter,
        } = self;
        [
            alerts,
            commands,
            escalations,
            dead_letter,
            repartition,
            changelog,
            delivery_dead_letter,
        ]
    }
}

fn default_delivery_dead_letter() -> String {
    "klaxon.delivery.dlq".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics`, `/healthz` and `/readyz` listen; loopback unless configured otherwise.
    pub listen: String,
    /// `/readyz` answers 503 (and `klaxon_ready` is 0) when a stage has had input waiting and
    /// made no progress for this long. A healthy stage moves every batch or round of timers
    /// (milliseconds to about a second, even mid catch-up); a minute is far past that, yet short
    /// next to the 1 h reporting window it protects.
    #[serde(default = "default_stall_after")]
    pub stall_after: String,
}

fn default_stall_after() -> String {
    "1m".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    /// Offset of timestamps in output events.
    pub utc_offset: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSettings {
    /// Fields that form the correlation key when an alert has no `incident_key`.
    pub group_by: Vec<String>,
    /// An incident stops taking alerts after this long without one.
    pub quiet_period: String,
    /// Per amount figure: `max` (default: later alerts carry revised totals) or `sum`.
    #[serde(default)]
    pub combine: BTreeMap<String, String>,
    /// How many alert ids an incident keeps for its events (the count is always exact).
    pub max_alert_ids: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSettings {
    /// Records larger than this are dead-lettered (`too_large`).
    pub max_record_bytes: usize,
    /// Accepted input formats: `native` and the names of mapping files in `mappings/` (`ecs`,
    /// `ocsf`, …). Absent: native plus every mapping found. A list, or one comma-separated
    /// string (`KLAXON__INPUT__FORMATS=native,ecs`).
    #[serde(default, deserialize_with = "list_or_csv")]
    pub formats: Option<Vec<String>>,
    /// How far behind the processing clock a record's times may be (`timestamp`, `at`, interval
    /// ends); older records are dead-lettered as `event_time_out_of_range`. Default `400d`:
    /// see [`crate::admission::DEFAULT_MAX_AGE`] for why.
    #[serde(default = "default_max_event_age")]
    pub max_event_age: String,
    /// How far ahead of the processing clock a record's times may be. Default `1h`: see
    /// [`crate::admission::DEFAULT_MAX_SKEW`].
    #[serde(default = "default_max_event_skew")]
    pub max_event_skew: String,
}

fn default_max_event_age() -> String {
    crate::admission::DEFAULT_MAX_AGE.to_string()
}

fn default_max_event_skew() -> String {
    crate::admission::DEFAULT_MAX_SKEW.to_string()
}

fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::List(v)) => Some(v),
        Some(Raw::Csv(s)) => Some(
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
        ),
    })
}

/// Extra destinations for escalation events: each event goes to `topics.escalations` and to every
/// rule's topic whose filters it matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub topic: String,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub min_level: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// How long a closed incident stays in state (for late commands and the summary report).
    pub retention: String,
    /// How long alert ids are remembered for de-duplication.
    pub dedup_window: String,
    /// Partitions of the repartition and changelog topics: the unit of ownership and the most
    /// instances that can share the work. Fixed once data exists.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How often changed incidents are written to the changelog and input offsets stored (as Kafka
    /// Streams' commit interval). Escalations never wait for it; a longer interval writes less
    /// state under load and re-reads more input after a crash.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: String,
    /// The most alert ids the whole service remembers for de-duplication (each costs ~110 bytes).
    /// Past it the oldest are forgotten before `dedup_window` ends, and
    /// `klaxon_dedup_evicted_total` counts them.
    #[serde(default = "default_max_dedup_ids")]
    pub max_dedup_ids: usize,
}

/// ~210 MiB at most; a week of ids at 3.3 alerts/s, or a day at 23/s.
fn default_max_dedup_ids() -> usize {
    2_000_000
}

fn default_commit_interval() -> String {
    "1s".into()
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            retention: "45d".into(),
            dedup_window: "7d".into(),
            partitions: default_partitions(),
            commit_interval: default_commit_interval(),
            max_dedup_ids: default_max_dedup_ids(),
        }
    }
}

impl Settings {
    /// `output.utc_offset`.
    pub fn utc_offset(&self) -> FixedOffset {
        self.parsed.utc_offset
    }

    /// `correlation.quiet_period`.
    pub fn quiet_period(&self) -> Millis {
        self.parsed.quiet_period
    }

    /// `state.retention`.
    pub fn retention(&self) -> Millis {
        self.parsed.retention
    }

    /// Settings for a self-contained run on a shared broker (the demo, the load harness): every
    /// topic and the group under `prefix`, metrics on a free loopback port, a short session
    /// timeout so that group joins are quick.
    pub fn isolated(&self, prefix: &str) -> Settings {
        let mut s = self.clone();
        s.kafka.group_id = prefix.to_string();
        s.topics = Topics {
            alerts: format!("{prefix}.alerts"),
            commands: format!("{prefix}.commands"),
            escalations: format!("{prefix}.escalations"),
            dead_letter: format!("{prefix}.dlq"),
            changelog: format!("{prefix}.state"),
            repartition: format!("{prefix}.repartition"),
            delivery_dead_letter: format!("{prefix}.delivery.dlq"),
        };
        s.metrics.listen = "127.0.0.1:0".into();
        for (k, v) in [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ] {
            s.kafka
                .properties
                .entry(k.into())
                .or_insert_with(|| v.into());
        }
        s
    }

    /// `state.commit_interval`.
    pub fn commit_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed.commit_interval.0.max(1) as u64)
    }

    /// `metrics.stall_after`.
    pub fn stall_after(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed.stall_after.0.max(1) as u64)
    }

    /// `input.max_event_age`.
    pub fn max_event_age(&self) -> Millis {
        self.parsed.max_event_age
    }

    /// `input.max_event_skew`.
    pub fn max_event_skew(&self) -> Millis {
        self.parsed.max_event_skew
    }

    /// The live admission window around `now` (see [`crate::admission`]).
    pub fn event_window(&self, now: crate::time::Timestamp) -> crate::admission::Window {
        crate::admission::Window::live(now, self.max_event_age(), self.max_event_skew())
    }

    /// `commands.backdate_tolerance`.
    pub fn backdate_tolerance(&self) -> Millis {
        self.parsed.backdate_tolerance
    }

    /// `state.dedup_window`.
    pub fn dedup_window(&self) -> Millis {
        self.parsed.dedup_window
    }
}

use chrono::Offset;

/// Where the value of `key` came from: the environment variable that overrides it, if one is
/// set (an error must name what the user has to fix), else `file`.
fn source_of(key: &str, file: &str) -> String {
    if key.is_empty() {
        return file.to_string();
    }
    if key == "kafka.brokers" && std::env::var_os("KAFKA_BROKERS").is_some() {
        return "environment variable KAFKA_BROKERS".into();
    }
    // Keys with an index (`routing[0].topic`) map to no single variable and stay with the file.
    let wanted = format!("KLAXON__{}", key.replace('.', "__")).to_ascii_uppercase();
    match std::env::var_os(&wanted) {
        Some(_) => format!("environment variable {wanted}"),
        None => file.to_string(),
    }
}

/// Whether two `listen` addresses would be the same socket: the same port (not 0, which takes
/// any free one) on the same address, or on one and the wildcard address.
fn same_listener(a: &str, b: &str) -> bool {
    use std::net::SocketAddr;
    match (
        a.trim().parse::<SocketAddr>(),
        b.trim().parse::<SocketAddr>(),
    ) {
        (Ok(a), Ok(b)) => {
            a.port() != 0
                && a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        // Host names: only the same text is surely the same socket.
        _ => a.trim() == b.trim() && !a.trim().ends_with(":0"),
    }
}

pub(crate) fn load(dir: &Path, issues: &mut Vec<Issue>) -> Option<Settings> {
    let path = dir.join(FILE);
    let file = path.display().to_string();
    let mut builder = config::Config::builder()
        .add_source(
            config::File::from(path.clone())
                .format(config::FileFormat::Toml)
                .required(true),
        )
        .add_source(
            config::Environment::with_prefix("KLAXON")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(false),
        );
    if let Ok(brokers) = std::env::var("KAFKA_BROKERS") {
        if !brokers.trim().is_empty() {
            builder = match builder.set_override("kafka.brokers", brokers) {
                Ok(b) => b,
                Err(e) => {
                    issues.push(Issue {
                        file: "KAFKA_BROKERS".into(),
                        key: String::new(),
                        problem: e.to_string(),
                    });
                    return None;
                }
            };
        }
    }
    let mut settings: Settings = match builder.build().and_then(|c| c.try_deserialize()) {
        Ok(s) => s,
        Err(e) => {
            let problem = e.to_string();
            // `… for key \`state.partitions\` in the environment`: name the variable.
            let key = problem
                .split_once("for key `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map_or("", |(k, _)| k);
            issues.push(Issue {
                file: source_of(key, &file),
                key: String::new(),
                problem,
            });
            return None;
        }
    };
    let before = issues.len();
    let mut add = |key: &str, problem: String| {
        issues.push(Issue {
            file: source_of(key, &file),
            key: key.into(),
            problem,
        })
    };
    let mut parsed = Parsed::default();
    match parse_offset(&settings.output.utc_offset) {
        Ok(o) => parsed.utc_offset = o,
        Err(e) => add("output.utc_offset", e),
    }
    for (key, v, into) in [
        (
            "correlation.quiet_period",
            &settings.correlation.quiet_period,
            &mut parsed.quiet_period,
        ),
        (
            "state.retention",
            &settings.state.retention,
            &mut parsed.retention,
        ),
        (
            "state.dedup_window",
            &settings.state.dedup_window,
            &mut parsed.dedup_window,
        ),
        (
            "state.commit_interval",
            &settings.state.commit_interval,
            &mut parsed.commit_interval,
        ),
        (
            "input.max_event_age",
            &settings.input.max_event_age,
            &mut parsed.max_event_age,
        ),
        (
            "metrics.stall_after",
            &settings.metrics.stall_after,
            &mut parsed.stall_after,
        ),
        (
            "input.max_event_skew",
            &settings.input.max_event_skew,
            &mut parsed.max_event_skew,
        ),
        (
            "commands.backdate_tolerance",
            &settings.commands.backdate_tolerance,
            &mut parsed.backdate_tolerance,
        ),
    ] {
        match Millis::parse_human(v) {
            Ok(m) => *into = m,
            Err(e) => add(key, e),
        }
    }
    for (i, f) in settings.correlation.group_by.iter().enumerate() {
        if !crate::model::alert::group_by_fields().any(|g| g == f) {
            add(
                &format!("correlation.group_by[{i}]"),
                format!(
                    "unknown field {f:?} (known: {})",
                    crate::model::alert::group_by_fields()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if settings.correlation.group_by.is_empty() {
        add(
            "correlation.group_by",
            "must name at least one field".into(),
        );
    }
    for (fig, how) in &settings.correlation.combine {
        let amount = match fig.parse::<super::ruleset::Figure>() {
            Ok(super::ruleset::Figure::Amount(a)) => Some(a),
            Ok(_) => {
                add(
                    &format!("correlation.combine.{fig}"),
                    "only amount figures can be combined by max or sum".into(),
                );
                None
            }
            Err(e) => {
                add(&format!("correlation.combine.{fig}"), e);
                None
            }
        };
        match (how.as_str(), amount) {
            ("sum", Some(a)) => parsed.sum[a as usize] = true,
            ("max" | "sum", _) => {}
            _ => add(
                &format!("correlation.combine.{fig}"),
                format!("expected max or sum, got {how:?}"),
            ),
        }
    }
    if !(1..=1024).contains(&settings.state.partitions) {
        add(
            "state.partitions",
            format!(
                "must be between 1 and 1024, got {}",
                settings.state.partitions
            ),
        );
    }
    if settings.state.max_dedup_ids == 0 {
        add("state.max_dedup_ids", "must be positive".into());
    }
    if settings.input.max_record_bytes == 0 {
        add("input.max_record_bytes", "must be positive".into());
    }
    if settings.kafka.brokers.trim().is_empty() {
        add("kafka.brokers", "must name at least one broker".into());
    }
    let mut id_from = "kafka.instance_id";
    if settings.kafka.instance_id.is_none() {
        if let Ok(id) = std::env::var(INSTANCE_ID_ENV) {
            if !id.trim().is_empty() {
                settings.kafka.instance_id = Some(id.trim().to_string());
                id_from = "kafka.instance_id (from $KLAXON_INSTANCE_ID)";
            }
        }
    }
    if let Some(id) = &settings.kafka.instance_id {
        if let Err(e) = check_instance_id(id) {
            add(id_from, e);
        }
    }
    for (i, r) in settings.routing.iter().enumerate() {
        for (j, t) in r.types.iter().enumerate() {
            if !crate::model::escalation::EventType::ALL
                .iter()
                .any(|e| e.key() == t)
            {
                add(
                    &format!("routing[{i}].types[{j}]"),
                    format!("unknown event type {t:?}"),
                );
            }
        }
        let min_level = match r
            .min_level
            .as_deref()
            .map(str::parse::<crate::model::Level>)
        {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                add(&format!("routing[{i}].min_level"), e);
                None
            }
        };
        parsed.routing_min_level.push(min_level);
    }
    if settings.desk.enabled && same_listener(&settings.desk.listen, &settings.metrics.listen) {
        add(
            "desk.listen",
            format!(
                "{} is metrics.listen's address too: `klaxon run` serves both, so each needs a \
                 port of its own",
                settings.desk.listen
            ),
        );
    }
    settings.parsed = parsed;
    for (key, problem) in super::delivery::validate(&mut settings.delivery) {
        add(&key, problem);
    }
    for (key, problem) in crate::signing::check_settings(&settings) {
        add(&key, problem);
    }
    if issues.len() > before {
        return None;
    }
    Some(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Parsed::default`] stands in only until validation fills it; it is the shipped file's
    /// values all the same, so that nothing could tell the two apart.
    #[test]
    fn the_parsed_defaults_are_the_shipped_settings() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut issues = Vec::new();
        let settings = load(&dir, &mut issues).expect("the shipped settings load");
        assert!(issues.is_empty(), "{issues:?}");
        let shipped = Parsed {
            routing_min_level: Vec::new(),
            ..settings.parsed.clone()
        };
        assert_eq!(shipped, Parsed::default());
    }

    #[test]
    fn two_listeners_clash_on_the_same_port_of_the_same_or_the_wildcard_address() {
        assert!(same_listener("127.0.0.1:9464", "127.0.0.1:9464"));
        assert!(same_listener("0.0.0.0:9464", " 127.0.0.1:9464"));
        assert!(same_listener("[::1]:8090", "[::]:8090"));
        assert!(same_listener("localhost:8090", "localhost:8090"));
        assert!(!same_listener("127.0.0.1:9464", "127.0.0.1:8090"));
        assert!(!same_listener("127.0.0.1:9464", "10.0.0.1:9464"));
        assert!(!same_listener("127.0.0.1:0", "127.0.0.1:0"));
        assert!(!same_listener("localhost:0", "localhost:0"));
        assert!(!same_listener("localhost:8090", "127.0.0.1:8090"));
    }
}
