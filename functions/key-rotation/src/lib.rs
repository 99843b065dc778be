//! Key rotation: one function for two triggers.
//!
//! - An EventBridge schedule (daily): runs the rotation policy — bootstrap an empty key set,
//!   schedule a successor when the newest key is older than the period, prune keys no longer
//!   published — and writes the result as one new `AWSCURRENT` secret version.
//! - The Secrets Manager rotation contract (`createSecret`, `setSecret`, `testSecret`,
//!   `finishSecret` with a `ClientRequestToken`), each step idempotent: `createSecret` stages the
//!   rotated key set as `AWSPENDING` under the token, `testSecret` signs and verifies with the
//!   pending document's newest key, `finishSecret` makes it `AWSCURRENT`. `setSecret` has nothing
//!   to do: the JWKS reads the key set itself.
//!
//! Concurrent runs are safe: every scheduled write is a compare-and-swap on the secret, and
//! `finishSecret` never promotes a pending document derived from an older key set, nor a key that
//! would sign before it was published for the minimum lead (see [`finish`]).
//!
//! The daily run also reports the age of the credentials other parties hold: the metric
//! `ApiKeyDaysToExpiry` is the days left to the active API key that expires first (negative once
//! it has expired), which the template's `ApiKeyExpiryAlarm` watches, and `WebhookSecretAgeDays`
//! the age of the webhook secrets' current version (the last time a secret was added or removed),
//! which `WebhookSecretAgeAlarm` watches; `SigningKeyAgeDays` is the age of the key that signs
//! now, which the dashboard shows beside the rotation period. They are reports: a secret that cannot be read is logged
//! and leaves the rotation's own outcome alone.
#![forbid(unsafe_code)]

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{ApiKeyRegistry, KeyStatus};
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::keys::policy::{Change, plan, rotate};
use shared::keys::{
    KeyConfig, KeySet, KeySetSource, KeySetStore, KeySourceError, KeyState, PreparedKeys,
};
use shared::secrets::{SecretName, SecretWriter, SecretsError, VersionId};
use shared::telemetry::{Recorder, Unit};

/// The rotation function's configuration: the key settings.
#[derive(Debug, Clone)]
pub struct RotationConfig {
    /// `KEY_SET_SECRET_NAME`, `ROTATION_PERIOD_SECONDS`, `ROTATION_LEAD_SECONDS`, … .
    pub keys: KeyConfig,
    /// `API_KEYS_SECRET_NAME`: the API-key registry whose expiries the daily run reports; unset,
    /// nothing is reported.
    pub api_keys_secret: Option<SecretName>,
    /// `WEBHOOK_SECRETS_SECRET_NAME`: the webhook secrets whose age the daily run reports; unset,
    /// nothing is reported.
    pub webhook_secrets_secret: Option<SecretName>,
}

impl RotationConfig {
    /// Reads the configuration.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let name = |var: &str| {
            r.optional(var)
                .map(|n| SecretName::new(&n).map_err(|e| ConfigError::new(var, e.to_string())))
                .transpose()
        };
        Ok(Self {
            keys: KeyConfig::from_env(r)?,
            api_keys_secret: name("API_KEYS_SECRET_NAME")?,
            webhook_secrets_secret: name("WEBHOOK_SECRETS_SECRET_NAME")?,
        })
    }
}

/// The metric of the days left to the first expiry among the active API keys.
pub const API_KEY_EXPIRY_METRIC: &str = "ApiKeyDaysToExpiry";

/// The metric of the age, in days, of the webhook secrets' current version.
pub const WEBHOOK_SECRET_AGE_METRIC: &str = "WebhookSecretAgeDays";

/// The metric of the age, in days, of the signing key that signs now (since it was created).
pub const SIGNING_KEY_AGE_METRIC: &str = "SigningKeyAgeDays";

/// What the handler needs, built once per container.
pub struct RotationDeps {
    /// Configuration.
    pub config: RotationConfig,
    /// The key set secret.
    pub store: KeySetStore<Arc<dyn SecretWriter>>,
    /// A key set cache in this process to forget after a write (the devstack shares one).
    pub local_cache: Option<Arc<dyn KeySetSource>>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// The ports the key rotation function runs on.
pub struct RotationPorts {
    /// The key set secret (read and written), the API-key registry and the webhook secrets (read).
    pub secrets: Arc<dyn SecretWriter>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

impl RotationDeps {
    /// The function's dependencies, built once per container: the one wiring the Lambda `main`,
    /// the devstack and the tests share. No in-process key set cache to forget (`local_cache`):
    /// in Lambda every function has its own.
    pub fn build(config: RotationConfig, ports: RotationPorts) -> Self {
        let RotationPorts {
            secrets,
            clock,
            recorder,
        } = ports;
        Self {
            store: KeySetStore::new(secrets, config.keys.secret_name.clone()),
            config,
            local_cache: None,
            clock,
            recorder,
        }
    }
}

/// What the function is invoked with: one step of a Secrets Manager rotation, or the daily
/// EventBridge schedule (which always carries `detail-type`, `source` and `detail`). Anything else
/// is refused with [`RotationError::UnknownEvent`].
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RotationEvent {
    /// `{"Step", "SecretId", "ClientRequestToken"}`.
    Step(SecretsManagerSecretRotationEvent),
    /// The schedule.
    Scheduled(EventBridgeEvent<Value>),
}

/// The four steps of a Secrets Manager rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    fn parse(name: &str) -> Result<Self, RotationError> {
        match name {
            "createSecret" => Ok(Self::Create),
            "setSecret" => Ok(Self::Set),
            "testSecret" => Ok(Self::Test),
            "finishSecret" => Ok(Self::Finish),
            other => Err(RotationError::UnknownEvent(format!(
                "unknown step {other:?}"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Create => "createSecret",
            Self::Set => "setSecret",
            Self::Test => "testSecret",
            Self::Finish => "finishSecret",
        }
    }
}

/// Why a rotation failed. The function then fails, so the schedule's failure destination, the
/// Errors alarm and Secrets Manager's own retry see it.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The key set could not be read or written.
    #[error(transparent)]
    KeySet(#[from] KeySourceError),
    /// A secret call failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The event is for a secret this function does not manage.
    #[error("rotation event for a secret this function does not manage")]
    ForeignSecret,
    /// The event is neither a schedule nor a rotation step.
    #[error("unrecognised event: {0}")]
    UnknownEvent(String),
    /// The pending key set failed its self-test.
    #[error("the pending key set failed its self-test: {0}")]
    SelfTest(String),
}

impl From<RotationError> for lambda_runtime::Diagnostic {
    fn from(e: RotationError) -> Self {
        let error_type = match &e {
            RotationError::KeySet(_) => "KeySetError",
            RotationError::Secrets(_) => "SecretsError",
            RotationError::ForeignSecret => "ForeignSecret",
            RotationError::UnknownEvent(_) => "UnknownEvent",
            RotationError::SelfTest(_) => "SelfTestFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Handles one event and answers a summary of what it did.
pub async fn handle(event: Value, deps: &RotationDeps) -> Result<Value, RotationError> {
    let result = match serde_json::from_value::<RotationEvent>(event) {
        Ok(RotationEvent::Step(step)) => native_step(&step, deps).await,
        Ok(RotationEvent::Scheduled(_)) => scheduled(deps).await,
        Err(_) => Err(RotationError::UnknownEvent(
            "expected a scheduled event or a Secrets Manager rotation step".into(),
        )),
    };
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    deps.recorder
        .emit("RotationRuns", Unit::Count, 1.0, &[("outcome", outcome)]);
    if let Err(e) = &result {
        tracing::error!(error = %e, "key rotation failed");
    }
    result
}

fn describe(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| match c {
            Change::Bootstrapped(kid) => json!({"bootstrapped": kid}),
            Change::Scheduled { kid, activate_at } => {
                json!({"scheduled": kid, "activateAt": activate_at.to_rfc3339()})
            }
            Change::Pruned(kids) => json!({"pruned": kids}),
            Change::Revoked { kid, replacement } => {
                json!({"revoked": kid, "replacement": replacement})
            }
        })
        .collect()
}

/// The scheduled run: the rotation, then its three reports. The signing key's age comes from the
/// key set the rotation read or wrote; the other two read two more secrets and depend on nothing
/// but the rotation having ended, so they are made together: one Secrets Manager round trip of
/// waiting instead of three.
async fn scheduled(deps: &RotationDeps) -> Result<Value, RotationError> {
    let (outcome, current) = match rotate_on_schedule(deps).await {
        Ok((answer, set)) => (Ok(answer), Some(set)),
        Err(e) => (Err(e), None),
    };
    tokio::join!(
        report_signing_key_age(deps, current),
        report_api_key_expiry(deps),
        report_webhook_secret_age(deps),
    );
    outcome
}

/// Emits [`SIGNING_KEY_AGE_METRIC`]: the age of the key that signs now in `current`, the key set
/// as the run left it (what it read, or what it wrote in its place), or read again when the
/// rotation failed — so that a rotation that keeps failing shows as a key growing older than
/// the rotation period. No key signing is logged as an error (the token mints refuse to mint).
async fn report_signing_key_age(deps: &RotationDeps, current: Option<KeySet>) {
    let set = match current {
        Some(set) => set,
        None => match deps.store.load().await {
            Ok(loaded) => loaded.set,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the key set; signing key age not reported");
                return;
            }
        },
    };
    let now = deps.clock.now();
    let Some(signer) = set.signer(now, &deps.config.keys.timings) else {
        tracing::error!(version = set.version, "no key of the key set signs now");
        return;
    };
    let age = now.since(signer.created_at);
    #[allow(clippy::cast_precision_loss)]
    let days = age.as_millis() as f64 / 86_400_000.0;
    tracing::info!(kid = %signer.kid, created_at = %signer.created_at.to_rfc3339(), age_days = days, "signing key age");
    deps.recorder
        .emit(SIGNING_KEY_AGE_METRIC, Unit::None, days, &[]);
}

/// Emits [`WEBHOOK_SECRET_AGE_METRIC`], if the secret is configured and exists.
async fn report_webhook_secret_age(deps: &RotationDeps) {
    let Some(name) = &deps.config.webhook_secrets_secret else {
        return;
    };
    let written = match deps.store.secrets().current(name).await {
        Ok(v) => v.created_at,
        Err(SecretsError::NotFound(_)) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the webhook secrets; their age is not reported");
            return;
        }
    };
    let Some(written) = written else {
        tracing::warn!("the secrets store gives no creation time; webhook secret age not reported");
        return;
    };
    let age = deps.clock.now().since(written);
    #[allow(clippy::cast_precision_loss)]
    let days = age.as_millis() as f64 / 86_400_000.0;
    tracing::info!(written_at = %written.to_rfc3339(), age_days = days, "webhook secrets age");
    deps.recorder
        .emit(WEBHOOK_SECRET_AGE_METRIC, Unit::None, days, &[]);
}

/// Emits [`API_KEY_EXPIRY_METRIC`] for the registry, if one is configured and has an active key.
async fn report_api_key_expiry(deps: &RotationDeps) {
    let Some(name) = &deps.config.api_keys_secret else {
        return;
    };
    let registry = match deps.store.secrets().current(name).await {
        Ok(v) => match ApiKeyRegistry::parse(v.value.expose_secret()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the API key registry is malformed; key expiry not reported");
                return;
            }
        },
        Err(SecretsError::NotFound(_)) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the API key registry; key expiry not reported");
            return;
        }
    };
    let now = deps.clock.now();
    let first = registry
        .keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .min_by_key(|k| k.expiry());
    let Some(key) = first else {
        return;
    };
    let left_ms = key.expiry().as_millis() - now.as_millis();
    #[allow(clippy::cast_precision_loss)]
    let days = left_ms as f64 / 86_400_000.0;
    tracing::info!(key_id = key.id.as_str(), expires_at = %key.expiry().to_rfc3339(), days_left = days, "first API key expiry");
    deps.recorder
        .emit(API_KEY_EXPIRY_METRIC, Unit::None, days, &[]);
}

/// How many times a scheduled run plans again after another writer changed the key set between
/// its read and its write.
const SCHEDULED_ATTEMPTS: u32 = 3;

/// One scheduled run. Losing the compare-and-swap to a concurrent writer (a duplicate delivery
/// of the schedule, another invocation of this function on the same execution environment,
/// `opsctl`) is not an error: the run reads the key set again and plans from what the winner
/// wrote, which usually leaves nothing to do. Only a writer that keeps winning, attempt after
/// attempt, makes the run fail (and the schedule retry it).
async fn rotate_on_schedule(deps: &RotationDeps) -> Result<(Value, KeySet), RotationError> {
    let mut attempt = 1;
    loop {
        match rotate_once(deps).await {
            Err(RotationError::KeySet(KeySourceError::Conflict))
                if attempt < SCHEDULED_ATTEMPTS =>
            {
                tracing::info!(
                    attempt,
                    "the key set changed during the scheduled run; planning again"
                );
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One attempt: the answer, and the key set as it now stands in the secret.
async fn rotate_once(deps: &RotationDeps) -> Result<(Value, KeySet), RotationError> {
    let now = deps.clock.now();
    let loaded = deps.store.load().await?;
    let Some((next, changes)) = plan(&loaded.set, now, &deps.config.keys.policy) else {
        tracing::info!(version = loaded.set.version, "key set up to date");
        let answer = json!({"action": "none", "version": loaded.set.version});
        return Ok((answer, loaded.set));
    };
    deps.store.save(&loaded, &next).await?;
    if let Some(cache) = &deps.local_cache {
        cache.invalidate();
    }
    let described = describe(&changes);
    tracing::info!(version = next.version, changes = %serde_json::Value::from(described.clone()), "key set rotated");
    deps.recorder
        .emit("KeySetChanges", Unit::Count, changes.len() as f64, &[]);
    let answer = json!({"action": "rotated", "version": next.version, "changes": described});
    Ok((answer, next))
}

/// `finishSecret`, idempotent under retries and under concurrent changes of the key set:
/// - the token already current: nothing to do;
/// - the key set changed since `createSecret` (a scheduled run, `opsctl keys rotate`): promoting
///   the pending document would undo that change, so the rotation is superseded — its pending
///   label is dropped, so that Secrets Manager can start the next one, which derives from the
///   new key set;
/// - the pending key would sign before verifiers could have fetched it (this step ran late,
///   after retries): the same keys are written as the current version with the new key's
///   `activateAt` moved to now plus the minimum lead, and the pending label dropped;
/// - otherwise the pending version is promoted.
///
/// So no retry fails forever, and no token is ever signed by a key published for less than the
/// minimum lead.
async fn finish(
    name: &shared::secrets::SecretName,
    token: &VersionId,
    deps: &RotationDeps,
) -> Result<Value, RotationError> {
    let secrets = deps.store.secrets();
    let loaded = deps.store.load().await?;
    if loaded.version.as_ref() == Some(token) {
        return Ok(json!({"step": "finishSecret", "action": "already current"}));
    }
    let pending = secrets.get_version(name, token).await?;
    let pending = KeySet::parse(pending.value.expose_secret()).map_err(KeySourceError::from)?;
    if pending.version != loaded.set.version + 1 {
        secrets.discard_pending(name, token).await?;
        tracing::warn!(
            pending = pending.version,
            current = loaded.set.version,
            "the key set changed during this rotation; it is superseded and not promoted"
        );
        deps.recorder
            .emit("RotationsSuperseded", Unit::Count, 1.0, &[]);
        return Ok(json!({"step": "finishSecret", "action": "superseded",
            "pending": pending.version, "current": loaded.set.version}));
    }
    let now = deps.clock.now();
    let timings = &deps.config.keys.timings;
    let earliest = now.plus(timings.min_lead());
    let signing_now = loaded
        .set
        .keys
        .iter()
        .any(|k| loaded.set.state(k, now, timings) == KeyState::Active);
    let mut retimed = pending.clone();
    let mut late = Vec::new();
    for k in &mut retimed.keys {
        if signing_now && loaded.set.get(&k.kid).is_none() && k.activate_at < earliest {
            k.activate_at = earliest;
            late.push(k.kid.to_string());
        }
    }
    if late.is_empty() {
        secrets.promote(name, token).await?;
    } else {
        deps.store.save(&loaded, &retimed).await?;
        secrets.discard_pending(name, token).await?;
        tracing::warn!(kids = ?late, activate_at = %earliest.to_rfc3339(),
            "this rotation finished late: its new key signs from the minimum lead on");
    }
    if let Some(cache) = &deps.local_cache {
        cache.invalidate();
    }
    deps.recorder.emit("KeySetChanges", Unit::Count, 1.0, &[]);
    Ok(json!({"step": "finishSecret", "current": token.as_str(), "retimed": late}))
}

async fn native_step(
    event: &SecretsManagerSecretRotationEvent,
    deps: &RotationDeps,
) -> Result<Value, RotationError> {
    let name = deps.store.name().clone();
    if !name.is_designated_by(&event.secret_id) {
        return Err(RotationError::ForeignSecret);
    }
    let step = Step::parse(&event.step)?;
    let token = VersionId::new(&event.client_request_token)?;
    let secrets = deps.store.secrets();
    tracing::info!(step = step.name(), "secrets manager rotation step");
    match step {
        Step::Create => {
            if secrets.get_version(&name, &token).await.is_ok() {
                return Ok(json!({"step": "createSecret", "action": "already staged"}));
            }
            let loaded = deps.store.load().await?;
            let now = deps.clock.now();
            let (next, change) = rotate(&loaded.set, now, &deps.config.keys.policy, false);
            let text = secrecy::SecretString::from(next.to_json());
            secrets.put_pending(&name, &token, &text).await?;
            Ok(
                json!({"step": "createSecret", "version": next.version, "changes": describe(&[change])}),
            )
        }
        Step::Set => {
            Ok(json!({"step": "setSecret", "action": "nothing to set: the JWKS reads the key set"}))
        }
        Step::Test => {
            let pending = secrets.get_version(&name, &token).await?;
            let set = KeySet::parse(pending.value.expose_secret()).map_err(KeySourceError::from)?;
            let now = deps.clock.now();
            let prepared = PreparedKeys::new(set, deps.config.keys.timings, now)
                .map_err(|e| RotationError::SelfTest(e.to_string()))?;
            let newest = prepared
                .set()
                .keys
                .iter()
                .filter(|k| k.revoked_at.is_none())
                .max_by_key(|k| k.created_at)
                .map(|k| k.kid.clone())
                .ok_or_else(|| RotationError::SelfTest("the pending key set has no key".into()))?;
            prepared
                .self_test(&newest)
                .map_err(|e| RotationError::SelfTest(e.to_string()))?;
            Ok(json!({"step": "testSecret", "tested": newest}))
        }
        Step::Finish => finish(&name, &token, deps).await,
    }
}
