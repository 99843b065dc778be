//! `<data-dir>/dev-credentials.json` (mode 0600): what a local user needs to call the stack — the
//! dev API key (created on first start, kept across restarts) and the callback signing secret the
//! stack shares with the platform simulator.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand_core::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::auth::{ApiKey, ApiKeyRegistry, KeyStatus, KeyType, Permission};
use shared::clock::Timestamp;
use shared::secrets::{SecretName, SecretWriter, SecretsError, VersionId};

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
}

/// Loads the credentials file, or creates the dev API key and the webhook secret and writes it.
/// The dev key is registered (or re-activated) in the API key registry either way.
pub async fn ensure(
    data_dir: &Path,
    secrets: &dyn SecretWriter,
    registry_name: &SecretName,
    now: Timestamp,
) -> Result<DevCredentials, CredentialsError> {
    let path = data_dir.join(FILE_NAME);
    let creds = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|_| CredentialsError::Corrupt(path.clone()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ApiKey::generate(
                KeyType::Test,
                vec![
                    Permission::CredentialsWrite,
                    Permission::CredentialsRead,
                    Permission::TokensMint,
                ],
                vec![],
                DEV_KEY_LABEL,
                now,
            );
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
                programs: Vec::new(),
            };
            write(&path, &creds)?;
            creds
        }
        Err(source) => return Err(CredentialsError::Io { path, source }),
    };
    register(&creds, secrets, registry_name, now).await?;
    Ok(creds)
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
    creds: &DevCredentials,
    secrets: &dyn SecretWriter,
    name: &SecretName,
    now: Timestamp,
) -> Result<(), CredentialsError> {
    let (mut registry, current) = match secrets.current(name).await {
        Ok(v) => (
            ApiKeyRegistry::parse(v.value.expose_secret()).unwrap_or_default(),
            Some(v.id),
        ),
        Err(SecretsError::NotFound(_)) => (ApiKeyRegistry::default(), None),
        Err(e) => return Err(e.into()),
    };
    if registry.keys.iter().any(|k| {
        k.id.as_str() == creds.api_key.id
            && k.secret == creds.api_key.secret
            && k.status == KeyStatus::Active
    }) {
        return Ok(());
    }
    let mut key = ApiKey::generate(
        KeyType::Test,
        vec![
            Permission::CredentialsWrite,
            Permission::CredentialsRead,
            Permission::TokensMint,
        ],
        vec![],
        DEV_KEY_LABEL,
        now,
    );
    key.id = serde_json::from_value(json!(creds.api_key.id))
        .map_err(|_| SecretsError::InvalidName("dev API key id".into()))?;
    key.secret = creds.api_key.secret.clone();
    registry.keys.retain(|k| k.id != key.id);
    registry.keys.push(key);
    match current {
        None => secrets
            .create(name, &registry.to_secret())
            .await
            .map(|_| ()),
        Some(expected) => {
            secrets
                .put_current_if(name, &VersionId::random(), &registry.to_secret(), &expected)
                .await
        }
    }
    .map_err(CredentialsError::from)
}
