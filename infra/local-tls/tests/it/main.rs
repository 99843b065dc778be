//! The local CA and its HTTPS servers as a client sees them: what is trusted, what is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use local_tls::{LeafSpec, LocalCa, Server, server_config};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app() -> Router {
    Router::new().route(
        "/",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            format!("hello {}", peer.ip())
        }),
    )
}

fn serve_with(config: std::sync::Arc<rustls::ServerConfig>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    local_tls::serve(listener, config, app()).unwrap()
}

fn serve(ca: &LocalCa) -> Server {
    serve_with(ca.server_config().unwrap())
}

fn leaf_for(ca: &LocalCa, hosts: &[&str]) -> Server {
    let spec = LeafSpec {
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..LeafSpec::loopback()
    };
    serve_with(server_config(ca.leaf(&spec).unwrap()).unwrap())
}

/// The error chain of a failed request, for assertions on its cause.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The error of a request to `server` by a client trusting `ca`, which must fail.
async fn refused(ca: &LocalCa, server: &Server) -> reqwest::Error {
    ca.client()
        .unwrap()
        .get(server.base_url())
        .send()
        .await
        .expect_err("the request must be refused")
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_gets_answers_over_https_with_the_peer_address() {
    let ca = LocalCa::ephemeral().unwrap();
    let server = serve(&ca);
    let answer = ca
        .client()
        .unwrap()
        .get(server.base_url())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello 127.0.0.1");
    // The leaf names localhost too.
    let url = format!("https://localhost:{}/", server.local_addr().port());
    let answer = ca.client().unwrap().get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let ours = LocalCa::ephemeral().unwrap();
    let theirs = LocalCa::ephemeral().unwrap();
    let server = serve(&theirs);
    let err = refused(&ours, &server).await;
    assert!(err.is_connect(), "{}", chain(&err));
    assert!(chain(&err).contains("certificate"), "{}", chain(&err));
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let ca = LocalCa::ephemeral().unwrap();
    let now = OffsetDateTime::now_utc();
    let spec = LeafSpec {
        not_before: now - Duration::from_secs(7200),
        not_after: now - Duration::from_secs(3600),
        ..LeafSpec::loopback()
    };
    let server = serve_with(server_config(ca.leaf(&spec).unwrap()).unwrap());
    let err = refused(&ca, &server).await;
    assert!(
        chain(&err).to_lowercase().contains("expired"),
        "{}",
        chain(&err)
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let ca = LocalCa::ephemeral().unwrap();
    // Valid, from our CA, but for `localhost` only: the client asks for 127.0.0.1.
    let server = leaf_for(&ca, &["localhost"]);
    let err = refused(&ca, &server).await;
    assert!(chain(&err).contains("certificate"), "{}", chain(&err));
    let url = format!("https://localhost:{}/", server.local_addr().port());
    assert_eq!(
        ca.client().unwrap().get(url).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn the_local_ca_cannot_vouch_for_a_name_outside_loopback_even_with_its_key() {
    let ca = LocalCa::ephemeral().unwrap();
    // A leaf for a public name, signed with the CA's own key, served where the client is told
    // that name lives: the CA's name constraints make it worthless.
    let server = leaf_for(&ca, &["platform.example.com"]);
    let client = local_tls::client_builder(ca.cert_pem().as_bytes())
        .unwrap()
        .resolve("platform.example.com", server.local_addr())
        .build()
        .unwrap();
    let url = format!(
        "https://platform.example.com:{}/",
        server.local_addr().port()
    );
    let err = client.get(url).send().await.unwrap_err();
    assert!(
        chain(&err).contains("NameConstraintViolation"),
        "{}",
        chain(&err)
    );
}

#[tokio::test]
async fn plain_http_is_refused_by_the_server_and_by_the_client() {
    let ca = LocalCa::ephemeral().unwrap();
    let server = serve(&ca);
    // The server: a plain HTTP request gets no HTTP answer, only a closed connection.
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1."),
        "{answer:?}"
    );
    // The client: an http:// URL is refused before anything is sent.
    let url = format!("http://{}/", server.local_addr());
    let err = ca.client().unwrap().get(url).send().await.unwrap_err();
    assert!(err.is_builder(), "{}", chain(&err));
}

/// A TLS 1.1 ClientHello (RFC 4346 §7.4.1.2), written out by hand: no TLS library here offers
/// anything below 1.2.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version: TLS 1.1
    hello.extend([0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites of that era
    hello.extend([0x01, 0x00]); // compression: null
    let len = u32::try_from(hello.len()).unwrap().to_be_bytes();
    let mut handshake = vec![0x01, len[1], len[2], len[3]]; // client_hello
    handshake.extend(hello);
    let len = u16::try_from(handshake.len()).unwrap().to_be_bytes();
    let mut record = vec![0x16, 0x03, 0x02, len[0], len[1]];
    record.extend(handshake);
    record
}

#[tokio::test]
async fn a_client_that_offers_only_tls_1_1_gets_an_alert_and_no_server_hello() {
    let ca = LocalCa::ephemeral().unwrap();
    let server = serve(&ca);
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(!answer.is_empty(), "the server closed without an alert");
    assert_eq!(
        answer[0], 0x15,
        "an alert record, not a handshake: {answer:?}"
    );
    // A fatal alert: handshake_failure (40) or protocol_version (70). rustls has no TLS 1.1 at
    // all; the test holds that no configuration of ours brings an older version back.
    assert_eq!(answer.get(5), Some(&2), "{answer:?}");
    assert!(matches!(answer.get(6), Some(40 | 70)), "{answer:?}");
}

#[tokio::test]
async fn a_client_limited_to_tls_1_2_is_served() {
    let ca = LocalCa::ephemeral().unwrap();
    let server = serve(&ca);
    let client = local_tls::client_builder(ca.cert_pem().as_bytes())
        .unwrap()
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let answer = client.get(server.base_url()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn the_ca_is_made_once_in_its_directory_and_its_key_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let first = LocalCa::ensure(&tls).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tls.join(local_tls::CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&tls), 0o700);
    assert_eq!(first.cert_path(), Some(tls.join(local_tls::CA_CERT_FILE)));
    let pem = std::fs::read_to_string(tls.join(local_tls::CA_CERT_FILE)).unwrap();
    assert_eq!(pem, first.cert_pem());
    assert!(!pem.contains("PRIVATE KEY"));

    // A restart loads the same CA, and what it signs chains to the ca.pem clients already trust.
    let second = LocalCa::ensure(&tls).unwrap();
    assert_eq!(second.cert_pem(), first.cert_pem());
    let server = serve(&second);
    let client = local_tls::client_builder(pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        client.get(server.base_url()).send().await.unwrap().status(),
        200
    );
}

#[test]
fn a_ca_directory_with_only_one_of_its_two_files_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    LocalCa::ensure(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join(local_tls::CA_KEY_FILE)).unwrap();
    let err = LocalCa::ensure(dir.path()).unwrap_err();
    assert!(matches!(err, local_tls::TlsError::HalfCa(_)), "{err}");
}

#[test]
fn a_debug_print_of_the_ca_or_a_leaf_shows_no_key() {
    let ca = LocalCa::ephemeral().unwrap();
    let leaf = ca.leaf(&LeafSpec::loopback()).unwrap();
    for text in [format!("{ca:?}"), format!("{leaf:?}")] {
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("PRIVATE"), "{text}");
    }
}
