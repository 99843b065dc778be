//! `opsctl keys …` against the devstack's local data directory, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{
    DEFAULT_LEAD_SECS, current_version, kids_in, list_json, now, opsctl, opsctl_env,
    stored_key_set, time_of,
};

#[test]
fn rotating_bootstraps_an_active_key_then_schedules_one_after_the_lead_then_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    let first = opsctl(data, &["keys", "rotate"]).ok();
    assert!(first.stdout.contains("bootstrapped key"), "{first:#?}");
    let keys = list_json(data, &[]);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "active");
    let active = keys[0]["kid"].as_str().unwrap().to_owned();

    let before = now();
    let second = opsctl(data, &["keys", "rotate"]).ok();
    let after = now();
    let keys = list_json(data, &[]);
    assert_eq!(kids_in(&keys, "active"), [active.as_str()]);
    let pending = kids_in(&keys, "pending");
    assert_eq!(pending.len(), 1, "{keys:#?}");
    assert!(second.stdout.contains(&pending[0]), "{second:#?}");
    let activate_at = time_of(&keys[1], "activateAt");
    let lead = Duration::from_secs(DEFAULT_LEAD_SECS);
    assert!(
        before.plus(lead) <= activate_at && activate_at <= after.plus(lead),
        "activateAt {activate_at} is not now + {DEFAULT_LEAD_SECS} s"
    );
    assert_eq!(time_of(&keys[0], "signingEndsAt"), activate_at);

    let version = current_version(data);
    let third = opsctl(data, &["keys", "rotate"]).ok();
    assert!(
        third
            .stdout
            .contains(&format!("key {} is already pending", pending[0])),
        "{third:#?}"
    );
    assert!(third.stdout.contains("nothing written"), "{third:#?}");
    assert_eq!(current_version(data), version, "the secret was rewritten");
    assert_eq!(list_json(data, &[]), keys);
}

#[test]
fn rotating_now_makes_a_new_key_active_at_once_and_retires_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let old = kids_in(&list_json(data, &[]), "active");

    let run = opsctl(data, &["keys", "rotate", "--now"]).ok();
    assert!(
        run.stderr.contains("warning: the new key signs at once"),
        "{run:#?}"
    );
    let keys = list_json(data, &[]);
    assert_eq!(kids_in(&keys, "retired"), old);
    let new = kids_in(&keys, "active");
    assert_eq!(new.len(), 1, "{keys:#?}");
    assert_ne!(new, old);
    assert!(time_of(&keys[1], "activateAt") <= now());
}

#[test]
fn revoking_the_active_key_shows_it_revoked_and_a_replacement_active() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let active = kids_in(&list_json(data, &[]), "active").remove(0);

    let run = opsctl(data, &["keys", "revoke", &active]).ok();
    let keys = list_json(data, &[]);
    assert_eq!(kids_in(&keys, "revoked"), [active.as_str()]);
    let replacement = kids_in(&keys, "active");
    assert_eq!(replacement.len(), 1, "{keys:#?}");
    assert!(
        run.stdout.contains(&format!("revoked key {active}")),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains(&format!("replacement key {}", replacement[0])),
        "{run:#?}"
    );
    assert!(run.stderr.contains("key-set cache TTL (300 s)"), "{run:#?}");
    assert!(run.stderr.contains("JWKS max-age (300 s)"), "{run:#?}");
}

#[test]
fn revoking_a_key_twice_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let active = kids_in(&list_json(data, &[]), "active").remove(0);
    opsctl(data, &["keys", "revoke", &active]).ok();
    let version = current_version(data);

    let again = opsctl(data, &["keys", "revoke", &active]).failed();
    assert_eq!(again.code, Some(1));
    assert_eq!(
        again.stderr.trim(),
        format!("opsctl: cannot revoke: key {active} is already revoked")
    );
    assert_eq!(current_version(data), version);
}

#[test]
fn a_malformed_kid_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let version = current_version(data);

    let run = opsctl(data, &["keys", "revoke", "not/a-kid"]).failed();
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("opsctl: \"not/a-kid\" is not a key id"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("43-character"), "{run:#?}");
    assert_eq!(current_version(data), version);
}

#[test]
fn revoking_an_unknown_kid_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let unknown = "A".repeat(43);
    let run = opsctl(data, &["keys", "revoke", &unknown]).failed();
    assert_eq!(
        run.stderr.trim(),
        format!("opsctl: cannot revoke: no key {unknown} in the key set")
    );
}

#[test]
fn a_json_listing_never_contains_a_private_member() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    opsctl(data, &["keys", "rotate"]).ok();
    let list = opsctl(data, &["keys", "list", "--json"]).ok();
    assert!(!list.stdout.contains("\"d\""), "{}", list.stdout);
    assert!(!list.stdout.contains("privateJwk"), "{}", list.stdout);
    assert!(!list.stdout.contains("private"), "{}", list.stdout);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(keys.len(), 2);
}

#[test]
fn no_command_ever_prints_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut printed = String::new();
    for args in [
        &["keys", "rotate"][..],
        &["keys", "rotate"],
        &["keys", "rotate"],
        &["keys", "rotate", "--now"],
        &["keys", "list"],
        &["keys", "list", "--json"],
    ] {
        printed.push_str(&opsctl(data, args).ok().all_output());
    }
    let active = kids_in(&list_json(data, &[]), "active").remove(0);
    printed.push_str(&opsctl(data, &["keys", "revoke", &active]).ok().all_output());
    printed.push_str(
        &opsctl(data, &["keys", "revoke", &active])
            .failed()
            .all_output(),
    );
    printed.push_str(&opsctl(data, &["keys", "list"]).ok().all_output());

    let set = stored_key_set(data);
    assert!(set.keys.len() >= 3, "{:?}", set.keys);
    for key in &set.keys {
        assert!(printed.contains(key.kid.as_str()));
        assert!(
            !printed.contains(&key.private_jwk.d),
            "a private key was printed"
        );
    }
}

#[test]
fn the_text_listing_has_one_line_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let empty = opsctl(data, &["keys", "list"]).ok();
    assert_eq!(empty.stdout, "");
    assert!(empty.stderr.contains("opsctl keys rotate"), "{empty:#?}");

    opsctl(data, &["keys", "rotate"]).ok();
    opsctl(data, &["keys", "rotate"]).ok();
    let keys = list_json(data, &[]);
    let text = opsctl(data, &["keys", "list"]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, key) in lines.iter().zip(&keys) {
        let kid = key["kid"].as_str().unwrap();
        let state = key["state"].as_str().unwrap();
        assert!(line.starts_with(&format!("{kid}  {state}")), "{line}");
        let activate = key["activateAt"].as_str().unwrap();
        assert!(line.contains(&format!("activateAt={activate}")), "{line}");
        assert!(line.contains("revokedAt=-"), "{line}");
    }
    assert!(lines[0].contains(&format!(
        "signingEnds={}",
        keys[1]["activateAt"].as_str().unwrap()
    )));
}

#[test]
fn a_token_lifetime_above_300_seconds_fails_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    for args in [&["keys", "rotate"][..], &["keys", "list"]] {
        let run = opsctl_env(data, args, &[("TOKEN_LIFETIME_SECONDS", "301")]).failed();
        assert_eq!(
            run.stderr.trim(),
            "opsctl: configuration error: TOKEN_LIFETIME_SECONDS must be between 1 and 300 seconds, got 301"
        );
        assert_eq!(run.stdout, "");
    }
    assert!(!data.join("secrets").exists(), "nothing may be written");
}

#[test]
fn a_data_dir_that_cannot_hold_secrets_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let run = opsctl(&file, &["keys", "list"]).failed();
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with(&format!(
            "opsctl: cannot use the data directory {} for secrets: ",
            file.display()
        )),
        "{run:#?}"
    );
}

#[test]
fn a_custom_secret_name_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let env = [("KEY_SET_SECRET_NAME", "team-a/keys")];
    opsctl_env(data, &["keys", "rotate"], &env).ok();
    assert_eq!(list_json(data, &env).len(), 1);
    assert!(
        list_json(data, &[]).is_empty(),
        "the default secret is untouched"
    );
}

/// docs/architecture.md §3: revoking a compromised key makes "a new key active at once" — never an older key
/// that a `rotate --now` retired (a revoked successor that already signed still ends its
/// predecessor's signing).
#[test]
fn revoking_the_signing_key_activates_a_new_key_rather_than_a_retired_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    opsctl(data, &["keys", "rotate"]).ok();
    let retired = kids_in(&list_json(data, &[]), "active");
    opsctl(data, &["keys", "rotate", "--now"]).ok();
    let compromised = kids_in(&list_json(data, &[]), "active").remove(0);

    opsctl(data, &["keys", "revoke", &compromised]).ok();
    let keys = list_json(data, &[]);
    assert_eq!(kids_in(&keys, "retired"), retired, "{keys:#?}");
    assert_eq!(kids_in(&keys, "revoked"), [compromised.as_str()]);
    let active = kids_in(&keys, "active");
    assert_eq!(active.len(), 1, "{keys:#?}");
    assert!(!retired.contains(&active[0]) && active[0] != compromised);
}
