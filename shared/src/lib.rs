//! The common library of the partner bundle: domain types, ports and their adapters, crypto,
//! authentication, telemetry and the error model shared by every Lambda function.
//!
//! Cargo features keep each function's binary to what it uses: `http` (API Gateway responses),
//! `dynamodb` and `secretsmanager` (production adapters, each pulling only its AWS client) and
//! `embedded` (the SQLite store and file secrets of local mode).
#![forbid(unsafe_code)]

#[cfg(feature = "http")]
pub mod apigw;
pub mod auth;
#[cfg(any(feature = "dynamodb", feature = "secretsmanager"))]
pub mod aws;
pub mod cache;
pub mod clock;
pub mod config;
pub mod due_queue;
/// ECIES for CAK encryption: the `cak-ecies` crate (built apart so that it keeps full
/// optimisation in the size-optimised release profile).
pub use cak_ecies as ecies;
#[cfg(any(feature = "dynamodb", feature = "secretsmanager"))]
pub mod entry;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod idempotency;
pub mod issuance;
pub mod keys;
pub mod pii;
#[cfg(feature = "platform")]
pub mod platform;
#[cfg(feature = "programs")]
pub mod programs;
pub mod redact;
pub mod secrets;
pub mod store;
pub mod telemetry;
