//! The integration suites of this crate, in one binary: each test binary links the whole
//! dependency graph again, so the suites are modules of one (the log captures, which need a
//! process of their own, are the only other binaries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_keys_aws;
mod api_keys_local;
mod audit_live;
mod audit_state;
mod common;
mod keys_aws;
mod keys_local;
mod sign;
