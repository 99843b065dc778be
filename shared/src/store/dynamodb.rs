//! The DynamoDB adapter: one table (`pk` string key), a sparse GSI `due-index`
//! (`dueQueue` hash, `dueAt` number range, all attributes projected) and the `ttl` attribute
//! (epoch seconds) for DynamoDB's time-to-live.
//!
//! Item layout: `pk` (S, `<KIND>#<id>`), `v` (N, version), `data` (S, the JSON body), `ttl` (N,
//! optional), `dueQueue`/`dueAt` (S/N, only while the record is queued, so the index stays small).
//! Every write carries a condition; expired items are excluded by the conditions and filters
//! themselves, so they count as absent before the TTL sweeper removes them.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{
    Cursor, Due, DuePage, DueRecords, NewRecord, QueueName, Record, RecordKey, RecordStore,
    StoreError, Version, Write, check_batch, expiry_secs,
};
use crate::clock::{SharedClock, Timestamp};

/// The name of the due-time index.
pub const DUE_INDEX: &str = "due-index";

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB-backed store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: SharedClock,
}

fn unavailable<E>(e: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(e))
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoStore {
    /// A store over `table`, using `client`.
    pub fn new(client: Client, table: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    /// Creates the table with its index and TTL if it does not exist (local mode and tests; in AWS
    /// the SAM template owns the table).
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(unavailable(e)),
        }
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(unavailable)
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(DUE_INDEX)
            .key_schema(key("dueQueue", KeyType::Hash)?)
            .key_schema(key("dueAt", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(unavailable)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("dueQueue", ScalarAttributeType::S)?)
            .attribute_definitions(attr("dueAt", ScalarAttributeType::N)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another process created it first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("ttl")
                    .enabled(true)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                // Already enabled is fine.
                if e.as_service_error()
                    .is_some_and(|se| se.meta().code() == Some("ValidationException"))
                {
                    Ok(())
                } else {
                    Err(unavailable(e))
                }
            })
    }

    fn item(record: &NewRecord, version: u64) -> Result<Item, StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), s(record.key.as_str()));
        item.insert("v".into(), n(version));
        item.insert(
            "data".into(),
            s(serde_json::to_string(&record.data).map_err(unavailable)?),
        );
        if let Some(e) = record.expires_at {
            item.insert("ttl".into(), n(expiry_secs(e)));
        }
        if let Some(d) = &record.due {
            item.insert("dueQueue".into(), s(d.queue.as_str()));
            item.insert("dueAt".into(), n(d.at.as_millis()));
        }
        Ok(item)
    }

    fn record(&self, item: &Item) -> Result<Record, StoreError> {
        let pk = match item.get("pk") {
            Some(AttributeValue::S(pk)) => pk.clone(),
            _ => "?".into(),
        };
        let corrupt = |detail: &str| StoreError::Corrupt {
            location: format!("table {} item {pk}", self.table),
            detail: detail.to_owned(),
        };
        let num = |name: &str| -> Result<Option<i64>, StoreError> {
            match item.get(name) {
                None => Ok(None),
                Some(AttributeValue::N(v)) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| corrupt(&format!("{name} is not an integer"))),
                Some(_) => Err(corrupt(&format!("{name} is not a number"))),
            }
        };
        let version = num("v")?.ok_or_else(|| corrupt("no version"))?;
        let data = match item.get("data") {
            Some(AttributeValue::S(text)) => {
                serde_json::from_str(text).map_err(|_| corrupt("data is not JSON"))?
            }
            _ => return Err(corrupt("no data")),
        };
        let due = match (item.get("dueQueue"), num("dueAt")?) {
            (Some(AttributeValue::S(q)), Some(at)) => Some(Due {
                queue: QueueName::new(q).map_err(|_| corrupt("bad queue name"))?,
                at: Timestamp::from_millis(at),
            }),
            _ => None,
        };
        Ok(Record {
            key: RecordKey::from_stored(pk.clone()).map_err(|_| corrupt("bad key"))?,
            version: Version(u64::try_from(version).map_err(|_| corrupt("negative version"))?),
            data,
            expires_at: num("ttl")?.map(Timestamp::from_secs),
            due,
        })
    }

    /// The live record among what a failed condition returned.
    fn live_old(&self, item: Option<&Item>) -> Option<Box<Record>> {
        let now = self.clock.now();
        item.and_then(|i| self.record(i).ok())
            .filter(|r| !r.is_expired(now))
            .map(Box::new)
    }

    fn key_map(key: &RecordKey) -> Item {
        HashMap::from([("pk".to_owned(), s(key.as_str()))])
    }
}

/// The condition, names and values of one write, shared by single writes and batches.
struct Condition {
    expression: &'static str,
    names: HashMap<String, String>,
    values: Item,
}

fn condition(write: &Write, now: Timestamp) -> Condition {
    let names = HashMap::from([("#ttl".to_owned(), "ttl".to_owned())]);
    let now_secs = n(now.as_secs());
    match write {
        Write::Create(_) => Condition {
            expression: "attribute_not_exists(pk) OR #ttl <= :now",
            names,
            values: HashMap::from([(":now".to_owned(), now_secs)]),
        },
        Write::Replace { expected, .. } | Write::Remove { expected, .. } => Condition {
            expression: "v = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)",
            names,
            values: HashMap::from([
                (":now".to_owned(), now_secs),
                (":expected".to_owned(), n(expected.0)),
            ]),
        },
    }
}

#[async_trait]
impl RecordStore for DynamoStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = self.clock.now();
        match out.item() {
            None => Ok(None),
            Some(item) => Ok(Some(self.record(item)?).filter(|r| !r.is_expired(now))),
        }
    }

    async fn write(&self, write: Write) -> Result<Version, StoreError> {
        let cond = condition(&write, self.clock.now());
        match &write {
            Write::Create(record) | Write::Replace { record, .. } => {
                let version = match &write {
                    Write::Replace { expected, .. } => expected.0 + 1,
                    _ => 1,
                };
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(Self::item(record, version)?))
                    .condition_expression(cond.expression)
                    .set_expression_attribute_names(Some(cond.names))
                    .set_expression_attribute_values(Some(cond.values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(Version(version)),
                    Err(SdkError::ServiceError(se))
                        if se.err().is_conditional_check_failed_exception() =>
                    {
                        let old = match se.err() {
                            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => self.live_old(c.item()),
                            _ => None,
                        };
                        let old = match old {
                            Some(o) => Some(o),
                            None => self.get(&record.key).await?.map(Box::new),
                        };
                        Err(if matches!(write, Write::Create(_)) {
                            StoreError::AlreadyExists {
                                key: record.key.clone(),
                                existing: old,
                            }
                        } else {
                            StoreError::VersionConflict {
                                key: record.key.clone(),
                                current: old,
                            }
                        })
                    }
                    Err(e) => Err(unavailable(e)),
                }
            }
            Write::Remove { key, expected } => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_map(key)))
                    .condition_expression(cond.expression)
                    .set_expression_attribute_names(Some(cond.names))
                    .set_expression_attribute_values(Some(cond.values))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(*expected),
                    Err(SdkError::ServiceError(se))
                        if se.err().is_conditional_check_failed_exception() =>
                    {
                        Err(StoreError::VersionConflict {
                            key: key.clone(),
                            current: self.get(key).await?.map(Box::new),
                        })
                    }
                    Err(e) => Err(unavailable(e)),
                }
            }
        }
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_batch(&writes)?;
        let now = self.clock.now();
        let mut items = Vec::with_capacity(writes.len());
        for w in &writes {
            let cond = condition(w, now);
            let item = match w {
                Write::Create(r) | Write::Replace { record: r, .. } => {
                    let version = match w {
                        Write::Replace { expected, .. } => expected.0 + 1,
                        _ => 1,
                    };
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(Self::item(r, version)?))
                                .condition_expression(cond.expression)
                                .set_expression_attribute_names(Some(cond.names))
                                .set_expression_attribute_values(Some(cond.values))
                                .build()
                                .map_err(unavailable)?,
                        )
                        .build()
                }
                Write::Remove { key, .. } => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(Self::key_map(key)))
                            .condition_expression(cond.expression)
                            .set_expression_attribute_names(Some(cond.names))
                            .set_expression_attribute_values(Some(cond.values))
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build(),
            };
            items.push(item);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_transaction_canceled_exception() => {
                let reasons = match se.err() {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => t.cancellation_reasons().to_vec(),
                    _ => Vec::new(),
                };
                match reasons
                    .iter()
                    .position(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    Some(index) => Err(StoreError::BatchConditionFailed { index }),
                    None => Err(unavailable(se.into_err())),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl DueRecords for DynamoStore {
    async fn due(
        &self,
        queue: &QueueName,
        now: Timestamp,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<DuePage, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        let limit = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("dueQueue = :q AND dueAt <= :due")
            .filter_expression("attribute_not_exists(#ttl) OR #ttl > :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":q", s(queue.as_str()))
            .expression_attribute_values(":due", n(now.as_millis()))
            .expression_attribute_values(":now", n(self.clock.now().as_secs()))
            .set_exclusive_start_key(start)
            .limit(limit)
            .send()
            .await
            .map_err(unavailable)?;
        let records = out
            .items()
            .iter()
            .map(|i| self.record(i))
            .collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().map(encode_cursor).transpose()?;
        Ok(DuePage { records, next })
    }
}

fn encode_cursor(key: &Item) -> Result<Cursor, StoreError> {
    let text = |name: &str| match key.get(name) {
        Some(AttributeValue::S(v) | AttributeValue::N(v)) => Ok(v.clone()),
        _ => Err(StoreError::InvalidCursor),
    };
    let json = serde_json::json!([text("pk")?, text("dueQueue")?, text("dueAt")?]);
    Ok(Cursor(URL_SAFE_NO_PAD.encode(json.to_string())))
}

fn decode_cursor(c: &Cursor) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(c.as_str())
        .map_err(|_| StoreError::InvalidCursor)?;
    let [pk, q, at]: [String; 3] =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    if at.parse::<i64>().is_err() {
        return Err(StoreError::InvalidCursor);
    }
    Ok(HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("dueQueue".to_owned(), s(q)),
        ("dueAt".to_owned(), n(at)),
    ]))
}
