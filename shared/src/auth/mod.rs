//! Inbound authentication (docs/architecture.md §4): API keys with HMAC-signed requests and replay protection
//! for server-to-server routes, and the JWT authorizer's claims (with MFA evidence) for user
//! routes.

pub mod api_keys;
#[cfg(feature = "http")]
pub mod request;
pub mod signing;
#[cfg(feature = "platform")]
pub mod step_up;

pub use api_keys::{
    AccessKeyId, ApiKey, ApiKeyLookup, ApiKeyRegistry, DEFAULT_API_KEYS_SECRET,
    DEFAULT_KEY_LIFETIME, KeyOwner, KeyStatus, KeyType, MAX_KEY_LIFETIME, Permission,
    RegistryError, RegistryFormat, SecretApiKeys, StackEnvironment,
};
pub use signing::{AuthFailure, Caller, RequestVerifier, SignedParts, parse_timestamp, sign};

/// The `amr` values that count as multi-factor evidence.
pub const MFA_AMR_VALUES: [&str; 3] = ["mfa", "otp", "hwk"];

/// Whether an `amr` list carries multi-factor evidence.
pub fn has_mfa<S: AsRef<str>>(amr: &[S]) -> bool {
    amr.iter().any(|v| MFA_AMR_VALUES.contains(&v.as_ref()))
}
