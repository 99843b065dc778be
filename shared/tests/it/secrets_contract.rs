//! The secrets contract: the local-file adapter and the Secrets Manager adapter (on a real moto
//! server) must agree on versions, staging labels and errors, and the cache on top of either must
//! respect its TTL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shared::clock::ManualClock;
use shared::secrets::aws::SecretsManagerStore;
use shared::secrets::file::FileSecrets;
use shared::secrets::{
    CachedSecrets, SecretName, SecretSource, SecretWriter, SecretsError, Stage, VersionId,
};

struct Fixture {
    store: Arc<dyn SecretWriter>,
    clock: ManualClock,
    name: SecretName,
    _dir: Option<tempfile::TempDir>,
}

async fn files() -> Fixture {
    let (clock, shared) = common::clock();
    let dir = tempfile::tempdir().unwrap();
    let store = FileSecrets::open(dir.path(), shared).unwrap();
    Fixture {
        store: Arc::new(store),
        clock,
        name: SecretName::new("partner/test-secret").unwrap(),
        _dir: Some(dir),
    }
}

async fn secrets_manager() -> Fixture {
    let (clock, _) = common::clock();
    let config = common::moto().await;
    let store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config));
    Fixture {
        store: Arc::new(store),
        clock,
        name: SecretName::new(&common::unique("partner/test-secret")).unwrap(),
        _dir: None,
    }
}

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

fn value(v: &shared::secrets::SecretVersion) -> String {
    v.value.expose_secret().to_owned()
}

async fn a_created_secret_is_current_and_cannot_be_created_twice(f: Fixture) {
    let s = &f.store;
    let id = s.create(&f.name, &secret("one")).await.unwrap();
    let current = s.current(&f.name).await.unwrap();
    assert_eq!(value(&current), "one");
    assert_eq!(current.id, id);
    assert!(current.stages.contains(&Stage::Current));
    assert!(s.get(&f.name, Stage::Pending).await.unwrap().is_none());
    assert!(s.get(&f.name, Stage::Previous).await.unwrap().is_none());
    assert!(matches!(
        s.create(&f.name, &secret("two")).await,
        Err(SecretsError::AlreadyExists(_))
    ));
}

async fn a_missing_secret_is_not_found(f: Fixture) {
    let err = f.store.get(&f.name, Stage::Current).await.unwrap_err();
    assert!(matches!(err, SecretsError::NotFound(_)), "{err:?}");
}

async fn a_pending_version_is_promoted_and_the_old_current_becomes_previous(f: Fixture) {
    let s = &f.store;
    let first = s.create(&f.name, &secret("one")).await.unwrap();
    let token = VersionId::random();
    s.put_pending(&f.name, &token, &secret("two"))
        .await
        .unwrap();
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "one");
    let pending = s.get(&f.name, Stage::Pending).await.unwrap().unwrap();
    assert_eq!(
        (pending.id.clone(), value(&pending)),
        (token.clone(), "two".into())
    );

    // A retry of the same step is harmless; the same token with another value is refused.
    s.put_pending(&f.name, &token, &secret("two"))
        .await
        .unwrap();
    assert!(matches!(
        s.put_pending(&f.name, &token, &secret("other")).await,
        Err(SecretsError::VersionConflict(_))
    ));

    s.promote(&f.name, &token).await.unwrap();
    s.promote(&f.name, &token).await.unwrap(); // idempotent
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "two");
    let previous = s.get(&f.name, Stage::Previous).await.unwrap().unwrap();
    assert_eq!(
        (previous.id.clone(), value(&previous)),
        (first.clone(), "one".into())
    );
    assert!(s.get(&f.name, Stage::Pending).await.unwrap().is_none());

    let stages = s.stages(&f.name).await.unwrap();
    assert_eq!(stages.with(Stage::Current), Some(&token));
    assert_eq!(stages.with(Stage::Previous), Some(&first));
    assert_eq!(stages.with(Stage::Pending), None);
}

async fn put_current_replaces_the_value_in_one_step(f: Fixture) {
    let s = &f.store;
    let first = s.create(&f.name, &secret("one")).await.unwrap();
    let second = VersionId::random();
    s.put_current(&f.name, &second, &secret("two"))
        .await
        .unwrap();
    let third = VersionId::random();
    s.put_current(&f.name, &third, &secret("three"))
        .await
        .unwrap();
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "three");
    assert_eq!(
        value(&s.get(&f.name, Stage::Previous).await.unwrap().unwrap()),
        "two"
    );
    // Versions stay readable by id after losing their labels.
    assert_eq!(value(&s.get_version(&f.name, &first).await.unwrap()), "one");
}

async fn promoting_an_unknown_version_is_not_found(f: Fixture) {
    let s = &f.store;
    s.create(&f.name, &secret("one")).await.unwrap();
    let err = s.promote(&f.name, &VersionId::random()).await.unwrap_err();
    assert!(matches!(err, SecretsError::NotFound(_)), "{err:?}");
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "one");
}

async fn the_cache_serves_a_value_until_its_ttl_and_then_reads_again(f: Fixture) {
    let s = &f.store;
    s.create(&f.name, &secret("one")).await.unwrap();
    let cache = CachedSecrets::new(
        Arc::clone(s),
        16,
        Duration::from_secs(60),
        Arc::new(f.clock.clone()),
    );
    assert_eq!(value(&cache.current(&f.name).await.unwrap()), "one");
    s.put_current(&f.name, &VersionId::random(), &secret("two"))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(59));
    assert_eq!(
        value(&cache.current(&f.name).await.unwrap()),
        "one",
        "still cached"
    );
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        value(&cache.current(&f.name).await.unwrap()),
        "two",
        "read again"
    );
}

async fn a_conditional_write_lands_only_while_current_is_the_version_it_read(f: Fixture) {
    let s = &f.store;
    let first = s.create(&f.name, &secret("one")).await.unwrap();
    let second = VersionId::random();
    s.put_current_if(&f.name, &second, &secret("two"), &first)
        .await
        .unwrap();
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "two");
    assert_eq!(
        value(&s.get(&f.name, Stage::Previous).await.unwrap().unwrap()),
        "one"
    );

    // A writer that read "one" is too late now: nothing of its write becomes current.
    let stale = VersionId::random();
    let err = s
        .put_current_if(&f.name, &stale, &secret("stale"), &first)
        .await
        .unwrap_err();
    assert!(matches!(err, SecretsError::CurrentMoved(_)), "{err:?}");
    assert_eq!(value(&s.current(&f.name).await.unwrap()), "two");
    assert_eq!(
        value(&s.get(&f.name, Stage::Previous).await.unwrap().unwrap()),
        "one"
    );
}

async fn a_version_says_when_it_was_written(f: Fixture) {
    let s = &f.store;
    s.create(&f.name, &secret("one")).await.unwrap();
    let first = s.current(&f.name).await.unwrap();
    let written = first
        .created_at
        .expect("the first version has a creation time");
    f.clock.advance(Duration::from_secs(5));
    let next = VersionId::random();
    s.put_current_if(&f.name, &next, &secret("two"), &first.id)
        .await
        .unwrap();
    let second = s.current(&f.name).await.unwrap();
    assert_eq!(value(&second), "two");
    let rewritten = second
        .created_at
        .expect("a new version has a creation time");
    assert!(rewritten >= written, "{rewritten:?} before {written:?}");
}

async fn a_discarded_pending_version_loses_only_its_pending_label_and_discarding_again_is_a_no_op(
    f: Fixture,
) {
    let s = &f.store;
    let first = s.create(&f.name, &secret("one")).await.unwrap();
    let token = VersionId::random();
    s.put_pending(&f.name, &token, &secret("two"))
        .await
        .unwrap();
    assert_eq!(
        s.stages(&f.name).await.unwrap().with(Stage::Pending),
        Some(&token)
    );
    s.discard_pending(&f.name, &token).await.unwrap();
    let stages = s.stages(&f.name).await.unwrap();
    assert_eq!(stages.with(Stage::Pending), None);
    assert_eq!(stages.with(Stage::Current), Some(&first));
    assert_eq!(
        value(&s.get_version(&f.name, &token).await.unwrap()),
        "two",
        "the version stays"
    );
    s.discard_pending(&f.name, &token).await.unwrap();
    s.discard_pending(&f.name, &first).await.unwrap();
    assert_eq!(
        s.stages(&f.name).await.unwrap().with(Stage::Current),
        Some(&first)
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_local_files {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::files().await).await;
                }
            )*
        }
        mod on_secrets_manager {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::secrets_manager().await).await;
                }
            )*
        }
    };
}

contract!(
    a_created_secret_is_current_and_cannot_be_created_twice,
    a_missing_secret_is_not_found,
    a_pending_version_is_promoted_and_the_old_current_becomes_previous,
    put_current_replaces_the_value_in_one_step,
    promoting_an_unknown_version_is_not_found,
    the_cache_serves_a_value_until_its_ttl_and_then_reads_again,
    a_conditional_write_lands_only_while_current_is_the_version_it_read,
    a_version_says_when_it_was_written,
    a_discarded_pending_version_loses_only_its_pending_label_and_discarding_again_is_a_no_op,
);

mod cache {
    use super::*;

    #[tokio::test]
    async fn the_cache_ttl_is_capped_at_five_minutes() {
        let f = files().await;
        let cache = CachedSecrets::new(
            Arc::clone(&f.store),
            4,
            Duration::from_secs(3600),
            Arc::new(f.clock.clone()),
        );
        assert_eq!(cache.ttl(), Duration::from_secs(300));
    }
}

mod local_files {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn secret_files_are_readable_by_their_owner_only() {
        let f = files().await;
        f.store.create(&f.name, &secret("one")).await.unwrap();
        let dir = f._dir.as_ref().unwrap().path().join("secrets");
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(
            file.starts_with(&dir),
            "a name with '/' stays inside the directory"
        );
    }

    #[tokio::test]
    async fn a_corrupted_secret_file_is_reported_with_its_name() {
        let f = files().await;
        f.store.create(&f.name, &secret("one")).await.unwrap();
        let (_c, clock) = common::clock();
        let fs = FileSecrets::open(f._dir.as_ref().unwrap().path(), clock).unwrap();
        std::fs::write(fs.path_of(&f.name), "{ truncated").unwrap();
        let err = f.store.current(&f.name).await.unwrap_err();
        match &err {
            SecretsError::Corrupt { location, .. } => assert!(location.ends_with(".json"), "{err}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

mod secrets_manager_faults {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_secrets_manager_is_a_typed_unavailable_error() {
        let config = aws_sdk_secretsmanager::config::Builder::from(&common::moto().await)
            .endpoint_url("http://127.0.0.1:9") // discard port: nothing listens
            .build();
        let store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::from_conf(config));
        let err = store
            .current(&SecretName::new("anything").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, SecretsError::Unavailable(_)), "{err:?}");
    }
}
