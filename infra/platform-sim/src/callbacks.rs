//! Verifier-authorization callbacks: records, Standard Webhooks signing (`v1` here, `v1a` in
//! [`crate::signing`]) and delivery with exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::app::App;
use crate::clock::rfc3339;
use crate::rng::digest;
use crate::state::{lock, stamp};

/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What `POST /sim/verifier-authorizations` accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRequest {
    /// The user who authorized the verifier.
    pub user_id: String,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema (program) the authorization is for.
    pub schema_id: String,
    /// Issuer DID to report (default: the credential's, else the configured one).
    #[serde(default)]
    pub issuer_did: Option<String>,
    /// Deliver the same event twice on purpose (same `webhook-id`).
    #[serde(default)]
    pub deliver_twice: bool,
    /// Deliver to this URL instead of the configured one.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The body's shape for this event (default: the simulator's `callback_shape`).
    #[serde(default)]
    pub shape: Option<CallbackShape>,
}

/// Which members a callback body carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackShape {
    /// Exactly the documented members: `userId`, `verifierDid`, `schemaId` (the default: what
    /// the platform's documents promise and no more).
    #[default]
    Minimal,
    /// The documented members plus `issuerDid`, `authorizedAt` and `eventId`.
    Rich,
}

impl std::str::FromStr for CallbackShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minimal" => Ok(Self::Minimal),
            "rich" => Ok(Self::Rich),
            other => Err(format!(
                "unknown callback shape {other:?} (minimal or rich)"
            )),
        }
    }
}

/// The callback body, as the receiver gets it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The user.
    pub user_id: String,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema.
    pub schema_id: String,
    /// The issuer DID (rich shape only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_did: Option<String>,
    /// When the verifier was authorized, RFC 3339 (rich shape only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_at: Option<String>,
    /// The event id (rich shape only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Delivery state of a callback record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Created, not sent yet (-1).
    NotSend,
    /// Being delivered (0).
    Pending,
    /// A receiver answered 2xx (1).
    Delivered,
    /// Every attempt failed (2).
    Failed,
}

impl DeliveryStatus {
    /// The platform's numeric code.
    #[must_use]
    pub const fn code(self) -> i8 {
        match self {
            Self::NotSend => -1,
            Self::Pending => 0,
            Self::Delivered => 1,
            Self::Failed => 2,
        }
    }
}

/// One delivery attempt.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Which delivery of the event this attempt belongs to (1, or 2 for a duplicate).
    pub delivery: u32,
    /// Attempt number within the delivery, from 1.
    pub attempt: u32,
    /// The `webhook-timestamp` sent.
    pub webhook_timestamp: i64,
    /// The receiver's status, when it answered.
    pub http_status: Option<u16>,
    /// Transport error or timeout, when it did not.
    pub error: Option<String>,
    /// Simulator time of the attempt, Unix milliseconds.
    pub at_ms: u64,
}

/// One callback event and its delivery history.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRecord {
    /// Record id (`cb_…`).
    pub id: String,
    /// The event id (also in the body of the rich shape).
    pub event_id: String,
    /// The `webhook-id` header, the same for every delivery of the event.
    pub webhook_id: String,
    /// Where it is delivered.
    pub url: String,
    /// Delivery state.
    pub status: DeliveryStatus,
    /// `status` as the platform's number.
    pub status_code: i8,
    /// The body.
    pub payload: CallbackBody,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// Deliveries that reached a 2xx.
    pub deliveries_done: u32,
    /// Deliveries requested (2 when delivered twice on purpose).
    pub deliveries_planned: u32,
}

/// All callback records.
#[derive(Default)]
pub struct CallbackBook {
    records: Vec<CallbackRecord>,
}

impl CallbackBook {
    /// Creates a record in state `NOT_SEND` and returns its id.
    pub fn create(
        &mut self,
        seed: u64,
        url: String,
        mut payload: CallbackBody,
        planned: u32,
    ) -> CallbackRecord {
        let n = (self.records.len() as u64 + 1).to_be_bytes();
        let id = format!(
            "cb_{}",
            &hex::encode(digest(seed, &[b"callback", &n]))[..20]
        );
        let event_id = format!("evt_{}", &hex::encode(digest(seed, &[b"event", &n]))[..24]);
        if payload.authorized_at.is_some() {
            // The rich shape carries the event id; the minimal one does not.
            payload.event_id = Some(event_id.clone());
        }
        let record = CallbackRecord {
            id,
            event_id,
            webhook_id: format!("msg_{}", &hex::encode(digest(seed, &[b"msg", &n]))[..24]),
            url,
            status: DeliveryStatus::NotSend,
            status_code: DeliveryStatus::NotSend.code(),
            payload,
            attempts: Vec::new(),
            deliveries_done: 0,
            deliveries_planned: planned,
        };
        self.records.push(record.clone());
        record
    }

    /// Every record, oldest first.
    #[must_use]
    pub fn all(&self) -> &[CallbackRecord] {
        &self.records
    }

    /// The record with this id.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut CallbackRecord> {
        self.records.iter_mut().find(|r| r.id == id)
    }
}

impl CallbackRecord {
    fn set_status(&mut self, status: DeliveryStatus) {
        self.status = status;
        self.status_code = status.code();
    }
}

/// The `webhook-signature` value: `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` for each
/// secret, space-separated.
#[must_use]
pub fn sign(secrets: &[Vec<u8>], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
            mac.update(format!("{webhook_id}.{timestamp}.").as_bytes());
            mac.update(body);
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            Some(format!("v1,{sig}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds the body of a new authorization event in `shape` (the event id of the rich shape is
/// filled in when the record is created).
#[must_use]
pub fn body_for(
    request: &AuthorizationRequest,
    shape: CallbackShape,
    issuer_did: String,
    now: std::time::SystemTime,
) -> CallbackBody {
    let rich = shape == CallbackShape::Rich;
    CallbackBody {
        user_id: request.user_id.clone(),
        verifier_did: request.verifier_did.clone(),
        schema_id: request.schema_id.clone(),
        issuer_did: rich.then_some(issuer_did),
        authorized_at: rich.then(|| rfc3339(now)),
        event_id: None,
    }
}

/// Delivers `deliveries` copies of the record's event, each with retries, updating the record.
pub async fn deliver(app: Arc<App>, record_id: String, deliveries: u32) {
    let Some((url, webhook_id, body)) = lock(&app.callbacks).get_mut(&record_id).map(|r| {
        if r.status == DeliveryStatus::NotSend {
            r.set_status(DeliveryStatus::Pending);
        }
        (
            r.url.clone(),
            r.webhook_id.clone(),
            serde_json::to_vec(&r.payload).unwrap_or_default(),
        )
    }) else {
        return;
    };
    let mut shutdown = app.shutdown.clone();
    let already_done = lock(&app.callbacks)
        .get_mut(&record_id)
        .map_or(0, |r| r.deliveries_done);
    for delivery in 1..=deliveries {
        let mut delivered = false;
        for attempt in 1..=app.config.callback_retries.saturating_add(1) {
            if attempt > 1 {
                let factor = 2u32.saturating_pow(attempt - 2);
                let backoff = app
                    .config
                    .callback_base_delay
                    .saturating_mul(factor)
                    .min(MAX_BACKOFF);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
            // Wall time: the receiver checks it against its own clock (±300 s).
            let timestamp = crate::clock::unix_secs(std::time::SystemTime::now());
            let mut request = app
                .client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", timestamp.to_string())
                .timeout(app.config.callback_timeout)
                .body(body.clone());
            let signature = app.signer.header(&webhook_id, timestamp, &body);
            if !signature.is_empty() {
                request = request.header("webhook-signature", signature);
            }
            let outcome = tokio::select! {
                r = request.send() => r,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let (http_status, error) = match outcome {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(e) if e.is_timeout() => (None, Some("timeout".to_owned())),
                Err(e) => (None, Some(format!("transport error: {e}"))),
            };
            let ok = http_status.is_some_and(|s| (200..300).contains(&s));
            if let Some(record) = lock(&app.callbacks).get_mut(&record_id) {
                record.attempts.push(Attempt {
                    delivery: already_done + delivery,
                    attempt,
                    webhook_timestamp: timestamp,
                    http_status,
                    error,
                    at_ms: stamp(app.clock.now()),
                });
                if ok {
                    record.deliveries_done += 1;
                    record.set_status(DeliveryStatus::Delivered);
                }
            }
            if ok {
                delivered = true;
                break;
            }
        }
        if !delivered {
            if let Some(record) = lock(&app.callbacks).get_mut(&record_id)
                && record.deliveries_done == 0
            {
                record.set_status(DeliveryStatus::Failed);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signature_per_secret_is_sent() {
        let sig = sign(&[b"a".to_vec(), b"b".to_vec()], "msg_1", 1, b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    }
}
