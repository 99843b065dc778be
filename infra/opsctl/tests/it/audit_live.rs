//! `opsctl audit` against a running devstack: the correct stack passes every observable item, and
//! a stack misconfigured one way at a time fails the matching item and only that one.
//!
//! The misconfigurations exist only here: a proxy in front of a correct devstack changes what an
//! outsider sees the way a misconfigured deployment would (headers stripped, a private member in
//! the JWKS, tokens re-signed with a longer lifetime, callbacks re-signed so that any signature
//! passes). A transparent proxy passes everything, so the proxy itself changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use opsctl::audit::report::{Method, Outcome, Report};
use opsctl::audit::{self, AuditArgs, Format};
use opsctl::cli::GlobalArgs;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;
use shared::clock::{Clock, SharedClock, SystemClock};
use shared::secrets::{SecretName, SecretSource};

/// A devstack of its own, in a private data directory.
struct Stack {
    running: devstack::Running,
    dir: tempfile::TempDir,
}

async fn devstack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let opts = devstack::Options {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        aws: false,
        table_name: "unused".into(),
        partner_id: "partner-audit".into(),
        schedule_interval: std::time::Duration::from_secs(3600),
    };
    let running = devstack::start(&opts).await.unwrap();
    Stack { running, dir }
}

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

fn args(stack: &Stack, api: String, ca: PathBuf) -> (AuditArgs, GlobalArgs) {
    (
        AuditArgs {
            api,
            template: Some(template()),
            credentials: Some(stack.running.credentials.clone()),
            ca: Some(ca),
            state: true,
            format: Format::Text,
            out: None,
        },
        GlobalArgs {
            data_dir: stack.dir.path().to_path_buf(),
            aws: false,
        },
    )
}

async fn audit_direct(stack: &Stack) -> Report {
    let (args, global) = args(stack, stack.running.api_url(), stack.running.ca.clone());
    audit::audit(&args, &global, Arc::new(SystemClock))
        .await
        .unwrap()
}

fn failed(report: &Report) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|f| f.outcome.failed())
        .map(|f| f.item.id)
        .collect()
}

fn printed(report: &Report) -> String {
    audit::render::text(report)
}

#[tokio::test]
async fn a_correct_devstack_passes_every_observable_item() {
    let stack = devstack().await;
    let report = audit_direct(&stack).await;
    assert!(failed(&report).is_empty(), "{}", printed(&report));
    // With credentials, the template and the state, every item but the reviewer's is observed.
    for f in &report.findings {
        if f.item.method == Method::Review {
            assert!(matches!(f.outcome, Outcome::NotObservable { .. }));
        } else {
            assert_eq!(
                f.outcome,
                Outcome::Pass,
                "{}\n{}",
                f.item.id,
                printed(&report)
            );
            assert!(!f.evidence.is_empty(), "{} has no evidence", f.item.id);
        }
    }
    // The evidence never carries a secret the audit was given.
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(&stack.running.credentials).unwrap())
            .unwrap();
    let text = audit::render::json(&report);
    for secret in [
        creds["apiKey"]["secret"].as_str().unwrap(),
        creds["readOnlyKey"]["secret"].as_str().unwrap(),
        creds["webhookSecret"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret reached the report");
    }
    assert!(!text.contains("eyJ"), "a token reached the report");
}

#[tokio::test]
async fn without_credentials_the_probes_that_need_them_are_not_observable_rather_than_passed() {
    let stack = devstack().await;
    let (mut args, global) = args(&stack, stack.running.api_url(), stack.running.ca.clone());
    args.credentials = None;
    args.template = None;
    args.state = false;
    let report = audit::audit(&args, &global, Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(failed(&report).is_empty(), "{}", printed(&report));
    for id in [
        "hmac-replay",
        "read-only-key",
        "callback-once",
        "least-privilege",
        "api-key-age",
    ] {
        let f = report.finding(id).unwrap();
        assert!(
            matches!(f.outcome, Outcome::NotObservable { .. }),
            "{id}: {:?}",
            f.outcome
        );
    }
    // What needs no credentials is still checked.
    for id in [
        "jwks-public-only",
        "callback-signature",
        "https-only",
        "cors",
    ] {
        assert_eq!(report.finding(id).unwrap().outcome, Outcome::Pass, "{id}");
    }
}

// The misconfiguring proxy.

/// How the proxy changes what passes through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misconfiguration {
    None,
    NoSecurityHeaders,
    PrivateMemberInJwks,
    LongLivedTokens,
    CallbackSignaturesUnchecked,
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    kind: Misconfiguration,
    data_dir: PathBuf,
    webhook_secret: Vec<u8>,
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers.clone();
    headers.remove("host");
    if proxy.kind == Misconfiguration::CallbackSignaturesUnchecked
        && parts.uri.path() == "/v1/callbacks/cak"
    {
        resign_callback(&mut headers, &body, &proxy.webhook_secret);
    }
    let upstream = proxy
        .client
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    let mut body = upstream.bytes().await.unwrap().to_vec();
    match proxy.kind {
        Misconfiguration::NoSecurityHeaders => {
            for h in [
                "x-content-type-options",
                "strict-transport-security",
                "content-security-policy",
                "referrer-policy",
            ] {
                headers.remove(h);
            }
        }
        Misconfiguration::PrivateMemberInJwks
            if parts.uri.path() == "/.well-known/jwks.json" && status == 200 =>
        {
            let mut doc: Value = serde_json::from_slice(&body).unwrap();
            doc["keys"][0]["d"] = Value::String(URL_SAFE_NO_PAD.encode([9u8; 32]));
            body = serde_json::to_vec(&doc).unwrap();
        }
        Misconfiguration::LongLivedTokens
            if parts.uri.path().ends_with("/partner-tokens") && status == 200 =>
        {
            let mut doc: Value = serde_json::from_slice(&body).unwrap();
            let token = doc["token"].as_str().unwrap().to_owned();
            doc["token"] = Value::String(resign_token(&token, &proxy.data_dir).await);
            body = serde_json::to_vec(&doc).unwrap();
        }
        _ => {}
    }
    headers.remove("content-length");
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// Signs any callback as the platform would, keeping its id and timestamp (or making them up):
/// a receiver whose signature check is off.
fn resign_callback(headers: &mut HeaderMap, body: &[u8], secret: &[u8]) {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || format!("msg_{}", uuid::Uuid::new_v4()),
            ToOwned::to_owned,
        );
    let ts = headers
        .get("webhook-timestamp")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || SystemClock.now().as_secs().to_string(),
            ToOwned::to_owned,
        );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    headers.insert("webhook-id", HeaderValue::from_str(&id).unwrap());
    headers.insert("webhook-timestamp", HeaderValue::from_str(&ts).unwrap());
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(&signature).unwrap(),
    );
}

/// The same token, signed with the same key, living 900 s: a mint whose lifetime cap is off.
async fn resign_token(token: &str, data_dir: &Path) -> String {
    let secrets =
        shared::secrets::file::FileSecrets::open(data_dir, Arc::new(SystemClock)).unwrap();
    let name = SecretName::new(shared::keys::config::DEFAULT_KEY_SET_SECRET).unwrap();
    let text = secrets.current(&name).await.unwrap();
    let set = shared::keys::KeySet::parse(text.value.expose_secret()).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = shared::keys::Kid::parse(header.kid.as_deref().unwrap()).unwrap();
    let der = set.get(&kid).unwrap().private_jwk.to_pkcs8_der().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"] = Value::from(claims["iat"].as_i64().unwrap() + 900);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A proxy (HTTPS, the test process's CA) in front of `stack`.
fn proxy(stack: &Stack, kind: Misconfiguration) -> local_tls::Server {
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(&stack.running.credentials).unwrap())
            .unwrap();
    let secret = creds["webhookSecret"].as_str().unwrap();
    let proxy = Proxy {
        upstream: stack.running.api_url(),
        client: stack.running.client().unwrap(),
        kind,
        data_dir: stack.dir.path().to_path_buf(),
        webhook_secret: STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap(),
    };
    test_support::serve_https(
        axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(proxy)),
    )
}

/// A CA bundle trusting the proxy (the test process's CA) and the devstack (its own local CA),
/// whose login URL the credentials name.
fn both_cas(stack: &Stack) -> PathBuf {
    let path = stack.dir.path().join("both-cas.pem");
    let mut pem = test_support::local_ca().cert_pem().to_owned();
    pem.push_str(stack.running.ca_pem());
    std::fs::write(&path, pem).unwrap();
    path
}

async fn audit_through(stack: &Stack, kind: Misconfiguration) -> Report {
    let server = proxy(stack, kind);
    let (args, global) = args(stack, server.base_url(), both_cas(stack));
    let clock: SharedClock = Arc::new(SystemClock);
    audit::audit(&args, &global, clock).await.unwrap()
}

async fn only_this_fails(kind: Misconfiguration, item: &str) {
    let stack = devstack().await;
    let report = audit_through(&stack, kind).await;
    assert_eq!(failed(&report), vec![item], "{}", printed(&report));
}

#[tokio::test]
async fn a_transparent_proxy_in_front_of_the_devstack_changes_nothing() {
    let stack = devstack().await;
    let report = audit_through(&stack, Misconfiguration::None).await;
    assert!(failed(&report).is_empty(), "{}", printed(&report));
}

#[tokio::test]
async fn a_stack_without_its_security_headers_fails_that_item_only() {
    only_this_fails(Misconfiguration::NoSecurityHeaders, "security-headers").await;
}

#[tokio::test]
async fn a_jwks_with_a_private_member_fails_that_item_only() {
    only_this_fails(Misconfiguration::PrivateMemberInJwks, "jwks-public-only").await;
}

#[tokio::test]
async fn tokens_living_longer_than_300_seconds_fail_that_item_only() {
    only_this_fails(Misconfiguration::LongLivedTokens, "token-lifetime").await;
}

#[tokio::test]
async fn a_receiver_that_does_not_check_callback_signatures_fails_that_item_only() {
    only_this_fails(
        Misconfiguration::CallbackSignaturesUnchecked,
        "callback-signature",
    )
    .await;
}

// The command itself.

fn chromium() -> PathBuf {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    });
    found
        .expect("no headless Chromium: `make browser` installs Debian's chromium (or set CHROMIUM)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_is_one_page_a_headless_browser_renders_with_every_item() {
    let stack = devstack().await;
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("audit.html");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_opsctl"))
        .arg("audit")
        .args(["--api", &stack.running.api_url()])
        .arg("--ca")
        .arg(&stack.running.ca)
        .arg("--credentials")
        .arg(&stack.running.credentials)
        .arg("--template")
        .arg(template())
        .args(["--format", "html", "--out"])
        .arg(&html)
        .status()
        .unwrap();
    assert!(status.success(), "opsctl audit exited with {status}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    let url = format!("file://{}", html.display());
    let browser = chromium();
    let headless = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    let shot = out.path().join("audit.png");
    let run = std::process::Command::new(&browser)
        .args(headless)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,4000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot"
    );
    let dom = std::process::Command::new(&browser)
        .args(headless)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8(dom.stdout).unwrap();
    for item in audit::checklist::ITEMS {
        assert!(dom.contains(item.paraphrase), "the page lacks {}", item.id);
        assert!(dom.contains(&format!("id=\"{}\"", item.id)));
    }
    assert!(dom.contains("Every observable item passes."));
    assert!(dom.contains("id=\"summary\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_exits_non_zero_when_an_observable_item_fails() {
    let stack = devstack().await;
    let server = proxy(&stack, Misconfiguration::NoSecurityHeaders);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_opsctl"))
        .arg("audit")
        .args(["--api", &server.base_url()])
        .arg("--ca")
        .arg(both_cas(&stack))
        .arg("--credentials")
        .arg(&stack.running.credentials)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["failed"], true);
    let headers = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "security-headers")
        .unwrap();
    assert_eq!(headers["outcome"], "fail");
    assert!(String::from_utf8_lossy(&run.stderr).contains("1 observable item(s) failed"));
}
