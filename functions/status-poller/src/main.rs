//! The status poller Lambda: builds its dependencies once, then runs one poll per scheduled event
//! within the invocation's deadline.
#![forbid(unsafe_code)]

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::keys::SecretKeySet;
use shared::platform::{MintingTokens, PlatformClient};
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};
use status_poller::{PollerConfig, PollerDeps, SERVICE, handle, lambda_deadline};

/// Status calls carry a token without a user: one cached token is all the poller needs.
const TOKEN_CACHE_CAPACITY: usize = 4;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(SERVICE);
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(PollerConfig::from_env(&reader));
    let table = or_exit(reader.required("TABLE_NAME"));
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let recorder = Recorder::new(namespace, SERVICE, Arc::new(StdoutSink), clock.clone());
    let sdk = shared::aws::load().await;
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        clock.clone(),
    ));
    // The key set is read on the first poll, not at start.
    let key_set = Arc::new(SecretKeySet::new(
        secrets,
        config.keys.secret_name.clone(),
        config.keys.timings,
        clock.clone(),
    ));
    let tokens = Arc::new(MintingTokens::new(
        key_set,
        config.partner_id.clone(),
        config.keys.token_lifetime,
        clock.clone(),
        TOKEN_CACHE_CAPACITY,
    ));
    let platform = match PlatformClient::new(config.platform.clone(), tokens, recorder.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("configuration error: PLATFORM_BASE_URL {e}");
            std::process::exit(78)
        }
    };
    let deps = PollerDeps {
        policy: config.policy,
        store: store.clone(),
        due: store,
        platform,
        clock,
        recorder,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let deadline = lambda_deadline(event.context.deadline);
            handle(event.payload, deadline, deps).await
        }
    }))
    .await
}
