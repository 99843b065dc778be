//! The functions as Lambda runs them, without Docker: each function's `bootstrap` under the AWS
//! Lambda Runtime Interface Emulator (the binary inside the SAM CLI that `sam local invoke` runs in
//! its container), configured with the environment `template.yaml` gives it, invoked with the
//! files in `events/`, against DynamoDB and Secrets Manager at `AWS_ENDPOINT_URL` (moto) and the
//! platform simulator.
//!
//! Used two ways: by the emulator test tier (`tests/emulator`) and by `make invoke FN=… EVENT=…`
//! (the `lambda-emu` binary).
#![forbid(unsafe_code)]

pub mod concurrent;
pub mod resign;
pub mod rie;
pub mod template;
pub mod world;

use std::path::{Path, PathBuf};

pub use concurrent::{Batch, ConcurrentFunction};
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

/// The bootstrap of `binary` built in the same build as the running program (see
/// [`bootstraps_beside_current_exe`]): `make invoke` and `make bench` build `lambda-emu` together
/// with every function, one way, so a function is never rebuilt alone with other features.
///
/// # Errors
/// The running program's path cannot be read, or the bootstrap is not there (with the command
/// that builds it).
pub fn bootstrap(binary: &str) -> Result<PathBuf, EmuError> {
    let dir = bootstraps_beside_current_exe()
        .ok_or_else(|| EmuError::Invoke("cannot tell where lambda-emu runs from".into()))?;
    let path = dir.join(binary);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmuError::Invoke(format!(
            "no bootstrap at {}: `make invoke` and `make bench` build it (or `make bootstraps` for \
             the release ones)",
            path.display()
        )))
    }
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
