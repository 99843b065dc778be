//! `make dev`: starts the local stack and prints one JSON `ready` line.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;

/// Runs every handler of the bundle locally behind one HTTP server.
#[derive(Debug, Parser)]
#[command(name = "devstack", version)]
struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the API (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Data directory for the embedded store and local secrets (gitignored).
    #[arg(long, default_value = ".devstack")]
    data_dir: PathBuf,
    /// Use DynamoDB and Secrets Manager (at AWS_ENDPOINT_URL, or real AWS) instead of local files.
    #[arg(long, env = "DEVSTACK_AWS")]
    aws: bool,
    /// The DynamoDB table to use with --aws.
    #[arg(long, env = "TABLE_NAME", default_value = "partner-bundle-local")]
    table_name: String,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    shared::telemetry::init("devstack");
    let opts = devstack::Options {
        host: cli.host,
        port: cli.port,
        data_dir: cli.data_dir,
        aws: cli.aws,
        table_name: cli.table_name,
    };
    let running = match devstack::start(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("devstack: {e}");
            std::process::exit(1);
        }
    };
    let ready = running.ready_line();
    println!("{ready}");
    eprintln!("try: curl -s {}/healthz", running.api_url());
    tokio::select! {
        _ = running.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
