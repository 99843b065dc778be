//! Property tests of the webhook verifier: for any headers and any secrets document, no panic and
//! only a documented 4xx.

use proptest::prelude::*;

use super::*;

/// One secret per scheme, and in the Standard scheme a public key too. The Standard secret is
/// the Standard Webhooks specification's published example secret, the public key RFC 8032's
/// TEST 1 key; the hex secret is base64 of the words "secret-for-property-tests". None protects
/// anything.
fn secrets(scheme: Scheme) -> SecretSet {
    let text = match scheme {
        Scheme::Standard => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Scheme::Hex => "c2VjcmV0LWZvci1wcm9wZXJ0eS10ZXN0cw",
    };
    let public_keys = match scheme {
        Scheme::Standard => vec![
            WebhookPublicKey::parse("whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").unwrap(),
        ],
        Scheme::Hex => Vec::new(),
    };
    SecretSet::from_keys(
        vec![WebhookSecret::parse(text, scheme).unwrap()],
        public_keys,
    )
}

proptest! {
    #[test]
    fn any_webhook_headers_get_a_documented_refusal_never_a_5xx(
        id in prop_oneof![Just(None), "\\PC{0,80}".prop_map(Some)],
        timestamp in prop_oneof![Just(None), "\\PC{0,20}".prop_map(Some), Just(Some("1700000000".to_owned()))],
        signature in prop_oneof![
            Just(None),
            "\\PC{0,200}".prop_map(Some),
            "(v1,[A-Za-z0-9+/=]{0,60} ?){1,4}".prop_map(Some),
            "(v1a?,[A-Za-z0-9+/]{86}== ?){1,4}".prop_map(Some),
            "[0-9a-f]{64}".prop_map(Some),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..256),
        hex in any::<bool>(),
    ) {
        let scheme = if hex { Scheme::Hex } else { Scheme::Standard };
        let delivery = Delivery {
            scheme,
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
            body: &body,
        };
        let failure = verify(&delivery, &secrets(scheme)).unwrap_err();
        let answer = failure.to_api_error();
        prop_assert!((400..500).contains(&answer.status()), "{failure:?}");
        let _ = WebhookId::parse(id.as_deref().unwrap_or(""));
        let _ = WebhookTimestamp::parse(timestamp.as_deref().unwrap_or(""));
    }

    #[test]
    fn any_secrets_document_parses_or_is_refused_without_panicking(text in "\\PC{0,200}", hex in any::<bool>()) {
        let scheme = if hex { Scheme::Hex } else { Scheme::Standard };
        let _ = SecretSet::parse(&text, scheme);
        let _ = WebhookSecret::parse(&text, scheme);
        let _ = WebhookPublicKey::parse(&text);
    }

    #[test]
    fn any_whpk_text_parses_or_is_refused_without_panicking(encoded in "[A-Za-z0-9+/=]{0,60}") {
        let _ = WebhookPublicKey::parse(&format!("whpk_{encoded}"));
        let doc = format!(r#"{{"publicKeys": ["whpk_{encoded}"]}}"#);
        let _ = SecretSet::parse(&doc, Scheme::Standard);
    }
}
