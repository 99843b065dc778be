//! The module's unit and property tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod unit {
    use crate::*;

    const VECTOR_SECRET: &str = "e520872701d9ec44dbac2eab85512ad14ad0c42e01de56d7b528abd8524fcb47";
    const VECTOR_CIPHERTEXT: &str = "047be1885aeb48d4d4db0c992996725d3264784fef88c5b60782f8d0f940c213227fc3f904f846d5ec3d0fba6653754501e8ebadc421aa3892a20fef33cff0206047058a4cfb4efbeae96b2d019b4ab2edce33328748a0d008a69c8f5816b72d45bd9b5a41bb6ea0127ab23057ec6fcd";

    const CURVES: [Curve; 2] = [Curve::Secp256r1, Curve::Secp256k1];

    #[test]
    fn round_trip_works_on_both_curves_for_empty_small_and_one_megabyte_messages() {
        let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let pk = sk.public_key();
            for message in [&b""[..], &b"x"[..], &big[..]] {
                let ct = encrypt(&pk, message).unwrap();
                assert_eq!(ct.len(), MIN_CIPHERTEXT_LEN + message.len());
                assert_eq!(ct[0], 0x04);
                assert_eq!(decrypt(&sk, &ct).unwrap(), message, "{curve}");
            }
        }
    }

    #[test]
    fn two_encryptions_of_the_same_message_differ() {
        for curve in CURVES {
            let pk = SecretKey::generate(curve).public_key();
            assert_ne!(
                encrypt(&pk, b"same").unwrap(),
                encrypt(&pk, b"same").unwrap()
            );
        }
    }

    #[test]
    fn tampered_ciphertext_fails_to_decrypt() {
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let ct = encrypt(&sk.public_key(), b"sensitive data").unwrap();
            for index in [
                10,
                UNCOMPRESSED_KEY_LEN + 1,
                UNCOMPRESSED_KEY_LEN + NONCE_LEN + 1,
                ct.len() - 1,
            ] {
                let mut bad = ct.clone();
                bad[index] ^= 0x01;
                assert!(decrypt(&sk, &bad).is_err(), "{curve} byte {index}");
            }
        }
    }

    #[test]
    fn wrong_key_fails_to_decrypt() {
        for curve in CURVES {
            let ct = encrypt(&SecretKey::generate(curve).public_key(), b"hi").unwrap();
            let other = SecretKey::generate(curve);
            assert_eq!(decrypt(&other, &ct), Err(EciesError::DecryptionFailed));
        }
    }

    #[test]
    fn too_short_ciphertext_is_rejected() {
        for curve in CURVES {
            let sk = SecretKey::generate(curve);
            let ct = encrypt(&sk.public_key(), b"").unwrap();
            assert_eq!(
                decrypt(&sk, &ct[..ct.len() - 1]),
                Err(EciesError::CiphertextTooShort {
                    len: MIN_CIPHERTEXT_LEN - 1
                })
            );
            assert!(matches!(
                decrypt(&sk, &[]),
                Err(EciesError::CiphertextTooShort { len: 0 })
            ));
        }
    }

    #[test]
    fn invalid_public_keys_are_rejected() {
        for curve in CURVES {
            let mut not_on_curve = [0u8; 65];
            not_on_curve[0] = 0x04;
            not_on_curve[64] = 0x07;
            assert_eq!(
                PublicKey::from_sec1(curve, &not_on_curve),
                Err(EciesError::InvalidPublicKey)
            );
            assert!(PublicKey::from_sec1(curve, &[]).is_err());
            assert!(PublicKey::from_sec1(curve, &[0u8; 65]).is_err());
            assert!(PublicKey::from_hex(curve, "zz").is_err());
        }
        let k1 = SecretKey::generate(Curve::Secp256k1).public_key();
        // A secp256k1 point is (with overwhelming probability) not on P-256.
        assert!(PublicKey::from_sec1(Curve::Secp256r1, k1.as_bytes()).is_err());
    }

    #[test]
    fn invalid_secret_keys_are_rejected() {
        for curve in CURVES {
            assert_eq!(
                SecretKey::from_bytes(curve, &[0u8; 32]).unwrap_err(),
                EciesError::InvalidSecretKey
            );
            assert!(SecretKey::from_bytes(curve, &[0xff; 32]).is_err());
            assert!(SecretKey::from_bytes(curve, &[1u8; 31]).is_err());
        }
    }

    #[test]
    fn public_keys_parse_from_hex_and_compressed_form_and_print_uncompressed() {
        for curve in CURVES {
            let pk = SecretKey::generate(curve).public_key();
            let hex_text = pk.to_hex();
            assert_eq!(hex_text.len(), 130);
            assert!(hex_text.starts_with("04"));
            assert_eq!(PublicKey::from_hex(curve, &hex_text).unwrap(), pk);
            assert_eq!(
                PublicKey::from_hex(curve, &format!("0x{hex_text}")).unwrap(),
                pk
            );
            let compressed = match curve {
                Curve::Secp256r1 => p256::PublicKey::from_sec1_bytes(pk.as_bytes())
                    .unwrap()
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec(),
                Curve::Secp256k1 => k256::PublicKey::from_sec1_bytes(pk.as_bytes())
                    .unwrap()
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec(),
            };
            assert_eq!(PublicKey::from_sec1(curve, &compressed).unwrap(), pk);
            assert_eq!(pk.curve(), curve);
        }
    }

    #[test]
    fn the_published_ecies_rs_secp256k1_vector_decrypts() {
        let sk =
            SecretKey::from_bytes(Curve::Secp256k1, &hex::decode(VECTOR_SECRET).unwrap()).unwrap();
        let ct = hex::decode(VECTOR_CIPHERTEXT).unwrap();
        let plaintext = decrypt(&sk, &ct).unwrap();
        assert_eq!(String::from_utf8(plaintext).unwrap(), "hello world🌍");
    }

    #[test]
    fn p256_ciphertext_follows_the_documented_construction() {
        let sk = SecretKey::generate(Curve::Secp256r1);
        let message = b"document image bytes";
        let ct = encrypt(&sk.public_key(), message).unwrap();

        let (ephemeral, rest) = ct.split_at(65);
        let (nonce, rest) = rest.split_at(16);
        let (tag, body) = rest.split_at(16);
        let ephemeral_point = p256::PublicKey::from_sec1_bytes(ephemeral).unwrap();
        let secret = p256::SecretKey::from_slice(sk.to_bytes().as_ref()).unwrap();

        // Raw ECDH gives the shared x-coordinate; the construction needs the full point.
        let raw =
            p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ephemeral_point.as_affine());
        let shared_point =
            (ephemeral_point.to_projective() * *secret.to_nonzero_scalar()).to_affine();
        let shared_uncompressed = shared_point.to_encoded_point(false);
        assert_eq!(
            &shared_uncompressed.as_bytes()[1..33],
            &raw.raw_secret_bytes()[..]
        );

        let mut ikm = ephemeral.to_vec();
        ikm.extend_from_slice(shared_uncompressed.as_bytes());
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut key)
            .unwrap();

        let cipher = Aes256Gcm16::new_from_slice(&key).unwrap();
        let mut out = body.to_vec();
        cipher
            .decrypt_in_place_detached(
                &block16(nonce).unwrap(),
                b"",
                &mut out,
                &block16(tag).unwrap(),
            )
            .unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn secp256k1_module_output_matches_the_same_construction_by_hand() {
        let sk = SecretKey::generate(Curve::Secp256k1);
        let ct = encrypt(&sk.public_key(), b"k1 by hand").unwrap();
        let ephemeral = k256::PublicKey::from_sec1_bytes(&ct[..65]).unwrap();
        let secret = k256::SecretKey::from_slice(sk.to_bytes().as_ref()).unwrap();
        let shared = (ephemeral.to_projective() * *secret.to_nonzero_scalar()).to_affine();
        let mut ikm = ct[..65].to_vec();
        ikm.extend_from_slice(shared.to_encoded_point(false).as_bytes());
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut key)
            .unwrap();
        let cipher = Aes256Gcm16::new_from_slice(&key).unwrap();
        let mut out = ct[97..].to_vec();
        cipher
            .decrypt_in_place_detached(
                &block16(&ct[65..81]).unwrap(),
                b"",
                &mut out,
                &block16(&ct[81..97]).unwrap(),
            )
            .unwrap();
        assert_eq!(out, b"k1 by hand");
    }

    #[test]
    fn derived_keys_are_deterministic_and_depend_on_every_input() {
        for curve in CURVES {
            let a = SecretKey::derive(curve, b"seed", b"ctx");
            let b = SecretKey::derive(curve, b"seed", b"ctx");
            assert_eq!(a.public_key(), b.public_key());
            assert_ne!(
                a.public_key(),
                SecretKey::derive(curve, b"seed", b"ctx2").public_key()
            );
            assert_ne!(
                a.public_key(),
                SecretKey::derive(curve, b"seed2", b"ctx").public_key()
            );
            let ct = encrypt(&a.public_key(), b"ok").unwrap();
            assert_eq!(decrypt(&b, &ct).unwrap(), b"ok");
        }
    }

    #[test]
    fn a_derived_key_is_the_documented_hkdf_output_under_the_original_salt() {
        for curve in CURVES {
            let salt = format!("shared::ecies::derive:{curve}");
            let mut scalar = [0u8; 32];
            Hkdf::<Sha256>::new(Some(salt.as_bytes()), b"seed")
                .expand(
                    &[&b"ctx"[..], &0u32.to_be_bytes()[..]].concat(),
                    &mut scalar,
                )
                .unwrap();
            let expected = SecretKey::from_bytes(curve, &scalar).unwrap();
            assert_eq!(
                SecretKey::derive(curve, b"seed", b"ctx").public_key(),
                expected.public_key()
            );
        }
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let sk =
            SecretKey::from_bytes(Curve::Secp256k1, &hex::decode(VECTOR_SECRET).unwrap()).unwrap();
        let text = format!("{sk:?}");
        assert!(!text.contains(VECTOR_SECRET));
        assert!(text.contains("redacted"));
    }

    #[test]
    fn curve_names_parse_print_and_serialize_in_lowercase() {
        for curve in CURVES {
            assert_eq!(curve.to_string().parse::<Curve>().unwrap(), curve);
            let json = serde_json::to_string(&curve).unwrap();
            assert_eq!(json, format!("\"{curve}\""));
            assert_eq!(serde_json::from_str::<Curve>(&json).unwrap(), curve);
        }
        assert_eq!(Curve::default(), Curve::Secp256r1);
        assert!("ed25519".parse::<Curve>().is_err());
    }
}

mod properties {
    use proptest::prelude::*;

    use crate::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_ciphertext_or_key_bytes_are_refused_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            k1 in any::<bool>(),
        ) {
            let curve = if k1 { Curve::Secp256k1 } else { Curve::Secp256r1 };
            let key = SecretKey::generate(curve);
            prop_assert!(decrypt(&key, &bytes).is_err());
            let _ = PublicKey::from_sec1(curve, &bytes);
            let _ = SecretKey::from_bytes(curve, &bytes);
            let _ = PublicKey::from_hex(curve, &hex::encode(&bytes));
        }

        #[test]
        fn a_ciphertext_with_any_byte_flipped_is_refused(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let key = SecretKey::generate(Curve::Secp256r1);
            let mut ct = encrypt(&key.public_key(), &plaintext).unwrap();
            let i = at.index(ct.len());
            ct[i] ^= flip;
            prop_assert!(decrypt(&key, &ct).is_err());
        }
    }
}
