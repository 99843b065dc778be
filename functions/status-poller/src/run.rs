//! One poll run: list the due records, claim, poll, move each record on, report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use shared::clock::Timestamp;
use shared::issuance::{
    Anchored, InvalidTransition, Issuance, IssuanceStatus, PollShards, ShardGroup,
};
use shared::platform::{Deadline, PlatformError, VcState, VcStatus};
use shared::store::{Due, NewRecord, Record, RecordKey, Version, Write};
use shared::telemetry::Unit;
use tokio::sync::mpsc;

use crate::listing::{Listed, list_due};
use crate::{
    ABANDONED_METRIC, FAILED_METRIC, ISSUED_METRIC, POLL_ERRORS_METRIC, POLLED_METRIC, PollerDeps,
    PollerError, RunSummary, STILL_WAITING_METRIC, STOPPED_EARLY_METRIC, TIMED_OUT_METRIC,
    WAIT_ONCHAIN_ALERTS_METRIC, WAIT_ONCHAIN_SECONDS_METRIC,
};

/// Kept free within a claim for the write that follows the poll.
const WRITE_ALLOWANCE: Duration = Duration::from_secs(1);

/// Runs one poll over every due record, until none is left or the deadline is near.
///
/// # Claims and store calls
///
/// Every record change is one conditional write at the version the record was read at, and a
/// poll costs one store call per state change:
///
/// - **The claim** (before the status call) *is* the state change "polled once more": it counts
///   the attempt, stamps `lastPolledAt` and moves the record's due time to
///   `now + max(backoff, lease)` — out of the due index for every other run while the poll is in
///   flight. Two overlapping runs that list the same record race on this write; the loser skips
///   the record, so a record is never polled by two runs at once. A run that dies after claiming
///   leaves the record due again when the lease ends; nothing is lost.
/// - **The outcome** (after the status call), only when the poll changed something: `ISSUED`,
///   `FAILED` or `TIMED_OUT` (taking the record out of the queue for good), the first alert, or
///   a next due time other than the one the claim already wrote — which happens only while the
///   backoff is shorter than the lease (the first few polls) or when the platform's `Retry-After`
///   is longer. A record polled at its 30 s backoff that is still waiting costs the claim alone.
///
/// The outcome write is conditional on the claim's version: if the lease ran out and another run
/// took the record meanwhile, this run's late answer is dropped (counted as `lease_lost`).
/// Next due times are counted from the claim, so a record's polls follow its backoff schedule
/// exactly: 1 s, 2 s, 4 s … after acceptance, then every 30 s.
///
/// Listing runs on a task of its own, a page ahead of the polls, so index queries never stall
/// the calls in flight. The index is read as of the run's start: a record claimed in this run is
/// due again only later, so no run polls a record twice.
pub async fn run(deps: &PollerDeps, deadline: Deadline) -> Result<RunSummary, PollerError> {
    run_group(deps, deadline, ShardGroup::ALL).await
}

/// [`run`] over the queues of one shard group only: one of the invocations a fanned-out schedule
/// makes (each claims its records with its own lease, as any run does).
pub async fn run_group(
    deps: &PollerDeps,
    deadline: Deadline,
    group: ShardGroup,
) -> Result<RunSummary, PollerError> {
    let started = Instant::now();
    let policy = &deps.policy;
    let poll_time = deps
        .platform
        .config()
        .request_timeout
        .min(policy.lease.saturating_sub(WRITE_ALLOWANCE));
    let ctx = RunCtx {
        shards: policy.shards,
        hard_stop: Deadline::at(
            deadline
                .instant()
                .checked_sub(policy.safety_margin)
                .unwrap_or_else(Instant::now),
        ),
        poll_time,
    };
    // No record is taken unless its poll can finish before the safety margin begins.
    let reserve = policy.safety_margin + poll_time;
    let concurrency = policy.concurrency.max(1);

    let started_at = deps.clock.now();
    let listing = policy.sweep_every.listing(policy.shards, started_at);
    let (tx, mut rx) = mpsc::channel(policy.page_size.max(1));
    let lister = tokio::spawn(list_due(
        Arc::clone(&deps.due),
        group.queues(listing),
        started_at,
        policy.page_size.max(1),
        deadline,
        reserve,
        tx,
    ));

    let mut tally = Tally::default();
    let mut listing_error = None;
    let mut taking = true;
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => tally.add(outcome),
            item = rx.recv(), if taking && in_flight.len() < concurrency => match item {
                Some(Listed::Record(record)) if deadline.remaining() >= reserve => {
                    in_flight.push(poll_one(deps, *record, &ctx));
                }
                Some(Listed::Record(_) | Listed::OutOfTime) => {
                    tally.summary.stopped_early = true;
                    taking = false;
                    rx.close();
                }
                Some(Listed::Failed(e)) => {
                    listing_error = Some(e);
                    taking = false;
                    rx.close();
                }
                None => taking = false,
            },
            else => break,
        }
    }
    lister.abort();

    let mut summary = tally.summary.clone();
    summary.swept = listing.is_sweep();
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // One line per run: at info when the run did something, at debug when it found nothing due
    // (a local stack polls every few seconds).
    macro_rules! summary_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                polled = summary.polled,
                issued = summary.issued,
                stillWaiting = summary.still_waiting,
                timedOut = summary.timed_out,
                failed = summary.failed,
                abandoned = summary.abandoned,
                errors = summary.errors,
                alerts = summary.alerts,
                skipped = summary.skipped,
                swept = summary.swept,
                stoppedEarly = summary.stopped_early,
                durationMs = summary.duration_ms,
                listingFailed = listing_error.is_some(),
                "status poll run finished"
            )
        };
    }
    let idle = summary.polled + summary.skipped + summary.errors == 0
        && summary.failed == 0
        && summary.abandoned == 0
        && !summary.stopped_early
        && listing_error.is_none();
    if idle {
        summary_line!(tracing::Level::DEBUG);
    } else {
        summary_line!(tracing::Level::INFO);
    }
    tally.emit(deps, &summary);
    match listing_error {
        Some(e) => {
            tracing::error!(error = %e, "the due index could not be read; the run is incomplete");
            Err(PollerError::Listing(e))
        }
        None => Ok(summary),
    }
}

/// What every poll of a run shares.
struct RunCtx {
    /// Where each record goes back in the due index: its own shard (a record of the legacy
    /// queue moves to it on its first claim).
    shards: PollShards,
    /// The invocation's deadline minus the safety margin: no poll runs past it.
    hard_stop: Deadline,
    /// The longest one status call may take.
    poll_time: Duration,
}

impl RunCtx {
    fn poll_deadline(&self) -> Deadline {
        Deadline::after(self.poll_time).min(self.hard_stop)
    }
}

/// Where a record ended up after this run took it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Issued(Duration),
    Waiting,
    TimedOut,
    Failed,
    /// An unfinished record whose lease ran out.
    Abandoned,
    /// Claimed by another run first, or no longer waiting: left alone.
    Skipped,
    /// A write failed: the record is as the last successful write left it.
    Unknown,
}

/// What went wrong with one record (the `kind` dimension of `PollErrors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ErrorKind {
    /// The status call failed; its label is the platform error's.
    Platform(&'static str),
    /// The platform answered a state this poller does not know.
    UnknownState,
    /// A store call failed (or a record could not be encoded).
    Store,
    /// The record changed between the claim and the outcome (the claim expired).
    LeaseLost,
    /// An unreadable record in the queue.
    CorruptRecord,
    /// A transition the record's state machine refused (a bug: the state was checked first).
    InvalidTransition,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Platform(label) => label,
            Self::UnknownState => "unknown_state",
            Self::Store => "store",
            Self::LeaseLost => "lease_lost",
            Self::CorruptRecord => "corrupt_record",
            Self::InvalidTransition => "invalid_transition",
        }
    }
}

/// Why a conditional write did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFailed {
    /// The record is not at the version read (another run, or its request, changed it).
    Changed,
    /// The store failed.
    Store,
}

impl WriteFailed {
    /// The outcome when the record, changed meanwhile, is left to whoever changed it.
    fn skipped_or_error(self) -> Outcome {
        match self {
            Self::Changed => Outcome::new(Fate::Skipped),
            Self::Store => Outcome::error(ErrorKind::Store),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    polled: bool,
    fate: Fate,
    alerted: bool,
    errors: Vec<ErrorKind>,
}

impl Outcome {
    fn new(fate: Fate) -> Self {
        Self {
            polled: false,
            fate,
            alerted: false,
            errors: Vec::new(),
        }
    }

    fn error(kind: ErrorKind) -> Self {
        let mut o = Self::new(Fate::Unknown);
        o.errors.push(kind);
        o
    }
}

#[derive(Default)]
struct Tally {
    summary: RunSummary,
    errors: BTreeMap<ErrorKind, u64>,
    waits: Vec<f64>,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        let s = &mut self.summary;
        s.polled += u64::from(o.polled);
        s.alerts += u64::from(o.alerted);
        match o.fate {
            Fate::Issued(waited) => {
                s.issued += 1;
                self.waits.push(waited.as_secs_f64());
            }
            Fate::Waiting => s.still_waiting += 1,
            Fate::TimedOut => s.timed_out += 1,
            Fate::Failed => s.failed += 1,
            Fate::Abandoned => s.abandoned += 1,
            Fate::Skipped => s.skipped += 1,
            Fate::Unknown => {}
        }
        for kind in o.errors {
            s.errors += 1;
            *self.errors.entry(kind).or_default() += 1;
        }
    }

    fn emit(&self, deps: &PollerDeps, summary: &RunSummary) {
        let count = |n: u64| n as f64;
        let mut m = deps.recorder.batch();
        m.add(POLLED_METRIC, Unit::Count, count(summary.polled));
        m.add(ISSUED_METRIC, Unit::Count, count(summary.issued));
        m.add(
            STILL_WAITING_METRIC,
            Unit::Count,
            count(summary.still_waiting),
        );
        m.add(TIMED_OUT_METRIC, Unit::Count, count(summary.timed_out));
        m.add(FAILED_METRIC, Unit::Count, count(summary.failed));
        m.add(
            WAIT_ONCHAIN_ALERTS_METRIC,
            Unit::Count,
            count(summary.alerts),
        );
        m.add(
            STOPPED_EARLY_METRIC,
            Unit::Count,
            count(u64::from(summary.stopped_early)),
        );
        for wait in &self.waits {
            m.add(WAIT_ONCHAIN_SECONDS_METRIC, Unit::Seconds, *wait);
        }
        deps.recorder.flush(&mut m);
        for (kind, n) in &self.errors {
            deps.recorder.emit(
                POLL_ERRORS_METRIC,
                Unit::Count,
                count(*n),
                &[("kind", kind.label())],
            );
        }
    }
}

/// The record as written back: `issuance` as its body, in the poll queue at `due` (or out of it).
fn rewrite(
    record: &Record,
    issuance: &Issuance,
    shards: PollShards,
    due: Option<Timestamp>,
    expected: Version,
) -> Result<Write, serde_json::Error> {
    let queue = shards.queue_for(&issuance.issuance_id);
    Ok(Write::Replace {
        record: NewRecord {
            key: record.key.clone(),
            data: serde_json::to_value(issuance)?,
            expires_at: record.expires_at,
            due: due.map(|at| Due { queue, at }),
        },
        expected,
    })
}

/// Applies `write` at the version it names.
async fn apply(
    deps: &PollerDeps,
    key: &RecordKey,
    write: Result<Write, serde_json::Error>,
) -> Result<Version, WriteFailed> {
    let write = write.map_err(|e| {
        tracing::error!(record = %key, error = %e, "cannot encode the issuance record");
        WriteFailed::Store
    })?;
    match deps.store.write(write).await {
        Ok(version) => Ok(version),
        Err(e) if e.is_condition_failure() => {
            tracing::debug!(record = %key, "record changed under this run");
            Err(WriteFailed::Changed)
        }
        Err(e) => {
            tracing::error!(record = %key, error = %e, "cannot update the issuance record");
            Err(WriteFailed::Store)
        }
    }
}

/// Takes one listed record through claim, poll and outcome.
async fn poll_one(deps: &PollerDeps, record: Record, ctx: &RunCtx) -> Outcome {
    let policy = &deps.policy;
    let issuance: Issuance = match serde_json::from_value(record.data.clone()) {
        Ok(i) => i,
        Err(e) => {
            // Never polled again, never silently: it leaves the queue with an error line.
            tracing::error!(record = %record.key, error = %e,
                "unreadable issuance record in the poll queue; taking it out of the queue");
            let write = Ok(Write::Replace {
                record: NewRecord {
                    key: record.key.clone(),
                    data: record.data.clone(),
                    expires_at: record.expires_at,
                    due: None,
                },
                expected: record.version,
            });
            return match apply(deps, &record.key, write).await {
                Ok(_) => Outcome::error(ErrorKind::CorruptRecord),
                Err(failed) => failed.skipped_or_error(),
            };
        }
    };
    let id = issuance.issuance_id.as_str().to_owned();

    if matches!(
        issuance.status(),
        IssuanceStatus::Pending | IssuanceStatus::UploadPending
    ) {
        return reconcile(deps, &record, issuance, ctx).await;
    }

    if issuance.status() != IssuanceStatus::WaitOnchain {
        tracing::warn!(issuance_id = id.as_str(), status = ?issuance.status(),
            "record in the poll queue is not waiting; taking it out of the queue");
        let write = rewrite(&record, &issuance, ctx.shards, None, record.version);
        return match apply(deps, &record.key, write).await {
            Ok(_) => Outcome::new(Fate::Skipped),
            Err(failed) => failed.skipped_or_error(),
        };
    }

    let Some(hash) = issuance.core_claim_hash().map(str::to_owned) else {
        let Ok(failed) = issuance.lost(
            "accepted without a coreClaimHash: nothing to poll".to_owned(),
            deps.clock.now(),
        ) else {
            return Outcome::error(ErrorKind::InvalidTransition);
        };
        tracing::error!(
            issuance_id = id.as_str(),
            "waiting record without a coreClaimHash; marked FAILED"
        );
        let write = rewrite(&record, &failed, ctx.shards, None, record.version);
        return match apply(deps, &record.key, write).await {
            Ok(_) => Outcome::new(Fate::Failed),
            Err(failed) => failed.skipped_or_error(),
        };
    };

    // The claim: the attempt is counted and the record leaves the due set for the lease.
    let claimed_at = deps.clock.now();
    let Ok(issuance) = issuance.poll_claimed(claimed_at) else {
        return Outcome::error(ErrorKind::InvalidTransition);
    };
    let backoff = policy.backoff(issuance.poll_attempts());
    let claim_due = claimed_at.plus(backoff.max(policy.lease));
    let write = rewrite(
        &record,
        &issuance,
        ctx.shards,
        Some(claim_due),
        record.version,
    );
    let claimed = match apply(deps, &record.key, write).await {
        Ok(version) => version,
        Err(failed) => return failed.skipped_or_error(),
    };

    let answer = deps.platform.status(&hash, ctx.poll_deadline()).await;
    let now = deps.clock.now();
    let since = issuance.wait_onchain_since().unwrap_or(issuance.created_at);
    let waited = now.since(since);
    let mut outcome = Outcome::new(Fate::Waiting);
    outcome.polled = true;

    // What the answer means for the record: a final state, or the wait before the next poll.
    let lost = |reason: String| issuance.clone().lost(reason, now);
    let last = match &answer {
        Ok(
            status @ VcStatus {
                vc_status: VcState::Onchain,
                ..
            },
        ) => {
            outcome.fate = Fate::Issued(waited);
            let anchored = Anchored {
                vc_id: status.vc_id.clone(),
                issuance_date: status.issuance_date.clone(),
                expiration_date: status.expiration_date.clone(),
            };
            let next = issuance.clone().onchain(anchored, now);
            return finish_with(deps, &record, next, ctx, claimed, outcome).await;
        }
        Ok(VcStatus {
            vc_status: VcState::Revoked,
            ..
        }) => {
            outcome.fate = Fate::Failed;
            let next = lost(
                "the platform reports the credential REVOKED: it will never be anchored".into(),
            );
            return finish_with(deps, &record, next, ctx, claimed, outcome).await;
        }
        Err(e @ PlatformError::NotFound { .. }) => {
            outcome.fate = Fate::Failed;
            let next = lost(format!("the platform does not know this credential: {e}"));
            return finish_with(deps, &record, next, ctx, claimed, outcome).await;
        }
        Ok(VcStatus {
            vc_status: VcState::WaitOnchain,
            ..
        }) => "still WAIT_ONCHAIN".to_owned(),
        Ok(VcStatus { vc_status, .. }) => {
            tracing::warn!(
                issuance_id = id.as_str(),
                state = vc_status.as_str(),
                "the platform answered a state this poller does not know; polling again later"
            );
            outcome.errors.push(ErrorKind::UnknownState);
            format!("unknown state {}", vc_status.as_str())
        }
        Err(e) => {
            tracing::debug!(issuance_id = id.as_str(), error = %e, "status poll failed; polling again later");
            outcome.errors.push(ErrorKind::Platform(e.label()));
            e.to_string()
        }
    };

    if waited >= policy.give_up_after {
        let reason = format!(
            "not ONCHAIN {} s after the platform accepted it (give-up limit {} s; last poll: \
             {last}); not re-issued automatically",
            waited.as_secs(),
            policy.give_up_after.as_secs()
        );
        tracing::error!(
            issuance_id = id.as_str(),
            core_claim_hash = hash.as_str(),
            waited_seconds = waited.as_secs(),
            "credential timed out waiting for ONCHAIN; it will not be polled or re-issued again"
        );
        outcome.fate = Fate::TimedOut;
        let next = issuance.timed_out(reason, now);
        return finish_with(deps, &record, next, ctx, claimed, outcome).await;
    }

    let issuance = if waited >= policy.alert_after {
        match issuance.clone().alerted(now) {
            Some(alerted) => {
                outcome.alerted = true;
                tracing::warn!(
                    issuance_id = id.as_str(),
                    core_claim_hash = hash.as_str(),
                    waited_seconds = waited.as_secs(),
                    alert_after_seconds = policy.alert_after.as_secs(),
                    "credential still WAIT_ONCHAIN past the alert threshold"
                );
                alerted
            }
            None => issuance,
        }
    } else {
        issuance
    };
    let wait = match &answer {
        Err(PlatformError::RateLimited {
            retry_after: Some(after),
        }) => backoff.max(*after),
        _ => backoff,
    };
    let next_due = claimed_at.plus(wait);
    if next_due == claim_due && !outcome.alerted {
        return outcome; // the claim already scheduled the next poll
    }
    finish(
        deps,
        &record,
        &issuance,
        ctx,
        Some(next_due),
        claimed,
        outcome,
    )
    .await
}

/// The reconciler: an unfinished record (`PENDING`, `UPLOAD_PENDING`) is due when its lease
/// ends. Still leased (its request extended it), it is queued again for the new end; otherwise
/// its request died or gave up and was never retried: it becomes `ABANDONED` — out of the queue,
/// counted (`IssuancesAbandoned`, alarmed) and logged with what a retry with the same
/// `Idempotency-Key` will do. Nothing is re-issued here: the subject and the sensitive data were
/// never stored, so only the caller can finish it, and the record says how.
async fn reconcile(
    deps: &PollerDeps,
    record: &Record,
    issuance: Issuance,
    ctx: &RunCtx,
) -> Outcome {
    let now = deps.clock.now();
    if issuance.lease_live(now) {
        let until = issuance.lease_until().unwrap_or(now);
        let write = rewrite(record, &issuance, ctx.shards, Some(until), record.version);
        return match apply(deps, &record.key, write).await {
            Ok(_) => Outcome::new(Fate::Skipped),
            Err(failed) => failed.skipped_or_error(),
        };
    }
    let from = issuance.status();
    let id = issuance.issuance_id.as_str().to_owned();
    let Ok(abandoned) = issuance.abandoned(now) else {
        return Outcome::new(Fate::Skipped);
    };
    let write = rewrite(record, &abandoned, ctx.shards, None, record.version);
    match apply(deps, &record.key, write).await {
        Ok(_) => {
            let from = match from {
                IssuanceStatus::UploadPending => "UPLOAD_PENDING",
                _ => "PENDING",
            };
            tracing::error!(
                issuance_id = id.as_str(),
                from,
                core_claim_hash = abandoned.core_claim_hash().unwrap_or("-"),
                reason = abandoned.reason().unwrap_or("-"),
                "unfinished issuance abandoned by its request"
            );
            deps.recorder
                .emit(ABANDONED_METRIC, Unit::Count, 1.0, &[("from", from)]);
            Outcome::new(Fate::Abandoned)
        }
        Err(failed) => failed.skipped_or_error(),
    }
}

/// Writes the poll's outcome at the claim's version.
/// [`finish`] with the final state `next`, or an error when the state machine refused it.
async fn finish_with(
    deps: &PollerDeps,
    record: &Record,
    next: Result<Issuance, InvalidTransition>,
    ctx: &RunCtx,
    claimed: Version,
    outcome: Outcome,
) -> Outcome {
    match next {
        Ok(next) => finish(deps, record, &next, ctx, None, claimed, outcome).await,
        Err(e) => {
            tracing::error!(record = %record.key, error = %e, "refused transition; the record is left as claimed");
            Outcome::error(ErrorKind::InvalidTransition)
        }
    }
}

async fn finish(
    deps: &PollerDeps,
    record: &Record,
    issuance: &Issuance,
    ctx: &RunCtx,
    due: Option<Timestamp>,
    claimed: Version,
    mut outcome: Outcome,
) -> Outcome {
    let write = rewrite(record, issuance, ctx.shards, due, claimed);
    match apply(deps, &record.key, write).await {
        Ok(_) => {
            if let Fate::Issued(waited) = outcome.fate {
                tracing::info!(
                    issuance_id = issuance.issuance_id.as_str(),
                    core_claim_hash = issuance.core_claim_hash().unwrap_or("-"),
                    wait_onchain_seconds = waited.as_secs_f64(),
                    attempts = issuance.poll_attempts(),
                    "credential ONCHAIN: issued"
                );
            }
        }
        Err(failed) => {
            let kind = match failed {
                WriteFailed::Changed => {
                    tracing::warn!(
                        issuance_id = issuance.issuance_id.as_str(),
                        "the record changed while it was polled (claim expired?); this answer is dropped"
                    );
                    ErrorKind::LeaseLost
                }
                WriteFailed::Store => ErrorKind::Store,
            };
            outcome.fate = Fate::Unknown;
            outcome.alerted = false;
            outcome.errors.push(kind);
        }
    }
    outcome
}
