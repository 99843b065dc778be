//! The integration suites of this crate, in one binary: each test binary links the whole
//! dependency graph again, so the suites are modules of one (the log captures, which need a
//! process of their own, are the only other binaries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod deadline;
mod faults;
mod lifecycle;
mod overlap;
mod shards;
