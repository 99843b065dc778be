//! JSON log lines with the keys AWS Lambda Powertools uses, so the partner's existing log queries
//! and dashboards work unchanged: `level`, `message`, `timestamp`, `service`, `cold_start`,
//! `function_name`, `function_request_id`, `xray_trace_id`, then the event's own fields.
//!
//! Written as a small `tracing` layer because `tracing-subscriber`'s JSON formatter nests span
//! fields and cannot add fixed keys such as `service`; everything else (filtering, dispatch) is
//! `tracing-subscriber`. The request id and trace id come from the span `lambda_runtime` opens
//! around each invocation (`requestId`, `xrayTraceId`), or from any span with the Powertools names.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::{Clock, SystemClock};

/// The span `lambda_runtime` opens around every invocation.
const RUNTIME_SPAN: &str = "Lambda runtime invoke";

/// Fields collected from a span, kept in its extensions.
#[derive(Default)]
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "requestId" => "function_request_id",
            "xrayTraceId" => "xray_trace_id",
            other => other,
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// The layer that writes one Powertools-shaped JSON line per event.
pub struct PowertoolsLayer<W> {
    service: String,
    function_name: Option<String>,
    writer: W,
    cold_start_pending: AtomicBool,
}

impl<W> PowertoolsLayer<W> {
    /// A layer for `service`, naming the function from `AWS_LAMBDA_FUNCTION_NAME` when set.
    pub fn new(service: impl Into<String>, writer: W) -> Self {
        Self {
            service: service.into(),
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            writer,
            cold_start_pending: AtomicBool::new(true),
        }
    }
}

impl<S, W> Layer<S> for PowertoolsLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        if attrs.metadata().name() == RUNTIME_SPAN || fields.0.contains_key("function_request_id") {
            // The first invocation of this process is the cold start.
            let cold = self.cold_start_pending.swap(false, Ordering::SeqCst);
            fields.0.insert("cold_start".into(), Value::Bool(cold));
        }
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert("message".into(), Value::String(String::new()));
        line.insert(
            "timestamp".into(),
            Value::String(SystemClock.now().to_rfc3339()),
        );
        line.insert("service".into(), Value::String(self.service.clone()));
        if let Some(name) = &self.function_name {
            line.insert("function_name".into(), Value::String(name.clone()));
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        line.insert(
            "logger".into(),
            Value::String(event.metadata().target().to_owned()),
        );
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = self.writer.make_writer().write_all(text.as_bytes());
    }
}

/// The level filter: `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging control) wins, then
/// `RUST_LOG` (full directive syntax), then `info`. The AWS SDK's own chatter is kept at `warn`
/// unless `RUST_LOG` asks for it explicitly.
pub fn filter_from_env() -> EnvFilter {
    filter_from(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    )
}

/// The level filter for the given `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG` values.
pub fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    // The HTTP and SDK crates log at `warn` at most, and never more than the chosen level.
    let with_quiet_sdk = |level: &str| {
        let sdk = if level == "error" { "error" } else { "warn" };
        EnvFilter::new(format!(
            "{level},aws_smithy_runtime={sdk},aws_config={sdk},hyper={sdk},rustls={sdk},h2={sdk}"
        ))
    };
    if let Some(level) = lambda_level {
        return with_quiet_sdk(match level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "warn" | "warning" => "warn",
            "error" | "fatal" => "error",
            _ => "info",
        });
    }
    match rust_log {
        Some(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => with_quiet_sdk("info"),
    }
}

/// The crates whose debug and trace events carry whole events, requests, responses or headers
/// (`lambda_runtime` logs every raw event at `TRACE`; the SDK's orchestrator logs responses,
/// secret values included): each is held at the level given, whatever the configured filter
/// says, so that no configuration writes a bearer token, a signature, an e-mail address, a
/// document or a secret to the logs.
pub const CAPPED_TARGETS: [(&str, LevelFilter); 16] = [
    ("lambda_runtime", LevelFilter::INFO),
    ("lambda_runtime_api_client", LevelFilter::INFO),
    ("lambda_http", LevelFilter::INFO),
    ("aws_lambda_events", LevelFilter::INFO),
    ("hyper", LevelFilter::WARN),
    ("hyper_util", LevelFilter::WARN),
    ("h2", LevelFilter::WARN),
    ("reqwest", LevelFilter::WARN),
    ("rustls", LevelFilter::WARN),
    ("tower", LevelFilter::WARN),
    ("aws_smithy_runtime", LevelFilter::WARN),
    ("aws_smithy_runtime_api", LevelFilter::WARN),
    ("aws_smithy_http", LevelFilter::WARN),
    ("aws_sigv4", LevelFilter::WARN),
    ("aws_config", LevelFilter::WARN),
    ("aws_sdk_secretsmanager", LevelFilter::WARN),
];

/// The cap of [`CAPPED_TARGETS`], as a filter that every log line must also pass. A filter of
/// its own (not directives added to the configured one), so that no directive, however
/// specific, can lift it.
pub fn capped() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS)
        .with_target("aws_sdk_dynamodb", LevelFilter::WARN)
}

/// Installs the JSON logger for `service` on standard output as the process's global subscriber
/// (where Lambda collects it). Calling it twice is harmless (the second call does nothing).
pub fn init(service: &str) {
    let subscriber = tracing_subscriber::registry()
        .with(filter_from_env())
        .with(capped())
        .with(PowertoolsLayer::new(service, std::io::stdout));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The same logger on standard error, for local tools whose standard output is their result
/// (the devstack's ready line).
pub fn init_on_stderr(service: &str) {
    let subscriber = tracing_subscriber::registry()
        .with(filter_from_env())
        .with(capped())
        .with(PowertoolsLayer::new(service, std::io::stderr));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Captured log output, for tests that prove what is (and is not) logged.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// A capture and a subscriber writing into it at `debug` level. Use it with
    /// `tracing::subscriber::set_default` or `WithSubscriber::with_subscriber`.
    pub fn new(service: &str) -> (Self, tracing::Dispatch) {
        Self::filtered(service, EnvFilter::new("debug"))
    }

    /// A capture behind `filter` and the same cap [`init`] installs.
    pub fn filtered(service: &str, filter: EnvFilter) -> (Self, tracing::Dispatch) {
        let capture = Self::default();
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(capped())
            .with(PowertoolsLayer::new(service, capture.clone()));
        (capture, tracing::Dispatch::new(subscriber))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Every line parsed as JSON (a line that is not JSON becomes a string value).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_owned())))
            .collect()
    }
}

/// The writer handed out by [`LogCapture`].
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_trace_the_runtime_and_sdk_crates_write_nothing_below_their_cap_whatever_the_directives() {
        for (lambda_level, rust_log) in [
            (Some("TRACE"), None),
            (None, Some("trace")),
            (
                None,
                Some("trace,lambda_runtime=trace,lambda_runtime::layers::api_response=trace"),
            ),
            (
                None,
                Some("aws_smithy_runtime::client::orchestrator=trace,hyper=trace"),
            ),
        ] {
            let (capture, dispatch) =
                LogCapture::filtered("issue", filter_from(lambda_level, rust_log));
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::trace!(
                    target: "lambda_runtime::layers::api_response",
                    body = "{\"authorization\":\"Bearer eyJsecret\"}",
                    "raw JSON event received from Lambda"
                );
                tracing::debug!(
                    target: "aws_smithy_runtime::client::orchestrator",
                    response = "SecretString: sk_live_secret",
                    "received response"
                );
                tracing::trace!(target: "hyper::proto::h1", "x-signature: 0123abcd");
                tracing::trace!(target: "issue::flow", "our own trace line");
                tracing::info!(target: "lambda_runtime", "runtime started");
            });
            let text = capture.text();
            let case = format!("{lambda_level:?} {rust_log:?}");
            for leaked in ["eyJsecret", "sk_live_secret", "0123abcd"] {
                assert!(
                    !text.contains(leaked),
                    "{case}: {leaked} was logged: {text}"
                );
            }
            let kept = rust_log.is_none_or(|r| r.starts_with("trace"));
            assert_eq!(text.contains("our own trace line"), kept, "{case}: {text}");
            if kept {
                assert!(
                    text.contains("runtime started"),
                    "the cap keeps INFO: {case}: {text}"
                );
            }
        }
    }

    #[test]
    fn lambdas_log_level_wins_over_rust_log_and_info_is_the_default() {
        let max = |l: Option<&str>, r: Option<&str>| filter_from(l, r).max_level_hint();
        assert_eq!(max(Some("DEBUG"), Some("error")), Some(LevelFilter::DEBUG));
        assert_eq!(max(Some("WARN"), None), Some(LevelFilter::WARN));
        assert_eq!(max(Some("FATAL"), None), Some(LevelFilter::ERROR));
        assert_eq!(max(Some("nonsense"), None), Some(LevelFilter::INFO));
        assert_eq!(max(None, Some("warn")), Some(LevelFilter::WARN));
        assert_eq!(max(None, Some("  ")), Some(LevelFilter::INFO));
        assert_eq!(max(None, None), Some(LevelFilter::INFO));
    }

    #[test]
    fn a_log_line_has_the_powertools_keys() {
        let (capture, dispatch) = LogCapture::new("token-mint");
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "req-1",
                xrayTraceId = "Root=1-abc"
            );
            let _g = span.enter();
            tracing::info!(kid = "k1", "token minted");
        });
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "token minted");
        assert_eq!(l["service"], "token-mint");
        assert_eq!(l["function_request_id"], "req-1");
        assert_eq!(l["xray_trace_id"], "Root=1-abc");
        assert_eq!(l["cold_start"], true);
        assert_eq!(l["kid"], "k1");
        assert!(
            l["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.contains('T'))
        );
    }

    #[test]
    fn only_the_first_invocation_is_a_cold_start() {
        let (capture, dispatch) = LogCapture::new("jwks");
        tracing::dispatcher::with_default(&dispatch, || {
            for id in ["a", "b"] {
                let span = tracing::info_span!("Lambda runtime invoke", requestId = id);
                let _g = span.enter();
                tracing::info!("served");
            }
        });
        let cold: Vec<_> = capture
            .lines()
            .iter()
            .map(|l| l["cold_start"].clone())
            .collect();
        assert_eq!(cold, vec![Value::Bool(true), Value::Bool(false)]);
    }

    #[test]
    fn redacted_values_stay_redacted_in_log_lines() {
        let (capture, dispatch) = LogCapture::new("issue");
        let secret = crate::redact::SecretString::from("sk_live_do_not_log");
        let email = crate::redact::Pii::new(String::from("carol@example.com"));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(secret = ?secret, email = ?email, "auth failure");
        });
        let text = capture.text();
        assert!(text.contains("auth failure"));
        assert!(!text.contains("sk_live_do_not_log"), "{text}");
        assert!(!text.contains("carol@example.com"), "{text}");
    }
}
