//! Observability at the edge: Prometheus metrics (one registry, built in `main` and passed
//! down), the internal events that write a metric and a log line together (`events`), the HTTP
//! endpoints, and `tracing` setup.

pub mod events;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod ratelimit;

pub use metrics::Metrics;
