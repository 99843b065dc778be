//! `opsctl --aws api-keys …` against Secrets Manager (moto, started by
//! `infra/scripts/with-moto.sh`, which `make test` uses). These tests fail rather than skip when
//! moto is not there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Run, opsctl_env};
use test_support::moto_endpoint;

#[test]
fn creating_listing_and_revoking_work_against_secrets_manager() {
    let endpoint = moto_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let secret_name = format!("opsctl-test/api-keys-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("API_KEYS_SECRET_NAME", secret_name.as_str()),
    ];
    let aws = |args: &[&str]| -> Run {
        let mut all = vec!["--aws"];
        all.extend_from_slice(args);
        opsctl_env(data, &all, &env)
    };
    let list = || -> (Run, Vec<serde_json::Value>) {
        let run = aws(&["api-keys", "list", "--json"]).ok();
        let keys = serde_json::from_str(&run.stdout).unwrap();
        (run, keys)
    };
    let create = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["api-keys", "create", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&aws(&all).ok().stdout).unwrap()
    };

    assert!(list().1.is_empty(), "a fresh secret name has no keys");
    // The first key creates the secret, the second is a compare-and-swap on it.
    let first = create(&["--type", "live", "--permission", "credentials:write"]);
    let second = create(&[
        "--type",
        "read_only",
        "--permission",
        "credentials:read",
        "--allow-ip",
        "203.0.113.0/24",
        "--label",
        "reporting",
    ]);
    let (run, keys) = list();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert_eq!(keys[0]["id"], first["id"]);
    assert_eq!(keys[1]["id"], second["id"]);
    assert_eq!(keys[1]["type"], "read_only");
    assert_eq!(keys[1]["allowedIps"], serde_json::json!(["203.0.113.0/24"]));
    assert_eq!(keys[1]["label"], "reporting");
    for created in [&first, &second] {
        let secret = created["secret"].as_str().unwrap();
        assert!(secret.starts_with("sk_"));
        assert!(
            !run.all_output().contains(secret),
            "the listing printed a secret"
        );
    }
    let text = aws(&["api-keys", "list"]).ok();
    assert!(!text.all_output().contains("sk_"), "{text:#?}");
    assert_eq!(text.stdout.lines().count(), 2, "{text:#?}");

    let id = first["id"].as_str().unwrap();
    aws(&["api-keys", "revoke", id]).ok();
    let (_, keys) = list();
    assert_eq!(keys[0]["status"], "revoked");
    assert!(keys[0]["revokedAt"].is_string());
    assert_eq!(keys[1]["status"], "active");
    let again = aws(&["api-keys", "revoke", id]).failed();
    assert!(again.stderr.contains("is already revoked"), "{again:#?}");

    assert!(
        !data.join("secrets").exists(),
        "--aws must not touch the local data directory"
    );
}
