//! `platform-sim`: the platform simulator as a standalone server.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use platform_sim::{ProgramConfig, SimConfig};

/// A local stand-in for the credential platform (issue-on-behalf, status, CAK, callbacks, faults).
#[derive(Debug, Parser)]
#[command(name = "platform-sim", version, about)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Where the partner's JWKS is published.
    #[arg(long, default_value = "https://127.0.0.1:3000/.well-known/jwks.json")]
    jwks_url: String,
    /// The local CA's directory (made at first start: `ca.pem`, and `ca-key.pem` readable by its
    /// owner only). The default is the devstack's, so one `ca.pem` reaches both. The simulator
    /// serves HTTPS only with a leaf from this CA, and trusts it for the JWKS and callbacks.
    #[arg(long, default_value = ".devstack/tls")]
    ca_dir: std::path::PathBuf,
    /// Where verifier-authorization callbacks are delivered.
    #[arg(long)]
    callback_url: Option<String>,
    /// The partnerId every Partner JWT must carry.
    #[arg(long, default_value = "partner-local")]
    partner_id: String,
    /// Issuer DID reported in callbacks when no credential names one.
    #[arg(long)]
    issuer_did: Option<String>,
    /// Standard Webhooks secret (`whsec_…`); repeat for several (comma-separated in the env).
    #[arg(
        long = "webhook-secret",
        env = "PLATFORM_SIM_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    webhook_secrets: Vec<String>,
    /// Standard Webhooks ed25519 signing key (`whsk_…`, base64 of the 32-byte seed or of the seed
    /// followed by the public key) for `v1a` signatures; repeat for several (comma-separated in
    /// the env). The ready line lists their `whpk_` public keys for the receiver.
    #[arg(
        long = "webhook-signing-key",
        env = "PLATFORM_SIM_WEBHOOK_SIGNING_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    webhook_signing_keys: Vec<String>,
    /// Which signatures callbacks carry: `v1` (HMAC with the secrets), `v1a` (ed25519 with the
    /// signing keys) or `both` (one header listing both). Default: `v1` without signing keys,
    /// `v1a` with signing keys only, `both` with secrets and signing keys.
    #[arg(long)]
    webhook_signatures: Option<platform_sim::WebhookSignatures>,
    /// Print a signing key pair derived from `--seed` as `{"whsk": …, "whpk": …}` and exit (for
    /// local runs only: anyone who knows the seed can sign).
    #[arg(long)]
    generate_webhook_signing_key: bool,
    /// Seconds a credential stays WAIT_ONCHAIN.
    #[arg(long, default_value_t = 5)]
    onchain_delay_secs: u64,
    /// Seed of identifiers, CAK keys and fault sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Program as ID, ID:cak, ID:nocak or ID:cak:secp256k1; repeat for several (default: three
    /// samples: kyc-basic, kyc-document-r1, kyc-document-k1).
    #[arg(long = "program", value_parser = ProgramConfig::parse)]
    programs: Vec<ProgramConfig>,
    /// Retries after a failed callback attempt.
    #[arg(long, default_value_t = 5)]
    callback_retries: u32,
    /// Backoff before the first callback retry, in milliseconds (doubles each time).
    #[arg(long, default_value_t = 500)]
    callback_base_delay_ms: u64,
    /// Callback bodies: `minimal` (exactly the documented userId, verifierDid, schemaId) or
    /// `rich` (also issuerDid, authorizedAt, eventId).
    #[arg(long, default_value = "minimal")]
    callback_shape: platform_sim::CallbackShape,
    /// The scope the platform routes require: `issue` (default) or, as some of the platform's
    /// documents name it, `issue on-behalf` (every space-separated scope must be granted).
    #[arg(long, default_value = "issue")]
    issue_scope: String,
    /// Status answers: `documented` (exactly the platform's documented members) or `rich` (also
    /// coreClaimHash, issuerDid, credentialId, revoked, revokedAt).
    #[arg(long, default_value = "documented", value_parser = parse_status_shape)]
    status_shape: platform_sim::StatusShape,
}

fn parse_status_shape(text: &str) -> Result<platform_sim::StatusShape, String> {
    match text {
        "documented" => Ok(platform_sim::StatusShape::Documented),
        "rich" => Ok(platform_sim::StatusShape::Rich),
        other => Err(format!(
            "unknown status shape {other:?} (documented or rich)"
        )),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.generate_webhook_signing_key {
        let (whsk, whpk) = platform_sim::generate_webhook_signing_key(args.seed, 0);
        println!("{}", serde_json::json!({ "whsk": whsk, "whpk": whpk }));
        return ExitCode::SUCCESS;
    }
    let ca = match local_tls::LocalCa::ensure(&args.ca_dir) {
        Ok(ca) => std::sync::Arc::new(ca),
        Err(e) => {
            eprintln!("platform-sim: local CA: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = SimConfig {
        tls: Some(std::sync::Arc::clone(&ca)),
        partner_id: args.partner_id,
        jwks_url: args.jwks_url,
        callback_url: args.callback_url,
        webhook_secrets: args.webhook_secrets,
        webhook_signing_keys: args.webhook_signing_keys,
        webhook_signatures: args.webhook_signatures,
        onchain_delay: Duration::from_secs(args.onchain_delay_secs),
        seed: args.seed,
        callback_retries: args.callback_retries,
        callback_base_delay: Duration::from_millis(args.callback_base_delay_ms),
        callback_shape: args.callback_shape,
        issue_scope: args.issue_scope,
        status_shape: args.status_shape,
        ..SimConfig::default()
    };
    if let Some(did) = args.issuer_did {
        config.issuer_did = did;
    }
    if !args.programs.is_empty() {
        config.programs = args.programs;
    }
    let handle = match platform_sim::spawn(config, SocketAddr::new(args.host, args.port)).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("platform-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "url": handle.base_url(),
            "ca": ca.cert_path().map(|p| p.display().to_string()),
            "webhookSignatures": handle.webhook_signatures(),
            "webhookPublicKeys": handle.webhook_public_keys(),
        })
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("platform-sim: cannot wait for Ctrl-C: {e}");
    }
    handle.shutdown().await;
    println!("{}", serde_json::json!({ "event": "stopped" }));
    ExitCode::SUCCESS
}
