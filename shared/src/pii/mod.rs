//! Protected user identifiers (docs/architecture.md §9): records are keyed by a **keyed hash** of an identifier
//! and store the identifier itself only **encrypted**.
//!
//! - [`Protector::hash`]: lowercase hex `HMAC-SHA256(pepper, normalised value)`, a stable
//!   pseudonym to key records by. Without the pepper it cannot be recomputed from a guessed
//!   address, unlike a plain hash.
//! - [`Protector::digest`]: the fingerprint of a document records compare but never need to read
//!   back (a credential subject, a request payload): lowercase hex HMAC-SHA256 under a key derived
//!   from the pepper, one per [`DigestPurpose`], so a leaked table does not let anyone confirm a
//!   guessed subject (a birth date, a membership tier) the way a plain SHA-256 would.
//! - [`Protector::seal`] / [`Protector::open`]: AES-256-GCM with a 12-byte random nonce and the
//!   caller's `context` (e.g. the record key) as associated data, so a sealed value moved to
//!   another record no longer opens. The result, [`Sealed`], names the key version that sealed it.
//! - [`DataKeys`]: the pepper and the versioned encryption keys, kept in one secret
//!   ([`DEFAULT_DATA_KEYS_SECRET`]) whose document is
//!   `{"pepper": "<base64 of 32 bytes>", "current": "k2", "keys": {"k1": "<base64 of 32 bytes>",
//!   "k2": "…"}}` (standard base64 with padding). [`DataKeys::rotate`] adds a new current key
//!   and keeps the old ones, so everything sealed before still opens. The pepper never rotates:
//!   changing it would change every record key.
//! - [`DataKeySource`]: reads (or, with [`DataKeySource::ensure`], creates) that secret through
//!   the secrets port, cached for at most [`MAX_CACHE_TTL`](crate::secrets::MAX_CACHE_TTL).
//!
//! Key material never leaves memory except towards the secrets port: `Debug` shows key ids only,
//! no type here serializes keys except [`DataKeys::to_secret`], and key buffers are zeroized on
//! drop (as are the intermediate copies this module makes of keys and plaintexts, on a best-effort
//! basis: buffers are sized up front so that growing them leaves no copy behind).
//!
//! A random 96-bit nonce is safe for about 2³² seals per key (NIST SP 800-38D); rotate well before
//! a key has sealed that many values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::consts::U12;
use aes_gcm::{AeadInPlace, Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::clock::SharedClock;
use crate::redact::Pii;
use crate::secrets::{
    CachedDocument, DocumentFormat, SecretName, SecretSource, SecretWriter, SecretsError, Versioned,
};

/// The default name of the data-keys secret.
pub const DEFAULT_DATA_KEYS_SECRET: &str = "partner-bundle/data-keys";

/// Length of the pepper and of every encryption key.
pub const KEY_LEN: usize = 32;
/// Length of the AES-GCM nonce of a sealed value.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag at the end of a sealed value's ciphertext.
pub const TAG_LEN: usize = 16;
/// The longest key id a data-keys document may use.
pub const MAX_KEY_ID_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why identifiers could not be protected or recovered. No variant ever carries a plaintext or
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// The data-keys secret could not be read or written.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The data-keys secret is not a valid document.
    #[error("the data-keys secret is malformed: {0}")]
    MalformedKeys(String),
    /// A sealed value names a key version the data keys do not hold.
    #[error("no data key with id {0:?}")]
    UnknownKey(String),
    /// A sealed value is not well-formed (bad base64, wrong nonce length, too short).
    #[error("the sealed value is malformed: {0}")]
    MalformedSealed(&'static str),
    /// Authentication failed: another context, a tampered value, or another key under that id.
    #[error("the sealed value does not open: wrong context, tampered, or another key")]
    OpenFailed,
    /// AES-GCM refused to encrypt (only for values beyond its 64 GiB limit).
    #[error("the value could not be sealed")]
    SealFailed,
}

/// The pepper and the versioned encryption keys. `Debug` shows only the key ids; the key bytes
/// are zeroized on drop.
#[derive(Clone)]
pub struct DataKeys {
    pepper: Zeroizing<[u8; KEY_LEN]>,
    current: String,
    keys: BTreeMap<String, Zeroizing<[u8; KEY_LEN]>>,
}

/// The document as stored; its strings hold key material and are zeroized on drop.
#[derive(Deserialize)]
struct Document {
    pepper: String,
    current: String,
    keys: BTreeMap<String, String>,
}

impl Drop for Document {
    fn drop(&mut self) {
        self.pepper.zeroize();
        for value in self.keys.values_mut() {
            value.zeroize();
        }
    }
}

fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Decodes standard base64 that must hold exactly [`KEY_LEN`] bytes, without a heap copy.
fn decode_key(text: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut buffer = Zeroizing::new([0u8; 2 * KEY_LEN]);
    let len = B64.decode_slice(text.trim(), buffer.as_mut()).ok()?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(buffer.get(..KEY_LEN).filter(|_| len == KEY_LEN)?);
    Some(key)
}

/// The bootstrap form a deployment template can generate (`GenerateSecretString` makes one random
/// string field): `{"seed": "<at least 32 random characters>"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedDocument {
    seed: String,
}

impl Drop for SeedDocument {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl DataKeys {
    /// The keys derived from a bootstrap seed: the pepper and `k1` by HKDF-SHA256 over the seed
    /// (salt `partner-bundle/data-keys`, info `pepper` and `k1`). Every container derives the
    /// same keys; the first rotation writes the full document.
    fn from_seed(seed: &str) -> Result<Self, PiiError> {
        if seed.len() < 32 {
            return Err(PiiError::MalformedKeys(
                "the seed is shorter than 32 characters".to_owned(),
            ));
        }
        let hk =
            hkdf::Hkdf::<sha2::Sha256>::new(Some(b"partner-bundle/data-keys"), seed.as_bytes());
        let derive = |info: &[u8]| -> Result<Zeroizing<[u8; KEY_LEN]>, PiiError> {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            hk.expand(info, key.as_mut()).map_err(|_| {
                PiiError::MalformedKeys("cannot derive keys from the seed".to_owned())
            })?;
            Ok(key)
        };
        let mut keys = BTreeMap::new();
        keys.insert("k1".to_owned(), derive(b"k1")?);
        Ok(Self {
            pepper: derive(b"pepper")?,
            current: "k1".to_owned(),
            keys,
        })
    }

    /// A fresh pepper and a first encryption key `k1`, from the operating system's CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        let mut keys = BTreeMap::new();
        keys.insert("k1".to_owned(), random_key());
        Self {
            pepper: random_key(),
            current: "k1".to_owned(),
            keys,
        }
    }

    /// Parses the secret document (see the module documentation).
    ///
    /// # Errors
    /// [`PiiError::MalformedKeys`] naming what is wrong (never a key value): not JSON or not the
    /// expected shape, a pepper or key that is not 32 bytes of standard base64, an invalid key id,
    /// no keys, or a `current` id that is not among the keys.
    pub fn parse(text: &str) -> Result<Self, PiiError> {
        if let Ok(seed) = serde_json::from_str::<SeedDocument>(text) {
            return Self::from_seed(&seed.seed);
        }
        let document: Document = serde_json::from_str(text).map_err(|e| {
            // serde_json's own message may quote a value from the document, so only its
            // category and position are kept.
            let what = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "not JSON"
                }
                _ => "not a data-keys document (expected pepper, current and keys)",
            };
            PiiError::MalformedKeys(format!(
                "{what} at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        let pepper = decode_key(&document.pepper).ok_or_else(|| {
            PiiError::MalformedKeys(format!("the pepper is not {KEY_LEN} bytes of base64"))
        })?;
        let mut keys = BTreeMap::new();
        for (id, value) in &document.keys {
            if !is_valid_key_id(id) {
                return Err(PiiError::MalformedKeys(format!(
                    "invalid key id {:?} (1–{MAX_KEY_ID_LEN} characters from A-Za-z0-9_-)",
                    id.chars().take(MAX_KEY_ID_LEN + 8).collect::<String>()
                )));
            }
            let key = decode_key(value).ok_or_else(|| {
                PiiError::MalformedKeys(format!("key {id} is not {KEY_LEN} bytes of base64"))
            })?;
            keys.insert(id.clone(), key);
        }
        if keys.is_empty() {
            return Err(PiiError::MalformedKeys("no encryption keys".to_owned()));
        }
        if !keys.contains_key(&document.current) {
            return Err(PiiError::MalformedKeys(format!(
                "current key {:?} is not among the keys",
                document
                    .current
                    .chars()
                    .take(MAX_KEY_ID_LEN + 8)
                    .collect::<String>()
            )));
        }
        Ok(Self {
            pepper,
            current: document.current.clone(),
            keys,
        })
    }

    /// The secret document, for the secrets port.
    #[must_use]
    pub fn to_secret(&self) -> SecretString {
        // Written by hand into a buffer large enough never to grow: key ids are validated
        // (`[A-Za-z0-9_-]`) and base64 needs no JSON escaping.
        let b64_len = KEY_LEN.div_ceil(3) * 4;
        let capacity =
            64 + b64_len + self.current.len() + self.keys.len() * (MAX_KEY_ID_LEN + b64_len + 8);
        let mut draft = Zeroizing::new(String::with_capacity(capacity));
        draft.push_str("{\"pepper\":\"");
        B64.encode_string(self.pepper.as_ref(), &mut draft);
        draft.push_str("\",\"current\":\"");
        draft.push_str(&self.current);
        draft.push_str("\",\"keys\":{");
        for (index, (id, key)) in self.keys.iter().enumerate() {
            if index > 0 {
                draft.push(',');
            }
            draft.push('"');
            draft.push_str(id);
            draft.push_str("\":\"");
            B64.encode_string(key.as_ref(), &mut draft);
            draft.push('"');
        }
        draft.push_str("}}");
        // An exactly sized copy, so turning it into the secret's boxed `str` does not reallocate.
        let mut exact = String::with_capacity(draft.len());
        exact.push_str(&draft);
        SecretString::from(exact)
    }

    /// Adds a fresh encryption key and makes it current; older keys stay, so everything sealed
    /// with them still opens. The new id is `k<n>`, one above the highest `k<n>` present.
    /// Returns the new key's id.
    pub fn rotate(&mut self) -> &str {
        let highest = self
            .keys
            .keys()
            .filter_map(|id| id.strip_prefix('k')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let mut next = highest.saturating_add(1);
        let mut id = format!("k{next}");
        while self.keys.contains_key(&id) {
            next = next.wrapping_add(1);
            id = format!("k{next}");
        }
        self.keys.insert(id.clone(), random_key());
        self.current = id;
        &self.current
    }

    /// The id of the key that seals new values.
    #[must_use]
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Every key id, in lexical order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether a key with this id is held.
    #[must_use]
    pub fn has_key(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("pepper", &"<redacted>")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A keyed hash of an identifier: lowercase hex HMAC-SHA256, 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdHash(String);

impl IdHash {
    /// The hex text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a [`DocumentDigest`] fingerprints: each purpose has its own key, so a digest of one kind
/// never equals a digest of another kind of the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestPurpose {
    /// A credential subject in canonical JSON.
    CredentialSubject,
    /// A request's method, path and canonical JSON body.
    RequestPayload,
}

impl DigestPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::CredentialSubject => b"partner-bundle/digest/credential-subject",
            Self::RequestPayload => b"partner-bundle/digest/request-payload",
        }
    }
}

/// The keyed fingerprint of a document: what records store ([`DocumentDigest::as_str`]) and what
/// a stored fingerprint is compared with ([`DocumentDigest::matches`]).
///
/// Records written before fingerprints were keyed hold the plain SHA-256 of the same bytes; a
/// digest still matches those, so an upgrade neither revokes an unchanged credential (its
/// resource lock remembers the old form) nor refuses the retry of a request that began before it
/// (its idempotency record does). Only the keyed form is ever written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentDigest {
    keyed: String,
    unkeyed: String,
}

impl DocumentDigest {
    /// The keyed form: lowercase hex, 64 characters. This is what records store.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.keyed
    }

    /// Whether `stored` (a fingerprint from a record) is this document's: its keyed form, or the
    /// plain SHA-256 that records written before keyed fingerprints hold.
    #[must_use]
    pub fn matches(&self, stored: &Fingerprint) -> bool {
        stored.0 == self.keyed || stored.0 == self.unkeyed
    }
}

/// A fingerprint as a record stores it: the keyed form of a [`DocumentDigest`] (or, in records
/// written before fingerprints were keyed, the plain SHA-256). Compared only through
/// [`DocumentDigest::matches`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// A fingerprint as a record holds it (any text: an unknown one matches no document).
    #[must_use]
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The stored text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&DocumentDigest> for Fingerprint {
    fn from(digest: &DocumentDigest) -> Self {
        Self(digest.keyed.clone())
    }
}

/// An encrypted identifier as records store it: the key id, the base64 nonce, and the base64
/// AES-256-GCM ciphertext followed by its 16-byte tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub v: String,
    /// The 12-byte nonce, standard base64.
    pub n: String,
    /// Ciphertext ‖ tag, standard base64.
    pub c: String,
}

/// Hashes, seals and opens identifiers with a set of [`DataKeys`].
#[derive(Clone)]
pub struct Protector {
    keys: Arc<DataKeys>,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protector")
            .field("keys", &self.keys)
            .finish()
    }
}

/// The normal form of an e-mail address before hashing: surrounding whitespace trimmed
/// ([`str::trim`], Unicode whitespace) and the whole address lowercased ([`str::to_lowercase`],
/// Unicode). Nothing else: no Unicode normalisation (NFC), no removal of dots or `+tags` — those
/// are provider-specific and would merge addresses that are distinct mailboxes elsewhere.
#[must_use]
pub fn normalise_email(value: &str) -> Zeroizing<String> {
    Zeroizing::new(value.trim().to_lowercase())
}

impl Protector {
    /// A protector over `keys`.
    #[must_use]
    pub fn new(keys: Arc<DataKeys>) -> Self {
        Self { keys }
    }

    /// The keys in use.
    #[must_use]
    pub fn keys(&self) -> &Arc<DataKeys> {
        &self.keys
    }

    /// The keyed hash of an identifier (an e-mail address): lowercase hex
    /// `HMAC-SHA256(pepper, normalise_email(value))`, so `" Alice@Example.COM "` and
    /// `"alice@example.com"` give the same hash. See [`normalise_email`].
    #[must_use]
    pub fn hash(&self, value: &str) -> IdHash {
        let normalised = normalise_email(value);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.keys.pepper.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(normalised.as_bytes());
        IdHash(hex::encode(mac.finalize().into_bytes()))
    }

    /// The keyed fingerprint of `document` for `purpose`: lowercase hex
    /// `HMAC-SHA256(HMAC-SHA256(pepper, purpose label), document)`. The pepper never rotates, so
    /// a fingerprint stays comparable for the life of the records that hold it.
    #[must_use]
    pub fn digest(&self, purpose: DigestPurpose, document: &[u8]) -> DocumentDigest {
        let mut derive = <HmacSha256 as Mac>::new_from_slice(self.keys.pepper.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(purpose.label());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&derive.finalize().into_bytes());
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(document);
        DocumentDigest {
            keyed: hex::encode(mac.finalize().into_bytes()),
            unkeyed: hex::encode(<Sha256 as sha2::Digest>::digest(document)),
        }
    }

    /// Encrypts `value` with the current key, bound to `context` (the associated data; use the
    /// record key, so the sealed value cannot be moved to another record).
    ///
    /// # Errors
    /// [`PiiError::SealFailed`] only for values beyond AES-GCM's limit; [`PiiError::UnknownKey`]
    /// cannot happen with keys that went through [`DataKeys::parse`] or [`DataKeys::generate`].
    pub fn seal(&self, value: &Pii<String>, context: &str) -> Result<Sealed, PiiError> {
        let id = self.keys.current.as_str();
        let key = self
            .keys
            .keys
            .get(id)
            .ok_or_else(|| PiiError::UnknownKey(id.to_owned()))?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| PiiError::SealFailed)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let plaintext = value.expose().as_bytes();
        // Room for the tag up front: growing the buffer would leave a plaintext copy behind.
        let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buffer.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_in_place_detached(&Nonce::<U12>::from(nonce), context.as_bytes(), &mut buffer)
            .map_err(|_| PiiError::SealFailed)?;
        buffer.extend_from_slice(&tag);
        Ok(Sealed {
            v: id.to_owned(),
            n: B64.encode(nonce),
            c: B64.encode(buffer.as_slice()),
        })
    }

    /// Decrypts a value sealed with any key version these keys hold, under the same `context`.
    ///
    /// # Errors
    /// [`PiiError::UnknownKey`] for a key id not held (after a rotation elsewhere, reload the
    /// keys: [`DataKeySource::keys_with`]), [`PiiError::MalformedSealed`] for bad base64 or
    /// lengths, [`PiiError::OpenFailed`] for another context, a tampered value or a wrong key.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Pii<String>, PiiError> {
        let key = self.keys.keys.get(&sealed.v).ok_or_else(|| {
            PiiError::UnknownKey(sealed.v.chars().take(MAX_KEY_ID_LEN + 8).collect())
        })?;
        let mut nonce = [0u8; 2 * NONCE_LEN];
        let nonce_len = B64
            .decode_slice(sealed.n.as_bytes(), &mut nonce)
            .map_err(|_| PiiError::MalformedSealed("the nonce is not base64"))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .get(..nonce_len)
            .and_then(|n| n.try_into().ok())
            .ok_or(PiiError::MalformedSealed("the nonce is not 12 bytes"))?;
        let mut buffer = B64
            .decode(sealed.c.as_bytes())
            .map_err(|_| PiiError::MalformedSealed("the ciphertext is not base64"))?;
        let body_len = buffer
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(PiiError::MalformedSealed(
                "the ciphertext is shorter than a tag",
            ))?;
        let tag: [u8; TAG_LEN] = buffer
            .get(body_len..)
            .and_then(|t| t.try_into().ok())
            .ok_or(PiiError::MalformedSealed(
                "the ciphertext is shorter than a tag",
            ))?;
        buffer.truncate(body_len);
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| PiiError::OpenFailed)?;
        // aes-gcm checks the tag before decrypting, so a failure leaves no plaintext behind.
        cipher
            .decrypt_in_place_detached(
                &Nonce::<U12>::from(nonce),
                context.as_bytes(),
                &mut buffer,
                &Tag::from(tag),
            )
            .map_err(|_| PiiError::OpenFailed)?;
        match String::from_utf8(buffer) {
            Ok(text) => Ok(Pii::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(PiiError::MalformedSealed("the plaintext is not UTF-8"))
            }
        }
    }
}

/// The data keys in a secret, cached in memory for a bounded time.
mod source;

pub use source::{DataKeySource, DataKeysFormat};

#[cfg(test)]
mod tests;
