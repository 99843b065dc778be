//! The operator CLI of the partner bundle.
//!
//! `main.rs` only parses the command line and maps errors to exit codes. Each command group is a
//! module ([`keys`], [`api_keys`], [`sign`], [`audit`]) whose commands are plain functions taking their
//! dependencies by reference (a [`shared::keys::KeySetStore`] or an [`api_keys::Registry`], the
//! settings, the instant to act at), so tests call them without a process, a clock or AWS.
#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::Arc;

pub mod api_keys;
pub mod audit;
pub mod backend;
pub mod cli;
pub mod error;
pub mod keys;
pub mod sign;

pub use cli::{Cli, Command, GlobalArgs};
pub use error::Error;

use shared::clock::{SharedClock, SystemClock};

/// Where a command writes: results to `out` (stdout), notes and warnings to `err` (stderr).
pub struct Io<'a> {
    /// Results: what a script would parse.
    pub out: &'a mut dyn Write,
    /// Notes and warnings for the operator.
    pub err: &'a mut dyn Write,
}

/// Runs one parsed command line against the system clock.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), Error> {
    let clock: SharedClock = Arc::new(SystemClock);
    match &cli.command {
        Command::Keys(cmd) => keys::run(cmd, &cli.global, clock, io).await,
        Command::ApiKeys(cmd) => api_keys::run(cmd, &cli.global, clock, io).await,
        Command::Sign(args) => sign::run(args, clock.now(), io),
        Command::Audit(args) => audit::run(args, &cli.global, clock, io).await,
    }
}
