//! The key rotation handler, in process, on local secret files: scheduled runs and the four
//! Secrets Manager steps, each idempotent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use key_rotation::{RotationConfig, RotationDeps, RotationError, RotationPorts, handle};
use secrecy::ExposeSecret;
use serde_json::json;
use shared::clock::{Clock, ManualClock, SharedClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::keys::{KeySet, KeySetStore, KeyState};
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretSource, SecretWriter, Stage};
use shared::telemetry::{MemorySink, Recorder};

const TOKEN: &str = "3f2b6c1e-8d4a-4b7e-9a51-0c2d9e6f7a10";

struct World {
    deps: RotationDeps,
    clock: ManualClock,
    files: FileSecrets,
    metrics: MemorySink,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let env = MapEnv::from_pairs([("ROTATION_PERIOD_SECONDS", "86400")]);
    let config = RotationConfig::from_env(&EnvReader::new(&env)).unwrap();
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let metrics = MemorySink::default();
    World {
        deps: RotationDeps::build(
            config,
            RotationPorts {
                secrets: writer,
                recorder: Recorder::new(
                    "Test",
                    "key-rotation",
                    Arc::new(metrics.clone()),
                    shared_clock.clone(),
                ),
                clock: shared_clock,
            },
        ),
        clock,
        files,
        metrics,
        _dir: dir,
    }
}

fn scheduled() -> serde_json::Value {
    json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
           "time": "2026-11-21T12:00:00Z", "resources": [], "detail": {}})
}

fn step(name: &str, secret_id: &str) -> serde_json::Value {
    json!({"Step": name, "SecretId": secret_id, "ClientRequestToken": TOKEN})
}

async fn current_set(w: &World) -> KeySet {
    let v = w
        .files
        .current(&w.deps.config.keys.secret_name)
        .await
        .unwrap();
    KeySet::parse(v.value.expose_secret()).unwrap()
}

#[tokio::test]
async fn the_first_scheduled_run_creates_a_key_that_signs_at_once_and_the_next_does_nothing() {
    let w = world();
    let out = handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(out["action"], "rotated");
    let set = current_set(&w).await;
    assert_eq!(set.keys.len(), 1);
    assert!(
        set.signer(w.clock.now(), &w.deps.config.keys.timings)
            .is_some()
    );
    let out = handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(out["action"], "none");
    assert_eq!(w.metrics.total("RotationRuns"), 2.0);
}

#[tokio::test]
async fn a_scheduled_run_after_the_period_publishes_a_successor_before_it_signs() {
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    w.clock.advance(Duration::from_secs(86_400));
    let out = handle(scheduled(), &w.deps).await.unwrap();
    assert!(out["changes"][0]["scheduled"].is_string(), "{out}");
    let set = current_set(&w).await;
    let t = &w.deps.config.keys.timings;
    let states: Vec<KeyState> = set
        .keys
        .iter()
        .map(|k| set.state(k, w.clock.now(), t))
        .collect();
    assert_eq!(states, [KeyState::Active, KeyState::Pending]);
}

#[tokio::test]
async fn the_four_secrets_manager_steps_rotate_and_each_step_can_be_repeated() {
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    let before = current_set(&w).await;
    let name = w.deps.config.keys.secret_name.as_str().to_owned();
    let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbC123");
    for s in [
        "createSecret",
        "createSecret",
        "setSecret",
        "testSecret",
        "testSecret",
    ] {
        handle(step(s, &arn), &w.deps).await.unwrap();
    }
    // Nothing is current yet: the new set is staged as AWSPENDING.
    assert_eq!(current_set(&w).await, before);
    let pending = w
        .files
        .get(&w.deps.config.keys.secret_name, Stage::Pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.id.as_str(), TOKEN);
    for _ in 0..2 {
        handle(step("finishSecret", &name), &w.deps).await.unwrap();
    }
    let after = current_set(&w).await;
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.keys.len(), 2, "the successor was added");
    assert!(
        w.files
            .get(&w.deps.config.keys.secret_name, Stage::Pending)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_rotation_event_for_another_secret_is_refused() {
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    let err = handle(step("createSecret", "someone-elses/secret"), &w.deps)
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::ForeignSecret), "{err}");
}

#[tokio::test]
async fn an_unknown_event_or_step_fails_loudly() {
    let w = world();
    assert!(matches!(
        handle(json!({"hello": 1}), &w.deps).await,
        Err(RotationError::UnknownEvent(_))
    ));
    let name = w.deps.config.keys.secret_name.as_str().to_owned();
    assert!(matches!(
        handle(step("dropSecret", &name), &w.deps).await,
        Err(RotationError::UnknownEvent(_))
    ));
    assert_eq!(w.metrics.total("RotationRuns"), 2.0);
}

#[tokio::test]
async fn a_schedule_without_its_detail_is_not_taken_for_a_scheduled_run() {
    let w = world();
    let mut event = scheduled();
    event.as_object_mut().unwrap().remove("detail");
    assert!(matches!(
        handle(event, &w.deps).await,
        Err(RotationError::UnknownEvent(_))
    ));
    let keys = w.deps.store.load().await.unwrap().set.keys;
    assert!(keys.is_empty(), "a refused event rotated: {keys:?}");
}

#[tokio::test]
async fn a_rotation_step_with_members_it_does_not_know_is_still_a_step() {
    let w = world();
    let name = w.deps.config.keys.secret_name.as_str().to_owned();
    let mut event = step("setSecret", &name);
    event["RotationToken"] = json!("a-newer-member");
    let answer = handle(event, &w.deps).await.unwrap();
    assert_eq!(answer["step"], "setSecret", "{answer}");
}

#[tokio::test]
async fn test_secret_fails_when_the_pending_document_is_not_a_usable_key_set() {
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    let name = w.deps.config.keys.secret_name.clone();
    let token = shared::secrets::VersionId::new(TOKEN).unwrap();
    w.files
        .put_pending(
            &name,
            &token,
            &secrecy::SecretString::from(r#"{"version":9,"keys":[]}"#.to_owned()),
        )
        .await
        .unwrap();
    let err = handle(step("testSecret", name.as_str()), &w.deps)
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::SelfTest(_)), "{err}");
}

#[tokio::test]
async fn finish_secret_after_a_change_made_during_the_rotation_keeps_that_change_and_ends_cleanly()
{
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    let name = w.deps.config.keys.secret_name.as_str().to_owned();
    handle(step("createSecret", &name), &w.deps).await.unwrap();
    // A scheduled run lands between createSecret and finishSecret.
    w.clock.advance(Duration::from_secs(86_400));
    let out = handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(out["action"], "rotated");
    let during = current_set(&w).await;
    for _ in 0..2 {
        let out = handle(step("finishSecret", &name), &w.deps).await.unwrap();
        assert_eq!(out["action"], "superseded", "{out}");
    }
    assert_eq!(
        current_set(&w).await,
        during,
        "the change made during the rotation stands"
    );
    assert!(
        w.files
            .get(&w.deps.config.keys.secret_name, Stage::Pending)
            .await
            .unwrap()
            .is_none(),
        "no pending version is left to block the next rotation"
    );
    assert_eq!(w.metrics.total("RotationsSuperseded"), 2.0);
}

fn step_with(name: &str, secret_id: &str, token: &str) -> serde_json::Value {
    json!({"Step": name, "SecretId": secret_id, "ClientRequestToken": token})
}

/// Watches the current key set as verifiers and signers see it: when each key was first
/// published, and whether the key signing now was published for the minimum lead.
struct Watch {
    first_seen: std::collections::HashMap<String, Timestamp>,
    bootstrap: Option<String>,
}

impl Watch {
    async fn check(&mut self, w: &World, when: &str) {
        let set = current_set(w).await;
        let now = w.clock.now();
        let t = &w.deps.config.keys.timings;
        for k in &set.keys {
            self.first_seen.entry(k.kid.to_string()).or_insert(now);
        }
        if self.bootstrap.is_none() {
            self.bootstrap = set.keys.first().map(|k| k.kid.to_string());
        }
        let signing = set
            .keys
            .iter()
            .filter(|k| set.state(k, now, t) == KeyState::Active)
            .max_by_key(|k| k.activate_at);
        let Some(signing) = signing else {
            panic!("{when}: no key signs");
        };
        let kid = signing.kid.to_string();
        if Some(&kid) == self.bootstrap.as_ref() {
            return; // the first key of an empty set signs at once, before anyone verifies
        }
        let published = self.first_seen[&kid];
        assert!(
            now.since(published) >= t.min_lead(),
            "{when}: {kid} signs {:?} after it was published, less than the minimum lead {:?}",
            now.since(published),
            t.min_lead()
        );
    }
}

#[tokio::test]
async fn every_step_twice_interleaved_with_opsctl_rotate_and_a_late_finish_never_signs_with_an_unpublished_key()
 {
    let w = world();
    let name = w.deps.config.keys.secret_name.as_str().to_owned();
    let lead = w.deps.config.keys.timings.min_lead();
    let mut watch = Watch {
        first_seen: std::collections::HashMap::new(),
        bootstrap: None,
    };
    handle(scheduled(), &w.deps).await.unwrap();
    watch.check(&w, "bootstrap").await;
    w.clock.advance(lead * 2);

    // A native rotation interleaved with an operator's rotation, finished late.
    let first = "0c4a1d7e-2b3f-4e5a-9c8d-7f6e5d4c3b2a";
    for s in ["createSecret", "createSecret"] {
        handle(step_with(s, &name, first), &w.deps).await.unwrap();
        watch.check(&w, s).await;
    }
    let store = KeySetStore::new(
        std::sync::Arc::new(w.files.clone()) as std::sync::Arc<dyn SecretWriter>,
        w.deps.config.keys.secret_name.clone(),
    );
    let loaded = store.load().await.unwrap();
    let (next, _) = shared::keys::policy::rotate(
        &loaded.set,
        w.clock.now(),
        &w.deps.config.keys.policy,
        false,
    );
    store.save(&loaded, &next).await.unwrap(); // what `opsctl keys rotate` writes
    watch.check(&w, "opsctl keys rotate").await;
    for s in ["setSecret", "setSecret", "testSecret", "testSecret"] {
        handle(step_with(s, &name, first), &w.deps).await.unwrap();
        watch.check(&w, s).await;
    }
    w.clock.advance(lead * 3);
    for _ in 0..2 {
        handle(step_with("finishSecret", &name, first), &w.deps)
            .await
            .unwrap();
        watch.check(&w, "finishSecret after opsctl").await;
    }

    // A native rotation alone whose finishSecret comes long after its createSecret.
    w.clock.advance(lead * 2);
    let second = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
    for s in [
        "createSecret",
        "createSecret",
        "setSecret",
        "testSecret",
        "testSecret",
    ] {
        handle(step_with(s, &name, second), &w.deps).await.unwrap();
        watch.check(&w, s).await;
    }
    let before = current_set(&w).await;
    w.clock.advance(lead * 3);
    for _ in 0..2 {
        handle(step_with("finishSecret", &name, second), &w.deps)
            .await
            .unwrap();
        watch.check(&w, "late finishSecret").await;
    }
    let staged = w
        .files
        .get_version(
            &w.deps.config.keys.secret_name,
            &shared::secrets::VersionId::new(second).unwrap(),
        )
        .await
        .unwrap();
    let staged = KeySet::parse(staged.value.expose_secret()).unwrap();
    let added: Vec<_> = staged
        .keys
        .iter()
        .filter(|k| before.get(&k.kid).is_none())
        .collect();
    assert_eq!(added.len(), 1, "the rotation staged one new key");
    let after = current_set(&w).await;
    let kept = after
        .get(&added[0].kid)
        .expect("the late rotation still added its key");
    assert!(
        kept.activate_at > added[0].activate_at,
        "its activateAt moved later"
    );
    // Time passes: every key that signs was published for the lead first.
    for _ in 0..8 {
        w.clock.advance(lead / 4);
        watch.check(&w, "later").await;
    }
    assert!(
        w.files
            .get(&w.deps.config.keys.secret_name, Stage::Pending)
            .await
            .unwrap()
            .is_none()
    );
}

fn event(name: &str) -> serde_json::Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_events_run_a_scheduled_rotation_and_all_four_steps() {
    let w = world();
    assert_eq!(
        handle(event("key-rotation-scheduled.json"), &w.deps)
            .await
            .unwrap()["action"],
        "rotated"
    );
    for step in ["create", "set", "test", "finish"] {
        handle(event(&format!("key-rotation-{step}-secret.json")), &w.deps)
            .await
            .unwrap();
    }
    assert_eq!(current_set(&w).await.keys.len(), 2);
}

#[tokio::test]
async fn the_daily_run_reports_the_days_left_to_the_first_active_api_key_expiry() {
    use shared::auth::{ApiKey, ApiKeyRegistry, KeyStatus, KeyType, Permission};
    let mut w = world();
    let name = shared::secrets::SecretName::new("partner-bundle/api-keys").unwrap();
    w.deps.config.api_keys_secret = Some(name.clone());
    // Nothing is reported while there is no registry.
    handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(w.metrics.total("ApiKeyDaysToExpiry"), 0.0);
    assert!(
        w.metrics
            .documents()
            .iter()
            .all(|d| d.get("ApiKeyDaysToExpiry").is_none())
    );

    let now = w.clock.now();
    let key = |days: u64, status: KeyStatus| {
        let mut k = ApiKey::generate(
            KeyType::Live,
            vec![Permission::CredentialsRead],
            vec![],
            "",
            now,
        );
        k.expires_at = Some(now.plus(Duration::from_secs(days * 86_400)));
        k.status = status;
        k
    };
    let registry = ApiKeyRegistry {
        keys: vec![
            key(80, KeyStatus::Active),
            key(3, KeyStatus::Revoked),
            key(12, KeyStatus::Active),
        ],
    };
    w.files.create(&name, &registry.to_secret()).await.unwrap();
    w.clock.advance(Duration::from_secs(86_400));
    handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(
        w.metrics.total("ApiKeyDaysToExpiry"),
        11.0,
        "the revoked key does not count; the first active one has 11 days left"
    );
}

#[tokio::test]
async fn the_daily_run_reports_the_age_of_the_webhook_secrets_current_version() {
    let mut w = world();
    let name = shared::secrets::SecretName::new("partner-bundle/webhook-secrets").unwrap();
    w.deps.config.webhook_secrets_secret = Some(name.clone());
    handle(scheduled(), &w.deps).await.unwrap();
    assert!(
        w.metrics
            .documents()
            .iter()
            .all(|d| d.get("WebhookSecretAgeDays").is_none()),
        "no secret yet: nothing to report"
    );
    w.files
        .create(
            &name,
            &secrecy::SecretString::from("whsec_c2VjcmV0".to_owned()),
        )
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(91 * 86_400 + 43_200));
    handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(w.metrics.total("WebhookSecretAgeDays"), 91.5);
}

#[tokio::test]
async fn the_daily_run_reports_the_age_of_the_key_that_signs_now() {
    let w = world();
    handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(
        w.metrics.total("SigningKeyAgeDays"),
        0.0,
        "the key the first run created signs from now on"
    );
    assert_eq!(
        w.metrics
            .documents()
            .iter()
            .filter(|d| d.get("SigningKeyAgeDays").is_some())
            .count(),
        1
    );
    w.clock.advance(Duration::from_secs(43_200));
    handle(scheduled(), &w.deps).await.unwrap();
    assert_eq!(
        w.metrics.total("SigningKeyAgeDays"),
        0.5,
        "half a day later the same key signs, half a day old"
    );
}

#[tokio::test]
async fn the_daily_run_reads_the_secrets_of_its_three_reports_at_once() {
    let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let env = MapEnv::from_pairs([
        ("ROTATION_PERIOD_SECONDS", "86400"),
        ("API_KEYS_SECRET_NAME", "partner-bundle/api-keys"),
        (
            "WEBHOOK_SECRETS_SECRET_NAME",
            "partner-bundle/webhook-secrets",
        ),
    ]);
    let config = RotationConfig::from_env(&EnvReader::new(&env)).unwrap();
    let secrets = Arc::new(test_support::OverlapSecrets::new(Arc::new(files)));
    let deps = RotationDeps::build(
        config,
        RotationPorts {
            secrets: secrets.clone(),
            recorder: Recorder::new(
                "Test",
                "key-rotation",
                Arc::new(MemorySink::default()),
                shared_clock.clone(),
            ),
            clock: shared_clock,
        },
    );
    let key_set = deps.config.keys.secret_name.to_string();
    for (run, key_set_reads) in [(1, 1), (2, 2)] {
        handle(scheduled(), &deps).await.unwrap();
        // The API-key registry and the webhook secrets: two independent reads, made together
        // rather than one after the other (on a cold start each is a round trip to Secrets
        // Manager). The signing key's age comes from the key set the rotation just read or
        // wrote: one read of the key set per run, not a second one to report.
        assert_eq!(secrets.take_most(), 2, "run {run}");
        assert_eq!(secrets.reads_of(&key_set), key_set_reads, "run {run}");
        clock.advance(std::time::Duration::from_secs(3600));
    }
}
