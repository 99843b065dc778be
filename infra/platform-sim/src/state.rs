//! In-memory platform state: credentials, ciphertexts and the request log. Every change happens
//! under one lock, so parallel requests behave exactly as some serial order would.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};
use shared::ecies::{Curve, SecretKey};

use crate::clock::{rfc3339, unix_millis};
use crate::rng::{digest, uuid_from};

/// Locks a mutex, carrying on after a panic elsewhere (the state stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The CAK of a credential: enough to re-derive the private key.
#[derive(Clone, Debug)]
pub struct Cak {
    /// The curve of the key.
    pub curve: Curve,
    /// Uncompressed SEC1 public key, hex.
    pub public_hex: String,
}

/// Which members a status answer carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusShape {
    /// Exactly the documented members (the default).
    #[default]
    Documented,
    /// The documented members plus `coreClaimHash`, `issuerDid`, `credentialId`, `revoked` and
    /// `revokedAt`.
    Rich,
}

/// One issued credential.
#[derive(Clone, Debug)]
pub struct Credential {
    /// The platform's id of the credential (0x-prefixed hex).
    pub core_claim_hash: String,
    /// The program (`credentialId`).
    pub program: String,
    /// The user's e-mail (from the JWT).
    pub email: String,
    /// The platform's user id.
    pub user_uuid: String,
    /// The issuer DID from the request.
    pub issuer_did: String,
    /// The verifiable credential id.
    pub vc_id: String,
    /// Where the credential is kept in decentralised storage.
    pub vc_dstorage_id: String,
    /// When it was issued (simulator clock).
    pub issued_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
    /// The CAK, when the program has one.
    pub cak: Option<Cak>,
}

impl Credential {
    /// `WAIT_ONCHAIN`, `ONCHAIN` or `REVOKED` at `now`.
    #[must_use]
    pub fn vc_status(&self, now: SystemTime, onchain_delay: Duration) -> &'static str {
        if self.revoked_at.is_some() {
            "REVOKED"
        } else if now >= self.issued_at + onchain_delay {
            "ONCHAIN"
        } else {
            "WAIT_ONCHAIN"
        }
    }

    /// The status document of `GET /credentials/status`: the documented members (`vcStatus`,
    /// `issuanceDate`, `expirationDate`, `vcId`, `issuerId`, `schemeId`, `vcDstorageId`), and with
    /// [`StatusShape::Rich`] also `coreClaimHash`, `issuerDid`, `credentialId`, `revoked` and
    /// `revokedAt`.
    #[must_use]
    pub fn status_json(
        &self,
        now: SystemTime,
        onchain_delay: Duration,
        validity: Duration,
        shape: StatusShape,
    ) -> Value {
        let mut doc = serde_json::json!({
            "vcStatus": self.vc_status(now, onchain_delay),
            "issuanceDate": rfc3339(self.issued_at),
            "expirationDate": rfc3339(self.issued_at + validity),
            "vcId": self.vc_id,
            "issuerId": self.issuer_did,
            "schemeId": self.program,
            "vcDstorageId": self.vc_dstorage_id,
        });
        if shape == StatusShape::Rich
            && let Some(map) = doc.as_object_mut()
        {
            map.insert(
                "coreClaimHash".to_owned(),
                self.core_claim_hash.clone().into(),
            );
            map.insert("issuerDid".to_owned(), self.issuer_did.clone().into());
            map.insert("credentialId".to_owned(), self.program.clone().into());
            map.insert("revoked".to_owned(), self.revoked_at.is_some().into());
            if let Some(at) = self.revoked_at {
                map.insert("revokedAt".to_owned(), Value::String(rfc3339(at)));
            }
        }
        doc
    }
}

/// What to do with an existing credential of the same user and program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Revoke the old credential and issue a new one (the default).
    #[default]
    Revoke,
    /// Keep the old one and answer 409.
    Ignore,
}

/// A request to issue, already validated.
pub struct NewIssue {
    /// User e-mail from the JWT.
    pub email: String,
    /// Program id.
    pub program: String,
    /// Issuer DID from the body.
    pub issuer_did: String,
    /// Subject from the body.
    pub subject: Map<String, Value>,
    /// Duplicate policy.
    pub on_duplicate: OnDuplicate,
    /// CAK curve when the program has CAK.
    pub cak_curve: Option<Curve>,
}

/// A stored ciphertext upload.
#[derive(Clone, Debug)]
pub struct StoredCiphertext {
    /// The credential it belongs to.
    pub core_claim_hash: String,
    /// The ECIES ciphertext.
    pub bytes: Vec<u8>,
}

/// Credentials and ciphertexts.
#[derive(Default)]
pub struct Store {
    credentials: HashMap<String, Credential>,
    active: HashMap<(String, String), String>,
    ciphertexts: HashMap<String, StoredCiphertext>,
    issued: u64,
    uploads: u64,
}

/// The CAK private key of (user, issuer, program): derived, never stored.
#[must_use]
pub fn cak_secret(
    seed: u64,
    curve: Curve,
    email: &str,
    issuer_did: &str,
    program: &str,
) -> SecretKey {
    let seed_bytes = digest(seed, &[b"platform-sim/cak-seed"]);
    let mut context = Vec::new();
    for part in [email, issuer_did, program] {
        context.extend_from_slice(&(part.len() as u64).to_be_bytes());
        context.extend_from_slice(part.as_bytes());
    }
    SecretKey::derive(curve, &seed_bytes, &context)
}

impl Store {
    /// Issues a credential, or returns the existing one as `Err` under `ignore`.
    pub fn issue(
        &mut self,
        seed: u64,
        req: NewIssue,
        now: SystemTime,
    ) -> Result<Credential, Box<Credential>> {
        let slot = (req.email.clone(), req.program.clone());
        if let Some(existing) = self.active.get(&slot).cloned() {
            match req.on_duplicate {
                OnDuplicate::Ignore => {
                    if let Some(credential) = self.credentials.get(&existing) {
                        return Err(Box::new(credential.clone()));
                    }
                }
                OnDuplicate::Revoke => {
                    if let Some(old) = self.credentials.get_mut(&existing) {
                        old.revoked_at = Some(now);
                    }
                }
            }
        }
        self.issued += 1;
        let n = self.issued.to_be_bytes();
        let subject = serde_json::to_vec(&req.subject).unwrap_or_default();
        let hash = digest(
            seed,
            &[
                b"coreClaimHash",
                &n,
                req.email.as_bytes(),
                req.program.as_bytes(),
                &subject,
            ],
        );
        let core_claim_hash = format!("0x{}", hex::encode(hash));
        let cak = req.cak_curve.map(|curve| Cak {
            curve,
            public_hex: cak_secret(seed, curve, &req.email, &req.issuer_did, &req.program)
                .public_key()
                .to_hex(),
        });
        let credential = Credential {
            core_claim_hash: core_claim_hash.clone(),
            user_uuid: uuid_from(&digest(seed, &[b"userUuid", req.email.as_bytes()])),
            vc_id: format!("urn:uuid:{}", uuid_from(&digest(seed, &[b"vcId", &n]))),
            vc_dstorage_id: format!(
                "vcd_{}",
                hex::encode(&digest(seed, &[b"vcDstorageId", &n])[..16])
            ),
            program: req.program,
            email: req.email,
            issuer_did: req.issuer_did,
            issued_at: now,
            revoked_at: None,
            cak,
        };
        self.credentials
            .insert(core_claim_hash.clone(), credential.clone());
        self.active.insert(slot, core_claim_hash);
        Ok(credential)
    }

    /// The credential with this hash.
    #[must_use]
    pub fn credential(&self, core_claim_hash: &str) -> Option<&Credential> {
        self.credentials.get(core_claim_hash)
    }

    /// The active credential of a user for a program.
    #[must_use]
    pub fn active_for(&self, email: &str, program: &str) -> Option<&Credential> {
        self.active
            .get(&(email.to_owned(), program.to_owned()))
            .and_then(|h| self.credentials.get(h))
    }

    /// The newest active credential of a user for a program, by user UUID or e-mail.
    #[must_use]
    pub fn find_user_program(&self, user: &str, program: &str) -> Option<&Credential> {
        self.active_for(user, program).or_else(|| {
            self.credentials
                .values()
                .filter(|c| c.revoked_at.is_none() && c.program == program && c.user_uuid == user)
                .max_by_key(|c| c.issued_at)
        })
    }

    /// Stores a ciphertext and returns its storage id.
    pub fn store_ciphertext(
        &mut self,
        seed: u64,
        core_claim_hash: String,
        bytes: Vec<u8>,
    ) -> String {
        self.uploads += 1;
        let digest = digest(seed, &[b"ciphertext", &self.uploads.to_be_bytes()]);
        let id = format!("ct_{}", &hex::encode(digest)[..24]);
        self.ciphertexts.insert(
            id.clone(),
            StoredCiphertext {
                core_claim_hash,
                bytes,
            },
        );
        id
    }

    /// The ids of the ciphertexts stored for a credential.
    #[must_use]
    pub fn ciphertexts_of(&self, core_claim_hash: &str) -> Vec<String> {
        self.ciphertexts
            .iter()
            .filter(|(_, c)| c.core_claim_hash == core_claim_hash)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A stored ciphertext.
    #[must_use]
    pub fn ciphertext(&self, id: &str) -> Option<&StoredCiphertext> {
        self.ciphertexts.get(id)
    }
}

/// One request the simulator received (control routes under `/sim` excluded).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// `METHOD /path` (no query), the key tests count by.
    pub route: String,
    /// The path.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status returned.
    pub status: u16,
    /// The JWT claims seen (verified, or the unverified payload of a refused token).
    pub claims: Option<Value>,
    /// Why the JWT was refused, if it was.
    pub auth_error: Option<String>,
    /// Whether the answer came from an injected fault.
    pub fault: bool,
    /// Simulator time of arrival, Unix milliseconds.
    pub at_ms: u64,
}

/// The request log.
#[derive(Default)]
pub struct RequestLog {
    records: Vec<RequestRecord>,
    next_seq: u64,
}

impl RequestLog {
    /// Appends a record, numbering it, and returns its number.
    pub fn push(&mut self, mut record: RequestRecord) -> u64 {
        self.next_seq += 1;
        record.seq = self.next_seq;
        self.records.push(record);
        self.next_seq
    }

    /// Fills in the answer of record `seq` (if it was not cleared meanwhile).
    pub fn complete(&mut self, seq: u64, status: u16, seen: crate::http::Seen) {
        if let Some(record) = self.records.iter_mut().rev().find(|r| r.seq == seq) {
            record.status = status;
            record.claims = seen.claims;
            record.auth_error = seen.auth_error;
            record.fault = seen.fault;
        }
    }

    /// All records so far.
    #[must_use]
    pub fn all(&self) -> &[RequestRecord] {
        &self.records
    }

    /// Forgets everything (numbering continues).
    pub fn clear(&mut self) {
        self.records.clear();
    }
}

/// Milliseconds of `t` for logs.
#[must_use]
pub fn stamp(t: SystemTime) -> u64 {
    unix_millis(t)
}
