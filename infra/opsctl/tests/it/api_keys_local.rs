//! `opsctl api-keys …` against the devstack's local data directory, through the real binary, and
//! the keys it makes checked by the server's own `RequestVerifier`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::server::{REGISTRY_CACHE_TTL, Request, Server};
use common::{
    api_keys_json, create_key, now, opsctl, opsctl_env, runtime, secret_version, sign_env, time_of,
};
use shared::auth::{DEFAULT_API_KEYS_SECRET, Permission};
use shared::error::ErrorType;

const BODY: &[u8] = b"{\"credentialId\":\"kyc-basic\"}\n";
const PATH: &str = "/v1/credentials?x=1";

fn members(v: &serde_json::Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// `opsctl sign` for `key` over `BODY` at `timestamp` (default now), as the server receives it.
fn signed_request(
    data: &std::path::Path,
    key: &common::CreatedKey,
    method: &str,
    timestamp: Option<&str>,
) -> Request {
    let body_file = data.join("body.json");
    std::fs::write(&body_file, BODY).unwrap();
    let mut args = vec![
        "--key-id",
        &key.id,
        "--method",
        method,
        "--path",
        PATH,
        "--body-file",
        body_file.to_str().unwrap(),
    ];
    if let Some(t) = timestamp {
        args.extend(["--timestamp", t]);
    }
    let run = sign_env(data, &key.secret, &args).ok();
    assert!(
        !run.all_output().contains(&key.secret),
        "sign printed the secret"
    );
    Request::signed(method, PATH, BODY, &run.stdout)
}

#[test]
fn a_created_key_is_listed_without_its_secret_and_verifies_a_request_signed_by_opsctl_sign() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let before = now();
    let key = create_key(
        data,
        &[
            "--type",
            "live",
            "--permission",
            "credentials:write",
            "--permission",
            "credentials:read",
            "--label",
            "billing service",
        ],
        &[],
    );
    assert_eq!(
        members(&key.json),
        [
            "allowedIps",
            "expiresAt",
            "id",
            "label",
            "owner",
            "permissions",
            "secret",
            "type"
        ]
    );
    assert_eq!(key.json["type"], "live");
    assert_eq!(
        key.json["permissions"],
        serde_json::json!(["credentials:write", "credentials:read"])
    );
    assert_eq!(key.json["allowedIps"], serde_json::json!([]));
    assert_eq!(key.json["label"], "billing service");
    assert!(key.id.starts_with("pk_") && key.secret.starts_with("sk_"));
    assert!(
        key.run
            .stderr
            .contains("the secret is shown only now: it cannot be retrieved later"),
        "{:#?}",
        key.run
    );

    let listed = api_keys_json(data, &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        members(&listed[0]),
        [
            "ageDays",
            "allowedIps",
            "createdAt",
            "expired",
            "expiresAt",
            "id",
            "label",
            "owner",
            "permissions",
            "revokedAt",
            "status",
            "type"
        ]
    );
    assert_eq!(listed[0]["id"], key.id.as_str());
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["revokedAt"], serde_json::Value::Null);
    let created_at = time_of(&listed[0], "createdAt");
    assert!(before <= created_at && created_at <= now());
    for args in [&["api-keys", "list"][..], &["api-keys", "list", "--json"]] {
        let raw = opsctl(data, args).ok().all_output();
        assert!(raw.contains(&key.id), "{raw}");
        assert!(!raw.contains(&key.secret), "the listing printed the secret");
        assert!(!raw.contains("sk_"), "{raw}");
    }

    let server = Server::new(data, now());
    let request = signed_request(data, &key, "POST", None);
    let caller = server
        .verify(&request, Permission::CredentialsWrite)
        .unwrap();
    assert_eq!(caller.key_id.as_str(), key.id);
    assert_eq!(
        server.refusal(&request, Permission::CredentialsWrite),
        "replayed_request"
    );
    let mut tampered = signed_request(data, &key, "POST", Some(&server.now_secs()));
    tampered.body = b"{\"credentialId\":\"kyc-gold\"}\n".to_vec();
    assert_eq!(
        server.refusal(&tampered, Permission::CredentialsWrite),
        "signature_mismatch"
    );
}

#[test]
fn the_text_creation_output_shows_the_secret_once_with_a_warning_and_a_sign_example() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let run = opsctl(
        data,
        &[
            "api-keys",
            "create",
            "--type",
            "test",
            "--permission",
            "tokens:mint",
        ],
    )
    .ok();
    let listed = api_keys_json(data, &[]);
    let id = listed[0]["id"].as_str().unwrap();
    let secret_line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("secret:"))
        .expect("a secret line");
    let secret = secret_line.split_whitespace().nth(1).unwrap();
    assert!(secret.starts_with("sk_"), "{run:#?}");
    assert_eq!(run.all_output().matches(secret).count(), 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!("  id:          {id}")),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(
            "IMPORTANT: the secret is shown only now: it cannot be retrieved later (not even by \
             opsctl)"
        ),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "opsctl sign --key-id {id} --secret-env OPSCTL_API_SECRET --method POST --path \
             /v1/server/partner-tokens --body-file body.json --format curl"
        )),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("running functions accept the new key within the registry cache TTL (60 s)"),
        "{run:#?}"
    );
}

#[test]
fn a_revoked_key_is_listed_as_revoked_and_refused_and_revoking_it_again_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(
        data,
        &["--type", "live", "--permission", "credentials:write"],
        &[],
    );
    let other = create_key(
        data,
        &["--type", "live", "--permission", "credentials:write"],
        &[],
    );
    // A container that read the registry before the revocation.
    let warm = Server::new(data, now());
    let request = signed_request(data, &key, "POST", Some(&warm.now_secs()));
    warm.verify(&request, Permission::CredentialsWrite).unwrap();

    let before = now();
    let run = opsctl(data, &["api-keys", "revoke", &key.id]).ok();
    assert!(
        run.stdout.contains(&format!("revoked API key {}", key.id)),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("running functions see this revocation within the registry cache TTL (60 s)"),
        "{run:#?}"
    );
    let listed = api_keys_json(data, &[]);
    assert_eq!(listed.len(), 2, "the revoked key stays for the audit trail");
    assert_eq!(listed[0]["id"], key.id.as_str());
    assert_eq!(listed[0]["status"], "revoked");
    let revoked_at = time_of(&listed[0], "revokedAt");
    assert!(before <= revoked_at && revoked_at <= now());
    assert_eq!(listed[1]["status"], "active", "the other key is untouched");
    let text = opsctl(data, &["api-keys", "list"]).ok().stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{}  revoked", key.id))
                && l.contains(&format!(
                    "revokedAt={}",
                    listed[0]["revokedAt"].as_str().unwrap()
                ))),
        "{text}"
    );

    // A container that reads the registry now refuses the key at once.
    let fresh = Server::new(data, now());
    let request = signed_request(data, &key, "POST", Some(&fresh.now_secs()));
    assert_eq!(
        fresh.refusal(&request, Permission::CredentialsWrite),
        "revoked_key"
    );
    let failure = fresh
        .verify(
            &signed_request(data, &key, "POST", Some(&fresh.now_secs())),
            Permission::CredentialsWrite,
        )
        .unwrap_err();
    assert_eq!(failure.to_api_error().error_type(), ErrorType::Unauthorized);
    let fine = signed_request(data, &other, "POST", Some(&fresh.now_secs()));
    fresh.verify(&fine, Permission::CredentialsWrite).unwrap();

    // The warm container follows within the registry cache TTL, as opsctl says.
    warm.clock.advance(Duration::from_secs(1));
    let cached = signed_request(data, &key, "POST", Some(&warm.now_secs()));
    warm.verify(&cached, Permission::CredentialsWrite).unwrap();
    warm.clock.advance(REGISTRY_CACHE_TTL);
    let later = signed_request(data, &key, "POST", Some(&warm.now_secs()));
    assert_eq!(
        warm.refusal(&later, Permission::CredentialsWrite),
        "revoked_key"
    );

    let version = secret_version(data, DEFAULT_API_KEYS_SECRET);
    let again = opsctl(data, &["api-keys", "revoke", &key.id]).failed();
    assert_eq!(again.code, Some(1));
    assert_eq!(
        again.stderr.trim(),
        format!(
            "opsctl: cannot revoke: API key {} is already revoked (since {})",
            key.id,
            listed[0]["revokedAt"].as_str().unwrap()
        )
    );
    assert_eq!(again.stdout, "");
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), version);
}

#[test]
fn a_read_only_key_with_credentials_write_is_forbidden_on_a_write_and_allowed_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(
        data,
        &[
            "--type",
            "read_only",
            "--permission",
            "credentials:write",
            "--permission",
            "credentials:read",
        ],
        &[],
    );
    assert_eq!(key.json["type"], "read_only");
    assert!(
        key.run.stderr.contains(
            "note: a read_only key is refused on every write: credentials:write will never be \
             granted to it"
        ),
        "{:#?}",
        key.run
    );
    let server = Server::new(data, now());
    let write = signed_request(data, &key, "POST", Some(&server.now_secs()));
    let failure = server
        .verify(&write, Permission::CredentialsWrite)
        .unwrap_err();
    assert_eq!(failure.reason(), "missing_permission");
    let api = failure.to_api_error();
    assert_eq!(
        (api.error_type(), api.status()),
        (ErrorType::Forbidden, 403)
    );

    let read = signed_request(data, &key, "GET", Some(&server.now_secs()));
    server.verify(&read, Permission::CredentialsRead).unwrap();
}

#[test]
fn an_allow_list_limits_where_a_key_may_be_used_from() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(
        data,
        &[
            "--type",
            "live",
            "--permission",
            "credentials:write",
            "--allow-ip",
            "203.0.113.7/24",
            "--allow-ip",
            "2001:db8::1",
        ],
        &[],
    );
    let expected = serde_json::json!(["203.0.113.0/24", "2001:db8::1/128"]);
    assert_eq!(key.json["allowedIps"], expected);
    assert!(
        key.run
            .stderr
            .contains("--allow-ip 203.0.113.7/24 is stored as the range 203.0.113.0/24"),
        "{:#?}",
        key.run
    );
    assert_eq!(api_keys_json(data, &[])[0]["allowedIps"], expected);

    let server = Server::new(data, now());
    let outside = signed_request(data, &key, "POST", Some(&server.now_secs()));
    assert_eq!(
        server.refusal(&outside, Permission::CredentialsWrite),
        "ip_not_allowed"
    );
    server.clock.advance(Duration::from_secs(1));
    let mut inside = signed_request(data, &key, "POST", Some(&server.now_secs()));
    inside.source_ip = Some("203.0.113.9");
    server
        .verify(&inside, Permission::CredentialsWrite)
        .unwrap();
}

#[test]
fn an_allow_ip_that_is_not_an_address_or_range_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    for bad in ["example.com", "203.0.113.0/33", "203.0.113.0/", "10.0.0"] {
        let run = opsctl(
            data,
            &[
                "api-keys",
                "create",
                "--type",
                "live",
                "--permission",
                "credentials:write",
                "--allow-ip",
                "198.51.100.0/24",
                "--allow-ip",
                bad,
            ],
        )
        .failed();
        assert_eq!(run.code, Some(1));
        assert_eq!(
            run.stderr.trim(),
            format!(
                "opsctl: --allow-ip: {bad:?} is not an IP address or CIDR range (e.g. \
                 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32)"
            )
        );
        assert_eq!(run.stdout, "");
    }
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), None);
}

#[test]
fn an_unknown_permission_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let create = |extra: &[&str]| {
        let mut args = vec!["api-keys", "create", "--type", "live"];
        args.extend_from_slice(extra);
        opsctl(data, &args).failed()
    };
    let run = create(&[
        "--permission",
        "credentials:read",
        "--permission",
        "credentials:delete",
    ]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim(),
        "opsctl: --permission: unknown permission \"credentials:delete\"; the permissions are \
         credentials:write, credentials:read, tokens:mint, tokens:mint-issue"
    );
    let none = create(&[]);
    assert_eq!(
        none.stderr.trim(),
        "opsctl: --permission: a key needs at least one permission (credentials:write, \
         credentials:read, tokens:mint, tokens:mint-issue)"
    );
    let bad_type = opsctl(
        data,
        &[
            "api-keys",
            "create",
            "--type",
            "prod",
            "--permission",
            "credentials:read",
        ],
    )
    .failed();
    assert_eq!(
        bad_type.code,
        Some(2),
        "a bad --type is a command-line error"
    );
    assert!(
        bad_type
            .stderr
            .contains("[possible values: live, test, read_only]")
    );
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), None);
}

#[test]
fn a_malformed_or_unknown_id_cannot_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(
        data,
        &["--type", "live", "--permission", "credentials:read"],
        &[],
    );
    let version = secret_version(data, DEFAULT_API_KEYS_SECRET);

    let run = opsctl(data, &["api-keys", "revoke", "not-a-key"]).failed();
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("opsctl: \"not-a-key\" is not an API key id: an id is `pk_` followed by"),
        "{run:#?}"
    );
    let unknown = format!("pk_{}", "A".repeat(16));
    let run = opsctl(data, &["api-keys", "revoke", &unknown]).failed();
    assert_eq!(
        run.stderr.trim(),
        format!(
            "opsctl: cannot revoke: no API key {unknown} in the registry partner-bundle/api-keys"
        )
    );
    // The secret pasted where the id goes is not echoed back.
    let run = opsctl(data, &["api-keys", "revoke", &key.secret]).failed();
    assert!(!run.all_output().contains(&key.secret), "{run:#?}");
    assert!(run.stderr.contains("treat it as exposed"), "{run:#?}");
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), version);
    assert_eq!(api_keys_json(data, &[])[0]["status"], "active");
}

#[test]
fn an_empty_registry_lists_nothing_and_tells_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let run = opsctl(data, &["api-keys", "list"]).ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("opsctl api-keys create"), "{run:#?}");
    assert!(api_keys_json(data, &[]).is_empty());
    let unknown = format!("pk_{}", "B".repeat(16));
    opsctl(data, &["api-keys", "revoke", &unknown]).failed();
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), None);
}

#[test]
fn a_custom_registry_secret_name_is_honoured_and_an_invalid_one_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let env = [("API_KEYS_SECRET_NAME", "team-a/api-keys")];
    let key = create_key(
        data,
        &["--type", "live", "--permission", "tokens:mint"],
        &env,
    );
    assert_eq!(api_keys_json(data, &env).len(), 1);
    assert!(
        api_keys_json(data, &[]).is_empty(),
        "the default registry is untouched"
    );
    let server = Server::named(data, "team-a/api-keys", now());
    let request = signed_request(data, &key, "POST", None);
    server.verify(&request, Permission::TokensMint).unwrap();

    let run = opsctl_env(
        data,
        &["api-keys", "list"],
        &[("API_KEYS_SECRET_NAME", "no spaces allowed")],
    )
    .failed();
    assert_eq!(run.code, Some(78));
    assert!(
        run.stderr
            .starts_with("opsctl: configuration error: API_KEYS_SECRET_NAME invalid secret name"),
        "{run:#?}"
    );
}

#[test]
fn a_malformed_registry_is_reported_and_never_overwritten() {
    use shared::secrets::file::FileSecrets;
    use shared::secrets::{SecretName, SecretWriter};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let files = FileSecrets::open(data, std::sync::Arc::new(shared::clock::SystemClock)).unwrap();
    let name = SecretName::new(DEFAULT_API_KEYS_SECRET).unwrap();
    runtime()
        .block_on(files.create(&name, &"not json".to_owned().into()))
        .unwrap();
    let version = secret_version(data, DEFAULT_API_KEYS_SECRET);
    for args in [
        &["api-keys", "list"][..],
        &[
            "api-keys",
            "create",
            "--type",
            "live",
            "--permission",
            "credentials:read",
        ],
    ] {
        let run = opsctl(data, args).failed();
        assert!(
            run.stderr.starts_with(
                "opsctl: the API key registry partner-bundle/api-keys is not a valid document"
            ),
            "{run:#?}"
        );
        assert!(run.stderr.contains("nothing was written"), "{run:#?}");
        assert!(!run.all_output().contains("sk_"), "{run:#?}");
    }
    assert_eq!(secret_version(data, DEFAULT_API_KEYS_SECRET), version);
}

#[test]
fn no_command_but_create_ever_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let a = create_key(
        data,
        &["--type", "live", "--permission", "credentials:write"],
        &[],
    );
    let b = create_key(
        data,
        &["--type", "test", "--permission", "credentials:read"],
        &[],
    );
    let mut printed = String::new();
    for args in [
        &["api-keys", "list"][..],
        &["api-keys", "list", "--json"],
        &["api-keys", "revoke", &a.id],
        &["api-keys", "list"],
    ] {
        printed.push_str(&opsctl(data, args).ok().all_output());
    }
    printed.push_str(
        &opsctl(data, &["api-keys", "revoke", &a.id])
            .failed()
            .all_output(),
    );
    printed.push_str(
        &sign_env(
            data,
            &b.secret,
            &[
                "--key-id",
                &b.id,
                "--method",
                "GET",
                "--path",
                "/v1/credentials/x",
            ],
        )
        .ok()
        .all_output(),
    );
    for key in [&a, &b] {
        assert!(printed.contains(&key.id));
        assert!(!printed.contains(&key.secret), "a secret was printed");
    }
    assert!(!printed.contains("sk_"), "{printed}");
}
