//! The JWKS Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;

use jwks::{JwksConfig, JwksDeps, handle};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::keys::{JwksCache, SecretKeySet};
use shared::secrets::aws::SecretsManagerStore;
use shared::telemetry::{Recorder, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("jwks");
    let env = ProcessEnv;
    let reader = EnvReader::new(&env);
    let config = or_exit(JwksConfig::from_env(&reader));
    let namespace = reader
        .optional("METRICS_NAMESPACE")
        .unwrap_or_else(|| shared::telemetry::DEFAULT_NAMESPACE.to_owned());
    let clock: SharedClock = Arc::new(SystemClock);
    let sdk = shared::aws::load().await;
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let keys = SecretKeySet::new(
        secrets,
        config.keys.secret_name.clone(),
        config.keys.timings,
        clock.clone(),
    );
    let deps = JwksDeps {
        config,
        keys: Arc::new(keys),
        rendered: JwksCache::default(),
        recorder: Recorder::new(namespace, "jwks", Arc::new(StdoutSink), clock.clone()),
        clock,
    };
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
