//! CloudWatch Embedded Metric Format: metrics written as structured log lines that CloudWatch
//! turns into metrics without any API call from the function.
//!
//! Written by hand because EMF is a small JSON document and the crates that produce it hook into a
//! process-global metrics recorder, which would make per-invocation capture in tests awkward. The
//! writer respects the format's limits: at most 100 metric names per document and at most 100
//! values per metric; more is split over several lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::clock::Timestamp;

/// CloudWatch's limit on metric definitions in one EMF document.
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// CloudWatch's limit on values in one metric's array.
pub const MAX_VALUES_PER_METRIC: usize = 100;

/// The unit of a metric, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of events.
    Count,
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Bytes.
    Bytes,
    /// No unit.
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
            Self::Milliseconds => "Milliseconds",
            Self::Bytes => "Bytes",
            Self::None => "None",
        }
    }
}

/// Where EMF lines go: standard output in Lambda, memory in tests.
pub trait MetricSink: Send + Sync {
    /// Writes one complete EMF document (one line).
    fn write_line(&self, line: &str);
}

/// Standard output, where Lambda's log agent picks EMF documents up.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl MetricSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
    }
}

/// Keeps lines in memory, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemorySink(Arc<Mutex<Vec<String>>>);

impl MemorySink {
    /// Every document written so far, parsed.
    pub fn documents(&self) -> Vec<Value> {
        self.0
            .lock()
            .map(|l| {
                l.iter()
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sum of every value written for metric `name`.
    pub fn total(&self, name: &str) -> f64 {
        self.documents()
            .iter()
            .map(|d| match &d[name] {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::Array(a) => a.iter().filter_map(Value::as_f64).sum(),
                _ => 0.0,
            })
            .sum()
    }
}

impl MetricSink for MemorySink {
    fn write_line(&self, line: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(line.to_owned());
        }
    }
}

#[derive(Debug, Clone)]
struct Series {
    name: String,
    unit: Unit,
    values: Vec<f64>,
}

/// A batch of metrics sharing a namespace and dimensions, flushed as EMF documents.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    series: Vec<Series>,
}

impl Metrics {
    /// A batch in `namespace` with the `service` dimension.
    pub fn new(namespace: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: vec![("service".into(), service.into())],
            series: Vec::new(),
        }
    }

    /// Adds a dimension (CloudWatch allows 30; more are ignored).
    pub fn with_dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if self.dimensions.len() < 30 {
            self.dimensions.push((name.into(), value.into()));
        }
        self
    }

    /// Records one value of metric `name`.
    pub fn add(&mut self, name: &str, unit: Unit, value: f64) {
        match self.series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.values.push(value),
            None => self.series.push(Series {
                name: name.to_owned(),
                unit,
                values: vec![value],
            }),
        }
    }

    /// Records a count of 1.
    pub fn count(&mut self, name: &str) {
        self.add(name, Unit::Count, 1.0);
    }

    /// Whether anything is waiting to be flushed.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The EMF documents for everything recorded, stamped `now`; the batch is emptied.
    pub fn take_documents(&mut self, now: Timestamp) -> Vec<Value> {
        // Split every series into chunks of at most 100 values, then pack chunks into documents
        // holding at most 100 metric names, each name at most once per document.
        let mut docs: Vec<Vec<(String, Unit, Vec<f64>)>> = Vec::new();
        for s in std::mem::take(&mut self.series) {
            for chunk in s.values.chunks(MAX_VALUES_PER_METRIC) {
                let slot = docs.iter_mut().find(|d| {
                    d.len() < MAX_METRICS_PER_DOCUMENT && !d.iter().any(|(n, _, _)| *n == s.name)
                });
                let entry = (s.name.clone(), s.unit, chunk.to_vec());
                match slot {
                    Some(d) => d.push(entry),
                    None => docs.push(vec![entry]),
                }
            }
        }
        docs.into_iter().map(|d| self.document(now, d)).collect()
    }

    fn document(&self, now: Timestamp, entries: Vec<(String, Unit, Vec<f64>)>) -> Value {
        let mut root = Map::new();
        let definitions: Vec<Value> = entries
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        // Every metric is also rolled up by `service` alone, so that an alarm (or an anomaly
        // detection band, which cannot sum over a dimension) can watch the service's total.
        let mut dimension_sets = vec![dimension_names];
        if dimension_sets[0].len() > 1 {
            dimension_sets.push(vec!["service"]);
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": now.as_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimension_sets,
                    "Metrics": definitions,
                }],
            }),
        );
        for (k, v) in &self.dimensions {
            root.insert(k.clone(), Value::String(v.clone()));
        }
        for (name, _, values) in entries {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(name, value);
        }
        Value::Object(root)
    }

    /// Writes everything recorded to `sink` and empties the batch.
    pub fn flush(&mut self, sink: &dyn MetricSink, now: Timestamp) {
        for doc in self.take_documents(now) {
            sink.write_line(&doc.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_names_namespace_dimensions_units_and_values() {
        let mut m = Metrics::new("PartnerBundle", "issue").with_dimension("route", "credentials");
        m.count("Issuances");
        m.add("WaitOnchainSeconds", Unit::Seconds, 12.5);
        m.add("WaitOnchainSeconds", Unit::Seconds, 3.0);
        let docs = m.take_documents(Timestamp::from_millis(42));
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["_aws"]["Timestamp"], 42);
        assert_eq!(directive["Namespace"], "PartnerBundle");
        assert_eq!(
            directive["Dimensions"],
            json!([["service", "route"], ["service"]]),
            "every metric is rolled up by service"
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Issuances", "Unit": "Count"}, {"Name": "WaitOnchainSeconds", "Unit": "Seconds"}])
        );
        assert_eq!(d["service"], "issue");
        assert_eq!(d["route"], "credentials");
        assert_eq!(d["Issuances"], json!(1.0));
        assert_eq!(d["WaitOnchainSeconds"], json!([12.5, 3.0]));
        assert!(m.is_empty());
    }

    #[test]
    fn a_metric_with_only_the_service_dimension_has_one_dimension_set() {
        let mut m = Metrics::new("N", "s");
        m.count("Runs");
        let docs = m.take_documents(Timestamp::from_millis(0));
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service"]])
        );
    }

    #[test]
    fn more_than_a_hundred_metrics_are_split_over_documents() {
        let mut m = Metrics::new("N", "s");
        for i in 0..250 {
            m.count(&format!("m{i}"));
        }
        let docs = m.take_documents(Timestamp::from_millis(0));
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }

    #[test]
    fn more_than_a_hundred_values_of_one_metric_are_split_and_none_lost() {
        let mut m = Metrics::new("N", "s");
        for _ in 0..230 {
            m.count("Polled");
        }
        let sink = MemorySink::default();
        m.flush(&sink, Timestamp::from_millis(0));
        let docs = sink.documents();
        assert_eq!(docs.len(), 3);
        assert!(
            docs.iter()
                .all(|d| d["Polled"].as_array().is_some_and(|a| a.len() <= 100))
        );
        assert_eq!(sink.total("Polled"), 230.0);
    }
}
