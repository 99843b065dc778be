//! Partner JWT signing keys (docs/architecture.md §3): the key set document, its time-driven key states, the
//! rotation policy, minting, the JWKS, and the key set's place in the secrets port.

pub mod config;
pub mod jwk;
pub mod jwks;
pub mod policy;
pub mod set;
pub mod signer;
pub mod source;

pub use config::{DEFAULT_KEY_SET_SECRET, KeyConfig};
pub use jwk::{Kid, PrivateJwk, PublicJwk, thumbprint};
pub use jwks::{JwksCache, RenderedJwks, discovery_document, etag_matches, strong_etag};
pub use policy::{Change, RotationPolicy};
pub use set::{KeyEntry, KeySet, KeyState, KeyTimings};
pub use signer::{
    MAX_TOKEN_LIFETIME, MintError, MintedToken, PartnerId, PartnerJwt, PreparedKeys, Scope,
    ScopeClaim, SelfTestError, TokenLifetime, TokenRequest,
};
pub use source::{KeySetSource, KeySetStore, KeySourceError, SecretKeySet};
