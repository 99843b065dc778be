//! The AWS SDK configuration, loaded once per process.
//!
//! It honours the standard environment: region, credentials, and `AWS_ENDPOINT_URL` (or the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SECRETS_MANAGER`), which is how the
//! tests and the devstack's `--aws` mode point the production adapters at moto.

pub use aws_config::SdkConfig;

/// Loads the shared SDK configuration from the environment.
pub async fn load() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
