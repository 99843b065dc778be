//! The issue Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use issue::{IssueConfig, IssueDeps, IssuePorts};
use shared::entry::{Entry, built, serve_http};

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::run(async {
        let entry = Entry::start("issue").await;
        let config = entry.config(IssueConfig::from_env);
        let table = entry.config(|r| r.required("TABLE_NAME"));
        let ports = IssuePorts {
            store: entry.table(&table),
            secrets: entry.secrets(),
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        serve_http(built(IssueDeps::build(config, ports))).await
    })
}
