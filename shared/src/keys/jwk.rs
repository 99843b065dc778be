//! ES256 (P-256) signing keys as JWKs, and their RFC 7638 thumbprints.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A key id: the RFC 7638 thumbprint of the public key (base64url SHA-256, 43 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kid(String);

impl Kid {
    /// The kid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A kid given by a caller (e.g. `opsctl keys revoke <kid>`): 43 base64url characters.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 43
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public members of an EC JWK, exactly those the JWKS publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// base64url x coordinate.
    pub x: String,
    /// base64url y coordinate.
    pub y: String,
    /// The thumbprint.
    pub kid: Kid,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
}

/// RFC 7638 thumbprint of an EC public key: SHA-256 over the required members in lexicographic
/// order with no white space, base64url without padding.
pub fn thumbprint(crv: &str, x: &str, y: &str) -> Kid {
    let canonical = serde_json::json!({"crv": crv, "kty": "EC", "x": x, "y": y}).to_string();
    // serde_json's map keeps keys sorted (no `preserve_order`), which is the RFC's order here.
    Kid(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// A private EC JWK as stored in the key set secret. `Debug` is redacted; `d` is zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateJwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// base64url x coordinate.
    pub x: String,
    /// base64url y coordinate.
    pub y: String,
    /// base64url private scalar.
    pub d: String,
}

impl fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("d", &"[REDACTED]")
            .finish()
    }
}

impl Drop for PrivateJwk {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}

/// Why a stored key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signing key: {0}")]
pub struct InvalidKey(&'static str);

impl PrivateJwk {
    /// A new random P-256 key.
    pub fn generate() -> Self {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &p256::SecretKey) -> Self {
        let point = secret.public_key().to_encoded_point(false);
        let b64 = |b: Option<&[u8]>| URL_SAFE_NO_PAD.encode(b.unwrap_or_default());
        let mut d = secret.to_bytes();
        let jwk = Self {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64(point.x().map(|x| &x[..])),
            y: b64(point.y().map(|y| &y[..])),
            d: URL_SAFE_NO_PAD.encode(&d[..]),
        };
        d.zeroize();
        jwk
    }

    /// The key's thumbprint.
    pub fn kid(&self) -> Kid {
        thumbprint(&self.crv, &self.x, &self.y)
    }

    /// The public half, as published.
    pub fn public(&self) -> PublicJwk {
        PublicJwk {
            kty: self.kty.clone(),
            crv: self.crv.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            kid: self.kid(),
            use_: "sig".into(),
            alg: "ES256".into(),
        }
    }

    /// Checks the key is a P-256 key whose `d` matches `x`/`y`, and returns it as PKCS#8 DER for
    /// the JWT signer.
    pub fn to_pkcs8_der(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, InvalidKey> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(InvalidKey("not an EC P-256 key"));
        }
        let mut d = URL_SAFE_NO_PAD
            .decode(&self.d)
            .map_err(|_| InvalidKey("d is not base64url"))?;
        let secret = p256::SecretKey::from_slice(&d).map_err(|_| InvalidKey("d is not a scalar"));
        d.zeroize();
        let secret = secret?;
        if Self::from_secret(&secret).public() != self.public() {
            return Err(InvalidKey("x and y do not match d"));
        }
        let der = secret
            .to_pkcs8_der()
            .map_err(|_| InvalidKey("cannot encode as PKCS#8"))?;
        Ok(zeroize::Zeroizing::new(der.as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7517_example_key_has_the_known_rfc_7638_thumbprint() {
        let kid = thumbprint(
            "P-256",
            "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
        );
        assert_eq!(kid.as_str(), "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
    }

    #[test]
    fn a_generated_key_round_trips_to_pkcs8_and_publishes_no_private_member() {
        let jwk = PrivateJwk::generate();
        assert!(jwk.to_pkcs8_der().is_ok());
        let public = serde_json::to_value(jwk.public()).unwrap();
        assert!(public.get("d").is_none());
        let mut members: Vec<&str> = public
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(public["kid"], jwk.kid().as_str());
    }

    #[test]
    fn a_key_whose_public_part_does_not_match_d_is_refused() {
        let a = PrivateJwk::generate();
        let mut b = PrivateJwk::generate();
        b.x = a.x.clone();
        assert!(b.to_pkcs8_der().is_err());
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let jwk = PrivateJwk::generate();
        let shown = format!("{jwk:?}");
        assert!(!shown.contains(&jwk.d), "{shown}");
    }

    #[test]
    fn kids_are_parsed_strictly() {
        let kid = PrivateJwk::generate().kid();
        assert_eq!(Kid::parse(kid.as_str()), Some(kid));
        assert_eq!(Kid::parse("short"), None);
        assert_eq!(Kid::parse(&"a/".repeat(22)[..43]), None);
    }
}
