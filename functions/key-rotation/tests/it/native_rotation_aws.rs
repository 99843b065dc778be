//! The native Secrets Manager rotation on a real Secrets Manager API (moto), starting from the
//! placeholder secret the SAM template creates: `{"version":0,"keys":[],"bootstrap":"…"}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use key_rotation::{RotationConfig, RotationDeps, RotationPorts, handle};
use secrecy::ExposeSecret;
use serde_json::json;
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::keys::{
    KeySet, KeyState, PartnerId, PreparedKeys, RenderedJwks, Scope, ScopeClaim, TokenRequest,
};
use shared::secrets::aws::SecretsManagerStore;
use shared::secrets::{SecretName, SecretSource, SecretWriter, Stage};
use shared::telemetry::{MemorySink, Recorder};

struct World {
    deps: RotationDeps,
    clock: ManualClock,
    secrets: SecretsManagerStore,
    name: SecretName,
    arn: String,
}

/// A rotation function wired to Secrets Manager on moto, whose key set secret was just created
/// with the template's placeholder value.
async fn world() -> World {
    let sdk = common::moto().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = common::unique("partner-bundle/signing-keys");
    let bootstrap = uuid::Uuid::new_v4().simple().to_string();
    let placeholder = json!({"version": 0, "keys": [], "bootstrap": bootstrap}).to_string();
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(placeholder)
        .send()
        .await
        .expect("moto creates the placeholder secret");
    let arn = created.arn().expect("an ARN").to_owned();

    // The wall clock's current instant, held still: the tokens minted below verify against the
    // real time, and every step sees the same "now".
    let clock = ManualClock::new(SystemClock.now());
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let env = MapEnv::from_pairs([("KEY_SET_SECRET_NAME", name.as_str())]);
    let config = RotationConfig::from_env(&EnvReader::new(&env)).unwrap();
    let secrets = SecretsManagerStore::new(client);
    let writer: Arc<dyn SecretWriter> = Arc::new(secrets.clone());
    World {
        deps: RotationDeps::build(
            config,
            RotationPorts {
                secrets: writer,
                recorder: Recorder::new(
                    "Test",
                    "key-rotation",
                    Arc::new(MemorySink::default()),
                    shared_clock.clone(),
                ),
                clock: shared_clock,
            },
        ),
        clock,
        secrets,
        name: SecretName::new(&name).unwrap(),
        arn,
    }
}

fn step(name: &str, secret_id: &str, token: &str) -> serde_json::Value {
    json!({"Step": name, "SecretId": secret_id, "ClientRequestToken": token})
}

async fn current_set(w: &World) -> KeySet {
    let v = w.secrets.current(&w.name).await.unwrap();
    KeySet::parse(v.value.expose_secret()).unwrap()
}

#[tokio::test]
async fn the_four_steps_turn_the_template_placeholder_into_a_key_set_that_signs_tokens_the_jwks_verifies()
 {
    let w = world().await;
    let token = uuid::Uuid::new_v4().to_string();
    let placeholder = w.secrets.current(&w.name).await.unwrap();
    assert_eq!(current_set(&w).await, KeySet::default());

    // Each step twice: Secrets Manager retries a step whenever the function fails or times out.
    for s in ["createSecret", "setSecret", "testSecret"] {
        for attempt in 0..2 {
            handle(step(s, &w.arn, &token), &w.deps)
                .await
                .unwrap_or_else(|e| panic!("{s} (attempt {attempt}) failed: {e}"));
        }
    }
    let pending = w
        .secrets
        .get(&w.name, Stage::Pending)
        .await
        .unwrap()
        .expect("createSecret staged AWSPENDING");
    assert_eq!(pending.id.as_str(), token);
    assert_eq!(
        w.secrets.current(&w.name).await.unwrap().id,
        placeholder.id,
        "nothing is current before finishSecret"
    );
    let staged = KeySet::parse(pending.value.expose_secret()).unwrap();
    for attempt in 0..2 {
        handle(step("finishSecret", &w.arn, &token), &w.deps)
            .await
            .unwrap_or_else(|e| panic!("finishSecret (attempt {attempt}) failed: {e}"));
    }

    let current = w.secrets.current(&w.name).await.unwrap();
    assert_eq!(
        current.id.as_str(),
        token,
        "the token's version is AWSCURRENT"
    );
    let previous = w.secrets.get(&w.name, Stage::Previous).await.unwrap();
    assert_eq!(previous.map(|v| v.id), Some(placeholder.id));
    assert!(
        w.secrets
            .get(&w.name, Stage::Pending)
            .await
            .unwrap()
            .is_none()
    );
    let set = current_set(&w).await;
    assert_eq!(set, staged, "the repeated steps staged one document");
    assert_eq!(set.version, 1);
    assert_eq!(set.keys.len(), 1, "one key, added once: {set:?}");

    // The key is active now: the first key of an empty set signs at once.
    let now = w.clock.now();
    let timings = w.deps.config.keys.timings;
    assert_eq!(set.state(&set.keys[0], now, &timings), KeyState::Active);
    let keys = PreparedKeys::new(set.clone(), timings, now).unwrap();
    let partner = PartnerId::new("partner-aws").unwrap();
    let scope = ScopeClaim::parse(Scope::ISSUE).unwrap();
    let minted = keys
        .mint(
            &TokenRequest {
                partner_id: &partner,
                scope: &scope,
                email: Some("dana@example.com"),
                sub: None,
                issuer: None,
                lifetime: w.deps.config.keys.token_lifetime,
            },
            now,
        )
        .expect("the rotated key set signs now");
    assert_eq!(minted.kid, set.keys[0].kid);

    // A relying party verifies it with nothing but the published JWKS.
    let jwks: serde_json::Value =
        serde_json::from_str(&RenderedJwks::render(&set, now, &timings).body).unwrap();
    let header = jsonwebtoken::decode_header(minted.token.expose()).unwrap();
    let kid = header.kid.expect("a kid in the header");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS {jwks}"));
    let key =
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf", "iat"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(minted.token.expose(), &key, &validation)
        .expect("the token verifies with the JWKS");
    assert_eq!(data.claims["partnerId"], "partner-aws");
}
