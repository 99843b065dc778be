//! Configuration of a simulator instance.

use std::time::Duration;

use base64::Engine as _;
use shared::ecies::Curve;

use crate::SimError;
use crate::signing::{WebhookSigner, WebhookSigningKey};

/// An issuance program (`credentialId` on the platform) the simulator knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramConfig {
    /// The program id clients send as `credentialId`.
    pub id: String,
    /// Whether issuance returns a `cakPublicKey`.
    pub cak: bool,
    /// The curve of the CAK key (ignored without CAK).
    pub curve: Curve,
}

impl ProgramConfig {
    /// A program without CAK.
    #[must_use]
    pub fn without_cak(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            cak: false,
            curve: Curve::default(),
        }
    }

    /// A program with CAK on `curve`.
    #[must_use]
    pub fn with_cak(id: impl Into<String>, curve: Curve) -> Self {
        Self {
            id: id.into(),
            cak: true,
            curve,
        }
    }

    /// Parses `ID`, `ID:cak`, `ID:nocak` or `ID:cak:secp256k1` (the command-line form).
    ///
    /// # Errors
    /// A message naming the part that could not be read.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let id = parts.next().unwrap_or_default().trim();
        if id.is_empty() {
            return Err(format!("program {text:?}: empty id"));
        }
        let cak = match parts.next().map(str::trim) {
            None | Some("nocak") => false,
            Some("cak") => true,
            Some(other) => {
                return Err(format!(
                    "program {text:?}: expected cak or nocak, got {other:?}"
                ));
            }
        };
        let curve = match parts.next() {
            None => Curve::default(),
            Some(name) => name.parse().map_err(|e| format!("program {text:?}: {e}"))?,
        };
        if parts.next().is_some() {
            return Err(format!("program {text:?}: too many ':' parts"));
        }
        Ok(Self {
            id: id.to_owned(),
            cak,
            curve,
        })
    }
}

/// Everything a simulator instance needs. `SimConfig::default()` is a working local setup;
/// override fields directly or with the `with_*` helpers.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The `partnerId` every Partner JWT must carry.
    pub partner_id: String,
    /// The issuer DID used in callbacks when no credential names one.
    pub issuer_did: String,
    /// Where our JWKS is published (fetched to verify `x-partner-auth`).
    pub jwks_url: String,
    /// Where verifier-authorization callbacks are delivered.
    pub callback_url: Option<String>,
    /// Standard Webhooks secrets (`whsec_<base64>`); with `v1` signatures, each signs every
    /// callback.
    pub webhook_secrets: Vec<String>,
    /// Standard Webhooks ed25519 signing keys (`whsk_<base64>` of the 32-byte seed, or of the seed
    /// followed by the public key); with `v1a` signatures, each signs every callback. The
    /// receiver is configured with their `whpk_` public keys ([`crate::SimHandle::webhook_public_keys`]).
    pub webhook_signing_keys: Vec<String>,
    /// Which signatures callbacks carry: `v1`, `v1a` or both. `None` (the default) follows the keys
    /// given: `v1` without signing keys (today's behaviour), `v1a` with signing keys only, both
    /// with secrets and signing keys.
    pub webhook_signatures: Option<crate::signing::WebhookSignatures>,
    /// How long a credential stays `WAIT_ONCHAIN` after issuance (simulator clock).
    pub onchain_delay: Duration,
    /// The known issuance programs.
    pub programs: Vec<ProgramConfig>,
    /// Seed for identifiers, CAK keys and fault sampling: the same seed gives the same run.
    pub seed: u64,
    /// Retries after the first failed callback attempt.
    pub callback_retries: u32,
    /// Backoff before the first retry; doubles after each failure (capped at 60 s).
    pub callback_base_delay: Duration,
    /// Per-attempt timeout of a callback delivery.
    pub callback_timeout: Duration,
    /// Minimum interval between two JWKS fetches triggered by an unknown `kid`.
    pub jwks_refetch_interval: Duration,
    /// Age after which the cached JWKS is refreshed before use.
    pub jwks_cache_ttl: Duration,
    /// Timeout of a JWKS fetch.
    pub jwks_timeout: Duration,
    /// Body limit of JSON endpoints (413 above it).
    pub max_json_body: usize,
    /// Body limit of ciphertext uploads (413 above it).
    pub max_ciphertext_body: usize,
    /// The members of callback bodies: the documented minimum (default) or the richer shape.
    pub callback_shape: crate::callbacks::CallbackShape,
    /// How `onDuplicate: "ignore"` answers when the credential exists: `409` naming it (the
    /// default, as the error table documents) or, with `true`, `200` with the existing credential
    /// (the other reading of "ignore returns the existing credential").
    pub ignore_answers_existing: bool,
    /// The CA whose loopback leaf the simulator serves, and which its own client (the JWKS
    /// fetches, the callbacks) trusts besides the platform's roots: the devstack's, or a test
    /// process's. `None`: a fresh CA in memory ([`crate::SimHandle::ca_pem`] gives it). The
    /// simulator speaks HTTPS only, in and out.
    pub tls: Option<std::sync::Arc<local_tls::LocalCa>>,
    /// Which clock a Partner JWT's `exp`, `iat` and `nbf` are checked on (default: the wall
    /// clock, like the partner that minted it).
    pub token_times: TokenTimes,
    /// The scope the platform routes require (default `issue`). The platform's documents name it
    /// `issue` in some places and `issue on-behalf` in others; with several space-separated
    /// scopes, a token must grant every one of them.
    pub issue_scope: String,
    /// The members of status answers: the documented ones (default) or the richer shape.
    pub status_shape: crate::state::StatusShape,
    /// How long an issued credential is valid (its status answer's `expirationDate`).
    pub credential_validity: Duration,
}

/// The clock the simulator checks token times on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenTimes {
    /// The wall clock (default): moving the simulator clock forward to age credentials does not
    /// expire the tokens in flight of a partner whose clock does not move.
    #[default]
    Wall,
    /// The simulator clock: for a test world whose one clock moves with the simulator's, so
    /// tokens minted after an `advance` carry the advanced time.
    Simulator,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            partner_id: "partner-local".to_owned(),
            issuer_did: "did:air:id:test:partner-local".to_owned(),
            jwks_url: "https://127.0.0.1:3000/.well-known/jwks.json".to_owned(),
            callback_url: None,
            webhook_secrets: Vec::new(),
            webhook_signing_keys: Vec::new(),
            webhook_signatures: None,
            onchain_delay: Duration::from_secs(5),
            programs: vec![
                ProgramConfig::without_cak("kyc-basic"),
                ProgramConfig::with_cak("kyc-document-r1", Curve::Secp256r1),
                ProgramConfig::with_cak("kyc-document-k1", Curve::Secp256k1),
            ],
            seed: 0,
            callback_retries: 5,
            callback_base_delay: Duration::from_millis(500),
            callback_timeout: Duration::from_secs(5),
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_cache_ttl: Duration::from_secs(300),
            jwks_timeout: Duration::from_secs(5),
            max_json_body: 1024 * 1024,
            max_ciphertext_body: 8 * 1024 * 1024,
            callback_shape: crate::callbacks::CallbackShape::Minimal,
            ignore_answers_existing: false,
            tls: None,
            token_times: TokenTimes::Wall,
            issue_scope: crate::platform::ISSUE_SCOPE.to_owned(),
            status_shape: crate::state::StatusShape::Documented,
            credential_validity: Duration::from_secs(365 * 86_400),
        }
    }
}

impl SimConfig {
    /// Sets the JWKS URL.
    #[must_use]
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = url.into();
        self
    }

    /// Sets the callback URL.
    #[must_use]
    pub fn with_callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }

    /// Sets the partner id.
    #[must_use]
    pub fn with_partner_id(mut self, id: impl Into<String>) -> Self {
        self.partner_id = id.into();
        self
    }

    /// Adds a webhook secret (`whsec_…`).
    #[must_use]
    pub fn with_webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.webhook_secrets.push(secret.into());
        self
    }

    /// Adds a webhook signing key (`whsk_…`) for `v1a` signatures.
    #[must_use]
    pub fn with_webhook_signing_key(mut self, key: impl Into<String>) -> Self {
        self.webhook_signing_keys.push(key.into());
        self
    }

    /// Chooses which signatures callbacks carry (instead of following the keys given).
    #[must_use]
    pub fn with_webhook_signatures(
        mut self,
        signatures: crate::signing::WebhookSignatures,
    ) -> Self {
        self.webhook_signatures = Some(signatures);
        self
    }

    /// The signatures callbacks carry: the one chosen, else the one the keys given imply.
    #[must_use]
    pub fn effective_webhook_signatures(&self) -> crate::signing::WebhookSignatures {
        self.webhook_signatures.unwrap_or_else(|| {
            crate::signing::WebhookSignatures::derived(
                self.webhook_secrets.len(),
                self.webhook_signing_keys.len(),
            )
        })
    }

    /// Sets the `WAIT_ONCHAIN` → `ONCHAIN` delay.
    #[must_use]
    pub fn with_onchain_delay(mut self, delay: Duration) -> Self {
        self.onchain_delay = delay;
        self
    }

    /// Replaces the programs.
    #[must_use]
    pub fn with_programs(mut self, programs: Vec<ProgramConfig>) -> Self {
        self.programs = programs;
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the configuration and builds the callback signer from the webhook keys.
    pub(crate) fn validate(&self) -> Result<WebhookSigner, SimError> {
        let bad = |m: String| Err(SimError::Config(m));
        if self.partner_id.is_empty() {
            return bad("partner_id is empty".to_owned());
        }
        let https = |url: &str| reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https");
        if !https(&self.jwks_url) {
            return bad(format!(
                "jwks_url {:?} is not an https:// URL",
                self.jwks_url
            ));
        }
        if let Some(url) = &self.callback_url
            && !https(url)
        {
            return bad(format!("callback_url {url:?} is not an https:// URL"));
        }
        let mut seen = std::collections::HashSet::new();
        for program in &self.programs {
            if program.id.is_empty() || !seen.insert(program.id.as_str()) {
                return bad(format!("program id {:?} is empty or repeated", program.id));
            }
        }
        if self.max_json_body == 0 || self.max_ciphertext_body == 0 {
            return bad("body limits must be positive".to_owned());
        }
        let secrets = self
            .webhook_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                decode_webhook_secret(s)
                    .map_err(|e| SimError::Config(format!("webhook secret #{i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = self
            .webhook_signing_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                WebhookSigningKey::parse(k)
                    .map_err(|e| SimError::Config(format!("webhook signing key #{i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        WebhookSigner::new(self.effective_webhook_signatures(), secrets, keys)
            .map_err(SimError::Config)
    }
}

/// Decodes a Standard Webhooks secret: `whsec_` followed by base64 (the prefix is optional).
///
/// # Errors
/// A message (never the secret) when the text is not base64 or is empty.
pub fn decode_webhook_secret(secret: &str) -> Result<Vec<u8>, String> {
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| "not valid base64 after whsec_".to_owned())?;
    if bytes.is_empty() {
        return Err("empty secret".to_owned());
    }
    Ok(bytes)
}
