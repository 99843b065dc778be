//! Routing by `schemaId`: a configured table maps each schema id to handlers behind one trait.
//!
//! A handler takes part in two moments:
//! - [`CallbackRoute::records`]: records written **in the same atomic write** as the dedup and
//!   audit records — all of them or none, so a recorded event is never missing its route's
//!   record, and a duplicate writes nothing;
//! - [`CallbackRoute::deliver`]: side effects once the event is recorded, for a new event only
//!   (never for a duplicate). A failure there is logged and counted; the callback is still
//!   acknowledged, because the event is recorded and a retry would be deduplicated anyway.
//!
//! Shipped handlers: [`ComplianceRecord`] (`compliance`) records the authorization for the
//! issuer's compliance review; [`EventForwarder`] (`events`) forwards it as an EventBridge-shaped
//! event to an [`EventSink`] (one JSON line on standard output in Lambda).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::config::ConfigError;
use shared::pii::{PiiError, Protector};
use shared::store::{InvalidName, NewRecord, RecordKey, RecordKind};

use crate::event::ConsentEvent;

/// The routing table used when `CALLBACK_ROUTES_JSON` is not set: the sample programs, each to
/// the compliance record and the event forwarder.
pub const DEFAULT_ROUTES_JSON: &str = r#"{"kyc-basic": ["compliance", "events"], "kyc-document-r1": ["compliance", "events"], "kyc-document-k1": ["compliance", "events"]}"#;

/// The schema id that matches every schema without an entry of its own.
pub const WILDCARD: &str = "*";

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The user id could not be sealed.
    #[error("cannot protect the user id: {0}")]
    Pii(#[from] PiiError),
    /// A record key could not be formed.
    #[error(transparent)]
    Key(#[from] InvalidName),
    /// Anything else a handler reports.
    #[error("{0}")]
    Failed(String),
}

/// What a handler may use besides the event.
pub struct RouteContext<'a> {
    /// Seals personal data for storage.
    pub protector: &'a Protector,
}

/// A handler of consent events.
#[async_trait]
pub trait CallbackRoute: Send + Sync {
    /// The name the routing table refers to it by.
    fn name(&self) -> &str;

    /// Records to create atomically with the dedup and audit records (default: none). Keys must
    /// be `CB#…` or `AUDIT#…` (the function's IAM policy allows no other kind) and unique to the
    /// consent event: derive them from [`ConsentEvent::occurrence`], since the same user may
    /// authorize the same verifier again after the dedup window.
    ///
    /// # Errors
    /// A [`RouteError`]; the event is then not recorded and the platform's retry tries again.
    fn records(
        &self,
        _event: &ConsentEvent,
        _ctx: &RouteContext<'_>,
    ) -> Result<Vec<NewRecord>, RouteError> {
        Ok(Vec::new())
    }

    /// Runs once the event is recorded, for a new event only (default: nothing).
    ///
    /// # Errors
    /// A [`RouteError`], logged and counted as `CallbackRouteFailures`.
    async fn deliver(&self, _event: &ConsentEvent) -> Result<(), RouteError> {
        Ok(())
    }
}

/// Records each consent event for the issuer's compliance review: `CB#compliance-<occurrence>`
/// (see [`ConsentEvent::occurrence`]) with the event's facts and the user id sealed (AES-256-GCM under the data keys, bound to the
/// record key), so that a reviewer holding the data keys can tell whose consent it was.
#[derive(Debug, Default, Clone, Copy)]
pub struct ComplianceRecord;

impl ComplianceRecord {
    /// The key of the compliance record of the consent event with this occurrence id.
    ///
    /// # Errors
    /// Never for an occurrence id the receiver derived.
    pub fn key(occurrence: &str) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Callback, &format!("compliance-{occurrence}"))
    }
}

#[async_trait]
impl CallbackRoute for ComplianceRecord {
    fn name(&self) -> &str {
        "compliance"
    }

    fn records(
        &self,
        event: &ConsentEvent,
        ctx: &RouteContext<'_>,
    ) -> Result<Vec<NewRecord>, RouteError> {
        let key = Self::key(&event.occurrence())?;
        let sealed = ctx.protector.seal(&event.user_id, key.as_str())?;
        let mut data = event.facts();
        if let Some(obj) = data.as_object_mut() {
            obj.insert("type".into(), json!("cakAuthorization"));
            obj.insert("userIdSealed".into(), json!(sealed));
            obj.insert("review".into(), json!("pending"));
        }
        Ok(vec![NewRecord::new(key, data)])
    }
}

/// Where forwarded events go.
pub trait EventSink: Send + Sync {
    /// Publishes one event.
    fn publish(&self, event: &Value);
}

/// One JSON line per event on standard output, where Lambda's log agent picks it up (a
/// CloudWatch Logs subscription filter on `detail-type` can forward it to EventBridge).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutEventSink;

impl EventSink for StdoutEventSink {
    fn publish(&self, event: &Value) {
        let mut line = event.to_string();
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// The event as a structured log line (`callback_events` target): for the devstack.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEventSink;

impl EventSink for LogEventSink {
    fn publish(&self, event: &Value) {
        tracing::info!(target: "callback_events", event = %event, "callback event forwarded");
    }
}

/// Keeps events in memory, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryEventSink(Arc<Mutex<Vec<Value>>>);

impl MemoryEventSink {
    /// Every event published so far.
    pub fn events(&self) -> Vec<Value> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventSink for MemoryEventSink {
    fn publish(&self, event: &Value) {
        if let Ok(mut e) = self.0.lock() {
            e.push(event.clone());
        }
    }
}

/// The `source` of forwarded events.
pub const EVENT_SOURCE: &str = "partner-bundle.callbacks";
/// The `detail-type` of forwarded events.
pub const EVENT_DETAIL_TYPE: &str = "CAK Authorization Granted";

/// Forwards each authorization as an EventBridge-shaped event: `{version, id, source,
/// detail-type, time, resources, detail}` with the event's facts (no personal data) as detail.
#[derive(Clone)]
pub struct EventForwarder {
    sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for EventForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventForwarder").finish_non_exhaustive()
    }
}

impl EventForwarder {
    /// A forwarder publishing to `sink`.
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Self { sink }
    }

    /// The event for `consent`.
    pub fn event(consent: &ConsentEvent) -> Value {
        json!({
            "version": "0",
            "id": consent.delivery_id.clone().unwrap_or_else(|| consent.occurrence()),
            "source": EVENT_SOURCE,
            "detail-type": EVENT_DETAIL_TYPE,
            "time": consent.time().to_rfc3339(),
            "resources": [],
            "detail": consent.facts(),
        })
    }
}

#[async_trait]
impl CallbackRoute for EventForwarder {
    fn name(&self) -> &str {
        "events"
    }

    async fn deliver(&self, event: &ConsentEvent) -> Result<(), RouteError> {
        self.sink.publish(&Self::event(event));
        Ok(())
    }
}

/// The shipped handlers: [`ComplianceRecord`] and an [`EventForwarder`] to `sink`.
pub fn default_handlers(sink: Arc<dyn EventSink>) -> Vec<Arc<dyn CallbackRoute>> {
    vec![
        Arc::new(ComplianceRecord),
        Arc::new(EventForwarder::new(sink)),
    ]
}

/// One entry of the routing configuration: a handler name or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

/// `CALLBACK_ROUTES_JSON`: a JSON object from schema id (or `*`) to a handler name or a list of
/// handler names. A schema with an empty list is known and acknowledged, but handled by nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig(BTreeMap<String, Vec<String>>);

impl RouteConfig {
    /// Parses the configuration.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, Names> = serde_json::from_str(text).map_err(|_| {
            "is not a JSON object from schema id to a handler name or a list of names".to_owned()
        })?;
        let mut table = BTreeMap::new();
        for (schema, names) in raw {
            if schema.trim().is_empty() || schema.chars().any(char::is_control) {
                return Err("has an empty schema id".to_owned());
            }
            let names = match names {
                Names::One(n) => vec![n],
                Names::Many(v) => v,
            };
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(format!("names an empty handler for schema {schema:?}"));
            }
            table.insert(schema, names);
        }
        Ok(Self(table))
    }

    /// The schema ids and their handler names.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self::parse(DEFAULT_ROUTES_JSON).unwrap_or_else(|_| Self(BTreeMap::new()))
    }
}

/// The routing table: schema id → handlers.
#[derive(Clone, Default)]
pub struct RouteTable {
    by_schema: HashMap<String, Vec<Arc<dyn CallbackRoute>>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (schema, routes) in &self.by_schema {
            m.entry(schema, &routes.iter().map(|r| r.name()).collect::<Vec<_>>());
        }
        m.finish()
    }
}

impl RouteTable {
    /// The table for `config`, resolving names among `handlers`.
    ///
    /// # Errors
    /// A [`ConfigError`] on `CALLBACK_ROUTES_JSON` naming an unknown handler.
    pub fn build(
        config: &RouteConfig,
        handlers: &[Arc<dyn CallbackRoute>],
    ) -> Result<Self, ConfigError> {
        let mut by_schema = HashMap::new();
        for (schema, names) in config.entries() {
            let mut routes = Vec::with_capacity(names.len());
            for name in names {
                let handler = handlers.iter().find(|h| h.name() == name).ok_or_else(|| {
                    let known: Vec<&str> = handlers.iter().map(|h| h.name()).collect();
                    ConfigError::new(
                        "CALLBACK_ROUTES_JSON",
                        format!(
                            "names the unknown handler {name:?} (known: {})",
                            known.join(", ")
                        ),
                    )
                })?;
                if !routes
                    .iter()
                    .any(|r: &Arc<dyn CallbackRoute>| r.name() == name)
                {
                    routes.push(Arc::clone(handler));
                }
            }
            by_schema.insert(schema.to_owned(), routes);
        }
        Ok(Self { by_schema })
    }

    /// The handlers of `schema_id` (its own entry, else the wildcard's), or `None` when the
    /// schema is unknown.
    pub fn routes_for(&self, schema_id: &str) -> Option<&[Arc<dyn CallbackRoute>]> {
        self.by_schema
            .get(schema_id)
            .or_else(|| self.by_schema.get(WILDCARD))
            .map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handlers() -> Vec<Arc<dyn CallbackRoute>> {
        default_handlers(Arc::new(MemoryEventSink::default()))
    }

    #[test]
    fn the_default_table_routes_the_sample_programs_to_both_shipped_handlers() {
        let table = RouteTable::build(&RouteConfig::default(), &handlers()).unwrap();
        let names: Vec<&str> = table
            .routes_for("kyc-document-r1")
            .unwrap()
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, vec!["compliance", "events"]);
        assert!(table.routes_for("unknown-schema").is_none());
    }

    #[test]
    fn a_name_or_a_list_is_accepted_and_the_wildcard_catches_the_rest() {
        let config =
            RouteConfig::parse(r#"{"a": "events", "b": [], "*": ["compliance"]}"#).unwrap();
        let table = RouteTable::build(&config, &handlers()).unwrap();
        assert_eq!(table.routes_for("a").unwrap()[0].name(), "events");
        assert!(table.routes_for("b").unwrap().is_empty());
        assert_eq!(table.routes_for("zzz").unwrap()[0].name(), "compliance");
    }

    #[test]
    fn an_unknown_handler_or_a_malformed_table_is_a_configuration_error() {
        let config = RouteConfig::parse(r#"{"a": "nope"}"#).unwrap();
        let e = RouteTable::build(&config, &handlers()).unwrap_err();
        assert_eq!(e.var, "CALLBACK_ROUTES_JSON");
        assert!(e.problem.contains("nope"));
        assert!(RouteConfig::parse("[]").is_err());
        assert!(RouteConfig::parse(r#"{"a": 1}"#).is_err());
        assert!(RouteConfig::parse(r#"{"": "events"}"#).is_err());
        assert!(RouteConfig::parse(r#"{"a": [""]}"#).is_err());
    }
}
