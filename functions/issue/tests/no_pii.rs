//! No plaintext personal data in the store file or the logs after a full issuance with sensitive
//! data. In its own test binary: a log capture is per thread, and tests running beside it in the
//! same process could make `tracing` skip the captured callsites.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "it/common/mod.rs"]
mod common;

use common::{body, world};
use serde_json::json;
use shared::telemetry::LogCapture;

#[tokio::test]
async fn no_plaintext_pii_reaches_the_store_or_the_logs() {
    let w = world(&[]).await;
    let (logs, dispatch) = LogCapture::new("issue");
    let _g = tracing::dispatcher::set_default(&dispatch);
    let email = "Mallory.Secret@example.com";
    let mut b = body("kyc-document-r1", email);
    b["sensitiveData"] = json!({"fullName": "Zelda Quixotic-Pii", "birthDate": "1901-02-03"});
    let (status, _, _) = w.send(w.post(&w.writer, Some("pii-1"), &b)).await;
    assert_eq!(status, 202);
    drop(_g);
    let text = logs.text();
    assert!(
        text.contains("credential issued on behalf of a user"),
        "the capture saw the issuance"
    );
    let stored = w.stored_text();
    assert!(stored.contains("ISSUE#"), "the store was read");
    for secret in [
        email,
        &email.to_lowercase(),
        "Zelda Quixotic-Pii",
        "1901-02-03",
    ] {
        assert!(!stored.contains(secret), "{secret} in the store");
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}
