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

/// The loader [`load`] runs: the environment's settings and [`timeouts`].
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts())
}

/// Loads the shared SDK configuration from the environment.
pub async fn load() -> SdkConfig {
    loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;

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
