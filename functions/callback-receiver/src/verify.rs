//! Webhook signatures: Standard Webhooks (the default) and a hex HMAC scheme.
//!
//! **Standard Webhooks** (`WEBHOOK_SCHEME=standard`): headers `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`, a space-separated list of `<version>,<signature>`
//! entries. Every `v1` entry is the standard base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`
//! keyed with the secret's bytes (the base64 text after `whsec_`). Any matching `v1` entry passes;
//! entries of other versions are ignored, so a header with no `v1` entry never passes.
//!
//! **Hex** (`WEBHOOK_SCHEME=hex`): headers `x-webhook-signature` (lowercase or uppercase hex
//! HMAC-SHA256, optionally prefixed `sha256=`), `x-webhook-timestamp` (Unix seconds) and, when the
//! platform sends one, `x-webhook-id`. The MAC covers the timestamp header's exact text
//! immediately followed by the raw body. Secrets are either `whsec_<base64>` or plain text used as
//! its UTF-8 bytes.
//!
//! Every configured secret is tried (several are accepted at once while the platform rotates),
//! and every comparison is constant-time: the loop runs over all secrets and all entries whatever
//! matches, so timing tells nothing about which secret or entry matched.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::clock::Timestamp;
use shared::error::{ApiError, ErrorType};
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

mod secrets;

use secrets::BASE64;
pub use secrets::{
    DocumentError, MAX_SECRET_BYTES, MIN_SECRET_BYTES, SecretFormatError, SecretSet, WebhookSecret,
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
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
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
    /// No secret is configured, so nothing can be verified.
    #[error("no webhook secret is configured")]
    NoSecrets,
    /// The header holds no entry of a supported version (`v1`).
    #[error("no signature of a supported version")]
    UnsupportedVersion,
    /// No entry matches any secret.
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

/// A delivery whose signature matched one of the secrets; its timestamp is not yet checked.
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

/// Verifies a delivery's signature against every secret of `secrets`.
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
    // The v1 entries, decoded; entries of other versions, and v1 entries that are not a
    // base64 SHA-256 tag, can never match and are skipped.
    let mut entries = [[0u8; TAG_LEN]; MAX_SIGNATURE_ENTRIES];
    let mut count = 0;
    let mut any_v1 = false;
    for entry in header.split_ascii_whitespace().take(MAX_SIGNATURE_ENTRIES) {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        any_v1 = true;
        let mut buffer = [0u8; TAG_LEN + 3];
        if let Ok(TAG_LEN) = BASE64.decode_slice(encoded, &mut buffer)
            && let Some(slot) = entries.get_mut(count)
        {
            slot.copy_from_slice(&buffer[..TAG_LEN]);
            count += 1;
        }
    }
    if secrets.is_empty() {
        return Err(SignatureFailure::NoSecrets);
    }
    if !any_v1 {
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
        for entry in entries.iter().take(count) {
            matched |= expected[..].ct_eq(&entry[..]);
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
    if secrets.is_empty() {
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

/// Signs like a Standard Webhooks sender: `v1,<base64>` for each secret, space-separated. For
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
