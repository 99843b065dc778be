//! `<data-dir>/dev-credentials.json` (mode 0600): what a local user needs to call the stack — the
//! dev API key (created on first start, kept across restarts) and the callback signing secret the
//! stack shares with the platform simulator.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::auth::{
    ApiKey, ApiKeyRegistry, KeyStatus, KeyType, Permission, RegistryError, RegistryFormat,
};
use shared::clock::Timestamp;
use shared::secrets::{
    DocumentFormat, SecretName, SecretWriter, SecretsError, VersionId, Versioned, read_versioned,
    write_if_unchanged,
};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "dev-credentials.json";

/// The label of the dev API key in the registry.
const DEV_KEY_LABEL: &str = "devstack";

/// The dev API key as written to the credentials file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevApiKey {
    /// `X-Access-Key`.
    pub id: String,
    /// The HMAC secret.
    pub secret: String,
}

/// What the file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevCredentials {
    /// The dev API key.
    pub api_key: DevApiKey,
    /// The Standard Webhooks secret (`whsec_…`) shared with the simulator.
    pub webhook_secret: String,
    /// A `read_only` dev key (`credentials:read` only): what a reporting service would hold, and
    /// what `opsctl audit` uses to check that such a key cannot write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_key: Option<DevApiKey>,
    /// Where the dev identity provider issues identity tokens (`POST {"sub","email","mfa"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_login: Option<String>,
    /// The sample issuance programs.
    #[serde(default)]
    pub programs: Vec<Value>,
}

/// Why the credentials could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a credentials document.
    #[error("{0} is not a dev credentials document; remove it to start afresh")]
    Corrupt(PathBuf),
    /// The API key registry could not be updated.
    #[error("cannot update the API key registry: {0}")]
    Registry(#[from] SecretsError),
    /// The webhook secret could not be shared with the callback receiver.
    #[error("cannot put the webhook secret in the webhook secrets secret: {0}")]
    WebhookSecrets(#[source] SecretsError),
}

/// Loads the credentials file, or creates the dev API key and the webhook secret and writes it.
/// The dev key is registered in the API key registry if it is not there; if an operator revoked
/// it, a new dev key is issued (the revoked one stays for the audit trail) and the file updated.
pub async fn ensure(
    data_dir: &Path,
    secrets: &dyn SecretWriter,
    registry_name: &SecretName,
    now: Timestamp,
) -> Result<DevCredentials, CredentialsError> {
    let path = data_dir.join(FILE_NAME);
    let mut creds = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|_| CredentialsError::Corrupt(path.clone()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key =
                ApiKey::generate(KeyType::Test, dev_permissions(), vec![], DEV_KEY_LABEL, now);
            let mut raw = [0u8; 32];
            rand_core::OsRng.fill_bytes(&mut raw);
            let creds = DevCredentials {
                api_key: DevApiKey {
                    id: key.id.as_str().to_owned(),
                    secret: key.secret.clone(),
                },
                webhook_secret: format!(
                    "whsec_{}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ),
                read_only_key: None,
                user_login: None,
                programs: Vec::new(),
            };
            write(&path, &creds)?;
            creds
        }
        Err(source) => return Err(CredentialsError::Io { path, source }),
    };
    register(&mut creds, &path, secrets, registry_name, now).await?;
    register_read_only(&mut creds, &path, secrets, registry_name, now).await?;
    Ok(creds)
}

/// The API-key registry and its version; a registry that cannot be read is an error (it is
/// reported, never replaced).
async fn read_registry(
    secrets: &dyn SecretWriter,
    name: &SecretName,
) -> Result<Versioned<ApiKeyRegistry>, CredentialsError> {
    read_versioned(secrets, name, &RegistryFormat)
        .await
        .map_err(|e| match e {
            RegistryError::Malformed(detail) => CredentialsError::Registry(SecretsError::Corrupt {
                location: name.to_string(),
                detail,
            }),
            RegistryError::Secrets(e) => e.into(),
        })
}

/// The label of the read-only dev key in the registry.
const READ_ONLY_LABEL: &str = "devstack-read-only";

/// Makes sure the file's read-only key is registered, active and unexpired; otherwise issues a
/// new one (a revoked or expired one stays in the registry) and rewrites the file.
async fn register_read_only(
    creds: &mut DevCredentials,
    path: &Path,
    secrets: &dyn SecretWriter,
    name: &SecretName,
    now: Timestamp,
) -> Result<(), CredentialsError> {
    let Versioned {
        document: mut registry,
        version: current,
    } = read_registry(secrets, name).await?;
    let usable = creds.read_only_key.as_ref().is_some_and(|mine| {
        registry.keys.iter().any(|k| {
            k.id.as_str() == mine.id
                && k.secret == mine.secret
                && k.status == KeyStatus::Active
                && !k.is_expired(now)
        })
    });
    if usable {
        return Ok(());
    }
    let key = ApiKey::generate(
        KeyType::ReadOnly,
        vec![Permission::CredentialsRead],
        vec![],
        READ_ONLY_LABEL,
        now,
    );
    creds.read_only_key = Some(DevApiKey {
        id: key.id.as_str().to_owned(),
        secret: key.secret.clone(),
    });
    registry.keys.push(key);
    save(&registry, secrets, name, current).await?;
    write(path, creds)
}

/// Writes the file with mode 0600.
pub fn write(path: &Path, creds: &DevCredentials) -> Result<(), CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(creds).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

async fn register(
    creds: &mut DevCredentials,
    path: &Path,
    secrets: &dyn SecretWriter,
    name: &SecretName,
    now: Timestamp,
) -> Result<(), CredentialsError> {
    // A registry that cannot be read is reported, never replaced.
    let Versioned {
        document: mut registry,
        version: current,
    } = read_registry(secrets, name).await?;
    let known = registry
        .keys
        .iter()
        .find(|k| k.id.as_str() == creds.api_key.id && k.secret == creds.api_key.secret);
    match known.map(|k| (k.status, k.is_expired(now))) {
        Some((KeyStatus::Active, false)) => return Ok(()),
        // Revoked by an operator, or expired: issue a new dev key (the old entry stays in the
        // registry for the audit trail).
        Some((KeyStatus::Active, true) | (KeyStatus::Revoked, _)) | None => {}
    }
    let key = ApiKey::generate(KeyType::Test, dev_permissions(), vec![], DEV_KEY_LABEL, now);
    if known.is_some() {
        creds.api_key = DevApiKey {
            id: key.id.as_str().to_owned(),
            secret: key.secret.clone(),
        };
        write(path, creds)?;
    } else {
        // A credentials file from another data directory or an older registry: register it.
        let mut restored = key;
        restored.id = serde_json::from_value(json!(creds.api_key.id))
            .map_err(|_| SecretsError::InvalidName("dev API key id".into()))?;
        restored.secret = creds.api_key.secret.clone();
        registry.keys.retain(|k| k.id != restored.id);
        registry.keys.push(restored);
        return save(&registry, secrets, name, current).await;
    }
    registry.keys.push(key);
    save(&registry, secrets, name, current).await
}

/// What the dev key may do: everything, `tokens:mint-issue` included (a deployment grants that
/// one only to the services that need it).
fn dev_permissions() -> Vec<Permission> {
    vec![
        Permission::CredentialsWrite,
        Permission::CredentialsRead,
        Permission::TokensMint,
        Permission::TokensMintIssue,
    ]
}

async fn save(
    registry: &ApiKeyRegistry,
    secrets: &dyn SecretWriter,
    name: &SecretName,
    current: Option<VersionId>,
) -> Result<(), CredentialsError> {
    write_if_unchanged(secrets, name, current.as_ref(), &registry.to_secret())
        .await
        .map(|_| ())
        .map_err(CredentialsError::from)
}

/// The webhook secrets document as the devstack edits it: its list of secrets, with every other
/// member (the platform's `publicKeys`, …) kept as it is.
#[derive(Serialize, Deserialize, Default)]
struct WebhookSecretsDocument {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

struct WebhookSecretsFormat<'a>(&'a SecretName);

impl DocumentFormat for WebhookSecretsFormat<'_> {
    type Document = WebhookSecretsDocument;
    type Error = SecretsError;

    fn parse(&self, text: &str) -> Result<WebhookSecretsDocument, SecretsError> {
        serde_json::from_str(text).map_err(|_| SecretsError::Corrupt {
            location: self.0.to_string(),
            detail: "not a webhook secrets document ({\"secrets\": [...]})".to_owned(),
        })
    }

    fn absent(&self) -> Option<WebhookSecretsDocument> {
        Some(WebhookSecretsDocument::default())
    }
}

/// Makes sure the webhook secrets secret `name` (read by the callback receiver through the
/// secrets port, as in AWS) accepts `webhook_secret`, the secret the simulator signs with. Other
/// secrets already listed stay (an operator may be trying a rotation); a secret that cannot be
/// read is reported, never replaced.
pub async fn share_webhook_secret(
    secrets: &dyn SecretWriter,
    name: &SecretName,
    webhook_secret: &str,
) -> Result<(), CredentialsError> {
    let fail = CredentialsError::WebhookSecrets;
    let Versioned {
        mut document,
        version,
    } = read_versioned(secrets, name, &WebhookSecretsFormat(name))
        .await
        .map_err(fail)?;
    if document.secrets.iter().any(|s| s == webhook_secret) {
        return Ok(());
    }
    document.secrets.push(webhook_secret.to_owned());
    let value = secrecy::SecretString::from(serde_json::to_string(&document).unwrap_or_default());
    write_if_unchanged(secrets, name, version.as_ref(), &value)
        .await
        .map(|_| ())
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use shared::secrets::SecretSource;
    use shared::secrets::file::FileSecrets;

    use super::*;

    #[tokio::test]
    async fn sharing_the_simulators_secret_keeps_the_other_secrets_and_the_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileSecrets::open(dir.path(), Arc::new(shared::clock::SystemClock)).unwrap();
        let name = SecretName::new("partner-bundle/webhook-secrets").unwrap();
        let doc = r#"{"secrets": ["whsec_b2xk"], "publicKeys": ["whpk_cHVibGlj"]}"#;
        files
            .create(&name, &secrecy::SecretString::from(doc.to_owned()))
            .await
            .unwrap();
        share_webhook_secret(&files, &name, "whsec_bmV3")
            .await
            .unwrap();
        let stored = files.current(&name).await.unwrap();
        let value: serde_json::Value =
            serde_json::from_str(secrecy::ExposeSecret::expose_secret(&stored.value)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"secrets": ["whsec_b2xk", "whsec_bmV3"], "publicKeys": ["whpk_cHVibGlj"]})
        );
    }
}
