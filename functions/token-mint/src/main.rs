//! The token mint Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;

use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, ProcessEnv, or_exit};
use shared::secrets::aws::SecretsManagerStore;
use shared::store::RecordStore;
use shared::store::dynamodb::DynamoStore;
use shared::telemetry::{Recorder, StdoutSink};
use token_mint::{MintConfig, MintDeps, MintPorts, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("token-mint");
    let reader = EnvReader::new(&ProcessEnv);
    let config = or_exit(MintConfig::from_env(&reader));
    let clock: SharedClock = Arc::new(SystemClock);
    let namespace = shared::telemetry::namespace(&reader);
    let recorder = Recorder::new(namespace, "token-mint", Arc::new(StdoutSink), clock.clone());
    let sdk = shared::aws::load().await;
    let secrets = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    ));
    let replay = config.table_name.as_ref().map(|table| {
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        Arc::new(DynamoStore::new(client, table, clock.clone())) as Arc<dyn RecordStore>
    });
    let ports = MintPorts {
        secrets,
        replay,
        clock,
        recorder,
    };
    let deps = MintDeps::build(config, ports);
    lambda_http::run(lambda_http::service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(req, deps).await) }
    }))
    .await
}
