//! # Klaxon
//!
//! A security-event stream processor for China's national measures on reporting cybersecurity
//! incidents (in force since 2025-11-01): it correlates SIEM alerts into incidents, grades them on
//! the 2025 grading guide, and runs the 1/2/4-hour reporting deadlines with reminders, overdue
//! escalations, follow-up and summary reports.
//!
//! The shape is a functional core with an imperative shell:
//!
//! - [`model`] — plain data: alerts, commands, levels, escalation events.
//! - [`admission`] — the event-time check between decoding and the engine: implausible times
//!   (year 0001, year 9999, an interval ending before it begins) never reach the core.
//! - [`decode`] — bytes → input, or a rejection whose code is the dead-letter reason; SIEM
//!   shapes (ECS, OCSF, Suricata EVE, Wazuh) are mapped onto the native alert by the field
//!   mappings of [`decode::mapping`].
//! - [`settings`] — loading and validating config: service settings, the ruleset (grading guide
//!   and reporting rules), the registry.
//! - [`engine`] — the sans-IO core: correlation ([`engine::correlate`]), grading
//!   ([`engine::grade`]), the timer set ([`engine::timers`]), reporting obligations
//!   ([`engine::reporting`]), the report draft ([`engine::draft`]) and escalation policies
//!   ([`engine::escalation_policy`]).
//! - [`delivery`] — the delivery stage (`klaxon deliver`): escalation events to Prometheus
//!   Alertmanager and signed webhooks, at least once, with retries and a dead-letter topic.
//! - [`replay`] — the event-time driver behind `klaxon replay`.
//! - [`explain`] — `klaxon grade`: one incident's level in words a duty officer can paste.
//! - [`time`] — instants, offsets and human durations.
//! - [`allocator`] — the binaries' global allocator: mimalloc, called plainly where that is
//!   aligned (the `mimalloc` crate's always-aligned calls over-allocated most blocks).

#![recursion_limit = "512"]

pub use klaxon_core::{admission, decode, engine, model, settings, signing, time};

pub mod allocator;
pub mod ctl;
pub mod delivery;
pub mod demo;
pub mod desk;
pub mod explain;
pub mod loadtest;
pub mod replay;
pub mod runtime;
pub mod telemetry;
