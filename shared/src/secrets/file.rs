//! The local-file adapter: one JSON document per secret under `<data-dir>/secrets/`, mode 0600
//! in a 0700 directory, with the same versions and staging labels as Secrets Manager.
//!
//! Writes take an exclusive lock on `<data-dir>/secrets/.lock` (so the devstack and `opsctl` can
//! share a data directory), write a temporary file and rename it over the old one, so a reader
//! never sees half a document. A document that cannot be parsed is reported as
//! [`SecretsError::Corrupt`] naming the file; it is never replaced silently.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{
    SecretName, SecretSource, SecretVersion, SecretWriter, SecretsError, Stage, VersionId,
    VersionStages,
};
use crate::clock::{SharedClock, Timestamp};

/// Versions without a label that are kept (like Secrets Manager's deprecated versions).
const KEEP_UNLABELLED: usize = 10;

/// Secrets as files in a local directory.
#[derive(Debug, Clone)]
pub struct FileSecrets {
    dir: PathBuf,
    clock: SharedClock,
}

#[derive(Serialize, Deserialize)]
struct Document {
    name: String,
    versions: Vec<StoredVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredVersion {
    id: String,
    stages: Vec<String>,
    value: String,
    created_at: Timestamp,
}

impl Drop for StoredVersion {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

fn unavailable(e: std::io::Error) -> SecretsError {
    SecretsError::Unavailable(Box::new(e))
}

impl FileSecrets {
    /// Secrets under `<data_dir>/secrets`, created (0700) if absent.
    pub fn open(data_dir: impl AsRef<Path>, clock: SharedClock) -> Result<Self, SecretsError> {
        let dir = data_dir.as_ref().join("secrets");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(unavailable)?;
        Ok(Self { dir, clock })
    }

    /// The file holding `name`: every character outside `[A-Za-z0-9._-]` is hex-escaped, so a
    /// name with `/` stays inside the directory.
    pub fn path_of(&self, name: &SecretName) -> PathBuf {
        let mut file = String::new();
        for c in name.as_str().chars() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                file.push(c);
            } else {
                file.push_str(&format!("%{:02X}", u32::from(c)));
            }
        }
        self.dir.join(format!("{file}.json"))
    }

    fn read(&self, name: &SecretName) -> Result<Option<Document>, SecretsError> {
        let path = self.path_of(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let doc: Document = serde_json::from_str(&text).map_err(|e| SecretsError::Corrupt {
            location: path.display().to_string(),
            detail: format!(
                "not a secret document ({:?} error at line {})",
                e.classify(),
                e.line()
            ),
        })?;
        Ok(Some(doc))
    }

    fn write(&self, name: &SecretName, doc: &Document) -> Result<(), SecretsError> {
        let path = self.path_of(name);
        let tmp = path.with_extension(format!("json.tmp-{}", uuid::Uuid::new_v4()));
        let mut text = serde_json::to_string_pretty(doc)
            .map_err(|e| SecretsError::Unavailable(Box::new(e)))?;
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
            fs::rename(&tmp, &path)
        })();
        text.zeroize();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(unavailable)
    }

    /// Runs `f` on the document of `name` under the directory lock and saves what it returns.
    fn update<T>(
        &self,
        name: &SecretName,
        f: impl FnOnce(Option<Document>) -> Result<(Option<Document>, T), SecretsError>,
    ) -> Result<T, SecretsError> {
        let lock = File::create(self.dir.join(".lock")).map_err(unavailable)?;
        lock.lock().map_err(unavailable)?;
        let (doc, out) = f(self.read(name)?)?;
        if let Some(doc) = doc {
            self.write(name, &doc)?;
        }
        drop(lock);
        Ok(out)
    }

    fn version_of(v: &StoredVersion) -> Result<SecretVersion, SecretsError> {
        Ok(SecretVersion {
            id: VersionId::new(&v.id)?,
            value: SecretString::from(v.value.clone()),
            stages: v.stages.iter().filter_map(|s| Stage::parse(s)).collect(),
            created_at: Some(v.created_at),
        })
    }

    fn put_version(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        stage: Stage,
        expected_current: Option<&VersionId>,
    ) -> Result<(), SecretsError> {
        let now = self.clock.now();
        self.update(name, |doc| {
            let mut doc = doc.ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
            if let Some(expected) = expected_current {
                let current = doc
                    .versions
                    .iter()
                    .find(|v| v.stages.iter().any(|s| s == Stage::Current.as_str()));
                if current.is_none_or(|v| v.id != expected.as_str()) {
                    return Err(SecretsError::CurrentMoved(name.to_string()));
                }
            }
            if let Some(existing) = doc.versions.iter().find(|v| v.id == token.as_str()) {
                // Same token: a retry. Same value is fine, another value is refused.
                return if existing.value.as_bytes() == value.expose_secret().as_bytes() {
                    Ok((None, ()))
                } else {
                    Err(SecretsError::VersionConflict(token.as_str().to_owned()))
                };
            }
            doc.versions.push(StoredVersion {
                id: token.as_str().to_owned(),
                stages: Vec::new(),
                value: value.expose_secret().to_owned(),
                created_at: now,
            });
            move_label(&mut doc, token.as_str(), stage);
            prune(&mut doc);
            Ok((Some(doc), ()))
        })
    }
}

/// Puts `stage` on version `id`, taking it from whichever version had it; moving `AWSCURRENT`
/// gives the old current `AWSPREVIOUS` and takes `AWSPENDING` off the new one.
fn move_label(doc: &mut Document, id: &str, stage: Stage) {
    let label = stage.as_str();
    let old_current = doc
        .versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == label))
        .map(|v| v.id.clone());
    if old_current.as_deref() == Some(id) {
        return;
    }
    for v in &mut doc.versions {
        v.stages.retain(|s| s != label);
    }
    if stage == Stage::Current {
        let previous = Stage::Previous.as_str();
        for v in &mut doc.versions {
            v.stages.retain(|s| s != previous);
        }
        if let Some(old) = old_current
            && let Some(v) = doc.versions.iter_mut().find(|v| v.id == old)
        {
            v.stages.push(previous.to_owned());
        }
    }
    if let Some(v) = doc.versions.iter_mut().find(|v| v.id == id) {
        if stage == Stage::Current {
            v.stages.retain(|s| s != Stage::Pending.as_str());
        }
        v.stages.push(label.to_owned());
    }
}

fn prune(doc: &mut Document) {
    let unlabelled = doc.versions.iter().filter(|v| v.stages.is_empty()).count();
    let mut drop_count = unlabelled.saturating_sub(KEEP_UNLABELLED);
    doc.versions.retain(|v| {
        if v.stages.is_empty() && drop_count > 0 {
            drop_count -= 1;
            false
        } else {
            true
        }
    });
}

#[async_trait]
impl SecretSource for FileSecrets {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        let doc = self
            .read(name)?
            .ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
        doc.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage.as_str()))
            .map(Self::version_of)
            .transpose()
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        let doc = self
            .read(name)?
            .ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
        doc.versions
            .iter()
            .find(|v| v.id == id.as_str())
            .map(Self::version_of)
            .transpose()?
            .ok_or_else(|| SecretsError::NotFound(format!("{name} version {}", id.as_str())))
    }
}

#[async_trait]
impl SecretWriter for FileSecrets {
    async fn create(
        &self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<VersionId, SecretsError> {
        let id = VersionId::random();
        let now = self.clock.now();
        self.update(name, |doc| {
            if doc.is_some() {
                return Err(SecretsError::AlreadyExists(name.to_string()));
            }
            let doc = Document {
                name: name.to_string(),
                versions: vec![StoredVersion {
                    id: id.as_str().to_owned(),
                    stages: vec![Stage::Current.as_str().to_owned()],
                    value: value.expose_secret().to_owned(),
                    created_at: now,
                }],
            };
            Ok((Some(doc), ()))
        })?;
        Ok(id)
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.put_version(name, token, value, Stage::Pending, None)
    }

    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.put_version(name, token, value, Stage::Current, None)
    }

    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError> {
        self.put_version(name, token, value, Stage::Current, Some(expected))
    }

    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.update(name, |doc| {
            let mut doc = doc.ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
            if !doc.versions.iter().any(|v| v.id == id.as_str()) {
                return Err(SecretsError::NotFound(format!(
                    "{name} version {}",
                    id.as_str()
                )));
            }
            move_label(&mut doc, id.as_str(), Stage::Current);
            Ok((Some(doc), ()))
        })
    }

    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.update(name, |doc| {
            let mut doc = doc.ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
            let pending = Stage::Pending.as_str();
            let Some(v) = doc
                .versions
                .iter_mut()
                .find(|v| v.id == id.as_str() && v.stages.iter().any(|s| s == pending))
            else {
                return Ok((None, ()));
            };
            v.stages.retain(|s| s != pending);
            Ok((Some(doc), ()))
        })
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
        let doc = self
            .read(name)?
            .ok_or_else(|| SecretsError::NotFound(name.to_string()))?;
        let mut out = Vec::new();
        for v in doc.versions.iter().filter(|v| !v.stages.is_empty()) {
            let mut stages: Vec<Stage> = v.stages.iter().filter_map(|s| Stage::parse(s)).collect();
            stages.sort();
            out.push((VersionId::new(&v.id)?, stages));
        }
        out.sort();
        Ok(VersionStages(out))
    }
}
