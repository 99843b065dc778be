//! The command line: global flags and one subcommand group per concern. A new group (e.g.
//! `api-keys`, `sign`) is one more [`Command`] variant and one more module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::api_keys::ApiKeysCommand;
use crate::audit::AuditArgs;
use crate::keys::KeysCommand;
use crate::sign::SignArgs;

/// Operator commands for the partner bundle.
///
/// Key settings come from the same environment variables the functions read
/// (`KEY_SET_SECRET_NAME`, `TOKEN_LIFETIME_SECONDS`, `CLOCK_SKEW_SECONDS`, `JWKS_MAX_AGE_SECONDS`,
/// `KEY_SET_CACHE_SECONDS`, `ROTATION_PERIOD_SECONDS`, `ROTATION_LEAD_SECONDS`); the API key
/// registry is `API_KEYS_SECRET_NAME` (default `partner-bundle/api-keys`).
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
    /// API keys of the server-to-server routes: create, list, revoke.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Print the signed headers (X-Access-Key, X-Timestamp, X-Signature) of an API request.
    ///
    /// The secret comes from an environment variable (--secret-env NAME) or a file, never from
    /// the command line. Needs no access to the secrets store.
    Sign(SignArgs),
    /// Check a running stack (and its template and secrets) against the platform's security
    /// checklists, item by item; exits 1 when an observable item fails.
    Audit(Box<AuditArgs>),
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
    fn a_kid_that_starts_with_a_hyphen_is_revoked_not_taken_for_an_option() {
        // RFC 7638 thumbprints are base64url: one kid in 64 starts with '-'.
        let cli =
            Cli::try_parse_from(["opsctl", "keys", "revoke", "-E2dwlAeLuuC8Pp0dMO6xR"]).unwrap();
        match cli.command {
            Command::Keys(crate::keys::KeysCommand::Revoke { kid }) => {
                assert_eq!(kid, "-E2dwlAeLuuC8Pp0dMO6xR");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["opsctl", "keys", "list", "--data-dir", "/tmp/x", "--aws"])
            .unwrap();
        assert_eq!(cli.global.data_dir, PathBuf::from("/tmp/x"));
        assert!(cli.global.aws);
    }

    #[test]
    fn sign_needs_exactly_one_secret_source_and_at_most_one_body() {
        let base = [
            "opsctl",
            "sign",
            "--key-id",
            "pk_0123456789abcdef",
            "--method",
            "POST",
            "--path",
            "/v1/x",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert!(with(&[]).is_err(), "a secret source is required");
        assert!(with(&["--secret-env", "A", "--secret-file", "f"]).is_err());
        assert!(with(&["--secret-env", "A", "--body", "{}", "--body-file", "b"]).is_err());
        assert!(
            with(&["--secret", "sk_x"]).is_err(),
            "no plain secret argument"
        );
        let cli = with(&["--secret-env", "A", "--body", "-1", "--format", "curl"]).unwrap();
        let Command::Sign(args) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(args.body.as_deref(), Some("-1"));
    }

    #[test]
    fn the_read_only_type_is_spelt_as_in_the_registry() {
        let cli = Cli::try_parse_from([
            "opsctl",
            "api-keys",
            "create",
            "--type",
            "read_only",
            "--permission",
            "credentials:read",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::ApiKeys(ApiKeysCommand::Create {
                key_type: crate::api_keys::TypeArg::ReadOnly,
                ..
            })
        ));
    }

    #[test]
    fn the_data_dir_defaults_to_the_devstacks() {
        let cli = Cli::try_parse_from(["opsctl", "keys", "rotate"]).unwrap();
        assert_eq!(cli.global.data_dir, PathBuf::from(".devstack"));
        assert!(!cli.global.aws);
    }
}
