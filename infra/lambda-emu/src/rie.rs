//! One bootstrap under the Lambda Runtime Interface Emulator (the binary SAM runs inside its
//! container for `sam local invoke`), on loopback ports, stopped when dropped.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::EmuError;
use crate::template::FunctionSpec;

/// The emulator's invoke path (the same as `sam local start-lambda` serves).
const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// Where the SAM CLI wheel keeps the emulator, relative to a venv's `site-packages`.
const RIE_IN_SAMCLI: &str = "samcli/local/rapid/aws-lambda-rie-x86_64";

/// Finds the emulator: `$LAMBDA_RIE` if set, else inside the SAM CLI of the venv at `venv`.
pub fn find_rie(venv: &Path) -> Result<PathBuf, EmuError> {
    if let Some(p) = std::env::var_os("LAMBDA_RIE") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(EmuError::Missing(format!(
                "LAMBDA_RIE points to {}, which is not a file",
                p.display()
            )))
        };
    }
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).map_err(|_| {
        EmuError::Missing(format!(
            "no Python venv at {} (run `make venv`: it installs the SAM CLI, which carries the emulator)",
            venv.display()
        ))
    })?;
    for entry in entries.flatten() {
        let candidate = entry.path().join("site-packages").join(RIE_IN_SAMCLI);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(EmuError::Missing(format!(
        "the Lambda emulator is not in {} (run `make venv`)",
        venv.display()
    )))
}

/// Two distinct free loopback ports (both held while chosen, then released for the emulator to
/// bind right after).
fn free_ports() -> Result<(u16, u16), EmuError> {
    let io = |source| EmuError::Io {
        what: "finding free ports".into(),
        source,
    };
    let a = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let b = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok((
        a.local_addr().map_err(io)?.port(),
        b.local_addr().map_err(io)?.port(),
    ))
}

/// The environment Lambda itself gives every function, for `spec`.
pub(crate) fn lambda_env(spec: &FunctionSpec) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), spec.logical_id.clone());
    env.insert("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into());
    // Read by the emulator: the invocation deadline and the memory the context reports.
    env.insert(
        "AWS_LAMBDA_FUNCTION_TIMEOUT".into(),
        spec.timeout_secs.to_string(),
    );
    env.insert(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        spec.memory_mb.to_string(),
    );
    env.insert(
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{}", spec.logical_id),
    );
    env.insert("AWS_LAMBDA_LOG_STREAM_NAME".into(), "emulator".into());
    env.insert("AWS_EXECUTION_ENV".into(), "AWS_Lambda_rapid".into());
    env.insert("LAMBDA_TASK_ROOT".into(), "/var/task".into());
    env
}

/// A running emulator with one function's bootstrap.
pub struct Emulator {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<Vec<u8>>>,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut out) = into.lock() {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    });
}

impl Emulator {
    /// Starts `rie` with `bootstrap` as the function `spec` describes, with `spec.env`, Lambda's
    /// own variables and `extra` (e.g. `AWS_ENDPOINT_URL` and credentials for moto). Nothing of
    /// this process's environment leaks in but `PATH`.
    pub fn start(
        rie: &Path,
        bootstrap: &Path,
        spec: &FunctionSpec,
        extra: &BTreeMap<String, String>,
    ) -> Result<Self, EmuError> {
        if !bootstrap.is_file() {
            return Err(EmuError::Missing(format!(
                "no bootstrap at {} (`make bootstraps` builds the release ones, `cargo build --bins` the debug ones)",
                bootstrap.display()
            )));
        }
        let (api_port, runtime_port) = free_ports()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], api_port));
        // The emulator resets its sandbox by killing every process it can see (`kill(-1)`), as
        // it may inside a container. Outside one that would be every process of the user, so it
        // runs as the first process of a PID namespace of its own, where "every process" is
        // itself and the bootstrap; the namespace ends with it (`--kill-child`).
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
        ])
        .arg(rie)
        .arg("--runtime-interface-emulator-address")
        .arg(addr.to_string())
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{runtime_port}"))
        .arg(bootstrap)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(lambda_env(spec)).envs(&spec.env).envs(extra);
        let mut child = cmd.spawn().map_err(|source| EmuError::Io {
            what: format!(
                "starting {} in a PID namespace (unshare, from util-linux)",
                rie.display()
            ),
            source,
        })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            drain(out, Arc::clone(&output));
        }
        if let Some(err) = child.stderr.take() {
            drain(err, Arc::clone(&output));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| EmuError::Invoke(format!("could not build the HTTP client: {e}")))?;
        let mut emulator = Self {
            child,
            addr,
            output,
            timeout: Duration::from_secs(spec.timeout_secs + 10),
            http,
        };
        emulator.wait_until_listening()?;
        Ok(emulator)
    }

    fn wait_until_listening(&mut self) -> Result<(), EmuError> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EmuError::Invoke(format!(
                    "the emulator exited at start ({status}): {}",
                    self.output()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(EmuError::Invoke(format!(
            "the emulator did not listen on {} within 10 s",
            self.addr
        )))
    }

    /// Invokes the function with `event` and returns what it answered: its result, or the
    /// `{"errorType","errorMessage"}` of a function error (the emulator answers HTTP 200 for both).
    pub async fn invoke(&self, event: &Value) -> Result<Value, EmuError> {
        let url = format!("http://{}{INVOKE_PATH}", self.addr);
        let resp = self
            .http
            .post(url)
            .timeout(self.timeout)
            .json(event)
            .send()
            .await
            .map_err(|e| {
                EmuError::Invoke(format!("invoke failed: {e}; output: {}", self.output()))
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| EmuError::Invoke(format!("reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(EmuError::Invoke(format!(
                "the emulator answered HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            EmuError::Invoke(format!(
                "the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            ))
        })
    }

    /// Everything the emulator and the function wrote so far (stdout and stderr interleaved).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default()
    }

    /// The function's JSON log lines so far (the emulator's own lines are not JSON).
    pub fn json_lines(&self) -> Vec<Value> {
        self.output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The peak resident set (`VmHWM`, KiB) of the process running `bootstrap` under this
    /// emulator, read from `/proc`: the emulator's own report gives the configured memory size,
    /// not what the function used. `None` when the process is not found (e.g. it has exited).
    #[must_use]
    pub fn function_peak_rss_kib(&self, bootstrap: &Path) -> Option<u64> {
        let wanted = std::fs::canonicalize(bootstrap).ok()?;
        let pid = descendants(proc_pid(self.child.id())?)
            .into_iter()
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == wanted)
            })?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Stops the emulator and its function.
    pub fn stop(&mut self) {
        // SIGKILL to `unshare` (which ignores SIGTERM while it waits): `--kill-child` then kills
        // the emulator, the first process of the namespace, and the kernel ends the bootstrap.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pid `/proc` knows the process by whose pid is `pid` in this process's PID namespace.
/// They differ when this process runs in a PID namespace of its own that did not mount its own
/// `/proc` (as `infra/scripts/contained.sh` runs it): each process's `NSpid` lists its pid in
/// every namespace from `/proc`'s down to its own, and this process's own `NSpid` tells which
/// of those levels is ours.
fn proc_pid(pid: u32) -> Option<u32> {
    let level = ns_pids(&std::fs::read_to_string("/proc/self/status").ok()?).len();
    processes("status").find_map(|(candidate, status)| {
        let pids = ns_pids(&status);
        (level > 0 && pids.get(level - 1) == Some(&pid)).then_some(candidate)
    })
}

/// Every process `/proc` lists, with its `/proc/<pid>/<file>` (those that can be read).
fn processes(file: &'static str) -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path().join(file)).ok()?;
            Some((pid, text))
        })
}

/// The `NSpid` line of a `/proc/<pid>/status`: the pid in each namespace, outermost first.
fn ns_pids(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process below `root` (children, their children, …), from each process's parent in
/// `/proc/<pid>/stat` (pids as `/proc` gives them).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = processes("stat")
        .filter_map(|(pid, stat)| Some((pid, parent_in_stat(&stat)?)))
        .collect();
    let mut found = vec![root];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        at += 1;
    }
    found.remove(0);
    found
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the command, which is in
/// parentheses and may itself hold spaces and parentheses.
fn parent_in_stat(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_past_a_command_name_holding_parentheses() {
        assert_eq!(parent_in_stat("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("garbage"), None);
    }

    #[test]
    fn the_pids_of_every_namespace_are_read_outermost_first() {
        assert_eq!(
            ns_pids("Name:\tx\nNSpid:\t11738\t40\t1\nVmHWM:\t5 kB\n"),
            vec![11738, 40, 1]
        );
        assert!(ns_pids("Name:\tx\n").is_empty());
    }

    #[test]
    fn a_child_is_found_in_proc_by_the_pid_this_process_knows_it_by() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let stat =
            proc_pid(child.id()).map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")));
        child.kill().unwrap();
        child.wait().unwrap();
        let stat = stat.expect("the child is in /proc").unwrap();
        assert!(stat.contains("(sleep)"), "{stat}");
    }

    #[test]
    fn this_process_is_among_the_descendants_of_its_parent() {
        let me = proc_pid(std::process::id()).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let parent = parent_in_stat(&stat).unwrap();
        assert!(descendants(parent).contains(&me));
    }
}
