//! Test helpers: a JWKS server with run-time ES256 keys, a token minter, a callback receiver
//! and a simulator started on 127.0.0.1:0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use platform_sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

pub const PARTNER: &str = "partner-test";

/// An ES256 key generated at run time.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = secret.to_pkcs8_der().unwrap();
        let point = secret.public_key().to_encoded_point(false);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
        }
    }

    /// A token with the standard header (`alg` ES256, `typ` JWT, `kid`).
    pub fn mint(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.mint_with(header, claims)
    }

    pub fn mint_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Wall-clock Unix seconds (tokens are checked against the wall clock, not the simulator's).
pub fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that pass every check at time `now`.
pub fn claims(now: i64, email: &str) -> Value {
    json!({
        "partnerId": PARTNER, "scope": "issue", "email": email,
        "iat": now, "nbf": now, "exp": now + 300, "jti": format!("jti-{now}-{email}"),
        "sub": email,
    })
}

/// A JWKS endpoint on 127.0.0.1:0 whose key list tests can change.
pub struct JwksServer {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub fetches: Arc<AtomicUsize>,
    task: local_tls::Server,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let (k, f) = (Arc::clone(&k), Arc::clone(&f));
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "keys": *k.lock().unwrap() }))
                }
            }),
        );
        let task = test_support::serve_https(app);
        Self {
            url: format!("{}/.well-known/jwks.json", task.base_url()),
            keys,
            fetches,
            task,
        }
    }

    pub fn add(&self, jwk: Value) {
        self.keys.lock().unwrap().push(jwk);
    }
}

/// One callback the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub answered: u16,
}

/// A callback receiver on 127.0.0.1:0 that fails its first `fail_first` calls with 500.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    task: local_tls::Server,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        Self::start_slow(fail_first, 0).await
    }

    /// Like `start`, but its first `slow_first` calls hang for 30 s before answering.
    pub async fn start_slow(fail_first: usize, slow_first: usize) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&received);
        let app = Router::new().route(
            "/v1/callbacks/cak",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let r = Arc::clone(&r);
                let calls = Arc::clone(&calls);
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) < slow_first {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let mut all = r.lock().unwrap();
                    let status = if all.len() < fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    all.push(Received {
                        headers,
                        body: body.to_vec(),
                        answered: status.as_u16(),
                    });
                    status
                }
            }),
        );
        let task = test_support::serve_https(app);
        Self {
            url: format!("{}/v1/callbacks/cak", task.base_url()),
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A simulator, its JWKS, one signing key and an HTTP client.
pub struct Env {
    pub sim: SimHandle,
    pub jwks: JwksServer,
    pub key: TestKey,
    pub http: reqwest::Client,
}

pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(tune: impl FnOnce(SimConfig) -> SimConfig) -> Self {
        let key = TestKey::generate("key-1");
        let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
        let config = SimConfig {
            partner_id: PARTNER.to_owned(),
            jwks_url: jwks.url.clone(),
            onchain_delay: Duration::from_secs(60),
            callback_base_delay: Duration::from_millis(5),
            seed: 42,
            tls: Some(test_support::local_ca()),
            ..SimConfig::default()
        };
        let sim = platform_sim::spawn(tune(config), local()).await.unwrap();
        Self {
            sim,
            jwks,
            key,
            http: test_support::https_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn token(&self, email: &str) -> String {
        self.key.mint(&claims(wall_now(), email))
    }

    /// Issue-on-behalf with a valid token for `email`.
    pub async fn issue(&self, email: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/credentials/issue-on-behalf"))
            .header("x-partner-auth", self.token(email))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn status_of(&self, hash: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(&format!("/credentials/status?coreClaimHash={hash}")))
            .header("x-partner-auth", self.token("alice@example.com"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Requests the simulator logged for `route` (e.g. "POST /credentials/issue-on-behalf").
    pub async fn logged(&self, route: &str) -> Vec<Value> {
        let all = self.get_json("/sim/requests").await;
        all["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["route"] == route)
            .cloned()
            .collect()
    }
}

pub fn issue_body(program: &str) -> Value {
    json!({
        "issuerDid": "did:air:id:test:issuer",
        "credentialId": program,
        "credentialSubject": { "tier": "gold", "country": "CH" },
    })
}

pub use test_support::eventually;
