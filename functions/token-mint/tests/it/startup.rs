//! The real binary refuses a bad configuration before it serves anything: one line on stderr that
//! names the variable, exit code 78 (EX_CONFIG).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_token-mint"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_token_lifetime_of_301_seconds_stops_the_function_at_start_naming_the_variable() {
    let (code, stderr) = run(&[("PARTNER_ID", "p"), ("TOKEN_LIFETIME_SECONDS", "301")]);
    assert_eq!(code, Some(78));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TOKEN_LIFETIME_SECONDS"), "{stderr}");
    assert!(stderr.contains("between 1 and 300"), "{stderr}");
}

#[test]
fn a_missing_partner_id_stops_the_function_at_start_naming_the_variable() {
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(78));
    assert_eq!(
        stderr.trim(),
        "configuration error: PARTNER_ID is required but not set"
    );
}
