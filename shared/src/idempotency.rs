//! Idempotent request handling over the record store (docs/architecture.md §5 step 3).
//!
//! A record keyed by (caller, `Idempotency-Key`) moves `INPROGRESS` → `COMPLETED`:
//! - the first request creates it `INPROGRESS` with a lease (the time the caller's invocation has
//!   left) and the payload's hash — one conditional create;
//! - the same key with the same payload again gets the stored response (`Idempotent-Replayed:
//!   true`) — the failed create returns the existing record, so a replay costs one store call;
//! - the same key with another payload is refused (`422 idempotency_key_reused`);
//! - the same key while the first attempt still holds its lease is refused (`409
//!   request_in_progress` with `Retry-After`); a lease with 0 ms left is still a lease;
//! - an attempt that crashed leaves an expired lease: the next request takes the record over with
//!   a conditional replace, and exactly one taker wins;
//! - an attempt that failed releases the key (conditional remove), so the client may retry.
//!
//! Records expire after a configurable window (default 24 h) through the store's TTL.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock::{SharedClock, Timestamp};
use crate::error::{ApiError, ErrorType};
use crate::pii::{DigestPurpose, DocumentDigest, Fingerprint, Protector};
use crate::store::{
    NewRecord, Record, RecordKey, RecordKind, RecordStore, StoreError, Version, Write,
};

/// The default time an idempotency record is kept.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A validated `Idempotency-Key` header value: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the header value.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let ok =
            !text.is_empty() && text.len() <= 255 && text.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(ApiError::new(
                ErrorType::ValidationFailed,
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ))
        }
    }
}

/// The keyed fingerprint of a request's payload: method, path and the JSON body in canonical form
/// (object keys sorted), so formatting differences do not count as another payload. Keyed (see
/// [`Protector::digest`]) because the record outlives the request and the body holds personal
/// data: a plain hash would let whoever reads the table confirm a guessed body.
pub fn payload_digest(
    protector: &Protector,
    method: &str,
    path: &str,
    body: &Value,
) -> DocumentDigest {
    // serde_json's Map is ordered by key (no `preserve_order`): this is canonical enough.
    let document = Zeroizing::new(format!("{method}\n{path}\n{body}"));
    protector.digest(DigestPurpose::RequestPayload, document.as_bytes())
}

/// A response kept for replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (never secrets or PII).
    pub body: Value,
}

/// The right to process a request, held until completed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: RecordKey,
    version: Version,
    payload_hash: Fingerprint,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Begin {
    /// Process it; complete or release the lease afterwards.
    Proceed(Lease),
    /// It was processed before: answer this.
    Replay(StoredResponse),
}

/// Why a request cannot be processed now.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used with another payload.
    #[error("the Idempotency-Key was used with another payload")]
    KeyReused,
    /// Another attempt holds the key.
    #[error("a request with this Idempotency-Key is in progress")]
    InProgress {
        /// Seconds until its lease ends.
        retry_after_secs: u64,
    },
    /// The lease was taken over (this attempt ran past it); its outcome must not be stored.
    #[error("the idempotency lease was lost")]
    LeaseLost,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdempotencyError {
    /// The answer to the caller.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::KeyReused => ApiError::new(
                ErrorType::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different payload",
            ),
            Self::InProgress { retry_after_secs } => ApiError::new(
                ErrorType::RequestInProgress,
                "a request with this Idempotency-Key is in progress; retry later",
            )
            .with_retry_after(*retry_after_secs),
            Self::LeaseLost => {
                ApiError::new(ErrorType::Conflict, "the request was taken over by a retry")
            }
            Self::Store(_) => ApiError::internal(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    status: State,
    payload_hash: Fingerprint,
    lease_until: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<StoredResponse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum State {
    Inprogress,
    Completed,
}

/// Idempotency over a record store.
pub struct Idempotency<'a> {
    store: &'a dyn RecordStore,
    clock: &'a SharedClock,
    window: Duration,
}

impl<'a> Idempotency<'a> {
    /// Idempotency records in `store`, kept for `window`.
    pub fn new(store: &'a dyn RecordStore, clock: &'a SharedClock, window: Duration) -> Self {
        Self {
            store,
            clock,
            window,
        }
    }

    fn record_key(caller: &str, key: &IdempotencyKey) -> Result<RecordKey, IdempotencyError> {
        let id = hex::encode(Sha256::digest(format!("{caller}\n{}", key.0).as_bytes()));
        RecordKey::new(RecordKind::Idempotency, &id)
            .map_err(|e| IdempotencyError::Store(StoreError::Unavailable(Box::new(e))))
    }

    fn in_progress(
        &self,
        key: RecordKey,
        payload_hash: &Fingerprint,
        lease_until: Timestamp,
    ) -> NewRecord {
        // A struct of strings and numbers always serializes.
        let body = serde_json::to_value(Body {
            status: State::Inprogress,
            payload_hash: payload_hash.clone(),
            lease_until,
            response: None,
        })
        .unwrap_or(Value::Null);
        NewRecord::new(key, body).expiring_at(self.clock.now().plus(self.window))
    }

    /// Starts handling a request of `caller` with `key` whose payload has the fingerprint
    /// `payload` ([`payload_digest`]); the lease lasts until `lease_until` (the caller's deadline).
    pub async fn begin(
        &self,
        caller: &str,
        key: &IdempotencyKey,
        payload: &DocumentDigest,
        lease_until: Timestamp,
    ) -> Result<Begin, IdempotencyError> {
        let payload_hash = Fingerprint::from(payload);
        let record_key = Self::record_key(caller, key)?;
        let record = self.in_progress(record_key.clone(), &payload_hash, lease_until);
        let existing = match self.store.write(Write::Create(record.clone())).await {
            Ok(version) => {
                return Ok(Begin::Proceed(Lease {
                    key: record_key,
                    version,
                    payload_hash: payload_hash.clone(),
                }));
            }
            Err(StoreError::AlreadyExists {
                existing: Some(r), ..
            }) => *r,
            Err(StoreError::AlreadyExists { existing: None, .. }) => {
                match self.store.get(&record_key).await? {
                    Some(r) => r,
                    // Gone between the two calls (expired or released): one more try.
                    None => {
                        let version = self.store.write(Write::Create(record)).await?;
                        return Ok(Begin::Proceed(Lease {
                            key: record_key,
                            version,
                            payload_hash: payload_hash.clone(),
                        }));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.decide(existing, record, payload).await
    }

    async fn decide(
        &self,
        existing: Record,
        fresh: NewRecord,
        payload: &DocumentDigest,
    ) -> Result<Begin, IdempotencyError> {
        let body: Body = serde_json::from_value(existing.data.clone()).map_err(|e| {
            IdempotencyError::Store(StoreError::Corrupt {
                location: existing.key.to_string(),
                detail: e.to_string(),
            })
        })?;
        if !payload.matches(&body.payload_hash) {
            return Err(IdempotencyError::KeyReused);
        }
        if let (State::Completed, Some(response)) = (body.status, body.response) {
            return Ok(Begin::Replay(response));
        }
        let now = self.clock.now();
        if body.lease_until >= now {
            // Still leased — including a lease with 0 ms left.
            let secs = body.lease_until.since(now).as_millis().div_ceil(1000);
            return Err(IdempotencyError::InProgress {
                retry_after_secs: u64::try_from(secs).unwrap_or(u64::MAX).max(1),
            });
        }
        // The previous attempt died without finishing: take the record over, once.
        match self
            .store
            .write(Write::Replace {
                record: fresh,
                expected: existing.version,
            })
            .await
        {
            Ok(version) => Ok(Begin::Proceed(Lease {
                key: existing.key,
                version,
                payload_hash: Fingerprint::from(payload),
            })),
            Err(StoreError::VersionConflict { .. }) => Err(IdempotencyError::InProgress {
                retry_after_secs: 1,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The write that completes `lease` with `response`, to apply alone ([`Idempotency::complete`])
    /// or in one atomic batch with the business record it goes with.
    pub fn completion(&self, lease: &Lease, response: &StoredResponse) -> Write {
        let body = serde_json::to_value(Body {
            status: State::Completed,
            payload_hash: lease.payload_hash.clone(),
            lease_until: self.clock.now(),
            response: Some(response.clone()),
        })
        .unwrap_or(Value::Null);
        Write::Replace {
            record: NewRecord {
                key: lease.key.clone(),
                data: body,
                expires_at: Some(self.clock.now().plus(self.window)),
                due: None,
            },
            expected: lease.version,
        }
    }

    /// Stores the response for replays.
    pub async fn complete(
        &self,
        lease: &Lease,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        match self.store.write(self.completion(lease, response)).await {
            Ok(_) => Ok(()),
            Err(StoreError::VersionConflict { .. }) => Err(IdempotencyError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the key back after a failed attempt, so the client may retry.
    pub async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        match self
            .store
            .write(Write::Remove {
                key: lease.key.clone(),
                expected: lease.version,
            })
            .await
        {
            Ok(_) | Err(StoreError::VersionConflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
