//! The caller's deadline: the time a Lambda invocation has left.

use std::time::{Duration, Instant};

/// The time left to the caller (the Lambda's deadline): retries and `Retry-After` waits never go
/// past it, and no attempt is allowed to run beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// Far enough to mean "no deadline" without overflowing an `Instant`.
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Deadline {
    /// The deadline `d` from now (saturating at a far future instant).
    pub fn after(d: Duration) -> Self {
        let now = Instant::now();
        Self(
            now.checked_add(d)
                .or_else(|| now.checked_add(FAR))
                .unwrap_or(now),
        )
    }

    /// The deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Self(at)
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left; zero once the deadline has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_past(self) -> bool {
        self.remaining().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_shrinks_to_zero_and_never_below() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(d.remaining() <= Duration::from_secs(60));
        assert!(d.remaining() > Duration::from_secs(59));
        let past = Deadline::at(Instant::now());
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(past.is_past());
    }

    #[test]
    fn a_huge_duration_does_not_overflow() {
        let d = Deadline::after(Duration::MAX);
        assert!(d.remaining() > Duration::from_secs(86_400));
    }
}
