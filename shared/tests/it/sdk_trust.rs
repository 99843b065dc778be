//! The SDK clients' trust store: an endpoint whose certificate is not from Amazon Trust Services
//! is never reached with the default one.

use aws_sdk_secretsmanager::config::{Credentials, Region};
use platform_sim::SimConfig;
use shared::aws::{SdkTrustStore, http_client};

async fn secrets_client(endpoint: &str, trust: SdkTrustStore) -> aws_sdk_secretsmanager::Client {
    let sdk = shared::aws::loader()
        .http_client(http_client(trust).unwrap())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&sdk)
}

#[tokio::test]
async fn an_endpoint_with_a_certificate_from_another_ca_is_refused_before_any_request() {
    // An HTTPS server whose certificate comes from the test suite's local CA, not Amazon's.
    let sim = platform_sim::spawn(
        SimConfig {
            tls: Some(test_support::local_ca()),
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let client = secrets_client(&sim.base_url(), SdkTrustStore::Amazon).await;
    let err = client
        .get_secret_value()
        .secret_id("anything")
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap_err();
    // A dispatch failure: the TLS handshake failed, so no request was answered; had the
    // certificate been trusted, the server's answer would be a service error instead.
    assert!(
        matches!(
            err,
            aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_)
        ),
        "{err:?}"
    );
    let chain = shared::error::chain(&err);
    assert!(
        chain.contains("certificate") || chain.contains("UnknownIssuer"),
        "not a certificate failure: {chain}"
    );
}
