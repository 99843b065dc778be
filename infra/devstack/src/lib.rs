//! The local stack behind `make dev`: every handler of the bundle behind one HTTP server on
//! loopback with the template's routes, calling the very handler functions the Lambdas run; the
//! schedules on a short local interval; the embedded store and local secret files by default, or
//! DynamoDB and Secrets Manager (`--aws`, honouring `AWS_ENDPOINT_URL`); an emulated JWT authorizer
//! with a local identity provider; and the platform simulator on its own port.
#![forbid(unsafe_code)]

pub mod authorizer;
pub mod cors;
pub mod credentials;
pub mod idp;
mod routes;
mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

pub use stack::Stack;

/// How the stack is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind (loopback by default).
    pub host: String,
    /// Port of the API (0 picks a free one).
    pub port: u16,
    /// Where the embedded store, local secrets and dev credentials live.
    pub data_dir: PathBuf,
    /// Use DynamoDB and Secrets Manager instead of the embedded adapters.
    pub aws: bool,
    /// The table to use with `aws` (created when missing and `AWS_ENDPOINT_URL` is set).
    pub table_name: String,
    /// The partner id the tokens carry and the simulator expects.
    pub partner_id: String,
    /// How often the scheduled functions (key rotation; the status poller too unless
    /// [`LocalTuning::poll_interval`] says otherwise) fire.
    pub schedule_interval: Duration,
}

/// Local settings beyond [`Options`], for the command line and tests: `LocalTuning::default()`
/// keeps the simulator's defaults and runs the status poller on the schedule interval.
#[derive(Debug, Clone, Default)]
pub struct LocalTuning {
    /// How often the status poller fires (default: the schedule interval).
    pub poll_interval: Option<Duration>,
    /// How long the platform simulator keeps a credential `WAIT_ONCHAIN` (default: its own, 5 s).
    pub onchain_delay: Option<Duration>,
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
    /// A handler's configuration is invalid.
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    /// The dev credentials could not be prepared.
    #[error("dev credentials: {0}")]
    Credentials(#[from] credentials::CredentialsError),
    /// The first key set could not be created.
    #[error("cannot create the signing key set: {0}")]
    KeySet(#[from] key_rotation::RotationError),
    /// The data keys could not be prepared.
    #[error("issuance: {0}")]
    DataKeys(String),
    /// A function's platform client could not be built.
    #[error("platform client: {0}")]
    Platform(String),
    /// The platform simulator could not start.
    #[error("platform simulator: {0}")]
    Simulator(#[from] platform_sim::SimError),
    /// The local CA or the HTTPS server could not be set up.
    #[error("local TLS: {0}")]
    Tls(#[from] local_tls::TlsError),
    /// The dev identity provider could not make its key.
    #[error(transparent)]
    Idp(#[from] idp::IdpError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started stack. Dropping it stops the simulator and the schedules.
pub struct Running {
    /// The API's address.
    pub api: SocketAddr,
    /// The platform simulator's base URL.
    pub platform: String,
    /// The dev credentials file.
    pub credentials: PathBuf,
    /// The local CA certificate every local HTTPS server chains to (`<data dir>/tls/ca.pem`).
    pub ca: PathBuf,
    ca_pem: String,
    server: local_tls::Server,
    schedules: tokio::task::JoinHandle<()>,
    _simulator: platform_sim::SimHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.schedules.abort();
    }
}

impl Running {
    /// The API's base URL (`https://`: the stack serves HTTPS only).
    pub fn api_url(&self) -> String {
        format!("https://{}", self.api)
    }

    /// The local CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client that trusts the local CA and speaks HTTPS only, like every local client.
    ///
    /// # Errors
    /// [`StartError::Tls`] when it cannot be built.
    pub fn client(&self) -> Result<reqwest::Client, StartError> {
        Ok(local_tls::client_builder(self.ca_pem.as_bytes())?
            .build()
            .map_err(local_tls::TlsError::from)?)
    }

    /// The line printed when the stack is ready.
    pub fn ready_line(&self) -> serde_json::Value {
        json!({
            "event": "ready",
            "api": self.api_url(),
            "platform": self.platform,
            "jwks": format!("{}/.well-known/jwks.json", self.api_url()),
            "credentials": self.credentials.display().to_string(),
            "ca": self.ca.display().to_string(),
        })
    }

    /// Waits until the server stops.
    pub async fn wait(&mut self) {
        self.server.wait().await;
    }
}

/// Where the local CA lives in a data directory: `<data dir>/tls` (`ca.pem`, `ca-key.pem`).
pub fn tls_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("tls")
}

/// Builds the stack and starts serving.
pub async fn start(opts: &Options) -> Result<Running, StartError> {
    start_tuned(opts, &LocalTuning::default()).await
}

/// Builds the stack with local tuning and starts serving.
pub async fn start_tuned(opts: &Options, tuning: &LocalTuning) -> Result<Running, StartError> {
    let addr = format!("{}:{}", opts.host, opts.port);
    let bind_err = |source| StartError::Bind {
        addr: addr.clone(),
        source,
    };
    let ca = Arc::new(local_tls::LocalCa::ensure(&tls_dir(&opts.data_dir))?);
    let listener = std::net::TcpListener::bind(&addr).map_err(bind_err)?;
    let api = listener.local_addr().map_err(bind_err)?;
    let api_url = format!("https://{api}");

    let ports = stack::ports(opts, Arc::new(shared::clock::SystemClock)).await?;
    let api_keys_secret = shared::secrets::SecretName::new(
        &std::env::var("API_KEYS_SECRET_NAME")
            .unwrap_or_else(|_| shared::auth::DEFAULT_API_KEYS_SECRET.to_owned()),
    )?;
    let creds = credentials::ensure(
        &opts.data_dir,
        ports.1.as_ref(),
        &api_keys_secret,
        shared::clock::Clock::now(&shared::clock::SystemClock),
    )
    .await?;
    let simulator = platform_sim::spawn(
        platform_sim::SimConfig {
            partner_id: opts.partner_id.clone(),
            issuer_did: format!("did:air:id:test:{}", opts.partner_id),
            jwks_url: format!("{api_url}/.well-known/jwks.json"),
            callback_url: Some(format!("{api_url}/v1/callbacks/cak")),
            webhook_secrets: vec![creds.webhook_secret.clone()],
            onchain_delay: tuning
                .onchain_delay
                .unwrap_or(platform_sim::SimConfig::default().onchain_delay),
            tls: Some(Arc::clone(&ca)),
            ..platform_sim::SimConfig::default()
        },
        SocketAddr::new(api.ip(), 0),
    )
    .await?;
    let stack = Arc::new(Stack::build(opts, &api_url, ports, creds, &simulator.base_url()).await?);

    let app = routes::router(Arc::clone(&stack));
    let server = local_tls::serve(listener, ca.server_config()?, app)?;
    let schedules = tokio::spawn(stack::run_schedules(
        Arc::clone(&stack),
        opts.schedule_interval,
        tuning.poll_interval.unwrap_or(opts.schedule_interval),
    ));
    Ok(Running {
        api,
        platform: simulator.base_url(),
        credentials: opts.data_dir.join(credentials::FILE_NAME),
        ca: tls_dir(&opts.data_dir).join(local_tls::CA_CERT_FILE),
        ca_pem: ca.cert_pem().to_owned(),
        server,
        schedules,
        _simulator: simulator,
    })
}
