//! The Secrets Manager adapter.
//!
//! Every read names its stage or version explicitly: `GetSecretValue` without a `VersionStage`
//! is documented to mean `AWSCURRENT`, but not every implementation honours that after a label
//! move, and being explicit costs nothing.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use secrecy::{ExposeSecret, SecretString};

use super::{
    SecretName, SecretSource, SecretVersion, SecretWriter, SecretsError, Stage, VersionId,
    VersionStages,
};

/// The private label a conditional write stages its version under before the swap.
const STAGED_LABEL: &str = "BUNDLE-STAGED";

/// Secrets in AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> SecretsError {
    SecretsError::Unavailable(Box::new(e))
}

impl SecretsManagerStore {
    /// A store using `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn version(
        name: &SecretName,
        out: GetSecretValueOutput,
    ) -> Result<SecretVersion, SecretsError> {
        let corrupt = |detail: &str| SecretsError::Corrupt {
            location: name.to_string(),
            detail: detail.to_owned(),
        };
        let id = VersionId::new(out.version_id().ok_or_else(|| corrupt("no version id"))?)?;
        let value = out
            .secret_string()
            .ok_or_else(|| corrupt("not a string secret"))?;
        Ok(SecretVersion {
            id,
            value: SecretString::from(value.to_owned()),
            stages: out
                .version_stages()
                .iter()
                .filter_map(|s| Stage::parse(s))
                .collect(),
            created_at: out
                .created_date()
                .and_then(|d| d.to_millis().ok())
                .map(crate::clock::Timestamp::from_millis),
        })
    }

    async fn put(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        stage: Stage,
    ) -> Result<(), SecretsError> {
        // A token names one immutable value. Check it first rather than rely on the service
        // refusing a reused token: not every implementation does.
        match self.get_version(name, token).await {
            Ok(existing) => {
                if existing.value.expose_secret() != value.expose_secret() {
                    return Err(SecretsError::VersionConflict(token.as_str().to_owned()));
                }
            }
            Err(SecretsError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let result = self
            .client
            .put_secret_value()
            .secret_id(name.as_str())
            .client_request_token(token.as_str())
            .secret_string(value.expose_secret())
            .version_stages(stage.as_str())
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) => {
                let se = e.as_service_error();
                if se.is_some_and(|s| s.is_resource_not_found_exception()) {
                    return Err(SecretsError::NotFound(name.to_string()));
                }
                if se.is_some_and(|s| s.is_resource_exists_exception()) {
                    // Same token again: a retry if the value matches, else a conflict.
                    let existing = self.get_version(name, token).await?;
                    if existing.value.expose_secret() != value.expose_secret() {
                        return Err(SecretsError::VersionConflict(token.as_str().to_owned()));
                    }
                } else {
                    return Err(unavailable(e));
                }
            }
        }
        if stage == Stage::Current {
            // PutSecretValue moved AWSCURRENT; the token may also hold AWSPENDING from before.
            self.drop_label(name, token, Stage::Pending).await?;
        }
        Ok(())
    }

    async fn drop_label(
        &self,
        name: &SecretName,
        id: &VersionId,
        stage: Stage,
    ) -> Result<(), SecretsError> {
        let stages = self.stages(name).await?;
        if stages.with(stage) == Some(id) {
            self.client
                .update_secret_version_stage()
                .secret_id(name.as_str())
                .version_stage(stage.as_str())
                .remove_from_version_id(id.as_str())
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SecretSource for SecretsManagerStore {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_stage(stage.as_str())
            .send()
            .await;
        match result {
            Ok(out) => Self::version(name, out).map(Some),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                // Either the secret or the stage is missing; tell them apart.
                self.stages(name).await?;
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_id(id.as_str())
            .send()
            .await;
        match result {
            Ok(out) => Self::version(name, out),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(SecretsError::NotFound(format!(
                    "{name} version {}",
                    id.as_str()
                )))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl SecretWriter for SecretsManagerStore {
    async fn create(
        &self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<VersionId, SecretsError> {
        let id = VersionId::random();
        match self
            .client
            .create_secret()
            .name(name.as_str())
            .client_request_token(id.as_str())
            .secret_string(value.expose_secret())
            .send()
            .await
        {
            Ok(_) => Ok(id),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                Err(SecretsError::AlreadyExists(name.to_string()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.put(name, token, value, Stage::Pending).await
    }

    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.put(name, token, value, Stage::Current).await
    }

    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError> {
        // Stage the value under a private label (not AWSPENDING, which a native rotation may be
        // using), then move AWSCURRENT only if it is still on `expected`: UpdateSecretVersionStage
        // refuses a RemoveFromVersionId that does not carry the label, which makes it a
        // compare-and-swap.
        match self.get_version(name, token).await {
            Ok(existing) if existing.value.expose_secret() != value.expose_secret() => {
                return Err(SecretsError::VersionConflict(token.as_str().to_owned()));
            }
            Ok(_) => {}
            Err(SecretsError::NotFound(_)) => {
                self.client
                    .put_secret_value()
                    .secret_id(name.as_str())
                    .client_request_token(token.as_str())
                    .secret_string(value.expose_secret())
                    .version_stages(STAGED_LABEL)
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Err(e) => return Err(e),
        }
        let moved = self
            .client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(Stage::Current.as_str())
            .move_to_version_id(token.as_str())
            .remove_from_version_id(expected.as_str())
            .send()
            .await;
        let _ = self
            .client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(STAGED_LABEL)
            .remove_from_version_id(token.as_str())
            .send()
            .await;
        match moved {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_invalid_parameter_exception() || s.is_invalid_request_exception()
                }) =>
            {
                Err(SecretsError::CurrentMoved(name.to_string()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        let stages = self.stages(name).await?;
        if !stages.0.iter().any(|(v, _)| v == id) {
            // A version without labels is not listed; make sure it exists at all.
            self.get_version(name, id).await?;
        }
        if stages.with(Stage::Current) != Some(id) {
            let mut call = self
                .client
                .update_secret_version_stage()
                .secret_id(name.as_str())
                .version_stage(Stage::Current.as_str())
                .move_to_version_id(id.as_str());
            if let Some(current) = stages.with(Stage::Current) {
                call = call.remove_from_version_id(current.as_str());
            }
            call.send().await.map_err(unavailable)?;
        }
        self.drop_label(name, id, Stage::Pending).await
    }

    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.drop_label(name, id, Stage::Pending).await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
        let out = match self
            .client
            .describe_secret()
            .secret_id(name.as_str())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(SecretsError::NotFound(name.to_string()));
            }
            Err(e) => return Err(unavailable(e)),
        };
        let mut versions = Vec::new();
        for (id, labels) in out.version_ids_to_stages().into_iter().flatten() {
            let mut stages: Vec<Stage> = labels.iter().filter_map(|s| Stage::parse(s)).collect();
            if stages.is_empty() {
                continue;
            }
            stages.sort();
            versions.push((VersionId::new(id)?, stages));
        }
        versions.sort();
        Ok(VersionStages(versions))
    }
}
