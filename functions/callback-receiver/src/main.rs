//! The callback receiver Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use std::sync::Arc;

use callback_receiver::{CallbackConfig, CallbackDeps, CallbackPorts, StdoutEventSink};
use shared::entry::{Entry, built, serve_http};

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::run(async {
        let entry = Entry::start("callback-receiver").await;
        let config = entry.config(CallbackConfig::from_env);
        let table = entry.config(|r| r.required("TABLE_NAME"));
        let ports = CallbackPorts {
            secrets: entry.secrets(),
            store: entry.table(&table),
            handlers: callback_receiver::default_handlers(Arc::new(StdoutEventSink)),
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        serve_http(built(CallbackDeps::build(config, ports))).await
    })
}
