//! The key rotation Lambda: builds its dependencies once, then handles scheduled events and
//! Secrets Manager rotation steps.
#![forbid(unsafe_code)]

use std::sync::Arc;

use key_rotation::{RotationConfig, RotationDeps, handle};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::keys::KeySetStore;
use shared::secrets::SecretWriter;
use shared::secrets::aws::SecretsManagerStore;
use shared::telemetry::{Recorder, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("key-rotation");
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(RotationConfig::from_env(&reader));
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let sdk = shared::aws::load().await;
    let secrets: Arc<dyn SecretWriter> = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    ));
    let deps = RotationDeps {
        store: KeySetStore::new(secrets, config.keys.secret_name.clone()),
        config,
        local_cache: None,
        recorder: Recorder::new(
            namespace,
            "key-rotation",
            Arc::new(StdoutSink),
            clock.clone(),
        ),
        clock,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move { handle(event.payload, deps).await }
    }))
    .await
}
