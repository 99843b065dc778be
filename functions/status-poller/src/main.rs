//! The status poller Lambda: builds its dependencies once, then runs one poll per scheduled event
//! within the invocation's deadline.
#![forbid(unsafe_code)]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::entry::{Entry, built};
use status_poller::{PollerConfig, PollerDeps, PollerPorts, SERVICE, handle, lambda_deadline};

fn main() -> Result<(), lambda_runtime::Error> {
    shared::entry::run(async {
        let entry = Entry::start(SERVICE).await;
        let config = entry.config(PollerConfig::from_env);
        let store = entry.table(&entry.config(|r| r.required("TABLE_NAME")));
        let ports = PollerPorts {
            secrets: entry.secrets(),
            store: store.clone(),
            due: store,
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        let deps = built(PollerDeps::build(config, ports));
        // Concurrent invocations on Lambda Managed Instances share the one set of dependencies
        // (see `shared::entry::serve_http`); one at a time elsewhere.
        let deps = std::sync::Arc::new(deps);
        lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
            let deps = std::sync::Arc::clone(&deps);
            async move {
                handle(
                    event.payload,
                    lambda_deadline(event.context.deadline),
                    &deps,
                )
                .await
            }
        }))
        .await
    })
}
