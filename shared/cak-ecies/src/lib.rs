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
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "e520872701d9ec44dbac2eab85512ad14ad0c42e01de56d7b528abd8524fcb47";
    const VECTOR_CIPHERTEXT: &str = "047be1885aeb48d4d4db0c992996725d3264784fef88c5b60782f8d0f940c213227fc3f904f846d5ec3d0fba6653754501e8ebadc421aa3892a20fef33cff0206047058a4cfb4efbeae96b2d019b4ab2edce33328748a0d008a69c8f5816b72d45bd9b5a41bb6ea0127ab23057ec6fcd";

    const CURVES: [Curve; 2] = [Curve::Secp256r1, Curve::Secp256k1];

    #[test]
    fn round_trip_works_on_both_curves_for_empty_small_and_one_megabyte_messages() {
        let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let pk = sk.public_key();
            for message in [&b""[..], &b"x"[..], &big[..]] {
                let ct = encrypt(&pk, message).unwrap();
                assert_eq!(ct.len(), MIN_CIPHERTEXT_LEN + message.len());
                assert_eq!(ct[0], 0x04);
                assert_eq!(decrypt(&sk, &ct).unwrap(), message, "{curve}");
            }
        }
    }

    #[test]
    fn two_encryptions_of_the_same_message_differ() {
        for curve in CURVES {
            let pk = SecretKey::generate(curve).public_key();
            assert_ne!(
                encrypt(&pk, b"same").unwrap(),
                encrypt(&pk, b"same").unwrap()
            );
        }
    }

    #[test]
    fn tampered_ciphertext_fails_to_decrypt() {
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let ct = encrypt(&sk.public_key(), b"sensitive data").unwrap();
            for index in [
                10,
                UNCOMPRESSED_KEY_LEN + 1,
                UNCOMPRESSED_KEY_LEN + NONCE_LEN + 1,
                ct.len() - 1,
            ] {
                let mut bad = ct.clone();
                bad[index] ^= 0x01;
                assert!(decrypt(&sk, &bad).is_err(), "{curve} byte {index}");
            }
        }
    }

    #[test]
    fn wrong_key_fails_to_decrypt() {
        for curve in CURVES {
            let ct = encrypt(&SecretKey::generate(curve).public_key(), b"hi").unwrap();
            let other = SecretKey::generate(curve);
            assert_eq!(decrypt(&other, &ct), Err(EciesError::DecryptionFailed));
        }
    }

    #[test]
    fn too_short_ciphertext_is_rejected() {
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let ct = encrypt(&sk.public_key(), b"").unwrap();
            assert_eq!(
                decrypt(&sk, &ct[..ct.len() - 1]),
                Err(EciesError::CiphertextTooShort {
                    len: MIN_CIPHERTEXT_LEN - 1
                })
            );
            assert!(matches!(
                decrypt(&sk, &[]),
                Err(EciesError::CiphertextTooShort { len: 0 })
            ));
        }
    }

    #[test]
    fn invalid_public_keys_are_rejected() {
        for curve in CURVES {
            let mut not_on_curve = [0u8; 65];
            not_on_curve[0] = 0x04;
            not_on_curve[64] = 0x07;
            assert_eq!(
                PublicKey::from_sec1(curve, &not_on_curve),
                Err(EciesError::InvalidPublicKey)
            );
            assert!(PublicKey::from_sec1(curve, &[]).is_err());
            assert!(PublicKey::from_sec1(curve, &[0u8; 65]).is_err());
            assert!(PublicKey::from_hex(curve, "zz").is_err());
        }
        let k1 = SecretKey::generate(Curve::Secp256k1).public_key();
        // A secp256k1 point is (with overwhelming probability) not on P-256.
        assert!(PublicKey::from_sec1(Curve::Secp256r1, k1.as_bytes()).is_err());
    }

    #[test]
    fn invalid_secret_keys_are_rejected() {
        for curve in CURVES {
            assert_eq!(
                SecretKey::from_bytes(curve, &[0u8; 32]).unwrap_err(),
                EciesError::InvalidSecretKey
            );
            assert!(SecretKey::from_bytes(curve, &[0xff; 32]).is_err());
            assert!(SecretKey::from_bytes(curve, &[1u8; 31]).is_err());
        }
    }

    #[test]
    fn public_keys_parse_from_hex_and_compressed_form_and_print_uncompressed() {
        for curve in CURVES {
            let pk = SecretKey::generate(curve).public_key();
            let hex_text = pk.to_hex();
            assert_eq!(hex_text.len(), 130);
            assert!(hex_text.starts_with("04"));
            assert_eq!(PublicKey::from_hex(curve, &hex_text).unwrap(), pk);
            assert_eq!(
                PublicKey::from_hex(curve, &format!("0x{hex_text}")).unwrap(),
                pk
            );
            let compressed = match curve {
                Curve::Secp256r1 => p256::PublicKey::from_sec1_bytes(pk.as_bytes())
                    .unwrap()
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec(),
                Curve::Secp256k1 => k256::PublicKey::from_sec1_bytes(pk.as_bytes())
                    .unwrap()
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec(),
            };
            assert_eq!(PublicKey::from_sec1(curve, &compressed).unwrap(), pk);
            assert_eq!(pk.curve(), curve);
        }
    }

    #[test]
    fn the_published_ecies_rs_secp256k1_vector_decrypts() {
        let sk =
            SecretKey::from_bytes(Curve::Secp256k1, &hex::decode(VECTOR_SECRET).unwrap()).unwrap();
        let ct = hex::decode(VECTOR_CIPHERTEXT).unwrap();
        let plaintext = decrypt(&sk, &ct).unwrap();
        assert_eq!(String::from_utf8(plaintext).unwrap(), "hello world🌍");
    }

    #[test]
    fn p256_ciphertext_follows_the_documented_construction() {
        let sk = SecretKey::generate(Curve::Secp256r1);
        let message = b"document image bytes";
        let ct = encrypt(&sk.public_key(), message).unwrap();

        let (ephemeral, rest) = ct.split_at(65);
        let (nonce, rest) = rest.split_at(16);
        let (tag, body) = rest.split_at(16);
        let ephemeral_point = p256::PublicKey::from_sec1_bytes(ephemeral).unwrap();
        let secret = p256::SecretKey::from_slice(sk.to_bytes().as_ref()).unwrap();

        // Raw ECDH gives the shared x-coordinate; the construction needs the full point.
        let raw =
            p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ephemeral_point.as_affine());
        let shared_point =
            (ephemeral_point.to_projective() * *secret.to_nonzero_scalar()).to_affine();
        let shared_uncompressed = shared_point.to_encoded_point(false);
        assert_eq!(
            &shared_uncompressed.as_bytes()[1..33],
            &raw.raw_secret_bytes()[..]
        );

        let mut ikm = ephemeral.to_vec();
        ikm.extend_from_slice(shared_uncompressed.as_bytes());
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut key)
            .unwrap();

        let cipher = Aes256Gcm16::new_from_slice(&key).unwrap();
        let mut out = body.to_vec();
        cipher
            .decrypt_in_place_detached(
                &block16(nonce).unwrap(),
                b"",
                &mut out,
                &block16(tag).unwrap(),
            )
            .unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn secp256k1_module_output_matches_the_same_construction_by_hand() {
        let sk = SecretKey::generate(Curve::Secp256k1);
        let ct = encrypt(&sk.public_key(), b"k1 by hand").unwrap();
        let ephemeral = k256::PublicKey::from_sec1_bytes(&ct[..65]).unwrap();
        let secret = k256::SecretKey::from_slice(sk.to_bytes().as_ref()).unwrap();
        let shared = (ephemeral.to_projective() * *secret.to_nonzero_scalar()).to_affine();
        let mut ikm = ct[..65].to_vec();
        ikm.extend_from_slice(shared.to_encoded_point(false).as_bytes());
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut key)
            .unwrap();
        let cipher = Aes256Gcm16::new_from_slice(&key).unwrap();
        let mut out = ct[97..].to_vec();
        cipher
            .decrypt_in_place_detached(
                &block16(&ct[65..81]).unwrap(),
                b"",
                &mut out,
                &block16(&ct[81..97]).unwrap(),
            )
            .unwrap();
        assert_eq!(out, b"k1 by hand");
    }

    #[test]
    fn derived_keys_are_deterministic_and_depend_on_every_input() {
        for curve in CURVES {
            let a = SecretKey::derive(curve, b"seed", b"ctx");
            let b = SecretKey::derive(curve, b"seed", b"ctx");
            assert_eq!(a.public_key(), b.public_key());
            assert_ne!(
                a.public_key(),
                SecretKey::derive(curve, b"seed", b"ctx2").public_key()
            );
            assert_ne!(
                a.public_key(),
                SecretKey::derive(curve, b"seed2", b"ctx").public_key()
            );
            let ct = encrypt(&a.public_key(), b"ok").unwrap();
            assert_eq!(decrypt(&b, &ct).unwrap(), b"ok");
        }
    }

    #[test]
    fn a_derived_key_is_the_documented_hkdf_output_under_the_original_salt() {
        for curve in CURVES {
            let salt = format!("shared::ecies::derive:{curve}");
            let mut scalar = [0u8; 32];
            Hkdf::<Sha256>::new(Some(salt.as_bytes()), b"seed")
                .expand(
                    &[&b"ctx"[..], &0u32.to_be_bytes()[..]].concat(),
                    &mut scalar,
                )
                .unwrap();
            let expected = SecretKey::from_bytes(curve, &scalar).unwrap();
            assert_eq!(
                SecretKey::derive(curve, b"seed", b"ctx").public_key(),
                expected.public_key()
            );
        }
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let sk =
            SecretKey::from_bytes(Curve::Secp256k1, &hex::decode(VECTOR_SECRET).unwrap()).unwrap();
        let text = format!("{sk:?}");
        assert!(!text.contains(VECTOR_SECRET));
        assert!(text.contains("redacted"));
    }

    #[test]
    fn curve_names_parse_print_and_serialize_in_lowercase() {
        for curve in CURVES {
            assert_eq!(curve.to_string().parse::<Curve>().unwrap(), curve);
            let json = serde_json::to_string(&curve).unwrap();
            assert_eq!(json, format!("\"{curve}\""));
            assert_eq!(serde_json::from_str::<Curve>(&json).unwrap(), curve);
        }
        assert_eq!(Curve::default(), Curve::Secp256r1);
        assert!("ed25519".parse::<Curve>().is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_ciphertext_or_key_bytes_are_refused_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            k1 in any::<bool>(),
        ) {
            let curve = if k1 { Curve::Secp256k1 } else { Curve::Secp256r1 };
            let key = SecretKey::generate(curve);
            prop_assert!(decrypt(&key, &bytes).is_err());
            let _ = PublicKey::from_sec1(curve, &bytes);
            let _ = SecretKey::from_bytes(curve, &bytes);
            let _ = PublicKey::from_hex(curve, &hex::encode(&bytes));
        }

        #[test]
        fn a_ciphertext_with_any_byte_flipped_is_refused(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let key = SecretKey::generate(Curve::Secp256r1);
            let mut ct = encrypt(&key.public_key(), &plaintext).unwrap();
            let i = at.index(ct.len());
            ct[i] ^= flip;
            prop_assert!(decrypt(&key, &ct).is_err());
        }
    }
}
