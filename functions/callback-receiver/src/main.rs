//! The callback receiver Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;

use callback_receiver::{CallbackConfig, CallbackDeps, StdoutEventSink, default_handlers, handle};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::secrets::SecretSource;
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("callback-receiver");
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(CallbackConfig::from_env(&reader));
    let table = or_exit(reader.required("TABLE_NAME"));
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let recorder = Recorder::new(
        namespace,
        "callback-receiver",
        Arc::new(StdoutSink),
        clock.clone(),
    );
    let sdk = shared::aws::load().await;
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    ));
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        clock.clone(),
    ));
    let handlers = default_handlers(Arc::new(StdoutEventSink));
    let deps = or_exit(CallbackDeps::new(
        config, secrets, store, &handlers, clock, recorder,
    ));
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
