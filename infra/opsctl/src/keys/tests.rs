//! Unit tests of `opsctl keys`: the commands against local file secrets, with a fake concurrent
//! writer for the compare-and-swap paths.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shared::clock::{ManualClock, SystemClock};
use shared::config::MapEnv;
use shared::keys::policy::RevokeError;
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretSource, SecretVersion, SecretsError, Stage, VersionStages};

use super::*;

const T0: i64 = 1_795_262_400; // 2026-11-21T12:00:00Z

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn config() -> KeyConfig {
    KeyConfig::from_env(&EnvReader::new(&MapEnv::default())).unwrap()
}

fn files(dir: &tempfile::TempDir) -> FileSecrets {
    let clock = Arc::new(ManualClock::new(at(T0)));
    FileSecrets::open(dir.path(), clock).unwrap()
}

fn store(dir: &tempfile::TempDir) -> KeySetStore<FileSecrets> {
    KeySetStore::new(files(dir), config().secret_name)
}

async fn current_version(store: &KeySetStore<FileSecrets>) -> Option<VersionId> {
    store.load().await.unwrap().version
}

fn states(rows: &[KeyRow]) -> Vec<KeyState> {
    rows.iter().map(|r| r.state).collect()
}

struct Captured {
    out: Vec<u8>,
    err: Vec<u8>,
}

async fn exec(
    cmd: KeysCommand,
    store: &KeySetStore<impl SecretWriter>,
    now: Timestamp,
) -> (Result<(), Error>, Captured) {
    let mut c = Captured {
        out: Vec::new(),
        err: Vec::new(),
    };
    let result = execute(
        &cmd,
        store,
        &config(),
        now,
        &mut Io {
            out: &mut c.out,
            err: &mut c.err,
        },
    )
    .await;
    (result, c)
}

#[tokio::test]
async fn listed_states_follow_a_key_through_its_whole_life() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let c = config();
    let t = c.timings;
    rotate(&s, &c.policy, at(T0), false).await.unwrap();
    let r = rotate(&s, &c.policy, at(T0 + 10), false).await.unwrap();
    let Change::Scheduled { activate_at, .. } = r.change else {
        panic!("{:?}", r.change)
    };
    assert_eq!(activate_at, at(T0 + 10).plus(c.policy.lead));

    let now = list(&s, &t, at(T0 + 10)).await.unwrap();
    assert_eq!(states(&now), [KeyState::Active, KeyState::Pending]);
    assert_eq!(now[0].signing_ends_at, Some(activate_at));
    assert_eq!(now[1].signing_ends_at, None);

    let then = list(&s, &t, activate_at).await.unwrap();
    assert_eq!(states(&then), [KeyState::Retired, KeyState::Active]);
    let later = list(&s, &t, activate_at.plus(t.publish_grace()))
        .await
        .unwrap();
    assert_eq!(states(&later), [KeyState::Expired, KeyState::Active]);
}

#[tokio::test]
async fn rotating_with_a_key_pending_writes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let rotate_cmd = KeysCommand::Rotate { now: false };
    exec(rotate_cmd.clone(), &s, at(T0)).await.0.unwrap();
    exec(rotate_cmd.clone(), &s, at(T0 + 1)).await.0.unwrap();
    let before = current_version(&s).await;
    let (result, out) = exec(rotate_cmd, &s, at(T0 + 2)).await;
    result.unwrap();
    assert_eq!(current_version(&s).await, before);
    let text = String::from_utf8(out.out).unwrap();
    assert!(text.contains("already pending"), "{text}");
    assert!(text.contains("nothing written"), "{text}");
}

#[tokio::test]
async fn rotating_now_retires_the_signing_key_and_warns_about_caches() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    exec(KeysCommand::Rotate { now: false }, &s, at(T0))
        .await
        .0
        .unwrap();
    let first = list(&s, &config().timings, at(T0)).await.unwrap()[0]
        .kid
        .clone();
    let (result, out) = exec(KeysCommand::Rotate { now: true }, &s, at(T0 + 5)).await;
    result.unwrap();
    let text = String::from_utf8(out.out).unwrap();
    assert!(
        text.contains(&format!("{first}  active -> retired")),
        "{text}"
    );
    assert!(text.contains("new -> active"), "{text}");
    let warning = String::from_utf8(out.err).unwrap();
    assert!(warning.contains("JWKS max-age (300 s)"), "{warning}");
}

#[tokio::test]
async fn revoking_the_only_key_activates_a_replacement_and_warns_about_caches() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let c = config();
    rotate(&s, &c.policy, at(T0), false).await.unwrap();
    let kid = list(&s, &c.timings, at(T0)).await.unwrap()[0].kid.clone();
    let (result, out) = exec(
        KeysCommand::Revoke {
            kid: kid.to_string(),
        },
        &s,
        at(T0 + 60),
    )
    .await;
    result.unwrap();
    let rows = list(&s, &c.timings, at(T0 + 60)).await.unwrap();
    assert_eq!(states(&rows), [KeyState::Revoked, KeyState::Active]);
    let text = String::from_utf8(out.out).unwrap();
    assert!(text.contains(&format!("revoked key {kid}")), "{text}");
    assert!(
        text.contains(&format!("replacement key {} signs", rows[1].kid)),
        "{text}"
    );
    let warning = String::from_utf8(out.err).unwrap();
    assert!(warning.contains("key-set cache TTL (300 s)"), "{warning}");
    assert!(warning.contains("replacement key"), "{warning}");
}

#[tokio::test]
async fn revoking_a_pending_key_needs_no_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let c = config();
    rotate(&s, &c.policy, at(T0), false).await.unwrap();
    let r = rotate(&s, &c.policy, at(T0 + 1), false).await.unwrap();
    let Change::Scheduled { kid: pending, .. } = r.change else {
        panic!()
    };
    let first = list(&s, &c.timings, at(T0)).await.unwrap()[0].kid.clone();
    let revoked = revoke(&s, pending.as_str(), &c.policy, at(T0 + 2))
        .await
        .unwrap();
    assert_eq!(revoked.replacement, None);
    assert_eq!(revoked.signer, Some(first));
}

#[tokio::test]
async fn a_malformed_or_unknown_kid_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let c = config();
    rotate(&s, &c.policy, at(T0), false).await.unwrap();
    let before = current_version(&s).await;
    let err = revoke(&s, "not-a-kid", &c.policy, at(T0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedKid { .. }), "{err}");
    assert!(err.report().contains("43-character"), "{}", err.report());
    let unknown = "A".repeat(43);
    let err = revoke(&s, &unknown, &c.policy, at(T0)).await.unwrap_err();
    assert!(
        matches!(err, Error::Revoke(RevokeError::UnknownKid(_))),
        "{err}"
    );
    assert_eq!(current_version(&s).await, before);
}

#[tokio::test]
async fn a_json_listing_carries_only_public_members() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    exec(KeysCommand::Rotate { now: false }, &s, at(T0))
        .await
        .0
        .unwrap();
    let (result, out) = exec(KeysCommand::List { json: true }, &s, at(T0)).await;
    result.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.out).unwrap();
    let members: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        [
            "activateAt",
            "createdAt",
            "kid",
            "revokedAt",
            "signingEndsAt",
            "state"
        ]
    );
    assert_eq!(v[0]["state"], "active");
    assert_eq!(v[0]["revokedAt"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_empty_key_set_lists_nothing_and_tells_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let (result, out) = exec(KeysCommand::List { json: false }, &s, at(T0)).await;
    result.unwrap();
    assert!(out.out.is_empty());
    assert!(String::from_utf8(out.err).unwrap().contains("keys rotate"));
    let (result, out) = exec(KeysCommand::List { json: true }, &s, at(T0)).await;
    result.unwrap();
    assert_eq!(String::from_utf8(out.out).unwrap().trim(), "[]");
}

/// File secrets with another writer: on the `race_at`-th read of `AWSCURRENT` (0-based), or
/// just before a conditional write when `race_on_save`, it first writes the value of the first
/// read back as a new current version.
struct Racing {
    inner: FileSecrets,
    race_at: usize,
    race_on_save: bool,
    reads: AtomicUsize,
    first: std::sync::Mutex<Option<secrecy::SecretString>>,
}

impl Racing {
    fn new(dir: &tempfile::TempDir, race_at: usize) -> Self {
        Self {
            inner: FileSecrets::open(dir.path(), Arc::new(SystemClock)).unwrap(),
            race_at,
            race_on_save: false,
            reads: AtomicUsize::new(0),
            first: std::sync::Mutex::new(None),
        }
    }
}

impl Racing {
    fn on_save(dir: &tempfile::TempDir) -> Self {
        Self {
            race_on_save: true,
            ..Self::new(dir, usize::MAX)
        }
    }
}

#[async_trait]
impl SecretSource for Racing {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        if stage == Stage::Current {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            let first = self.first.lock().unwrap().clone();
            if n == self.race_at
                && let Some(value) = first
            {
                self.inner
                    .put_current(name, &VersionId::random(), &value)
                    .await?;
            }
        }
        let got = self.inner.get(name, stage).await?;
        if let Some(v) = &got {
            self.first.lock().unwrap().get_or_insert(v.value.clone());
        }
        Ok(got)
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        self.inner.get_version(name, id).await
    }
}

#[async_trait]
impl SecretWriter for Racing {
    async fn create(
        &self,
        name: &SecretName,
        value: &secrecy::SecretString,
    ) -> Result<VersionId, SecretsError> {
        self.inner.create(name, value).await
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &secrecy::SecretString,
    ) -> Result<(), SecretsError> {
        self.inner.put_pending(name, token, value).await
    }

    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &secrecy::SecretString,
    ) -> Result<(), SecretsError> {
        self.inner.put_current(name, token, value).await
    }

    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &secrecy::SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError> {
        let first = self.first.lock().unwrap().clone();
        if self.race_on_save
            && let Some(first) = first
        {
            self.inner
                .put_current(name, &VersionId::random(), &first)
                .await?;
        }
        self.inner
            .put_current_if(name, token, value, expected)
            .await
    }

    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.inner.promote(name, id).await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
        self.inner.stages(name).await
    }

    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.inner.discard_pending(name, id).await
    }
}

#[tokio::test]
async fn a_concurrent_write_is_not_overwritten_and_the_operator_is_told_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    rotate(&store(&dir), &c.policy, at(T0), false)
        .await
        .unwrap();
    // The other writer goes first, between our load and our conditional write.
    let racing = KeySetStore::new(Racing::on_save(&dir), c.secret_name.clone());
    let (result, _) = exec(KeysCommand::Rotate { now: true }, &racing, at(T0 + 1)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.report().contains("run the command again"));
    let rows = list(&store(&dir), &c.timings, at(T0 + 1)).await.unwrap();
    assert_eq!(rows.len(), 1, "the other writer's version stays current");
}

#[tokio::test]
async fn a_revocation_overwritten_right_after_it_was_saved_is_reported_as_not_in_effect() {
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    rotate(&store(&dir), &c.policy, at(T0), false)
        .await
        .unwrap();
    let kid = list(&store(&dir), &c.timings, at(T0)).await.unwrap()[0]
        .kid
        .clone();
    // The other writer restores the document it read before the revocation, after our save.
    // Reads: 0 = load, 1 = read back.
    let racing = KeySetStore::new(Racing::new(&dir, 1), c.secret_name.clone());
    let err = revoke(&racing, kid.as_str(), &c.policy, at(T0 + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Overwritten { .. }), "{err}");
    assert!(err.report().contains("not in effect"), "{}", err.report());
    let rows = list(&store(&dir), &c.timings, at(T0 + 1)).await.unwrap();
    assert_eq!(states(&rows), [KeyState::Active]);
}

#[tokio::test]
async fn a_rotation_overwritten_right_after_it_was_saved_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    rotate(&store(&dir), &c.policy, at(T0), false)
        .await
        .unwrap();
    let racing = KeySetStore::new(Racing::new(&dir, 1), c.secret_name.clone());
    let err = rotate(&racing, &c.policy, at(T0 + 1), true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Overwritten { .. }), "{err}");
}
