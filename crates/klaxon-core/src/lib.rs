//! # klaxon-core
//!
//! Klaxon's pure core: everything that decides, nothing that waits. This crate has no async
//! runtime, no Kafka client, no metrics registry and no HTTP stack among its dependencies, so the
//! compiler keeps the engine sans-IO; the `klaxon` crate is the imperative shell around it.
//!
//! - [`model`] — plain data: alerts, commands, levels, escalation events.
//! - [`admission`] — the event-time check between decoding and the engine: implausible times
//!   (year 0001, year 9999, an interval ending before it begins) never reach the core.
//! - [`decode`] — bytes → input, or a rejection whose code is the dead-letter reason; SIEM
//!   shapes (ECS, OCSF, Suricata EVE, Wazuh) are mapped onto the native alert by the field
//!   mappings of [`decode::mapping`]; `decode::fast` is the allocation-light scanner for the
//!   common alert shapes.
//! - [`settings`] — loading and validating config: service settings, the ruleset (grading guide
//!   and reporting rules), the registry, escalation policies, delivery settings.
//! - [`engine`] — the sans-IO core: correlation ([`engine::correlate`]), grading
//!   ([`engine::grade`]), the timer set ([`engine::timers`]), reporting obligations
//!   ([`engine::reporting`]), the report draft ([`engine::draft`]) and escalation policies
//!   ([`engine::escalation_policy`]).
//! - [`signing`] — Ed25519 command signatures: signing, verifying, and the key settings check.
//! - [`time`] — instants, offsets and human durations.

#![recursion_limit = "512"]

pub mod admission;
pub mod decode;
pub mod engine;
pub mod model;
pub mod settings;
pub mod signing;
pub mod time;
