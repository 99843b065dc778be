//! Shared set-up of the contract suites: clocks, a data directory, and the moto endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shared::clock::{ManualClock, SharedClock, Timestamp};

/// A manual clock at a fixed, realistic instant (2026-11-21T12:00:00Z).
pub fn clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    (c.clone(), Arc::new(c))
}

/// The AWS SDK configuration for the moto server `make test` starts. Fails loudly when moto is not
/// there: the production adapters are part of the contract and are never skipped.
pub async fn moto() -> shared::aws::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the moto server on 127.0.0.1 (run the suites with `make test`), got {endpoint:?}"
    );
    shared::aws::load().await
}

/// A name unique to one test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
