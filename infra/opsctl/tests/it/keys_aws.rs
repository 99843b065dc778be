//! `opsctl --aws keys …` against Secrets Manager (moto, started by `infra/scripts/with-moto.sh`,
//! which `make test` uses). These tests fail rather than skip when moto is not there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{kids_in, list_json, opsctl_env};
use test_support::moto_endpoint;

/// A key set secret name unique to one test.
fn unique_secret() -> String {
    format!("opsctl-test/{}", uuid::Uuid::new_v4().simple())
}

#[test]
fn rotating_then_listing_works_against_secrets_manager() {
    let endpoint = moto_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let secret = unique_secret();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("KEY_SET_SECRET_NAME", secret.as_str()),
    ];
    let aws = |args: &[&str]| {
        let mut all = vec!["--aws"];
        all.extend_from_slice(args);
        opsctl_env(data, &all, &env)
    };
    let list = || {
        let mut keys = Vec::new();
        let run = aws(&["keys", "list", "--json"]).ok();
        assert!(!run.stdout.contains("\"d\"") && !run.stdout.contains("privateJwk"));
        keys.extend(serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout).unwrap());
        keys
    };

    assert!(list().is_empty(), "a fresh secret name has no keys");
    aws(&["keys", "rotate"]).ok();
    let keys = list();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "active");

    aws(&["keys", "rotate"]).ok();
    let keys = list();
    assert_eq!(kids_in(&keys, "pending").len(), 1, "{keys:#?}");
    let unchanged = aws(&["keys", "rotate"]).ok();
    assert!(
        unchanged.stdout.contains("already pending"),
        "{unchanged:#?}"
    );
    assert_eq!(list(), keys);

    assert!(
        !data.join("secrets").exists(),
        "--aws must not touch the local data directory"
    );
    assert!(
        list_json(data, &[]).is_empty(),
        "the local key set is a different one"
    );
}

#[test]
fn revoking_works_against_secrets_manager() {
    let endpoint = moto_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let secret = unique_secret();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("KEY_SET_SECRET_NAME", secret.as_str()),
    ];
    let aws = |args: &[&str]| {
        let mut all = vec!["--aws"];
        all.extend_from_slice(args);
        opsctl_env(dir.path(), &all, &env)
    };
    aws(&["keys", "rotate"]).ok();
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&aws(&["keys", "list", "--json"]).ok().stdout).unwrap();
    let active = kids_in(&keys, "active").remove(0);

    aws(&["keys", "revoke", &active]).ok();
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&aws(&["keys", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(kids_in(&keys, "revoked"), [active.as_str()]);
    assert_eq!(kids_in(&keys, "active").len(), 1);
    let again = aws(&["keys", "revoke", &active]).failed();
    assert!(again.stderr.contains("already revoked"), "{again:#?}");
}
