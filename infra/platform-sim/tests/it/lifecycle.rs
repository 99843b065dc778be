#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Starting, stopping and configuring the simulator; the standalone binary.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, local};
use platform_sim::{ProgramConfig, SimConfig, SimError};
use serde_json::{Value, json};

#[tokio::test]
async fn port_zero_gives_each_simulator_its_own_port() {
    let a = platform_sim::spawn(SimConfig::default(), local())
        .await
        .unwrap();
    let b = platform_sim::spawn(SimConfig::default(), local())
        .await
        .unwrap();
    assert_ne!(a.local_addr().port(), 0);
    assert_ne!(a.local_addr(), b.local_addr());
    assert_eq!(a.base_url(), format!("https://{}", a.local_addr()));
    assert!(a.local_addr().ip().is_loopback());
    // Each has a CA of its own unless it is given one.
    assert_ne!(a.ca_pem(), b.ca_pem());
}

#[tokio::test]
async fn the_simulator_serves_https_only_with_a_leaf_of_the_ca_it_is_given() {
    let ca = test_support::local_ca();
    let sim = platform_sim::spawn(
        SimConfig {
            tls: Some(std::sync::Arc::clone(&ca)),
            ..SimConfig::default()
        },
        local(),
    )
    .await
    .unwrap();
    assert_eq!(sim.ca_pem(), ca.cert_pem());
    let url = format!("{}/sim/health", sim.base_url());
    assert_eq!(
        test_support::https_client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Another CA's client, and plain HTTP, get nothing.
    let other = local_tls::LocalCa::ephemeral().unwrap().client().unwrap();
    assert!(other.get(&url).send().await.unwrap_err().is_connect());
    let plain = reqwest::Client::new()
        .get(url.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn plain_http_jwks_and_callback_urls_are_refused_at_start() {
    let http_jwks =
        SimConfig::default().with_jwks_url("http://127.0.0.1:3000/.well-known/jwks.json");
    let err = platform_sim::spawn(http_jwks, local()).await.unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
    let http_callback = SimConfig::default().with_callback_url("http://127.0.0.1:3000/cb");
    let err = platform_sim::spawn(http_callback, local())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("callback_url"), "{err}");
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let sim = platform_sim::spawn(SimConfig::default(), local())
        .await
        .unwrap();
    let url = format!("{}/sim/health", sim.base_url());
    let http = sim.client().unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let fresh = sim.client().unwrap();
    sim.shutdown().await;
    assert!(fresh.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_simulator() {
    let sim = platform_sim::spawn(SimConfig::default(), local())
        .await
        .unwrap();
    let url = format!("{}/sim/health", sim.base_url());
    let http = sim.client().unwrap();
    drop(sim);
    common::eventually(async || http.get(&url).send().await.is_err()).await;
}

#[tokio::test]
async fn invalid_configurations_are_refused_at_start() {
    let bad_secret = SimConfig::default().with_webhook_secret("whsec_!!!not-base64");
    assert!(matches!(
        platform_sim::spawn(bad_secret, local()).await,
        Err(SimError::Config(_))
    ));
    let twice = SimConfig::default().with_programs(vec![
        ProgramConfig::without_cak("p"),
        ProgramConfig::without_cak("p"),
    ]);
    assert!(matches!(
        platform_sim::spawn(twice, local()).await,
        Err(SimError::Config(_))
    ));
    let bad_url = SimConfig::default().with_jwks_url("not a url");
    let err = platform_sim::spawn(bad_url, local()).await.unwrap_err();
    assert!(err.to_string().contains("jwks_url"));
}

#[tokio::test]
async fn the_clock_can_be_advanced_over_http() {
    let env = Env::start().await;
    let before = env.get_json("/sim/clock").await["now"].as_i64().unwrap();
    let (status, after) = env
        .post_json("/sim/clock/advance", json!({"seconds": 120}))
        .await;
    assert_eq!(status, 200);
    assert!(after["now"].as_i64().unwrap() >= before + 120);
    assert!(after["offsetMs"].as_u64().unwrap() >= 120_000);
}

#[tokio::test]
async fn program_flags_parse() {
    assert_eq!(
        ProgramConfig::parse("a").unwrap(),
        ProgramConfig::without_cak("a")
    );
    assert_eq!(
        ProgramConfig::parse("b:cak:secp256k1").unwrap(),
        ProgramConfig::with_cak("b", platform_sim::Curve::Secp256k1)
    );
    assert!(ProgramConfig::parse("c:maybe").is_err());
    assert!(ProgramConfig::parse(":cak").is_err());
}

#[test]
fn the_binary_prints_a_ready_line_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_platform-sim"))
        .arg("--ca-dir")
        .arg(dir.path())
        .args([
            "--port",
            "0",
            "--program",
            "demo:cak:secp256k1",
            "--webhook-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "ready");
    let url = ready["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"));
    let ca = dir.path().join("ca.pem");
    assert_eq!(ready["ca"], ca.display().to_string());
    let pem = std::fs::read(&ca).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let health = runtime.block_on(async {
        local_tls::client_builder(&pem)
            .unwrap()
            .build()
            .unwrap()
            .get(format!("{url}/sim/health"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    assert_eq!(health["status"], "ok");

    let pid = child.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let mut status = None;
    for _ in 0..1000 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("platform-sim did not stop on SIGINT");
    };
    assert!(status.success(), "{status:?}");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("stopped"));
}
