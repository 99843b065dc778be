//! The embedded adapter: one SQLite file in the data directory, for local mode and fast tests.
//!
//! SQLite gives what the contract needs without a server: transactions for conditional and batch
//! writes, and a partial index on `(due_queue, due_at, pk)` for due queries. The file survives
//! restarts; a file that is not a database, or one written by an incompatible schema, is reported as
//! [`StoreError::Corrupt`] naming the file — it is never silently reset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    Cursor, Due, DuePage, DueRecords, NewRecord, QueueName, Record, RecordKey, RecordStore,
    StoreError, Version, Write, check_batch, expiry_secs,
};
use crate::clock::{SharedClock, Timestamp};

const SCHEMA_VERSION: i64 = 1;

/// The SQLite-backed store.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    clock: SharedClock,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish()
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating its directory.
    pub fn open(path: impl AsRef<Path>, clock: SharedClock) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let corrupt = |detail: String| StoreError::Corrupt {
            location: path.display().to_string(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        let conn = Connection::open(&path).map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(format!("not a readable SQLite database ({e})")))?;
        match version {
            0 => conn
                .execute_batch(
                    "PRAGMA journal_mode = WAL;
                     BEGIN;
                     CREATE TABLE IF NOT EXISTS records (
                         pk TEXT PRIMARY KEY,
                         version INTEGER NOT NULL,
                         ttl INTEGER,
                         due_queue TEXT,
                         due_at INTEGER,
                         data TEXT NOT NULL
                     );
                     CREATE INDEX IF NOT EXISTS records_due
                         ON records (due_queue, due_at, pk) WHERE due_queue IS NOT NULL;
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(|e| corrupt(format!("cannot initialise the schema ({e})")))?,
            SCHEMA_VERSION => {}
            other => {
                return Err(corrupt(format!(
                    "schema version {other} is not the supported version {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
            clock,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, Timestamp, &Path) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let now = self.clock.now();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Corrupt {
                location: path.display().to_string(),
                detail: "connection lock poisoned".into(),
            })?;
            f(&mut guard, now, &path)
        })
        .await
        .map_err(unavailable)?
    }
}

struct Row {
    pk: String,
    version: i64,
    ttl: Option<i64>,
    due_queue: Option<String>,
    due_at: Option<i64>,
    data: String,
}

const COLUMNS: &str = "pk, version, ttl, due_queue, due_at, data";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        pk: r.get(0)?,
        version: r.get(1)?,
        ttl: r.get(2)?,
        due_queue: r.get(3)?,
        due_at: r.get(4)?,
        data: r.get(5)?,
    })
}

fn to_record(row: Row, path: &Path) -> Result<Record, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        location: format!("{} (record {})", path.display(), row.pk),
        detail,
    };
    let data = serde_json::from_str(&row.data).map_err(|e| corrupt(e.to_string()))?;
    let due = match (&row.due_queue, row.due_at) {
        (Some(q), Some(at)) => Some(Due {
            queue: QueueName::new(q).map_err(|e| corrupt(e.to_string()))?,
            at: Timestamp::from_millis(at),
        }),
        _ => None,
    };
    Ok(Record {
        key: RecordKey::from_stored(row.pk.clone()).map_err(|e| corrupt(e.to_string()))?,
        version: Version(u64::try_from(row.version).map_err(|e| corrupt(e.to_string()))?),
        data,
        expires_at: row.ttl.map(Timestamp::from_secs),
        due,
    })
}

fn live(tx: &Transaction<'_>, key: &RecordKey, now: Timestamp) -> rusqlite::Result<Option<Row>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM records WHERE pk = ?1 AND (ttl IS NULL OR ttl > ?2)"),
        params![key.as_str(), now.as_secs()],
        read_row,
    )
    .optional()
}

fn upsert(tx: &Transaction<'_>, r: &NewRecord, version: u64) -> Result<(), StoreError> {
    let data = serde_json::to_string(&r.data).map_err(unavailable)?;
    tx.execute(
        "INSERT OR REPLACE INTO records (pk, version, ttl, due_queue, due_at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            r.key.as_str(),
            i64::try_from(version).unwrap_or(i64::MAX),
            r.expires_at.map(expiry_secs),
            r.due.as_ref().map(|d| d.queue.as_str()),
            r.due.as_ref().map(|d| d.at.as_millis()),
            data,
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Applies one write inside `tx`; `Err` leaves the transaction to be rolled back.
fn apply(
    tx: &Transaction<'_>,
    write: &Write,
    now: Timestamp,
    path: &Path,
) -> Result<Version, StoreError> {
    let current = live(tx, write.key(), now).map_err(unavailable)?;
    match write {
        Write::Create(record) => {
            if let Some(row) = current {
                return Err(StoreError::AlreadyExists {
                    key: record.key.clone(),
                    existing: to_record(row, path).ok().map(Box::new),
                });
            }
            upsert(tx, record, 1)?;
            Ok(Version(1))
        }
        Write::Replace { record, expected } => match current {
            Some(row) if row.version == i64::try_from(expected.0).unwrap_or(-1) => {
                upsert(tx, record, expected.0 + 1)?;
                Ok(Version(expected.0 + 1))
            }
            other => Err(StoreError::VersionConflict {
                key: record.key.clone(),
                current: other.and_then(|r| to_record(r, path).ok()).map(Box::new),
            }),
        },
        Write::Remove { key, expected } => match current {
            Some(row) if row.version == i64::try_from(expected.0).unwrap_or(-1) => {
                tx.execute("DELETE FROM records WHERE pk = ?1", params![key.as_str()])
                    .map_err(unavailable)?;
                Ok(*expected)
            }
            other => Err(StoreError::VersionConflict {
                key: key.clone(),
                current: other.and_then(|r| to_record(r, path).ok()).map(Box::new),
            }),
        },
    }
}

/// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A deferred transaction
/// that reads first and writes later cannot upgrade its lock while another connection (another
/// process on the same file, such as `opsctl` beside the devstack) writes: SQLite fails it with
/// "database is locked" at once instead of waiting. An immediate one waits its turn (the busy
/// timeout), so conditional writes from several connections serialise like DynamoDB's.
fn write_transaction(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)
}

#[async_trait]
impl RecordStore for EmbeddedStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        let key = key.clone();
        self.run(move |conn, now, path| {
            let tx = conn.transaction().map_err(unavailable)?;
            let row = live(&tx, &key, now).map_err(unavailable)?;
            row.map(|r| to_record(r, path)).transpose()
        })
        .await
    }

    async fn write(&self, write: Write) -> Result<Version, StoreError> {
        self.run(move |conn, now, path| {
            let tx = write_transaction(conn)?;
            let version = apply(&tx, &write, now, path)?;
            tx.commit().map_err(unavailable)?;
            Ok(version)
        })
        .await
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_batch(&writes)?;
        self.run(move |conn, now, path| {
            let tx = write_transaction(conn)?;
            for (index, w) in writes.iter().enumerate() {
                match apply(&tx, w, now, path) {
                    Ok(_) => {}
                    Err(e) if e.is_condition_failure() => {
                        return Err(StoreError::BatchConditionFailed { index });
                    }
                    Err(e) => return Err(e),
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl DueRecords for EmbeddedStore {
    async fn due(
        &self,
        queue: &QueueName,
        now: Timestamp,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<DuePage, StoreError> {
        let after = match cursor {
            None => None,
            Some(c) => {
                let (at, pk) = c.0.split_once('|').ok_or(StoreError::InvalidCursor)?;
                Some((
                    at.parse::<i64>().map_err(|_| StoreError::InvalidCursor)?,
                    pk.to_owned(),
                ))
            }
        };
        let queue = queue.clone();
        let limit = limit.clamp(1, 1000);
        self.run(move |conn, clock_now, path| {
            let (after_at, after_pk) = after.unwrap_or((i64::MIN, String::new()));
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM records
                     WHERE due_queue = ?1 AND due_at <= ?2
                       AND (due_at > ?3 OR (due_at = ?3 AND pk > ?4))
                       AND (ttl IS NULL OR ttl > ?5)
                     ORDER BY due_at, pk LIMIT ?6"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![
                        queue.as_str(),
                        now.as_millis(),
                        after_at,
                        after_pk,
                        clock_now.as_secs(),
                        i64::try_from(limit).unwrap_or(1000),
                    ],
                    read_row,
                )
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            let records = rows
                .into_iter()
                .map(|r| to_record(r, path))
                .collect::<Result<Vec<_>, _>>()?;
            let next = if records.len() == limit {
                records.last().and_then(|r| {
                    r.due
                        .as_ref()
                        .map(|d| Cursor(format!("{}|{}", d.at.as_millis(), r.key.as_str())))
                })
            } else {
                None
            };
            Ok(DuePage { records, next })
        })
        .await
    }
}
