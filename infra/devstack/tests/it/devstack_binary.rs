//! The devstack binary as `make dev` runs it: it starts, prints one JSON ready line, answers
//! `/healthz`, keeps its data private, and refuses a corrupted data file clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::Command;

use common::start;

#[tokio::test]
async fn devstack_prints_a_ready_line_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path());
    let api = stack.api();
    assert!(api.starts_with("https://127.0.0.1:"), "{api}");
    assert_eq!(stack.ready["jwks"], format!("{api}/.well-known/jwks.json"));
    assert!(
        stack.ready["platform"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert_eq!(
        stack.ca(),
        dir.path().join("tls/ca.pem").display().to_string()
    );
    assert!(
        stack.ready["credentials"]
            .as_str()
            .unwrap()
            .ends_with("dev-credentials.json")
    );

    let r = stack
        .client()
        .get(format!("{api}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "embedded");

    let r = stack
        .client()
        .get(format!("{api}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorType"], "not_found");
}

#[tokio::test]
async fn devstack_keeps_its_data_directory_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _stack = start(&data);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(data.join("records.sqlite3").exists());
    let creds = std::fs::metadata(data.join("dev-credentials.json")).unwrap();
    assert_eq!(creds.permissions().mode() & 0o777, 0o600);
    let ca_key = std::fs::metadata(data.join("tls/ca-key.pem")).unwrap();
    assert_eq!(ca_key.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn devstack_and_its_simulator_serve_https_only_with_the_ca_of_its_data_directory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path());
    let platform = stack.ready["platform"].as_str().unwrap().to_owned();
    for base in [stack.api(), platform] {
        // A client that trusts only the system's roots refuses the local certificate.
        let err = reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{base}: {err:?}");
        // Plain HTTP to the same port gets no HTTP answer.
        let addr = base.trim_start_matches("https://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tcp.read_to_end(&mut answer),
        )
        .await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1."),
            "{base}: {answer:?}"
        );
    }
    // A restart keeps the CA, so a developer's `--cacert` keeps working.
    let pem = std::fs::read_to_string(stack.ca()).unwrap();
    drop(stack);
    let again = start(dir.path());
    assert_eq!(std::fs::read_to_string(again.ca()).unwrap(), pem);
    let r = again
        .client()
        .get(format!("{}/healthz", again.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn devstack_refuses_a_corrupted_store_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.sqlite3");
    std::fs::write(&file, b"garbage, not sqlite ".repeat(100)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("records.sqlite3"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"garbage, not sqlite ".repeat(100),
        "the corrupted file is left as it was"
    );
}

#[tokio::test]
async fn devstack_runs_on_dynamodb_and_secrets_manager_with_aws() {
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start_on_moto(dir.path());
    let api = stack.api();
    let body: serde_json::Value = stack
        .client()
        .get(format!("{api}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "aws");
    // The key set was created in Secrets Manager at start: the JWKS lists a key.
    let jwks: serde_json::Value = stack
        .client()
        .get(format!("{api}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_revoked_dev_key_stays_revoked_and_a_new_one_is_issued_on_restart() {
    use secrecy::ExposeSecret;
    use shared::auth::{ApiKeyRegistry, KeyStatus};
    use shared::secrets::{SecretName, SecretSource, SecretWriter, VersionId};

    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path()).credentials();
    let old_id = first["apiKey"]["id"].as_str().unwrap().to_owned();

    // An operator revokes the dev key (as `opsctl api-keys revoke` does).
    let clock: shared::clock::SharedClock = std::sync::Arc::new(shared::clock::SystemClock);
    let secrets = shared::secrets::file::FileSecrets::open(dir.path(), clock).unwrap();
    let name = SecretName::new("partner-bundle/api-keys").unwrap();
    let current = secrets.current(&name).await.unwrap();
    let mut registry = ApiKeyRegistry::parse(current.value.expose_secret()).unwrap();
    registry
        .keys
        .iter_mut()
        .for_each(|k| k.status = KeyStatus::Revoked);
    secrets
        .put_current_if(
            &name,
            &VersionId::random(),
            &registry.to_secret(),
            &current.id,
        )
        .await
        .unwrap();

    let second = start(dir.path()).credentials();
    let new_id = second["apiKey"]["id"].as_str().unwrap();
    assert_ne!(new_id, old_id, "a new dev key was issued");
    let registry =
        ApiKeyRegistry::parse(secrets.current(&name).await.unwrap().value.expose_secret()).unwrap();
    let status = |id: &str| {
        registry
            .keys
            .iter()
            .find(|k| k.id.as_str() == id)
            .map(|k| k.status)
    };
    assert_eq!(
        status(&old_id),
        Some(KeyStatus::Revoked),
        "the revoked key stays on record"
    );
    assert_eq!(status(new_id), Some(KeyStatus::Active));
}

#[test]
fn devstack_refuses_a_malformed_api_key_registry_instead_of_replacing_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(start(dir.path()));
    let file = std::fs::read_dir(dir.path().join("secrets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("api-keys"))
        .unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for v in doc["versions"].as_array_mut().unwrap() {
        v["value"] = serde_json::json!("{\"keys\": 42}");
    }
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api-keys"), "{err}");
}

#[tokio::test]
async fn devstack_applies_cors_as_the_template_does_for_listed_and_foreign_origins() {
    const APP: &str = "https://app.example.com";
    let dir = tempfile::tempdir().unwrap();
    let d = common::start_with_env(dir.path(), &[("ALLOWED_ORIGINS", APP)]);
    let http = d.client();
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/credentials", d.api()),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-signature")
        .send()
    };
    let listed = preflight(APP).await.unwrap();
    assert_eq!(listed.status(), 204);
    assert_eq!(listed.headers()["access-control-allow-origin"], APP);
    assert_eq!(listed.headers()["access-control-allow-methods"], "GET,POST");
    let foreign = preflight("https://evil.example.net").await.unwrap();
    assert_eq!(foreign.status(), 204);
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "a foreign origin was allowed: {:?}",
        foreign.headers()
    );
    // An answer carries the listed origin, never a foreign one.
    let jwks = |origin: &'static str| {
        http.get(format!("{}/.well-known/jwks.json", d.api()))
            .header("origin", origin)
            .send()
    };
    let answer = jwks(APP).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], APP);
    let answer = jwks("https://evil.example.net").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[test]
fn devstack_refuses_a_plain_http_origin_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DEVSTACK_AWS")
        .env_remove("AWS_ENDPOINT_URL")
        .env("ALLOWED_ORIGINS", "http://app.example.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALLOWED_ORIGINS"), "{err}");
}
