//! The webhook keys: one configured secret (`whsec_<base64>`, or plain text in the hex scheme),
//! one platform public key (`whpk_<base64>`, for `v1a` ed25519 signatures), and the document that
//! lists the keys accepted at one time. Parsing never quotes a value.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{PUBLIC_KEY_LENGTH, VerifyingKey};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::{HmacSha256, Scheme};

/// The shortest secret accepted, in bytes (Standard Webhooks secrets are 24–64 bytes).
pub const MIN_SECRET_BYTES: usize = 16;
/// The longest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 256;

/// Standard base64, with or without padding (Standard Webhooks secrets are seen both ways).
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The prefix of a Standard Webhooks ed25519 public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The prefix of a Standard Webhooks ed25519 secret (signing) key: never accepted here.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";

/// Why a configured secret was refused (never quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// Standard Webhooks secrets are `whsec_<base64>`.
    #[error("a Standard Webhooks secret must start with whsec_")]
    MissingPrefix,
    /// The text after `whsec_` is not standard base64.
    #[error("the text after whsec_ is not standard base64")]
    NotBase64,
    /// Too short to be a safe HMAC key, or unreasonably long.
    #[error("a secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes long")]
    BadLength,
}

/// One webhook signing secret (the HMAC key bytes). `Debug` is redacted; the bytes are zeroized
/// on drop.
pub struct WebhookSecret(SecretBox<[u8]>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

impl WebhookSecret {
    /// Parses a configured secret: `whsec_<base64>` (padding optional) in either scheme, or plain
    /// text (its UTF-8 bytes) in the hex scheme.
    ///
    /// # Errors
    /// [`SecretFormatError`] naming what is wrong, never the value.
    pub fn parse(text: &str, scheme: Scheme) -> Result<Self, SecretFormatError> {
        let text = text.trim();
        let bytes = match text.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => {
                let mut buffer = Zeroizing::new(vec![0u8; encoded.len().div_ceil(4) * 3 + 3]);
                let len = BASE64
                    .decode_slice(encoded, buffer.as_mut_slice())
                    .map_err(|_| SecretFormatError::NotBase64)?;
                Self::exact(buffer.get(..len).unwrap_or_default())?
            }
            None if scheme == Scheme::Hex => Self::exact(text.as_bytes())?,
            None => return Err(SecretFormatError::MissingPrefix),
        };
        Ok(Self(bytes))
    }

    fn exact(bytes: &[u8]) -> Result<SecretBox<[u8]>, SecretFormatError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretFormatError::BadLength);
        }
        Ok(SecretBox::new(Box::from(bytes)))
    }

    pub(super) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }
}

/// Why a configured public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyFormatError {
    /// Standard Webhooks public keys are `whpk_<base64>`.
    #[error("a Standard Webhooks public key must start with whpk_")]
    MissingPrefix,
    /// The text after `whpk_` is not standard base64.
    #[error("the text after whpk_ is not standard base64")]
    NotBase64,
    /// Not the 32 bytes of an ed25519 public key.
    #[error("an ed25519 public key is {PUBLIC_KEY_LENGTH} bytes long")]
    BadLength,
    /// The bytes are not the encoding of a curve point.
    #[error("not an ed25519 public key")]
    NotAPoint,
    /// A point of small order: a signature would verify for almost any message.
    #[error("a weak (small-order) ed25519 public key")]
    Weak,
}

/// One platform public key: verifies `v1a` (ed25519) signatures. Not a secret, but `Debug` shows
/// only the start of its `whpk_` form.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookPublicKey(VerifyingKey);

impl fmt::Debug for WebhookPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = BASE64.encode(self.0.as_bytes());
        write!(
            f,
            "WebhookPublicKey({PUBLIC_KEY_PREFIX}{}…)",
            encoded.get(..8).unwrap_or_default()
        )
    }
}

impl WebhookPublicKey {
    /// Parses `whpk_<base64 of the 32-byte ed25519 public key>` (padding optional). Small-order
    /// points are refused here, and again by the strict verification.
    ///
    /// # Errors
    /// [`PublicKeyFormatError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, PublicKeyFormatError> {
        let encoded = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(PublicKeyFormatError::MissingPrefix)?;
        let mut buffer = [0u8; PUBLIC_KEY_LENGTH + 3];
        let len = BASE64
            .decode_slice(encoded, &mut buffer)
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => PublicKeyFormatError::BadLength,
                base64::DecodeSliceError::DecodeError(_) => PublicKeyFormatError::NotBase64,
            })?;
        let bytes: &[u8; PUBLIC_KEY_LENGTH] = buffer
            .get(..len)
            .and_then(|b| b.try_into().ok())
            .ok_or(PublicKeyFormatError::BadLength)?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| PublicKeyFormatError::NotAPoint)?;
        if key.is_weak() {
            return Err(PublicKeyFormatError::Weak);
        }
        Ok(Self(key))
    }

    /// The key in its `whpk_` form.
    pub fn to_whpk(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes())
        )
    }

    pub(super) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// The keys accepted at one time (one or more of each kind while the platform rotates): `whsec_`
/// secrets for `v1` signatures and `whpk_` public keys for `v1a` ones.
#[derive(Debug, Default)]
pub struct SecretSet {
    pub(super) secrets: Vec<WebhookSecret>,
    pub(super) public_keys: Vec<WebhookPublicKey>,
}

/// The secret document: `{"secrets": ["whsec_…", …], "publicKeys": ["whpk_…", …]}`, either member
/// optional (other members are ignored).
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default, rename = "publicKeys")]
    public_keys: Vec<String>,
}

impl Drop for Document {
    fn drop(&mut self) {
        // Public keys are not secret, but a signing key put there by mistake is.
        for s in self.secrets.iter_mut().chain(&mut self.public_keys) {
            s.zeroize();
        }
    }
}

/// Which list of the document an entry was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentMember {
    /// `secrets` (or a bare value).
    Secrets,
    /// `publicKeys`.
    PublicKeys,
}

impl fmt::Display for DocumentMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secrets => "secret",
            Self::PublicKeys => "public key",
        })
    }
}

/// Why the secret document could not be read (never quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not `{"secrets": [...], "publicKeys": [...]}` nor a single secret or public key.
    #[error(
        "not a webhook secrets document (expected {{\"secrets\": [\"whsec_...\"], \"publicKeys\": [\"whpk_...\"]}})"
    )]
    NotADocument,
    /// One entry of `secrets` is not a valid secret.
    #[error("secret #{index}: {problem}")]
    BadSecret {
        /// Its position in the list.
        index: usize,
        /// What is wrong with it.
        problem: SecretFormatError,
    },
    /// One entry of `publicKeys` is not a valid public key.
    #[error("public key #{index}: {problem}")]
    BadPublicKey {
        /// Its position in the list.
        index: usize,
        /// What is wrong with it.
        problem: PublicKeyFormatError,
    },
    /// A `whpk_` public key listed among the secrets.
    #[error("secret #{index} is a whpk_ public key: list it under \"publicKeys\"")]
    PublicKeyAmongSecrets {
        /// Its position in `secrets`.
        index: usize,
    },
    /// A `whsk_` signing key: the platform's private key, which the receiver must never hold.
    #[error(
        "{member} #{index} is a whsk_ signing key: remove it, list only the platform's whpk_ public key under \"publicKeys\", and have the platform replace the exposed key"
    )]
    SigningKey {
        /// The list it was in.
        member: DocumentMember,
        /// Its position in that list.
        index: usize,
    },
    /// Public keys in a document read for the hex scheme, which has no asymmetric signatures.
    #[error("public keys (v1a signatures) are only verified with WEBHOOK_SCHEME=standard")]
    PublicKeysNeedTheStandardScheme,
}

impl SecretSet {
    /// The keys of a document: `{"secrets": ["whsec_…", …], "publicKeys": ["whpk_…", …]}` (either
    /// member may be absent or empty, so a document of public keys only is valid), or one key on
    /// its own (`whsec_…`, `whpk_…`, or a plain-text secret in the hex scheme).
    ///
    /// A `whsk_` signing key anywhere is refused: the receiver holds only what verifies. A
    /// `whpk_` key among the secrets is refused too (it belongs under `publicKeys`), and so are
    /// public keys in the hex scheme, which has no `v1a` signatures.
    ///
    /// # Errors
    /// [`DocumentError`], naming the position of a bad entry but never a value.
    pub fn parse(text: &str, scheme: Scheme) -> Result<Self, DocumentError> {
        let trimmed = text.trim();
        let (secret_texts, key_texts): (Vec<Zeroizing<String>>, Vec<Zeroizing<String>>) =
            if trimmed.starts_with('{') {
                let mut document: Document =
                    serde_json::from_str(trimmed).map_err(|_| DocumentError::NotADocument)?;
                let take = |list: &mut Vec<String>| -> Vec<Zeroizing<String>> {
                    std::mem::take(list)
                        .into_iter()
                        .map(Zeroizing::new)
                        .collect()
                };
                (take(&mut document.secrets), take(&mut document.public_keys))
            } else if trimmed.is_empty() {
                return Err(DocumentError::NotADocument);
            } else if trimmed.starts_with(PUBLIC_KEY_PREFIX) {
                (Vec::new(), vec![Zeroizing::new(trimmed.to_owned())])
            } else {
                (vec![Zeroizing::new(trimmed.to_owned())], Vec::new())
            };
        for (member, texts) in [
            (DocumentMember::Secrets, &secret_texts),
            (DocumentMember::PublicKeys, &key_texts),
        ] {
            if let Some(index) = texts
                .iter()
                .position(|t| t.trim_start().starts_with(SIGNING_KEY_PREFIX))
            {
                return Err(DocumentError::SigningKey { member, index });
            }
        }
        if let Some(index) = secret_texts
            .iter()
            .position(|t| t.trim_start().starts_with(PUBLIC_KEY_PREFIX))
        {
            return Err(DocumentError::PublicKeyAmongSecrets { index });
        }
        if scheme == Scheme::Hex && !key_texts.is_empty() {
            return Err(DocumentError::PublicKeysNeedTheStandardScheme);
        }
        let secrets = secret_texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                WebhookSecret::parse(t, scheme)
                    .map_err(|problem| DocumentError::BadSecret { index, problem })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let public_keys = key_texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                WebhookPublicKey::parse(t)
                    .map_err(|problem| DocumentError::BadPublicKey { index, problem })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            secrets,
            public_keys,
        })
    }

    /// A set of already parsed secrets (and no public key).
    pub fn from_secrets(secrets: Vec<WebhookSecret>) -> Self {
        Self {
            secrets,
            public_keys: Vec::new(),
        }
    }

    /// A set of already parsed secrets and public keys.
    pub fn from_keys(secrets: Vec<WebhookSecret>, public_keys: Vec<WebhookPublicKey>) -> Self {
        Self {
            secrets,
            public_keys,
        }
    }

    /// How many keys (secrets and public keys) are accepted.
    pub fn len(&self) -> usize {
        self.secrets.len() + self.public_keys.len()
    }

    /// How many `whsec_` (or hex-scheme) secrets are accepted.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// The accepted public keys.
    pub fn public_keys(&self) -> &[WebhookPublicKey] {
        &self.public_keys
    }

    /// Whether no key of either kind is configured (every callback is then refused).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.public_keys.is_empty()
    }
}
