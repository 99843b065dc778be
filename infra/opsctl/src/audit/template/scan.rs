//! What a secret looks like: literals shaped like the bundle's keys, PEM blocks, private JWK
//! members and AWS secret access keys, and names (parameters, variables) that call for a reference
//! instead of a value.

/// A literal that looks like a secret: what it resembles, and a hint that does not reveal it.
pub(super) struct Suspect {
    pub(super) kind: &'static str,
    pub(super) hint: String,
    /// A private key (a PEM private key, a private JWK), not only a shared secret.
    pub(super) private_key: bool,
}

pub(super) fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-')
}

pub(super) fn suspects(s: &str) -> Vec<Suspect> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    for (prefix, kind, min) in [
        ("sk_", "an API key secret", 20),
        ("whsec_", "a webhook signing secret", 16),
        ("whsk_", "a webhook signing key", 16),
    ] {
        for (at, _) in s.match_indices(prefix) {
            if at > 0 && b[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            let run = b[at + prefix.len()..]
                .iter()
                .take_while(|c| is_token_byte(**c))
                .count();
            if run >= min {
                out.push(Suspect {
                    kind,
                    hint: format!("{prefix}… ({} characters)", prefix.len() + run),
                    private_key: prefix == "whsk_",
                });
            }
        }
    }
    for (at, _) in s.match_indices("-----BEGIN") {
        let rest = &s[at + "-----BEGIN".len()..];
        let label: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == ' ')
            .collect();
        let label = label.trim();
        let private = label.contains("PRIVATE");
        out.push(Suspect {
            kind: if private {
                "a PEM private key"
            } else {
                "a PEM block"
            },
            hint: format!("-----BEGIN {label}-----…"),
            private_key: private,
        });
    }
    for (at, _) in s.match_indices("\"d\"") {
        let rest = s[at + 3..].trim_start();
        if rest.starts_with(':') {
            out.push(Suspect {
                kind: "a private JWK member",
                hint: "\"d\": …".to_owned(),
                private_key: true,
            });
        }
    }
    let lower = s.to_ascii_lowercase();
    for needle in ["aws_secret_access_key", "secretaccesskey", "aws_secret_key"] {
        for (at, _) in lower.match_indices(needle) {
            let after = &b[at + needle.len()..];
            let skip = after
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t' | b'"' | b'\'' | b'=' | b':'))
                .count();
            let run = after[skip..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+' | b'='))
                .count();
            if run >= 40 {
                out.push(Suspect {
                    kind: "an AWS secret access key",
                    hint: format!("{needle} = … ({run} characters)"),
                    private_key: false,
                });
            }
        }
    }
    out
}

/// Words of a parameter name: `PlatformApiSecret` is `platform api secret`.
pub(super) fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            out.push(String::new());
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            out.push(String::new());
        }
        match out.last_mut() {
            Some(w) => w.push(c.to_ascii_lowercase()),
            None => out.push(c.to_ascii_lowercase().to_string()),
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    out.retain(|w| !w.is_empty());
    out
}

/// A parameter named like a secret: a word Secret, Password or Key, and none of Name, Arn, Id.
pub(super) fn secret_like_parameter(name: &str) -> bool {
    let w = words(name);
    let has = |any: &[&str]| w.iter().any(|w| any.contains(&w.as_str()));
    has(&["secret", "secrets", "password", "passwd", "key", "keys"])
        && !has(&["name", "names", "arn", "arns", "id", "ids"])
}

/// A variable whose value must be a reference: its name ends in SECRET, KEY, PASSWORD or TOKEN.
pub(super) fn secret_like_variable(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "SECRET", "SECRETS", "KEY", "KEYS", "PASSWORD", "PASSWD", "TOKEN",
    ]
    .iter()
    .any(|s| n.ends_with(s))
}

/// A variable that names a secret instead of holding it.
pub(super) fn names_a_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.ends_with("_SECRET_NAME") || n.ends_with("_SECRET_ARN")
}

/// A variable named like a private key.
pub(super) fn private_key_variable(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if n.ends_with("_NAME") || n.ends_with("_ARN") || n.ends_with("_ID") {
        return false;
    }
    let parts: Vec<&str> = n.split('_').collect();
    parts.contains(&"PRIVATE")
        || n.contains("SIGNING_KEY")
        || n.ends_with("_JWK")
        || n.ends_with("_PEM")
        || n.ends_with("KEY_SET")
        || n.ends_with("DATA_KEY")
        || n.ends_with("DATA_KEYS")
}
