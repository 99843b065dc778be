//! The key rotation Lambda: builds its dependencies once, then handles scheduled events and
//! Secrets Manager rotation steps.
#![forbid(unsafe_code)]

use key_rotation::{RotationConfig, RotationDeps, RotationPorts, handle};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::entry::Entry;

fn main() -> Result<(), lambda_runtime::Error> {
    shared::entry::run(async {
        let entry = Entry::start("key-rotation").await;
        let config = entry.config(RotationConfig::from_env);
        let ports = RotationPorts {
            secrets: entry.secrets(),
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        let deps = RotationDeps::build(config, ports);
        // Concurrent invocations on Lambda Managed Instances share the one set of dependencies
        // (see `shared::entry::serve_http`); one at a time elsewhere.
        let deps = std::sync::Arc::new(deps);
        lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
            let deps = std::sync::Arc::clone(&deps);
            async move { handle(event.payload, &deps).await }
        }))
        .await
    })
}
