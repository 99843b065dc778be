//! `opsctl sign`: the headers it prints are the ones the server's verifier accepts, in both output
//! forms; the secret only ever comes from an environment variable or a file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::server::{Request, Server, parse_headers};
use common::{create_key, now, opsctl, opsctl_env, sign_env};
use shared::auth::Permission;

const SECRET: &str = "sk_test-secret-0123456789";
const KEY_ID: &str = "pk_0123456789abcdef";

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--key-id",
        KEY_ID,
        "--method",
        "POST",
        "--path",
        "/v1/credentials?x=1",
    ];
    all.extend_from_slice(extra);
    all
}

/// The words a POSIX shell makes of `$(cat file)`: what curl receives from
/// `curl … $(opsctl sign … --format curl)`.
fn shell_words(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sign.out");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"for word in $(cat "$1"); do printf '%s\n' "$word"; done"#)
        .arg("sh")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn sign_with_format_curl_prints_h_arguments_that_reach_curl_intact_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(
        data,
        &["--type", "live", "--permission", "credentials:write"],
        &[],
    );
    let server = Server::new(data, now());
    let body = br#"{"credentialId":"kyc-basic"}"#;
    let sign = |format: &str| {
        sign_env(
            data,
            &key.secret,
            &[
                "--key-id",
                &key.id,
                "--method",
                "POST",
                "--path",
                "/v1/credentials",
                "--body",
                std::str::from_utf8(body).unwrap(),
                "--timestamp",
                &server.now_secs(),
                "--format",
                format,
            ],
        )
        .ok()
    };
    let curl = sign("curl");
    let lines: Vec<&str> = curl.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{curl:#?}");
    for (line, name) in lines
        .iter()
        .zip(["X-Access-Key", "X-Timestamp", "X-Signature"])
    {
        assert!(line.starts_with(&format!("-H {name}:")), "{line}");
    }

    let words = shell_words(&curl.stdout);
    assert_eq!(words.len(), 6, "{words:?}");
    let mut headers = BTreeMap::new();
    for pair in words.chunks(2) {
        assert_eq!(pair[0], "-H");
        let (name, value) = pair[1].split_once(':').unwrap();
        headers.insert(name.to_ascii_lowercase(), value.to_owned());
    }
    assert_eq!(headers, parse_headers(&sign("headers").stdout));
    let request = Request {
        method: "POST".into(),
        path: "/v1/credentials".into(),
        headers,
        body: body.to_vec(),
        source_ip: Some("198.51.100.7"),
    };
    server
        .verify(&request, Permission::CredentialsWrite)
        .unwrap();
}

#[test]
fn sign_refuses_a_missing_secret_env_var_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["sign", "--secret-env", "OPSCTL_API_SECRET"];
    all.extend(args(&[]));
    for env in [&[][..], &[("OPSCTL_API_SECRET", "")]] {
        let run = opsctl_env(dir.path(), &all, env).failed();
        assert_eq!(run.code, Some(1));
        assert_eq!(
            run.stderr.trim(),
            "opsctl: the environment variable OPSCTL_API_SECRET is not set or is empty: put the \
             API key's secret there first (e.g. `read -rs OPSCTL_API_SECRET && export \
             OPSCTL_API_SECRET`), or use --secret-file"
        );
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn sign_with_a_body_file_signs_its_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let body: &[u8] = b"{\"credentialId\": \"kyc-basic\"}\r\n\n";
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let run = sign_env(
        dir.path(),
        SECRET,
        &args(&[
            "--body-file",
            file.to_str().unwrap(),
            "--timestamp",
            "1700000000",
        ]),
    )
    .ok();
    let headers = parse_headers(&run.stdout);
    assert_eq!(headers["x-access-key"], KEY_ID);
    assert_eq!(headers["x-timestamp"], "1700000000");
    let expected = shared::auth::sign(SECRET, "POST", "/v1/credentials?x=1", "1700000000", body);
    assert_eq!(headers["x-signature"], expected);
    let trimmed = shared::auth::sign(
        SECRET,
        "POST",
        "/v1/credentials?x=1",
        "1700000000",
        body.trim_ascii_end(),
    );
    assert_ne!(headers["x-signature"], trimmed);
    assert!(
        run.stderr.contains("X-Timestamp is") && run.stderr.contains("s away from now"),
        "an old timestamp gets a note: {run:#?}"
    );

    let inline = sign_env(
        dir.path(),
        SECRET,
        &args(&[
            "--body",
            "{\"credentialId\": \"kyc-basic\"}",
            "--timestamp",
            "1700000000",
        ]),
    )
    .ok();
    assert_eq!(
        parse_headers(&inline.stdout)["x-signature"],
        shared::auth::sign(
            SECRET,
            "POST",
            "/v1/credentials?x=1",
            "1700000000",
            body.trim_ascii_end()
        )
    );
}

#[test]
fn sign_reads_the_secret_from_a_file_and_warns_when_others_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut all = vec!["sign", "--secret-file", file.to_str().unwrap()];
    all.extend(args(&["--timestamp", "1700000000"]));
    let run = opsctl(dir.path(), &all).ok();
    assert_eq!(
        parse_headers(&run.stdout)["x-signature"],
        shared::auth::sign(SECRET, "POST", "/v1/credentials?x=1", "1700000000", b""),
        "the trailing newline is not part of the secret"
    );
    assert!(
        run.stderr.contains("is readable by other users"),
        "{run:#?}"
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = opsctl(dir.path(), &all).ok();
    assert!(!run.stderr.contains("readable"), "{run:#?}");

    let missing = dir.path().join("missing");
    let mut all = vec!["sign", "--secret-file", missing.to_str().unwrap()];
    all.extend(args(&[]));
    let run = opsctl(dir.path(), &all).failed();
    assert!(
        run.stderr.starts_with(&format!(
            "opsctl: cannot read the secret file {}: ",
            missing.display()
        )),
        "{run:#?}"
    );
}

#[test]
fn sign_never_takes_the_secret_itself_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = vec!["sign", "--secret", SECRET];
    plain.extend(args(&[]));
    let run = opsctl(dir.path(), &plain).failed();
    assert_eq!(run.code, Some(2));
    assert!(!run.all_output().contains(SECRET), "{run:#?}");
    let joined = format!("--secret={SECRET}");
    let mut plain = vec!["sign", joined.as_str()];
    plain.extend(args(&[]));
    let run = opsctl(dir.path(), &plain).failed();
    assert_eq!(run.code, Some(2));
    assert!(!run.all_output().contains(SECRET), "{run:#?}");

    // The secret typed where the variable's name goes is refused, and not repeated.
    let mut misplaced = vec!["sign", "--secret-env", SECRET];
    misplaced.extend(args(&[]));
    let run = opsctl(dir.path(), &misplaced).failed();
    assert_eq!(run.code, Some(1));
    assert!(!run.all_output().contains(SECRET), "{run:#?}");
    assert!(
        run.stderr
            .contains("--secret-env takes the NAME of the variable holding the secret"),
        "{run:#?}"
    );
}

#[test]
fn sign_needs_no_secrets_store_and_signs_at_the_current_time() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that cannot hold secrets, and --aws towards nothing: neither is used.
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let mut all = vec!["--aws", "sign", "--secret-env", "OPSCTL_API_SECRET"];
    all.extend(args(&[]));
    let before = now().as_secs();
    let run = opsctl_env(
        &not_a_dir,
        &all,
        &[
            ("OPSCTL_API_SECRET", SECRET),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    )
    .ok();
    let after = now().as_secs();
    let headers = parse_headers(&run.stdout);
    let timestamp: i64 = headers["x-timestamp"].parse().unwrap();
    assert!(before <= timestamp && timestamp <= after, "{timestamp}");
    assert_eq!(run.stderr, "", "nothing to note");
    assert_eq!(
        headers["x-signature"],
        shared::auth::sign(
            SECRET,
            "POST",
            "/v1/credentials?x=1",
            &headers["x-timestamp"],
            b""
        )
    );
}

#[test]
fn sign_refuses_a_malformed_key_id_method_or_path_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--key-id", "ak_123", "--method", "POST", "--path", "/v1/x"],
            "opsctl: \"ak_123\" is not an API key id",
        ),
        (
            &["--key-id", KEY_ID, "--method", "FETCH", "--path", "/v1/x"],
            "opsctl: --method: \"FETCH\" is not an HTTP method",
        ),
        (
            &[
                "--key-id",
                KEY_ID,
                "--method",
                "POST",
                "--path",
                "https://api.example.com/v1/x",
            ],
            "opsctl: --path: give the path and query only, without the scheme and host",
        ),
        (
            &["--key-id", KEY_ID, "--method", "POST", "--path", "v1/x"],
            "opsctl: --path: the path must start with /",
        ),
    ];
    for (extra, expected) in cases {
        let run = sign_env(dir.path(), SECRET, extra).failed();
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.starts_with(expected), "{run:#?}");
        assert_eq!(run.stdout, "");
    }
    let lower = sign_env(
        dir.path(),
        SECRET,
        &[
            "--key-id",
            KEY_ID,
            "--method",
            "post",
            "--path",
            "/v1/x",
            "--timestamp",
            "1700000000",
        ],
    )
    .ok();
    assert_eq!(
        parse_headers(&lower.stdout)["x-signature"],
        shared::auth::sign(SECRET, "POST", "/v1/x", "1700000000", b""),
        "the method is signed in upper case, as the request line carries it"
    );
}
