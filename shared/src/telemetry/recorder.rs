//! One handle for a component's metrics: namespace, service, sink and clock together.

use std::sync::Arc;

use super::emf::{MetricSink, Metrics, Unit};
use crate::clock::SharedClock;

/// Emits EMF metrics for one service.
#[derive(Clone)]
pub struct Recorder {
    namespace: String,
    service: String,
    sink: Arc<dyn MetricSink>,
    clock: SharedClock,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("namespace", &self.namespace)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `service` in `namespace`.
    pub fn new(
        namespace: impl Into<String>,
        service: impl Into<String>,
        sink: Arc<dyn MetricSink>,
        clock: SharedClock,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            sink,
            clock,
        }
    }

    /// An empty batch with the service dimension, to fill and [`Recorder::flush`].
    pub fn batch(&self) -> Metrics {
        Metrics::new(&self.namespace, &self.service)
    }

    /// Writes a batch out.
    pub fn flush(&self, metrics: &mut Metrics) {
        if !metrics.is_empty() {
            metrics.flush(self.sink.as_ref(), self.clock.now());
        }
    }

    /// Emits one value of `name` with extra dimensions.
    pub fn emit(&self, name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
        let mut m = self.batch();
        for (k, v) in dimensions {
            m = m.with_dimension(*k, *v);
        }
        m.add(name, unit, value);
        self.flush(&mut m);
    }

    /// Logs and counts an authentication failure (`AuthFailures` by `reason`). Never pass a
    /// secret: the key id and the source address are not secret.
    pub fn auth_failure(
        &self,
        reason: &str,
        key_id: Option<&str>,
        route: &str,
        source_ip: Option<&str>,
    ) {
        tracing::warn!(
            audit = "authentication",
            outcome = "refused",
            reason,
            key_id = key_id.unwrap_or("-"),
            route,
            source_ip = source_ip.unwrap_or("-"),
            "authentication failed"
        );
        self.emit("AuthFailures", Unit::Count, 1.0, &[("reason", reason)]);
    }

    /// Logs an accepted authentication for audit: how (`api_key`, `user_token`), the key id if
    /// any, the route and the source address. One line, no secret, no user identifier.
    pub fn auth_success(
        &self,
        method: &str,
        key_id: Option<&str>,
        route: &str,
        source_ip: Option<&str>,
    ) {
        tracing::info!(
            audit = "authentication",
            outcome = "accepted",
            method,
            key_id = key_id.unwrap_or("-"),
            route,
            source_ip = source_ip.unwrap_or("-"),
            "authentication succeeded"
        );
    }
}
