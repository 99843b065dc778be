//! `opsctl audit`: a running stack checked against every item of the platform's security
//! checklists that the bundle is responsible for — by black-box requests to its API
//! ([`probes`]), a reading of its SAM template ([`template`]) and, with operator access, of its
//! secrets store ([`state`]) — reported item by item ([`render`]: text, JSON or one
//! self-contained HTML page). The command fails (exit status 1) when any observable item fails,
//! so a partner can run it in CI after every deploy.
//!
//! What cannot be seen from outside is still listed, as "not observable from outside", with what
//! a reviewer should look at instead: an audit that stayed silent about an item would read as a
//! pass.

pub mod checklist;
pub mod probes;
pub mod render;
pub mod report;
pub mod state;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use shared::clock::SharedClock;
use shared::config::{EnvReader, ProcessEnv};

use crate::Io;
use crate::cli::GlobalArgs;
use crate::error::Error;
use report::{Finding, Method, Outcome, Report};

/// `opsctl audit …`
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The API's base URL, with its base path if any (e.g. `https://api.example.com/partner`).
    #[arg(long, value_name = "BASE_URL")]
    pub api: String,
    /// The SAM template the stack was deployed from: adds the template checks.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// A JSON file of the credentials the probes act with (`apiKey`, `readOnlyKey`,
    /// `webhookSecret`, `idToken`, `userLogin`); the devstack's `dev-credentials.json` is one.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust besides the system's, e.g. the devstack's local CA.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Read the secrets store (the data directory, or Secrets Manager with `--aws`): adds the
    /// key and secret age checks.
    #[arg(long)]
    pub state: bool,
    /// How the report is written.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for a terminal.
    Text,
    /// One JSON document, for scripts.
    Json,
    /// One self-contained HTML page, to attach to a sign-off.
    Html,
}

/// Where a reviewer looks for each item nothing outside the stack can observe.
fn review_pointer(id: &str) -> &'static str {
    match id {
        "cak-encryption" => {
            "docs/security.md (CAK encryption); the issue function's tests that decrypt the uploaded ciphertext with an independent ECIES implementation; a stored ISSUE# record holds no sensitiveData"
        }
        "pii-at-rest" => {
            "docs/security.md (PII); a DynamoDB item of the records table: users appear only as keyed hashes and sealed values"
        }
        "no-secrets-in-logs" => {
            "the log-capture tests (tests/no_pii.rs of the functions); a CloudWatch Logs Insights search of the functions' log groups for sk_, whsec_ and e-mail addresses"
        }
        "retries-backoff" => {
            "docs/api.md (status poller backoff); the platform client's retry settings (PLATFORM_MAX_ATTEMPTS) and its tests against the simulator's faults"
        }
        "idempotency" => {
            "docs/api.md (issuing credentials); the issue function's idempotency tests, including a process dying after each write"
        }
        _ => "the project's docs/security.md",
    }
}

/// Runs the audit and returns its report (what `opsctl audit` prints).
///
/// # Errors
/// The arguments cannot be used (an unreadable credentials, CA or template file).
pub async fn audit(
    args: &AuditArgs,
    global: &GlobalArgs,
    clock: SharedClock,
) -> Result<Report, Error> {
    let creds = match &args.credentials {
        Some(path) => probes::Credentials::load(path).map_err(Error::Audit)?,
        None => probes::Credentials::default(),
    };
    let ca = match &args.ca {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| Error::Audit(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let prober = probes::Prober::new(&args.api, ca.as_deref(), creds).map_err(Error::Audit)?;
    let mut found = prober.run().await;
    let template = match &args.template {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Audit(format!("{}: {e}", path.display())))?;
            template::check(&text)
        }
        None => Vec::new(),
    };
    let state = if args.state {
        let secrets = crate::backend::secrets(global, Arc::clone(&clock)).await?;
        state::check(secrets.as_ref(), &EnvReader::new(&ProcessEnv), clock.now()).await
    } else {
        Vec::new()
    };
    for f in template.into_iter().chain(state) {
        found.insert(f.item.id, f);
    }
    let findings = checklist::ITEMS
        .iter()
        .map(|item| {
            found.remove(item.id).unwrap_or_else(|| {
                let look_at = match item.method {
                    Method::Template => "run the audit with --template template.yaml".to_owned(),
                    Method::State => {
                        "run the audit with --state (and --aws for Secrets Manager)".to_owned()
                    }
                    Method::Review | Method::Live => review_pointer(item.id).to_owned(),
                };
                Finding::new(*item, Outcome::not_observable(look_at), Vec::new())
            })
        })
        .collect();
    Ok(Report {
        api: args.api.clone(),
        at: clock.now().to_rfc3339(),
        findings,
    })
}

/// `opsctl audit`: runs the audit, writes the report, and fails when an observable item failed.
///
/// # Errors
/// [`Error::AuditFailed`] when an item failed (after the report is written), or why the audit
/// could not run.
pub async fn run(
    args: &AuditArgs,
    global: &GlobalArgs,
    clock: SharedClock,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let report = audit(args, global, clock).await?;
    let text = match args.format {
        Format::Text => render::text(&report),
        Format::Json => render::json(&report),
        Format::Html => render::html(&report),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| Error::Audit(format!("{}: {e}", path.display())))?;
            writeln!(io.err, "audit report written to {}", path.display())?;
        }
        None => io.out.write_all(text.as_bytes())?,
    }
    let failed = report
        .findings
        .iter()
        .filter(|f| f.outcome.failed())
        .count();
    if failed > 0 {
        return Err(Error::AuditFailed { failed });
    }
    Ok(())
}
