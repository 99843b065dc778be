//! The storage contract: every adapter of `RecordStore` and `DueRecords` must pass every test here.
//! Each contract is one generic function; the macro at the bottom runs it against the embedded
//! SQLite adapter and against the DynamoDB adapter on a real moto server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shared::clock::{Clock, ManualClock, SharedClock, Timestamp};
use shared::store::dynamodb::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::{
    Cursor, DueRecords, NewRecord, QueueName, RecordKey, RecordKind, RecordStore, StoreError,
    Version, Write,
};

trait Store: RecordStore + DueRecords + 'static {}
impl<T: RecordStore + DueRecords + 'static> Store for T {}

struct Fixture {
    store: Arc<dyn Store>,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

async fn embedded() -> Fixture {
    let (clock, shared) = common::clock();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("records.sqlite3"), shared).unwrap();
    Fixture {
        store: Arc::new(store),
        clock,
        _dir: Some(dir),
    }
}

async fn dynamodb() -> Fixture {
    let (clock, shared): (ManualClock, SharedClock) = common::clock();
    let config = common::moto().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoStore::new(client, common::unique("records"), shared);
    store.create_table_if_missing().await.unwrap();
    Fixture {
        store: Arc::new(store),
        clock,
        _dir: None,
    }
}

fn key(id: &str) -> RecordKey {
    RecordKey::new(RecordKind::Test, id).unwrap()
}

fn queue() -> QueueName {
    QueueName::new("poll").unwrap()
}

async fn create_succeeds_once_then_reports_the_existing_record(f: Fixture) {
    let s = &f.store;
    let v = s
        .write(Write::Create(NewRecord::new(key("a"), json!({"n": 1}))))
        .await
        .unwrap();
    assert_eq!(v, Version(1));
    let err = s
        .write(Write::Create(NewRecord::new(key("a"), json!({"n": 2}))))
        .await
        .unwrap_err();
    match err {
        StoreError::AlreadyExists { key: k, existing } => {
            assert_eq!(k, key("a"));
            let existing = existing.expect("the existing record is returned");
            assert_eq!(existing.data, json!({"n": 1}));
            assert_eq!(existing.version, Version(1));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let got = s.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(got.data, json!({"n": 1}));
}

async fn exactly_one_of_32_concurrent_creators_wins(f: Fixture) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = Arc::clone(&f.store);
        tasks.push(tokio::spawn(async move {
            s.write(Write::Create(NewRecord::new(
                key("race"),
                json!({"writer": i}),
            )))
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn replace_succeeds_only_at_the_expected_version(f: Fixture) {
    let s = &f.store;
    s.write(Write::Create(NewRecord::new(key("v"), json!(1))))
        .await
        .unwrap();
    let v2 = s
        .write(Write::Replace {
            record: NewRecord::new(key("v"), json!(2)),
            expected: Version(1),
        })
        .await
        .unwrap();
    assert_eq!(v2, Version(2));
    let err = s
        .write(Write::Replace {
            record: NewRecord::new(key("v"), json!(3)),
            expected: Version(1),
        })
        .await
        .unwrap_err();
    match err {
        StoreError::VersionConflict { current, .. } => {
            assert_eq!(current.unwrap().version, Version(2));
        }
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    let got = s.get(&key("v")).await.unwrap().unwrap();
    assert_eq!((got.version, got.data), (Version(2), json!(2)));
}

async fn replace_and_remove_of_an_absent_record_conflict(f: Fixture) {
    let s = &f.store;
    let err = s
        .write(Write::Replace {
            record: NewRecord::new(key("none"), json!(1)),
            expected: Version(1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { current: None, .. }),
        "{err:?}"
    );
    let err = s
        .write(Write::Remove {
            key: key("none"),
            expected: Version(1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { current: None, .. }),
        "{err:?}"
    );
    assert!(s.get(&key("none")).await.unwrap().is_none());
}

async fn remove_deletes_at_the_expected_version_only(f: Fixture) {
    let s = &f.store;
    s.write(Write::Create(NewRecord::new(key("r"), json!(1))))
        .await
        .unwrap();
    assert!(
        s.write(Write::Remove {
            key: key("r"),
            expected: Version(7)
        })
        .await
        .is_err()
    );
    s.write(Write::Remove {
        key: key("r"),
        expected: Version(1),
    })
    .await
    .unwrap();
    assert!(s.get(&key("r")).await.unwrap().is_none());
    // The key is free again.
    s.write(Write::Create(NewRecord::new(key("r"), json!(2))))
        .await
        .unwrap();
}

async fn an_expired_record_is_absent_before_it_is_deleted(f: Fixture) {
    let s = &f.store;
    let expires = f.clock.now().plus(Duration::from_secs(60));
    s.write(Write::Create(
        NewRecord::new(key("ttl"), json!("old")).expiring_at(expires),
    ))
    .await
    .unwrap();
    f.clock.advance(Duration::from_secs(59));
    assert!(s.get(&key("ttl")).await.unwrap().is_some());
    f.clock.advance(Duration::from_secs(1));
    assert!(s.get(&key("ttl")).await.unwrap().is_none());
    // An expired record cannot be replaced, and its key can be created again.
    assert!(
        s.write(Write::Replace {
            record: NewRecord::new(key("ttl"), json!("x")),
            expected: Version(1)
        })
        .await
        .is_err()
    );
    let v = s
        .write(Write::Create(NewRecord::new(key("ttl"), json!("new"))))
        .await
        .unwrap();
    assert_eq!(v, Version(1));
    assert_eq!(
        s.get(&key("ttl")).await.unwrap().unwrap().data,
        json!("new")
    );
}

async fn due_queries_return_only_due_records_in_order_page_by_page(f: Fixture) {
    let s = &f.store;
    let now = f.clock.now();
    // 25 due records at distinct past times (written in scrambled order), 5 in the future,
    // 3 due but expired, 2 in another queue, 2 without a due time.
    for i in (0..25).map(|i| (i * 7) % 25) {
        let at = now.minus(Duration::from_secs(100 - i));
        s.write(Write::Create(
            NewRecord::new(key(&format!("due-{i:02}")), json!(i)).due_at(queue(), at),
        ))
        .await
        .unwrap();
    }
    for i in 0..5 {
        let at = now.plus(Duration::from_secs(10 + i));
        s.write(Write::Create(
            NewRecord::new(key(&format!("later-{i}")), json!(i)).due_at(queue(), at),
        ))
        .await
        .unwrap();
    }
    for i in 0..3 {
        s.write(Write::Create(
            NewRecord::new(key(&format!("expired-{i}")), json!(i))
                .due_at(queue(), now.minus(Duration::from_secs(50)))
                .expiring_at(now.plus(Duration::from_secs(1))),
        ))
        .await
        .unwrap();
    }
    for i in 0..2 {
        s.write(Write::Create(
            NewRecord::new(key(&format!("other-{i}")), json!(i)).due_at(
                QueueName::new("other").unwrap(),
                now.minus(Duration::from_secs(5)),
            ),
        ))
        .await
        .unwrap();
        s.write(Write::Create(NewRecord::new(
            key(&format!("plain-{i}")),
            json!(i),
        )))
        .await
        .unwrap();
    }
    f.clock.advance(Duration::from_secs(1)); // the three "expired" records expire now
    let now = f.clock.now();

    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = s.due(&queue(), now, 10, cursor.as_ref()).await.unwrap();
        assert!(page.records.len() <= 10);
        seen.extend(page.records);
        pages += 1;
        assert!(pages < 20, "pagination does not end");
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let ids: Vec<String> = seen.iter().map(|r| r.key.as_str().to_owned()).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("TEST#due-{i:02}")).collect();
    assert_eq!(ids, expected, "due records, oldest first, each once");
    assert!(pages >= 3);
    let times: Vec<Timestamp> = seen.iter().map(|r| r.due.as_ref().unwrap().at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

async fn a_record_leaves_the_due_queue_when_replaced_without_a_due_time(f: Fixture) {
    let s = &f.store;
    let now = f.clock.now();
    s.write(Write::Create(
        NewRecord::new(key("q"), json!("waiting")).due_at(queue(), now),
    ))
    .await
    .unwrap();
    assert_eq!(
        s.due(&queue(), now, 10, None).await.unwrap().records.len(),
        1
    );
    s.write(Write::Replace {
        record: NewRecord::new(key("q"), json!("done")),
        expected: Version(1),
    })
    .await
    .unwrap();
    assert!(
        s.due(&queue(), now, 10, None)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    let later = now.plus(Duration::from_secs(30));
    s.write(Write::Replace {
        record: NewRecord::new(key("q"), json!("again")).due_at(queue(), later),
        expected: Version(2),
    })
    .await
    .unwrap();
    assert!(
        s.due(&queue(), now, 10, None)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    let page = s.due(&queue(), later, 10, None).await.unwrap();
    assert_eq!(page.records[0].version, Version(3));
}

async fn a_batch_writes_everything_or_nothing(f: Fixture) {
    let s = &f.store;
    s.write(Write::Create(NewRecord::new(key("b1"), json!(1))))
        .await
        .unwrap();
    // The second write's condition fails: nothing of the batch may land.
    let err = s
        .write_all(vec![
            Write::Create(NewRecord::new(key("b2"), json!(2))),
            Write::Replace {
                record: NewRecord::new(key("b1"), json!(10)),
                expected: Version(5),
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BatchConditionFailed { index: 1 }),
        "{err:?}"
    );
    assert!(s.get(&key("b2")).await.unwrap().is_none());
    assert_eq!(s.get(&key("b1")).await.unwrap().unwrap().data, json!(1));

    s.write_all(vec![
        Write::Create(NewRecord::new(key("b2"), json!(2))),
        Write::Replace {
            record: NewRecord::new(key("b1"), json!(10)),
            expected: Version(1),
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&key("b2")).await.unwrap().unwrap().data, json!(2));
    let b1 = s.get(&key("b1")).await.unwrap().unwrap();
    assert_eq!((b1.version, b1.data), (Version(2), json!(10)));
}

async fn a_batch_that_fails_after_replacing_a_record_leaves_that_record_as_it_was(f: Fixture) {
    let s = &f.store;
    s.write(Write::Create(NewRecord::new(key("c1"), json!(1))))
        .await
        .unwrap();
    s.write(Write::Create(NewRecord::new(key("c2"), json!(2))))
        .await
        .unwrap();
    // The first write would land on its own; the second conflicts, so the first must be undone.
    let err = s
        .write_all(vec![
            Write::Replace {
                record: NewRecord::new(key("c1"), json!(10)),
                expected: Version(1),
            },
            Write::Create(NewRecord::new(key("c2"), json!(20))),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BatchConditionFailed { index: 1 }),
        "{err:?}"
    );
    let c1 = s.get(&key("c1")).await.unwrap().unwrap();
    assert_eq!((c1.version, c1.data), (Version(1), json!(1)));
    assert_eq!(s.get(&key("c2")).await.unwrap().unwrap().data, json!(2));
}

async fn a_foreign_cursor_is_refused(f: Fixture) {
    let err = f
        .store
        .due(
            &queue(),
            f.clock.now(),
            10,
            Some(&Cursor::from_text("not-a-cursor")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor), "{err:?}");
}

async fn keys_outside_the_test_kind_do_not_collide(f: Fixture) {
    let s = &f.store;
    let a = RecordKey::new(RecordKind::Issuance, "same").unwrap();
    let b = RecordKey::new(RecordKind::Idempotency, "same").unwrap();
    s.write(Write::Create(NewRecord::new(a.clone(), json!("issue"))))
        .await
        .unwrap();
    s.write(Write::Create(NewRecord::new(b.clone(), json!("idem"))))
        .await
        .unwrap();
    let mut got = BTreeSet::new();
    for k in [a, b] {
        got.insert(s.get(&k).await.unwrap().unwrap().data.to_string());
    }
    assert_eq!(got.len(), 2);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_embedded_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::embedded().await).await;
                }
            )*
        }
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::dynamodb().await).await;
                }
            )*
        }
    };
}

contract!(
    create_succeeds_once_then_reports_the_existing_record,
    exactly_one_of_32_concurrent_creators_wins,
    replace_succeeds_only_at_the_expected_version,
    replace_and_remove_of_an_absent_record_conflict,
    remove_deletes_at_the_expected_version_only,
    an_expired_record_is_absent_before_it_is_deleted,
    due_queries_return_only_due_records_in_order_page_by_page,
    a_record_leaves_the_due_queue_when_replaced_without_a_due_time,
    a_batch_writes_everything_or_nothing,
    a_batch_that_fails_after_replacing_a_record_leaves_that_record_as_it_was,
    a_foreign_cursor_is_refused,
    keys_outside_the_test_kind_do_not_collide,
);

/// Embedded-only: the data survives a restart, and a corrupted file is reported, never reset.
mod embedded_file {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening_the_file() {
        let (_clock, shared) = common::clock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite3");
        {
            let s = EmbeddedStore::open(&path, shared.clone()).unwrap();
            s.write(Write::Create(NewRecord::new(key("kept"), json!("yes"))))
                .await
                .unwrap();
        }
        let s = EmbeddedStore::open(&path, shared).unwrap();
        assert_eq!(
            s.get(&key("kept")).await.unwrap().unwrap().data,
            json!("yes")
        );
    }

    #[tokio::test]
    async fn writers_on_separate_handles_of_one_file_serialise_instead_of_failing() {
        // Two processes on one data directory (the devstack and opsctl, or two poller runs)
        // each hold their own connection: conditional writes must wait for each other, and
        // exactly one creator wins, as on DynamoDB.
        let (_clock, shared) = common::clock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite3");
        let handles: Vec<Arc<EmbeddedStore>> = (0..4)
            .map(|_| Arc::new(EmbeddedStore::open(&path, shared.clone()).unwrap()))
            .collect();
        let mut tasks = Vec::new();
        for i in 0..32 {
            let s = Arc::clone(&handles[i % handles.len()]);
            tasks.push(tokio::spawn(async move {
                // Read first, then write: the pattern that cannot upgrade a deferred lock.
                let _ = s.get(&key("contended")).await;
                s.write(Write::Create(NewRecord::new(
                    key("contended"),
                    json!({"writer": i}),
                )))
                .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(other) => panic!("a writer failed instead of waiting: {other:?}"),
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn a_corrupted_file_is_reported_with_its_name_and_left_alone() {
        let (_clock, shared) = common::clock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite3");
        let garbage = b"this is not a database, it is a shopping list\n".repeat(200);
        std::fs::write(&path, &garbage).unwrap();
        let err = EmbeddedStore::open(&path, shared).unwrap_err();
        match &err {
            StoreError::Corrupt { location, .. } => {
                assert!(location.contains("records.sqlite3"), "{err}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            garbage,
            "the file is untouched"
        );
    }
}

/// DynamoDB-only: an unreachable endpoint is a typed error, not a panic.
mod dynamodb_faults {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_table_endpoint_is_a_typed_unavailable_error() {
        let (_clock, shared) = common::clock();
        let config = aws_sdk_dynamodb::config::Builder::from(&common::moto().await)
            .endpoint_url("http://127.0.0.1:9") // discard port: nothing listens
            .build();
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t", shared);
        let err = store.get(&key("x")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
