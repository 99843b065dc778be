//! How callbacks are signed: Standard Webhooks `v1` (HMAC-SHA256 with `whsec_` secrets, the
//! default), `v1a` (ed25519 with `whsk_` signing keys), or both in one `webhook-signature` header.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::{KEYPAIR_LENGTH, SECRET_KEY_LENGTH, Signer as _, SigningKey};
use serde::Serialize;

use crate::callbacks::sign;
use crate::rng::digest;

/// Which signatures a callback's `webhook-signature` header carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSignatures {
    /// `v1,<base64 HMAC-SHA256>` per `whsec_` secret (the default). With no secret, no header.
    #[default]
    V1,
    /// `v1a,<base64 ed25519 signature>` per `whsk_` signing key.
    V1a,
    /// Both: every `v1` entry, then every `v1a` entry, space-separated.
    Both,
}

impl WebhookSignatures {
    /// The command-line name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1a => "v1a",
            Self::Both => "both",
        }
    }

    /// What signs when no choice is made: `v1` without signing keys, `v1a` with signing keys only,
    /// `both` with secrets and signing keys.
    #[must_use]
    pub const fn derived(secrets: usize, signing_keys: usize) -> Self {
        match (secrets, signing_keys) {
            (_, 0) => Self::V1,
            (0, _) => Self::V1a,
            _ => Self::Both,
        }
    }

    const fn v1(self) -> bool {
        matches!(self, Self::V1 | Self::Both)
    }

    const fn v1a(self) -> bool {
        matches!(self, Self::V1a | Self::Both)
    }
}

impl FromStr for WebhookSignatures {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" => Ok(Self::V1),
            "v1a" => Ok(Self::V1a),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "unknown webhook signatures {other:?} (v1, v1a or both)"
            )),
        }
    }
}

impl fmt::Display for WebhookSignatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ed25519 signing key for `v1a` signatures. `Debug` shows only its public key; the secret
/// bytes are wiped on drop.
#[derive(Clone)]
pub struct WebhookSigningKey(SigningKey);

impl fmt::Debug for WebhookSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSigningKey({})", self.public_key())
    }
}

impl WebhookSigningKey {
    /// Parses `whsk_<base64>`: the 32-byte ed25519 seed (RFC 8032's secret key), or the 64-byte
    /// seed followed by its public key (libsodium's and Go's form; the public half must match).
    /// Padding is optional.
    ///
    /// # Errors
    /// A message naming what is wrong, never the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whsk_")
            .ok_or_else(|| "a signing key must start with whsk_".to_owned())?;
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map_err(|_| "not valid base64 after whsk_".to_owned())?,
        );
        if let Ok(seed) = <&[u8; SECRET_KEY_LENGTH]>::try_from(bytes.as_slice()) {
            return Ok(Self(SigningKey::from_bytes(seed)));
        }
        let pair = <&[u8; KEYPAIR_LENGTH]>::try_from(bytes.as_slice()).map_err(|_| {
            format!("a signing key is {SECRET_KEY_LENGTH} or {KEYPAIR_LENGTH} bytes long")
        })?;
        SigningKey::from_keypair_bytes(pair)
            .map(Self)
            .map_err(|_| "the public half of the 64-byte signing key does not match".to_owned())
    }

    /// The key of a 32-byte ed25519 seed.
    #[must_use]
    pub fn from_seed(seed: &[u8; SECRET_KEY_LENGTH]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The key in its `whsk_` form: base64 of the seed followed by the public key (64 bytes).
    #[must_use]
    pub fn to_whsk(&self) -> String {
        let pair = zeroize::Zeroizing::new(self.0.to_keypair_bytes());
        format!(
            "whsk_{}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_slice())
        )
    }

    /// The public key in its `whpk_` form, what the receiver is configured with.
    #[must_use]
    pub fn public_key(&self) -> String {
        format!(
            "whpk_{}",
            base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().as_bytes())
        )
    }

    /// `v1a,<base64 ed25519 signature of "{webhook_id}.{timestamp}.{body}">`.
    #[must_use]
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut content = format!("{webhook_id}.{timestamp}.").into_bytes();
        content.extend_from_slice(body);
        let signature = self.0.sign(&content);
        format!(
            "v1a,{}",
            base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
        )
    }
}

/// A signing key derived from `seed` (and `index`, for several keys from one seed): the same seed
/// gives the same key. Returns `(whsk_…, whpk_…)`. For tests and local runs only: anyone who
/// knows the seed can sign.
#[must_use]
pub fn generate_webhook_signing_key(seed: u64, index: u32) -> (String, String) {
    let key = WebhookSigningKey::from_seed(&digest(
        seed,
        &[b"webhook-signing-key", &index.to_be_bytes()],
    ));
    (key.to_whsk(), key.public_key())
}

/// The `v1a` entries, one per key, space-separated.
#[must_use]
pub fn sign_v1a(
    keys: &[WebhookSigningKey],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.iter()
        .map(|key| key.sign(webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the simulator signs callbacks with, checked at start.
pub struct WebhookSigner {
    signatures: WebhookSignatures,
    secrets: Vec<Vec<u8>>,
    keys: Vec<WebhookSigningKey>,
}

impl fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSigner")
            .field("signatures", &self.signatures)
            .field("secrets", &self.secrets.len())
            .field("keys", &self.keys)
            .finish()
    }
}

impl WebhookSigner {
    /// A signer of `signatures` with decoded `whsec_` secrets and parsed signing keys. `v1a` and
    /// `both` need a signing key, and signing keys are only taken with `v1a` or `both`; `both`
    /// needs a secret too.
    ///
    /// # Errors
    /// A message naming what is missing or unused.
    pub fn new(
        signatures: WebhookSignatures,
        secrets: Vec<Vec<u8>>,
        keys: Vec<WebhookSigningKey>,
    ) -> Result<Self, String> {
        if signatures.v1a() && keys.is_empty() {
            return Err(format!(
                "webhook_signatures {signatures} needs at least one whsk_ signing key"
            ));
        }
        if signatures == WebhookSignatures::Both && secrets.is_empty() {
            return Err("webhook_signatures both needs at least one whsec_ secret".to_owned());
        }
        if !signatures.v1a() && !keys.is_empty() {
            return Err(format!(
                "whsk_ signing keys are configured but webhook_signatures is {signatures}: \
                 choose v1a or both"
            ));
        }
        Ok(Self {
            signatures,
            secrets,
            keys,
        })
    }

    /// The `webhook-signature` value (empty when there is nothing to sign with).
    #[must_use]
    pub fn header(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut entries = Vec::new();
        if self.signatures.v1() && !self.secrets.is_empty() {
            entries.push(sign(&self.secrets, webhook_id, timestamp, body));
        }
        if self.signatures.v1a() {
            entries.push(sign_v1a(&self.keys, webhook_id, timestamp, body));
        }
        entries.join(" ")
    }

    /// The `whpk_` public keys of the signing keys: what a receiver must be configured with.
    #[must_use]
    pub fn public_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(WebhookSigningKey::public_key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whsk_is_read_as_a_32_byte_seed_or_a_64_byte_pair_and_written_as_the_pair() {
        let (whsk, whpk) = generate_webhook_signing_key(7, 0);
        let pair = WebhookSigningKey::parse(&whsk).unwrap();
        assert_eq!(pair.public_key(), whpk);
        assert_eq!(pair.to_whsk(), whsk);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(whsk.trim_start_matches("whsk_"))
            .unwrap();
        let seed = format!(
            "whsk_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes[..32])
        );
        assert_eq!(WebhookSigningKey::parse(&seed).unwrap().public_key(), whpk);
        assert_ne!(generate_webhook_signing_key(7, 1).1, whpk);
        assert_eq!(generate_webhook_signing_key(7, 0).1, whpk);
    }

    #[test]
    fn a_bad_whsk_is_refused_without_being_quoted() {
        let (whsk, _) = generate_webhook_signing_key(7, 0);
        let (other, _) = generate_webhook_signing_key(8, 0);
        // The seed of one key with the public half of another.
        let mismatched = format!("{}{}", &whsk[..48], &other[48..]);
        for bad in [
            whsk.trim_start_matches("whsk_").to_owned(),
            "whsk_!!!".to_owned(),
            "whsk_c2hvcnQ".to_owned(),
            mismatched,
        ] {
            let e = WebhookSigningKey::parse(&bad).unwrap_err();
            assert!(!e.contains(&whsk[5..20]), "{e}");
        }
        assert!(!format!("{:?}", WebhookSigningKey::parse(&whsk).unwrap()).contains(&whsk[5..20]));
    }

    #[test]
    fn the_signer_refuses_keys_it_would_never_use_and_modes_without_keys() {
        let key = WebhookSigningKey::parse(&generate_webhook_signing_key(1, 0).0).unwrap();
        let secret = vec![b"0123456789abcdef".to_vec()];
        assert!(WebhookSigner::new(WebhookSignatures::V1a, secret.clone(), vec![]).is_err());
        assert!(WebhookSigner::new(WebhookSignatures::Both, vec![], vec![key.clone()]).is_err());
        assert!(
            WebhookSigner::new(WebhookSignatures::V1, secret.clone(), vec![key.clone()]).is_err()
        );
        let both = WebhookSigner::new(WebhookSignatures::Both, secret, vec![key]).unwrap();
        let header = both.header("msg_1", 1, b"{}");
        let versions: Vec<_> = header
            .split(' ')
            .map(|e| e.split_once(',').unwrap().0)
            .collect();
        assert_eq!(versions, vec!["v1", "v1a"]);
    }

    #[test]
    fn the_default_follows_the_kinds_of_keys_given() {
        assert_eq!(WebhookSignatures::derived(1, 0), WebhookSignatures::V1);
        assert_eq!(WebhookSignatures::derived(0, 0), WebhookSignatures::V1);
        assert_eq!(WebhookSignatures::derived(0, 2), WebhookSignatures::V1a);
        assert_eq!(WebhookSignatures::derived(1, 1), WebhookSignatures::Both);
        for mode in ["v1", "v1a", "both"] {
            assert_eq!(mode.parse::<WebhookSignatures>().unwrap().as_str(), mode);
        }
        assert!("v2".parse::<WebhookSignatures>().is_err());
    }
}
