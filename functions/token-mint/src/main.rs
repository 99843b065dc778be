//! The token mint Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use shared::entry::{Entry, serve_http};
use shared::store::RecordStore;
use token_mint::{MintConfig, MintDeps, MintPorts};

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::run(async {
        let entry = Entry::start("token-mint").await;
        let config = entry.config(MintConfig::from_env);
        let ports = MintPorts {
            secrets: entry.secrets(),
            // The server route's replay cache, where that route is deployed.
            replay: (config.table_name.as_deref())
                .map(|t| entry.table(t) as std::sync::Arc<dyn RecordStore>),
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        serve_http(MintDeps::build(config, ports)).await
    })
}
