//! Listing the due records for a poll run: every queue of a shard group, a few at a time, a
//! page ahead of the polls.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::StreamExt;
use shared::clock::Timestamp;
use shared::platform::Deadline;
use shared::store::{Cursor, DueRecords, QueueName, Record, StoreError};
use tokio::sync::mpsc;

/// What the lister hands to the run.
pub(crate) enum Listed {
    Record(Box<Record>),
    OutOfTime,
    Failed(StoreError),
}

/// How many queues (shards) are listed at once.
const LISTED_AT_ONCE: usize = 8;

/// Pages through the due records of every queue of `queues` as of `as_of`, a few queues at a
/// time, until there are none, the run stops listening, or too little time is left to poll
/// another record.
pub(crate) async fn list_due(
    due: Arc<dyn DueRecords>,
    queues: Vec<QueueName>,
    as_of: Timestamp,
    page_size: usize,
    deadline: Deadline,
    reserve: Duration,
    tx: mpsc::Sender<Listed>,
) {
    futures::stream::iter(queues)
        .for_each_concurrent(LISTED_AT_ONCE, |queue| {
            let (due, tx) = (Arc::clone(&due), tx.clone());
            async move {
                list_queue(&*due, &queue, as_of, page_size, deadline, reserve, &tx).await;
            }
        })
        .await;
}

/// One queue of [`list_due`].
async fn list_queue(
    due: &dyn DueRecords,
    queue: &QueueName,
    as_of: Timestamp,
    page_size: usize,
    deadline: Deadline,
    reserve: Duration,
    tx: &mpsc::Sender<Listed>,
) {
    let mut cursor: Option<Cursor> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        if deadline.remaining() < reserve {
            let _ = tx.send(Listed::OutOfTime).await;
            return;
        }
        let page = match due.due(queue, as_of, page_size, cursor.as_ref()).await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Listed::Failed(e)).await;
                return;
            }
        };
        for record in page.records {
            if tx.send(Listed::Record(Box::new(record))).await.is_err() {
                return;
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return,
        }
    }
}
