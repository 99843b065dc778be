//! `lambda-emu`: the functions as Lambda runs them, without Docker.
//!
//! - `lambda-emu invoke -f <function> -e events/<file>.json` (`make invoke`): `sam local invoke`
//!   without Docker. Runs the function's bootstrap (built beside it) under the Lambda Runtime Interface
//!   Emulator with the environment the template gives it, against moto (`AWS_ENDPOINT_URL`)
//!   prepared by a devstack with its platform simulator, signs API-key and webhook events afresh
//!   with the local dev credentials, prints the function's answer on stdout and its logs on
//!   stderr.
//! - `lambda-emu bench` (`make bench`): for every function of the template, cold starts of its
//!   bootstrap under the emulator against moto: init, first and warm invocation durations as the
//!   emulator reports them (min/median/max), peak RSS, zipped size, and init as a multiple of a
//!   bare Rust function's cold-started the same way in the same run.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lambda_emu::{EmuError, Emulator, LocalWorld, Template, resign};
use serde_json::Value;

mod bench;

/// Run the template's functions under the Lambda emulator.
#[derive(Debug, Parser)]
#[command(name = "lambda-emu", version)]
struct Cli {
    /// The template.
    #[arg(long, default_value = "template.yaml", global = true)]
    template: PathBuf,
    /// The Python venv holding the SAM CLI and its emulator.
    #[arg(long, default_value = ".venv", global = true)]
    venv: PathBuf,
    /// The DynamoDB table to prepare and use.
    #[arg(long, default_value = "partner-bundle-invoke", global = true)]
    table: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Invoke one function with an event file.
    Invoke {
        /// The function: its binary (`issue`, `jwks`, …) or its logical id (`IssueFunction`).
        #[arg(long = "function", short = 'f')]
        function: String,
        /// The event file.
        #[arg(long, short = 'e')]
        event: PathBuf,
        /// The bootstrap to run (default: the function's binary beside this program, built with
        /// it by `make invoke`).
        #[arg(long)]
        bootstrap: Option<PathBuf>,
        /// Send the event as it is, without fresh signatures.
        #[arg(long)]
        no_resign: bool,
    },
    /// Print each function's cold-start figures (init, first and warm invocation, peak RSS,
    /// zipped size) beside a bare Rust function's, against their budgets.
    Bench {
        /// Cold starts per function.
        #[arg(long, default_value_t = 15)]
        runs: usize,
        /// Only these functions (logical ids, e.g. `StatusPollerFunction`; repeatable). The bare
        /// function is always measured, as the baseline.
        #[arg(long = "only")]
        only: Vec<String>,
    },
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Signs `event` afresh when it is an API-key request or a webhook delivery.
fn resign_event(event: &mut Value, world: &LocalWorld) -> Result<Option<&'static str>, EmuError> {
    if resign::is_signed_request(event) {
        let (id, secret) = world.api_key()?;
        resign::sign_request(event, &id, &secret, now_secs())?;
        Ok(Some("the dev API key"))
    } else if resign::is_webhook(event) {
        resign::sign_webhook(event, &world.webhook_secret()?, now_secs())?;
        Ok(Some("the dev webhook secret"))
    } else {
        Ok(None)
    }
}

async fn invoke(
    cli: &Cli,
    function: &str,
    event_path: &Path,
    bootstrap: Option<PathBuf>,
    no_resign: bool,
) -> Result<Value, EmuError> {
    let template = Template::load(&cli.template)?;
    let logical_id = template.find_function(function)?;
    let mut event = lambda_emu::read_event(event_path)?;
    let rie = lambda_emu::find_rie(&cli.venv)?;
    let world = LocalWorld::start(&cli.table).await?;
    let spec = template.function(&logical_id, &world.refs(&template))?;
    let bootstrap = match bootstrap {
        Some(b) => b,
        None => lambda_emu::bootstrap(&spec.binary)?,
    };
    if !no_resign && let Some(with) = resign_event(&mut event, &world)? {
        eprintln!("lambda-emu: signed the event afresh with {with}");
    }
    eprintln!(
        "lambda-emu: {logical_id} ({}) under the emulator; platform simulator at {}",
        bootstrap.display(),
        world.platform_url()
    );
    let emulator = Emulator::start(&rie, &bootstrap, &spec, &world.extra_env())?;
    let answer = emulator.invoke(&event).await;
    eprint!("{}", emulator.output());
    answer
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Invoke {
            function,
            event,
            bootstrap,
            no_resign,
        } => match invoke(&cli, function, event, bootstrap.clone(), *no_resign).await {
            Ok(answer) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string())
                );
                if answer.get("errorType").is_some() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("lambda-emu: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench { runs, only } => match bench::bench(&cli, *runs, only).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lambda-emu: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
