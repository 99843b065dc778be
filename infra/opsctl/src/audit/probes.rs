//! The live probes: black-box requests to a running stack, as an outsider holding only the
//! credentials the operator hands the audit ([`Credentials`]). Every request and what came back is
//! kept as evidence; a token or a secret is never printed.
//!
//! The probes change the stack only as a caller would: they mint a few tokens, record one test
//! callback (and its duplicate) and make requests that are refused. They never issue a
//! credential.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checklist::by_id;
use super::report::{Finding, Outcome};

/// What the operator gives the audit to act as the stack's callers: an API key (for the signed
/// routes and the server token route), optionally a read-only key, the webhook secret the platform
/// signs callbacks with, and identity tokens of the partner's identity provider (or, on the
/// devstack, its login URL). The devstack's `dev-credentials.json` is such a file.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// A key holding `credentials:read`, `credentials:write` and `tokens:mint`.
    #[serde(default)]
    pub api_key: Option<KeyCredential>,
    /// A `read_only` key.
    #[serde(default)]
    pub read_only_key: Option<KeyCredential>,
    /// The Standard Webhooks secret (`whsec_…`) the platform signs callbacks with.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// An identity token of the partner's identity provider without MFA evidence.
    #[serde(default)]
    pub id_token: Option<SecretString>,
    /// The devstack's login URL (`/dev/login`), which issues identity tokens on request.
    #[serde(default)]
    pub user_login: Option<String>,
}

/// An API key: its id and secret.
#[derive(Deserialize)]
pub struct KeyCredential {
    /// `X-Access-Key` (`pk_…`).
    pub id: String,
    /// The HMAC secret.
    pub secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key.as_ref().map(|k| &k.id))
            .field("read_only_key", &self.read_only_key.as_ref().map(|k| &k.id))
            .field("webhook_secret", &self.webhook_secret.is_some())
            .field("id_token", &self.id_token.is_some())
            .field("user_login", &self.user_login)
            .finish()
    }
}

impl Credentials {
    /// Reads a credentials file (JSON).
    ///
    /// # Errors
    /// The file cannot be read or is not a credentials document.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a credentials document: {e}", path.display()))
    }
}

/// Who answered a request: one of the bundle's functions, or API Gateway itself (a CORS
/// preflight, the JWT authorizer's refusal), whose answers the bundle does not shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Function,
    Gateway,
}

/// One request and its answer.
#[derive(Debug, Clone)]
struct Exchange {
    what: String,
    source: Source,
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Exchange {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    fn error_type(&self) -> Option<String> {
        self.json()?
            .get("errorType")?
            .as_str()
            .map(ToOwned::to_owned)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `what → status body`, the body shortened and any token in it redacted.
    fn evidence(&self) -> String {
        let mut body = self
            .json()
            .map_or_else(|| self.body.clone(), |v| redact(v).to_string());
        if body.len() > 160 {
            let mut cut = 160;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push('…');
        }
        format!("{} → {} {}", self.what, self.status, body)
    }
}

/// Replaces the values of members that carry a bearer token.
fn redact(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        for (name, value) in map.iter_mut() {
            if ["token", "idToken", "accessToken"].contains(&name.as_str()) && value.is_string() {
                *value = Value::String("<redacted>".into());
            }
        }
    }
    v
}

/// A failed request (no answer at all).
struct NoAnswer {
    what: String,
    error: String,
}

/// How a signed request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// Signed correctly, timestamped `offset` seconds from now.
    At(i64),
    /// Signed, then one character of the signature changed.
    Tampered,
    /// No signature headers at all.
    Unsigned,
}

/// The audit's view of one running stack.
pub struct Prober {
    base: String,
    client: reqwest::Client,
    plain: reqwest::Client,
    creds: Credentials,
    exchanges: Vec<Exchange>,
    findings: HashMap<&'static str, Finding>,
    trusted: String,
}

/// The largest body a function accepts is 6 MiB (`MAX_BODY_BYTES`, and Lambda's own payload
/// limit); the oversized probe sends a little more.
const OVERSIZED: usize = 6 * 1024 * 1024 + 512 * 1024;

/// A marker put in malformed bodies, to see whether an answer echoes what it was sent.
const MARKER: &str = "audit-marker-7f3c";

/// The foreign origin of the CORS probe (`.invalid` never resolves).
const FOREIGN_ORIGIN: &str = "https://audit-probe.invalid";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Prober {
    /// A prober of the API at `base` (`https://…`, with any base path), trusting the system's
    /// roots and, when given, the CA certificates in `ca_pem`.
    ///
    /// # Errors
    /// The HTTP client cannot be built (a malformed CA file).
    pub fn new(base: &str, ca_pem: Option<&[u8]>, creds: Credentials) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none());
        let mut trusted = "the system's trusted roots".to_owned();
        if let Some(pem) = ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_merge(roots);
            trusted.push_str(" and the CA given with --ca");
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            plain,
            creds,
            exchanges: Vec::new(),
            findings: HashMap::new(),
            trusted,
        })
    }

    /// Runs every live probe; one finding per live item.
    pub async fn run(mut self) -> HashMap<&'static str, Finding> {
        self.jwks().await;
        self.tokens().await;
        self.mfa().await;
        self.hmac().await;
        self.read_only().await;
        self.callbacks().await;
        self.cors().await;
        self.bodies().await;
        self.https_only().await;
        // Last: these read every answer the probes above received.
        self.security_headers();
        self.error_shape();
        self.findings
    }

    fn record(&mut self, id: &'static str, outcome: Outcome, evidence: Vec<String>) {
        self.findings
            .insert(id, Finding::new(by_id(id), outcome, evidence));
    }

    async fn send(
        &mut self,
        what: String,
        source: Source,
        request: reqwest::RequestBuilder,
    ) -> Result<Exchange, NoAnswer> {
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let body = r.text().await.unwrap_or_default();
                let exchange = Exchange {
                    what,
                    source,
                    status,
                    headers,
                    body,
                };
                self.exchanges.push(exchange.clone());
                Ok(exchange)
            }
            Err(e) => Err(NoAnswer {
                what,
                error: shared::error::chain(&e),
            }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The path as the server sees it and signs it: the base URL's path plus `path`.
    fn signed_path(&self, path: &str) -> String {
        let base_path = reqwest::Url::parse(&self.base)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{base_path}{path}")
    }

    async fn signed(
        &mut self,
        key: Key,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signing: Signing,
        label: &str,
    ) -> Result<Exchange, NoAnswer> {
        let what = format!("{method} {path} ({label})");
        let mut request = self
            .client
            .request(method.clone(), self.url(path))
            .header("content-type", "application/json");
        if method == Method::POST {
            request = request.header("idempotency-key", fresh_id());
        }
        let cred = match key {
            Key::Write => self.creds.api_key.as_ref(),
            Key::ReadOnly => self.creds.read_only_key.as_ref(),
        };
        if let (Some(cred), false) = (cred, signing == Signing::Unsigned) {
            let offset = match signing {
                Signing::At(o) => o,
                _ => 0,
            };
            let ts = (now_secs() + offset).to_string();
            let mut signature = shared::auth::sign(
                cred.secret.expose_secret(),
                method.as_str(),
                &self.signed_path(path),
                &ts,
                &body,
            );
            if signing == Signing::Tampered {
                let flipped = if signature.ends_with('0') { '1' } else { '0' };
                signature.pop();
                signature.push(flipped);
            }
            request = request
                .header("x-access-key", &cred.id)
                .header("x-timestamp", ts)
                .header("x-signature", signature);
        }
        self.send(what, Source::Function, request.body(body)).await
    }

    async fn jwks(&mut self) {
        let url = self.url("/.well-known/jwks.json");
        let https = url.starts_with("https://");
        let first = self
            .send(
                "GET /.well-known/jwks.json".into(),
                Source::Function,
                self.client.get(&url),
            )
            .await;
        let first = match first {
            Ok(e) => e,
            Err(e) => {
                let why = format!("no answer: {}", e.error);
                let ev = vec![format!("{} → {}", e.what, e.error)];
                for id in ["jwks-https", "jwks-public-only", "jwks-kid", "jwks-caching"] {
                    self.record(id, Outcome::fail(why.clone()), ev.clone());
                }
                return;
            }
        };
        let ev = vec![first.evidence()];
        if https && first.status == 200 {
            self.record(
                "jwks-https",
                Outcome::Pass,
                vec![format!(
                    "{} (TLS, certificate verified against {})",
                    first.evidence(),
                    self.trusted
                )],
            );
        } else if https {
            self.record(
                "jwks-https",
                Outcome::fail(format!("the JWKS answered {}", first.status)),
                ev.clone(),
            );
        } else {
            self.record(
                "jwks-https",
                Outcome::fail("the API address is not https://"),
                ev.clone(),
            );
        }
        let keys = first
            .json()
            .and_then(|v| v.get("keys").and_then(Value::as_array).cloned());
        let Some(keys) = keys.filter(|_| first.status == 200) else {
            for id in ["jwks-public-only", "jwks-kid", "jwks-caching"] {
                self.record(id, Outcome::fail("no JWKS document"), ev.clone());
            }
            return;
        };
        // Public members only.
        const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        let leaks: Vec<String> = keys
            .iter()
            .flat_map(|k| {
                let kid = k["kid"].as_str().unwrap_or("?").to_owned();
                PRIVATE
                    .iter()
                    .filter(move |m| k.get(**m).is_some())
                    .map(move |m| format!("key {kid} has the private member {m:?}"))
            })
            .collect();
        let members: Vec<String> = keys
            .iter()
            .map(|k| {
                let names: Vec<&str> = k
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                format!(
                    "key {}: members {}",
                    k["kid"].as_str().unwrap_or("?"),
                    names.join(" ")
                )
            })
            .collect();
        if keys.is_empty() {
            self.record(
                "jwks-public-only",
                Outcome::fail("the JWKS has no key"),
                ev.clone(),
            );
        } else if leaks.is_empty() {
            self.record("jwks-public-only", Outcome::Pass, members);
        } else {
            self.record("jwks-public-only", Outcome::fail(leaks.join("; ")), members);
        }
        // kid = RFC 7638 thumbprint.
        let mut wrong = Vec::new();
        let mut kids = Vec::new();
        for k in &keys {
            let kid = k["kid"].as_str().unwrap_or_default();
            match thumbprint(k) {
                Some(t) if t == kid => kids.push(format!("kid {kid} = RFC 7638 thumbprint")),
                Some(t) => wrong.push(format!("kid {kid:?} is not its thumbprint {t}")),
                None => wrong.push(format!("key {kid:?}: no thumbprint (unknown kty)")),
            }
        }
        if keys.is_empty() {
            self.record("jwks-kid", Outcome::fail("the JWKS has no key"), ev.clone());
        } else if wrong.is_empty() {
            self.record("jwks-kid", Outcome::Pass, kids);
        } else {
            self.record("jwks-kid", Outcome::fail(wrong.join("; ")), kids);
        }
        // Caching.
        let cache = first.header("cache-control").unwrap_or_default().to_owned();
        let etag = first.header("etag").map(ToOwned::to_owned);
        let mut ev = vec![format!(
            "Cache-Control: {cache:?}, ETag: {}",
            etag.as_deref().unwrap_or("(none)")
        )];
        let public = cache.contains("public") && max_age(&cache).is_some_and(|a| a > 0);
        let Some(etag) = etag else {
            self.record("jwks-caching", Outcome::fail("the JWKS has no ETag"), ev);
            return;
        };
        let second = self
            .send(
                "GET /.well-known/jwks.json with If-None-Match".into(),
                Source::Function,
                self.client.get(&url).header("if-none-match", &etag),
            )
            .await;
        let outcome = match second {
            Ok(s) => {
                ev.push(s.evidence());
                if !public {
                    Outcome::fail("Cache-Control is not public with a max-age")
                } else if s.status == 304 {
                    Outcome::Pass
                } else {
                    Outcome::fail(format!("If-None-Match answered {}, not 304", s.status))
                }
            }
            Err(e) => Outcome::fail(format!("no answer: {}", e.error)),
        };
        self.record("jwks-caching", outcome, ev);
    }

    /// Mints a `session` token: through the server route with the API key, else the user route.
    async fn mint(&mut self, scope: &str) -> Result<(Exchange, String), String> {
        if self.creds.api_key.is_some() {
            // A subject of its own per token: two mints in one second must not be one signature.
            let sub = format!("audit-probe-{}", fresh_id());
            let body = json!({"scope": scope, "user": {"sub": sub, "email": "audit@example.com"}});
            let e = self
                .signed(
                    Key::Write,
                    Method::POST,
                    "/v1/server/partner-tokens",
                    body.to_string().into_bytes(),
                    Signing::At(0),
                    "API key",
                )
                .await
                .map_err(|e| format!("{} → {}", e.what, e.error))?;
            return token_of(e);
        }
        let Some(id_token) = self.id_token(true).await? else {
            return Err("no API key and no identity token in --credentials".into());
        };
        let e = self
            .send(
                "POST /v1/partner-tokens (identity token)".into(),
                Source::Function,
                self.client
                    .post(self.url("/v1/partner-tokens"))
                    .bearer_auth(id_token.expose_secret())
                    .header("content-type", "application/json")
                    .body(json!({ "scope": scope }).to_string()),
            )
            .await
            .map_err(|e| format!("{} → {}", e.what, e.error))?;
        token_of(e)
    }

    /// An identity token: the one given, or one from the devstack's login (with or without MFA).
    async fn id_token(&mut self, mfa: bool) -> Result<Option<SecretString>, String> {
        if let Some(login) = self.creds.user_login.clone() {
            let e = self
                .send(
                    format!("POST {login} (mfa: {mfa})"),
                    Source::Function,
                    self.client.post(&login).body(
                        json!({"sub": "audit-probe", "email": "audit@example.com", "mfa": mfa})
                            .to_string(),
                    ),
                )
                .await
                .map_err(|e| format!("{} → {}", e.what, e.error))?;
            let token = e
                .json()
                .and_then(|v| v["idToken"].as_str().map(ToOwned::to_owned));
            return Ok(token.map(SecretString::from));
        }
        if mfa {
            return Ok(None);
        }
        Ok(self
            .creds
            .id_token
            .as_ref()
            .map(|t| SecretString::from(t.expose_secret().to_owned())))
    }

    async fn tokens(&mut self) {
        let ids = [
            "token-lifetime",
            "token-header",
            "token-verifies",
            "token-jti",
        ];
        let can_mint = self.creds.api_key.is_some()
            || self.creds.id_token.is_some()
            || self.creds.user_login.is_some();
        if !can_mint {
            for id in ids {
                self.record(
                    id,
                    Outcome::not_observable(
                        "give --credentials an API key holding tokens:mint, or an identity token (idToken) of the partner's identity provider",
                    ),
                    vec![],
                );
            }
            return;
        }
        let minted = match (self.mint("session").await, self.mint("session").await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                for id in ids {
                    self.record(
                        id,
                        Outcome::fail(format!("no token could be minted: {e}")),
                        vec![],
                    );
                }
                return;
            }
        };
        let ((ea, ta), (eb, tb)) = minted;
        let ev = vec![ea.evidence(), eb.evidence()];
        let (Some(ca), Some(cb)) = (claims(&ta), claims(&tb)) else {
            for id in ids {
                self.record(id, Outcome::fail("the token is not a JWT"), ev.clone());
            }
            return;
        };
        // Lifetime.
        let life = ca["exp"]
            .as_i64()
            .zip(ca["iat"].as_i64())
            .map(|(e, i)| e - i);
        let outcome = match life {
            Some(l) if l <= 300 => Outcome::Pass,
            Some(l) => Outcome::fail(format!("exp - iat = {l} s")),
            None => Outcome::fail("the token lacks exp or iat"),
        };
        let mut lev = ev.clone();
        lev.push(format!(
            "claims iat={} nbf={} exp={} (exp - iat = {} s)",
            ca["iat"],
            ca["nbf"],
            ca["exp"],
            life.map_or("?".into(), |l| l.to_string())
        ));
        self.record("token-lifetime", outcome, lev);
        // Header.
        let jwks = self.jwks_document().await;
        let header = jsonwebtoken::decode_header(&ta);
        let kids: Vec<String> = jwks
            .as_ref()
            .map(|s| {
                s.keys
                    .iter()
                    .filter_map(|k| k.common.key_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let (outcome, hev) = match &header {
            Ok(h) => {
                let typ = h.typ.clone().unwrap_or_default();
                let kid = h.kid.clone().unwrap_or_default();
                let line = format!(
                    "header alg={:?} typ={typ:?} kid={kid:?}; JWKS kids: {}",
                    h.alg,
                    kids.join(", ")
                );
                let outcome = if h.alg != jsonwebtoken::Algorithm::ES256 {
                    Outcome::fail(format!("alg is {:?}", h.alg))
                } else if typ != "JWT" {
                    Outcome::fail(format!("typ is {typ:?}"))
                } else if !kids.contains(&kid) {
                    Outcome::fail(format!("kid {kid:?} is not in the JWKS"))
                } else {
                    Outcome::Pass
                };
                (outcome, vec![line])
            }
            Err(e) => (Outcome::fail(format!("no JWT header: {e}")), vec![]),
        };
        self.record("token-header", outcome, hev);
        // Verification.
        let outcome = match (&header, &jwks) {
            (Ok(h), Some(set)) => match h.kid.as_deref().and_then(|k| set.find(k)) {
                Some(jwk) => match jsonwebtoken::DecodingKey::from_jwk(jwk) {
                    Ok(key) => {
                        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
                        v.validate_aud = false;
                        v.set_required_spec_claims(&["exp", "iat"]);
                        match jsonwebtoken::decode::<Value>(&ta, &key, &v) {
                            Ok(_) => Outcome::Pass,
                            Err(e) => Outcome::fail(format!("the signature does not verify: {e}")),
                        }
                    }
                    Err(e) => Outcome::fail(format!("the JWKS key is unusable: {e}")),
                },
                None => Outcome::fail("the token's kid is not in the JWKS"),
            },
            _ => Outcome::fail("no header or no JWKS to verify with"),
        };
        self.record(
            "token-verifies",
            outcome,
            vec!["ES256 signature checked with the key of the token's kid from GET /.well-known/jwks.json".into()],
        );
        // jti.
        let (ja, jb) = (
            ca["jti"].as_str().unwrap_or_default(),
            cb["jti"].as_str().unwrap_or_default(),
        );
        let outcome = if ja.is_empty() || jb.is_empty() {
            Outcome::fail("a token has no jti")
        } else if ja == jb {
            Outcome::fail("two tokens share one jti")
        } else {
            Outcome::Pass
        };
        self.record(
            "token-jti",
            outcome,
            vec![format!(
                "two tokens minted one after the other: jti {ja} and {jb}"
            )],
        );
    }

    async fn jwks_document(&mut self) -> Option<jsonwebtoken::jwk::JwkSet> {
        let r = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn mfa(&mut self) {
        let mut ev = Vec::new();
        let mut verdicts = Vec::new();
        if self.creds.api_key.is_some() {
            let body = json!({"scope": "issue", "user": {"sub": "audit-probe", "email": "audit@example.com", "amr": ["pwd"]}});
            match self
                .signed(
                    Key::Write,
                    Method::POST,
                    "/v1/server/partner-tokens",
                    body.to_string().into_bytes(),
                    Signing::At(0),
                    "scope issue, amr [pwd]",
                )
                .await
            {
                Ok(e) => {
                    ev.push(e.evidence());
                    verdicts.push(refused_mfa(&e));
                }
                Err(e) => verdicts.push(Err(format!("no answer: {}", e.error))),
            }
        }
        match self.id_token(false).await {
            Ok(Some(token)) => {
                match self
                    .send(
                        "POST /v1/partner-tokens (scope issue, identity token without MFA)".into(),
                        Source::Function,
                        self.client
                            .post(self.url("/v1/partner-tokens"))
                            .bearer_auth(token.expose_secret())
                            .header("content-type", "application/json")
                            .body(json!({"scope": "issue"}).to_string()),
                    )
                    .await
                {
                    Ok(e) => {
                        ev.push(e.evidence());
                        verdicts.push(refused_mfa(&e));
                    }
                    Err(e) => verdicts.push(Err(format!("no answer: {}", e.error))),
                }
            }
            Ok(None) => {}
            Err(e) => verdicts.push(Err(e)),
        }
        let outcome = if verdicts.is_empty() {
            Outcome::not_observable(
                "give --credentials an API key or an identity token without MFA; else see MFA_SCOPES in the function's environment",
            )
        } else if let Some(Err(why)) = verdicts.iter().find(|v| v.is_err()) {
            Outcome::fail(why.clone())
        } else {
            Outcome::Pass
        };
        self.record("mfa-issue-scope", outcome, ev);
    }

    async fn hmac(&mut self) {
        let ids = [
            "hmac-unsigned",
            "hmac-bad-signature",
            "hmac-stale",
            "hmac-future",
            "hmac-replay",
        ];
        if self.creds.api_key.is_none() {
            for id in ids {
                self.record(
                    id,
                    Outcome::not_observable(
                        "give --credentials an API key (apiKey.id, apiKey.secret)",
                    ),
                    vec![],
                );
            }
            return;
        }
        let path = format!("/v1/credentials/{}", fresh_id());
        let cases = [
            (
                "hmac-unsigned",
                Signing::Unsigned,
                "unsigned",
                "unauthorized",
            ),
            (
                "hmac-bad-signature",
                Signing::Tampered,
                "one signature character changed",
                "signature_mismatch",
            ),
            (
                "hmac-stale",
                Signing::At(-360),
                "signed 6 minutes ago",
                "timestamp_out_of_window",
            ),
            (
                "hmac-future",
                Signing::At(360),
                "timestamped 6 minutes ahead",
                "timestamp_out_of_window",
            ),
        ];
        for (id, signing, label, expected) in cases {
            let r = self
                .signed(Key::Write, Method::GET, &path, vec![], signing, label)
                .await;
            let (outcome, ev) = expect_refusal(r, 401, expected);
            self.record(id, outcome, ev);
        }
        // Replay: the very same signed request twice.
        let Some(cred) = self.creds.api_key.as_ref() else {
            return;
        };
        let ts = now_secs().to_string();
        let signature = shared::auth::sign(
            cred.secret.expose_secret(),
            "GET",
            &self.signed_path(&path),
            &ts,
            b"",
        );
        let request = || {
            self.client
                .get(self.url(&path))
                .header("x-access-key", &cred.id)
                .header("x-timestamp", &ts)
                .header("x-signature", &signature)
        };
        let (first, second) = (request(), request());
        let first = self
            .send(format!("GET {path} (signed)"), Source::Function, first)
            .await;
        let second = self
            .send(
                format!("GET {path} (the same signed request again)"),
                Source::Function,
                second,
            )
            .await;
        let (outcome, mut ev) = expect_refusal(second, 401, "replayed_request");
        match first {
            Ok(f) if f.status < 400 || f.status == 404 => ev.insert(0, f.evidence()),
            Ok(f) => {
                ev.insert(0, f.evidence());
                self.record(
                    "hmac-replay",
                    Outcome::fail("the first, valid request was refused"),
                    ev,
                );
                return;
            }
            Err(e) => ev.insert(0, format!("{} → {}", e.what, e.error)),
        }
        self.record("hmac-replay", outcome, ev);
    }

    async fn read_only(&mut self) {
        if self.creds.read_only_key.is_none() {
            self.record(
                "read-only-key",
                Outcome::not_observable(
                    "give --credentials a read-only key (readOnlyKey.id, readOnlyKey.secret)",
                ),
                vec![],
            );
            return;
        }
        let body = json!({
            "credentialId": "audit-probe",
            "user": {"email": "audit@example.com"},
            "credentialSubject": {}
        });
        let r = self
            .signed(
                Key::ReadOnly,
                Method::POST,
                "/v1/credentials",
                body.to_string().into_bytes(),
                Signing::At(0),
                "read-only key",
            )
            .await;
        let (outcome, ev) = expect_refusal(r, 403, "forbidden");
        self.record("read-only-key", outcome, ev);
    }

    async fn callback(
        &mut self,
        label: &str,
        secret: Option<&[u8]>,
        offset: i64,
        id: &str,
        body: &Value,
    ) -> Result<Exchange, NoAnswer> {
        let body = body.to_string();
        let mut request = self
            .client
            .post(self.url("/v1/callbacks/cak"))
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            let ts = now_secs() + offset;
            let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
                return Err(NoAnswer {
                    what: label.to_owned(),
                    error: "HMAC refused the key".into(),
                });
            };
            mac.update(format!("{id}.{ts}.{body}").as_bytes());
            let signature = STANDARD.encode(mac.finalize().into_bytes());
            request = request
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", format!("v1,{signature}"));
        }
        self.send(
            format!("POST /v1/callbacks/cak ({label})"),
            Source::Function,
            request.body(body),
        )
        .await
    }

    async fn callbacks(&mut self) {
        let ids = ["callback-signature", "callback-stale", "callback-once"];
        let secret = self.creds.webhook_secret.as_ref().and_then(|s| {
            let text = s.expose_secret();
            STANDARD
                .decode(
                    text.strip_prefix("whsec_")
                        .unwrap_or(text)
                        .trim_end_matches('='),
                )
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD.decode(
                        text.strip_prefix("whsec_")
                            .unwrap_or(text)
                            .trim_end_matches('='),
                    )
                })
                .ok()
        });
        let event = |n: &str| {
            json!({
                "userId": format!("audit-probe-{n}"),
                "verifierDid": "did:example:audit-probe",
                "schemaId": "audit-probe",
                "eventId": fresh_id(),
            })
        };
        // Forged and unsigned: need no secret.
        let forged_secret = [7u8; 32];
        let forged = self
            .callback(
                "signed with another secret",
                Some(&forged_secret),
                0,
                &format!("msg_{}", fresh_id()),
                &event("forged"),
            )
            .await;
        let unsigned = self
            .callback("unsigned", None, 0, "", &event("unsigned"))
            .await;
        let (o1, mut ev) = expect_refusal(forged, 401, "signature_mismatch");
        let (o2, ev2) = expect_refusal(unsigned, 401, "unauthorized");
        ev.extend(ev2);
        if let Some(forbidden) = self
            .exchanges
            .iter()
            .rev()
            .take(2)
            .find(|e| e.error_type().as_deref() == Some("forbidden"))
        {
            let line = forbidden.evidence();
            for id in ids {
                self.record(id, Outcome::not_observable("the callback route admits only CALLBACK_ALLOWED_CIDRS: run the audit from an allowed address, or review the receiver's tests"), vec![line.clone()]);
            }
            return;
        }
        let outcome = match (o1, o2) {
            (Outcome::Pass, Outcome::Pass) => Outcome::Pass,
            (Outcome::Fail { why }, _) | (_, Outcome::Fail { why }) => Outcome::Fail { why },
            (o, _) => o,
        };
        self.record("callback-signature", outcome, ev);
        let Some(secret) = secret else {
            for id in ["callback-stale", "callback-once"] {
                self.record(
                    id,
                    Outcome::not_observable(
                        "give --credentials the webhook secret (webhookSecret: whsec_…)",
                    ),
                    vec![],
                );
            }
            return;
        };
        let stale = self
            .callback(
                "signed correctly, timestamped 10 minutes ago",
                Some(&secret),
                -600,
                &format!("msg_{}", fresh_id()),
                &event("stale"),
            )
            .await;
        let (outcome, ev) = expect_refusal(stale, 401, "timestamp_out_of_window");
        self.record("callback-stale", outcome, ev);
        let id = format!("msg_{}", fresh_id());
        let body = event(&fresh_id());
        let first = self
            .callback("signed correctly", Some(&secret), 0, &id, &body)
            .await;
        let again = self
            .callback("the same delivery again", Some(&secret), 0, &id, &body)
            .await;
        let (outcome, ev) = match (first, again) {
            (Ok(a), Ok(b)) => {
                let status = |e: &Exchange| {
                    e.json()
                        .and_then(|v| v["status"].as_str().map(ToOwned::to_owned))
                };
                let ev = vec![a.evidence(), b.evidence()];
                let outcome = if !(200..300).contains(&a.status) {
                    Outcome::fail(format!("a valid callback answered {}", a.status))
                } else if !(200..300).contains(&b.status) {
                    Outcome::fail(format!("its duplicate answered {}", b.status))
                } else if status(&b).as_deref() != Some("duplicate") {
                    Outcome::fail("the duplicate was not recognised as one (routed again)")
                } else {
                    Outcome::Pass
                };
                (outcome, ev)
            }
            (Err(e), _) | (_, Err(e)) => (
                Outcome::fail(format!("no answer: {}", e.error)),
                vec![format!("{} → {}", e.what, e.error)],
            ),
        };
        self.record("callback-once", outcome, ev);
    }

    async fn cors(&mut self) {
        let preflight = self
            .send(
                format!("OPTIONS /v1/credentials (preflight from {FOREIGN_ORIGIN})"),
                Source::Gateway,
                self.client
                    .request(Method::OPTIONS, self.url("/v1/credentials"))
                    .header("origin", FOREIGN_ORIGIN)
                    .header("access-control-request-method", "POST")
                    .header(
                        "access-control-request-headers",
                        "content-type,x-access-key,x-signature",
                    ),
            )
            .await;
        let simple = self
            .send(
                format!("GET /.well-known/jwks.json (Origin {FOREIGN_ORIGIN})"),
                Source::Function,
                self.client
                    .get(self.url("/.well-known/jwks.json"))
                    .header("origin", FOREIGN_ORIGIN),
            )
            .await;
        let mut ev = Vec::new();
        let mut allowed = Vec::new();
        for r in [preflight, simple] {
            match r {
                Ok(e) => {
                    let acao = e
                        .header("access-control-allow-origin")
                        .map(ToOwned::to_owned);
                    ev.push(format!(
                        "{}; Access-Control-Allow-Origin: {}",
                        e.evidence(),
                        acao.as_deref().unwrap_or("(none)")
                    ));
                    if let Some(a) = acao.filter(|a| a == "*" || a == FOREIGN_ORIGIN) {
                        allowed.push(format!("{} allowed {a}", e.what));
                    }
                }
                Err(e) => ev.push(format!("{} → {}", e.what, e.error)),
            }
        }
        let outcome = if allowed.is_empty() {
            Outcome::Pass
        } else {
            Outcome::fail(allowed.join("; "))
        };
        self.record("cors", outcome, ev);
    }

    async fn bodies(&mut self) {
        if self.creds.api_key.is_none() {
            for id in ["oversized-body", "malformed-body"] {
                self.record(
                    id,
                    Outcome::not_observable("give --credentials an API key"),
                    vec![],
                );
            }
            return;
        }
        let big = format!("{{\"credentialId\":\"{}\"}}", "x".repeat(OVERSIZED));
        let r = self
            .signed(
                Key::Write,
                Method::POST,
                "/v1/credentials",
                big.into_bytes(),
                Signing::At(0),
                "6.5 MiB body",
            )
            .await;
        let (outcome, ev) = match r {
            Ok(e) if e.status >= 500 => (
                Outcome::fail(format!("answered {}", e.status)),
                vec![e.evidence()],
            ),
            Ok(e) if e.status == 413 || (400..500).contains(&e.status) => {
                (Outcome::Pass, vec![e.evidence()])
            }
            Ok(e) => (
                Outcome::fail(format!("accepted with {}", e.status)),
                vec![e.evidence()],
            ),
            // A server may close the connection on a body it will not read: refused, and no 5xx.
            Err(e) => (
                Outcome::Pass,
                vec![format!("{} → connection closed: {}", e.what, e.error)],
            ),
        };
        self.record("oversized-body", outcome, ev);
        let truncated = format!(
            "{{\"credentialId\": \"{MARKER}\", \"user\": {{\"email\": \"{MARKER}@example.com\""
        );
        let mistyped = json!({
            "credentialId": 42,
            "user": {"email": format!("{MARKER}@example.com")},
            "credentialSubject": MARKER,
        })
        .to_string();
        let mut ev = Vec::new();
        let mut wrong = Vec::new();
        for (label, body) in [
            ("truncated JSON", truncated),
            ("JSON of the wrong types", mistyped),
        ] {
            match self
                .signed(
                    Key::Write,
                    Method::POST,
                    "/v1/credentials",
                    body.into_bytes(),
                    Signing::At(0),
                    label,
                )
                .await
            {
                Ok(e) => {
                    ev.push(e.evidence());
                    if e.status >= 500 {
                        wrong.push(format!("{label}: answered {}", e.status));
                    } else if e.status < 400 {
                        wrong.push(format!("{label}: accepted with {}", e.status));
                    }
                    if e.body.contains(MARKER) {
                        wrong.push(format!("{label}: the answer echoes a value it was sent"));
                    }
                }
                Err(e) => wrong.push(format!("{label}: no answer: {}", e.error)),
            }
        }
        let outcome = if wrong.is_empty() {
            Outcome::Pass
        } else {
            Outcome::fail(wrong.join("; "))
        };
        self.record("malformed-body", outcome, ev);
    }

    async fn https_only(&mut self) {
        let Ok(mut url) = reqwest::Url::parse(&self.url("/.well-known/jwks.json")) else {
            self.record(
                "https-only",
                Outcome::fail("the API address is not a URL"),
                vec![],
            );
            return;
        };
        let port = url.port();
        if url.set_scheme("http").is_err() {
            self.record(
                "https-only",
                Outcome::fail("the API address is not a URL"),
                vec![],
            );
            return;
        }
        // An explicit port stays (the same port spoken to in plain text); otherwise port 80.
        let _ = url.set_port(port);
        let what = format!("GET {url} (plain HTTP)");
        let (outcome, ev) = match self.plain.get(url.as_str()).send().await {
            Err(e) => (
                Outcome::Pass,
                vec![format!("{what} → no answer ({})", shared::error::chain(&e))],
            ),
            Ok(r) => {
                let status = r.status();
                let location = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let line = format!(
                    "{what} → {status}{}",
                    if location.is_empty() {
                        String::new()
                    } else {
                        format!(" Location: {location}")
                    }
                );
                if status.is_success() || status == StatusCode::NOT_MODIFIED {
                    (Outcome::fail("the API answers over plain HTTP"), vec![line])
                } else if status.is_redirection() && !location.starts_with("https://") {
                    (
                        Outcome::fail("plain HTTP is redirected to another plain address"),
                        vec![line],
                    )
                } else {
                    (Outcome::Pass, vec![line])
                }
            }
        };
        self.record("https-only", outcome, ev);
    }

    fn security_headers(&mut self) {
        let mut missing = BTreeMap::<String, Vec<&'static str>>::new();
        let mut checked = 0;
        for e in self
            .exchanges
            .iter()
            .filter(|e| e.source == Source::Function)
        {
            checked += 1;
            let mut lacks = Vec::new();
            if !e
                .header("x-content-type-options")
                .is_some_and(|v| v.eq_ignore_ascii_case("nosniff"))
            {
                lacks.push("X-Content-Type-Options: nosniff");
            }
            if !e
                .header("strict-transport-security")
                .is_some_and(|v| v.contains("max-age="))
            {
                lacks.push("Strict-Transport-Security");
            }
            if e.header("content-security-policy").is_none() {
                lacks.push("Content-Security-Policy");
            }
            if e.header("cache-control").is_none() {
                lacks.push("Cache-Control");
            }
            if !lacks.is_empty() {
                missing.insert(format!("{} ({})", e.what, e.status), lacks);
            }
        }
        let mut ev = vec![format!(
            "{checked} answers of the bundle's routes checked (the CORS preflight and identity-provider answers are API Gateway's or the provider's own)"
        )];
        ev.extend(
            missing
                .iter()
                .map(|(w, l)| format!("{w} lacks {}", l.join(", "))),
        );
        let outcome = if missing.is_empty() {
            Outcome::Pass
        } else {
            Outcome::fail(format!(
                "{} of {checked} answers lack security headers",
                missing.len()
            ))
        };
        self.record("security-headers", outcome, ev);
    }

    fn error_shape(&mut self) {
        let mut wrong = Vec::new();
        let mut checked = 0;
        for e in self
            .exchanges
            .iter()
            .filter(|e| e.source == Source::Function && e.status >= 400)
        {
            checked += 1;
            let ok = e.json().is_some_and(|v| {
                v.get("errorType").is_some_and(Value::is_string)
                    && v.get("errorMessage").is_some_and(Value::is_string)
            });
            if !ok {
                wrong.push(e.evidence());
            }
        }
        let mut ev = vec![format!("{checked} error answers checked")];
        let outcome = if wrong.is_empty() {
            Outcome::Pass
        } else {
            Outcome::fail(format!(
                "{} error answers are not {{errorType, errorMessage}}",
                wrong.len()
            ))
        };
        ev.extend(wrong);
        self.record("error-shape", outcome, ev);
    }
}

/// Which API key signs.
#[derive(Debug, Clone, Copy)]
enum Key {
    Write,
    ReadOnly,
}

/// The refusal a probe expects: `status` with the documented `error_type`.
fn expect_refusal(
    r: Result<Exchange, NoAnswer>,
    status: u16,
    error_type: &str,
) -> (Outcome, Vec<String>) {
    match r {
        Ok(e) => {
            let ev = vec![e.evidence()];
            let got = e.error_type();
            if e.status == status && got.as_deref() == Some(error_type) {
                (Outcome::Pass, ev)
            } else if e.status < 400 {
                (Outcome::fail(format!("accepted with {}", e.status)), ev)
            } else {
                (
                    Outcome::fail(format!(
                        "refused with {} {}, not the documented {status} {error_type}",
                        e.status,
                        got.unwrap_or_else(|| "(no errorType)".into())
                    )),
                    ev,
                )
            }
        }
        Err(e) => (
            Outcome::fail(format!("no answer: {}", e.error)),
            vec![format!("{} → {}", e.what, e.error)],
        ),
    }
}

/// A mint of the `issue` scope without MFA must be refused: `403 mfa_required`, or `403
/// forbidden` where the caller may not mint the scope at all.
fn refused_mfa(e: &Exchange) -> Result<(), String> {
    match (e.status, e.error_type().as_deref()) {
        (403, Some("mfa_required" | "forbidden")) => Ok(()),
        (s, _) if s < 400 => Err(format!("an issue token was minted without MFA ({s})")),
        (s, t) => Err(format!(
            "refused with {s} {}, not 403 mfa_required",
            t.unwrap_or("?")
        )),
    }
}

fn token_of(e: Exchange) -> Result<(Exchange, String), String> {
    let token = e
        .json()
        .and_then(|v| v["token"].as_str().map(ToOwned::to_owned));
    match token {
        Some(t) if e.status == 200 => Ok((e, t)),
        _ => Err(e.evidence()),
    }
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The RFC 7638 thumbprint of a public JWK (EC, RSA, OKP). Computed here rather than with
/// `shared::keys::jwk::thumbprint`: the audit checks the bundle from outside, so it does not share
/// the code it checks.
fn thumbprint(k: &Value) -> Option<String> {
    let s = |m: &str| k.get(m).and_then(Value::as_str);
    let canonical = match s("kty")? {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv")?, s("x")?),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbprint_is_computed_as_rfc_7638_says() {
        // The example key of RFC 7638 §3.1 and its thumbprint.
        let key = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&key).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn a_token_in_an_answer_never_reaches_the_evidence() {
        let e = Exchange {
            what: "POST /v1/server/partner-tokens".into(),
            source: Source::Function,
            status: 200,
            headers: HeaderMap::new(),
            body: json!({"token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "kid": "k"}).to_string(),
        };
        let line = e.evidence();
        assert!(!line.contains("eyJ"), "{line}");
        assert!(
            line.contains("<redacted>") && line.contains("\"kid\":\"k\""),
            "{line}"
        );
    }

    #[test]
    fn max_age_is_read_from_a_cache_control_header() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("no-store"), None);
    }
}
