//! `lambda-emu`: the functions as Lambda runs them, without Docker.
//!
//! - `lambda-emu invoke -f <function> -e events/<file>.json` (`make invoke`): `sam local invoke`
//!   without Docker. Runs the function's bootstrap (built beside it) under the Lambda Runtime Interface
//!   Emulator with the environment the template gives it, against moto (`AWS_ENDPOINT_URL`)
//!   prepared by a devstack with its platform simulator, signs API-key and webhook events afresh
//!   with the local dev credentials, prints the function's answer on stdout and its logs on
//!   stderr.
//! - `lambda-emu bench` (`make bench`): for every function of the template, the median init
//!   duration of its bootstrap over cold starts under the emulator, and its zipped size.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lambda_emu::{EmuError, Emulator, LocalWorld, Template, resign};
use serde_json::Value;

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
    /// Print each function's median cold-start init duration and zipped bootstrap size.
    Bench {
        /// Cold starts per function.
        #[arg(long, default_value_t = 15)]
        runs: usize,
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

/// The sample event each function is cold-started with in the bench.
fn bench_event(logical_id: &str, binary: &str) -> String {
    match logical_id {
        "ServerTokenMintFunction" => "server-token-mint.json".into(),
        "IssueFunction" => "issue-status.json".into(),
        "KeyRotationFunction" => "key-rotation-scheduled.json".into(),
        "StatusPollerFunction" => "status-poller-scheduled.json".into(),
        "CallbackReceiverFunction" => "callback-cak.json".into(),
        _ => format!("{binary}.json"),
    }
}

/// The emulator's own report of the init phase: `INIT REPORT(durationMs: 9.98)`.
fn init_duration_ms(output: &str) -> Option<f64> {
    let at = output.find("INIT REPORT(durationMs: ")?;
    let rest = &output[at + "INIT REPORT(durationMs: ".len()..];
    rest[..rest.find(')')?].trim().parse().ok()
}

/// The size of `path` compressed as a Lambda deployment zip stores it (deflate, best).
fn zipped_size(path: &Path) -> Result<usize, EmuError> {
    let bytes = std::fs::read(path).map_err(|source| EmuError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&bytes)
        .and_then(|()| enc.finish())
        .map(|v| v.len())
        .map_err(|source| EmuError::Io {
            what: "compressing".into(),
            source,
        })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn bench(cli: &Cli, runs: usize) -> Result<(), EmuError> {
    let template = Template::load(&cli.template)?;
    let rie = lambda_emu::find_rie(&cli.venv)?;
    let world = LocalWorld::start(&cli.table).await?;
    let root = PathBuf::from(".");
    eprintln!(
        "cold start under the Lambda emulator (budget: median init <= 10 ms) and bootstrap size zipped (budget: <= 6 MB)"
    );
    eprintln!(
        "{:<26} {:>10} {:>10} {:>12} {:>14}",
        "function", "init p50", "init max", "zip x86_64", "zip arm64"
    );
    for (logical_id, binary) in template.functions()? {
        let spec = template.function(&logical_id, &world.refs(&template))?;
        let bootstrap = lambda_emu::bootstrap(&binary)?;
        let event_file = root.join("events").join(bench_event(&logical_id, &binary));
        let mut inits = Vec::with_capacity(runs);
        for _ in 0..runs {
            let mut event = lambda_emu::read_event(&event_file)?;
            resign_event(&mut event, &world)?;
            let emulator = Emulator::start(&rie, &bootstrap, &spec, &world.extra_env())?;
            emulator.invoke(&event).await?;
            if let Some(ms) = init_duration_ms(&emulator.output()) {
                inits.push(ms);
            }
        }
        let max = inits.iter().copied().fold(f64::NAN, f64::max);
        let x86 = zipped_size(&bootstrap)?;
        // What `make build` produced for Lambda, when it has been run.
        let arm = root
            .join(".aws-sam/build")
            .join(&logical_id)
            .join("bootstrap");
        let arm = if arm.is_file() {
            format!("{:.2} MB", zipped_size(&arm)? as f64 / 1e6)
        } else {
            "(make build)".to_owned()
        };
        eprintln!(
            "{logical_id:<26} {:>7.2} ms {:>7.2} ms {:>9.2} MB {:>14}",
            median(&mut inits),
            max,
            x86 as f64 / 1e6,
            arm
        );
    }
    Ok(())
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
        Command::Bench { runs } => match bench(&cli, *runs).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lambda-emu: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_duration_is_read_from_the_emulators_init_report() {
        let out = "x [INFO] (rapid) INIT RTDONE(status: success)\n\
                   01 Dec 2026 04:25:43,487 [INFO] (rapid) INIT REPORT(durationMs: 9.982000)\n";
        assert_eq!(init_duration_ms(out), Some(9.982));
        assert_eq!(init_duration_ms("nothing"), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
    }
}
