//! The integration suites of this crate, in one binary: each test binary links the whole
//! dependency graph again, so the suites are modules of one (the log captures, which need a
//! process of their own, are the only other binaries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callback_receiver;
mod common;
mod issue;
mod jwks;
mod key_rotation;
mod managed_instances;
mod openapi;
mod status_poller;
mod template_coverage;
mod token_mint;
