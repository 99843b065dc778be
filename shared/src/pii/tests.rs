//! Unit tests of the PII protection.

use secrecy::ExposeSecret;

use super::*;

fn protector() -> Protector {
    Protector::new(Arc::new(DataKeys::generate()))
}

fn email(text: &str) -> Pii<String> {
    Pii::new(text.to_owned())
}

#[test]
fn hashing_is_stable_and_ignores_case_and_surrounding_space() {
    let p = protector();
    let h = p.hash("alice@example.com");
    assert_eq!(h, p.hash("alice@example.com"));
    assert_eq!(h, p.hash("  Alice@EXAMPLE.com\t\n"));
    assert_ne!(h, p.hash("alice@example.org"));
    assert_eq!(h.as_str().len(), 64);
    assert!(
        h.as_str()
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(h.to_string(), h.as_str());
}

#[test]
fn a_document_digest_is_keyed_so_a_plain_hash_of_a_guess_does_not_find_it() {
    let p = protector();
    let subject = br#"{"tier":"gold"}"#;
    let d = p.digest(DigestPurpose::CredentialSubject, subject);
    let plain = hex::encode(<Sha256 as sha2::Digest>::digest(subject));
    assert_ne!(d.as_str(), plain);
    assert_eq!(d.as_str().len(), 64);
    // Another stack's pepper gives another digest; the same keys give the same one.
    assert_ne!(
        d,
        protector().digest(DigestPurpose::CredentialSubject, subject)
    );
    assert_eq!(d, p.digest(DigestPurpose::CredentialSubject, subject));
}

#[test]
fn a_document_digest_depends_on_its_purpose() {
    let p = protector();
    assert_ne!(
        p.digest(DigestPurpose::CredentialSubject, b"x").as_str(),
        p.digest(DigestPurpose::RequestPayload, b"x").as_str()
    );
}

#[test]
fn a_document_digest_matches_its_keyed_form_and_the_plain_form_older_records_hold() {
    let p = protector();
    let d = p.digest(DigestPurpose::RequestPayload, b"POST\n/v1/credentials\n{}");
    assert!(d.matches(&Fingerprint::from(&d)));
    assert!(d.matches(&Fingerprint::from_stored(hex::encode(
        <Sha256 as sha2::Digest>::digest(b"POST\n/v1/credentials\n{}")
    ))));
    let other = p.digest(
        DigestPurpose::RequestPayload,
        b"POST\n/v1/credentials\n{\"a\":1}",
    );
    assert!(!d.matches(&Fingerprint::from(&other)));
    assert!(!d.matches(&Fingerprint::from_stored("")));
}

#[test]
fn hashing_is_hmac_sha256_of_the_normalised_value_under_the_pepper() {
    let p = protector();
    let mut mac = <HmacSha256 as Mac>::new_from_slice(p.keys().pepper.as_ref()).unwrap();
    mac.update(b"bob@example.com");
    assert_eq!(
        p.hash(" BOB@example.com ").as_str(),
        hex::encode(mac.finalize().into_bytes())
    );
}

#[test]
fn another_pepper_gives_another_hash() {
    assert_ne!(
        protector().hash("alice@example.com"),
        protector().hash("alice@example.com")
    );
}

#[test]
fn a_sealed_value_opens_under_the_same_context() {
    let p = protector();
    let sealed = p.seal(&email("Zoë@example.com"), "user#1").unwrap();
    assert_eq!(sealed.v, "k1");
    assert_eq!(
        p.open(&sealed, "user#1").unwrap().expose(),
        "Zoë@example.com"
    );
    let empty = p.seal(&email(""), "user#1").unwrap();
    assert_eq!(p.open(&empty, "user#1").unwrap().expose(), "");
}

#[test]
fn sealing_twice_gives_different_nonces_and_ciphertexts() {
    let p = protector();
    let a = p.seal(&email("alice@example.com"), "ctx").unwrap();
    let b = p.seal(&email("alice@example.com"), "ctx").unwrap();
    assert_ne!(a.n, b.n);
    assert_ne!(a.c, b.c);
    assert_eq!(B64.decode(&a.n).unwrap().len(), NONCE_LEN);
    assert_eq!(
        B64.decode(&a.c).unwrap().len(),
        "alice@example.com".len() + TAG_LEN
    );
}

#[test]
fn a_sealed_value_does_not_open_under_another_context() {
    let p = protector();
    let sealed = p.seal(&email("alice@example.com"), "user#1").unwrap();
    assert!(matches!(
        p.open(&sealed, "user#2"),
        Err(PiiError::OpenFailed)
    ));
    assert!(matches!(p.open(&sealed, ""), Err(PiiError::OpenFailed)));
}

#[test]
fn a_tampered_sealed_value_does_not_open() {
    let p = protector();
    let sealed = p.seal(&email("alice@example.com"), "ctx").unwrap();
    let bytes = B64.decode(&sealed.c).unwrap();
    for index in [0, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[index] ^= 0x01;
        let tampered = Sealed {
            c: B64.encode(&bad),
            ..sealed.clone()
        };
        assert!(matches!(
            p.open(&tampered, "ctx"),
            Err(PiiError::OpenFailed)
        ));
    }
    let mut nonce = B64.decode(&sealed.n).unwrap();
    nonce[0] ^= 0x01;
    let other_nonce = Sealed {
        n: B64.encode(&nonce),
        ..sealed.clone()
    };
    assert!(matches!(
        p.open(&other_nonce, "ctx"),
        Err(PiiError::OpenFailed)
    ));
    let truncated = Sealed {
        c: B64.encode(&bytes[..TAG_LEN - 1]),
        ..sealed.clone()
    };
    assert!(matches!(
        p.open(&truncated, "ctx"),
        Err(PiiError::MalformedSealed(_))
    ));
    let short_nonce = Sealed {
        n: B64.encode([0u8; 8]),
        ..sealed.clone()
    };
    assert!(matches!(
        p.open(&short_nonce, "ctx"),
        Err(PiiError::MalformedSealed(_))
    ));
    let not_base64 = Sealed {
        c: "%%%".to_owned(),
        ..sealed.clone()
    };
    assert!(matches!(
        p.open(&not_base64, "ctx"),
        Err(PiiError::MalformedSealed(_))
    ));
    let unknown = Sealed {
        v: "k9".to_owned(),
        ..sealed
    };
    assert!(matches!(p.open(&unknown, "ctx"), Err(PiiError::UnknownKey(id)) if id == "k9"));
}

#[test]
fn a_value_sealed_under_other_keys_does_not_open() {
    let sealed = protector()
        .seal(&email("alice@example.com"), "ctx")
        .unwrap();
    assert!(matches!(
        protector().open(&sealed, "ctx"),
        Err(PiiError::OpenFailed)
    ));
}

#[test]
fn after_rotation_old_values_still_open_and_new_ones_use_the_new_key() {
    let mut keys = DataKeys::generate();
    let before = Protector::new(Arc::new(keys.clone()));
    let old = before.seal(&email("alice@example.com"), "ctx").unwrap();
    let pepper_hash = before.hash("alice@example.com");
    assert_eq!(keys.rotate(), "k2");
    let after = Protector::new(Arc::new(keys.clone()));
    assert_eq!(
        after.open(&old, "ctx").unwrap().expose(),
        "alice@example.com"
    );
    let new = after.seal(&email("alice@example.com"), "ctx").unwrap();
    assert_eq!(new.v, "k2");
    assert_eq!(
        after.open(&new, "ctx").unwrap().expose(),
        "alice@example.com"
    );
    assert!(matches!(
        before.open(&new, "ctx"),
        Err(PiiError::UnknownKey(_))
    ));
    assert_eq!(
        after.hash("alice@example.com"),
        pepper_hash,
        "the pepper never rotates"
    );
    assert_eq!(keys.rotate(), "k3");
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["k1", "k2", "k3"]);
}

#[test]
fn rotation_picks_an_id_above_the_highest_numbered_key() {
    let mut keys = DataKeys::generate();
    for _ in 0..9 {
        keys.rotate();
    }
    assert_eq!(keys.current_key_id(), "k10");
    assert_eq!(keys.rotate(), "k11");
}

#[test]
fn the_secret_document_round_trips_and_has_the_documented_shape() {
    let mut keys = DataKeys::generate();
    keys.rotate();
    let secret = keys.to_secret();
    let value: serde_json::Value = serde_json::from_str(secret.expose_secret()).unwrap();
    assert_eq!(value["current"], "k2");
    assert_eq!(
        B64.decode(value["pepper"].as_str().unwrap()).unwrap().len(),
        KEY_LEN
    );
    let ids: Vec<&String> = value["keys"].as_object().unwrap().keys().collect();
    assert_eq!(ids, ["k1", "k2"]);
    let parsed = DataKeys::parse(secret.expose_secret()).unwrap();
    assert_eq!(*parsed.pepper, *keys.pepper);
    assert_eq!(parsed.current, keys.current);
    assert_eq!(parsed.keys, keys.keys);
    let sealed = Protector::new(Arc::new(keys))
        .seal(&email("alice@example.com"), "ctx")
        .unwrap();
    assert_eq!(
        Protector::new(Arc::new(parsed))
            .open(&sealed, "ctx")
            .unwrap()
            .expose(),
        "alice@example.com"
    );
}

#[test]
fn malformed_documents_are_refused_without_quoting_key_material() {
    let k = B64.encode([7u8; KEY_LEN]);
    let short = B64.encode([7u8; 16]);
    let cases = [
        ("not json".to_owned(), "not JSON"),
        ("{\"pepper\":\"x\"}".to_owned(), "not a data-keys document"),
        (
            format!("{{\"pepper\":\"{k}\",\"current\":\"k1\",\"keys\":\"{k}\"}}"),
            "not a data-keys document",
        ),
        (
            format!("{{\"pepper\":\"{short}\",\"current\":\"k1\",\"keys\":{{\"k1\":\"{k}\"}}}}"),
            "pepper",
        ),
        (
            format!("{{\"pepper\":\"{k}\",\"current\":\"k1\",\"keys\":{{\"k1\":\"{short}\"}}}}"),
            "key k1",
        ),
        (
            format!("{{\"pepper\":\"{k}\",\"current\":\"k2\",\"keys\":{{\"k1\":\"{k}\"}}}}"),
            "current key",
        ),
        (
            format!("{{\"pepper\":\"{k}\",\"current\":\"k1\",\"keys\":{{}}}}"),
            "no encryption keys",
        ),
        (
            format!("{{\"pepper\":\"{k}\",\"current\":\"a b\",\"keys\":{{\"a b\":\"{k}\"}}}}"),
            "invalid key id",
        ),
    ];
    for (text, expected) in cases {
        let err = DataKeys::parse(&text).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, PiiError::MalformedKeys(_)), "{shown}");
        assert!(shown.contains(expected), "{text}: {shown}");
        assert!(!shown.contains(&k) && !shown.contains(&short), "{shown}");
    }
}

#[test]
fn debug_shows_key_ids_but_no_key_bytes() {
    let mut keys = DataKeys::generate();
    keys.rotate();
    let secret = keys.to_secret();
    let value: serde_json::Value = serde_json::from_str(secret.expose_secret()).unwrap();
    let p = Protector::new(Arc::new(keys.clone()));
    let shown = format!("{keys:?} {p:?} {keys:#?}");
    assert!(shown.contains("k1") && shown.contains("k2"), "{shown}");
    assert!(shown.contains("redacted"));
    let mut materials = vec![value["pepper"].as_str().unwrap().to_owned()];
    for id in ["k1", "k2"] {
        materials.push(value["keys"][id].as_str().unwrap().to_owned());
    }
    for material in materials {
        let raw = B64.decode(&material).unwrap();
        assert!(!shown.contains(&material));
        assert!(!shown.contains(&hex::encode(&raw)));
        assert!(!shown.contains(&format!("{raw:?}")[1..20]));
    }
}

#[test]
fn a_seed_document_derives_the_same_keys_everywhere_and_rotates_into_the_full_form() {
    let seed = r#"{"seed": "Zq3v9XkP2mLw8RtY6bNc4HdJ7sFg1AeU"}"#;
    let a = DataKeys::parse(seed).unwrap();
    let b = DataKeys::parse(seed).unwrap();
    let pa = Protector::new(std::sync::Arc::new(a.clone()));
    let pb = Protector::new(std::sync::Arc::new(b));
    assert_eq!(pa.hash("x@example.com"), pb.hash("x@example.com"));
    let value = crate::redact::Pii::new("x@example.com".to_owned());
    let sealed = pa.seal(&value, "ctx").unwrap();
    assert_eq!(pb.open(&sealed, "ctx").unwrap().expose(), "x@example.com");
    // Rotating writes the full form, which keeps the derived pepper and key.
    let mut rotated = a.clone();
    rotated.rotate();
    let reparsed =
        DataKeys::parse(secrecy::ExposeSecret::expose_secret(&rotated.to_secret())).unwrap();
    let pr = Protector::new(std::sync::Arc::new(reparsed));
    assert_eq!(pr.hash("x@example.com"), pa.hash("x@example.com"));
    assert_eq!(pr.open(&sealed, "ctx").unwrap().expose(), "x@example.com");
    assert!(DataKeys::parse(r#"{"seed": "short"}"#).is_err());
    let other = DataKeys::parse(r#"{"seed": "another-seed-of-at-least-32-characters"}"#).unwrap();
    assert_ne!(
        Protector::new(std::sync::Arc::new(other)).hash("x@example.com"),
        pa.hash("x@example.com")
    );
}
