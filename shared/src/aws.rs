//! The AWS SDK configuration, loaded once per process.
//!
//! It honours the standard environment: region, credentials, and `AWS_ENDPOINT_URL` (or the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SECRETS_MANAGER`), which is how the
//! tests and the devstack's `--aws` mode point the production adapters at moto.
//!
//! Every SDK call is bounded: [`CONNECT_TIMEOUT`] to connect, [`ATTEMPT_TIMEOUT`] per attempt and
//! [`OPERATION_TIMEOUT`] for the call with its retries, well inside the functions' 10 s Lambda
//! timeout, so that a stalled DynamoDB or Secrets Manager connection fails the request with a 5xx
//! the caller may retry instead of holding the invocation until Lambda kills it.

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

use crate::config::{ConfigError, EnvReader, ProcessEnv};

/// The root certificates the SDK clients trust by default: Amazon Trust Services', which every
/// AWS service endpoint's certificate chains to — Amazon Root CA 1 to 4 and Starfield Services
/// Root Certificate Authority G2, which cross-signs them (SHA-256 fingerprints `8ECDE688…`,
/// `1BA5B2AA…`, `18CE6CFE…`, `E35D2841…`, `568D6905…`). Public certificates, checked in.
pub const AMAZON_ROOTS_PEM: &str = include_str!("aws-roots.pem");

/// Which root certificates the SDK clients trust: `SDK_TRUST_STORE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkTrustStore {
    /// `amazon` (the default): [`AMAZON_ROOTS_PEM`] only. An AWS endpoint is trusted only with a
    /// certificate from Amazon Trust Services, and no file is read: loading the system's ~140 roots
    /// was most of every function's init outside the runtime itself.
    Amazon,
    /// `system`: the operating system's roots, for an endpoint behind a TLS-inspecting proxy or
    /// an emulator served over HTTPS with a local CA.
    System,
}

impl SdkTrustStore {
    /// The variable that chooses it.
    pub const VAR: &'static str = "SDK_TRUST_STORE";

    /// `SDK_TRUST_STORE`: `amazon` (default) or `system`.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        match r.optional(Self::VAR).as_deref() {
            None | Some("amazon") => Ok(Self::Amazon),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError::new(
                Self::VAR,
                format!("must be amazon or system, got {other:?}"),
            )),
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            Self::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes()),
            Self::System => TrustStore::default(),
        }
    }
}

/// The HTTPS client of every SDK client: rustls on AWS-LC, trusting `trust`.
///
/// # Errors
/// The TLS context cannot be built (it never fails for these trust stores; the error is kept
/// rather than assumed away).
pub fn http_client(
    trust: SdkTrustStore,
) -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient, ConfigError> {
    let context = TlsContext::builder()
        .with_trust_store(trust.trust_store())
        .build()
        .map_err(|e| ConfigError::new(SdkTrustStore::VAR, format!("no TLS context: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}

/// How long a connection to an AWS endpoint may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt of an SDK call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an SDK call may take, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts every client gets.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Where the SDK's region and credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The process environment (`AWS_REGION` or `AWS_DEFAULT_REGION`; `AWS_ACCESS_KEY_ID` with
    /// `AWS_SECRET_ACCESS_KEY` and, where set, `AWS_SESSION_TOKEN`).
    Environment,
    /// The SDK's default chain: the environment, then the shared config files, then (for
    /// credentials) web identity, the container endpoint and instance metadata.
    DefaultChain,
}

/// Where [`loader`] takes the region and the credentials from, for the environment `r`.
///
/// The SDK's default chains try the environment first, and a value found there ends the chain:
/// with the variables set, this picks what the chains would pick. It only skips building the
/// rest of each chain, which the SDK does before asking the first provider: an STS client for
/// web identity (its endpoint rules parsed from JSON, their region patterns compiled) and an
/// instance-metadata client. Lambda always sets these variables, so every function's start-up
/// skips that work (docs/benchmarks.md "Cold starts"); without them, the default chains run.
pub fn sources(r: &EnvReader<'_>) -> (Source, Source) {
    let set = |name: &str| r.optional(name).is_some_and(|v| !v.trim().is_empty());
    let region = if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        Source::Environment
    } else {
        Source::DefaultChain
    };
    let credentials = if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        Source::Environment
    } else {
        Source::DefaultChain
    };
    (region, credentials)
}

/// The loader [`load`] runs: the environment's settings, [`timeouts`], the HTTPS client of
/// [`SdkTrustStore`] (`SDK_TRUST_STORE`; a bad value stops the process with exit code 78), and the
/// region and credentials from where [`sources`] says.
pub fn loader() -> aws_config::ConfigLoader {
    let env = EnvReader::new(&ProcessEnv);
    let client = crate::config::or_exit(SdkTrustStore::from_env(&env).and_then(http_client));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts())
        .http_client(client);
    let (region, credentials) = sources(&env);
    if region == Source::Environment {
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    if credentials == Source::Environment {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
}

/// Loads the shared SDK configuration from the environment.
pub async fn load() -> SdkConfig {
    loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources_for(pairs: Vec<(&str, &str)>) -> (Source, Source) {
        use crate::config::MapEnv;
        sources(&EnvReader::new(&MapEnv::from_pairs(pairs)))
    }

    #[test]
    fn with_lambdas_variables_the_region_and_the_credentials_come_from_the_environment() {
        let lambda = vec![
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "example"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        assert_eq!(
            sources_for(lambda),
            (Source::Environment, Source::Environment)
        );
        assert_eq!(
            sources_for(vec![("AWS_DEFAULT_REGION", "eu-west-1")]).0,
            Source::Environment
        );
    }

    #[test]
    fn without_them_the_default_chains_are_asked() {
        assert_eq!(
            sources_for(vec![]),
            (Source::DefaultChain, Source::DefaultChain)
        );
        // A key id without its secret, or empty values, are no credentials: the chain decides.
        assert_eq!(
            sources_for(vec![("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")]).1,
            Source::DefaultChain
        );
        assert_eq!(
            sources_for(vec![
                ("AWS_REGION", " "),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", "example"),
            ]),
            (Source::DefaultChain, Source::DefaultChain)
        );
    }

    #[test]
    fn the_trust_store_is_amazons_unless_the_system_one_is_asked_for() {
        use crate::config::MapEnv;
        let read = |pairs: Vec<(&str, &str)>| {
            SdkTrustStore::from_env(&EnvReader::new(&MapEnv::from_pairs(pairs)))
        };
        assert_eq!(read(vec![]).unwrap(), SdkTrustStore::Amazon);
        assert_eq!(
            read(vec![("SDK_TRUST_STORE", "amazon")]).unwrap(),
            SdkTrustStore::Amazon
        );
        assert_eq!(
            read(vec![("SDK_TRUST_STORE", "system")]).unwrap(),
            SdkTrustStore::System
        );
        let err = read(vec![("SDK_TRUST_STORE", "any")]).unwrap_err();
        assert!(err.to_string().contains("SDK_TRUST_STORE"), "{err}");
    }

    #[test]
    fn the_amazon_roots_are_the_five_amazon_trust_services_certificates() {
        // The client parses them on its first connection (tests/it/sdk_trust.rs makes one).
        assert_eq!(
            AMAZON_ROOTS_PEM
                .matches("-----BEGIN CERTIFICATE-----")
                .count(),
            5
        );
        assert_eq!(
            AMAZON_ROOTS_PEM
                .matches("-----END CERTIFICATE-----")
                .count(),
            5
        );
    }

    #[test]
    fn the_crypto_library_is_built_without_the_jitter_entropy_collector() {
        // Set for every build in .cargo/config.toml; docs/security.md ("Randomness") says why.
        // Without it every cold start pays AWS-LC's jitter collector on its first TLS handshake.
        assert_eq!(option_env!("AWS_LC_SYS_NO_JITTER_ENTROPY"), Some("1"));
    }

    #[tokio::test]
    async fn every_sdk_call_is_bounded_by_connect_attempt_and_operation_timeouts() {
        let config = loader()
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let t = config.timeout_config().expect("timeouts are set");
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
    }
}
