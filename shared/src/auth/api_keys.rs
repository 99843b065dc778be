//! The API key registry: one secret holding every server-to-server key (docs/architecture.md §4).
//!
//! A key has an id (sent as `X-Access-Key`), a secret (the HMAC key, shown to its owner once),
//! a type (`live`, `test`, `read_only`), a permission list, an optional source-IP allow-list, a
//! status, an expiry and an owner. Several keys may be active at once, so a caller can rotate
//! gradually: create the new key under the same owner, deploy it, revoke the old one.
//!
//! - **Expiry.** A key is refused (`401 token_expired`) from its `expiresAt` on. Keys created
//!   before keys had an expiry expire [`DEFAULT_KEY_LIFETIME`] (90 days, the rotation period of
//!   the platform's partner checklists) after their `createdAt`.
//! - **Owner.** The keys of one calling service share an owner (its *key family*); a key reads
//!   only the issuances created by its own family. A key without an owner is a family of one,
//!   named by its id.
//! - **Environment.** A stack is `live` or `test` ([`StackEnvironment`]); a `live` key is refused
//!   on a test stack and a `test` key on a live one. A `read_only` key is accepted on both.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::IpNet;
use rand_core::RngCore;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::clock::{SharedClock, Timestamp};
use crate::secrets::{CachedDocument, DocumentFormat, SecretName, SecretSource, SecretsError};

/// The registry secret's name when `API_KEYS_SECRET_NAME` is not set.
pub const DEFAULT_API_KEYS_SECRET: &str = "partner-bundle/api-keys";

/// How long a key is valid when its creator does not say: 90 days, the rotation period the
/// platform's partner checklists give for credentials.
pub const DEFAULT_KEY_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// The longest lifetime a key may be given: one year.
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

/// Which traffic a stack serves (`STACK_ENVIRONMENT`, default `live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackEnvironment {
    /// Production: `live` and `read_only` keys.
    #[default]
    Live,
    /// Testing: `test` and `read_only` keys.
    Test,
}

impl StackEnvironment {
    /// The environment variable a function reads it from.
    pub const VAR: &'static str = "STACK_ENVIRONMENT";

    /// Parses `live` or `test`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }

    /// The environment's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    /// Reads [`Self::VAR`] (default `live`).
    ///
    /// # Errors
    /// A value other than `live` or `test`.
    pub fn from_env(r: &crate::config::EnvReader<'_>) -> Result<Self, crate::config::ConfigError> {
        match r.optional(Self::VAR) {
            None => Ok(Self::Live),
            Some(v) => Self::parse(&v)
                .ok_or_else(|| crate::config::ConfigError::new(Self::VAR, "must be live or test")),
        }
    }

    /// Whether a key of type `t` may be used on a stack of this environment.
    pub fn accepts(self, t: KeyType) -> bool {
        matches!(
            (self, t),
            (_, KeyType::ReadOnly) | (Self::Live, KeyType::Live) | (Self::Test, KeyType::Test)
        )
    }
}

/// The owner of a family of keys: 1–64 characters of `A-Za-z0-9._-`, e.g. the calling service's
/// name. The keys of one owner read each other's issuances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyOwner(String);

impl KeyOwner {
    /// Parses an owner name.
    pub fn parse(text: &str) -> Option<Self> {
        ((1..=64).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .then(|| Self(text.to_owned()))
    }

    /// The family of one key without an owner: named by the key's id.
    pub fn of_key(id: &AccessKeyId) -> Self {
        Self(id.as_str().to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyOwner {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
            .ok_or_else(|| "an owner is 1 to 64 characters of A-Z a-z 0-9 . _ -".to_owned())
    }
}

impl From<KeyOwner> for String {
    fn from(o: KeyOwner) -> String {
        o.0
    }
}

impl fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An access key id: `pk_` followed by 16–64 characters of `A-Za-z0-9_-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessKeyId(String);

impl AccessKeyId {
    /// Parses an id as sent in `X-Access-Key`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("pk_")?;
        ((16..=64).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| Self(text.to_owned()))
    }

    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 12];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(format!("pk_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccessKeyId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| "malformed access key id".to_owned())
    }
}

impl From<AccessKeyId> for String {
    fn from(id: AccessKeyId) -> String {
        id.0
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// Production traffic.
    Live,
    /// Test traffic.
    Test,
    /// Reads only: refused on every write, whatever its permissions say.
    ReadOnly,
}

/// A permission a key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Issue credentials.
    #[serde(rename = "credentials:write")]
    CredentialsWrite,
    /// Read issuance status.
    #[serde(rename = "credentials:read")]
    CredentialsRead,
    /// Mint Partner JWTs for users the caller authenticated itself.
    #[serde(rename = "tokens:mint")]
    TokensMint,
    /// Mint Partner JWTs of the `issue` scope, with which the holder can call the platform's
    /// issue-on-behalf directly, past this bundle's schema checks, idempotency and records;
    /// granted on its own, beside `tokens:mint`.
    #[serde(rename = "tokens:mint-issue")]
    TokensMintIssue,
}

impl Permission {
    /// The permission's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialsWrite => "credentials:write",
            Self::CredentialsRead => "credentials:read",
            Self::TokensMint => "tokens:mint",
            Self::TokensMintIssue => "tokens:mint-issue",
        }
    }

    /// Whether using it changes state (refused to `read_only` keys).
    pub fn is_write(self) -> bool {
        !matches!(self, Self::CredentialsRead)
    }

    /// Parses a permission name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::CredentialsWrite,
            Self::CredentialsRead,
            Self::TokensMint,
            Self::TokensMintIssue,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Refused.
    Revoked,
}

/// One API key as stored in the registry secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `X-Access-Key`.
    pub id: AccessKeyId,
    /// The HMAC key (its UTF-8 bytes), exactly as shown to the owner.
    pub secret: String,
    /// Its type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Source addresses it may be used from (CIDR); empty means anywhere.
    #[serde(default)]
    pub allowed_ips: Vec<IpNet>,
    /// Active or revoked.
    pub status: KeyStatus,
    /// A human label.
    #[serde(default)]
    pub label: String,
    /// When it was created.
    #[serde(with = "crate::clock::rfc3339")]
    pub created_at: Timestamp,
    /// When it was revoked.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::clock::rfc3339_opt"
    )]
    pub revoked_at: Option<Timestamp>,
    /// When it stops working; see [`ApiKey::expiry`] for keys stored without one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::clock::rfc3339_opt"
    )]
    pub expires_at: Option<Timestamp>,
    /// The family it belongs to; see [`ApiKey::family`] for keys stored without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<KeyOwner>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .field("key_type", &self.key_type)
            .field("permissions", &self.permissions)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Drop for ApiKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl ApiKey {
    /// A new active key with a random id and a random 32-byte secret (`sk_` + base64url), valid
    /// for [`DEFAULT_KEY_LIFETIME`], without an owner.
    pub fn generate(
        key_type: KeyType,
        permissions: Vec<Permission>,
        allowed_ips: Vec<IpNet>,
        label: &str,
        now: Timestamp,
    ) -> Self {
        let mut raw = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut raw);
        let secret = format!("sk_{}", URL_SAFE_NO_PAD.encode(raw));
        raw.zeroize();
        Self {
            id: AccessKeyId::random(),
            secret,
            key_type,
            permissions,
            allowed_ips,
            status: KeyStatus::Active,
            label: label.to_owned(),
            created_at: now,
            revoked_at: None,
            expires_at: Some(now.plus(DEFAULT_KEY_LIFETIME)),
            owner: None,
        }
    }

    /// When the key stops working: its `expiresAt`, or [`DEFAULT_KEY_LIFETIME`] after its
    /// creation for a key stored before keys had an expiry.
    pub fn expiry(&self) -> Timestamp {
        self.expires_at
            .unwrap_or_else(|| self.created_at.plus(DEFAULT_KEY_LIFETIME))
    }

    /// Whether the key has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expiry()
    }

    /// The key's family: its owner, or the key alone.
    pub fn family(&self) -> KeyOwner {
        self.owner
            .clone()
            .unwrap_or_else(|| KeyOwner::of_key(&self.id))
    }

    /// Whether `ip` may use this key.
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.allowed_ips.is_empty()
            || ip.is_some_and(|ip| self.allowed_ips.iter().any(|net| net.contains(&ip)))
    }

    /// Whether the key grants `p` (a `read_only` key never grants a write).
    pub fn grants(&self, p: Permission) -> bool {
        !(p.is_write() && self.key_type == KeyType::ReadOnly) && self.permissions.contains(&p)
    }
}

/// The registry document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiKeyRegistry {
    /// Every key, active or revoked.
    #[serde(default)]
    pub keys: Vec<ApiKey>,
}

impl ApiKeyRegistry {
    /// Parses the registry secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("{:?} error at line {}", e.classify(), e.line()))
    }

    /// The document as stored (contains secrets: only ever written to the secrets port).
    pub fn to_secret(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).unwrap_or_default())
    }

    /// The key with `id`.
    pub fn get(&self, id: &AccessKeyId) -> Option<&ApiKey> {
        self.keys.iter().find(|k| &k.id == id)
    }
}

/// Why the registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The secret could not be read.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The secret is not a registry document.
    #[error("the API key registry is not a valid document: {0}")]
    Malformed(String),
}

/// Looking up API keys.
#[async_trait::async_trait]
pub trait ApiKeyLookup: Send + Sync {
    /// The key with `id`, if the registry has it.
    async fn find(&self, id: &AccessKeyId) -> Result<Option<ApiKey>, RegistryError>;
}

/// How the registry secret reads: a secret that does not exist holds no keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryFormat;

impl DocumentFormat for RegistryFormat {
    type Document = ApiKeyRegistry;
    type Error = RegistryError;

    fn parse(&self, text: &str) -> Result<ApiKeyRegistry, RegistryError> {
        ApiKeyRegistry::parse(text).map_err(RegistryError::Malformed)
    }

    fn absent(&self) -> Option<ApiKeyRegistry> {
        Some(ApiKeyRegistry::default())
    }
}

/// The registry in a secret, cached for at most the cache TTL (≤ 300 s): a revoked key stops
/// working within that time.
pub struct SecretApiKeys<S> {
    document: CachedDocument<S, RegistryFormat>,
}

impl<S: SecretSource> SecretApiKeys<S> {
    /// The registry in secret `name`.
    pub fn new(secrets: S, name: SecretName, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            document: CachedDocument::new(secrets, name, RegistryFormat, ttl, clock),
        }
    }

    /// The registry document (empty if the secret does not exist).
    pub async fn registry(&self) -> Result<Arc<ApiKeyRegistry>, RegistryError> {
        self.document.get().await
    }

    /// Forgets the cached registry.
    pub fn invalidate(&self) {
        self.document.invalidate();
    }
}

#[async_trait::async_trait]
impl<S: SecretSource> ApiKeyLookup for SecretApiKeys<S> {
    async fn find(&self, id: &AccessKeyId) -> Result<Option<ApiKey>, RegistryError> {
        Ok(self.registry().await?.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_read_only_key_never_grants_a_write() {
        let now = Timestamp::from_secs(0);
        let k = ApiKey::generate(
            KeyType::ReadOnly,
            vec![Permission::CredentialsWrite, Permission::CredentialsRead],
            vec![],
            "ro",
            now,
        );
        assert!(!k.grants(Permission::CredentialsWrite));
        assert!(k.grants(Permission::CredentialsRead));
    }

    #[test]
    fn the_ip_allow_list_matches_cidr_ranges() {
        let mut k = ApiKey::generate(KeyType::Live, vec![], vec![], "", Timestamp::from_secs(0));
        assert!(k.allows_ip(None), "no list: anywhere");
        k.allowed_ips = vec!["203.0.113.0/24".parse().unwrap()];
        assert!(k.allows_ip(Some("203.0.113.9".parse().unwrap())));
        assert!(!k.allows_ip(Some("198.51.100.1".parse().unwrap())));
        assert!(!k.allows_ip(None), "a list and no known source: refused");
    }

    #[test]
    fn generated_ids_parse_and_secrets_stay_out_of_debug() {
        let k = ApiKey::generate(KeyType::Test, vec![], vec![], "", Timestamp::from_secs(0));
        assert!(AccessKeyId::parse(k.id.as_str()).is_some());
        assert!(k.secret.starts_with("sk_") && k.secret.len() > 40);
        assert!(!format!("{k:?}").contains(&k.secret));
        assert!(AccessKeyId::parse("pk_short").is_none());
        assert!(AccessKeyId::parse("ak_0123456789abcdef").is_none());
    }

    #[test]
    fn the_registry_round_trips_through_its_secret_form() {
        let k = ApiKey::generate(
            KeyType::Live,
            vec![Permission::CredentialsWrite],
            vec!["10.0.0.0/8".parse().unwrap()],
            "svc",
            Timestamp::from_secs(10),
        );
        let reg = ApiKeyRegistry { keys: vec![k] };
        let parsed = ApiKeyRegistry::parse(reg.to_secret().expose_secret()).unwrap();
        assert_eq!(parsed.keys[0].id, reg.keys[0].id);
        assert_eq!(
            parsed.keys[0].permissions,
            vec![Permission::CredentialsWrite]
        );
        assert!(ApiKeyRegistry::parse("42").is_err());
        assert!(ApiKeyRegistry::parse(r#"{"keys": [{"id": "nope"}]}"#).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_registry_text_parses_or_is_refused_without_panicking(text in "\\PC{0,300}") {
            let _ = ApiKeyRegistry::parse(&text);
        }

        #[test]
        fn any_json_shaped_registry_parses_or_is_refused_without_panicking(
            id in "\\PC{0,70}",
            key_type in "\\PC{0,12}",
            permission in "\\PC{0,20}",
            ip in "\\PC{0,20}",
            created in "\\PC{0,30}",
        ) {
            let doc = serde_json::json!({"keys": [{
                "id": id, "secret": "sk_x", "type": key_type, "permissions": [permission],
                "allowedIps": [ip], "status": "active", "createdAt": created
            }]});
            let _ = ApiKeyRegistry::parse(&doc.to_string());
        }

        #[test]
        fn an_owner_name_parses_only_from_its_alphabet(text in "\\PC{0,80}") {
            if let Some(owner) = KeyOwner::parse(&text) {
                prop_assert!((1..=64).contains(&owner.as_str().len()));
                prop_assert!(owner.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            }
        }
    }
}
