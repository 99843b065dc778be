//! Protected user identifiers (docs/architecture.md §9), through the public API: keyed hashes, sealed values
//! bound to their record, key rotation, redaction, and the data-keys secret behind the secrets
//! port (the local file adapter, with a manual clock for the cache TTL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use shared::clock::{ManualClock, SharedClock, Timestamp};
use shared::pii::{DEFAULT_DATA_KEYS_SECRET, DataKeySource, DataKeys, PiiError, Protector, Sealed};
use shared::redact::Pii;
use shared::secrets::file::FileSecrets;
use shared::secrets::{
    CountingSource, MAX_CACHE_TTL, SecretName, SecretSource, SecretWriter, SecretsError,
};

const EMAIL: &str = "Alice.Liddell+wonderland@Example.COM";

fn email(text: &str) -> Pii<String> {
    Pii::new(text.to_owned())
}

fn protector() -> Protector {
    Protector::new(Arc::new(DataKeys::generate()))
}

fn clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    (c.clone(), Arc::new(c))
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<FileSecrets>,
    name: SecretName,
    clock: ManualClock,
    shared_clock: SharedClock,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (clock, shared_clock) = clock();
    let store = Arc::new(FileSecrets::open(dir.path(), Arc::clone(&shared_clock)).unwrap());
    Fixture {
        _dir: dir,
        store,
        name: SecretName::new(DEFAULT_DATA_KEYS_SECRET).unwrap(),
        clock,
        shared_clock,
    }
}

impl Fixture {
    fn source<S: SecretSource>(&self, secrets: S, ttl: Duration) -> DataKeySource<S> {
        DataKeySource::new(
            secrets,
            self.name.clone(),
            ttl,
            Arc::clone(&self.shared_clock),
        )
    }
}

#[test]
fn an_email_hashes_to_the_same_value_whatever_its_case_and_surrounding_space() {
    let p = protector();
    let hash = p.hash(EMAIL);
    assert_eq!(hash, p.hash(EMAIL));
    assert_eq!(hash, p.hash("  alice.liddell+wonderland@example.com \n"));
    assert_eq!(hash, p.hash("ALICE.LIDDELL+WONDERLAND@EXAMPLE.COM"));
    assert_ne!(
        hash,
        p.hash("alice.liddell@example.com"),
        "no provider-specific folding"
    );
    assert_eq!(hash.as_str().len(), 64);
    assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{hash}\""));
}

#[test]
fn the_same_email_hashes_differently_under_another_pepper() {
    assert_ne!(protector().hash(EMAIL), protector().hash(EMAIL));
}

#[test]
fn a_sealed_email_opens_again_even_after_a_trip_through_json() {
    let p = protector();
    let sealed = p.seal(&email(EMAIL), "USER#42").unwrap();
    let stored = serde_json::to_string(&sealed).unwrap();
    let read: Sealed = serde_json::from_str(&stored).unwrap();
    assert_eq!(read, sealed);
    assert_eq!(p.open(&read, "USER#42").unwrap().expose(), EMAIL);
}

#[test]
fn sealing_the_same_email_twice_gives_different_ciphertexts() {
    let p = protector();
    let a = p.seal(&email(EMAIL), "USER#42").unwrap();
    let b = p.seal(&email(EMAIL), "USER#42").unwrap();
    assert_ne!(a, b);
    assert_ne!(a.n, b.n);
    assert_ne!(a.c, b.c);
}

#[test]
fn a_sealed_email_moved_to_another_record_does_not_open() {
    let p = protector();
    let sealed = p.seal(&email(EMAIL), "USER#42").unwrap();
    let err = p.open(&sealed, "USER#43").unwrap_err();
    assert!(matches!(err, PiiError::OpenFailed), "{err:?}");
}

#[test]
fn a_tampered_ciphertext_does_not_open() {
    let p = protector();
    let sealed = p.seal(&email(EMAIL), "USER#42").unwrap();
    let mut bytes = B64.decode(&sealed.c).unwrap();
    bytes[3] ^= 0x80;
    let tampered = Sealed {
        c: B64.encode(&bytes),
        ..sealed
    };
    assert!(matches!(
        p.open(&tampered, "USER#42"),
        Err(PiiError::OpenFailed)
    ));
}

#[test]
fn after_a_rotation_old_values_still_open_and_new_values_use_the_new_key() {
    let mut keys = DataKeys::generate();
    let old = Protector::new(Arc::new(keys.clone()))
        .seal(&email(EMAIL), "USER#42")
        .unwrap();
    assert_eq!(old.v, "k1");
    let new_id = keys.rotate().to_owned();
    // Through the secret document, as another process would see the rotated keys.
    let rotated = DataKeys::parse(keys.to_secret().expose_secret()).unwrap();
    let p = Protector::new(Arc::new(rotated));
    assert_eq!(p.open(&old, "USER#42").unwrap().expose(), EMAIL);
    let new = p.seal(&email(EMAIL), "USER#42").unwrap();
    assert_eq!(new.v, new_id);
    assert_eq!(new.v, "k2");
    assert_eq!(p.open(&new, "USER#42").unwrap().expose(), EMAIL);
}

#[test]
fn debug_of_the_keys_and_the_protector_shows_no_key_bytes() {
    let mut keys = DataKeys::generate();
    keys.rotate();
    let document: serde_json::Value =
        serde_json::from_str(keys.to_secret().expose_secret()).unwrap();
    let p = Protector::new(Arc::new(keys.clone()));
    let shown = format!("{keys:?} {p:?} {keys:#?} {p:#?}");
    let mut materials = vec![document["pepper"].as_str().unwrap().to_owned()];
    materials.extend(
        document["keys"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap().to_owned()),
    );
    assert_eq!(materials.len(), 3);
    for material in materials {
        let raw = B64.decode(&material).unwrap();
        assert!(!shown.contains(&material), "{shown}");
        assert!(!shown.contains(&hex::encode(&raw)), "{shown}");
        assert!(!shown.contains(&hex::encode_upper(&raw)), "{shown}");
    }
    assert!(shown.contains("k1") && shown.contains("k2"), "{shown}");
}

#[test]
fn neither_the_sealed_json_nor_the_hash_contains_the_plaintext() {
    let p = protector();
    let sealed = p.seal(&email(EMAIL), "USER#42").unwrap();
    let hash = p.hash(EMAIL);
    let sealed_json = serde_json::to_string(&sealed).unwrap();
    let stored = format!("{sealed_json} {hash} {sealed:?} {hash:?}").to_lowercase();
    for fragment in ["alice", "liddell", "wonderland", "example", "@"] {
        assert!(!stored.contains(fragment), "{fragment} in {stored}");
    }
    let b64_of_plaintext = B64.encode(EMAIL);
    assert!(!sealed_json.contains(&b64_of_plaintext[..12]));
    assert!(!sealed_json.contains(&hex::encode(EMAIL)[..12]));
}

#[test]
fn errors_never_carry_the_plaintext() {
    let p = protector();
    let sealed = p.seal(&email(EMAIL), "USER#42").unwrap();
    let err = p.open(&sealed, "USER#43").unwrap_err();
    let shown = format!("{err} {err:?}").to_lowercase();
    assert!(!shown.contains("alice"), "{shown}");
}

#[tokio::test]
async fn ensure_creates_the_secret_once_and_a_second_ensure_keeps_it() {
    let f = fixture();
    let first_source = f.source(Arc::clone(&f.store), Duration::from_secs(60));
    let created = first_source.ensure().await.unwrap();
    // Another instance, with nothing cached, finds the secret and keeps it.
    let second_source = f.source(Arc::clone(&f.store), Duration::from_secs(60));
    let found = second_source.ensure().await.unwrap();
    assert_eq!(
        found.to_secret().expose_secret(),
        created.to_secret().expose_secret()
    );
    let stages = f.store.stages(&f.name).await.unwrap();
    assert_eq!(stages.0.len(), 1, "one version only: {stages:?}");

    let sealed = Protector::new(created)
        .seal(&email(EMAIL), "USER#42")
        .unwrap();
    let p = second_source.protector().await.unwrap();
    assert_eq!(p.open(&sealed, "USER#42").unwrap().expose(), EMAIL);
}

#[tokio::test]
async fn keys_of_a_missing_secret_are_not_found_rather_than_invented() {
    let f = fixture();
    let source = f.source(Arc::clone(&f.store), Duration::from_secs(60));
    let err = source.keys().await.unwrap_err();
    assert!(
        matches!(err, PiiError::Secrets(SecretsError::NotFound(_))),
        "{err:?}"
    );
    assert!(
        f.store.current(&f.name).await.is_err(),
        "keys() never creates"
    );
}

#[tokio::test]
async fn the_keys_are_served_from_the_cache_within_the_ttl_and_read_again_after() {
    let f = fixture();
    f.source(Arc::clone(&f.store), Duration::from_secs(60))
        .ensure()
        .await
        .unwrap();
    let counting = CountingSource::new(Arc::clone(&f.store));
    let source = f.source(counting.clone(), Duration::from_secs(60));
    for _ in 0..5 {
        source.keys().await.unwrap();
        std::hint::black_box(source.protector().await.unwrap().hash(EMAIL));
    }
    assert_eq!(counting.calls(), 1);
    f.clock.advance(Duration::from_secs(59));
    source.keys().await.unwrap();
    assert_eq!(counting.calls(), 1);
    f.clock.advance(Duration::from_secs(1));
    source.keys().await.unwrap();
    assert_eq!(counting.calls(), 2);
}

#[tokio::test]
async fn a_longer_ttl_is_capped_at_five_minutes() {
    let f = fixture();
    let source = f.source(Arc::clone(&f.store), Duration::from_secs(86_400));
    assert_eq!(source.ttl(), MAX_CACHE_TTL);
    assert!(MAX_CACHE_TTL <= Duration::from_secs(300));
}

#[tokio::test]
async fn a_malformed_secret_is_a_clear_error_and_ensure_does_not_replace_it() {
    let f = fixture();
    let garbage = "{\"pepper\": \"c2VjcmV0LXBlcHBlcg==\", \"keys\": \"c2VjcmV0\"}";
    f.store
        .create(&f.name, &SecretString::from(garbage))
        .await
        .unwrap();
    let source = f.source(Arc::clone(&f.store), Duration::from_secs(60));
    let err = source.keys().await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, PiiError::MalformedKeys(_)), "{err:?}");
    assert!(shown.contains("data-keys secret is malformed"), "{shown}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(matches!(
        source.ensure().await,
        Err(PiiError::MalformedKeys(_))
    ));
    let still = f.store.current(&f.name).await.unwrap();
    assert_eq!(still.value.expose_secret(), garbage);
}

#[tokio::test]
async fn a_rotation_through_the_source_is_picked_up_by_an_instance_that_meets_the_new_key() {
    let f = fixture();
    let operator = f.source(Arc::clone(&f.store), Duration::from_secs(60));
    let counting = CountingSource::new(Arc::clone(&f.store));
    let instance = f.source(counting.clone(), Duration::from_secs(300));
    operator.ensure().await.unwrap();
    let before = instance.keys().await.unwrap();
    assert_eq!(before.current_key_id(), "k1");

    let rotated = operator.rotate().await.unwrap();
    assert_eq!(rotated.current_key_id(), "k2");
    let sealed = Protector::new(Arc::clone(&rotated))
        .seal(&email(EMAIL), "USER#42")
        .unwrap();
    assert_eq!(sealed.v, "k2");

    // The instance still serves its cached k1-only keys, but meeting k2 makes it read again.
    assert_eq!(instance.keys().await.unwrap().current_key_id(), "k1");
    let reads = counting.calls();
    let keys = instance.keys_with(&sealed.v).await.unwrap();
    assert_eq!(counting.calls(), reads + 1);
    assert_eq!(
        Protector::new(keys)
            .open(&sealed, "USER#42")
            .unwrap()
            .expose(),
        EMAIL
    );
    assert!(matches!(
        instance.keys_with("k9").await,
        Err(PiiError::UnknownKey(id)) if id == "k9"
    ));
    let stages = f.store.stages(&f.name).await.unwrap();
    assert_eq!(
        stages.0.len(),
        2,
        "the rotation is a new version: {stages:?}"
    );
}
