//! The secrets port: versioned secrets with Secrets Manager's staging labels.
//!
//! - [`SecretSource`]: read a secret at a stage (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`) or at
//!   a version id. Functions that only read secrets depend on this alone.
//! - [`CachedDocument`]: every secret the bundle keeps is one JSON document, served from a cache
//!   that bounds its age (≤ 300 s) and written back as a compare-and-swap on its version
//!   ([`write_if_unchanged`]).
//! - [`SecretWriter`]: create a secret, stage a pending version under a client request token,
//!   write a new current version, and promote a version to current — the moves of the native
//!   4-step rotation, with the same label semantics on every adapter: a label sits on exactly one
//!   version; promoting moves `AWSCURRENT` and gives the old current `AWSPREVIOUS`.
//!
//! Adapters: [`aws::SecretsManagerStore`] (production; always names the stage it reads, because a
//! read without one can return a stale version on some implementations) and [`file::FileSecrets`]
//! (local mode: one 0600 JSON file per secret in the data directory).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

#[cfg(feature = "secretsmanager")]
pub mod aws;
mod counting;
mod document;
#[cfg(feature = "embedded")]
pub mod file;

pub use counting::CountingSource;
pub use document::{CachedDocument, DocumentFormat, Versioned, read_versioned, write_if_unchanged};

/// The longest a cached secret may be served (docs/architecture.md §3, §4: rotations must be seen in minutes).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);

/// A secret's name: 1–512 characters from `A-Za-z0-9/_+=.@-`, as Secrets Manager allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    /// A validated name, or a secret ARN (`arn:…:secret:…`, as rotation events carry).
    pub fn new(name: &str) -> Result<Self, SecretsError> {
        let is_arn = name.starts_with("arn:") && name.contains(":secret:");
        let ok = !name.is_empty()
            && name.len() <= 2048
            && (is_arn || name.len() <= 512)
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric() || "/_+=.@-".contains(c) || (is_arn && c == ':')
            });
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(SecretsError::InvalidName(name.chars().take(64).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` (a name or an ARN, as a rotation event carries it) designates this secret.
    /// An ARN ends with `:secret:<name>-<6 characters>`.
    pub fn is_designated_by(&self, id: &str) -> bool {
        if id == self.0 {
            return true;
        }
        id.rsplit_once(":secret:").is_some_and(|(_, tail)| {
            tail.strip_prefix(self.0.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|suffix| {
                    suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric())
                })
        })
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version id, which is also the client request token that created it (32–64 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(String);

impl VersionId {
    /// A fresh random version id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A version id given by a caller (e.g. a rotation event's `ClientRequestToken`).
    pub fn new(id: &str) -> Result<Self, SecretsError> {
        let ok = (32..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(SecretsError::InvalidVersion(id.chars().take(64).collect()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A staging label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// `AWSCURRENT`: the version in use.
    Current,
    /// `AWSPENDING`: the version a rotation is preparing.
    Pending,
    /// `AWSPREVIOUS`: the version that was current before.
    Previous,
}

impl Stage {
    /// The label's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Pending => "AWSPENDING",
            Self::Previous => "AWSPREVIOUS",
        }
    }

    /// The stage named `label`, if it is one of the three.
    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "AWSCURRENT" => Some(Self::Current),
            "AWSPENDING" => Some(Self::Pending),
            "AWSPREVIOUS" => Some(Self::Previous),
            _ => None,
        }
    }
}

/// One version of a secret.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// Its id.
    pub id: VersionId,
    /// Its value (redacted in `Debug`).
    pub value: SecretString,
    /// The labels on it.
    pub stages: Vec<Stage>,
    /// When this version was written, where the store says (Secrets Manager's `CreatedDate`):
    /// the age of a secret that is rotated by replacing its value.
    pub created_at: Option<crate::clock::Timestamp>,
}

/// The versions of a secret and their labels, without values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStages(pub Vec<(VersionId, Vec<Stage>)>);

impl VersionStages {
    /// The version carrying `stage`.
    pub fn with(&self, stage: Stage) -> Option<&VersionId> {
        self.0
            .iter()
            .find(|(_, s)| s.contains(&stage))
            .map(|(id, _)| id)
    }
}

/// A secrets error.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No such secret (or no version at that stage / id).
    #[error("secret {0} not found")]
    NotFound(String),
    /// A secret with this name already exists.
    #[error("secret {0} already exists")]
    AlreadyExists(String),
    /// A client request token reused with a different value.
    #[error("version {0} already exists with another value")]
    VersionConflict(String),
    /// A name that Secrets Manager would refuse.
    #[error("invalid secret name {0:?}")]
    InvalidName(String),
    /// A version id that Secrets Manager would refuse.
    #[error("invalid version id {0:?}")]
    InvalidVersion(String),
    /// A stored secret that cannot be read (corrupted file, binary secret).
    #[error("corrupt secret in {location}: {detail}")]
    Corrupt {
        /// The file or secret.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// A conditional write found `AWSCURRENT` on another version than expected.
    #[error("secret {0} changed since it was read")]
    CurrentMoved(String),
    /// The store could not be reached or refused the call.
    #[error("secrets store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reading secrets.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The version of `name` at `stage`, or `None` when the secret has no version at that stage.
    /// A secret that does not exist is `Err(NotFound)`.
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError>;

    /// The version `id` of `name`.
    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError>;

    /// The current value: shorthand for `get(name, Current)` that treats "no current" as absent.
    async fn current(&self, name: &SecretName) -> Result<SecretVersion, SecretsError> {
        self.get(name, Stage::Current)
            .await?
            .ok_or_else(|| SecretsError::NotFound(name.to_string()))
    }
}

/// Writing secrets, with the staging-label moves of Secrets Manager.
#[async_trait]
pub trait SecretWriter: SecretSource {
    /// Creates `name` with a first version at `AWSCURRENT`.
    async fn create(
        &self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<VersionId, SecretsError>;

    /// Writes a version `token` labelled `AWSPENDING` (moving the label from any other version).
    /// Idempotent: the same token with the same value again is a no-op.
    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError>;

    /// Writes a version `token` and makes it `AWSCURRENT` in one step; the old current becomes
    /// `AWSPREVIOUS`. Idempotent per token like [`SecretWriter::put_pending`].
    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError>;

    /// Like [`SecretWriter::put_current`], but only if `AWSCURRENT` is still on `expected`
    /// (compare-and-swap); otherwise nothing becomes current and the answer is
    /// [`SecretsError::CurrentMoved`].
    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError>;

    /// Makes version `id` `AWSCURRENT`; the old current becomes `AWSPREVIOUS` and `id` loses
    /// `AWSPENDING`. Promoting the current version again is a no-op.
    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError>;

    /// Every version that carries a label, with its labels.
    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError>;

    /// Takes `AWSPENDING` off version `id`, if it carries it (a rotation that will not be
    /// finished: Secrets Manager refuses to start another while a pending version is left).
    /// Idempotent: a version without the label is left as it is.
    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError>;
}

#[async_trait]
impl<T: SecretSource + ?Sized> SecretSource for std::sync::Arc<T> {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        (**self).get(name, stage).await
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        (**self).get_version(name, id).await
    }
}

#[async_trait]
impl<T: SecretWriter + ?Sized> SecretWriter for std::sync::Arc<T> {
    async fn create(
        &self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<VersionId, SecretsError> {
        (**self).create(name, value).await
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        (**self).put_pending(name, token, value).await
    }

    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        (**self).put_current(name, token, value).await
    }

    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError> {
        (**self).put_current_if(name, token, value, expected).await
    }

    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        (**self).promote(name, id).await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
        (**self).stages(name).await
    }

    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        (**self).discard_pending(name, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_the_secrets_manager_alphabet() {
        assert!(SecretName::new("partner/signing-keys").is_ok());
        assert!(SecretName::new("").is_err());
        assert!(SecretName::new("../etc/passwd").is_ok()); // dots and slashes are legal names…
        assert!(SecretName::new("a b").is_err());
        assert!(
            SecretName::new("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbC123")
                .is_ok()
        );
        assert!(SecretName::new("name:with:colons").is_err());
        assert!(SecretName::new(&"a".repeat(513)).is_err());
    }

    #[test]
    fn a_secret_is_designated_by_its_name_or_its_arn() {
        let name = SecretName::new("stack/signing-keys").unwrap();
        assert!(name.is_designated_by("stack/signing-keys"));
        assert!(name.is_designated_by(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/signing-keys-AbC123"
        ));
        assert!(!name.is_designated_by(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/signing-keys-old-AbC123"
        ));
        assert!(!name.is_designated_by("stack/other"));
    }

    #[test]
    fn version_ids_are_32_to_64_token_characters() {
        assert!(VersionId::new(VersionId::random().as_str()).is_ok());
        assert!(VersionId::new("short").is_err());
        assert!(VersionId::new(&"x".repeat(65)).is_err());
        assert!(VersionId::new(&format!("{}/", "x".repeat(40))).is_err());
    }

    #[test]
    fn stage_labels_round_trip() {
        for s in [Stage::Current, Stage::Pending, Stage::Previous] {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("AWSOTHER"), None);
    }
}
