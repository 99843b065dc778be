//! A run near the end of its invocation stops taking records in time and leaves the rest due.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{Backend, world};
use serde_json::json;
use shared::clock::Clock;
use shared::platform::Deadline;
use shared::store::Version;
use status_poller::{PollPolicy, run};

fn policy() -> PollPolicy {
    PollPolicy {
        concurrency: 2,
        safety_margin: Duration::from_millis(200),
        ..PollPolicy::default()
    }
}

#[tokio::test]
async fn with_less_time_left_than_one_poll_needs_a_run_polls_nothing_and_leaves_every_record_due() {
    let w = world(Backend::Embedded, Duration::from_secs(600)).await;
    let ids = w.seed("late", 20).await;
    w.advance(Duration::from_secs(1));
    let poller = w.poller(policy());
    // Less than the safety margin plus one request timeout (1.5 s).
    let s = run(&poller, Deadline::after(Duration::from_millis(1000)))
        .await
        .unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.polled, 0);
    assert!(w.status_calls().is_empty());
    for id in &ids {
        let (record, issuance) = w.record(id).await;
        assert_eq!(record.version, Version(1), "untouched");
        assert!(record.due.unwrap().at <= w.clock.now(), "still due");
        assert_eq!(issuance.poll_attempts(), 0);
    }
    assert_eq!(w.metric("PollRunsStoppedEarly"), 1.0);
}

#[tokio::test]
async fn a_run_near_its_deadline_stops_taking_records_and_the_next_run_polls_the_rest() {
    let w = world(Backend::Embedded, Duration::from_secs(600)).await;
    let ids = w.seed("rush", 200).await;
    w.fault(json!({"route": "/credentials/status", "latencyMs": 100}))
        .await;
    w.advance(Duration::from_secs(1));
    let poller = w.poller(policy());
    // Half a second to take records (2 at a time, 100 ms each), then margin + one poll.
    let s = run(&poller, Deadline::after(Duration::from_millis(1700 + 500)))
        .await
        .unwrap();
    assert!(s.stopped_early, "{s:?}");
    assert!(s.polled > 0 && s.polled < 200, "{s:?}");
    assert_eq!(s.polled, s.still_waiting);
    assert_eq!(w.status_calls().len() as u64, s.polled);

    let mut polled = 0;
    for id in &ids {
        let (record, issuance) = w.record(id).await;
        let due = record.due.unwrap().at;
        match issuance.poll_attempts() {
            0 => {
                assert_eq!(record.version, Version(1));
                assert!(due <= w.clock.now(), "left due for the next run");
            }
            1 => {
                polled += 1;
                assert_eq!(due, w.clock.now().plus(Duration::from_secs(1)));
            }
            n => panic!("polled {n} times"),
        }
    }
    assert_eq!(polled, s.polled);

    // The next run, with time enough, takes exactly the records left.
    w.clear_faults().await;
    let next = w.run(&w.poller(PollPolicy::default())).await;
    assert!(!next.stopped_early);
    assert_eq!(next.polled, 200 - s.polled);
    assert_eq!(w.status_calls().len(), 200);
}
