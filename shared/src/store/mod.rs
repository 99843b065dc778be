//! Storage ports: the single table every record lives in (docs/architecture.md §9), seen through two small
//! capabilities.
//!
//! - [`RecordStore`]: read a record, and change records only through conditional writes —
//!   create-if-absent, replace-at-version, remove-at-version — alone or several at once atomically.
//! - [`DueRecords`]: list records whose due time has passed, in due order, page by page, through an
//!   index (a sparse GSI in DynamoDB), never a scan.
//!
//! The capability stores of later layers (idempotency, issuance, callback ledger, replay cache) are
//! typed views over these two ports, so both adapters — [`dynamodb`] for AWS and [`embedded`] for
//! local mode and fast tests — are held to one contract (`shared/tests/it/store_contract.rs`).
//!
//! A record has a key whose prefix names its kind (`IDEM#…`, `ISSUE#…`), so an IAM policy can limit
//! a function to its own kinds with `dynamodb:LeadingKeys`. A record may expire: it is treated as
//! absent from the moment `now >= expires_at` (kept with second precision, rounded up), even before
//! DynamoDB's TTL sweeper deletes it, which can take days.

use std::fmt;

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::Timestamp;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;

/// The kind of a record: the prefix of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An idempotency record (caller + idempotency key).
    Idempotency,
    /// A credential issuance.
    Issuance,
    /// A received platform callback (dedup key).
    Callback,
    /// A seen request signature (replay protection).
    Replay,
    /// An audit trail entry.
    Audit,
    /// Records written by contract tests.
    Test,
}

impl RecordKind {
    /// The key prefix, e.g. `ISSUE`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Idempotency => "IDEM",
            Self::Issuance => "ISSUE",
            Self::Callback => "CB",
            Self::Replay => "REPLAY",
            Self::Audit => "AUDIT",
            Self::Test => "TEST",
        }
    }
}

/// Why a key or queue name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {why}")]
pub struct InvalidName {
    what: &'static str,
    why: &'static str,
}

fn check_name(what: &'static str, s: &str, max: usize) -> Result<(), InvalidName> {
    if s.is_empty() {
        return Err(InvalidName {
            what,
            why: "it is empty",
        });
    }
    if s.len() > max {
        return Err(InvalidName {
            what,
            why: "it is too long",
        });
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidName {
            what,
            why: "it contains control characters",
        });
    }
    Ok(())
}

/// The key of a record: `<KIND>#<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(String);

impl RecordKey {
    /// The key of the record of `kind` identified by `id` (1–900 bytes, no control characters).
    pub fn new(kind: RecordKind, id: &str) -> Result<Self, InvalidName> {
        check_name("record id", id, 900)?;
        Ok(Self(format!("{}#{id}", kind.prefix())))
    }

    /// A key read back from storage.
    #[cfg(any(feature = "dynamodb", feature = "embedded"))]
    pub(crate) fn from_stored(raw: String) -> Result<Self, InvalidName> {
        check_name("record key", &raw, 1024)?;
        if !raw.contains('#') {
            return Err(InvalidName {
                what: "record key",
                why: "it has no kind prefix",
            });
        }
        Ok(Self(raw))
    }

    /// The stored form, `<KIND>#<id>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a due-time queue (the partition of the due index), e.g. `poll`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// A queue name of 1–64 characters from `[A-Za-z0-9_-]`.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        check_name("queue name", name, 64)?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(InvalidName {
                what: "queue name",
                why: "only letters, digits, '_' and '-' are allowed",
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The version of a stored record: 1 when created, +1 on every replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

/// When a record becomes due, and in which queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The queue (index partition).
    pub queue: QueueName,
    /// The instant from which the record is due.
    pub at: Timestamp,
}

/// What is written: the caller's part of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// The key.
    pub key: RecordKey,
    /// The body (a JSON document; never plaintext secrets or PII).
    pub data: Value,
    /// When the record stops existing (TTL), if ever.
    pub expires_at: Option<Timestamp>,
    /// Its place in a due queue, if any; `None` takes it out of every queue.
    pub due: Option<Due>,
}

impl NewRecord {
    /// A record with a body and nothing else.
    pub fn new(key: RecordKey, data: Value) -> Self {
        Self {
            key,
            data,
            expires_at: None,
            due: None,
        }
    }

    /// The same, expiring at `at`.
    pub fn expiring_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The same, due in `queue` at `at`.
    pub fn due_at(mut self, queue: QueueName, at: Timestamp) -> Self {
        self.due = Some(Due { queue, at });
        self
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The key.
    pub key: RecordKey,
    /// The current version.
    pub version: Version,
    /// The body.
    pub data: Value,
    /// The expiry, with second precision.
    pub expires_at: Option<Timestamp>,
    /// Its due-queue entry.
    pub due: Option<Due>,
}

impl Record {
    /// Whether the record is expired at `now` (and must be treated as absent).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at
            .is_some_and(|e| now.as_secs() >= expiry_secs(e))
    }
}

/// The stored TTL in epoch seconds: the expiry rounded up to the next whole second.
pub fn expiry_secs(t: Timestamp) -> i64 {
    let ms = t.as_millis();
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// One conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create the record; fails if a live record has the key.
    Create(NewRecord),
    /// Replace the record if it is live and at `expected`.
    Replace {
        /// The new content (same key).
        record: NewRecord,
        /// The version it must be at.
        expected: Version,
    },
    /// Delete the record if it is live and at `expected`.
    Remove {
        /// The record's key.
        key: RecordKey,
        /// The version it must be at.
        expected: Version,
    },
}

impl Write {
    /// The key this write touches.
    pub fn key(&self) -> &RecordKey {
        match self {
            Self::Create(r) | Self::Replace { record: r, .. } => &r.key,
            Self::Remove { key, .. } => key,
        }
    }
}

/// A page of due records.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePage {
    /// The records, in due order.
    pub records: Vec<Record>,
    /// Where the next page starts; `None` when there is none.
    pub next: Option<Cursor>,
}

/// An opaque position in a due query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub(crate) String);

impl Cursor {
    /// The cursor's text, to hand to a later call.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cursor from text a previous page returned.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// A store error. Condition failures are values the caller acts on; the rest are failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found a live record with that key.
    #[error("a record with key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: RecordKey,
        /// The live record, when the adapter could read it back.
        existing: Option<Box<Record>>,
    },
    /// A replace or remove found the record absent, expired or at another version.
    #[error("record {key} is absent or not at the expected version")]
    VersionConflict {
        /// The key.
        key: RecordKey,
        /// The live record, if there is one.
        current: Option<Box<Record>>,
    },
    /// One write of an atomic batch failed its condition; nothing was written.
    #[error("write {index} of the batch failed its condition; nothing was written")]
    BatchConditionFailed {
        /// The position of the failing write in the batch.
        index: usize,
    },
    /// The batch is empty, too large, or touches one key twice.
    #[error("invalid batch: {0}")]
    InvalidBatch(&'static str),
    /// A cursor that no due query of this store produced.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Stored data that cannot be read back: a corrupted file or item.
    #[error("corrupt data in {location}: {detail}")]
    Corrupt {
        /// The file or item.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// The store could not be reached or refused the call (network, throttling, permissions).
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether this is an ordinary condition failure rather than a fault.
    pub fn is_condition_failure(&self) -> bool {
        matches!(
            self,
            Self::AlreadyExists { .. }
                | Self::VersionConflict { .. }
                | Self::BatchConditionFailed { .. }
        )
    }
}

/// The most writes one atomic batch may hold (DynamoDB's `TransactWriteItems` limit).
pub const MAX_BATCH: usize = 100;

/// Reading records and changing them through conditional writes.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// The live record under `key` (strongly consistent), or `None` if absent or expired.
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError>;

    /// Applies one conditional write and returns the record's new version (for a remove, the
    /// version it had).
    async fn write(&self, write: Write) -> Result<Version, StoreError>;

    /// Applies up to [`MAX_BATCH`] conditional writes on distinct keys all together, or none.
    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// Listing records whose due time has come.
#[async_trait]
pub trait DueRecords: Send + Sync {
    /// Up to `limit` live records of `queue` with due time `<= now`, in due order, starting after
    /// `cursor`. A page may hold fewer than `limit` records and still have a next page.
    async fn due(
        &self,
        queue: &QueueName,
        now: Timestamp,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<DuePage, StoreError>;
}

#[cfg_attr(not(any(feature = "dynamodb", feature = "embedded")), allow(dead_code))]
pub(crate) fn check_batch(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Err(StoreError::InvalidBatch("it is empty"));
    }
    if writes.len() > MAX_BATCH {
        return Err(StoreError::InvalidBatch("it holds more than 100 writes"));
    }
    let mut keys: Vec<&RecordKey> = writes.iter().map(Write::key).collect();
    keys.sort();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(StoreError::InvalidBatch("it touches one key twice"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_carries_its_kind_prefix() {
        let k = RecordKey::new(RecordKind::Issuance, "abc").unwrap();
        assert_eq!(k.as_str(), "ISSUE#abc");
    }

    #[test]
    fn empty_long_and_control_character_ids_are_refused() {
        assert!(RecordKey::new(RecordKind::Test, "").is_err());
        assert!(RecordKey::new(RecordKind::Test, &"x".repeat(901)).is_err());
        assert!(RecordKey::new(RecordKind::Test, "a\nb").is_err());
        assert!(QueueName::new("poll queue").is_err());
        assert!(QueueName::new("poll_v1").is_ok());
    }

    #[test]
    fn expiry_rounds_up_to_the_next_second_and_applies_from_then() {
        assert_eq!(expiry_secs(Timestamp::from_millis(10_000)), 10);
        assert_eq!(expiry_secs(Timestamp::from_millis(10_001)), 11);
        let r = Record {
            key: RecordKey::new(RecordKind::Test, "a").unwrap(),
            version: Version(1),
            data: Value::Null,
            expires_at: Some(Timestamp::from_millis(10_500)),
            due: None,
        };
        assert!(!r.is_expired(Timestamp::from_millis(10_999)));
        assert!(r.is_expired(Timestamp::from_millis(11_000)));
    }

    #[test]
    fn a_batch_touching_one_key_twice_is_refused() {
        let k = RecordKey::new(RecordKind::Test, "a").unwrap();
        let w = Write::Remove {
            key: k,
            expected: Version(1),
        };
        assert!(matches!(
            check_batch(&[w.clone(), w]),
            Err(StoreError::InvalidBatch(_))
        ));
        assert!(matches!(check_batch(&[]), Err(StoreError::InvalidBatch(_))));
    }
}
