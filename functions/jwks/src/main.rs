//! The JWKS Lambda: builds its dependencies once, then serves API Gateway requests.
#![forbid(unsafe_code)]

use jwks::{JwksConfig, JwksDeps, JwksPorts};
use shared::entry::{Entry, serve_http};

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::run(async {
        let entry = Entry::start("jwks").await;
        let config = entry.config(JwksConfig::from_env);
        let ports = JwksPorts {
            secrets: entry.secrets(),
            clock: entry.clock(),
            recorder: entry.recorder(),
        };
        serve_http(JwksDeps::build(config, ports)).await
    })
}
