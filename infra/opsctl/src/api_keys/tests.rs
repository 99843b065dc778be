//! Unit tests of the `api-keys` argument checks, and of its compare-and-swap paths with a fake
//! concurrent writer.

use shared::secrets::SecretsError;

use super::*;

#[test]
fn addresses_and_ranges_become_canonical_ranges() {
    let cases = [
        ("203.0.113.0/24", Some("203.0.113.0/24")),
        ("203.0.113.7/24", Some("203.0.113.0/24")),
        ("203.0.113.7", Some("203.0.113.7/32")),
        ("0.0.0.0/0", Some("0.0.0.0/0")),
        ("2001:db8::1", Some("2001:db8::1/128")),
        ("2001:db8::1/32", Some("2001:db8::/32")),
        ("::/0", Some("::/0")),
        ("203.0.113.0/33", None),
        ("203.0.113.0/", None),
        ("203.0.113.0/+8", None),
        ("2001:db8::/129", None),
        ("203.0.113", None),
        ("localhost", None),
        ("", None),
    ];
    for (given, expected) in cases {
        assert_eq!(parse_allowed_ip(given).as_deref(), expected, "{given}");
    }
}

#[test]
fn permissions_are_deduplicated_and_an_unknown_one_is_named() {
    let spec = NewKey::parse(
        TypeArg::Live,
        &[
            "credentials:write".into(),
            "credentials:read".into(),
            "credentials:write".into(),
        ],
        &[],
        " billing ",
    )
    .unwrap();
    assert_eq!(
        spec.permissions,
        [Permission::CredentialsWrite, Permission::CredentialsRead]
    );
    assert_eq!(spec.label, "billing");
    let err = NewKey::parse(TypeArg::Live, &["credentials:delete".into()], &[], "")
        .unwrap_err()
        .report();
    assert_eq!(
        err,
        "--permission: unknown permission \"credentials:delete\"; the permissions are \
         credentials:write, credentials:read, tokens:mint, tokens:mint-issue"
    );
    assert!(NewKey::parse(TypeArg::Live, &[], &[], "").is_err());
}

#[test]
fn a_read_only_key_with_write_permissions_gets_a_note() {
    let spec = NewKey::parse(
        TypeArg::ReadOnly,
        &["credentials:write".into(), "credentials:read".into()],
        &["10.1.2.3/8".into()],
        "",
    )
    .unwrap();
    let notes = spec.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("credentials:write will never be granted"));
    assert!(notes[1].contains("stored as the range 10.0.0.0/8"));
}

#[test]
fn an_owner_and_a_lifetime_are_checked_and_default_to_a_family_of_one_for_ninety_days() {
    let spec = NewKey::parse(TypeArg::Live, &["credentials:read".into()], &[], "").unwrap();
    assert_eq!(spec.owner, None);
    assert_eq!(spec.lifetime, Duration::from_secs(90 * 86_400));
    let spec = spec
        .owned_by(Some("billing-svc"))
        .unwrap()
        .expiring_in_days(30)
        .unwrap();
    assert_eq!(
        spec.owner.as_ref().map(KeyOwner::as_str),
        Some("billing-svc")
    );
    assert_eq!(spec.lifetime, Duration::from_secs(30 * 86_400));
    for bad in ["", "two words", "x".repeat(65).as_str()] {
        let err = spec.clone().owned_by(Some(bad)).unwrap_err().report();
        assert!(err.starts_with("--owner:"), "{err}");
    }
    for days in [0, 367] {
        let err = spec.clone().expiring_in_days(days).unwrap_err().report();
        assert!(err.starts_with("--expires-in-days:"), "{err}");
    }
}

#[test]
fn a_label_with_control_characters_is_refused() {
    assert!(NewKey::parse(TypeArg::Test, &["tokens:mint".into()], &[], "a\nb").is_err());
}

#[test]
fn something_that_looks_like_a_secret_is_never_repeated() {
    assert!(!quoted("sk_abcdef").contains("abcdef"));
    assert_eq!(quoted("pk_x"), "\"pk_x\"");
}

mod concurrency {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use secrecy::SecretString;
    use shared::clock::SystemClock;
    use shared::secrets::file::FileSecrets;
    use shared::secrets::{SecretSource, SecretVersion, Stage, VersionStages};

    use super::*;

    /// File secrets with another writer that, around this command's conditional write, writes
    /// back the registry as this command first read it: just before (`before`) or just after.
    struct Interfering {
        inner: FileSecrets,
        before: bool,
        first: Mutex<Option<SecretString>>,
    }

    impl Interfering {
        fn new(dir: &tempfile::TempDir, before: bool) -> Self {
            Self {
                inner: FileSecrets::open(dir.path(), Arc::new(SystemClock)).unwrap(),
                before,
                first: Mutex::new(None),
            }
        }

        async fn interfere(&self, name: &SecretName) -> Result<(), SecretsError> {
            let first = self.first.lock().unwrap().clone();
            match first {
                Some(value) => {
                    self.inner
                        .put_current(name, &VersionId::random(), &value)
                        .await
                }
                None => Ok(()),
            }
        }
    }

    #[async_trait]
    impl SecretSource for Interfering {
        async fn get(
            &self,
            name: &SecretName,
            stage: Stage,
        ) -> Result<Option<SecretVersion>, SecretsError> {
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
    impl SecretWriter for Interfering {
        async fn create(
            &self,
            name: &SecretName,
            value: &SecretString,
        ) -> Result<VersionId, SecretsError> {
            self.inner.create(name, value).await
        }

        async fn put_pending(
            &self,
            name: &SecretName,
            token: &VersionId,
            value: &SecretString,
        ) -> Result<(), SecretsError> {
            self.inner.put_pending(name, token, value).await
        }

        async fn put_current(
            &self,
            name: &SecretName,
            token: &VersionId,
            value: &SecretString,
        ) -> Result<(), SecretsError> {
            self.inner.put_current(name, token, value).await
        }

        async fn put_current_if(
            &self,
            name: &SecretName,
            token: &VersionId,
            value: &SecretString,
            expected: &VersionId,
        ) -> Result<(), SecretsError> {
            if self.before {
                self.interfere(name).await?;
            }
            self.inner
                .put_current_if(name, token, value, expected)
                .await?;
            if !self.before {
                self.interfere(name).await?;
            }
            Ok(())
        }

        async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
            self.inner.promote(name, id).await
        }

        async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
            self.inner.stages(name).await
        }

        async fn discard_pending(
            &self,
            name: &SecretName,
            id: &VersionId,
        ) -> Result<(), SecretsError> {
            self.inner.discard_pending(name, id).await
        }
    }

    fn name() -> SecretName {
        SecretName::new(DEFAULT_API_KEYS_SECRET).unwrap()
    }

    fn spec() -> NewKey {
        NewKey::parse(TypeArg::Live, &["credentials:write".into()], &[], "").unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_secs(1_795_262_400)
    }

    async fn seeded(dir: &tempfile::TempDir) -> Created {
        let files = FileSecrets::open(dir.path(), Arc::new(SystemClock)).unwrap();
        create(&Registry::new(files, name()), &spec(), now())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_created_key_lists_with_its_owner_age_and_expiry_and_shows_expired_once_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileSecrets::open(dir.path(), Arc::new(SystemClock)).unwrap();
        let registry = Registry::new(files, name());
        let spec = spec()
            .owned_by(Some("billing"))
            .unwrap()
            .expiring_in_days(10)
            .unwrap();
        let created = create(&registry, &spec, now()).await.unwrap();
        let expiry = now().plus(Duration::from_secs(10 * 86_400));
        assert_eq!(created.key.expires_at, Some(expiry));
        let later = now().plus(Duration::from_secs(3 * 86_400 + 5));
        let rows = list(&registry, later).await.unwrap();
        assert_eq!(rows[0].owner.as_str(), "billing");
        assert_eq!((rows[0].age_days, rows[0].expired), (3, false));
        assert_eq!(rows[0].expires_at, expiry);
        let rows = list(&registry, expiry).await.unwrap();
        assert!(rows[0].expired);
    }

    async fn listed(dir: &tempfile::TempDir) -> Vec<ApiKeyRow> {
        let files = FileSecrets::open(dir.path(), Arc::new(SystemClock)).unwrap();
        list(&Registry::new(files, name()), now()).await.unwrap()
    }

    #[tokio::test]
    async fn a_write_by_someone_else_in_between_is_kept_and_the_operator_is_told_to_retry() {
        let dir = tempfile::tempdir().unwrap();
        let first = seeded(&dir).await;
        let racing = Registry::new(Interfering::new(&dir, true), name());
        let err = create(&racing, &spec(), now()).await.unwrap_err();
        assert!(matches!(err, Error::RegistryConflict { .. }), "{err}");
        assert!(err.report().contains("run the command again"));
        let err = revoke(&racing, first.key.id.as_str(), now())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RegistryConflict { .. }), "{err}");
        let rows = listed(&dir).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, KeyStatus::Active);
    }

    #[tokio::test]
    async fn a_revocation_overwritten_right_after_it_was_saved_is_reported_as_not_in_effect() {
        let dir = tempfile::tempdir().unwrap();
        let first = seeded(&dir).await;
        let racing = Registry::new(Interfering::new(&dir, false), name());
        let err = revoke(&racing, first.key.id.as_str(), now())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RegistryOverwritten { .. }), "{err}");
        assert!(err.report().contains("not in effect"), "{}", err.report());
        assert_eq!(listed(&dir).await[0].status, KeyStatus::Active);
    }
}
