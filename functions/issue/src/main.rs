//! The issue Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;

use issue::{IssueConfig, IssueDeps, IssuePorts, handle};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("issue");
    let reader = EnvReader::new(&ProcessEnv);
    let config = or_exit(IssueConfig::from_env(&reader));
    let table = or_exit(reader.required("TABLE_NAME"));
    let namespace = shared::telemetry::namespace(&reader);
    let clock: SharedClock = Arc::new(SystemClock);
    let sdk = shared::aws::load().await;
    let ports = IssuePorts {
        store: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
            clock.clone(),
        )),
        secrets: Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
        )),
        recorder: Recorder::new(namespace, "issue", Arc::new(StdoutSink), clock.clone()),
        clock,
    };
    let deps = or_exit(IssueDeps::build(config, ports).map_err(|e| {
        let cause = std::error::Error::source(&e).map_or_else(String::new, |s| s.to_string());
        shared::config::ConfigError::new("PLATFORM_BASE_URL", format!("{e}: {cause}"))
    }));
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
