//! The integration suites of this crate, in one binary: each test binary links the whole
//! dependency graph again, so the suites are modules of one (the log capture, which needs a
//! process of its own, is the only other binary). A suite that needs an optional adapter is
//! compiled when its features are on (`make test` turns every feature on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "embedded")]
mod ecies_interop;
#[cfg(all(feature = "embedded", feature = "dynamodb"))]
mod idempotency;
#[cfg(feature = "embedded")]
mod pii_protection;
#[cfg(all(feature = "platform", feature = "http"))]
mod platform_client;
#[cfg(feature = "embedded")]
mod request_signing;
mod rotation_simulation;
#[cfg(feature = "secretsmanager")]
mod sdk_trust;
#[cfg(all(feature = "embedded", feature = "secretsmanager"))]
mod secrets_contract;
#[cfg(all(feature = "embedded", feature = "dynamodb"))]
mod store_contract;
