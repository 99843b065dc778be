//! The local stack behind `make dev`: every handler of the bundle behind one HTTP server on
//! loopback, with the embedded store and local secret files by default, or DynamoDB and Secrets
//! Manager (`--aws`, honouring `AWS_ENDPOINT_URL`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use axum::routing::get;
use serde_json::json;
use shared::clock::{SharedClock, SystemClock};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::secrets::SecretWriter;
use shared::store::{RecordKey, RecordKind, RecordStore};
use tokio::net::TcpListener;

/// How the stack is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind (loopback by default).
    pub host: String,
    /// Port of the API (0 picks a free one).
    pub port: u16,
    /// Where the embedded store and local secrets live.
    pub data_dir: PathBuf,
    /// Use DynamoDB and Secrets Manager instead of the embedded adapters.
    pub aws: bool,
    /// The table to use with `aws` (created when missing and `AWS_ENDPOINT_URL` is set).
    pub table_name: String,
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be prepared.
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the record store: {0}")]
    Store(#[from] shared::store::StoreError),
    /// The secrets could not be opened.
    #[error("cannot open the secrets: {0}")]
    Secrets(#[from] shared::secrets::SecretsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What the handlers share: the ports, built once.
#[derive(Clone)]
pub struct Stack {
    /// Records (idempotency, issuances, callbacks, replay cache).
    pub store: Arc<dyn RecordStore>,
    /// Secrets (key set, API keys, webhook secrets).
    pub secrets: Arc<dyn SecretWriter>,
    /// The clock.
    pub clock: SharedClock,
    /// `embedded` or `aws`, for `/healthz`.
    pub backend: &'static str,
}

impl Stack {
    /// Builds the ports for `opts`.
    pub async fn build(opts: &Options) -> Result<Self, StartError> {
        let clock: SharedClock = Arc::new(SystemClock);
        if opts.aws {
            return Self::build_aws(opts, clock).await;
        }
        prepare_data_dir(&opts.data_dir)?;
        let store = shared::store::embedded::EmbeddedStore::open(
            opts.data_dir.join("records.sqlite3"),
            clock.clone(),
        )?;
        let secrets = shared::secrets::file::FileSecrets::open(&opts.data_dir, clock.clone())?;
        Ok(Self {
            store: Arc::new(store),
            secrets: Arc::new(secrets),
            clock,
            backend: "embedded",
        })
    }

    async fn build_aws(opts: &Options, clock: SharedClock) -> Result<Self, StartError> {
        let config = shared::aws::load().await;
        let store = shared::store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            &opts.table_name,
            clock.clone(),
        );
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            store.create_table_if_missing().await?;
        }
        let secrets = shared::secrets::aws::SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&config),
        );
        Ok(Self {
            store: Arc::new(store),
            secrets: Arc::new(secrets),
            clock,
            backend: "aws",
        })
    }
}

fn prepare_data_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::DataDir {
            path: dir.to_path_buf(),
            source,
        })
}

async fn healthz(State(stack): State<Stack>) -> Response<Body> {
    // A read of a key that never exists proves the store answers.
    let probe = RecordKey::new(RecordKind::Test, "healthz");
    let store_ok = match probe {
        Ok(key) => stack.store.get(&key).await.is_ok(),
        Err(_) => false,
    };
    let status = if store_ok { 200 } else { 503 };
    to_axum(
        Reply::json(
            status,
            &json!({"status": if store_ok {"ok"} else {"degraded"}, "backend": stack.backend}),
        )
        .build(),
    )
}

async fn not_found() -> Response<Body> {
    to_axum(Reply::error(&ApiError::new(ErrorType::NotFound, "no such route")).build())
}

/// Converts a Lambda HTTP response into the local server's response type.
pub fn to_axum(response: lambda_http::Response<lambda_http::Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(t) => Body::from(t),
        lambda_http::Body::Binary(b) => Body::from(b),
        _ => Body::empty(),
    };
    Response::from_parts(parts, body)
}

/// The router with every local route.
pub fn router(stack: Stack) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(stack)
}

/// A started stack.
pub struct Running {
    /// The API's address.
    pub api: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The line printed when the stack is ready.
    pub fn ready_line(&self) -> serde_json::Value {
        json!({"event": "ready", "api": format!("http://{}", self.api)})
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// Waits until the server stops.
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}

/// Builds the stack and starts serving.
pub async fn start(opts: &Options) -> Result<Running, StartError> {
    let stack = Stack::build(opts).await?;
    let addr = format!("{}:{}", opts.host, opts.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let api = listener.local_addr().map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let app = router(stack);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "devstack server stopped");
        }
    });
    Ok(Running { api, server })
}
