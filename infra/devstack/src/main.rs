//! `make dev`: starts the local stack and prints one JSON `ready` line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Runs every handler of the bundle locally behind one HTTPS server.
#[derive(Debug, Parser)]
#[command(name = "devstack", version)]
struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the API (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Data directory for the embedded store, local secrets and dev credentials (gitignored).
    #[arg(long, default_value = ".devstack")]
    data_dir: PathBuf,
    /// Use DynamoDB and Secrets Manager (at AWS_ENDPOINT_URL, or real AWS) instead of local files.
    #[arg(long, env = "DEVSTACK_AWS")]
    aws: bool,
    /// The DynamoDB table to use with --aws.
    #[arg(long, env = "TABLE_NAME", default_value = "partner-bundle-local")]
    table_name: String,
    /// The partner id tokens carry and the platform simulator expects.
    #[arg(long, env = "PARTNER_ID", default_value = "partner-local")]
    partner_id: String,
    /// Seconds between runs of the scheduled functions (key rotation).
    #[arg(long, default_value_t = 60)]
    schedule_interval: u64,
    /// Seconds between runs of the status poller (short, so local issuances become ISSUED quickly).
    #[arg(long, default_value_t = 2)]
    poll_interval: u64,
    /// Seconds the platform simulator keeps a credential WAIT_ONCHAIN before it is ONCHAIN.
    #[arg(long, default_value_t = 5)]
    onchain_delay: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // Logs go to standard error: standard output carries the ready line, first.
    shared::telemetry::init_on_stderr("devstack");
    let opts = devstack::Options {
        host: cli.host,
        port: cli.port,
        data_dir: cli.data_dir,
        aws: cli.aws,
        table_name: cli.table_name,
        partner_id: cli.partner_id,
        schedule_interval: Duration::from_secs(cli.schedule_interval.max(1)),
    };
    let tuning = devstack::LocalTuning {
        poll_interval: Some(Duration::from_secs(cli.poll_interval.max(1))),
        onchain_delay: Some(Duration::from_secs(cli.onchain_delay)),
    };
    let mut running = match devstack::start_tuned(&opts, &tuning).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("devstack: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", running.ready_line());
    let api = running.api_url();
    let ca = running.ca.display();
    eprintln!(
        "try (HTTPS only; the local CA is {ca}):\n  curl --cacert {ca} -s {api}/healthz\n  curl --cacert {ca} -s {api}/.well-known/jwks.json\n  \
         TOKEN=$(curl --cacert {ca} -s -XPOST {api}/dev/login -d '{{\"sub\":\"alice\",\"email\":\"alice@example.com\",\"mfa\":true}}' | jq -r .idToken)\n  \
         curl --cacert {ca} -s -XPOST {api}/v1/partner-tokens -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"scope\":\"session\"}}'\n\
         dev API key and webhook secret: {}",
        running.credentials.display()
    );
    tokio::select! {
        _ = running.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
