//! State checks of the secrets store: the age of the signing keys, of the API keys and of the
//! webhook secrets, read with operator access (`secretsmanager:GetSecretValue` only: nothing here
//! writes).
//!
//! Every setting is read from the same environment variables, with the same defaults, as the
//! functions that use the secrets: [`KeyConfig::from_env`] for the key set and its rotation policy,
//! [`api_keys::secret_name`] for the API key registry, and `WEBHOOK_SECRETS_SECRET_NAME` (default
//! [`DEFAULT_WEBHOOK_SECRETS_SECRET`], the callback receiver's) for the webhook secrets.
//!
//! - `signing-key-age`: a key signs now, and it is not overdue for rotation under the policy of
//!   `shared::keys::policy::plan` — a successor is scheduled once the newest key is
//!   `ROTATION_PERIOD_SECONDS` old (and none is pending), by the daily run, and signs
//!   `ROTATION_LEAD_SECONDS` after that. So the key signing now must stop signing by
//!   `createdAt + period + one run interval + lead` ([`signing_deadline`]).
//! - `api-key-age`: no active key is past its expiry — its `expiresAt`, or
//!   [`DEFAULT_KEY_LIFETIME`] (90 days) after its creation for a key stored without one — the
//!   instant from which the authorizer refuses it. A registry that does not exist holds no keys
//!   (as the functions read it), so nothing is overdue: a pass, with evidence saying so.
//! - `webhook-secret-age`: the current version of the webhook secrets was written at most
//!   `WEBHOOK_SECRET_MAX_AGE_DAYS` (default [`DEFAULT_WEBHOOK_SECRET_MAX_AGE_DAYS`], the
//!   template's `WebhookSecretAgeAlarm` threshold) days ago. A secret that lists no secret nor
//!   public key (the template creates it so: `{"secrets":[]}`) is a failure like a missing one.
//!
//! Evidence names secrets, kids, `pk_…` ids, types, times and counts; never a secret value, a
//! private key member nor an API key's secret.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::IgnoredAny;
use shared::auth::{
    ApiKeyRegistry, DEFAULT_KEY_LIFETIME, KeyStatus, RegistryError, RegistryFormat,
};
use shared::clock::Timestamp;
use shared::config::{ConfigError, EnvReader};
use shared::keys::policy::RotationPolicy;
use shared::keys::{KeyConfig, KeyEntry, KeySet, KeyState, PreparedKeys};
use shared::secrets::{SecretName, SecretSource, SecretsError, read_versioned};

use super::checklist;
use super::report::{Finding, Outcome};
use crate::api_keys::{self, ApiKeyRow, type_name};
use crate::keys::{rows, state_name};

/// The item ids this module answers, in checklist order.
pub const ITEM_IDS: [&str; 3] = ["signing-key-age", "api-key-age", "webhook-secret-age"];

/// The variable naming the webhook secrets secret, as the callback receiver and the rotation
/// function read it.
pub const WEBHOOK_SECRETS_SECRET_VAR: &str = "WEBHOOK_SECRETS_SECRET_NAME";

/// The webhook secrets secret's name when [`WEBHOOK_SECRETS_SECRET_VAR`] is not set: a copy of
/// `callback_receiver::DEFAULT_WEBHOOK_SECRETS_SECRET` (`functions/callback-receiver/src/keys.rs`),
/// which opsctl cannot depend on; a unit test below fails if the two differ.
pub const DEFAULT_WEBHOOK_SECRETS_SECRET: &str = "partner-bundle/webhook-secrets";

/// The variable overriding the webhook secrets' rotation period, in days.
pub const WEBHOOK_SECRET_MAX_AGE_VAR: &str = "WEBHOOK_SECRET_MAX_AGE_DAYS";

/// The webhook secrets' rotation period when [`WEBHOOK_SECRET_MAX_AGE_VAR`] is not set: 90 days,
/// the `Threshold` of `WebhookSecretAgeAlarm` in template.yaml (`WebhookSecretAgeDays`
/// `GreaterThanThreshold` 90, the platform checklists' rotation period); a unit test below fails
/// if the two differ.
pub const DEFAULT_WEBHOOK_SECRET_MAX_AGE_DAYS: u64 = 90;

/// The longest webhook rotation period accepted (as the signing keys' `ROTATION_PERIOD_SECONDS`).
const MAX_WEBHOOK_SECRET_MAX_AGE_DAYS: u64 = 366;

/// How often the rotation function's scheduled run applies the policy: the `Daily` event of
/// `KeyRotationFunction` in template.yaml (`rate(1 day)`). A successor is scheduled by the first
/// run after the rotation is due, so up to this much later.
pub const ROTATION_RUN_INTERVAL: Duration = Duration::from_secs(DAY_SECS);

const DAY_SECS: u64 = 86_400;
const DAY_MILLIS: i64 = 86_400_000;

/// The findings of the state items, one per item with [`super::report::Method::State`], in
/// checklist order.
///
/// `secrets` only needs to be read; a caller holding an `Arc<dyn SecretWriter>` (as
/// [`crate::backend::secrets`] returns) passes `&secrets`.
pub async fn check(
    secrets: &dyn SecretSource,
    env: &EnvReader<'_>,
    now: Timestamp,
) -> Vec<Finding> {
    vec![
        signing_key_age(secrets, env, now).await,
        api_key_age(secrets, env, now).await,
        webhook_secret_age(secrets, env, now).await,
    ]
}

fn whole_days(d: Duration) -> u64 {
    d.as_secs() / DAY_SECS
}

fn failed(id: &str, why: String, evidence: Vec<String>) -> Finding {
    Finding::new(checklist::by_id(id), Outcome::fail(why), evidence)
}

fn config_failure(id: &str, e: &ConfigError) -> Finding {
    failed(id, e.to_string(), Vec::new())
}

// --- signing-key-age -------------------------------------------------------------------------

/// The latest instant the key `signer` may still sign under `policy`: the policy schedules a
/// successor once the newest key is `period` old, the daily run does so within
/// [`ROTATION_RUN_INTERVAL`], and the successor signs `lead` after being written.
pub fn signing_deadline(signer: &KeyEntry, policy: &RotationPolicy) -> Timestamp {
    signer
        .created_at
        .plus(policy.period)
        .plus(ROTATION_RUN_INTERVAL)
        .plus(policy.lead)
}

/// When the policy next schedules a successor in `set` (`shared::keys::policy::plan`): once the
/// newest key not revoked is `period` old, but not while a key is pending. `None` when no key
/// can sign now or later: the next run bootstraps one at once.
pub fn next_rotation_due(
    set: &KeySet,
    now: Timestamp,
    policy: &RotationPolicy,
) -> Option<Timestamp> {
    let t = &policy.timings;
    let usable = set
        .keys
        .iter()
        .any(|k| matches!(set.state(k, now, t), KeyState::Active | KeyState::Pending));
    if !usable {
        return None;
    }
    let newest = set
        .keys
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .map(|k| k.created_at)
        .max()?;
    let last_pending = set
        .keys
        .iter()
        .filter(|k| set.state(k, now, t) == KeyState::Pending)
        .map(|k| k.activate_at)
        .max();
    let due = newest.plus(policy.period);
    Some(last_pending.map_or(due, |p| p.max(due)))
}

async fn signing_key_age(
    secrets: &dyn SecretSource,
    env: &EnvReader<'_>,
    now: Timestamp,
) -> Finding {
    let id = ITEM_IDS[0];
    let config = match KeyConfig::from_env(env) {
        Ok(c) => c,
        Err(e) => return config_failure(id, &e),
    };
    let name = &config.secret_name;
    let current = match secrets.current(name).await {
        Ok(v) => v,
        Err(SecretsError::NotFound(_)) => {
            return failed(
                id,
                format!("no signing key set in {name}"),
                vec![format!("{name}: not found")],
            );
        }
        Err(e) => {
            return failed(
                id,
                format!("cannot read the signing key set {name}: {e}"),
                Vec::new(),
            );
        }
    };
    // The signing functions' own reading: the document parsed, and every key that may still
    // sign decoded (`KeySetFormat`).
    let prepared = KeySet::parse(current.value.expose_secret())
        .map_err(|e| e.to_string())
        .and_then(|set| PreparedKeys::new(set, config.timings, now).map_err(|e| e.to_string()));
    match prepared {
        Ok(prepared) => {
            let (outcome, evidence) = judge_key_set(prepared.set(), name, &config.policy, now);
            Finding::new(checklist::by_id(id), outcome, evidence)
        }
        Err(e) => failed(
            id,
            format!("the signing key set in {name} cannot be used: {e}"),
            vec![format!("{name}: version {}", current.id.as_str())],
        ),
    }
}

/// The outcome and evidence of `signing-key-age` for the key set `set` at `now`.
pub fn judge_key_set(
    set: &KeySet,
    name: &SecretName,
    policy: &RotationPolicy,
    now: Timestamp,
) -> (Outcome, Vec<String>) {
    let t = &policy.timings;
    let mut evidence = vec![format!(
        "{name}: key set version {}, {} key(s); rotation period {} days, lead {} s, run every {} day(s)",
        set.version,
        set.keys.len(),
        whole_days(policy.period),
        policy.lead.as_secs(),
        whole_days(ROTATION_RUN_INTERVAL),
    )];
    for r in rows(set, now, t) {
        evidence.push(format!(
            "{}: {}, {} days old (createdAt {}, activateAt {})",
            r.kid,
            state_name(r.state),
            whole_days(now.since(r.created_at)),
            r.created_at,
            r.activate_at,
        ));
    }
    match next_rotation_due(set, now, policy) {
        Some(due) => evidence.push(format!("next rotation due at {}", due.to_rfc3339())),
        None => evidence.push("next rotation due at once: no key can sign".to_owned()),
    }

    let mut problems = Vec::new();
    for k in &set.keys {
        if set.state(k, now, t) == KeyState::Active
            && let Some(revoked) = k.revoked_at
        {
            // States follow from times, so this is a revocation dated in the future.
            problems.push(format!(
                "key {} is revoked from {revoked} but still signs now",
                k.kid
            ));
        }
    }
    match set.signer(now, t) {
        None => problems.push(format!("no key in {name} signs now")),
        Some(signer) => {
            let deadline = signing_deadline(signer, policy);
            let successor = set
                .keys
                .iter()
                .filter(|k| set.state(k, now, t) == KeyState::Pending)
                .max_by_key(|k| k.activate_at);
            match successor {
                Some(p) => evidence.push(format!(
                    "signing now: {}; successor {} signs from {}; the policy allows the current key to sign until {deadline}",
                    signer.kid, p.kid, p.activate_at
                )),
                None => evidence.push(format!(
                    "signing now: {}; the policy allows it to sign until {deadline}",
                    signer.kid
                )),
            }
            if now > deadline {
                problems.push(format!(
                    "the signing key {} is {} days old and overdue for rotation: under a {}-day \
                     rotation period its successor should sign from {deadline} at the latest",
                    signer.kid,
                    whole_days(now.since(signer.created_at)),
                    whole_days(policy.period),
                ));
            }
        }
    }
    (outcome_of(problems), evidence)
}

fn outcome_of(problems: Vec<String>) -> Outcome {
    if problems.is_empty() {
        Outcome::Pass
    } else {
        Outcome::fail(problems.join("; "))
    }
}

// --- api-key-age -----------------------------------------------------------------------------

async fn api_key_age(secrets: &dyn SecretSource, env: &EnvReader<'_>, now: Timestamp) -> Finding {
    let id = ITEM_IDS[1];
    let name = match api_keys::secret_name(env) {
        Ok(n) => n,
        Err(e) => return config_failure(id, &e),
    };
    match read_versioned(secrets, &name, &RegistryFormat).await {
        Ok(read) if read.version.is_none() => Finding::new(
            checklist::by_id(id),
            Outcome::Pass,
            vec![format!(
                "no API keys registered: {name} does not exist (the functions read it as empty)"
            )],
        ),
        Ok(read) => {
            let (outcome, evidence) = judge_registry(&read.document, &name, now);
            Finding::new(checklist::by_id(id), outcome, evidence)
        }
        Err(RegistryError::Malformed(detail)) => failed(
            id,
            format!("the API key registry in {name} is malformed: {detail}"),
            Vec::new(),
        ),
        Err(RegistryError::Secrets(e)) => failed(
            id,
            format!("cannot read the API key registry {name}: {e}"),
            Vec::new(),
        ),
    }
}

/// The outcome and evidence of `api-key-age` for `registry` at `now`.
pub fn judge_registry(
    registry: &ApiKeyRegistry,
    name: &SecretName,
    now: Timestamp,
) -> (Outcome, Vec<String>) {
    let active: Vec<_> = registry
        .keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .collect();
    let mut evidence = vec![format!(
        "{name}: {} key(s), {} active, {} revoked",
        registry.keys.len(),
        active.len(),
        registry.keys.len() - active.len(),
    )];
    if active.is_empty() {
        evidence.push("no active API keys".to_owned());
    }
    let mut problems = Vec::new();
    for k in active {
        let row = ApiKeyRow::of(k, now);
        let to_expiry = (row.expires_at.as_millis() - now.as_millis()).div_euclid(DAY_MILLIS);
        let stored = if k.expires_at.is_some() {
            ""
        } else {
            ", none stored: createdAt + the default lifetime"
        };
        evidence.push(format!(
            "{}: {}, {} days old, {to_expiry} days to expiry (expiresAt {}{stored})",
            row.id,
            type_name(row.key_type),
            row.age_days,
            row.expires_at,
        ));
        if row.expired {
            problems.push(match k.expires_at {
                Some(at) => format!("API key {} expired at {at} but is still listed active", row.id),
                None => format!(
                    "API key {} has no expiresAt and is {} days old, past the {}-day rotation period",
                    row.id,
                    row.age_days,
                    whole_days(DEFAULT_KEY_LIFETIME),
                ),
            });
        }
    }
    (outcome_of(problems), evidence)
}

// --- webhook-secret-age ----------------------------------------------------------------------

/// The webhook settings: the secret's name and its rotation period.
fn webhook_settings(env: &EnvReader<'_>) -> Result<(SecretName, Duration), ConfigError> {
    let name = env
        .optional(WEBHOOK_SECRETS_SECRET_VAR)
        .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRETS_SECRET.to_owned());
    let name = SecretName::new(&name)
        .map_err(|e| ConfigError::new(WEBHOOK_SECRETS_SECRET_VAR, e.to_string()))?;
    let days: u64 = env.parsed_or(
        WEBHOOK_SECRET_MAX_AGE_VAR,
        DEFAULT_WEBHOOK_SECRET_MAX_AGE_DAYS,
    )?;
    if !(1..=MAX_WEBHOOK_SECRET_MAX_AGE_DAYS).contains(&days) {
        return Err(ConfigError::new(
            WEBHOOK_SECRET_MAX_AGE_VAR,
            format!("must be between 1 and {MAX_WEBHOOK_SECRET_MAX_AGE_DAYS} days, got {days}"),
        ));
    }
    Ok((name, Duration::from_secs(days * DAY_SECS)))
}

/// How many entries a webhook secrets document lists, counted without keeping any value; `None`
/// when it is not a JSON document of that shape (a bare secret, or something the receiver
/// refuses), which this check leaves to the live callback checks.
fn listed_entries(text: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Listed {
        #[serde(default)]
        secrets: Vec<IgnoredAny>,
        #[serde(default, rename = "publicKeys")]
        public_keys: Vec<IgnoredAny>,
    }
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Listed>(trimmed)
        .ok()
        .map(|l| l.secrets.len() + l.public_keys.len())
}

async fn webhook_secret_age(
    secrets: &dyn SecretSource,
    env: &EnvReader<'_>,
    now: Timestamp,
) -> Finding {
    let id = ITEM_IDS[2];
    let (name, max_age) = match webhook_settings(env) {
        Ok(s) => s,
        Err(e) => return config_failure(id, &e),
    };
    let current = match secrets.current(&name).await {
        Ok(v) => v,
        Err(SecretsError::NotFound(_)) => {
            return failed(
                id,
                format!("no webhook secret in {name}: callbacks cannot be verified"),
                vec![format!("{name}: not found")],
            );
        }
        Err(e) => {
            return failed(
                id,
                format!("cannot read the webhook secrets {name}: {e}"),
                Vec::new(),
            );
        }
    };
    let mut evidence = vec![format!(
        "{name}: current version {}; rotation period {} days ({WEBHOOK_SECRET_MAX_AGE_VAR})",
        current.id.as_str(),
        whole_days(max_age),
    )];
    if listed_entries(current.value.expose_secret()) == Some(0) {
        evidence.push("the document lists no secrets and no publicKeys".to_owned());
        return failed(
            id,
            format!("no webhook secret in {name}: callbacks cannot be verified"),
            evidence,
        );
    }
    let Some(written) = current.created_at else {
        return Finding::new(
            checklist::by_id(id),
            Outcome::not_observable(format!(
                "the secrets store gives no creation time for {name}: look at its last-changed \
                 date in Secrets Manager, or at the WebhookSecretAgeDays metric"
            )),
            evidence,
        );
    };
    let age = now.since(written);
    evidence.push(format!(
        "current version written at {}, {} days ago",
        written.to_rfc3339(),
        whole_days(age)
    ));
    let outcome = if age > max_age {
        Outcome::fail(format!(
            "the webhook secrets in {name} last changed {} days ago, more than the {}-day \
             rotation period",
            whole_days(age),
            whole_days(max_age),
        ))
    } else {
        Outcome::Pass
    };
    Finding::new(checklist::by_id(id), outcome, evidence)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::audit::report::Method;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_default_webhook_secrets_name_is_the_callback_receivers() {
        let declaration = "pub const DEFAULT_WEBHOOK_SECRETS_SECRET: &str = \"";
        let mut files = Vec::new();
        rust_files(
            &workspace().join("functions/callback-receiver/src"),
            &mut files,
        );
        let found: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                let start = text.find(declaration)? + declaration.len();
                let len = text[start..].find('"')?;
                Some(text[start..start + len].to_owned())
            })
            .collect();
        assert_eq!(
            found,
            [DEFAULT_WEBHOOK_SECRETS_SECRET],
            "the callback receiver's DEFAULT_WEBHOOK_SECRETS_SECRET moved or changed"
        );
    }

    /// The lines of the resource `name` in template.yaml.
    fn resource(template: &str, name: &str) -> Vec<String> {
        let header = format!("  {name}:");
        let mut lines = template.lines().skip_while(|l| *l != header);
        let Some(first) = lines.next() else {
            panic!("no resource {name} in template.yaml")
        };
        std::iter::once(first)
            .chain(lines.take_while(|l| l.is_empty() || l.starts_with("   ")))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    #[test]
    fn the_default_webhook_rotation_period_is_the_threshold_of_the_template_alarm() {
        let template = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
        let alarm = resource(&template, "WebhookSecretAgeAlarm");
        assert!(
            alarm.contains(&"MetricName: WebhookSecretAgeDays".to_owned()),
            "{alarm:#?}"
        );
        assert!(alarm.contains(&"ComparisonOperator: GreaterThanThreshold".to_owned()));
        assert!(
            alarm.contains(&format!("Threshold: {DEFAULT_WEBHOOK_SECRET_MAX_AGE_DAYS}")),
            "{alarm:#?}"
        );
    }

    #[test]
    fn the_run_interval_is_the_rotation_functions_schedule() {
        let template = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
        let function = resource(&template, "KeyRotationFunction");
        assert_eq!(ROTATION_RUN_INTERVAL, Duration::from_secs(86_400));
        assert!(
            function.contains(&"Schedule: rate(1 day)".to_owned()),
            "{function:#?}"
        );
    }

    #[test]
    fn the_module_answers_exactly_the_state_items() {
        let state: Vec<&str> = checklist::ITEMS
            .iter()
            .filter(|i| i.method == Method::State)
            .map(|i| i.id)
            .collect();
        assert_eq!(state, ITEM_IDS);
    }

    #[test]
    fn webhook_documents_are_counted_without_their_values() {
        assert_eq!(listed_entries(r#"{"secrets":[],"bootstrap":"x"}"#), Some(0));
        assert_eq!(listed_entries(r#"{"publicKeys":["whpk_a"]}"#), Some(1));
        assert_eq!(
            listed_entries(r#"{"secrets":["whsec_a","whsec_b"]}"#),
            Some(2)
        );
        assert_eq!(listed_entries("whsec_bare"), None);
        assert_eq!(listed_entries(r#"{"secrets":"x"}"#), None);
    }

    #[test]
    fn a_webhook_rotation_period_out_of_range_names_its_variable() {
        let env = shared::config::MapEnv::from_pairs([(WEBHOOK_SECRET_MAX_AGE_VAR, "0")]);
        let err = webhook_settings(&EnvReader::new(&env)).unwrap_err();
        assert_eq!(err.var, WEBHOOK_SECRET_MAX_AGE_VAR);
        let env = shared::config::MapEnv::default();
        let (name, max) = webhook_settings(&EnvReader::new(&env)).unwrap();
        assert_eq!(name.as_str(), DEFAULT_WEBHOOK_SECRETS_SECRET);
        assert_eq!(max, Duration::from_secs(90 * 86_400));
    }
}
