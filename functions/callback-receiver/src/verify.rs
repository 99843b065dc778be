//! Webhook signatures: Standard Webhooks (the default) and a hex HMAC scheme.
//!
//! **Standard Webhooks** (`WEBHOOK_SCHEME=standard`): headers `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`, a space-separated list of `<version>,<signature>`
//! entries over the signed content `{id}.{timestamp}.{body}`:
//!
//! - `v1,<base64>`: the HMAC-SHA256 of the signed content keyed with a secret's bytes (the base64
//!   text after `whsec_`);
//! - `v1a,<base64>`: the 64-byte ed25519 signature of the signed content, verified with
//!   [`VerifyingKey::verify_strict`] (no small-order key or `R`, no non-canonical `s`) against the
//!   platform's public keys (`whpk_<base64 of the 32-byte key>`).
//!
//! Any entry that verifies against any configured key of its kind passes; entries of other
//! versions are ignored, so a header with neither a `v1` nor a `v1a` entry never passes. The
//! receiver never holds a `whsk_` signing key: [`SecretSet::parse`] refuses one.
//!
//! **Hex** (`WEBHOOK_SCHEME=hex`): headers `x-webhook-signature` (lowercase or uppercase hex
//! HMAC-SHA256, optionally prefixed `sha256=`), `x-webhook-timestamp` (Unix seconds) and, when the
//! platform sends one, `x-webhook-id`. The MAC covers the timestamp header's exact text
//! immediately followed by the raw body. Secrets are either `whsec_<base64>` or plain text used as
//! its UTF-8 bytes. This scheme has no asymmetric variant.
//!
//! Every configured key is tried (several are accepted at once while the platform rotates), and
//! every HMAC comparison is constant-time: the loops run over all keys and all entries whatever
//! matches, so timing tells nothing about which secret or entry matched. (Ed25519 verification
//! works on public values only; it runs over every pair too, for the same even cost.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{SIGNATURE_LENGTH, Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::clock::Timestamp;
use shared::error::{ApiError, ErrorType};
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

mod secrets;

use secrets::BASE64;
pub use secrets::{
    DocumentError, DocumentMember, MAX_SECRET_BYTES, MIN_SECRET_BYTES, PUBLIC_KEY_PREFIX,
    PublicKeyFormatError, SECRET_PREFIX, SIGNING_KEY_PREFIX, SecretFormatError, SecretSet,
    WebhookPublicKey, WebhookSecret,
};

/// `webhook-id` (Standard Webhooks).
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// `webhook-timestamp` (Standard Webhooks).
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// `webhook-signature` (Standard Webhooks).
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// `x-webhook-id` (hex scheme; optional).
pub const HEX_ID_HEADER: &str = "x-webhook-id";
/// `x-webhook-timestamp` (hex scheme).
pub const HEX_TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// `x-webhook-signature` (hex scheme).
pub const HEX_SIGNATURE_HEADER: &str = "x-webhook-signature";

/// At most this many entries of a `webhook-signature` header are looked at.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;
/// The longest `webhook-signature` header read.
const MAX_SIGNATURE_HEADER: usize = 4096;
/// The longest webhook id accepted.
const MAX_ID_LEN: usize = 256;
/// The length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Which signature scheme the platform uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
    /// (HMAC) or `v1a,<base64>` (ed25519).
    Standard,
    /// `X-Webhook-Signature`: hex HMAC-SHA256 over timestamp + body.
    Hex,
}

impl Scheme {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Hex => "hex",
        }
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Self::Standard),
            "hex" => Ok(Self::Hex),
            _ => Err("expected \"standard\" or \"hex\"".to_owned()),
        }
    }
}

/// A `webhook-id`: 1–256 visible ASCII characters. The same for every retry of one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookId(String);

impl WebhookId {
    /// Parses a header value.
    pub fn parse(text: &str) -> Option<Self> {
        ((1..=MAX_ID_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A webhook timestamp: whole Unix seconds, 1–12 ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookTimestamp(i64);

impl WebhookTimestamp {
    /// Parses a header value.
    pub fn parse(text: &str) -> Option<Self> {
        if !(1..=12).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(Self)
    }

    /// The Unix seconds.
    pub fn as_secs(self) -> i64 {
        self.0
    }

    /// Whether this timestamp is within `tolerance` of `now`, either way.
    pub fn is_within(self, now: Timestamp, tolerance: Duration) -> bool {
        let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
        now.as_secs().abs_diff(self.0) <= tolerance.unsigned_abs()
    }
}

/// Why a delivery was refused before its body was even parsed. Each has a stable reason for the
/// log and the `CallbackSignatureFailures` metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFailure {
    /// A required header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but not of the expected form.
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    /// No secret nor public key is configured, so nothing can be verified.
    #[error("no webhook secret or public key is configured")]
    NoSecrets,
    /// The header holds no entry of a supported version (`v1` or `v1a`).
    #[error("no signature of a supported version")]
    UnsupportedVersion,
    /// No entry verifies against any configured key of its kind.
    #[error("no signature matches")]
    Mismatch,
    /// The signed timestamp is too old or too far ahead.
    #[error("the webhook timestamp is outside the accepted window")]
    TimestampOutOfWindow,
    /// The source address is not in the allow-list.
    #[error("source address not allowed")]
    SourceNotAllowed,
}

impl SignatureFailure {
    /// The stable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader(_) => "malformed_header",
            Self::NoSecrets => "no_secret_configured",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Mismatch => "signature_mismatch",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::SourceNotAllowed => "ip_not_allowed",
        }
    }

    /// The answer: 401 for anything about the signature, 403 for the source address. A missing
    /// configuration is not told apart from a wrong signature.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::MissingHeader(_) | Self::MalformedHeader(_) => {
                ApiError::new(ErrorType::Unauthorized, self.to_string())
            }
            Self::NoSecrets | Self::UnsupportedVersion | Self::Mismatch => {
                ApiError::new(ErrorType::SignatureMismatch, "no signature matches")
            }
            Self::TimestampOutOfWindow => ApiError::new(
                ErrorType::TimestampOutOfWindow,
                "the webhook timestamp is outside the accepted window",
            ),
            Self::SourceNotAllowed => {
                ApiError::new(ErrorType::Forbidden, "source address not allowed")
            }
        }
    }
}

/// The signed parts of a delivery, as read from its headers.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The scheme the headers were read for.
    pub scheme: Scheme,
    /// The id header, if any.
    pub id: Option<&'a str>,
    /// The timestamp header.
    pub timestamp: Option<&'a str>,
    /// The signature header.
    pub signature: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// Reads the scheme's headers through `header` (a case-insensitive header lookup).
    pub fn read(scheme: Scheme, header: impl Fn(&str) -> Option<&'a str>, body: &'a [u8]) -> Self {
        let (id, ts, sig) = match scheme {
            Scheme::Standard => (
                STANDARD_ID_HEADER,
                STANDARD_TIMESTAMP_HEADER,
                STANDARD_SIGNATURE_HEADER,
            ),
            Scheme::Hex => (HEX_ID_HEADER, HEX_TIMESTAMP_HEADER, HEX_SIGNATURE_HEADER),
        };
        Self {
            scheme,
            id: header(id),
            timestamp: header(ts),
            signature: header(sig),
            body,
        }
    }
}

/// A delivery whose signature matched one of the keys; its timestamp is not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The webhook id (always in the Standard scheme; when sent in the hex scheme).
    pub id: Option<WebhookId>,
    /// The signed timestamp.
    pub timestamp: WebhookTimestamp,
}

impl Verified {
    /// Checks the signed timestamp against `now` (±`tolerance`).
    ///
    /// # Errors
    /// [`SignatureFailure::TimestampOutOfWindow`].
    pub fn check_window(
        &self,
        now: Timestamp,
        tolerance: Duration,
    ) -> Result<(), SignatureFailure> {
        if self.timestamp.is_within(now, tolerance) {
            Ok(())
        } else {
            Err(SignatureFailure::TimestampOutOfWindow)
        }
    }
}

/// Verifies a delivery's signature against every key of `secrets` (secrets for `v1` entries,
/// public keys for `v1a` ones; only secrets in the hex scheme).
///
/// # Errors
/// A [`SignatureFailure`]: missing or malformed headers, no secret configured, no supported
/// signature version, or no match.
pub fn verify(delivery: &Delivery<'_>, secrets: &SecretSet) -> Result<Verified, SignatureFailure> {
    match delivery.scheme {
        Scheme::Standard => verify_standard(delivery, secrets),
        Scheme::Hex => verify_hex(delivery, secrets),
    }
}

fn verify_standard(d: &Delivery<'_>, secrets: &SecretSet) -> Result<Verified, SignatureFailure> {
    let id_text =
        d.id.ok_or(SignatureFailure::MissingHeader(STANDARD_ID_HEADER))?;
    let ts_text = d
        .timestamp
        .ok_or(SignatureFailure::MissingHeader(STANDARD_TIMESTAMP_HEADER))?;
    let header = d
        .signature
        .ok_or(SignatureFailure::MissingHeader(STANDARD_SIGNATURE_HEADER))?;
    let id =
        WebhookId::parse(id_text).ok_or(SignatureFailure::MalformedHeader(STANDARD_ID_HEADER))?;
    let timestamp = WebhookTimestamp::parse(ts_text)
        .ok_or(SignatureFailure::MalformedHeader(STANDARD_TIMESTAMP_HEADER))?;
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(SignatureFailure::MalformedHeader(STANDARD_SIGNATURE_HEADER));
    }
    // The v1 and v1a entries, decoded; entries of other versions, and entries that are not a
    // base64 SHA-256 tag (v1) or a base64 64-byte signature (v1a), can never match and are
    // skipped.
    let mut tags = [[0u8; TAG_LEN]; MAX_SIGNATURE_ENTRIES];
    let mut tag_count = 0;
    let mut signatures = [[0u8; SIGNATURE_LENGTH]; MAX_SIGNATURE_ENTRIES];
    let mut signature_count = 0;
    let mut any_supported = false;
    for entry in header.split_ascii_whitespace().take(MAX_SIGNATURE_ENTRIES) {
        match entry.split_once(',') {
            Some(("v1", encoded)) => {
                any_supported = true;
                let mut buffer = [0u8; TAG_LEN + 3];
                if let Ok(TAG_LEN) = BASE64.decode_slice(encoded, &mut buffer)
                    && let Some(slot) = tags.get_mut(tag_count)
                {
                    slot.copy_from_slice(&buffer[..TAG_LEN]);
                    tag_count += 1;
                }
            }
            Some(("v1a", encoded)) => {
                any_supported = true;
                let mut buffer = [0u8; SIGNATURE_LENGTH + 3];
                if let Ok(SIGNATURE_LENGTH) = BASE64.decode_slice(encoded, &mut buffer)
                    && let Some(slot) = signatures.get_mut(signature_count)
                {
                    slot.copy_from_slice(&buffer[..SIGNATURE_LENGTH]);
                    signature_count += 1;
                }
            }
            _ => {}
        }
    }
    if secrets.is_empty() {
        return Err(SignatureFailure::NoSecrets);
    }
    if !any_supported {
        return Err(SignatureFailure::UnsupportedVersion);
    }
    let mut matched = Choice::from(0);
    for secret in &secrets.secrets {
        let mut mac = secret.mac();
        mac.update(id_text.as_bytes());
        mac.update(b".");
        mac.update(ts_text.as_bytes());
        mac.update(b".");
        mac.update(d.body);
        let expected = mac.finalize().into_bytes();
        for entry in tags.iter().take(tag_count) {
            matched |= expected[..].ct_eq(&entry[..]);
        }
    }
    if signature_count > 0 && !secrets.public_keys.is_empty() {
        let content = signed_content(id_text, ts_text, d.body);
        for key in &secrets.public_keys {
            for entry in signatures.iter().take(signature_count) {
                matched |= Choice::from(u8::from(verifies(key.verifying_key(), &content, entry)));
            }
        }
    }
    if bool::from(matched) {
        Ok(Verified {
            id: Some(id),
            timestamp,
        })
    } else {
        Err(SignatureFailure::Mismatch)
    }
}

/// The Standard Webhooks signed content: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// Whether `signature` is a valid ed25519 signature of `content` under `key`, in the strict sense:
/// a small-order key or `R`, or a non-canonical `s`, fails.
fn verifies(key: &VerifyingKey, content: &[u8], signature: &[u8; SIGNATURE_LENGTH]) -> bool {
    key.verify_strict(content, &Signature::from_bytes(signature))
        .is_ok()
}

fn verify_hex(d: &Delivery<'_>, secrets: &SecretSet) -> Result<Verified, SignatureFailure> {
    let ts_text = d
        .timestamp
        .ok_or(SignatureFailure::MissingHeader(HEX_TIMESTAMP_HEADER))?;
    let header = d
        .signature
        .ok_or(SignatureFailure::MissingHeader(HEX_SIGNATURE_HEADER))?;
    let id = match d.id {
        Some(text) => {
            Some(WebhookId::parse(text).ok_or(SignatureFailure::MalformedHeader(HEX_ID_HEADER))?)
        }
        None => None,
    };
    let timestamp = WebhookTimestamp::parse(ts_text)
        .ok_or(SignatureFailure::MalformedHeader(HEX_TIMESTAMP_HEADER))?;
    let hex_text = header.trim();
    let hex_text = match hex_text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &hex_text[7..],
        _ => hex_text,
    };
    let mut given = [0u8; TAG_LEN];
    hex::decode_to_slice(hex_text, &mut given)
        .map_err(|_| SignatureFailure::MalformedHeader(HEX_SIGNATURE_HEADER))?;
    if secrets.secrets.is_empty() {
        return Err(SignatureFailure::NoSecrets);
    }
    let mut matched = Choice::from(0);
    for secret in &secrets.secrets {
        let mut mac = secret.mac();
        mac.update(ts_text.as_bytes());
        mac.update(d.body);
        matched |= mac.finalize().into_bytes()[..].ct_eq(&given[..]);
    }
    if bool::from(matched) {
        Ok(Verified { id, timestamp })
    } else {
        Err(SignatureFailure::Mismatch)
    }
}

/// Signs like a Standard Webhooks sender: `v1,<base64>` for each secret, space-separated (public
/// keys sign nothing: `v1a` signatures come from the platform's signing key, never held here). For
/// tests, the benchmark and the sample event; the simulator has its own, independent signer.
pub fn sign_standard(secrets: &SecretSet, id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .secrets
        .iter()
        .map(|secret| {
            let mut mac = secret.mac();
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Signs like a hex-scheme sender: `sha256=<lowercase hex>` with the first secret.
pub fn sign_hex(secrets: &SecretSet, timestamp: &str, body: &[u8]) -> String {
    secrets.secrets.first().map_or_else(String::new, |secret| {
        let mut mac = secret.mac();
        mac.update(timestamp.as_bytes());
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published test-vector secret (not a credential).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn set(texts: &[&str], scheme: Scheme) -> SecretSet {
        SecretSet::from_secrets(
            texts
                .iter()
                .map(|t| WebhookSecret::parse(t, scheme).unwrap())
                .collect(),
        )
    }

    fn standard<'a>(id: &'a str, ts: &'a str, sig: &'a str, body: &'a [u8]) -> Delivery<'a> {
        Delivery {
            scheme: Scheme::Standard,
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
            body,
        }
    }

    #[test]
    fn secrets_are_read_with_or_without_base64_padding() {
        // base64 of the text "second-secret-for-rotation": a made-up test value.
        let padded = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";
        let unpadded = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24";
        let body = b"{}";
        let a = sign_standard(&set(&[padded], Scheme::Standard), "msg_1", 1, body);
        let b = sign_standard(&set(&[unpadded], Scheme::Standard), "msg_1", 1, body);
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_short_and_unprefixed_secrets_are_refused_without_quoting_them() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Scheme::Standard).err(),
            Some(SecretFormatError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!!notbase64", Scheme::Standard).err(),
            Some(SecretFormatError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=", Scheme::Standard).err(),
            Some(SecretFormatError::BadLength)
        );
        let e = SecretSet::parse(r#"{"secrets": ["whsec_!!!sekrit"]}"#, Scheme::Standard)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("sekrit"), "{e}");
        assert!(e.contains("#0"), "{e}");
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = set(&[SECRET], Scheme::Standard);
        let shown = format!("{s:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
    }

    #[test]
    fn a_document_lists_secrets_and_ignores_other_members() {
        let doc = format!(r#"{{"secrets": ["{SECRET}"], "bootstrap": "x"}}"#);
        assert_eq!(SecretSet::parse(&doc, Scheme::Standard).unwrap().len(), 1);
        assert_eq!(SecretSet::parse(SECRET, Scheme::Standard).unwrap().len(), 1);
        assert!(
            SecretSet::parse(r#"{"keys": []}"#, Scheme::Standard)
                .unwrap()
                .is_empty()
        );
        assert!(SecretSet::parse("[1, 2]", Scheme::Standard).is_err());
        assert!(SecretSet::parse("", Scheme::Standard).is_err());
    }

    #[test]
    fn ids_and_timestamps_are_parsed_strictly() {
        assert!(WebhookId::parse("msg_p5jXN8AQM9LWM0D4loKWxJek").is_some());
        assert!(WebhookId::parse("").is_none());
        assert!(WebhookId::parse("has space").is_none());
        assert!(WebhookId::parse(&"x".repeat(257)).is_none());
        assert_eq!(
            WebhookTimestamp::parse("1614265330").map(WebhookTimestamp::as_secs),
            Some(1_614_265_330)
        );
        for bad in ["", "-1", "+5", "1.5", "1e9", "0x10", "1234567890123"] {
            assert!(WebhookTimestamp::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_window_is_inclusive_on_both_sides() {
        let now = Timestamp::from_secs(1000);
        let w = Duration::from_secs(300);
        assert!(WebhookTimestamp(700).is_within(now, w));
        assert!(WebhookTimestamp(1300).is_within(now, w));
        assert!(!WebhookTimestamp(699).is_within(now, w));
        assert!(!WebhookTimestamp(1301).is_within(now, w));
    }

    #[test]
    fn any_matching_v1_entry_passes_and_other_versions_are_ignored() {
        let secrets = set(&[SECRET], Scheme::Standard);
        let good = sign_standard(&secrets, "msg_1", 10, b"{}");
        let header = format!("v2,abc v1,AAAA {good} v1a,zzz");
        assert!(verify(&standard("msg_1", "10", &header, b"{}"), &secrets).is_ok());
        let only_v2 = good.replacen("v1,", "v2,", 1);
        assert_eq!(
            verify(&standard("msg_1", "10", &only_v2, b"{}"), &secrets).err(),
            Some(SignatureFailure::UnsupportedVersion)
        );
    }

    /// The Standard Webhooks specification's published example delivery (id, timestamp, body).
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: &str = "1614265330";
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    /// RFC 8032 section 7.1 TEST 1's public key, as published (hex) and as `whpk_`.
    const RFC8032_TEST1_PUBLIC_HEX: &str =
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_TEST1_WHPK: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    /// RFC 8032 section 7.1 TEST 2's public key, as `whpk_`: a key that did not sign below.
    const RFC8032_TEST2_WHPK: &str = "whpk_PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=";
    /// The `v1a` entry of the example delivery signed with RFC 8032 TEST 1's secret key by another
    /// implementation: Python's `cryptography` package, through tests/clients/sign_webhook_v1a.py
    /// (`--seed-hex 9d61b1…7f60 --id msg_p5jXN8AQM9LWM0D4loKWxJek --timestamp 1614265330`, the
    /// body on standard input).
    const VECTOR_V1A: &str = "v1a,fldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPePmPsle0zV9jSeGlHFG2NVAw==";

    fn keys(whpks: &[&str]) -> SecretSet {
        SecretSet::from_keys(
            Vec::new(),
            whpks
                .iter()
                .map(|k| WebhookPublicKey::parse(k).unwrap())
                .collect(),
        )
    }

    #[test]
    fn a_v1a_signature_made_by_an_independent_implementation_verifies_against_its_whpk() {
        // The whpk_ form carries exactly the RFC's public key bytes.
        let mut published = [0u8; 32];
        hex::decode_to_slice(RFC8032_TEST1_PUBLIC_HEX, &mut published).unwrap();
        assert_eq!(
            WebhookPublicKey::parse(RFC8032_TEST1_WHPK)
                .unwrap()
                .verifying_key()
                .as_bytes(),
            &published
        );
        let set = keys(&[RFC8032_TEST1_WHPK]);
        let verified = verify(
            &standard(VECTOR_ID, VECTOR_TS, VECTOR_V1A, VECTOR_BODY),
            &set,
        )
        .unwrap();
        assert_eq!(verified.timestamp.as_secs(), 1_614_265_330);
        assert_eq!(verified.id.unwrap().as_str(), VECTOR_ID);
    }

    #[test]
    fn a_v1a_signature_is_refused_for_another_key_another_body_id_or_timestamp() {
        let d = |id, ts, body| standard(id, ts, VECTOR_V1A, body);
        let mismatch = Some(SignatureFailure::Mismatch);
        let other_key = keys(&[RFC8032_TEST2_WHPK]);
        assert_eq!(
            verify(&d(VECTOR_ID, VECTOR_TS, VECTOR_BODY), &other_key).err(),
            mismatch
        );
        let set = keys(&[RFC8032_TEST1_WHPK]);
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&d(VECTOR_ID, VECTOR_TS, tampered), &set).err(),
            mismatch
        );
        assert_eq!(
            verify(&d("msg_other", VECTOR_TS, VECTOR_BODY), &set).err(),
            mismatch
        );
        assert_eq!(
            verify(&d(VECTOR_ID, "1614265331", VECTOR_BODY), &set).err(),
            mismatch
        );
        // A v1 entry carrying the ed25519 signature, or a v1a entry of the wrong length, is no
        // signature at all.
        let as_v1 = VECTOR_V1A.replacen("v1a,", "v1,", 1);
        assert_eq!(
            verify(&standard(VECTOR_ID, VECTOR_TS, &as_v1, VECTOR_BODY), &set).err(),
            mismatch
        );
        assert_eq!(
            verify(
                &standard(VECTOR_ID, VECTOR_TS, "v1a,AAAA", VECTOR_BODY),
                &set
            )
            .err(),
            mismatch
        );
    }

    #[test]
    fn a_v1a_signature_with_a_non_canonical_s_is_refused() {
        // s + ℓ (the group order) is the same scalar modulo ℓ, but not its canonical encoding.
        const ORDER: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bytes = BASE64
            .decode(VECTOR_V1A.trim_start_matches("v1a,"))
            .unwrap();
        let mut carry = 0u16;
        for (byte, add) in bytes[32..].iter_mut().zip(ORDER) {
            let sum = u16::from(*byte) + u16::from(add) + carry;
            *byte = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let header = format!(
            "v1a,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
        assert_eq!(
            verify(
                &standard(VECTOR_ID, VECTOR_TS, &header, VECTOR_BODY),
                &keys(&[RFC8032_TEST1_WHPK])
            )
            .err(),
            Some(SignatureFailure::Mismatch)
        );
    }

    #[test]
    fn old_and_new_public_keys_both_verify_while_both_are_configured() {
        let set = keys(&[RFC8032_TEST2_WHPK, RFC8032_TEST1_WHPK]);
        assert!(
            verify(
                &standard(VECTOR_ID, VECTOR_TS, VECTOR_V1A, VECTOR_BODY),
                &set
            )
            .is_ok()
        );
    }

    #[test]
    fn a_header_listing_v1a_and_v1_passes_when_either_one_verifies() {
        let secrets = set(&[SECRET], Scheme::Standard);
        let good_v1 = sign_standard(&secrets, VECTOR_ID, 1_614_265_330, VECTOR_BODY);
        let both = SecretSet::from_keys(
            secrets.secrets,
            vec![WebhookPublicKey::parse(RFC8032_TEST1_WHPK).unwrap()],
        );
        let bad_v1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let bad_v1a = VECTOR_V1A.replacen("fldx", "fldy", 1);
        for header in [
            format!("{VECTOR_V1A} {bad_v1}"),
            format!("{bad_v1} {VECTOR_V1A}"),
            format!("{bad_v1a} {good_v1}"),
            format!("{good_v1} {bad_v1a}"),
        ] {
            assert!(
                verify(&standard(VECTOR_ID, VECTOR_TS, &header, VECTOR_BODY), &both).is_ok(),
                "{header}"
            );
        }
        assert_eq!(
            verify(
                &standard(
                    VECTOR_ID,
                    VECTOR_TS,
                    &format!("{bad_v1a} {bad_v1}"),
                    VECTOR_BODY
                ),
                &both
            )
            .err(),
            Some(SignatureFailure::Mismatch)
        );
        // Each kind of signature is checked only against keys of its kind: a receiver holding
        // only the secret does not accept the v1a entry, and one holding only the public key
        // does not accept the v1 entry.
        let secret_only = set(&[SECRET], Scheme::Standard);
        assert!(
            verify(
                &standard(VECTOR_ID, VECTOR_TS, VECTOR_V1A, VECTOR_BODY),
                &secret_only
            )
            .is_err()
        );
        assert!(
            verify(
                &standard(VECTOR_ID, VECTOR_TS, &good_v1, VECTOR_BODY),
                &keys(&[RFC8032_TEST1_WHPK])
            )
            .is_err()
        );
    }

    #[test]
    fn a_header_of_only_unknown_versions_is_unsupported_even_with_a_valid_ed25519_signature() {
        let v2 = VECTOR_V1A.replacen("v1a,", "v2,", 1);
        let v2a = VECTOR_V1A.replacen("v1a,", "v2a,", 1);
        for header in [v2, v2a, "v1b,abc".to_owned()] {
            assert_eq!(
                verify(
                    &standard(VECTOR_ID, VECTOR_TS, &header, VECTOR_BODY),
                    &keys(&[RFC8032_TEST1_WHPK])
                )
                .err(),
                Some(SignatureFailure::UnsupportedVersion),
                "{header}"
            );
        }
    }

    #[test]
    fn a_document_of_public_keys_only_is_valid_and_a_bare_whpk_is_a_one_key_list() {
        let doc = format!(r#"{{"publicKeys": ["{RFC8032_TEST1_WHPK}", "{RFC8032_TEST2_WHPK}"]}}"#);
        let set = SecretSet::parse(&doc, Scheme::Standard).unwrap();
        assert_eq!((set.secret_count(), set.public_keys().len()), (0, 2));
        assert!(!set.is_empty());
        let set = SecretSet::parse(RFC8032_TEST1_WHPK, Scheme::Standard).unwrap();
        assert_eq!(set.public_keys()[0].to_whpk(), RFC8032_TEST1_WHPK);
        let mixed =
            format!(r#"{{"secrets": ["{SECRET}"], "publicKeys": ["{RFC8032_TEST1_WHPK}"]}}"#);
        assert_eq!(SecretSet::parse(&mixed, Scheme::Standard).unwrap().len(), 2);
        // Unpadded base64 is read too.
        let unpadded = RFC8032_TEST1_WHPK.trim_end_matches('=');
        assert!(WebhookPublicKey::parse(unpadded).is_ok());
    }

    #[test]
    fn a_whsk_signing_key_in_the_receivers_document_is_refused_without_echoing_it() {
        // RFC 8032 TEST 1's secret key followed by its public key, as whsk_ (a published value).
        let whsk = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==";
        let key_text = whsk.trim_start_matches("whsk_");
        for (doc, member, index) in [
            (
                format!(r#"{{"secrets": ["{SECRET}", "{whsk}"]}}"#),
                DocumentMember::Secrets,
                1,
            ),
            (
                format!(r#"{{"publicKeys": ["{RFC8032_TEST1_WHPK}", "{whsk}"]}}"#),
                DocumentMember::PublicKeys,
                1,
            ),
            (whsk.to_owned(), DocumentMember::Secrets, 0),
            (format!("  {whsk}\n"), DocumentMember::Secrets, 0),
        ] {
            let err = SecretSet::parse(&doc, Scheme::Standard).unwrap_err();
            assert_eq!(err, DocumentError::SigningKey { member, index }, "{doc}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&key_text[..12]), "{shown}");
            assert!(shown.contains("whsk_"), "{shown}");
        }
    }

    #[test]
    fn misplaced_malformed_and_weak_public_keys_are_refused() {
        let among_secrets = format!(r#"{{"secrets": ["{RFC8032_TEST1_WHPK}"]}}"#);
        assert_eq!(
            SecretSet::parse(&among_secrets, Scheme::Standard).err(),
            Some(DocumentError::PublicKeyAmongSecrets { index: 0 })
        );
        let hex_scheme = format!(r#"{{"publicKeys": ["{RFC8032_TEST1_WHPK}"]}}"#);
        assert_eq!(
            SecretSet::parse(&hex_scheme, Scheme::Hex).err(),
            Some(DocumentError::PublicKeysNeedTheStandardScheme)
        );
        for (text, problem) in [
            (
                RFC8032_TEST1_WHPK.trim_start_matches("whpk_"),
                PublicKeyFormatError::MissingPrefix,
            ),
            ("whpk_!!!!", PublicKeyFormatError::NotBase64),
            ("whpk_c2hvcnQ=", PublicKeyFormatError::BadLength),
            (
                "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURrXWpgB",
                PublicKeyFormatError::BadLength,
            ),
            // The identity point (order 1) and a point of order 4.
            (
                "whpk_AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                PublicKeyFormatError::Weak,
            ),
            (
                "whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                PublicKeyFormatError::Weak,
            ),
        ] {
            assert_eq!(WebhookPublicKey::parse(text).err(), Some(problem), "{text}");
        }
        let doc = r#"{"publicKeys": ["whpk_!!!!"]}"#;
        let err = SecretSet::parse(doc, Scheme::Standard).unwrap_err();
        assert!(err.to_string().contains("public key #0"), "{err}");
    }

    #[test]
    fn a_public_key_shows_only_its_start_in_debug() {
        let set = keys(&[RFC8032_TEST1_WHPK]);
        let shown = format!("{set:?}");
        assert!(shown.contains("whpk_11qYAYKx…"), "{shown}");
        assert!(!shown.contains(&RFC8032_TEST1_WHPK[5..20]), "{shown}");
    }

    #[test]
    fn the_hex_scheme_accepts_a_prefixed_or_bare_uppercase_or_lowercase_signature() {
        let secrets = set(&["plain-text-secret-of-some-length"], Scheme::Hex);
        let sig = sign_hex(&secrets, "1700000000", b"{\"a\":1}");
        let bare = sig.trim_start_matches("sha256=").to_owned();
        for header in [
            sig.clone(),
            bare.clone(),
            bare.to_uppercase(),
            format!("SHA256={bare}"),
        ] {
            let d = Delivery {
                scheme: Scheme::Hex,
                id: None,
                timestamp: Some("1700000000"),
                signature: Some(&header),
                body: b"{\"a\":1}",
            };
            assert!(verify(&d, &secrets).is_ok(), "{header}");
        }
        let d = Delivery {
            scheme: Scheme::Hex,
            id: None,
            timestamp: Some("1700000001"),
            signature: Some(&sig),
            body: b"{\"a\":1}",
        };
        assert_eq!(verify(&d, &secrets).err(), Some(SignatureFailure::Mismatch));
    }
}

#[cfg(test)]
mod properties;
