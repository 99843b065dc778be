//! Issuance programs: configuration, not code. Each program has an id (the platform's
//! `credentialId`), a JSON Schema for `credentialSubject`, whether the platform encrypts with a
//! CAK and on which curve, which fields are sensitive (accepted only in `sensitiveData`, encrypted,
//! never stored), a duplicate policy, whether issuing needs the user's step-up MFA assertion
//! (`requireMfa`, see `auth::step_up`) and an example subject its schema accepts.
//!
//! Validation uses the `jsonschema` crate without remote `$ref` resolution (a schema can never make
//! the function fetch a URL). Failures are reported as JSON pointers with the failing keyword only:
//! the validator's own messages quote the offending value, which may be personal data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::issuance::ProgramId;

use crate::ecies::Curve;

/// What to send as `onDuplicate` when the user already has this credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// `ignore` when the subject's data is unchanged, `revoke` when it changed (a tier upgrade).
    #[default]
    Auto,
    /// Always `ignore`: the existing credential stands.
    Ignore,
    /// Always `revoke`: the old credential is replaced.
    Revoke,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProgramDoc {
    id: String,
    schema: Value,
    #[serde(default)]
    cak: bool,
    #[serde(default)]
    curve: Curve,
    #[serde(default)]
    sensitive_fields: Vec<String>,
    #[serde(default)]
    on_duplicate: DuplicatePolicy,
    #[serde(default)]
    require_mfa: bool,
    example_subject: Value,
}

/// One failing place in a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The JSON pointer of the failing value (`""` for the root).
    pub pointer: String,
    /// The schema keyword it fails (`type`, `required`, `minimum`, …).
    pub keyword: String,
}

/// An issuance program.
pub struct Program {
    /// The program id (`credentialId` at the platform).
    pub id: ProgramId,
    /// The CAK curve when the platform encrypts for this program.
    pub cak: Option<Curve>,
    /// Fields accepted only in `sensitiveData`.
    pub sensitive_fields: Vec<String>,
    /// The duplicate policy.
    pub on_duplicate: DuplicatePolicy,
    /// Whether an issuance needs the user's step-up MFA assertion (`requireMfa`, default false).
    pub require_mfa: bool,
    /// A subject the schema accepts (shown to local users).
    pub example_subject: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("id", &self.id)
            .field("cak", &self.cak)
            .field("on_duplicate", &self.on_duplicate)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Checks `subject` against the schema; the violations in document order.
    pub fn validate(&self, subject: &Value) -> Result<(), Vec<Violation>> {
        let mut violations: Vec<Violation> = self
            .validator
            .iter_errors(subject)
            .map(|e| Violation {
                pointer: e.instance_path().to_string(),
                keyword: e
                    .schema_path()
                    .to_string()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        for field in &self.sensitive_fields {
            if subject.get(field).is_some() {
                violations.push(Violation {
                    pointer: format!("/{field}"),
                    keyword: "sensitive".into(),
                });
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            violations.sort_by(|a, b| a.pointer.cmp(&b.pointer));
            violations.dedup();
            Err(violations)
        }
    }
}

/// Why the program configuration is unusable (reported at start).
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Not a list of program documents.
    #[error("programs are not valid JSON program documents: {0}")]
    Malformed(String),
    /// Two programs share an id.
    #[error("program id {0:?} appears twice")]
    Duplicate(String),
    /// An id the platform would refuse.
    #[error("program id {0:?} must be 1-128 characters of A-Za-z0-9._:-")]
    BadId(String),
    /// A schema that does not compile.
    #[error("program {id}: invalid JSON Schema: {reason}")]
    BadSchema {
        /// The program.
        id: String,
        /// Why.
        reason: String,
    },
    /// The example subject fails the program's own schema.
    #[error("program {0}: exampleSubject does not satisfy its schema")]
    BadExample(String),
}

/// Every configured program, by id.
#[derive(Debug, Default)]
pub struct Programs(BTreeMap<String, Program>);

impl Programs {
    /// Parses a JSON array of program documents and checks each one.
    pub fn from_json(text: &str) -> Result<Self, ProgramError> {
        let docs: Vec<ProgramDoc> =
            serde_json::from_str(text).map_err(|e| ProgramError::Malformed(e.to_string()))?;
        let mut map = BTreeMap::new();
        for doc in docs {
            let Some(id) = ProgramId::parse(&doc.id) else {
                return Err(ProgramError::BadId(doc.id));
            };
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&doc.schema)
                .map_err(|e| ProgramError::BadSchema {
                    id: doc.id.clone(),
                    reason: e.to_string(),
                })?;
            let program = Program {
                id,
                cak: doc.cak.then_some(doc.curve),
                sensitive_fields: doc.sensitive_fields,
                on_duplicate: doc.on_duplicate,
                require_mfa: doc.require_mfa,
                example_subject: doc.example_subject,
                validator,
            };
            if program.validate(&program.example_subject).is_err() {
                return Err(ProgramError::BadExample(doc.id));
            }
            if map.insert(doc.id.clone(), program).is_some() {
                return Err(ProgramError::Duplicate(doc.id));
            }
        }
        Ok(Self(map))
    }

    /// The program with `id`.
    pub fn get(&self, id: &str) -> Option<&Program> {
        self.0.get(id)
    }

    /// Every program, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Program> {
        self.0.values()
    }
}

/// The sample programs the bundle ships with (they match the platform simulator's defaults):
/// a basic KYC credential without CAK, and document credentials with CAK on each curve.
pub const SAMPLE_PROGRAMS: &str = include_str!("programs.sample.json");

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn samples() -> Programs {
        Programs::from_json(SAMPLE_PROGRAMS).unwrap()
    }

    #[test]
    fn the_sample_programs_load_with_one_cak_program_per_curve() {
        let p = samples();
        assert!(p.get("kyc-basic").unwrap().cak.is_none());
        assert_eq!(
            p.get("kyc-document-r1").unwrap().cak,
            Some(Curve::Secp256r1)
        );
        assert_eq!(
            p.get("kyc-document-k1").unwrap().cak,
            Some(Curve::Secp256k1)
        );
        assert!(p.get("unknown").is_none());
    }

    #[test]
    fn violations_name_pointers_and_keywords_but_never_values() {
        let p = samples();
        let basic = p.get("kyc-basic").unwrap();
        let err = basic
            .validate(&json!({"tier": "platinum-secret-value", "country": 42}))
            .unwrap_err();
        let text = serde_json::to_string(&err).unwrap();
        assert!(!text.contains("platinum-secret-value"), "{text}");
        assert!(
            err.iter()
                .any(|v| v.pointer == "/country" && v.keyword == "type"),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|v| v.pointer == "/tier" && v.keyword == "enum"),
            "{err:?}"
        );
        assert!(basic.validate(&basic.example_subject).is_ok());
    }

    #[test]
    fn a_sensitive_field_in_the_subject_is_refused() {
        let p = samples();
        let doc = p.get("kyc-document-r1").unwrap();
        let mut subject = doc.example_subject.clone();
        subject["birthDate"] = json!("1990-01-01");
        let err = doc.validate(&subject).unwrap_err();
        assert!(
            err.iter()
                .any(|v| v.pointer == "/birthDate" && v.keyword == "sensitive"),
            "{err:?}"
        );
    }

    #[test]
    fn bad_configurations_are_refused_at_start() {
        let base = json!({"id": "p", "schema": {"type": "object"}, "exampleSubject": {}});
        let twice = json!([base, base]).to_string();
        assert!(matches!(
            Programs::from_json(&twice),
            Err(ProgramError::Duplicate(_))
        ));
        let bad_schema =
            json!([{"id": "p", "schema": {"type": 5}, "exampleSubject": {}}]).to_string();
        assert!(matches!(
            Programs::from_json(&bad_schema),
            Err(ProgramError::BadSchema { .. })
        ));
        let bad_example = json!([{"id": "p", "schema": {"type": "object", "required": ["a"]}, "exampleSubject": {}}]).to_string();
        assert!(matches!(
            Programs::from_json(&bad_example),
            Err(ProgramError::BadExample(_))
        ));
        let bad_id = json!([{"id": "a b", "schema": {}, "exampleSubject": {}}]).to_string();
        assert!(matches!(
            Programs::from_json(&bad_id),
            Err(ProgramError::BadId(_))
        ));
    }
}
