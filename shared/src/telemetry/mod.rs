//! Logs and metrics (docs/architecture.md §10): Powertools-shaped JSON logs and CloudWatch Embedded Metric Format.

pub mod emf;
pub mod logs;
pub mod recorder;

pub use emf::{MemorySink, MetricSink, Metrics, StdoutSink, Unit};
pub use logs::{LogCapture, init, init_on_stderr};
pub use recorder::Recorder;

/// The CloudWatch namespace every metric of the bundle is published under, unless configured.
pub const DEFAULT_NAMESPACE: &str = "PartnerCredentialBundle";

/// `METRICS_NAMESPACE`, or [`DEFAULT_NAMESPACE`] when it is not set.
pub fn namespace(reader: &crate::config::EnvReader<'_>) -> String {
    reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}
