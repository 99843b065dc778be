//! Starting the devstack binary as `make dev` does, on a free port and a private data directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running devstack; killed when dropped.
pub struct Devstack {
    child: Child,
    /// The parsed ready line.
    pub ready: serde_json::Value,
}

impl Drop for Devstack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Devstack {
    /// The API's base URL.
    pub fn api(&self) -> String {
        self.ready["api"].as_str().unwrap().to_owned()
    }

    /// The local CA certificate file the ready line names.
    pub fn ca(&self) -> String {
        self.ready["ca"].as_str().unwrap().to_owned()
    }

    /// An HTTPS-only client trusting the stack's local CA, as a developer's would be told to.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.ca()).unwrap();
        reqwest::Client::builder()
            .https_only(true)
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .build()
            .unwrap()
    }

    /// The dev credentials file, parsed.
    pub fn credentials(&self) -> serde_json::Value {
        let path = self.ready["credentials"].as_str().unwrap();
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

/// Starts the devstack on 127.0.0.1:0 with `data_dir` and waits for its ready line.
pub fn start(data_dir: &std::path::Path) -> Devstack {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devstack"));
    cmd.args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL");
    spawn(cmd)
}

/// Starts the devstack on 127.0.0.1:0 with `data_dir` and extra flags, and waits for its ready line.
pub fn start_with(data_dir: &std::path::Path, args: &[&str]) -> Devstack {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devstack"));
    cmd.args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL");
    spawn(cmd)
}

/// Starts the devstack on 127.0.0.1:0 with `data_dir` and extra environment settings.
pub fn start_with_env(data_dir: &std::path::Path, vars: &[(&str, &str)]) -> Devstack {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devstack"));
    cmd.args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(vars.iter().copied());
    spawn(cmd)
}

/// Starts the devstack with `--aws` against the moto server `make test` runs, on a fresh table and
/// fresh secret names. Fails loudly when moto is not there.
pub fn start_on_moto(data_dir: &std::path::Path) -> Devstack {
    test_support::moto_endpoint();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devstack"));
    cmd.args(["--port", "0", "--aws", "--data-dir"])
        .arg(data_dir)
        .args(["--table-name", &format!("devstack-{run}")])
        .env(
            "KEY_SET_SECRET_NAME",
            format!("devstack-{run}/signing-keys"),
        )
        .env("API_KEYS_SECRET_NAME", format!("devstack-{run}/api-keys"));
    spawn(cmd)
}

fn spawn(mut cmd: Command) -> Devstack {
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // The ready line is the first line on standard output (logs go to standard error), so a
    // script can read exactly one line.
    let line = lines
        .next()
        .expect("devstack exited before it was ready")
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the first line is not the ready line ({e}): {line}"));
    assert_eq!(
        ready["event"], "ready",
        "the first line is not the ready line: {line}"
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Devstack { child, ready }
}
