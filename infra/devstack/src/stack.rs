//! The ports and every handler's dependencies, built once, the way each Lambda's `main` builds
//! them, but over the devstack's adapters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callback_receiver::{CallbackConfig, CallbackDeps, CallbackPorts, LogEventSink};
use issue::{IssueConfig, IssueDeps, IssuePorts};
use jwks::{JwksConfig, JwksDeps, JwksPorts};
use key_rotation::{RotationConfig, RotationDeps, RotationPorts};
use serde_json::json;
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::keys::{KeySetSource, SecretKeySet};
use shared::pii::DataKeySource;
use shared::secrets::{SecretSource, SecretWriter};
use shared::store::{DueRecords, RecordStore};
use shared::telemetry::{MetricSink, Recorder};
use status_poller::{PollerConfig, PollerDeps, PollerPorts};
use token_mint::{MintConfig, MintDeps, MintPorts};

use crate::authorizer::JwtAuthorizer;
use crate::credentials::{self, DevCredentials};
use crate::idp::DevIdp;
use crate::{Options, StartError};

/// EMF documents go to the debug log locally instead of cluttering standard output.
struct DebugLogSink;

impl MetricSink for DebugLogSink {
    fn write_line(&self, line: &str) {
        tracing::debug!(target: "emf", emf = line, "metrics");
    }
}

/// The handlers' shared world.
pub struct Stack {
    /// Records (replay cache today; idempotency, issuances, callbacks later).
    pub store: Arc<dyn RecordStore>,
    /// Secrets (key set, API keys).
    pub secrets: Arc<dyn SecretWriter>,
    /// `embedded` or `aws`, for `/healthz`.
    pub backend: &'static str,
    /// Token mint.
    pub mint: MintDeps,
    /// JWKS.
    pub jwks: JwksDeps,
    /// Key rotation.
    pub rotation: RotationDeps,
    /// Credential issuance.
    pub issue: IssueDeps,
    /// The status poller.
    pub poller: PollerDeps,
    /// The callback receiver.
    pub callbacks: CallbackDeps,
    /// CORS, as the template's `AllowedOrigins` configures the deployed API (`ALLOWED_ORIGINS`).
    pub cors: crate::cors::Cors,
    /// The local identity provider.
    pub idp: DevIdp,
    /// The emulated JWT authorizer of the mint route, trusting the local identity provider.
    pub authorizer: JwtAuthorizer,
    /// The dev credentials.
    pub credentials: DevCredentials,
    /// The clock.
    pub clock: SharedClock,
}

/// The environment the handlers are configured from: the process's, with local defaults for what
/// it does not set — short key-set and API-key caches, so that `opsctl` changes show within
/// seconds — and the partner id. These are the only settings the devstack chooses differently
/// from a deployment; everything else is the functions' own default, built by their own
/// constructors.
pub fn handler_env(opts: &Options, platform_url: &str) -> MapEnv {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    apply_local_defaults(&mut vars);
    vars.entry("ISSUER_DID".into())
        .or_insert_with(|| format!("did:air:id:test:{}", opts.partner_id));
    vars.insert("PARTNER_ID".into(), opts.partner_id.clone());
    vars.insert("PLATFORM_BASE_URL".into(), platform_url.to_owned());
    vars.insert("PLATFORM_LOCAL_MODE".into(), "true".into());
    vars.insert(
        "PLATFORM_LOCAL_CA".into(),
        crate::tls_dir(&opts.data_dir)
            .join(local_tls::CA_CERT_FILE)
            .display()
            .to_string(),
    );
    MapEnv(vars)
}

/// The settings the devstack defaults differently from a deployment, unless the environment sets
/// them.
pub const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    ("KEY_SET_CACHE_SECONDS", "5"),
    ("API_KEYS_CACHE_SECONDS", "5"),
    // The dev API key is a `test` key: the devstack is a test stack.
    ("STACK_ENVIRONMENT", "test"),
];

/// Sets each of [`LOCAL_DEFAULTS`] that `vars` does not set already.
fn apply_local_defaults(vars: &mut HashMap<String, String>) {
    for (name, value) in LOCAL_DEFAULTS {
        vars.entry((*name).into())
            .or_insert_with(|| (*value).into());
    }
}

impl Stack {
    /// Builds the ports and the handlers' dependencies for `opts`; `api_url` is where the stack
    /// will answer.
    pub async fn build(
        opts: &Options,
        api_url: &str,
        ports: Ports,
        mut credentials: DevCredentials,
        platform_url: &str,
    ) -> Result<Self, StartError> {
        let clock: SharedClock = Arc::new(SystemClock);
        let (store, secrets, backend, due) = ports;
        let env = handler_env(opts, platform_url);
        let reader = EnvReader::new(&env);
        let mint_config = MintConfig::from_env(&reader)?;
        let jwks_config = JwksConfig::from_env(&reader)?;
        let rotation_config = RotationConfig::from_env(&reader)?;

        let sink: Arc<dyn MetricSink> = Arc::new(DebugLogSink);
        let recorder = |service: &str| {
            Recorder::new(
                shared::telemetry::DEFAULT_NAMESPACE,
                service,
                Arc::clone(&sink),
                clock.clone(),
            )
        };
        let keys: Arc<dyn KeySetSource> = Arc::new(SecretKeySet::new(
            Arc::clone(&secrets),
            mint_config.keys.secret_name.clone(),
            mint_config.keys.timings,
            clock.clone(),
        ));

        let issue_config = IssueConfig::from_env(&reader)?;
        let programs = issue_config.programs();
        credentials.programs = programs
            .iter()
            .map(|p| {
                json!({
                    "id": p.id,
                    "cak": p.cak.is_some(),
                    "curve": p.cak,
                    "sensitiveFields": p.sensitive_fields,
                    "exampleSubject": p.example_subject,
                })
            })
            .collect();
        credentials.user_login = Some(format!("{api_url}/dev/login"));
        credentials::write(&opts.data_dir.join(credentials::FILE_NAME), &credentials)?;
        // The keys protecting user identifiers: created on first start.
        let data_writer: Arc<dyn SecretWriter> = Arc::clone(&secrets);
        DataKeySource::new(
            data_writer,
            issue_config.data_keys_secret.clone(),
            Duration::from_secs(60),
            clock.clone(),
        )
        .ensure()
        .await
        .map_err(|e| StartError::DataKeys(e.to_string()))?;
        let issue = IssueDeps::build(
            issue_config,
            IssuePorts {
                store: Arc::clone(&store),
                secrets: Arc::clone(&secrets) as Arc<dyn SecretSource>,
                clock: clock.clone(),
                recorder: recorder("issue"),
            },
        )
        .map_err(|e| StartError::Platform(shared::error::chain(&e)))?;
        let poller = PollerDeps::build(
            PollerConfig::from_env(&reader)?,
            PollerPorts {
                secrets: Arc::clone(&secrets) as Arc<dyn SecretSource>,
                store: Arc::clone(&store),
                due,
                clock: clock.clone(),
                recorder: recorder(status_poller::SERVICE),
            },
        )
        .map_err(|e| {
            StartError::Platform(format!("status poller: {}", shared::error::chain(&e)))
        })?;
        let callbacks = callback_deps(
            &reader,
            &secrets,
            Arc::clone(&store),
            &credentials.webhook_secret,
            &clock,
            recorder("callback-receiver"),
        )
        .await?;

        let mint = MintDeps::build(
            mint_config,
            MintPorts {
                secrets: Arc::clone(&secrets) as Arc<dyn SecretSource>,
                replay: Some(Arc::clone(&store)),
                clock: clock.clone(),
                recorder: recorder("token-mint"),
            },
        );
        // Built as in Lambda; the one documented difference: the JWKS route and the rotation run
        // share one key-set cache, which the rotation forgets after each write, so that a
        // rotation shows in the local JWKS at once instead of after KEY_SET_CACHE_SECONDS.
        let mut jwks = JwksDeps::build(
            jwks_config,
            JwksPorts {
                secrets: Arc::clone(&secrets) as Arc<dyn SecretSource>,
                clock: clock.clone(),
                recorder: recorder("jwks"),
            },
        );
        jwks.keys = Arc::clone(&keys);
        let mut rotation = RotationDeps::build(
            rotation_config,
            RotationPorts {
                secrets: Arc::clone(&secrets),
                clock: clock.clone(),
                recorder: recorder("key-rotation"),
            },
        );
        rotation.local_cache = Some(keys);
        let idp = DevIdp::new(format!("{api_url}/dev"))?;
        // The authorizer fetches the provider's documents from this stack over HTTPS, as API
        // Gateway fetches them from the partner's identity provider.
        let ca_path = crate::tls_dir(&opts.data_dir).join(local_tls::CA_CERT_FILE);
        let ca_pem = std::fs::read(&ca_path).map_err(|source| local_tls::TlsError::Io {
            path: ca_path.clone(),
            source,
        })?;
        let http = local_tls::client_builder(&ca_pem)?
            .https_only(true)
            .build()
            .map_err(local_tls::TlsError::from)?;
        let authorizer = JwtAuthorizer::new(
            idp.issuer().to_owned(),
            vec![crate::idp::AUDIENCE.to_owned()],
            http,
        );
        let stack = Self {
            mint,
            jwks,
            rotation,
            issue,
            poller,
            callbacks,
            cors: crate::cors::Cors::parse(
                &reader.optional("ALLOWED_ORIGINS").unwrap_or_default(),
            )?,
            idp,
            authorizer,
            credentials,
            store,
            secrets,
            backend,
            clock,
        };
        // The first scheduled run: a fresh data directory gets its first signing key now.
        key_rotation::handle(scheduled_event(), &stack.rotation).await?;
        Ok(stack)
    }
}

/// The store, the secrets, the backend's name and the store's due-time index.
pub type Ports = (
    Arc<dyn RecordStore>,
    Arc<dyn SecretWriter>,
    &'static str,
    Arc<dyn DueRecords>,
);

/// Opens the store and the secrets for `opts`.
pub async fn ports(opts: &Options, clock: SharedClock) -> Result<Ports, StartError> {
    if opts.aws {
        let config = shared::aws::load().await;
        let store = shared::store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            &opts.table_name,
            clock,
        );
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            store.create_table_if_missing().await?;
        }
        let secrets = shared::secrets::aws::SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&config),
        );
        let store = Arc::new(store);
        return Ok((store.clone(), Arc::new(secrets), "aws", store));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.data_dir)
        .map_err(|source| StartError::DataDir {
            path: opts.data_dir.clone(),
            source,
        })?;
    let store = shared::store::embedded::EmbeddedStore::open(
        opts.data_dir.join("records.sqlite3"),
        clock.clone(),
    )?;
    let secrets = shared::secrets::file::FileSecrets::open(&opts.data_dir, clock)?;
    let store = Arc::new(store);
    Ok((store.clone(), Arc::new(secrets), "embedded", store))
}

/// An EventBridge scheduled event, as the rule in the template delivers it.
pub fn scheduled_event() -> serde_json::Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": shared::clock::Clock::now(&SystemClock).to_rfc3339(),
        "region": "local",
        "resources": ["arn:aws:events:local:000000000000:rule/devstack-schedule"],
        "detail": {}
    })
}

/// Fires the scheduled functions as EventBridge would: key rotation every `interval`, the status
/// poller every `poll_interval` (each run waits for the previous one to end).
pub async fn run_schedules(stack: Arc<Stack>, interval: Duration, poll_interval: Duration) {
    let rotation = async {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await; // the first tick is immediate; start-up already ran once
        loop {
            tick.tick().await;
            if let Err(e) = key_rotation::handle(scheduled_event(), &stack.rotation).await {
                tracing::error!(error = %e, "scheduled key rotation failed");
            }
        }
    };
    let polls = async {
        let mut tick = tokio::time::interval(poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A local run has the time a Lambda invocation of the template would have.
            let deadline = shared::platform::Deadline::after(stack.poller.policy.default_run_time);
            let event = scheduled_event();
            if let Err(e) = status_poller::handle(event, deadline, &stack.poller).await {
                tracing::error!(error = %e, "scheduled status poll failed");
            }
        }
    };
    tokio::join!(rotation, polls);
}

/// The callback receiver's dependencies, as its Lambda's `main` builds them, over the devstack's
/// ports. The webhook secret the simulator signs with is first put in the webhook secrets secret,
/// so that the receiver reads it through the secrets port, as in AWS.
async fn callback_deps(
    reader: &EnvReader<'_>,
    secrets: &Arc<dyn SecretWriter>,
    store: Arc<dyn RecordStore>,
    webhook_secret: &str,
    clock: &SharedClock,
    recorder: Recorder,
) -> Result<CallbackDeps, StartError> {
    let config = CallbackConfig::from_env(reader)?;
    credentials::share_webhook_secret(
        secrets.as_ref(),
        &config.webhook_secrets_secret,
        webhook_secret,
    )
    .await?;
    let source: Arc<dyn SecretSource> = Arc::clone(secrets) as Arc<dyn SecretSource>;
    Ok(CallbackDeps::build(
        config,
        CallbackPorts {
            secrets: source,
            store,
            handlers: callback_receiver::default_handlers(Arc::new(LogEventSink)),
            clock: clock.clone(),
            recorder,
        },
    )?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;
    use std::time::Duration;

    use callback_receiver::CallbackConfig;
    use issue::IssueConfig;
    use shared::config::{EnvReader, MapEnv};
    use status_poller::PollerConfig;

    use super::apply_local_defaults;

    fn issue_config(vars: HashMap<String, String>) -> IssueConfig {
        IssueConfig::from_env(&EnvReader::new(&MapEnv(vars))).unwrap()
    }

    #[test]
    fn the_devstack_configures_the_functions_as_lambda_does_but_for_its_documented_local_defaults()
    {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, local_tls::LocalCa::ephemeral().unwrap().cert_pem()).unwrap();
        let deployed: HashMap<String, String> = [
            ("ISSUER_DID", "did:air:id:test:p"),
            ("PARTNER_ID", "p"),
            ("PLATFORM_BASE_URL", "https://127.0.0.1:9"),
            ("PLATFORM_LOCAL_MODE", "true"),
            ("PLATFORM_LOCAL_CA", ca.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut local = deployed.clone();
        apply_local_defaults(&mut local);
        let lambda = issue_config(deployed.clone());
        let devstack = issue_config(local);
        // What the devstack documents as its own: short key-set and API-key caches.
        assert_eq!(lambda.api_keys_ttl, Duration::from_secs(60));
        assert_eq!(devstack.api_keys_ttl, Duration::from_secs(5));
        assert_eq!(
            lambda.keys.timings.key_set_cache_ttl,
            Duration::from_secs(300)
        );
        assert_eq!(
            devstack.keys.timings.key_set_cache_ttl,
            Duration::from_secs(5)
        );
        // Everything else is the function's own default, the same in both.
        assert_eq!(lambda.data_keys_ttl, devstack.data_keys_ttl);
        assert_eq!(lambda.data_keys_ttl, Duration::from_secs(300));
        assert_eq!(lambda.platform_token_cache, devstack.platform_token_cache);
        assert_eq!(lambda.platform_token_cache, 10_000);
        assert_eq!(lambda.idempotency_window, devstack.idempotency_window);
        assert_eq!(lambda.max_body_bytes, devstack.max_body_bytes);
        assert_eq!(
            lambda.platform.request_timeout,
            devstack.platform.request_timeout
        );
        assert_eq!(lambda.platform.max_attempts, devstack.platform.max_attempts);
        // The poller's and the callback receiver's caches too.
        let poller = |vars: HashMap<String, String>| {
            PollerConfig::from_env(&EnvReader::new(&MapEnv(vars))).unwrap()
        };
        let callbacks = |vars: HashMap<String, String>| {
            CallbackConfig::from_env(&EnvReader::new(&MapEnv(vars))).unwrap()
        };
        let mut local = deployed.clone();
        apply_local_defaults(&mut local);
        assert_eq!(poller(deployed.clone()).token_cache_entries, 4);
        assert_eq!(poller(local.clone()).token_cache_entries, 4);
        assert_eq!(
            callbacks(deployed.clone()).data_keys_ttl,
            Duration::from_secs(300)
        );
        assert_eq!(callbacks(local).data_keys_ttl, Duration::from_secs(300));
        // And a variable the operator sets wins over a local default.
        let mut operator: HashMap<String, String> =
            HashMap::from([("API_KEYS_CACHE_SECONDS".to_owned(), "30".to_owned())]);
        apply_local_defaults(&mut operator);
        assert_eq!(operator["API_KEYS_CACHE_SECONDS"], "30");
    }
}
