//! `opsctl audit`'s state checks (`audit::state::check`) against local secret files at a manual
//! clock, and once against Secrets Manager (moto, started by `infra/scripts/with-moto.sh`; that
//! test fails rather than skips when moto is not there, like the other `*_aws` suites).
//!
//! Secrets age by moving the clock between writing them and auditing, never by forging dates;
//! every secret is generated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use opsctl::audit::report::{Finding, Outcome};
use opsctl::audit::state::{self, DEFAULT_WEBHOOK_SECRETS_SECRET, ROTATION_RUN_INTERVAL};
use secrecy::SecretString;
use shared::auth::{ApiKey, ApiKeyRegistry, DEFAULT_API_KEYS_SECRET, KeyType, Permission};
use shared::clock::{Clock, ManualClock, SystemClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::keys::policy::{self, RotationPolicy};
use shared::keys::{DEFAULT_KEY_SET_SECRET, KeyConfig, KeySet};
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretName, SecretSource, SecretWriter};

const DAY: Duration = Duration::from_secs(86_400);

fn days(n: u64) -> Duration {
    DAY * u32::try_from(n).unwrap()
}

fn name(text: &str) -> SecretName {
    SecretName::new(text).unwrap()
}

/// The default key settings' rotation policy.
fn default_policy() -> RotationPolicy {
    KeyConfig::from_env(&EnvReader::new(&MapEnv::default()))
        .unwrap()
        .policy
}

/// A data directory of local secret files, written at a manual clock.
struct World {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    secrets: FileSecrets,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (clock, shared) = test_support::clock();
        let secrets = FileSecrets::open(dir.path(), shared).unwrap();
        Self {
            _dir: dir,
            clock,
            secrets,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs the state checks now with the variables `vars`.
    async fn audit(&self, vars: &[(&str, &str)]) -> Vec<Finding> {
        audit(&self.secrets, vars, self.now()).await
    }
}

async fn audit(secrets: &dyn SecretSource, vars: &[(&str, &str)], now: Timestamp) -> Vec<Finding> {
    let env = MapEnv::from_pairs(vars.iter().copied());
    state::check(secrets, &EnvReader::new(&env), now).await
}

/// A key set bootstrapped by the rotation policy at `now`: one key, active at once.
async fn write_key_set(secrets: &dyn SecretWriter, secret: &SecretName, now: Timestamp) -> KeySet {
    let (set, _) = policy::plan(&KeySet::default(), now, &default_policy()).unwrap();
    write(secrets, secret, set.to_json()).await;
    set
}

/// A registry holding one live key created at `now` with the default lifetime.
async fn write_api_key(secrets: &dyn SecretWriter, secret: &SecretName, now: Timestamp) -> ApiKey {
    let key = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite],
        Vec::new(),
        "audit test",
        now,
    );
    write_registry(secrets, secret, vec![key.clone()]).await;
    key
}

async fn write_registry(secrets: &dyn SecretWriter, secret: &SecretName, keys: Vec<ApiKey>) {
    let registry = ApiKeyRegistry { keys };
    secrets.create(secret, &registry.to_secret()).await.unwrap();
}

/// A webhook secrets document with one generated `whsec_` secret; returns the secret.
async fn write_webhook_secret(secrets: &dyn SecretWriter, secret: &SecretName) -> String {
    let value = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    write(secrets, secret, format!(r#"{{"secrets": ["{value}"]}}"#)).await;
    value
}

async fn write(secrets: &dyn SecretWriter, secret: &SecretName, text: String) {
    secrets
        .create(secret, &SecretString::from(text))
        .await
        .unwrap();
}

/// The three secrets under their default names, all written at the world's clock.
async fn write_fresh_key_set(world: &World) -> KeySet {
    write_key_set(&world.secrets, &name(DEFAULT_KEY_SET_SECRET), world.now()).await
}

async fn write_fresh_api_key(world: &World) -> ApiKey {
    write_api_key(&world.secrets, &name(DEFAULT_API_KEYS_SECRET), world.now()).await
}

async fn write_fresh_webhook_secret(world: &World) -> String {
    write_webhook_secret(&world.secrets, &name(DEFAULT_WEBHOOK_SECRETS_SECRET)).await
}

fn finding<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.item.id == id)
        .unwrap_or_else(|| panic!("no finding {id}: {findings:#?}"))
}

fn why(f: &Finding) -> &str {
    match &f.outcome {
        Outcome::Fail { why } => why,
        other => panic!(
            "{} should have failed: {other:?} {:#?}",
            f.item.id, f.evidence
        ),
    }
}

fn passes(f: &Finding) {
    assert_eq!(f.outcome, Outcome::Pass, "{}: {:#?}", f.item.id, f.evidence);
}

/// Asserts exactly the items `failing` fail and the other state items pass.
fn only_these_fail(findings: &[Finding], failing: &[&str]) {
    let ids: Vec<&str> = findings.iter().map(|f| f.item.id).collect();
    assert_eq!(ids, state::ITEM_IDS, "one finding per state item, in order");
    for f in findings {
        if failing.contains(&f.item.id) {
            why(f);
        } else {
            passes(f);
        }
    }
}

/// Everything the findings say, for checking that no secret is in it.
fn all_text(findings: &[Finding]) -> String {
    serde_json::to_string(findings).unwrap()
}

#[tokio::test]
async fn a_fresh_key_set_api_key_and_webhook_secret_all_pass() {
    let world = World::new();
    let set = write_fresh_key_set(&world).await;
    let key = write_fresh_api_key(&world).await;
    let webhook = write_fresh_webhook_secret(&world).await;
    world.clock.advance(Duration::from_secs(3_600));

    let findings = world.audit(&[]).await;
    only_these_fail(&findings, &[]);

    let signing = finding(&findings, "signing-key-age");
    let kid = set.keys[0].kid.as_str();
    let due = set.keys[0].created_at.plus(days(90)).to_rfc3339();
    assert!(
        signing
            .evidence
            .iter()
            .any(|e| e.starts_with(&format!("{kid}: active, 0 days old"))),
        "{:#?}",
        signing.evidence
    );
    assert!(
        signing
            .evidence
            .contains(&format!("next rotation due at {due}")),
        "{:#?}",
        signing.evidence
    );
    let api = finding(&findings, "api-key-age");
    assert!(
        api.evidence
            .iter()
            .any(|e| e.starts_with(&format!("{}: live, 0 days old, 89 days to expiry", key.id))),
        "{:#?}",
        api.evidence
    );

    let text = all_text(&findings);
    assert!(!text.contains(&key.secret), "an API key secret was printed");
    assert!(
        !text.contains(&set.keys[0].private_jwk.d),
        "a private key was printed"
    );
    assert!(!text.contains(&webhook), "a webhook secret was printed");
}

#[tokio::test]
async fn a_key_set_whose_active_key_is_past_its_rotation_period_fails_signing_key_age_only() {
    let world = World::new();
    let set = write_fresh_key_set(&world).await;
    world.clock.advance(days(100));
    write_fresh_api_key(&world).await;
    write_fresh_webhook_secret(&world).await;

    let findings = world.audit(&[]).await;
    only_these_fail(&findings, &["signing-key-age"]);
    let why = why(finding(&findings, "signing-key-age"));
    assert!(
        why.contains(&format!(
            "the signing key {} is 100 days old and overdue for rotation",
            set.keys[0].kid
        )),
        "{why}"
    );
}

#[tokio::test]
async fn the_signing_key_may_sign_until_the_period_the_daily_run_and_the_lead_have_passed() {
    let world = World::new();
    let set = write_fresh_key_set(&world).await;
    let policy = default_policy();
    let deadline = set.keys[0]
        .created_at
        .plus(policy.period)
        .plus(ROTATION_RUN_INTERVAL)
        .plus(policy.lead);

    world.clock.set(deadline);
    passes(finding(&world.audit(&[]).await, "signing-key-age"));
    world.clock.advance(Duration::from_millis(1));
    why(finding(&world.audit(&[]).await, "signing-key-age"));
}

#[tokio::test]
async fn a_rotation_period_from_the_environment_is_the_one_the_key_is_judged_by() {
    let world = World::new();
    write_fresh_key_set(&world).await;
    world.clock.advance(days(40));
    let thirty_days = (30 * 86_400).to_string();
    let findings = world
        .audit(&[("ROTATION_PERIOD_SECONDS", &thirty_days)])
        .await;
    let why = why(finding(&findings, "signing-key-age"));
    assert!(why.contains("under a 30-day rotation period"), "{why}");
}

#[tokio::test]
async fn a_key_set_with_a_pending_successor_passes_and_shows_when_the_successor_signs() {
    let world = World::new();
    let secret = name(DEFAULT_KEY_SET_SECRET);
    let start = world.now();
    let set = write_key_set(&world.secrets, &secret, start).await;
    world.clock.advance(days(90));
    let policy = default_policy();
    let (next, _) = policy::plan(&set, world.now(), &policy).unwrap();
    let current = world.secrets.current(&secret).await.unwrap();
    shared::secrets::write_if_unchanged(
        &world.secrets,
        &secret,
        Some(&current.id),
        &SecretString::from(next.to_json()),
    )
    .await
    .unwrap();

    let findings = world.audit(&[]).await;
    let signing = finding(&findings, "signing-key-age");
    passes(signing);
    let successor = &next.keys[1];
    assert!(
        signing.evidence.iter().any(|e| e.contains(&format!(
            "successor {} signs from {}",
            successor.kid, successor.activate_at
        ))),
        "{:#?}",
        signing.evidence
    );
    let due = successor.created_at.plus(policy.period).to_rfc3339();
    assert!(
        signing
            .evidence
            .contains(&format!("next rotation due at {due}")),
        "{:#?}",
        signing.evidence
    );
}

#[tokio::test]
async fn an_empty_key_set_as_the_template_creates_it_fails_because_no_key_signs() {
    let world = World::new();
    let secret = name(DEFAULT_KEY_SET_SECRET);
    write(
        &world.secrets,
        &secret,
        r#"{"seed":"generated"}"#.to_owned(),
    )
    .await;
    let findings = world.audit(&[]).await;
    let why = why(finding(&findings, "signing-key-age"));
    assert_eq!(why, format!("no key in {secret} signs now"));
}

#[tokio::test]
async fn an_expired_but_active_api_key_fails_api_key_age_only() {
    let world = World::new();
    let key = write_fresh_api_key(&world).await;
    world.clock.advance(days(91));
    write_fresh_key_set(&world).await;
    write_fresh_webhook_secret(&world).await;

    let findings = world.audit(&[]).await;
    only_these_fail(&findings, &["api-key-age"]);
    let api = finding(&findings, "api-key-age");
    let expired_at = key.expires_at.unwrap();
    assert_eq!(
        why(api),
        format!(
            "API key {} expired at {expired_at} but is still listed active",
            key.id
        )
    );
    assert!(
        api.evidence
            .iter()
            .any(|e| e.starts_with(&format!("{}: live, 91 days old, -1 days to expiry", key.id))),
        "{:#?}",
        api.evidence
    );
    assert!(!all_text(&findings).contains(&key.secret));
}

#[tokio::test]
async fn an_api_key_stored_without_an_expiry_fails_once_it_is_older_than_ninety_days() {
    let world = World::new();
    let mut key = ApiKey::generate(
        KeyType::ReadOnly,
        vec![Permission::CredentialsRead],
        Vec::new(),
        "legacy",
        world.now(),
    );
    key.expires_at = None;
    write_registry(
        &world.secrets,
        &name(DEFAULT_API_KEYS_SECRET),
        vec![key.clone()],
    )
    .await;

    world.clock.advance(days(89));
    passes(finding(&world.audit(&[]).await, "api-key-age"));
    world.clock.advance(days(2));
    let findings = world.audit(&[]).await;
    assert_eq!(
        why(finding(&findings, "api-key-age")),
        format!(
            "API key {} has no expiresAt and is 91 days old, past the 90-day rotation period",
            key.id
        )
    );
}

#[tokio::test]
async fn a_revoked_api_key_past_its_expiry_is_not_a_failure() {
    let world = World::new();
    let mut key = ApiKey::generate(
        KeyType::Test,
        vec![Permission::TokensMint],
        Vec::new(),
        "old",
        world.now(),
    );
    key.status = shared::auth::KeyStatus::Revoked;
    key.revoked_at = Some(world.now());
    write_registry(&world.secrets, &name(DEFAULT_API_KEYS_SECRET), vec![key]).await;
    world.clock.advance(days(200));
    let findings = world.audit(&[]).await;
    let api = finding(&findings, "api-key-age");
    passes(api);
    assert!(api.evidence.contains(&"no active API keys".to_owned()));
}

#[tokio::test]
async fn an_old_webhook_secret_fails_webhook_secret_age_only() {
    let world = World::new();
    write_fresh_webhook_secret(&world).await;
    world.clock.advance(days(91));
    write_fresh_key_set(&world).await;
    write_fresh_api_key(&world).await;

    let findings = world.audit(&[]).await;
    only_these_fail(&findings, &["webhook-secret-age"]);
    let why = why(finding(&findings, "webhook-secret-age"));
    assert_eq!(
        why,
        format!(
            "the webhook secrets in {DEFAULT_WEBHOOK_SECRETS_SECRET} last changed 91 days ago, \
             more than the 90-day rotation period"
        )
    );
}

#[tokio::test]
async fn a_webhook_rotation_period_from_the_environment_is_the_one_the_secret_is_judged_by() {
    let world = World::new();
    write_fresh_webhook_secret(&world).await;
    world.clock.advance(days(91));
    let findings = world.audit(&[("WEBHOOK_SECRET_MAX_AGE_DAYS", "120")]).await;
    passes(finding(&findings, "webhook-secret-age"));
    let findings = world
        .audit(&[("WEBHOOK_SECRET_MAX_AGE_DAYS", "ninety")])
        .await;
    assert!(
        why(finding(&findings, "webhook-secret-age")).contains("WEBHOOK_SECRET_MAX_AGE_DAYS"),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn a_webhook_secrets_document_listing_nothing_as_the_template_creates_it_fails() {
    let world = World::new();
    let secret = name(DEFAULT_WEBHOOK_SECRETS_SECRET);
    write(
        &world.secrets,
        &secret,
        r#"{"secrets":[],"bootstrap":"generated"}"#.to_owned(),
    )
    .await;
    let findings = world.audit(&[]).await;
    assert_eq!(
        why(finding(&findings, "webhook-secret-age")),
        format!("no webhook secret in {secret}: callbacks cannot be verified")
    );
}

#[tokio::test]
async fn missing_secrets_fail_with_a_message_naming_the_secret() {
    let world = World::new();
    let vars = [
        ("KEY_SET_SECRET_NAME", "audit-test/signing-keys"),
        ("API_KEYS_SECRET_NAME", "audit-test/api-keys"),
        ("WEBHOOK_SECRETS_SECRET_NAME", "audit-test/webhook-secrets"),
    ];
    // The default names hold fresh secrets, which must not be read instead.
    write_fresh_key_set(&world).await;
    write_fresh_api_key(&world).await;
    write_fresh_webhook_secret(&world).await;

    let findings = world.audit(&vars).await;
    assert_eq!(
        why(finding(&findings, "signing-key-age")),
        "no signing key set in audit-test/signing-keys"
    );
    assert_eq!(
        why(finding(&findings, "webhook-secret-age")),
        "no webhook secret in audit-test/webhook-secrets: callbacks cannot be verified"
    );
    let api = finding(&findings, "api-key-age");
    passes(api);
    assert_eq!(
        api.evidence,
        [
            "no API keys registered: audit-test/api-keys does not exist (the functions read it as \
          empty)"
        ]
    );
}

#[tokio::test]
async fn a_bad_setting_fails_its_item_naming_the_variable() {
    let world = World::new();
    let findings = world.audit(&[("ROTATION_LEAD_SECONDS", "1")]).await;
    assert!(
        why(finding(&findings, "signing-key-age")).contains("ROTATION_LEAD_SECONDS"),
        "{findings:#?}"
    );
    let findings = world.audit(&[("API_KEYS_SECRET_NAME", "a b")]).await;
    assert!(why(finding(&findings, "api-key-age")).contains("API_KEYS_SECRET_NAME"));
}

#[tokio::test]
async fn the_state_checks_read_secrets_manager() {
    let config = test_support::moto().await;
    let store: Arc<dyn SecretWriter> = Arc::new(shared::secrets::aws::SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&config),
    ));
    let run = test_support::unique("opsctl-audit");
    let (keys, api, webhook) = (
        format!("{run}/signing-keys"),
        format!("{run}/api-keys"),
        format!("{run}/webhook-secrets"),
    );
    let vars = [
        ("KEY_SET_SECRET_NAME", keys.as_str()),
        ("API_KEYS_SECRET_NAME", api.as_str()),
        ("WEBHOOK_SECRETS_SECRET_NAME", webhook.as_str()),
    ];
    // Secrets Manager dates versions by its own clock: audit at the wall clock.
    let now = SystemClock.now();

    let findings = audit(&store, &vars, now).await;
    assert_eq!(
        why(finding(&findings, "signing-key-age")),
        format!("no signing key set in {keys}")
    );
    assert_eq!(
        why(finding(&findings, "webhook-secret-age")),
        format!("no webhook secret in {webhook}: callbacks cannot be verified")
    );

    write_key_set(store.as_ref(), &name(&keys), now).await;
    let key = write_api_key(store.as_ref(), &name(&api), now).await;
    let value = write_webhook_secret(store.as_ref(), &name(&webhook)).await;
    let findings = audit(&store, &vars, SystemClock.now()).await;
    only_these_fail(&findings, &[]);
    assert!(
        finding(&findings, "webhook-secret-age")
            .evidence
            .iter()
            .any(|e| e.starts_with("current version written at ")),
        "{findings:#?}"
    );
    let text = all_text(&findings);
    assert!(!text.contains(&key.secret) && !text.contains(&value));

    // The same secrets, audited as if 100 days had passed.
    let findings = audit(&store, &vars, SystemClock.now().plus(days(100))).await;
    only_these_fail(
        &findings,
        &["signing-key-age", "api-key-age", "webhook-secret-age"],
    );
}
