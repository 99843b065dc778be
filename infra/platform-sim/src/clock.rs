//! The simulator's clock: wall time plus an offset tests can move forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time shifted by an adjustable offset. Cloning shares the offset.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicU64>,
}

impl SimClock {
    /// The current simulated time.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// The current simulated time in whole Unix seconds.
    #[must_use]
    pub fn now_unix(&self) -> i64 {
        unix_secs(self.now())
    }

    /// Moves the simulated time forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far the clock has been moved forward in total.
    #[must_use]
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Whole Unix seconds of `t` (negative before 1970).
#[must_use]
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Unix milliseconds of `t` (0 before 1970).
#[must_use]
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 text of `t` in UTC, to the second.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(unix_secs(t))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
