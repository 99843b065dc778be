//! `opsctl`: the operator's command line. Parsing and exit codes only; the commands live in the
//! library (one module per command group).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = opsctl::Cli::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let result = opsctl::run(
        cli,
        &mut opsctl::Io {
            out: &mut out,
            err: &mut err,
        },
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opsctl: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
