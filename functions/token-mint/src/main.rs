//! The token mint Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use shared::auth::{RequestVerifier, SecretApiKeys};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::keys::SecretKeySet;
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};
use token_mint::{MintConfig, MintDeps, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("token-mint");
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(MintConfig::from_env(&reader));
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let recorder = Recorder::new(namespace, "token-mint", Arc::new(StdoutSink), clock.clone());
    let sdk = shared::aws::load().await;
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let keys = SecretKeySet::new(
        secrets.clone(),
        config.keys.secret_name.clone(),
        config.keys.timings,
        clock.clone(),
    );
    let server_auth = config.table_name.as_ref().map(|table| {
        let api_keys = SecretApiKeys::new(
            secrets,
            config.api_keys_secret.clone(),
            Duration::from_secs(60),
            clock.clone(),
        );
        let replay = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table, clock.clone());
        RequestVerifier::new(
            Arc::new(api_keys),
            Arc::new(replay),
            clock.clone(),
            recorder.clone(),
        )
    });
    let deps = MintDeps {
        config,
        keys: Arc::new(keys),
        server_auth,
        clock,
        recorder,
    };
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
