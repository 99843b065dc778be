//! The issue Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use issue::{IssueConfig, IssueDeps, handle};
use shared::auth::{RequestVerifier, SecretApiKeys};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::keys::{KeyConfig, PartnerId, SecretKeySet};
use shared::pii::DataKeySource;
use shared::platform::{MintingTokens, PlatformClient, PlatformConfig};
use shared::secrets::SecretSource;
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("issue");
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(IssueConfig::from_env(&reader));
    let keys_config = or_exit(KeyConfig::from_env(&reader));
    let platform_config = or_exit(PlatformConfig::from_env(&reader));
    let table = or_exit(reader.required("TABLE_NAME"));
    let partner_id = or_exit(reader.required("PARTNER_ID").and_then(|p| {
        PartnerId::new(&p).map_err(|e| shared::config::ConfigError::new("PARTNER_ID", e.0))
    }));
    let api_keys_secret = or_exit(
        shared::secrets::SecretName::new(
            &reader
                .optional("API_KEYS_SECRET_NAME")
                .unwrap_or_else(|| shared::auth::DEFAULT_API_KEYS_SECRET.to_owned()),
        )
        .map_err(|e| shared::config::ConfigError::new("API_KEYS_SECRET_NAME", e.to_string())),
    );
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let recorder = Recorder::new(namespace, "issue", Arc::new(StdoutSink), clock.clone());
    let sdk = shared::aws::load().await;
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        clock.clone(),
    ));
    let key_set = Arc::new(SecretKeySet::new(
        secrets.clone(),
        keys_config.secret_name.clone(),
        keys_config.timings,
        clock.clone(),
    ));
    let tokens = Arc::new(MintingTokens::new(
        key_set,
        partner_id,
        keys_config.token_lifetime,
        clock.clone(),
        10_000,
    ));
    let platform = match PlatformClient::new(platform_config, tokens, recorder.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("configuration error: PLATFORM_BASE_URL {e}");
            std::process::exit(78)
        }
    };
    let api_keys = SecretApiKeys::new(
        secrets.clone(),
        api_keys_secret,
        Duration::from_secs(60),
        clock.clone(),
    );
    let verifier = RequestVerifier::new(
        Arc::new(api_keys),
        store.clone(),
        clock.clone(),
        recorder.clone(),
    );
    let data_source: Arc<dyn SecretSource> = Arc::new(secrets);
    let deps = IssueDeps {
        programs: config.programs(),
        data_keys: DataKeySource::new(
            data_source,
            config.data_keys_secret.clone(),
            Duration::from_secs(300),
            clock.clone(),
        ),
        config,
        verifier,
        store,
        platform,
        clock,
        recorder,
    };
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
