//! The webhook secrets: one configured secret (`whsec_<base64>`, or plain text in the hex scheme)
//! and the document that lists the secrets accepted at one time. Parsing never quotes a value.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
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
        let bytes = match text.strip_prefix("whsec_") {
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

/// The secrets accepted at one time (one or more while the platform rotates).
#[derive(Debug, Default)]
pub struct SecretSet {
    pub(super) secrets: Vec<WebhookSecret>,
}

/// The secret document: `{"secrets": ["whsec_…", …]}` (other members are ignored).
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    secrets: Vec<String>,
}

impl Drop for Document {
    fn drop(&mut self) {
        for s in &mut self.secrets {
            s.zeroize();
        }
    }
}

/// Why the secret document could not be read (never quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not `{"secrets": [...]}` nor a single secret.
    #[error("not a webhook secrets document (expected {{\"secrets\": [\"whsec_...\"]}})")]
    NotADocument,
    /// One entry is not a valid secret.
    #[error("secret #{index}: {problem}")]
    BadSecret {
        /// Its position in the list.
        index: usize,
        /// What is wrong with it.
        problem: SecretFormatError,
    },
}

impl SecretSet {
    /// The secrets of a document: `{"secrets": ["whsec_…", …]}`, or one secret on its own
    /// (`whsec_…`, or plain text in the hex scheme).
    ///
    /// # Errors
    /// [`DocumentError`], naming the position of a bad entry but never a value.
    pub fn parse(text: &str, scheme: Scheme) -> Result<Self, DocumentError> {
        let trimmed = text.trim();
        let texts: Vec<Zeroizing<String>> = if trimmed.starts_with('{') {
            let mut document: Document =
                serde_json::from_str(trimmed).map_err(|_| DocumentError::NotADocument)?;
            std::mem::take(&mut document.secrets)
                .into_iter()
                .map(Zeroizing::new)
                .collect()
        } else if trimmed.is_empty() {
            return Err(DocumentError::NotADocument);
        } else {
            vec![Zeroizing::new(trimmed.to_owned())]
        };
        let secrets = texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                WebhookSecret::parse(t, scheme)
                    .map_err(|problem| DocumentError::BadSecret { index, problem })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { secrets })
    }

    /// A set of already parsed secrets.
    pub fn from_secrets(secrets: Vec<WebhookSecret>) -> Self {
        Self { secrets }
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no secret is configured (every callback is then refused).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}
