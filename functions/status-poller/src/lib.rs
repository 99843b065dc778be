//! The status poller (docs/architecture.md §7): run by an EventBridge schedule every minute, it polls the
//! platform for every credential waiting to be anchored until the platform says `ONCHAIN`. Until
//! then nothing treats the credential as issued, and nothing waits silently forever.
//!
//! One run:
//!
//! 1. lists the due records (`WAIT_ONCHAIN`, due time passed) through the store's due-time index,
//!    page by page — never a scan — on a task of its own, so that listing never stalls polling:
//!    the configured shards, or all 64 in a periodic sweep ([`PollPolicy::sweep_every`]);
//! 2. polls `GET /credentials/status` with at most [`PollPolicy::concurrency`] calls in flight,
//!    and stops taking new records once the time left before the Lambda deadline is shorter than
//!    the safety margin plus one poll; records it did not take stay due for the next run;
//! 3. claims each record before polling it with a conditional write (see [`run`]) so that two
//!    overlapping runs never poll the same record, and a crashed run's claim simply expires;
//! 4. moves the record on: `ONCHAIN` → `ISSUED` with `onchainAt` (and a `WaitOnchainSeconds`
//!    value); still waiting → due again after its backoff (1 s doubling to 30 s), with one warning
//!    and one `WaitOnchainAlerts` when it passes the alert threshold; past the give-up limit →
//!    `TIMED_OUT` with the reason, out of the queue for good (never re-issued automatically);
//!    404 or `REVOKED` → `FAILED` with the reason; platform 5xx, timeouts and 429 → due again
//!    after its backoff (or the platform's `Retry-After`), counted in `PollErrors`;
//! 5. reports what it did in one structured log line and as metrics ([`RunSummary`]).
#![forbid(unsafe_code)]

mod config;
mod listing;
mod run;

use shared::issuance::ShardGroup;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use shared::clock::SharedClock;
use shared::platform::{Deadline, MintingTokens, PlatformClient, PlatformError};
use shared::secrets::SecretSource;
use shared::store::{DueRecords, RecordStore, StoreError};
use shared::telemetry::Recorder;

pub use config::{MAX_CONCURRENCY, PollPolicy, PollerConfig};
pub use run::{run, run_group};

/// The service name in logs and metrics.
pub const SERVICE: &str = "status-poller";

/// Metric (seconds): how long each credential waited for `ONCHAIN`, one value per credential.
pub const WAIT_ONCHAIN_SECONDS_METRIC: &str = "WaitOnchainSeconds";
/// Metric (count): credentials still `WAIT_ONCHAIN` past the alert threshold, once per record.
pub const WAIT_ONCHAIN_ALERTS_METRIC: &str = "WaitOnchainAlerts";
/// Metric (count): credentials given up on (`TIMED_OUT`).
pub const TIMED_OUT_METRIC: &str = "CredentialsTimedOut";
/// Metric (count): credentials that became `ISSUED`.
pub const ISSUED_METRIC: &str = "CredentialsIssued";
/// Metric (count): credentials that became `FAILED` (unknown to the platform, or revoked).
pub const FAILED_METRIC: &str = "CredentialsFailed";
/// Metric (count): status calls made.
pub const POLLED_METRIC: &str = "StatusPolls";
/// Metric (count): polled credentials still waiting after the poll.
pub const STILL_WAITING_METRIC: &str = "CredentialsStillWaiting";
/// Metric (count), by `kind`: polls or record updates that went wrong (`unavailable`,
/// `rate_limited`, `unauthorized`, `rejected`, `protocol`, `token`, `config`, `unknown_state`,
/// `store`, `lease_lost`, `corrupt_record`).
pub const POLL_ERRORS_METRIC: &str = "PollErrors";
/// Metric (count): runs that stopped taking records because the deadline was near.
pub const STOPPED_EARLY_METRIC: &str = "PollRunsStoppedEarly";
/// Metric (count), by `from` (`PENDING`, `UPLOAD_PENDING`): unfinished issuances whose lease ran
/// out without their request finishing or being retried, found by the reconciler and marked
/// `ABANDONED` (a retry with the same `Idempotency-Key` resumes them). Alarmed in the template.
pub const ABANDONED_METRIC: &str = "IssuancesAbandoned";

/// What the poller needs, built once per container.
pub struct PollerDeps {
    /// The polling policy.
    pub policy: PollPolicy,
    /// Reading and conditionally writing issuance records.
    pub store: Arc<dyn RecordStore>,
    /// The due-time index.
    pub due: Arc<dyn DueRecords>,
    /// The platform.
    pub platform: PlatformClient,
    /// The clock (due times, waits, timeouts).
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// The ports the poller runs on.
pub struct PollerPorts {
    /// The signing key set (read).
    pub secrets: Arc<dyn SecretSource>,
    /// Reading and conditionally writing issuance records.
    pub store: Arc<dyn RecordStore>,
    /// The due-time index.
    pub due: Arc<dyn DueRecords>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

impl PollerDeps {
    /// The function's dependencies, built once per container: the one wiring the Lambda `main`,
    /// the devstack and the tests share. The key set is read on the first poll, not here.
    ///
    /// # Errors
    /// The platform client cannot be built from its configuration.
    pub fn build(config: PollerConfig, ports: PollerPorts) -> Result<Self, PlatformError> {
        let PollerPorts {
            secrets,
            store,
            due,
            clock,
            recorder,
        } = ports;
        let tokens = Arc::new(MintingTokens::over_secret(
            secrets,
            &config.keys,
            config.partner_id.clone(),
            config.platform.token_scope.clone(),
            clock.clone(),
            config.token_cache_entries,
        ));
        let platform = PlatformClient::new(config.platform, tokens, recorder.clone())?;
        Ok(Self {
            policy: config.policy,
            store,
            due,
            platform,
            clock,
            recorder,
        })
    }
}

/// What one run did. Logged as one line and answered to the invoker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Status calls made (one per claimed record).
    pub polled: u64,
    /// Records that became `ISSUED`.
    pub issued: u64,
    /// Polled records still waiting (including those whose poll failed).
    pub still_waiting: u64,
    /// Records given up on (`TIMED_OUT`).
    pub timed_out: u64,
    /// Records that became `FAILED`.
    pub failed: u64,
    /// Unfinished records whose lease ran out, marked `ABANDONED` by the reconciler.
    pub abandoned: u64,
    /// Poll and store errors (see [`POLL_ERRORS_METRIC`]).
    pub errors: u64,
    /// Alerts raised for long waits.
    pub alerts: u64,
    /// Listed records left alone: claimed by another run first, or no longer waiting.
    pub skipped: u64,
    /// Whether the run listed every possible shard (a sweep, see [`PollPolicy::sweep_every`])
    /// rather than the configured ones.
    pub swept: bool,
    /// Whether the run stopped taking records because its deadline was near.
    pub stopped_early: bool,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

/// Why a run failed as a whole. The function then fails, so the schedule's failure destination
/// and the function's `Errors` metric see it; per-record problems never fail the run.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// The due index could not be read.
    #[error("cannot list the due records: {0}")]
    Listing(#[source] StoreError),
    /// The scheduled event names a shard group that does not exist.
    #[error("the event's shardGroup/shardGroups are not a group of 1-64 groups: {0}")]
    BadGroup(String),
}

impl From<PollerError> for lambda_runtime::Diagnostic {
    fn from(e: PollerError) -> Self {
        let error_type = match &e {
            PollerError::Listing(_) => "DueListingFailed",
            PollerError::BadGroup(_) => "BadShardGroup",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Handles one scheduled event (its content is not needed: every invocation is a run) and
/// answers the run's summary.
pub async fn handle(
    event: Value,
    deadline: Deadline,
    deps: &PollerDeps,
) -> Result<Value, PollerError> {
    if let Some(id) = event.get("id").and_then(Value::as_str) {
        tracing::debug!(event_id = id, "status poll run requested");
    }
    let summary = run_group(deps, deadline, shard_group(&event)?).await?;
    Ok(serde_json::to_value(&summary).unwrap_or(Value::Null))
}

/// The shard group a scheduled event asks for: `{"shardGroup": i, "shardGroups": n}` (the
/// template's fan-out schedules put it in the event), or every queue when the event names none.
///
/// # Errors
/// [`PollerError::BadGroup`] for a group that does not exist: the run fails visibly instead of
/// draining the wrong queues.
pub fn shard_group(event: &Value) -> Result<ShardGroup, PollerError> {
    let field = |name: &str| event.get(name).filter(|v| !v.is_null());
    match (field("shardGroup"), field("shardGroups")) {
        (None, None) => Ok(ShardGroup::ALL),
        (index, of) => {
            let number = |v: Option<&Value>| {
                v.and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
            };
            number(index)
                .zip(number(of))
                .and_then(|(i, n)| ShardGroup::new(i, n))
                .ok_or_else(|| PollerError::BadGroup(format!("{index:?} of {of:?}")))
        }
    }
}

/// The deadline of a Lambda invocation, given as epoch milliseconds (`Context::deadline`).
pub fn lambda_deadline(deadline_epoch_ms: u64) -> Deadline {
    let at = UNIX_EPOCH + Duration::from_millis(deadline_epoch_ms);
    Deadline::after(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_deadline_in_the_past_leaves_no_time() {
        assert!(lambda_deadline(0).is_past());
    }

    #[test]
    fn a_lambda_deadline_a_minute_away_leaves_about_a_minute() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let d = lambda_deadline(u64::try_from(now_ms).unwrap() + 60_000);
        assert!(d.remaining() > Duration::from_secs(55));
        assert!(d.remaining() <= Duration::from_secs(60));
    }

    #[test]
    fn the_summary_uses_the_documented_field_names() {
        let v = serde_json::to_value(RunSummary::default()).unwrap();
        for field in [
            "polled",
            "issued",
            "stillWaiting",
            "timedOut",
            "failed",
            "errors",
            "stoppedEarly",
        ] {
            assert!(v.get(field).is_some(), "{field} missing from {v}");
        }
    }
}
