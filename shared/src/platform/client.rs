//! The HTTP client: one `reqwest::Client`, the retry loop and the answer mapping.

use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, Url};

use super::config::PlatformConfig;
use super::deadline::Deadline;
use super::error::PlatformError;
use super::retry::{Decision, MIN_ATTEMPT_TIME, Outcome, Progress, Stop, decide};
use super::tokens::PartnerTokens;
use super::types::{
    ErrorWire, IssueOnBehalf, Issued, IssuedWire, OnDuplicate, StatusWire, StorageId, UploadWire,
    VcState, VcStatus,
};
use crate::ecies::Curve;
use crate::telemetry::{Recorder, Unit};

/// The header carrying our Partner JWT.
pub const PARTNER_AUTH_HEADER: &str = "x-partner-auth";
/// The header carrying the platform's request id, logged with every error.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Metric: 401/403 answers from the platform, by `status`.
pub const AUTH_FAILURES_METRIC: &str = "PlatformAuthFailures";
/// Metric: failed platform attempts, by `status` (HTTP status, `timeout`, `connect`, `network`).
pub const UPSTREAM_ERRORS_METRIC: &str = "UpstreamErrors";

/// Largest success body read (the platform's answers are a few hundred bytes).
const MAX_SUCCESS_BODY: usize = 1024 * 1024;
/// Largest error body read; the rest is dropped.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest platform message kept in an error or a log line.
const MAX_MESSAGE_CHARS: usize = 300;

/// The outbound client of the credential platform (docs/architecture.md §6).
///
/// Build it once per process: it holds one connection pool. Every call takes the caller's
/// [`Deadline`]; attempts are capped to the time left and retries stop before it.
pub struct PlatformClient {
    /// Built on first use: making the TLS client (rustls with the platform certificate verifier)
    /// is the costliest part of a cold start, and a container may never call the platform.
    http: std::sync::OnceLock<reqwest::Client>,
    config: PlatformConfig,
    tokens: Arc<dyn PartnerTokens>,
    recorder: Recorder,
}

impl std::fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformClient")
            .field("base_url", &self.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Issue,
    Status,
    Upload,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Issue => "issue_on_behalf",
            Self::Status => "status",
            Self::Upload => "upload_ciphertext",
        }
    }
}

/// One attempt's answer.
struct Answer {
    status: u16,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// One attempt that got no answer: what to count it as and how to describe it.
struct Failure {
    metric: &'static str,
    detail: String,
    /// Whether the request may have reached the platform (anything but a refused connection).
    may_have_reached: bool,
}

impl PlatformClient {
    /// A client for `config`, with `tokens` for the `x-partner-auth` header and `recorder` for
    /// the error metrics. TLS is rustls with certificate verification always on (the platform
    /// verifier of the OS roots); plain HTTP only to loopback in local mode; redirects are not
    /// followed (a redirect would carry our token elsewhere).
    pub fn new(
        config: PlatformConfig,
        tokens: Arc<dyn PartnerTokens>,
        recorder: Recorder,
    ) -> Result<Self, PlatformError> {
        config
            .validate()
            .map_err(|e| PlatformError::Config(e.to_string()))?;
        Ok(Self {
            http: std::sync::OnceLock::new(),
            config,
            tokens,
            recorder,
        })
    }

    /// The HTTP client, built on the first call (the same settings every time).
    fn http(&self) -> Result<&reqwest::Client, PlatformError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let built = super::config::outbound_client(self.config.local_ca.as_ref())
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.request_timeout)
            .user_agent(concat!("partner-bundle/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PlatformError::Config(format!("could not build the HTTP client: {e}")))?;
        // A concurrent first call may have won the race; either client is as good.
        Ok(self.http.get_or_init(|| built))
    }

    /// The settings it was built with.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// `POST /credentials/issue-on-behalf` for the user `email` (carried in the token).
    ///
    /// The call is not idempotent: once an attempt may have been received without its answer
    /// reaching us (a timeout, a broken connection, a 5xx), every further attempt is sent with
    /// `onDuplicate: "ignore"`, so that a retry never revokes what the first attempt issued; the
    /// answer then says `after_unconfirmed`, and the caller tells "our first attempt created it"
    /// from "the user already had it" (see the issue function). A refused connection or a 429
    /// reached nothing and is retried as it was.
    pub async fn issue_on_behalf(
        &self,
        email: &str,
        req: &IssueOnBehalf,
        deadline: Deadline,
    ) -> Result<Issued, PlatformError> {
        let url = self.endpoint("/credentials/issue-on-behalf", None);
        let encode = |r: &IssueOnBehalf| {
            serde_json::to_vec(r)
                .map_err(|e| PlatformError::Protocol(format!("could not encode the request: {e}")))
        };
        let first = encode(req)?;
        let safe = encode(&IssueOnBehalf {
            on_duplicate: OnDuplicate::Ignore,
            ..req.clone()
        })?;
        let build = |http: &reqwest::Client, unconfirmed: bool| {
            http.post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(if unconfirmed {
                    safe.clone()
                } else {
                    first.clone()
                })
        };
        let (mut issued, unconfirmed) = self
            .call(Op::Issue, Some(email), deadline, build, parse_issued)
            .await?;
        issued.after_unconfirmed = unconfirmed;
        Ok(issued)
    }

    /// `GET /credentials/status?coreClaimHash=…`, with a token that names no user.
    pub async fn status(
        &self,
        core_claim_hash: &str,
        deadline: Deadline,
    ) -> Result<VcStatus, PlatformError> {
        let url = self.endpoint("/credentials/status", Some(core_claim_hash));
        let build = |http: &reqwest::Client, _: bool| http.get(url.clone());
        let ((status, echoed), _) = self
            .call(Op::Status, None, deadline, build, parse_status)
            .await?;
        same_credential(core_claim_hash, echoed.as_deref())?;
        Ok(status)
    }

    /// `POST /dstorage/ciphertexts?coreClaimHash=…` with the raw ciphertext as
    /// `application/octet-stream` (no base64 inflation: a 5 MB ciphertext stays 5 MB).
    pub async fn upload_ciphertext(
        &self,
        email: &str,
        core_claim_hash: &str,
        ciphertext: &[u8],
        deadline: Deadline,
    ) -> Result<StorageId, PlatformError> {
        let url = self.endpoint("/dstorage/ciphertexts", Some(core_claim_hash));
        let build = |http: &reqwest::Client, _: bool| {
            http.post(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(ciphertext.to_vec())
        };
        self.call(Op::Upload, Some(email), deadline, build, parse_upload)
            .await
            .map(|(stored, _)| stored)
    }

    /// `base_url` + `path` (keeping the base's own path), with `?coreClaimHash=` when given.
    fn endpoint(&self, path: &str, core_claim_hash: Option<&str>) -> Url {
        let mut url = self.config.base_url.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        if let Some(hash) = core_claim_hash {
            url.query_pairs_mut().append_pair("coreClaimHash", hash);
        }
        url
    }

    /// The retry loop shared by every call. `build` is told whether an earlier attempt may have
    /// been received without its answer reaching us; the answer says the same.
    async fn call<T, B>(
        &self,
        op: Op,
        email: Option<&str>,
        deadline: Deadline,
        build: B,
        parse: fn(&[u8]) -> Result<T, String>,
    ) -> Result<(T, bool), PlatformError>
    where
        B: Fn(&reqwest::Client, bool) -> RequestBuilder + Sync,
    {
        let operation = op.name();
        let mut unconfirmed = false;
        let mut attempts: u32 = 0;
        let mut refreshed = false;
        let mut last = String::from("no time left before the deadline");
        loop {
            let remaining = deadline.remaining();
            if remaining < MIN_ATTEMPT_TIME {
                return Err(self.give_up(op, attempts, last));
            }
            let token = match self.tokens.token(email).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(operation, error = %e, "could not mint the outbound Partner JWT");
                    return Err(e);
                }
            };
            let mut auth = HeaderValue::from_str(token.expose()).map_err(|_| {
                PlatformError::Token("the minted token is not a valid header value".to_owned())
            })?;
            auth.set_sensitive(true);
            let per_attempt = self.config.request_timeout.min(remaining);
            let request = build(self.http()?, unconfirmed)
                .header(PARTNER_AUTH_HEADER, auth)
                .timeout(per_attempt);
            attempts += 1;
            let attempt = attempts;
            let max_total = self.config.max_attempts + u32::from(refreshed);
            let clean = |text: &str| scrub(text, email, token.expose());

            let answer = match tokio::time::timeout(per_attempt, send(request)).await {
                Ok(Ok(answer)) => Some(answer),
                Ok(Err(SendError::Fatal(detail))) => {
                    tracing::error!(operation, attempt, error = %detail, "platform request could not be built");
                    return Err(PlatformError::Config(detail));
                }
                Ok(Err(SendError::Transient(failure))) => {
                    unconfirmed |= failure.may_have_reached;
                    self.failed_attempt(op, attempt, failure.metric, None, &failure.detail);
                    last = failure.detail;
                    None
                }
                Err(_) => {
                    unconfirmed = true;
                    let detail = format!("timed out after {} ms", per_attempt.as_millis());
                    self.failed_attempt(op, attempt, "timeout", None, &detail);
                    last = detail;
                    None
                }
            };
            let progress = |outcome| {
                decide(
                    outcome,
                    Progress {
                        attempt,
                        max_attempts: max_total,
                        refreshed,
                        remaining: deadline.remaining(),
                        backoff: self.backoff_delay(attempt),
                    },
                )
            };
            let Some(Answer {
                status,
                request_id,
                retry_after,
                body,
            }) = answer
            else {
                match progress(Outcome::NoAnswer) {
                    Decision::RetryAfter(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Decision::Stop(Stop::OutOfTime) => {
                        return Err(self.give_up(
                            op,
                            attempt,
                            format!("{last}; no time left for another attempt"),
                        ));
                    }
                    _ => return Err(self.give_up(op, attempt, last)),
                }
            };
            let rid = request_id.as_deref().unwrap_or("-");
            let success = (200..300).contains(&status);
            let wire: ErrorWire = if success {
                ErrorWire::default()
            } else {
                serde_json::from_slice(&body).unwrap_or_default()
            };
            let message = clean(wire.message.as_deref().unwrap_or(""));
            let outcome = Outcome::Answered {
                status,
                names_duplicate: status == 409 && wire.core_claim_hash.is_some(),
                retry_after,
            };
            unconfirmed |= outcome.may_have_acted();
            // A success needs no backoff: no jitter is drawn for it.
            let decision = if success {
                Decision::Accept
            } else {
                progress(outcome)
            };
            if matches!(status, 401 | 403) {
                self.count(AUTH_FAILURES_METRIC, &status.to_string());
            }
            if !matches!(
                decision,
                Decision::Accept | Decision::Stop(Stop::NotFound | Stop::Duplicate)
            ) {
                let id = request_id.as_deref();
                self.failed_attempt(op, attempt, &status.to_string(), id, &message);
            }
            last = match &request_id {
                Some(id) if status >= 500 => format!("HTTP {status} (request id {id})"),
                _ => format!("HTTP {status}"),
            };
            match decision {
                Decision::Accept => {
                    return match parse(&body) {
                        Ok(v) => {
                            tracing::debug!(
                                operation,
                                attempts,
                                status = %status,
                                request_id = rid,
                                "platform call succeeded"
                            );
                            Ok((v, unconfirmed))
                        }
                        Err(problem) => {
                            let problem = clean(&problem);
                            tracing::error!(operation, attempt, status = %status, request_id = rid, error = %problem,
                            "platform answer could not be parsed");
                            self.count(UPSTREAM_ERRORS_METRIC, "unparsable");
                            Err(PlatformError::Protocol(problem))
                        }
                    };
                }
                Decision::RefreshToken => {
                    // Our cached token may be stale (its key rotated away): once, afresh.
                    self.tokens.forget(email);
                    refreshed = true;
                }
                Decision::RetryAfter(wait) => tokio::time::sleep(wait).await,
                Decision::Stop(Stop::AttemptsExhausted) => {
                    return Err(self.give_up(op, attempt, last));
                }
                Decision::Stop(Stop::OutOfTime) => {
                    return Err(self.give_up(
                        op,
                        attempt,
                        format!("{last}; no time left for another attempt"),
                    ));
                }
                Decision::Stop(Stop::RateLimited) => {
                    tracing::warn!(
                        operation,
                        attempts,
                        request_id = rid,
                        retry_after_ms = retry_after
                            .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                        "rate limited by the platform; giving up (no attempt or time left for its Retry-After)"
                    );
                    return Err(PlatformError::RateLimited { retry_after });
                }
                Decision::Stop(Stop::Unauthorized) => {
                    return Err(PlatformError::Unauthorized { status, request_id });
                }
                Decision::Stop(Stop::NotFound) => {
                    tracing::info!(operation, attempt, status = %status, request_id = rid, error = %message,
                        "platform answered not found");
                    return Err(PlatformError::NotFound { message });
                }
                Decision::Stop(Stop::Duplicate) => {
                    let core_claim_hash = wire.core_claim_hash.unwrap_or_default();
                    tracing::info!(
                        operation,
                        attempt,
                        status = %status,
                        request_id = rid,
                        core_claim_hash = core_claim_hash.as_str(),
                        "platform answered duplicate"
                    );
                    return Err(PlatformError::Duplicate {
                        core_claim_hash,
                        cak_public_key: wire.cak_public_key,
                        user_uuid: wire.user_uuid,
                        after_unconfirmed: unconfirmed,
                    });
                }
                Decision::Stop(Stop::Rejected) => {
                    return Err(PlatformError::Rejected {
                        status,
                        message,
                        request_id,
                    });
                }
            }
        }
    }

    /// Full jitter: uniform in `[0, min(max_backoff, base_backoff · 2^(attempt-1))]`.
    fn backoff_delay(&self, attempt: u32) -> Duration {
        let cap = backoff_cap(
            self.config.base_backoff,
            self.config.max_backoff,
            attempt.saturating_sub(1),
        );
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if cap_nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(OsRng.next_u64() % cap_nanos.saturating_add(1))
    }

    fn give_up(&self, op: Op, attempts: u32, last: String) -> PlatformError {
        tracing::warn!(
            operation = op.name(),
            attempts,
            error = %last,
            "platform unavailable; giving up"
        );
        PlatformError::Unavailable { attempts, last }
    }

    fn failed_attempt(
        &self,
        op: Op,
        attempt: u32,
        status: &str,
        request_id: Option<&str>,
        message: &str,
    ) {
        tracing::warn!(
            operation = op.name(),
            attempt,
            status,
            request_id = request_id.unwrap_or("-"),
            error = message,
            "platform call failed"
        );
        self.count(UPSTREAM_ERRORS_METRIC, status);
    }

    fn count(&self, metric: &str, status: &str) {
        self.recorder
            .emit(metric, Unit::Count, 1.0, &[("status", status)]);
    }
}

/// `min(max, base · 2^n)`, saturating.
fn backoff_cap(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 2u32.checked_pow(n).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

enum SendError {
    /// Worth another attempt: timeouts, connection and transport errors.
    Transient(Failure),
    /// Our own request is malformed.
    Fatal(String),
}

async fn send(request: RequestBuilder) -> Result<Answer, SendError> {
    let response = request.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response.headers();
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(char::is_ascii_graphic)
                .take(128)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty());
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let limit = if (200..300).contains(&status) {
        MAX_SUCCESS_BODY
    } else {
        MAX_ERROR_BODY
    };
    let body = read_limited(response, limit).await.map_err(classify)?;
    Ok(Answer {
        status,
        request_id,
        retry_after,
        body,
    })
}

fn classify(e: reqwest::Error) -> SendError {
    if e.is_builder() {
        return SendError::Fatal(describe(&e.without_url()));
    }
    let metric = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "network"
    };
    let may_have_reached = !e.is_connect();
    SendError::Transient(Failure {
        metric,
        detail: describe(&e.without_url()),
        may_have_reached,
    })
}

/// The error and its causes on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::chain(e)
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// `Retry-After` in delay-seconds (the form the platform uses); an HTTP date is not honoured.
fn parse_retry_after(text: &str) -> Option<Duration> {
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The platform's text with the user's e-mail and our token removed, cut to a sane length.
fn scrub(text: &str, email: Option<&str>, token: &str) -> String {
    let mut out = text.replace(token, "[REDACTED]");
    if let Some(email) = email.filter(|e| !e.is_empty()) {
        out = out.replace(email, "[REDACTED]");
        let lower = email.to_ascii_lowercase();
        if lower != email {
            out = out.replace(&lower, "[REDACTED]");
        }
    }
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn parse_issued(body: &[u8]) -> Result<Issued, String> {
    let wire: IssuedWire = serde_json::from_slice(body)
        .map_err(|e| format!("issue-on-behalf answer is not the expected JSON: {e}"))?;
    let cak_curve = match wire.cak_curve.as_deref() {
        None => None,
        Some(name) => Some(
            name.parse::<Curve>()
                .map_err(|_| format!("unknown cakCurve {name:?}"))?,
        ),
    };
    Ok(Issued {
        core_claim_hash: wire.core_claim_hash,
        credential_id: wire.credential_id,
        user_uuid: wire.user_uuid,
        cak_public_key: wire.cak_public_key,
        cak_curve,
        after_unconfirmed: false,
    })
}

/// The documented status answer does not name the credential; one that does must name the one
/// asked about.
fn same_credential(asked: &str, echoed: Option<&str>) -> Result<(), PlatformError> {
    match echoed {
        Some(other) if other != asked => Err(PlatformError::Protocol(
            "the status answer names another credential".to_owned(),
        )),
        _ => Ok(()),
    }
}

fn parse_status(body: &[u8]) -> Result<(VcStatus, Option<String>), String> {
    let wire: StatusWire = serde_json::from_slice(body)
        .map_err(|e| format!("status answer is not the expected JSON: {e}"))?;
    let status = VcStatus {
        vc_status: VcState::parse(&wire.vc_status),
        issuance_date: wire.issuance_date,
        expiration_date: wire.expiration_date,
        vc_id: wire.vc_id,
        issuer_id: wire.issuer_id,
        scheme_id: wire.scheme_id,
        vc_dstorage_id: wire.vc_dstorage_id,
    };
    Ok((status, wire.core_claim_hash))
}

fn parse_upload(body: &[u8]) -> Result<StorageId, String> {
    let wire: UploadWire = serde_json::from_slice(body)
        .map_err(|e| format!("upload answer is not the expected JSON: {e}"))?;
    wire.storage_id
        .or(wire.id)
        .filter(|id| !id.is_empty())
        .map(StorageId)
        .ok_or_else(|| "upload answer has no storageId".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_cap_doubles_up_to_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        assert_eq!(backoff_cap(base, max, 0), Duration::from_millis(100));
        assert_eq!(backoff_cap(base, max, 1), Duration::from_millis(200));
        assert_eq!(backoff_cap(base, max, 3), Duration::from_millis(800));
        assert_eq!(backoff_cap(base, max, 4), max);
        assert_eq!(backoff_cap(base, max, 200), max);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn scrubbing_removes_the_email_and_the_token_and_bounds_the_length() {
        let text = "user Dana@Example.com / dana@example.com with eyJtoken refused";
        let out = scrub(text, Some("Dana@Example.com"), "eyJtoken");
        assert!(!out.contains("Dana@Example.com"), "{out}");
        assert!(!out.contains("dana@example.com"), "{out}");
        assert!(!out.contains("eyJtoken"), "{out}");
        let long = "x".repeat(5000);
        assert!(scrub(&long, None, "t").chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert_eq!(scrub("a\nb", None, "t"), "a b");
    }

    #[test]
    fn answers_are_parsed_and_bad_ones_refused() {
        let issued = parse_issued(
            br#"{"coreClaimHash":"0x1","credentialId":"p","userUuid":"u","cakPublicKey":"04ab","cakCurve":"secp256k1"}"#,
        )
        .unwrap();
        assert_eq!(issued.cak_curve, Some(Curve::Secp256k1));
        assert!(parse_issued(br#"{"coreClaimHash":"0x1"}"#).is_err());
        assert!(parse_issued(br#"{"coreClaimHash":"0x1","credentialId":"p","userUuid":"u","cakCurve":"ed25519"}"#).is_err());
        let (status, echoed) = parse_status(
            br#"{"coreClaimHash":"0x1","vcStatus":"ONCHAIN","issuanceDate":"2026-01-01T00:00:00Z","vcId":"urn:x"}"#,
        )
        .unwrap();
        assert_eq!(status.vc_status, VcState::Onchain);
        assert_eq!(echoed.as_deref(), Some("0x1"));
        // The documented answer: no coreClaimHash, the other members, and unknown ones ignored.
        let (status, echoed) = parse_status(
            br#"{"vcStatus":"ONCHAIN","issuanceDate":"2026-01-01T00:00:00Z","expirationDate":"2027-01-01T00:00:00Z","vcId":"urn:x","issuerId":"iss-1","schemeId":"kyc-basic","vcDstorageId":"vcd-1","somethingNew":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(echoed, None);
        assert_eq!(
            status,
            VcStatus {
                vc_status: VcState::Onchain,
                issuance_date: Some("2026-01-01T00:00:00Z".into()),
                expiration_date: Some("2027-01-01T00:00:00Z".into()),
                vc_id: Some("urn:x".into()),
                issuer_id: Some("iss-1".into()),
                scheme_id: Some("kyc-basic".into()),
                vc_dstorage_id: Some("vcd-1".into()),
            }
        );
        assert!(parse_status(br#"{"issuanceDate":"2026-01-01T00:00:00Z"}"#).is_err());
        assert!(
            same_credential("0x1", None).is_ok() && same_credential("0x1", Some("0x1")).is_ok()
        );
        assert!(matches!(
            same_credential("0x1", Some("0x2")),
            Err(PlatformError::Protocol(_))
        ));
        assert_eq!(
            parse_upload(br#"{"id":"a","storageId":"s"}"#).unwrap(),
            StorageId("s".into())
        );
        assert!(parse_upload(b"{}").is_err());
        assert!(parse_upload(b"<html>").is_err());
    }
}
