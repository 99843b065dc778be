//! ECIES on secp256r1 (P-256, the default) and secp256k1, byte-compatible with ecies.org
//! (eciespy / eciesjs / ecies-rs with their default configuration).
//!
//! Ciphertext layout: `ephemeral public key (65 bytes, uncompressed SEC1) ‖ nonce (16 bytes) ‖
//! tag (16 bytes) ‖ AES-256-GCM ciphertext`. The AES key is
//! `HKDF-SHA256(ikm = ephemeral point ‖ shared point (both uncompressed), no salt, empty info)`,
//! 32 bytes long. secp256k1 goes through the `ecies` crate; secp256r1 is the same construction
//! written with `p256`, `hkdf` and `aes-gcm`.
//!
//! `shared` re-exports this crate as `shared::ecies`.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::consts::U16;
use aes_gcm::{AeadInPlace, AesGcm, KeyInit, Nonce, aes::Aes256};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of an uncompressed SEC1 public key (`0x04 ‖ x ‖ y`).
pub const UNCOMPRESSED_KEY_LEN: usize = 65;
/// Length of the AES-GCM nonce used by the construction.
pub const NONCE_LEN: usize = 16;
/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// The smallest possible ciphertext (an empty plaintext).
pub const MIN_CIPHERTEXT_LEN: usize = UNCOMPRESSED_KEY_LEN + NONCE_LEN + TAG_LEN;

/// AES-256-GCM with the 16-byte nonce ecies.org uses.
type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// The elliptic curves the module supports.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Curve {
    /// NIST P-256, the default.
    #[default]
    Secp256r1,
    /// The Bitcoin/Ethereum curve, as used by eciespy and eciesjs.
    Secp256k1,
}

impl Curve {
    /// The curve's lowercase name (`"secp256r1"` or `"secp256k1"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Secp256r1 => "secp256r1",
            Self::Secp256k1 => "secp256k1",
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Curve {
    type Err = EciesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "secp256r1" | "p-256" | "p256" | "prime256v1" => Ok(Self::Secp256r1),
            "secp256k1" => Ok(Self::Secp256k1),
            _ => Err(EciesError::UnknownCurve(s.to_owned())),
        }
    }
}

/// Errors of the ECIES module. Messages never carry key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EciesError {
    /// The bytes are not a valid point on the curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// The bytes are not a valid non-zero scalar for the curve.
    #[error("invalid secret key")]
    InvalidSecretKey,
    /// The ciphertext is shorter than an ephemeral key, a nonce and a tag.
    #[error("ciphertext too short: {len} bytes, at least {MIN_CIPHERTEXT_LEN} expected")]
    CiphertextTooShort {
        /// Length of the ciphertext received.
        len: usize,
    },
    /// Authentication failed: wrong key, tampered or malformed ciphertext.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The encryption could not be performed (message too long for AES-GCM).
    #[error("encryption failed")]
    EncryptionFailed,
    /// A curve name that is neither `secp256r1` nor `secp256k1`.
    #[error("unknown curve {0:?} (expected secp256r1 or secp256k1)")]
    UnknownCurve(String),
}

/// A validated public key on one of the supported curves, kept in uncompressed SEC1 form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    curve: Curve,
    point: [u8; UNCOMPRESSED_KEY_LEN],
}

impl PublicKey {
    /// Parses a SEC1 public key (compressed or uncompressed) on `curve`.
    ///
    /// # Errors
    /// [`EciesError::InvalidPublicKey`] when the bytes are not a point on the curve.
    pub fn from_sec1(curve: Curve, bytes: &[u8]) -> Result<Self, EciesError> {
        let encoded = match curve {
            Curve::Secp256r1 => p256::PublicKey::from_sec1_bytes(bytes)
                .map_err(|_| EciesError::InvalidPublicKey)?
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Curve::Secp256k1 => k256::PublicKey::from_sec1_bytes(bytes)
                .map_err(|_| EciesError::InvalidPublicKey)?
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        };
        let point: [u8; UNCOMPRESSED_KEY_LEN] = encoded
            .as_slice()
            .try_into()
            .map_err(|_| EciesError::InvalidPublicKey)?;
        Ok(Self { curve, point })
    }

    /// Parses a hex-encoded SEC1 public key (an optional `0x` prefix is accepted).
    ///
    /// # Errors
    /// [`EciesError::InvalidPublicKey`] when the text is not hex or not a point on the curve.
    pub fn from_hex(curve: Curve, text: &str) -> Result<Self, EciesError> {
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let bytes = hex::decode(text).map_err(|_| EciesError::InvalidPublicKey)?;
        Self::from_sec1(curve, &bytes)
    }

    /// The curve the key lives on.
    #[must_use]
    pub const fn curve(&self) -> Curve {
        self.curve
    }

    /// The uncompressed SEC1 encoding (`0x04 ‖ x ‖ y`, 65 bytes).
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; UNCOMPRESSED_KEY_LEN] {
        &self.point
    }

    /// The uncompressed SEC1 encoding as lowercase hex (130 characters).
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.point)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("curve", &self.curve)
            .field("point", &self.to_hex())
            .finish()
    }
}

/// A secret scalar on one of the supported curves. Its `Debug` is redacted and its bytes are
/// zeroized when it is dropped.
#[derive(Clone)]
pub struct SecretKey {
    curve: Curve,
    bytes: Zeroizing<[u8; 32]>,
}

impl SecretKey {
    /// Parses a 32-byte big-endian scalar on `curve`.
    ///
    /// # Errors
    /// [`EciesError::InvalidSecretKey`] when the bytes are not a valid non-zero scalar.
    pub fn from_bytes(curve: Curve, bytes: &[u8]) -> Result<Self, EciesError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| EciesError::InvalidSecretKey)?;
        let bytes = Zeroizing::new(array);
        if !scalar_is_valid(curve, &bytes) {
            return Err(EciesError::InvalidSecretKey);
        }
        Ok(Self { curve, bytes })
    }

    /// Generates a fresh random key from the operating system's CSPRNG.
    #[must_use]
    pub fn generate(curve: Curve) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        loop {
            OsRng.fill_bytes(bytes.as_mut());
            if scalar_is_valid(curve, &bytes) {
                return Self { curve, bytes };
            }
        }
    }

    /// Derives a key deterministically from `seed` and `context`: the same inputs always give
    /// the same key.
    ///
    /// Construction: `HKDF-SHA256(salt = "shared::ecies::derive:" ‖ curve name, ikm = seed)`,
    /// expanded to 32 bytes with `info = context ‖ counter (u32, big-endian)` for counter = 0, 1,
    /// … until the output is a valid scalar (counter 0 except with negligible probability).
    /// The salt keeps the module's original path: changing it would change every derived key.
    #[must_use]
    pub fn derive(curve: Curve, seed: &[u8], context: &[u8]) -> Self {
        let salt = format!("shared::ecies::derive:{curve}");
        let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), seed);
        let mut info = Vec::with_capacity(context.len() + 4);
        let mut counter: u32 = 0;
        loop {
            info.clear();
            info.extend_from_slice(context);
            info.extend_from_slice(&counter.to_be_bytes());
            let mut bytes = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's 255 × 32 byte limit, so expand cannot fail.
            if hk.expand(&info, bytes.as_mut()).is_ok() && scalar_is_valid(curve, &bytes) {
                return Self { curve, bytes };
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// The curve the key lives on.
    #[must_use]
    pub const fn curve(&self) -> Curve {
        self.curve
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let encoded = match self.curve {
            Curve::Secp256r1 => p256::SecretKey::from_slice(self.bytes.as_ref())
                .map(|sk| sk.public_key().to_encoded_point(false).as_bytes().to_vec()),
            Curve::Secp256k1 => k256::SecretKey::from_slice(self.bytes.as_ref())
                .map(|sk| sk.public_key().to_encoded_point(false).as_bytes().to_vec()),
        };
        let mut point = [0u8; UNCOMPRESSED_KEY_LEN];
        // The scalar was validated when the key was built, so both branches succeed.
        if let Ok(encoded) = encoded
            && encoded.len() == UNCOMPRESSED_KEY_LEN
        {
            point.copy_from_slice(&encoded);
        }
        PublicKey {
            curve: self.curve,
            point,
        }
    }

    /// The 32-byte big-endian scalar, in a buffer that is zeroized on drop.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.bytes.clone()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("curve", &self.curve)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

fn scalar_is_valid(curve: Curve, bytes: &[u8; 32]) -> bool {
    match curve {
        Curve::Secp256r1 => p256::SecretKey::from_slice(bytes).is_ok(),
        Curve::Secp256k1 => k256::SecretKey::from_slice(bytes).is_ok(),
    }
}

/// Encrypts `plaintext` to `receiver` with a fresh ephemeral key.
///
/// # Errors
/// [`EciesError::EncryptionFailed`] only for messages beyond AES-GCM's limit (64 GiB).
pub fn encrypt(receiver: &PublicKey, plaintext: &[u8]) -> Result<Vec<u8>, EciesError> {
    match receiver.curve {
        Curve::Secp256k1 => {
            ecies::encrypt(&receiver.point, plaintext).map_err(|_| EciesError::EncryptionFailed)
        }
        Curve::Secp256r1 => p256_encrypt(receiver, plaintext),
    }
}

/// Decrypts a ciphertext produced by [`encrypt`] (or eciespy / eciesjs on secp256k1).
///
/// # Errors
/// [`EciesError::CiphertextTooShort`] below 97 bytes, [`EciesError::DecryptionFailed`] for a
/// wrong key, an invalid ephemeral key or a tampered ciphertext.
pub fn decrypt(receiver: &SecretKey, ciphertext: &[u8]) -> Result<Vec<u8>, EciesError> {
    if ciphertext.len() < MIN_CIPHERTEXT_LEN {
        return Err(EciesError::CiphertextTooShort {
            len: ciphertext.len(),
        });
    }
    match receiver.curve {
        Curve::Secp256k1 => ecies::decrypt(receiver.bytes.as_ref(), ciphertext)
            .map_err(|_| EciesError::DecryptionFailed),
        Curve::Secp256r1 => p256_decrypt(receiver, ciphertext),
    }
}

/// A 16-byte AES-GCM nonce or tag from a slice of exactly that length.
fn block16(bytes: &[u8]) -> Result<Nonce<U16>, EciesError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| EciesError::DecryptionFailed)?;
    Ok(Nonce::<U16>::from(array))
}

fn p256_encrypt(receiver: &PublicKey, plaintext: &[u8]) -> Result<Vec<u8>, EciesError> {
    let receiver_point = p256::PublicKey::from_sec1_bytes(&receiver.point)
        .map_err(|_| EciesError::InvalidPublicKey)?;
    let ephemeral = p256::NonZeroScalar::random(&mut OsRng);
    let ephemeral_public = p256::PublicKey::from_secret_scalar(&ephemeral);
    let ephemeral_bytes = ephemeral_public.to_encoded_point(false);
    let key = p256_shared_key(&ephemeral, &receiver_point, ephemeral_bytes.as_bytes())?;

    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(MIN_CIPHERTEXT_LEN + plaintext.len());
    out.extend_from_slice(ephemeral_bytes.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(plaintext);

    let cipher =
        Aes256Gcm16::new_from_slice(key.as_ref()).map_err(|_| EciesError::EncryptionFailed)?;
    let tag = cipher
        .encrypt_in_place_detached(&block16(&nonce)?, b"", &mut out[MIN_CIPHERTEXT_LEN..])
        .map_err(|_| EciesError::EncryptionFailed)?;
    out[UNCOMPRESSED_KEY_LEN + NONCE_LEN..MIN_CIPHERTEXT_LEN].copy_from_slice(&tag);
    Ok(out)
}

fn p256_decrypt(receiver: &SecretKey, ciphertext: &[u8]) -> Result<Vec<u8>, EciesError> {
    let (ephemeral_bytes, rest) = ciphertext.split_at(UNCOMPRESSED_KEY_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (tag, body) = rest.split_at(TAG_LEN);
    if ephemeral_bytes.first() != Some(&0x04) {
        return Err(EciesError::DecryptionFailed);
    }
    let ephemeral = p256::PublicKey::from_sec1_bytes(ephemeral_bytes)
        .map_err(|_| EciesError::DecryptionFailed)?;
    let secret = p256::SecretKey::from_slice(receiver.bytes.as_ref())
        .map_err(|_| EciesError::InvalidSecretKey)?;
    let key = p256_shared_key(&secret.to_nonzero_scalar(), &ephemeral, ephemeral_bytes)?;

    let cipher =
        Aes256Gcm16::new_from_slice(key.as_ref()).map_err(|_| EciesError::EncryptionFailed)?;
    let mut out = body.to_vec();
    cipher
        .decrypt_in_place_detached(&block16(nonce)?, b"", &mut out, &block16(tag)?)
        .map_err(|_| EciesError::DecryptionFailed)?;
    Ok(out)
}

/// `HKDF-SHA256(ephemeral point ‖ scalar × peer point)`, both uncompressed, no salt, no info.
fn p256_shared_key(
    scalar: &p256::NonZeroScalar,
    peer: &p256::PublicKey,
    ephemeral_uncompressed: &[u8],
) -> Result<Zeroizing<[u8; 32]>, EciesError> {
    let shared = (peer.to_projective() * **scalar).to_affine();
    let shared = p256::PublicKey::from_affine(shared).map_err(|_| EciesError::DecryptionFailed)?;
    let shared_bytes = Zeroizing::new(shared.to_encoded_point(false).as_bytes().to_vec());
    let mut ikm = Zeroizing::new(Vec::with_capacity(2 * UNCOMPRESSED_KEY_LEN));
    ikm.extend_from_slice(ephemeral_uncompressed);
    ikm.extend_from_slice(&shared_bytes);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, &ikm)
        .expand(&[], key.as_mut())
        .map_err(|_| EciesError::EncryptionFailed)?;
    Ok(key)
}

#[cfg(test)]
mod tests;
