//! Types for values that must never reach a log line, an error body or a plaintext record.
//!
//! Secrets use [`secrecy::SecretString`] / [`secrecy::SecretBox`] (re-exported here): their `Debug`
//! prints `[REDACTED]`, they have no `Display`, and their memory is zeroized on drop. Personal data
//! uses [`Pii`], which behaves the same way and additionally cannot be serialized, so it cannot be
//! written to a record or a response by accident: code that stores it must encrypt or hash it first
//! through [`Pii::expose`].

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

pub use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Personal data (an e-mail address, a name, a birth date, a document image).
///
/// `Debug` is redacted, there is no `Display` and no `Serialize`; the value is zeroized on drop.
/// It can be deserialized, since that is how it enters the system.
#[derive(Clone, PartialEq, Eq)]
pub struct Pii<T: Zeroize>(T);

impl<T: Zeroize> Pii<T> {
    /// Wraps a personal value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The raw value, for the few places that hash or encrypt it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Pii<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pii([REDACTED])")
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Pii<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

/// Compares two secrets in constant time (for equal lengths; the length itself is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Overwrites, in place, every value of a JSON document that may carry personal data: strings
/// are zeroed and emptied, numbers set to 0 and booleans to false, in objects and arrays at any
/// depth (member names are the program's field names and are kept). For plaintext this process
/// holds only until it is encrypted (a credential's `sensitiveData`): it is wiped once the
/// ciphertext exists instead of waiting for the allocator to reuse the memory. What it cannot
/// reach is said where it is used.
pub fn wipe_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(members) => members.values_mut().for_each(wipe_json),
        Value::Number(_) => *value = Value::from(0),
        Value::Bool(b) => *b = false,
        Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_a_json_document_clears_every_value_at_any_depth_and_keeps_its_shape() {
        let mut doc = serde_json::json!({
            "passport": "X1234567",
            "scans": [{"front": "aGVsbG8=", "pages": 32}, "note"],
            "verified": true,
            "none": null
        });
        wipe_json(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({
                "passport": "",
                "scans": [{"front": "", "pages": 0}, ""],
                "verified": false,
                "none": null
            })
        );
    }

    #[test]
    fn pii_debug_never_shows_the_value() {
        let email = Pii::new(String::from("alice@example.com"));
        let shown = format!("{email:?} {:?}", Some(&email));
        assert!(!shown.contains("alice"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn secrets_debug_never_shows_the_value() {
        let s = SecretString::from("hunter2-very-secret");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn pii_deserializes_from_its_plain_form() {
        let v: Pii<String> = serde_json::from_str("\"bob@example.com\"").unwrap();
        assert_eq!(v.expose(), "bob@example.com");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
