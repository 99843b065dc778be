//! The errors of `opsctl`: one line each, naming what to do, never carrying secret material.

use std::path::PathBuf;

use shared::config::ConfigError;
use shared::keys::KeySourceError;
use shared::keys::policy::RevokeError;
use shared::secrets::{SecretName, SecretsError};

/// Exit code of a configuration error, as `shared::config::or_exit` uses (`EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code of every other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key setting in the environment is invalid (the message names the variable).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local data directory cannot hold secrets.
    #[error("cannot use the data directory {} for secrets", path.display())]
    DataDir {
        /// The `--data-dir`.
        path: PathBuf,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// The argument of `keys revoke` is not a kid.
    #[error(
        "{input:?} is not a key id: a kid is the 43-character base64url thumbprint that `opsctl keys list` shows"
    )]
    MalformedKid {
        /// What was given (shortened).
        input: String,
    },
    /// The policy refused the revocation (unknown kid, already revoked).
    #[error("cannot revoke: {0}")]
    Revoke(RevokeError),
    /// Someone wrote the key set between this command's read and its write.
    #[error(
        "the key set {secret} was changed by someone else (another operator or the rotation function) while this command ran; nothing was written, run the command again"
    )]
    Conflict {
        /// The key set secret.
        secret: SecretName,
    },
    /// Another writer replaced the key set right after this command saved it, without this
    /// command's change: the change is not in effect.
    #[error(
        "the key set {secret} was overwritten by a concurrent write just after this command saved it, and its change is not in effect; run the command again"
    )]
    Overwritten {
        /// The key set secret.
        secret: SecretName,
    },
    /// The key set could not be read or written.
    #[error("cannot {action} the key set {secret}")]
    KeySet {
        /// `read` or `write`.
        action: &'static str,
        /// The key set secret.
        secret: SecretName,
        /// Why.
        #[source]
        source: KeySourceError,
    },
    /// The API key registry secret could not be read or written.
    #[error("cannot {action} the API key registry {secret}")]
    Registry {
        /// `read`, `write` or `read back`.
        action: &'static str,
        /// The registry secret.
        secret: SecretName,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// The API key registry secret holds something that is not a registry document.
    #[error(
        "the API key registry {secret} is not a valid document ({detail}); nothing was written: fix the secret or restore its previous version"
    )]
    MalformedRegistry {
        /// The registry secret.
        secret: SecretName,
        /// What is wrong (never the content).
        detail: String,
    },
    /// Someone wrote the API key registry between this command's read and its write.
    #[error(
        "the API key registry {secret} was changed by someone else while this command ran; nothing was written, run the command again"
    )]
    RegistryConflict {
        /// The registry secret.
        secret: SecretName,
    },
    /// Another writer replaced the API key registry right after this command saved it.
    #[error(
        "the API key registry {secret} was overwritten by a concurrent write just after this command saved it, and its change is not in effect; run the command again"
    )]
    RegistryOverwritten {
        /// The registry secret.
        secret: SecretName,
    },
    /// An argument that should be an API key id is not one.
    #[error(
        "{input} is not an API key id: an id is `pk_` followed by 16 to 64 characters of A-Z a-z 0-9 _ -, as `opsctl api-keys list` shows it"
    )]
    MalformedApiKeyId {
        /// What was given, quoted and shortened (or a placeholder if it looked like a secret).
        input: String,
    },
    /// `api-keys revoke` of an id the registry does not have.
    #[error("cannot revoke: no API key {id} in the registry {secret}")]
    UnknownApiKey {
        /// The id.
        id: String,
        /// The registry secret.
        secret: SecretName,
    },
    /// `api-keys revoke` of a key already revoked.
    #[error("cannot revoke: API key {id} is already revoked (since {revoked_at})")]
    ApiKeyAlreadyRevoked {
        /// The id.
        id: String,
        /// When it was revoked (`unknown` if the registry does not say).
        revoked_at: String,
    },
    /// A command-line value the command refuses (the message says what is expected).
    #[error("{flag}: {problem}")]
    InvalidArgument {
        /// The flag, e.g. `--allow-ip`.
        flag: &'static str,
        /// What is wrong and what is expected (never a secret).
        problem: String,
    },
    /// `sign --secret-env NAME` with NAME unset or empty.
    #[error(
        "the environment variable {name} is not set or is empty: put the API key's secret there first (e.g. `read -rs {name} && export {name}`), or use --secret-file"
    )]
    SecretEnvUnset {
        /// The variable's name.
        name: String,
    },
    /// A file `sign` needs could not be read.
    #[error("cannot read the {what} file {}", path.display())]
    ReadFile {
        /// `secret` or `body`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Stdout or stderr is gone.
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    /// The audit could not run (an unreadable file, a malformed credentials document).
    #[error("audit: {0}")]
    Audit(String),
    /// The audit ran and some observable items failed (the report says which).
    #[error("audit: {failed} observable item(s) failed")]
    AuditFailed {
        /// How many.
        failed: usize,
    },
}

impl Error {
    /// A key-set error while doing `action`, with conflicts turned into their own message.
    pub(crate) fn key_set(action: &'static str, secret: &SecretName, e: KeySourceError) -> Self {
        match e {
            KeySourceError::Conflict => Self::Conflict {
                secret: secret.clone(),
            },
            source => Self::KeySet {
                action,
                secret: secret.clone(),
                source,
            },
        }
    }

    /// A registry error while doing `action`, with conflicts turned into their own message.
    pub(crate) fn registry(action: &'static str, secret: &SecretName, e: SecretsError) -> Self {
        match e {
            SecretsError::CurrentMoved(_) | SecretsError::AlreadyExists(_) => {
                Self::RegistryConflict {
                    secret: secret.clone(),
                }
            }
            source => Self::Registry {
                action,
                secret: secret.clone(),
                source,
            },
        }
    }

    /// An invalid value of `flag`.
    pub(crate) fn invalid(flag: &'static str, problem: impl Into<String>) -> Self {
        Self::InvalidArgument {
            flag,
            problem: problem.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    }

    /// The message with its causes, on one line (`a: b: c`), each cause once.
    pub fn report(&self) -> String {
        shared::error::chain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_each_cause_once_on_one_line() {
        let io = std::io::Error::other("connection refused\nby peer");
        let e = Error::key_set(
            "read",
            &SecretName::new("a/b").unwrap(),
            KeySourceError::Secrets(SecretsError::Unavailable(Box::new(io))),
        );
        assert_eq!(
            e.report(),
            "cannot read the key set a/b: secrets store unavailable: connection refused by peer"
        );
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn a_conflict_tells_the_operator_to_retry() {
        let e = Error::key_set(
            "write",
            &SecretName::new("a/b").unwrap(),
            KeySourceError::Conflict,
        );
        assert!(
            e.report().contains("run the command again"),
            "{}",
            e.report()
        );
    }

    #[test]
    fn a_configuration_error_keeps_its_message_and_exits_with_ex_config() {
        let e = Error::from(ConfigError::new("TOKEN_LIFETIME_SECONDS", "is bad"));
        assert_eq!(
            e.report(),
            "configuration error: TOKEN_LIFETIME_SECONDS is bad"
        );
        assert_eq!(e.exit_code(), EXIT_CONFIG);
    }
}
