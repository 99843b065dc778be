//! A function's bootstrap run as Lambda Managed Instances run it: one process, several
//! invocations at once. The AWS emulator hands out one invocation at a time, so this is a
//! Lambda Runtime API of its own (`/2018-06-01/runtime/invocation/next`, `…/response`,
//! `…/error`), plain HTTP on 127.0.0.1, with `AWS_LAMBDA_MAX_CONCURRENCY` set as Lambda sets it.
//!
//! [`ConcurrentFunction::invoke_all`] hands out a batch of events and holds back the
//! acknowledgement of every answer until the whole batch has been taken: a runtime that polls for
//! one invocation at a time cannot take the second event before its first answer is acknowledged,
//! so it stalls and the batch fails — the concurrency is proven, not assumed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::EmuError;
use crate::rie::lambda_env;
use crate::template::FunctionSpec;

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(String, Value)>,
    answers: HashMap<String, oneshot::Sender<Result<Value, Value>>>,
    /// Events handed out and not answered yet, and the most there ever were.
    in_flight: usize,
    max_in_flight: usize,
    /// Events of the current batch not handed out yet.
    untaken: usize,
}

struct Api {
    queue: Mutex<Queue>,
    arrived: Notify,
    all_taken: Notify,
    deadline: Duration,
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    loop {
        let notified = api.arrived.notified();
        let taken = api.queue.lock().ok().and_then(|mut q| {
            let item = q.waiting.pop_front()?;
            q.in_flight += 1;
            q.max_in_flight = q.max_in_flight.max(q.in_flight);
            q.untaken = q.untaken.saturating_sub(1);
            Some((item, q.untaken == 0))
        });
        if let Some(((id, event), last)) = taken {
            if last {
                api.all_taken.notify_waiters();
            }
            let deadline = std::time::SystemTime::now() + api.deadline;
            let ms = deadline
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("lambda-runtime-aws-request-id", id.clone()),
                ("lambda-runtime-deadline-ms", ms.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:000000000000:function:concurrent".to_owned(),
                ),
                ("lambda-runtime-trace-id", format!("Root=1-{id}")),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        notified.await;
    }
}

async fn answered(api: &Api, id: &str, answer: Result<Value, Value>) -> StatusCode {
    // Hold the acknowledgement until the whole batch is taken (see the module comment).
    loop {
        let notified = api.all_taken.notified();
        if api.queue.lock().map(|q| q.untaken == 0).unwrap_or(true) {
            break;
        }
        notified.await;
    }
    let sender = api.queue.lock().ok().and_then(|mut q| {
        q.in_flight = q.in_flight.saturating_sub(1);
        q.answers.remove(id)
    });
    if let Some(s) = sender {
        let _ = s.send(answer);
    }
    StatusCode::ACCEPTED
}

async fn response(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answered(&api, &id, Ok(value)).await
}

async fn error(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answered(&api, &id, Err(value)).await
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

/// A bootstrap serving several invocations at once against a Runtime API of this process.
pub struct ConcurrentFunction {
    api: Arc<Api>,
    child: Child,
    server: tokio::task::JoinHandle<()>,
    output: Arc<Mutex<Vec<u8>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Drop for ConcurrentFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

/// What one batch gave: each event's answer (a function error is `Err`, with its
/// `{"errorType","errorMessage"}`), in the order of the events, and the most invocations that
/// were in flight at once.
#[derive(Debug)]
pub struct Batch {
    /// The answers, in the order of the events.
    pub answers: Vec<Result<Value, Value>>,
    /// The most invocations the process held at once.
    pub max_in_flight: usize,
}

impl ConcurrentFunction {
    /// Starts `bootstrap` as `spec` configures it, with `extra` (moto's endpoint and
    /// credentials), polling for up to `max_concurrency` invocations at once.
    ///
    /// # Errors
    /// The bootstrap is missing or cannot start, or the Runtime API cannot listen.
    pub async fn start(
        bootstrap: &Path,
        spec: &FunctionSpec,
        extra: &BTreeMap<String, String>,
        max_concurrency: usize,
    ) -> Result<Self, EmuError> {
        if !bootstrap.is_file() {
            return Err(EmuError::Missing(format!(
                "no bootstrap at {}",
                bootstrap.display()
            )));
        }
        let api = Arc::new(Api {
            queue: Mutex::new(Queue::default()),
            arrived: Notify::new(),
            all_taken: Notify::new(),
            deadline: Duration::from_secs(spec.timeout_secs),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&api));
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| EmuError::Io { what, source }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the Runtime API"))?;
        let addr = listener
            .local_addr()
            .map_err(io("binding the Runtime API"))?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let mut cmd = Command::new(bootstrap);
        cmd.env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(lambda_env(spec))
            .envs(&spec.env)
            .envs(extra)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_MAX_CONCURRENCY", max_concurrency.to_string());
        let mut child = cmd
            .spawn()
            .map_err(io(&format!("starting {}", bootstrap.display())))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            crate::rie::drain(out, Arc::clone(&output));
        }
        if let Some(err) = child.stderr.take() {
            crate::rie::drain(err, Arc::clone(&output));
        }
        Ok(Self {
            api,
            child,
            server,
            output,
            next_id: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Hands out `events` at once and waits for every answer (within `within`).
    ///
    /// # Errors
    /// An answer did not come in time: the runtime did not take the batch concurrently, or a
    /// handler hung.
    pub async fn invoke_all(
        &self,
        events: Vec<Value>,
        within: Duration,
    ) -> Result<Batch, EmuError> {
        let mut receivers = Vec::with_capacity(events.len());
        if let Ok(mut q) = self.api.queue.lock() {
            q.untaken = events.len();
            q.max_in_flight = 0;
            for event in events {
                let n = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("00000000-0000-4000-8000-{n:012}");
                let (tx, rx) = oneshot::channel();
                q.answers.insert(id.clone(), tx);
                q.waiting.push_back((id, event));
                receivers.push(rx);
            }
        }
        self.api.arrived.notify_waiters();
        let all = futures_util_join(receivers);
        let answers = tokio::time::timeout(within, all).await.map_err(|_| {
            EmuError::Invoke(format!(
                "the batch was not answered within {within:?} (a runtime taking one invocation at a time stalls here); output: {}",
                self.output()
            ))
        })?;
        let max_in_flight = self.api.queue.lock().map(|q| q.max_in_flight).unwrap_or(0);
        Ok(Batch {
            answers,
            max_in_flight,
        })
    }

    /// Everything the function wrote so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default()
    }
}

/// Awaits every receiver in order (a dropped sender reads as a function error).
async fn futures_util_join(
    receivers: Vec<oneshot::Receiver<Result<Value, Value>>>,
) -> Vec<Result<Value, Value>> {
    let mut out = Vec::with_capacity(receivers.len());
    for rx in receivers {
        out.push(
            rx.await
                .unwrap_or_else(|_| Err(Value::String("no answer".into()))),
        );
    }
    out
}
