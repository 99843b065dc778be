//! The start of every function's `main`, written once: telemetry first, then the clock, the
//! metrics namespace (`METRICS_NAMESPACE`, default [`crate::telemetry::DEFAULT_NAMESPACE`]), the
//! AWS SDK configuration and its clients, the function's configuration (a bad value stops the
//! process with exit code 78 naming its variable), and — for the API functions — the
//! `lambda_http` loop. A `main` is then, inside [`run`] (which picks the async runtime):
//! [`Entry::start`], the config, the ports, the function's `build`, run.

use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigError, EnvReader, ProcessEnv, or_exit};
use crate::telemetry::{Recorder, StdoutSink};

/// Which tokio runtime a function's `main` runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFlavor {
    /// One thread: default Lambda sends an execution environment one invocation at a time.
    OneThread,
    /// Worker threads, one per vCPU: Lambda Managed Instances send several invocations at once.
    Workers,
}

impl RuntimeFlavor {
    /// The flavor for the value of `AWS_LAMBDA_MAX_CONCURRENCY`, which Lambda sets on Managed
    /// Instances only: worker threads when it is above 1, one thread otherwise (unset, 1, or a
    /// value that is not a number).
    pub fn for_max_concurrency(value: Option<&str>) -> Self {
        match value.and_then(|v| v.trim().parse::<u32>().ok()) {
            Some(n) if n > 1 => Self::Workers,
            _ => Self::OneThread,
        }
    }
}

/// Runs a function's `main` on the runtime its execution environment calls for
/// ([`RuntimeFlavor::for_max_concurrency`]). One invocation at a time needs no worker threads:
/// a single-threaded runtime starts none, and the process does not fill a second allocator arena
/// for them (the issue function's peak RSS was 0.5–0.9 MB lower that way, docs/benchmarks.md).
/// A runtime that cannot be built stops the process with exit code 70 (`EX_SOFTWARE`).
pub fn run<F: std::future::Future>(main: F) -> F::Output {
    let max = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY").ok();
    let mut builder = match RuntimeFlavor::for_max_concurrency(max.as_deref()) {
        RuntimeFlavor::OneThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeFlavor::Workers => tokio::runtime::Builder::new_multi_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(70)
        }
    }
}

/// What a function's `main` builds first, once per container.
pub struct Entry {
    service: &'static str,
    namespace: String,
    clock: SharedClock,
    sdk: crate::aws::SdkConfig,
}

impl Entry {
    /// Installs the JSON log subscriber for `service`, then reads the namespace and loads the SDK
    /// configuration from the environment (no network call: credentials resolve on first use;
    /// on Lambda the region and credentials are read from its variables, [`crate::aws::sources`]).
    pub async fn start(service: &'static str) -> Self {
        crate::telemetry::init(service);
        let namespace = crate::telemetry::namespace(&EnvReader::new(&ProcessEnv));
        Self {
            service,
            namespace,
            clock: Arc::new(SystemClock),
            sdk: crate::aws::load().await,
        }
    }

    /// The function's configuration read from the process environment; a bad value stops the
    /// process (exit code 78) with one line naming the variable.
    pub fn config<C>(&self, read: impl FnOnce(&EnvReader<'_>) -> Result<C, ConfigError>) -> C {
        or_exit(read(&EnvReader::new(&ProcessEnv)))
    }

    /// The wall clock.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// The function's metrics, as EMF lines on standard output.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(
            self.namespace.clone(),
            self.service,
            Arc::new(StdoutSink),
            self.clock.clone(),
        )
    }

    /// Secrets Manager.
    #[cfg(feature = "secretsmanager")]
    pub fn secrets(&self) -> Arc<crate::secrets::aws::SecretsManagerStore> {
        Arc::new(crate::secrets::aws::SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk),
        ))
    }

    /// The DynamoDB table `name`.
    #[cfg(feature = "dynamodb")]
    pub fn table(&self, name: &str) -> Arc<crate::store::dynamodb::DynamoStore> {
        Arc::new(crate::store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            name,
            self.clock.clone(),
        ))
    }
}

/// The built dependencies, or the process stopped with exit code 78 and the error's chain on one
/// line ([`crate::error::chain`]): a function that cannot be built from its configuration (a
/// platform URL that is not HTTPS, a route table naming an unknown handler) never serves.
pub fn built<T, E: std::error::Error + 'static>(result: Result<T, E>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("configuration error: {}", crate::error::chain(&e));
            std::process::exit(78) // EX_CONFIG
        }
    }
}

/// A function that answers API Gateway requests: its dependencies, built once, with the handler
/// that serves them.
#[cfg(feature = "http")]
pub trait ServesHttp: Sync {
    /// Answers one request (errors are answers too: the documented error types).
    fn serve(
        &self,
        req: lambda_http::Request,
    ) -> impl Future<Output = lambda_http::Response<lambda_http::Body>> + Send;
}

/// Serves API Gateway requests with `deps` until the runtime stops.
///
/// On Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` above 1, which Lambda sets from the
/// function's `PerExecutionEnvironmentMaxConcurrency`) the runtime polls for that many
/// invocations at once and every one is served by this one set of dependencies, shared by
/// reference: its caches and clients are `Send + Sync` and every state change is a conditional
/// write. Otherwise it serves one invocation at a time, as on default Lambda.
#[cfg(feature = "http")]
pub async fn serve_http<D: ServesHttp + Send + 'static>(deps: D) -> Result<(), lambda_http::Error> {
    let deps = std::sync::Arc::new(deps);
    lambda_http::run_concurrent(lambda_http::service_fn(move |req| {
        let deps = std::sync::Arc::clone(&deps);
        async move { Ok::<_, std::convert::Infallible>(deps.serve(req).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::RuntimeFlavor;

    #[test]
    fn only_a_max_concurrency_above_one_gets_worker_threads() {
        for (value, flavor) in [
            (None, RuntimeFlavor::OneThread),
            (Some("1"), RuntimeFlavor::OneThread),
            (Some("0"), RuntimeFlavor::OneThread),
            (Some("many"), RuntimeFlavor::OneThread),
            (Some("2"), RuntimeFlavor::Workers),
            (Some(" 64 "), RuntimeFlavor::Workers),
        ] {
            assert_eq!(
                RuntimeFlavor::for_max_concurrency(value),
                flavor,
                "{value:?}"
            );
        }
    }
}
