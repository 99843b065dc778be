//! Running the real `opsctl` binary on a temporary data directory, and reading what it wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use secrecy::ExposeSecret;
use shared::clock::{Clock, SystemClock, Timestamp};
use shared::keys::{DEFAULT_KEY_SET_SECRET, KeySet};
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretName, SecretSource, SecretWriter, Stage, VersionId};

/// The key settings `opsctl` reads; the tests start from none of them set.
const KEY_VARS: [&str; 7] = [
    "KEY_SET_SECRET_NAME",
    "TOKEN_LIFETIME_SECONDS",
    "CLOCK_SKEW_SECONDS",
    "JWKS_MAX_AGE_SECONDS",
    "KEY_SET_CACHE_SECONDS",
    "ROTATION_PERIOD_SECONDS",
    "ROTATION_LEAD_SECONDS",
];

/// Other variables `opsctl` reads (the API key registry, the secret `sign` examples use); the
/// tests start from none of them set either.
const OTHER_VARS: [&str; 2] = ["API_KEYS_SECRET_NAME", "OPSCTL_API_SECRET"];

/// The default rotation lead (key-set cache TTL + JWKS max-age + clock skew).
pub const DEFAULT_LEAD_SECS: u64 = 660;

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the run succeeded and returns it.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "opsctl failed: {self:#?}");
        self
    }

    /// Asserts the run failed and returns it.
    pub fn failed(self) -> Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "opsctl should have failed: {self:#?}"
        );
        self
    }

    /// Everything it printed.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `opsctl --data-dir <data_dir> <args>` with the key settings of `env` only.
pub fn opsctl_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsctl"));
    cmd.arg("--data-dir").arg(data_dir).args(args);
    for var in KEY_VARS.into_iter().chain(OTHER_VARS) {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("opsctl runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Runs `opsctl --data-dir <data_dir> <args>` with the default key settings.
pub fn opsctl(data_dir: &Path, args: &[&str]) -> Run {
    opsctl_env(data_dir, args, &[])
}

/// `keys list --json`, parsed.
pub fn list_json(data_dir: &Path, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let run = opsctl_env(data_dir, &["keys", "list", "--json"], env).ok();
    serde_json::from_str(&run.stdout).expect("keys list --json prints a JSON array")
}

/// The keys of `list` in `state`, by kid.
pub fn kids_in(list: &[serde_json::Value], state: &str) -> Vec<String> {
    list.iter()
        .filter(|k| k["state"] == state)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A timestamp field of a listed key.
pub fn time_of(key: &serde_json::Value, field: &str) -> Timestamp {
    Timestamp::parse_rfc3339(key[field].as_str().unwrap()).unwrap()
}

/// The wall clock, as the binary reads it.
pub fn now() -> Timestamp {
    SystemClock.now()
}

/// A single-threaded runtime for the async checks of a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn files(data_dir: &Path) -> (FileSecrets, SecretName) {
    let secrets = FileSecrets::open(data_dir, Arc::new(SystemClock)).unwrap();
    (secrets, SecretName::new(DEFAULT_KEY_SET_SECRET).unwrap())
}

/// The version of the local secret `name` carrying `AWSCURRENT`, if the secret exists.
pub fn secret_version(data_dir: &Path, name: &str) -> Option<VersionId> {
    let secrets = FileSecrets::open(data_dir, Arc::new(SystemClock)).unwrap();
    let name = SecretName::new(name).unwrap();
    let stages = runtime().block_on(secrets.stages(&name)).ok()?;
    stages.with(Stage::Current).cloned()
}

/// The version of the local key set secret carrying `AWSCURRENT`.
pub fn current_version(data_dir: &Path) -> VersionId {
    let (secrets, name) = files(data_dir);
    let stages = runtime().block_on(secrets.stages(&name)).unwrap();
    stages.with(Stage::Current).unwrap().clone()
}

/// The local key set document (private keys included: for checking they never leak).
pub fn stored_key_set(data_dir: &Path) -> KeySet {
    let (secrets, name) = files(data_dir);
    let current = runtime().block_on(secrets.current(&name)).unwrap();
    KeySet::parse(current.value.expose_secret()).unwrap()
}

/// A key made by `api-keys create --json`.
#[derive(Debug)]
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
    /// Everything it printed.
    pub run: Run,
    /// The JSON object it printed.
    pub json: serde_json::Value,
}

/// `opsctl api-keys create --json <args>` (with `env`), which must succeed.
pub fn create_key(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CreatedKey {
    let mut all = vec!["api-keys", "create", "--json"];
    all.extend_from_slice(args);
    let run = opsctl_env(data_dir, &all, env).ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON object");
    CreatedKey {
        id: json["id"].as_str().unwrap().to_owned(),
        secret: json["secret"].as_str().unwrap().to_owned(),
        run,
        json,
    }
}

/// `opsctl api-keys list --json` (with `env`), parsed.
pub fn api_keys_json(data_dir: &Path, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let run = opsctl_env(data_dir, &["api-keys", "list", "--json"], env).ok();
    serde_json::from_str(&run.stdout).expect("api-keys list --json prints a JSON array")
}

/// `opsctl sign <args>` with the secret in `OPSCTL_API_SECRET`.
pub fn sign_env(data_dir: &Path, secret: &str, args: &[&str]) -> Run {
    let mut all = vec!["sign", "--secret-env", "OPSCTL_API_SECRET"];
    all.extend_from_slice(args);
    opsctl_env(data_dir, &all, &[("OPSCTL_API_SECRET", secret)])
}
