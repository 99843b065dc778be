//! What every emulator test needs: a local world on moto, the template, the emulator, the events.
#![allow(dead_code)]

use std::path::PathBuf;

use lambda_emu::{Emulator, LocalWorld, Template, resign};
use serde_json::Value;

/// One harness at a time in this binary: the local world's secrets have fixed names on the one
/// moto server, so two worlds at once would overwrite each other's keys.
static ONE_WORLD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Harness {
    pub world: LocalWorld,
    pub template: Template,
    rie: PathBuf,
    root: PathBuf,
    bootstraps: PathBuf,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Harness {
    /// A devstack on moto (a table of its own) and the emulator from the venv. Fails loudly when
    /// moto, the venv or a bootstrap is missing: this tier never skips.
    pub async fn start() -> Self {
        let turn = ONE_WORLD_AT_A_TIME.lock().await;
        let root = lambda_emu::workspace_root();
        let template = Template::load(&root.join("template.yaml")).expect("template.yaml");
        let rie = lambda_emu::find_rie(&root.join(".venv")).expect("the Lambda emulator");
        let table = format!("emu-{}", uuid::Uuid::new_v4().simple());
        let world = LocalWorld::start(&table).await.expect("a devstack on moto");
        Self {
            world,
            template,
            rie,
            root,
            bootstraps: lambda_emu::bootstraps_beside_current_exe()
                .expect("the bootstraps' folder"),
            _turn: turn,
        }
    }

    /// The function `logical_id` under the emulator, configured as the template says.
    pub fn function(&self, logical_id: &str) -> Emulator {
        let spec = self
            .template
            .function(logical_id, &self.world.refs(&self.template))
            .unwrap_or_else(|e| panic!("{logical_id}: {e}"));
        assert_eq!(spec.handler, "bootstrap");
        assert_eq!(spec.runtime, "provided.al2023");
        let bootstrap = self.bootstraps.join(&spec.binary);
        Emulator::start(&self.rie, &bootstrap, &spec, &self.world.extra_env())
            .unwrap_or_else(|e| panic!("{logical_id}: {e}"))
    }

    /// The function `logical_id` as the template configures it, and its bootstrap.
    pub fn spec(&self, logical_id: &str) -> (lambda_emu::FunctionSpec, PathBuf) {
        let spec = self
            .template
            .function(logical_id, &self.world.refs(&self.template))
            .unwrap_or_else(|e| panic!("{logical_id}: {e}"));
        let bootstrap = self.bootstraps.join(&spec.binary);
        (spec, bootstrap)
    }

    /// The function `logical_id` as the template configures it, with `vars` set on top (e.g.
    /// Lambda's `AWS_LAMBDA_LOG_LEVEL`).
    pub fn function_with_env(&self, logical_id: &str, vars: &[(&str, &str)]) -> Emulator {
        let mut spec = self
            .template
            .function(logical_id, &self.world.refs(&self.template))
            .unwrap_or_else(|e| panic!("{logical_id}: {e}"));
        for (k, v) in vars {
            spec.env.insert((*k).to_owned(), (*v).to_owned());
        }
        let bootstrap = self.bootstraps.join(&spec.binary);
        Emulator::start(&self.rie, &bootstrap, &spec, &self.world.extra_env())
            .unwrap_or_else(|e| panic!("{logical_id}: {e}"))
    }

    /// An event file, as it is.
    pub fn event(&self, name: &str) -> Value {
        lambda_emu::read_event(&self.root.join("events").join(name)).expect("event file")
    }

    /// An API-key event file signed afresh with the dev key. Each call signs at a later second
    /// than the one before (now plus a counter, well inside the ±300 s window), as two real
    /// requests would, so that the same request signed twice is not a replay.
    pub fn signed(&self, mut event: Value) -> Value {
        static LATER: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let ts = now_secs() + LATER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (id, secret) = self.world.api_key().unwrap();
        resign::sign_request(&mut event, &id, &secret, ts).unwrap();
        event
    }

    /// A webhook event signed afresh with the dev webhook secret.
    pub fn webhook(&self, mut event: Value) -> Value {
        let secret = self.world.webhook_secret().unwrap();
        resign::sign_webhook(&mut event, &secret, now_secs()).unwrap();
        event
    }

    /// The JSON document at `url` (the devstack's or the platform simulator's), which must
    /// answer 2xx.
    pub async fn get_json(&self, url: &str) -> Value {
        self.world
            .client()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Invokes and returns the function's answer, failing on a function error (which the emulator
/// reports with HTTP 200 and an `errorType` body).
pub async fn invoke(f: &Emulator, event: &Value) -> Value {
    let answer = f.invoke(event).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        answer.get("errorType").is_none(),
        "function error: {answer}\n--- output ---\n{}",
        f.output()
    );
    answer
}

/// The status code of an API Gateway v2 answer.
pub fn status(answer: &Value) -> u64 {
    answer["statusCode"].as_u64().expect("statusCode")
}

/// The JSON body of an API Gateway v2 answer.
pub fn body(answer: &Value) -> Value {
    let text = answer["body"].as_str().unwrap_or("");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {answer}"))
}

/// A header of an API Gateway v2 answer.
pub fn header<'a>(answer: &'a Value, name: &str) -> Option<&'a str> {
    answer["headers"][name].as_str()
}

/// An event for `method path` made from `event` (path and route changed, signature to redo).
pub fn with_path(mut event: Value, path: &str) -> Value {
    event["rawPath"] = Value::String(path.to_owned());
    event["requestContext"]["http"]["path"] = Value::String(path.to_owned());
    event
}
