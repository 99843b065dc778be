//! The functions as Lambda runs them, without Docker: each function's `bootstrap` under the AWS
//! Lambda Runtime Interface Emulator (the binary inside the SAM CLI that `sam local invoke` runs in
//! its container), configured with the environment `template.yaml` gives it, invoked with the
//! files in `events/`, against DynamoDB and Secrets Manager at `AWS_ENDPOINT_URL` (moto) and the
//! platform simulator.
//!
//! Used two ways: by the emulator test tier (`tests/emulator`) and by `make invoke FN=… EVENT=…`
//! (the `lambda-emu` binary).
#![forbid(unsafe_code)]

pub mod resign;
pub mod rie;
pub mod template;
pub mod world;

use std::path::{Path, PathBuf};

pub use rie::{Emulator, find_rie};
pub use template::{FunctionSpec, Refs, Template};
pub use world::LocalWorld;

/// What can go wrong around an emulated invocation.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A tool or artefact is missing (the emulator, a bootstrap, moto).
    #[error("{0}")]
    Missing(String),
    /// The template cannot be read as needed.
    #[error("template: {0}")]
    Template(String),
    /// An event file cannot be used.
    #[error("event: {0}")]
    Event(String),
    /// The emulator or the invocation failed.
    #[error("{0}")]
    Invoke(String),
    /// The local world (devstack on moto) could not be prepared.
    #[error("local world: {0}")]
    World(String),
}

/// The workspace root (this crate lives in `infra/lambda-emu`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where release binaries are: `$CARGO_TARGET_DIR/release` or `<root>/target/release`.
pub fn release_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release")
}

/// The bootstraps of the profile the running program was built in: a test binary lives in
/// `<target>/<profile>/deps/`, the functions' binaries in `<target>/<profile>/`. The emulator tier
/// therefore runs the binaries `cargo test --workspace --all-targets` built beside it (the debug
/// profile in `make test`, which then needs no second, release build of every function), and the
/// release ones when the tier itself is built with `--release` (`make emulator PROFILE=release`).
/// `None` when the running program's path cannot be read.
pub fn bootstraps_beside_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// The release bootstrap of `binary` (built by `make bootstraps`).
pub fn bootstrap(root: &Path, binary: &str) -> PathBuf {
    release_dir(root).join(binary)
}

/// Reads an event file.
pub fn read_event(path: &Path) -> Result<serde_json::Value, EmuError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmuError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| EmuError::Event(format!("{} is not JSON: {e}", path.display())))
}
