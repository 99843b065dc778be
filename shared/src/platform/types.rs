//! The platform's request and response bodies.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ecies::Curve;

pub use crate::issuance::OnDuplicate;

/// `POST /credentials/issue-on-behalf`. The user is the `email` of the Partner JWT.
///
/// `Debug` leaves the subject out: it is the user's data.
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueOnBehalf {
    /// The partner's issuer DID.
    pub issuer_did: String,
    /// The issuance program (`credentialId` at the platform).
    pub credential_id: String,
    /// The claims, already validated against the program's schema.
    pub credential_subject: serde_json::Value,
    /// The duplicate policy.
    pub on_duplicate: OnDuplicate,
}

impl fmt::Debug for IssueOnBehalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueOnBehalf")
            .field("issuer_did", &self.issuer_did)
            .field("credential_id", &self.credential_id)
            .field("credential_subject", &"[REDACTED]")
            .field("on_duplicate", &self.on_duplicate)
            .finish()
    }
}

/// A credential the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The credential's identity at the platform.
    pub core_claim_hash: String,
    /// The program.
    pub credential_id: String,
    /// The platform's id of the user.
    pub user_uuid: String,
    /// The CAK public key (uncompressed SEC1 hex) when the program has CAK.
    pub cak_public_key: Option<String>,
    /// The CAK key's curve, when the platform says it.
    pub cak_curve: Option<Curve>,
    /// Whether an earlier attempt may have been received without its answer reaching us; the
    /// attempt that answered was then sent with `onDuplicate: "ignore"`.
    pub after_unconfirmed: bool,
}

/// A credential's on-chain state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcState {
    /// Accepted, not yet anchored.
    WaitOnchain,
    /// Anchored: issued.
    Onchain,
    /// Revoked (e.g. replaced under `onDuplicate: "revoke"`).
    Revoked,
    /// A state this client does not know, kept verbatim.
    Other(String),
}

impl VcState {
    /// Reads the platform's `vcStatus`.
    pub fn parse(text: &str) -> Self {
        match text {
            "WAIT_ONCHAIN" => Self::WaitOnchain,
            "ONCHAIN" => Self::Onchain,
            "REVOKED" => Self::Revoked,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The platform's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::WaitOnchain => "WAIT_ONCHAIN",
            Self::Onchain => "ONCHAIN",
            Self::Revoked => "REVOKED",
            Self::Other(s) => s,
        }
    }
}

/// `GET /credentials/status`: the members the platform documents, each optional but the state
/// (members it adds later are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcStatus {
    /// Its state.
    pub vc_status: VcState,
    /// When it was issued (the platform's text).
    pub issuance_date: Option<String>,
    /// When it expires (the platform's text), if it does.
    pub expiration_date: Option<String>,
    /// The credential's id, once known.
    pub vc_id: Option<String>,
    /// The platform's id of the issuer.
    pub issuer_id: Option<String>,
    /// The credential's scheme (schema) id.
    pub scheme_id: Option<String>,
    /// Where the credential is kept in the platform's decentralised storage.
    pub vc_dstorage_id: Option<String>,
}

/// Where an uploaded ciphertext is stored at the platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorageId(pub String);

impl StorageId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IssuedWire {
    pub core_claim_hash: String,
    pub credential_id: String,
    pub user_uuid: String,
    #[serde(default)]
    pub cak_public_key: Option<String>,
    #[serde(default)]
    pub cak_curve: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusWire {
    /// Not in the documented answer; when a platform echoes it, it must be the one asked for.
    #[serde(default)]
    pub core_claim_hash: Option<String>,
    pub vc_status: String,
    #[serde(default)]
    pub issuance_date: Option<String>,
    #[serde(default)]
    pub expiration_date: Option<String>,
    #[serde(default)]
    pub vc_id: Option<String>,
    #[serde(default)]
    pub issuer_id: Option<String>,
    #[serde(default)]
    pub scheme_id: Option<String>,
    #[serde(default)]
    pub vc_dstorage_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UploadWire {
    #[serde(default)]
    pub storage_id: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// The platform's error body: `{"error": <code>, "message": …}`; a 409 under `ignore` names the
/// existing credential (`coreClaimHash`, and `cakPublicKey`, `userUuid` when it says them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorWire {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub core_claim_hash: Option<String>,
    #[serde(default)]
    pub cak_public_key: Option<String>,
    #[serde(default)]
    pub user_uuid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_camel_case_with_a_lowercase_policy() {
        let req = IssueOnBehalf {
            issuer_did: "did:x".into(),
            credential_id: "kyc".into(),
            credential_subject: serde_json::json!({"tier": "gold"}),
            on_duplicate: OnDuplicate::Ignore,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"issuerDid": "did:x", "credentialId": "kyc",
                "credentialSubject": {"tier": "gold"}, "onDuplicate": "ignore"})
        );
        assert!(!format!("{req:?}").contains("gold"));
        assert_eq!(
            serde_json::to_value(OnDuplicate::Revoke).unwrap(),
            serde_json::json!("revoke")
        );
    }

    #[test]
    fn unknown_states_are_kept_verbatim() {
        assert_eq!(VcState::parse("ONCHAIN"), VcState::Onchain);
        assert_eq!(VcState::parse("WAIT_ONCHAIN"), VcState::WaitOnchain);
        assert_eq!(
            VcState::parse("PAUSED"),
            VcState::Other("PAUSED".to_owned())
        );
        assert_eq!(VcState::parse("PAUSED").as_str(), "PAUSED");
    }
}
