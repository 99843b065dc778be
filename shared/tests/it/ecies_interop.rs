//! ECIES interoperability with implementations we did not write (docs/architecture.md §5, §11): eciespy, the
//! reference implementation of ecies.org, on secp256k1; and on P-256 (which eciespy does not
//! offer) the same construction written by hand in Python on `cryptography` and python-ecdsa.
//! Both directions: they decrypt what `shared::ecies` encrypts, and we decrypt what they encrypt.
//!
//! The Python side is `tests/clients/ecies_decrypt.py`, run with the workspace's `.venv` (which
//! `make test` creates from `tests/requirements.txt`). A missing venv is a failure, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use shared::ecies::{self, Curve, MIN_CIPHERTEXT_LEN, SecretKey};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("shared/ lives in the workspace")
        .to_path_buf()
}

fn python() -> PathBuf {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} does not exist: the interop tests need the test venv with eciespy, cryptography and \
         ecdsa — run `make test` (or `python3 -m venv .venv && .venv/bin/pip install -r \
         tests/requirements.txt`)",
        python.display()
    );
    python
}

/// Sends `requests` (one JSON line each) to the Python client and returns its answer lines.
fn run_client(requests: &[Value]) -> Vec<String> {
    let script = workspace_root().join("tests/clients/ecies_decrypt.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python ECIES client");
    let mut input = String::new();
    for request in requests {
        input.push_str(&request.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written from another thread: the client answers line by line, so with megabyte messages
    // writing everything before reading would fill both pipes and deadlock.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .expect("run the Python ECIES client");
    writer
        .join()
        .expect("writer thread")
        .expect("write requests");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python ECIES client failed ({}); if a module is missing, reinstall the venv with \
         `.venv/bin/pip install -r tests/requirements.txt`:\n{stderr}",
        output.status
    );
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .expect("the client prints text")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines.len(),
        requests.len(),
        "one answer per request; stderr:\n{stderr}"
    );
    lines
}

/// Empty, short UTF-8 with emoji, and 1 MiB of random bytes.
fn messages() -> Vec<Vec<u8>> {
    let mut big = vec![0u8; 1 << 20];
    OsRng.fill_bytes(&mut big);
    vec![
        Vec::new(),
        "Grüße, Zoë — 身份证 🪪🔐🌍".as_bytes().to_vec(),
        big,
    ]
}

fn decrypt_request(curve: Curve, secret: &SecretKey, ciphertext: &[u8]) -> Value {
    json!({
        "curve": curve.as_str(),
        "secret_hex": hex::encode(secret.to_bytes().as_ref()),
        "ciphertext_hex": hex::encode(ciphertext),
    })
}

/// We encrypt every message to a fresh key; the Python client must decrypt each one, and must
/// refuse a tampered ciphertext and a ciphertext for another key (so a client that accepted
/// anything could not pass).
fn they_decrypt_what_we_encrypt(curve: Curve) {
    let secret = SecretKey::generate(curve);
    let public = secret.public_key();
    let messages = messages();
    let mut requests = Vec::new();
    for message in &messages {
        let ciphertext = ecies::encrypt(&public, message).unwrap();
        requests.push(decrypt_request(curve, &secret, &ciphertext));
    }
    let mut tampered = ecies::encrypt(&public, b"tampered").unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    requests.push(decrypt_request(curve, &secret, &tampered));
    let for_another_key =
        ecies::encrypt(&SecretKey::generate(curve).public_key(), b"not yours").unwrap();
    requests.push(decrypt_request(curve, &secret, &for_another_key));

    let answers = run_client(&requests);
    for (message, answer) in messages.iter().zip(&answers) {
        assert!(
            *answer == hex::encode(message),
            "{curve}: a {}-byte message came back as {}",
            message.len(),
            answer.chars().take(200).collect::<String>()
        );
    }
    for refused in &answers[messages.len()..] {
        assert!(refused.starts_with("error:"), "{curve}: accepted {refused}");
    }
}

#[test]
fn eciespy_decrypts_what_we_encrypt_on_secp256k1() {
    they_decrypt_what_we_encrypt(Curve::Secp256k1);
}

#[test]
fn an_independent_p256_implementation_decrypts_what_we_encrypt() {
    they_decrypt_what_we_encrypt(Curve::Secp256r1);
}

#[test]
fn we_decrypt_what_eciespy_and_the_independent_p256_implementation_encrypt_to_our_keys() {
    let messages = messages();
    for curve in [Curve::Secp256k1, Curve::Secp256r1] {
        let secret = SecretKey::generate(curve);
        let requests: Vec<Value> = messages
            .iter()
            .map(|message| {
                json!({
                    "op": "encrypt",
                    "curve": curve.as_str(),
                    "public_hex": secret.public_key().to_hex(),
                    "plaintext_hex": hex::encode(message),
                })
            })
            .collect();
        let answers = run_client(&requests);
        for (message, answer) in messages.iter().zip(&answers) {
            let ciphertext = hex::decode(answer)
                .unwrap_or_else(|_| panic!("{curve}: the client answered {answer}"));
            assert_eq!(
                ciphertext.len(),
                MIN_CIPHERTEXT_LEN + message.len(),
                "{curve}"
            );
            assert_eq!(ciphertext[0], 0x04, "{curve}: uncompressed ephemeral key");
            assert!(
                ecies::decrypt(&secret, &ciphertext).unwrap() == *message,
                "{curve}: a {}-byte message did not round-trip",
                message.len()
            );
        }
    }
}
