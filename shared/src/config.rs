//! Typed configuration, read once at start from the environment.
//!
//! Every function builds its configuration with an [`EnvReader`] before it serves anything; a
//! missing or malformed variable stops the process with one line that names the variable and what
//! is wrong with it ([`ConfigError`]). Reading goes through the [`Env`] trait so tests describe an
//! environment without touching the process's own.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var} {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with it, in words (never its value when the value may be secret).
    pub problem: String,
}

impl ConfigError {
    /// A problem with `var`.
    pub fn new(var: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            problem: problem.into(),
        }
    }
}

/// Where variables come from.
pub trait Env {
    /// The variable's value, if it is set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables (tests, the devstack's per-function environments).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// An environment with these variables.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Typed reads over an [`Env`]. Empty values count as unset.
pub struct EnvReader<'a> {
    env: &'a dyn Env,
}

impl<'a> EnvReader<'a> {
    /// A reader over `env`.
    pub fn new(env: &'a dyn Env) -> Self {
        Self { env }
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.env
            .var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or an error naming the variable.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// The value parsed as `T`, or `default` when unset.
    pub fn parsed_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(name, format!("is not valid ({e}): {raw:?}"))),
        }
    }

    /// A duration given in whole seconds, with a default and an inclusive range.
    pub fn seconds(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parsed_or(name, default)?;
        if secs < min || secs > max {
            return Err(ConfigError::new(
                name,
                format!("must be between {min} and {max} seconds, got {secs}"),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    /// A boolean: `true/false`, `1/0`, `yes/no`, `on/off`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(
                    name,
                    format!("must be true or false, got {v:?}"),
                )),
            },
        }
    }

    /// A comma-separated list (blank entries dropped).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Where records and secrets live: AWS (production, or moto through `AWS_ENDPOINT_URL`) or the
/// embedded adapters under a local data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// DynamoDB table and Secrets Manager.
    Aws {
        /// The single table's name (`TABLE_NAME`).
        table_name: String,
    },
    /// SQLite file and 0600 secret files under `data_dir` (`DATA_DIR`).
    Embedded {
        /// The data directory (created if absent).
        data_dir: PathBuf,
    },
}

impl Backend {
    /// `BACKEND` = `aws` (default; needs `TABLE_NAME`) or `embedded` (needs `DATA_DIR`).
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        match r.optional("BACKEND").as_deref().unwrap_or("aws") {
            "aws" => Ok(Self::Aws {
                table_name: r.required("TABLE_NAME")?,
            }),
            "embedded" => Ok(Self::Embedded {
                data_dir: PathBuf::from(r.required("DATA_DIR")?),
            }),
            other => Err(ConfigError::new(
                "BACKEND",
                format!("must be \"aws\" or \"embedded\", got {other:?}"),
            )),
        }
    }
}

/// Stops the process with one clear line when start-up configuration is invalid.
///
/// This is the single place where configuration errors end the process; `main` functions call it
/// on their config result before anything else runs.
pub fn or_exit<T>(result: Result<T, ConfigError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(78) // EX_CONFIG
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_missing_required_variable_is_named_in_the_error() {
        let e = env(&[]);
        let err = EnvReader::new(&e).required("TABLE_NAME").unwrap_err();
        assert_eq!(err.var, "TABLE_NAME");
        assert_eq!(
            err.to_string(),
            "configuration error: TABLE_NAME is required but not set"
        );
    }

    #[test]
    fn a_blank_variable_counts_as_unset() {
        let e = env(&[("TABLE_NAME", "  ")]);
        assert!(EnvReader::new(&e).required("TABLE_NAME").is_err());
    }

    #[test]
    fn a_malformed_number_is_reported_with_the_variable() {
        let e = env(&[("TOKEN_LIFETIME_SECONDS", "five")]);
        let err = EnvReader::new(&e)
            .seconds("TOKEN_LIFETIME_SECONDS", 300, 1, 300)
            .unwrap_err();
        assert_eq!(err.var, "TOKEN_LIFETIME_SECONDS");
        assert!(err.problem.contains("not valid"), "{err}");
    }

    #[test]
    fn a_duration_out_of_range_is_refused() {
        let e = env(&[("TOKEN_LIFETIME_SECONDS", "301")]);
        let err = EnvReader::new(&e)
            .seconds("TOKEN_LIFETIME_SECONDS", 300, 1, 300)
            .unwrap_err();
        assert!(err.problem.contains("between 1 and 300"), "{err}");
    }

    #[test]
    fn flags_accept_the_usual_spellings_and_refuse_others() {
        let e = env(&[("A", "Yes"), ("B", "off"), ("C", "maybe")]);
        let r = EnvReader::new(&e);
        assert!(r.flag("A", false).unwrap());
        assert!(!r.flag("B", true).unwrap());
        assert!(r.flag("C", true).is_err());
        assert!(r.flag("D", true).unwrap());
    }

    #[test]
    fn lists_split_on_commas_and_drop_blanks() {
        let e = env(&[("ORIGINS", "https://a.example, ,https://b.example")]);
        assert_eq!(
            EnvReader::new(&e).list("ORIGINS"),
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn backend_defaults_to_aws_and_needs_a_table() {
        let e = env(&[]);
        assert_eq!(
            Backend::from_env(&EnvReader::new(&e)).unwrap_err().var,
            "TABLE_NAME"
        );
        let e = env(&[("BACKEND", "embedded"), ("DATA_DIR", "/tmp/x")]);
        assert_eq!(
            Backend::from_env(&EnvReader::new(&e)).unwrap(),
            Backend::Embedded {
                data_dir: PathBuf::from("/tmp/x")
            }
        );
        let e = env(&[("BACKEND", "s3")]);
        assert_eq!(
            Backend::from_env(&EnvReader::new(&e)).unwrap_err().var,
            "BACKEND"
        );
    }
}
