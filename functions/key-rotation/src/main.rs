//! The key rotation Lambda: builds its dependencies once, then handles scheduled events and
//! Secrets Manager rotation steps.
#![forbid(unsafe_code)]

use key_rotation::{RotationConfig, RotationDeps, RotationPorts, handle};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::entry::Entry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let entry = Entry::start("key-rotation").await;
    let config = entry.config(RotationConfig::from_env);
    let ports = RotationPorts {
        secrets: entry.secrets(),
        clock: entry.clock(),
        recorder: entry.recorder(),
    };
    let deps = RotationDeps::build(config, ports);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move { handle(event.payload, deps).await }
    }))
    .await
}
