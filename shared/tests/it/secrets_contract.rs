//! The secrets contract: the local-file adapter and the Secrets Manager adapter (on a real moto
//! server) must agree on versions, staging labels and errors, and the cached, versioned document on
//! top of either must respect its TTL and its compare-and-swap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shared::clock::ManualClock;
use shared::secrets::aws::SecretsManagerStore;
use shared::secrets::file::FileSecrets;
use shared::secrets::{
    CachedDocument, DocumentFormat, SecretName, SecretSource, SecretWriter, SecretsError, Stage,
    VersionId, Versioned,
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

/// A plain-text document: what the tests of the generic cached document read.
struct Text {
    absent: Option<&'static str>,
}

impl DocumentFormat for Text {
    type Document = String;
    type Error = SecretsError;

    fn parse(&self, text: &str) -> Result<String, SecretsError> {
        if text.starts_with('!') {
            return Err(SecretsError::Corrupt {
                location: "test".into(),
                detail: "starts with !".into(),
            });
        }
        Ok(text.to_owned())
    }

    fn absent(&self) -> Option<String> {
        self.absent.map(str::to_owned)
    }
}

fn document(f: &Fixture, ttl: Duration) -> CachedDocument<Arc<dyn SecretWriter>, Text> {
    CachedDocument::new(
        Arc::clone(&f.store),
        f.name.clone(),
        Text { absent: None },
        ttl,
        Arc::new(f.clock.clone()),
    )
}

async fn the_cached_document_is_served_until_its_ttl_and_then_read_again(f: Fixture) {
    let s = &f.store;
    s.create(&f.name, &secret("one")).await.unwrap();
    let cache = document(&f, Duration::from_secs(60));
    assert_eq!(*cache.get().await.unwrap(), "one");
    s.put_current(&f.name, &VersionId::random(), &secret("two"))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(59));
    assert_eq!(*cache.get().await.unwrap(), "one", "still cached");
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(*cache.get().await.unwrap(), "two", "read again");
    s.put_current(&f.name, &VersionId::random(), &secret("three"))
        .await
        .unwrap();
    cache.invalidate();
    assert_eq!(*cache.get().await.unwrap(), "three", "forgotten at once");
}

async fn a_missing_document_is_its_format_s_empty_document_or_not_found(f: Fixture) {
    let strict = document(&f, Duration::from_secs(60));
    let err = strict.get().await.unwrap_err();
    assert!(matches!(err, SecretsError::NotFound(_)), "{err:?}");
    let lenient = CachedDocument::new(
        Arc::clone(&f.store),
        f.name.clone(),
        Text {
            absent: Some("empty"),
        },
        Duration::from_secs(60),
        Arc::new(f.clock.clone()),
    );
    let read = lenient.read_for_update().await.unwrap();
    assert_eq!((read.document.as_str(), read.version), ("empty", None));
    f.store.create(&f.name, &secret("!bad")).await.unwrap();
    let err = strict.get().await.unwrap_err();
    assert!(matches!(err, SecretsError::Corrupt { .. }), "{err:?}");
}

async fn a_replace_lands_only_on_the_version_it_read_and_a_lost_race_changes_nothing(f: Fixture) {
    let cache = document(&f, Duration::from_secs(60));
    let none = Versioned {
        document: (),
        version: None,
    };
    let (first, served) = cache
        .replace(&none, "one".to_owned(), &secret("one"))
        .await
        .unwrap();
    assert_eq!(*served, "one");
    let err = cache
        .replace(&none, "other".to_owned(), &secret("other"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecretsError::CurrentMoved(_)),
        "created meanwhile: {err:?}"
    );
    let read = cache.read_for_update().await.unwrap();
    assert_eq!(read.version.as_ref(), Some(&first));
    f.store
        .put_current(&f.name, &VersionId::random(), &secret("theirs"))
        .await
        .unwrap();
    let err = cache
        .replace(&read, "mine".to_owned(), &secret("mine"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretsError::CurrentMoved(_)), "{err:?}");
    assert_eq!(
        *cache.get().await.unwrap(),
        "one",
        "the cache kept what it had"
    );
    assert_eq!(value(&f.store.current(&f.name).await.unwrap()), "theirs");
    let read = cache.read_for_update().await.unwrap();
    let (_, served) = cache
        .replace(&read, "mine".to_owned(), &secret("mine"))
        .await
        .unwrap();
    assert_eq!(*served, "mine");
    assert_eq!(value(&f.store.current(&f.name).await.unwrap()), "mine");
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
    the_cached_document_is_served_until_its_ttl_and_then_read_again,
    a_missing_document_is_its_format_s_empty_document_or_not_found,
    a_replace_lands_only_on_the_version_it_read_and_a_lost_race_changes_nothing,
    a_conditional_write_lands_only_while_current_is_the_version_it_read,
    a_version_says_when_it_was_written,
    a_discarded_pending_version_loses_only_its_pending_label_and_discarding_again_is_a_no_op,
);

mod cache {
    use super::*;

    #[tokio::test]
    async fn the_cache_ttl_is_capped_at_five_minutes() {
        let f = files().await;
        let cache = document(&f, Duration::from_secs(3600));
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
