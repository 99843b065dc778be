//! `make bench`: the Secrets Manager reads of key rotation over a simulated 30 days of its daily
//! schedule, and of one Secrets Manager rotation (its four steps). Rotation has no cache: every
//! run reads the key set afresh, and the schedule, not any request rate, sets how often it runs.
//! Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use key_rotation::{RotationConfig, RotationDeps, RotationPorts, handle};
use serde_json::json;
use shared::clock::{ManualClock, SharedClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::secrets::CountingSource;
use shared::secrets::file::FileSecrets;
use shared::telemetry::{MemorySink, Recorder};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
        let shared_clock: SharedClock = Arc::new(clock.clone());
        let dir = tempfile::tempdir().unwrap();
        let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
        let reads = CountingSource::new(files);
        // The template's default: a new signing key every 30 days.
        let config = RotationConfig::from_env(&EnvReader::new(&MapEnv::default())).unwrap();
        let name = config.keys.secret_name.clone();
        let deps = RotationDeps::build(
            config,
            RotationPorts {
                secrets: Arc::new(reads.clone()),
                recorder: Recorder::new(
                    "Bench",
                    "key-rotation",
                    Arc::new(MemorySink::default()),
                    shared_clock.clone(),
                ),
                clock: shared_clock,
            },
        );
        let scheduled = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event",
            "source": "aws.events", "time": "2026-11-21T12:00:00Z", "resources": [], "detail": {}});
        let mut actions = std::collections::BTreeMap::<String, u32>::new();
        for _day in 0..30 {
            let out = handle(scheduled.clone(), &deps).await.unwrap();
            *actions
                .entry(out["action"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
            clock.advance(Duration::from_secs(86_400));
        }
        let runs: Vec<String> = actions.iter().map(|(a, n)| format!("{a} {n}")).collect();
        eprintln!(
            "key-rotation secret reads: {} over 30 daily runs ({}; runs: {}), {:.2} per hour",
            reads.calls(),
            reads.summary(),
            runs.join(", "),
            reads.calls() as f64 / (30.0 * 24.0),
        );
        reads.reset();
        let token = "3f2b6c1e-8d4a-4b7e-9a51-0c2d9e6f7a10";
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            let event =
                json!({"Step": step, "SecretId": name.as_str(), "ClientRequestToken": token});
            handle(event, &deps).await.unwrap();
        }
        eprintln!(
            "key-rotation secret reads: {} for one Secrets Manager rotation, its four steps ({})",
            reads.calls(),
            reads.summary(),
        );
    });
}
