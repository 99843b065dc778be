//! The retry decision of every platform call, apart from its I/O: what one attempt's outcome
//! means, and whether an attempt and the time for it are left. The client's loop sends, logs and
//! counts; this decides, and is tested on its own.

use std::time::Duration;

/// No attempt starts with less time than this left before the deadline, and no wait is started
/// that would leave less than this for the attempt after it.
pub(super) const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(20);

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// No answer: a connection, transport or timeout failure.
    NoAnswer,
    /// An HTTP answer.
    Answered {
        /// Its status.
        status: u16,
        /// A 409 that names the existing credential (`coreClaimHash`): the platform's duplicate.
        names_duplicate: bool,
        /// Its `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// Where the call stands when an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Progress {
    /// The attempt that just ended (1 for the first).
    pub attempt: u32,
    /// The attempts allowed in all (one more once the token was refreshed).
    pub max_attempts: u32,
    /// Whether the token was already refreshed after a 401.
    pub refreshed: bool,
    /// The time left before the call's deadline.
    pub remaining: Duration,
    /// This attempt's backoff (full jitter, drawn by the caller).
    pub backoff: Duration,
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// A 2xx: read the answer.
    Accept,
    /// Mint a fresh token (ours may be signed by a key rotated away) and try again at once.
    RefreshToken,
    /// Try again after waiting this long.
    RetryAfter(Duration),
    /// Stop: the call failed.
    Stop(Stop),
}

/// Why a call stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A retryable failure, but no attempt is left.
    AttemptsExhausted,
    /// A retryable failure, but no time is left for the backoff and another attempt.
    OutOfTime,
    /// 429, and no attempt or time is left for its wait.
    RateLimited,
    /// 401 after a refreshed token, or 403.
    Unauthorized,
    /// 404.
    NotFound,
    /// 409 naming the existing credential.
    Duplicate,
    /// Any other answer the platform will not change its mind about.
    Rejected,
}

impl Outcome {
    /// Whether the platform may have acted on the request although no success reached us: a
    /// 5xx, or no answer at all (the caller refines "no answer" by whether the connection was
    /// ever made).
    pub(super) fn may_have_acted(self) -> bool {
        match self {
            Self::NoAnswer => true,
            Self::Answered { status, .. } => (500..=599).contains(&status),
        }
    }
}

/// The decision after one attempt.
pub(super) fn decide(outcome: Outcome, p: Progress) -> Decision {
    let retry = |wait: Duration, stop_when_exhausted: Stop, stop_when_late: Stop| {
        if p.attempt >= p.max_attempts {
            Decision::Stop(stop_when_exhausted)
        } else if wait + MIN_ATTEMPT_TIME > p.remaining {
            Decision::Stop(stop_when_late)
        } else {
            Decision::RetryAfter(wait)
        }
    };
    let Outcome::Answered {
        status,
        names_duplicate,
        retry_after,
    } = outcome
    else {
        return retry(p.backoff, Stop::AttemptsExhausted, Stop::OutOfTime);
    };
    match status {
        200..=299 => Decision::Accept,
        401 if !p.refreshed => Decision::RefreshToken,
        401 | 403 => Decision::Stop(Stop::Unauthorized),
        404 => Decision::Stop(Stop::NotFound),
        409 if names_duplicate => Decision::Stop(Stop::Duplicate),
        429 => retry(
            retry_after.unwrap_or(p.backoff),
            Stop::RateLimited,
            Stop::RateLimited,
        ),
        500..=599 => retry(p.backoff, Stop::AttemptsExhausted, Stop::OutOfTime),
        _ => Decision::Stop(Stop::Rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn first_of_four() -> Progress {
        Progress {
            attempt: 1,
            max_attempts: 4,
            refreshed: false,
            remaining: 5_000 * MS,
            backoff: 100 * MS,
        }
    }

    fn answered(status: u16) -> Outcome {
        Outcome::Answered {
            status,
            names_duplicate: false,
            retry_after: None,
        }
    }

    #[test]
    fn a_success_is_accepted_whatever_attempt_it_is() {
        for attempt in [1, 4] {
            let p = Progress {
                attempt,
                ..first_of_four()
            };
            assert_eq!(decide(answered(201), p), Decision::Accept);
        }
    }

    #[test]
    fn no_answer_and_server_errors_back_off_until_attempts_or_time_run_out() {
        for outcome in [Outcome::NoAnswer, answered(500), answered(503)] {
            assert_eq!(
                decide(outcome, first_of_four()),
                Decision::RetryAfter(100 * MS)
            );
            let last = Progress {
                attempt: 4,
                ..first_of_four()
            };
            assert_eq!(
                decide(outcome, last),
                Decision::Stop(Stop::AttemptsExhausted)
            );
            let late = Progress {
                remaining: 119 * MS,
                ..first_of_four()
            };
            assert_eq!(decide(outcome, late), Decision::Stop(Stop::OutOfTime));
        }
    }

    #[test]
    fn a_first_401_refreshes_the_token_and_a_second_one_or_a_403_stops() {
        assert_eq!(
            decide(answered(401), first_of_four()),
            Decision::RefreshToken
        );
        let refreshed = Progress {
            refreshed: true,
            ..first_of_four()
        };
        assert_eq!(
            decide(answered(401), refreshed),
            Decision::Stop(Stop::Unauthorized)
        );
        assert_eq!(
            decide(answered(403), first_of_four()),
            Decision::Stop(Stop::Unauthorized)
        );
    }

    #[test]
    fn a_429_waits_its_retry_after_and_stops_rate_limited_when_it_cannot() {
        let limited = |retry_after| Outcome::Answered {
            status: 429,
            names_duplicate: false,
            retry_after,
        };
        assert_eq!(
            decide(limited(Some(2_000 * MS)), first_of_four()),
            Decision::RetryAfter(2_000 * MS)
        );
        assert_eq!(
            decide(limited(None), first_of_four()),
            Decision::RetryAfter(100 * MS),
            "without Retry-After, the backoff"
        );
        assert_eq!(
            decide(limited(Some(5_000 * MS)), first_of_four()),
            Decision::Stop(Stop::RateLimited),
            "a wait past the deadline"
        );
        let last = Progress {
            attempt: 4,
            ..first_of_four()
        };
        assert_eq!(
            decide(limited(None), last),
            Decision::Stop(Stop::RateLimited)
        );
    }

    #[test]
    fn client_errors_stop_at_once_and_a_named_409_is_a_duplicate() {
        assert_eq!(
            decide(answered(404), first_of_four()),
            Decision::Stop(Stop::NotFound)
        );
        let duplicate = Outcome::Answered {
            status: 409,
            names_duplicate: true,
            retry_after: None,
        };
        assert_eq!(
            decide(duplicate, first_of_four()),
            Decision::Stop(Stop::Duplicate)
        );
        for status in [400, 409, 413, 422, 302] {
            assert_eq!(
                decide(answered(status), first_of_four()),
                Decision::Stop(Stop::Rejected),
                "{status}"
            );
        }
    }

    #[test]
    fn only_server_errors_and_lost_answers_may_have_been_acted_on() {
        assert!(Outcome::NoAnswer.may_have_acted());
        assert!(answered(502).may_have_acted());
        assert!(!answered(429).may_have_acted());
        assert!(!answered(400).may_have_acted());
    }
}
