//! The command line: global flags and one subcommand group per concern. A new group (e.g.
//! `api-keys`, `sign`) is one more [`Command`] variant and one more module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::keys::KeysCommand;

/// Operator commands for the partner bundle.
///
/// Key settings come from the same environment variables the functions read
/// (`KEY_SET_SECRET_NAME`, `TOKEN_LIFETIME_SECONDS`, `CLOCK_SKEW_SECONDS`, `JWKS_MAX_AGE_SECONDS`,
/// `KEY_SET_CACHE_SECONDS`, `ROTATION_PERIOD_SECONDS`, `ROTATION_LEAD_SECONDS`).
#[derive(Debug, Parser)]
#[command(name = "opsctl", version)]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the commands find the bundle's state.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The devstack's data directory (local secrets live in its secrets/ folder).
    #[arg(
        long,
        global = true,
        value_name = "DATA_DIR",
        default_value = ".devstack"
    )]
    pub data_dir: PathBuf,
    /// Use AWS Secrets Manager (at AWS_ENDPOINT_URL when set, e.g. moto) instead of the local
    /// data directory.
    #[arg(long, global = true)]
    pub aws: bool,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Partner JWT signing keys: list, rotate, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["opsctl", "keys", "list", "--data-dir", "/tmp/x", "--aws"])
            .unwrap();
        assert_eq!(cli.global.data_dir, PathBuf::from("/tmp/x"));
        assert!(cli.global.aws);
    }

    #[test]
    fn the_data_dir_defaults_to_the_devstacks() {
        let cli = Cli::try_parse_from(["opsctl", "keys", "rotate"]).unwrap();
        assert_eq!(cli.global.data_dir, PathBuf::from(".devstack"));
        assert!(!cli.global.aws);
    }
}
