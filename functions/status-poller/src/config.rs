//! The poller's configuration: how hard to poll, when to alert, when to give up.

use shared::issuance::{PollShards, SweepEvery};
use std::time::Duration;

use shared::config::{ConfigError, EnvReader};
use shared::keys::{KeyConfig, PartnerId};
use shared::platform::PlatformConfig;

/// The most records polled at once.
pub const MAX_CONCURRENCY: usize = 256;

/// How the poller treats each record and each run. `PollPolicy::default()` holds the documented
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollPolicy {
    /// `POLL_CONCURRENCY` (default 32, 1–256): status calls in flight at once.
    pub concurrency: usize,
    /// `POLL_BACKOFF_INITIAL_SECONDS` (default 1): the wait after a record's first poll.
    pub backoff_initial: Duration,
    /// `POLL_BACKOFF_MAX_SECONDS` (default 30): the wait doubles after every poll up to this.
    pub backoff_max: Duration,
    /// `WAIT_ONCHAIN_ALERT_SECONDS` (default 300): a credential still `WAIT_ONCHAIN` this long
    /// after the platform accepted it raises one warning and one `WaitOnchainAlerts`.
    pub alert_after: Duration,
    /// `WAIT_ONCHAIN_GIVE_UP_SECONDS` (default 3600): a credential still not `ONCHAIN` this long
    /// after acceptance becomes `TIMED_OUT` and is never polled or re-issued again.
    pub give_up_after: Duration,
    /// `POLL_LEASE_SECONDS` (default 10, or the platform request timeout + 5 s when that is
    /// longer): how long a claimed record is kept out of every other run's sight. A run that
    /// dies mid-poll leaves the record due again when the lease ends.
    pub lease: Duration,
    /// `POLL_SAFETY_MARGIN_MS` (default 2000): kept free before the Lambda deadline for the last
    /// writes, the summary and the metrics.
    pub safety_margin: Duration,
    /// How long a run may take when the invocation carries no deadline (local runs): 60 s.
    pub default_run_time: Duration,
    /// Due records read per index query (default 200).
    pub page_size: usize,
    /// `POLL_SHARDS` (default 8, 1–64): the shard a record goes back to after a claim, and the
    /// shards a routine run lists (with the legacy single queue).
    pub shards: PollShards,
    /// `POLL_SWEEP_MINUTES` (default 10, 1–60): the runs that start in the first minute of every
    /// such window list all 64 possible shards, so that lowering `POLL_SHARDS` strands nothing
    /// (a record left above the new count waits at most this long more).
    pub sweep_every: SweepEvery,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            concurrency: 32,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            alert_after: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
            lease: Duration::from_secs(10),
            safety_margin: Duration::from_millis(2000),
            default_run_time: Duration::from_secs(60),
            page_size: 200,
            shards: PollShards::default(),
            sweep_every: SweepEvery::default(),
        }
    }
}

impl PollPolicy {
    /// The wait after a record's `attempt`-th poll (1-based): `initial · 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.backoff_initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }

    /// Reads the policy. `request_timeout` is the platform's per-attempt timeout: the lease must
    /// outlast one poll.
    pub fn from_env(r: &EnvReader<'_>, request_timeout: Duration) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let concurrency: usize = r.parsed_or("POLL_CONCURRENCY", defaults.concurrency)?;
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::new(
                "POLL_CONCURRENCY",
                format!("must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"),
            ));
        }
        let backoff_initial = r.seconds("POLL_BACKOFF_INITIAL_SECONDS", 1, 1, 3600)?;
        let backoff_max = r.seconds("POLL_BACKOFF_MAX_SECONDS", 30, 1, 3600)?;
        if backoff_max < backoff_initial {
            return Err(ConfigError::new(
                "POLL_BACKOFF_MAX_SECONDS",
                "must not be shorter than POLL_BACKOFF_INITIAL_SECONDS",
            ));
        }
        let alert_after = r.seconds("WAIT_ONCHAIN_ALERT_SECONDS", 300, 1, 7 * 86_400)?;
        let give_up_after = r.seconds("WAIT_ONCHAIN_GIVE_UP_SECONDS", 3600, 1, 30 * 86_400)?;
        if give_up_after <= alert_after {
            return Err(ConfigError::new(
                "WAIT_ONCHAIN_GIVE_UP_SECONDS",
                "must be longer than WAIT_ONCHAIN_ALERT_SECONDS (the alert comes first)",
            ));
        }
        let default_lease = defaults
            .lease
            .max(request_timeout + Duration::from_secs(5))
            .as_secs()
            .max(1);
        let lease = r.seconds("POLL_LEASE_SECONDS", default_lease, 1, 900)?;
        if lease < request_timeout + Duration::from_secs(1) {
            return Err(ConfigError::new(
                "POLL_LEASE_SECONDS",
                "must outlast one platform request (PLATFORM_REQUEST_TIMEOUT_MS) by at least 1 s",
            ));
        }
        let margin_ms: u64 = r.parsed_or("POLL_SAFETY_MARGIN_MS", 2000)?;
        if !(100..=60_000).contains(&margin_ms) {
            return Err(ConfigError::new(
                "POLL_SAFETY_MARGIN_MS",
                format!("must be between 100 and 60000 milliseconds, got {margin_ms}"),
            ));
        }
        Ok(Self {
            concurrency,
            backoff_initial,
            backoff_max,
            alert_after,
            give_up_after,
            lease,
            safety_margin: Duration::from_millis(margin_ms),
            shards: PollShards::from_env(r)?,
            sweep_every: SweepEvery::from_env(r)?,
            ..defaults
        })
    }
}

/// Everything the Lambda reads at start (besides `TABLE_NAME` and `METRICS_NAMESPACE`).
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// The polling policy.
    pub policy: PollPolicy,
    /// `PLATFORM_*`: where the platform is and how patient to be with it.
    pub platform: PlatformConfig,
    /// `KEY_SET_SECRET_NAME`, `TOKEN_LIFETIME_SECONDS`, …: the keys our Partner JWTs are signed with.
    pub keys: KeyConfig,
    /// `PARTNER_ID` (required): the `partnerId` our Partner JWTs carry.
    pub partner_id: PartnerId,
    /// `POLLER_TOKEN_CACHE_ENTRIES` (default 4, 1–1000): Partner JWTs kept for reuse. Status calls
    /// carry a token without a user, so one cached token is all the poller needs; a few leave
    /// room for a key rotation's overlap.
    pub token_cache_entries: usize,
}

impl PollerConfig {
    /// Reads the configuration; a bad value names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let platform = PlatformConfig::from_env(r)?;
        let policy = PollPolicy::from_env(r, platform.request_timeout)?;
        let keys = KeyConfig::from_env(r)?;
        let partner_id = PartnerId::new(&r.required("PARTNER_ID")?)
            .map_err(|e| ConfigError::new("PARTNER_ID", e.0))?;
        let token_cache_entries: usize = r.parsed_or("POLLER_TOKEN_CACHE_ENTRIES", 4)?;
        if !(1..=1_000).contains(&token_cache_entries) {
            return Err(ConfigError::new(
                "POLLER_TOKEN_CACHE_ENTRIES",
                "must be between 1 and 1000",
            ));
        }
        Ok(Self {
            policy,
            platform,
            keys,
            partner_id,
            token_cache_entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use shared::config::MapEnv;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<PollerConfig, ConfigError> {
        let mut all = vec![
            ("PLATFORM_BASE_URL", "https://platform.example"),
            ("PARTNER_ID", "partner-test"),
        ];
        all.extend_from_slice(pairs);
        let env = MapEnv::from_pairs(all);
        PollerConfig::from_env(&EnvReader::new(&env))
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let c = read(&[]).unwrap();
        assert_eq!(c.policy, PollPolicy::default());
        assert_eq!(c.policy.concurrency, 32);
        assert_eq!(c.policy.alert_after, Duration::from_secs(300));
        assert_eq!(c.policy.give_up_after, Duration::from_secs(3600));
    }

    #[test]
    fn the_backoff_doubles_from_one_second_up_to_thirty() {
        let p = PollPolicy::default();
        let waits: Vec<u64> = (1..=8).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(p.backoff(0), Duration::from_secs(1));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, value) in [
            ("POLL_CONCURRENCY", "0"),
            ("POLL_CONCURRENCY", "many"),
            ("POLL_BACKOFF_INITIAL_SECONDS", "0"),
            ("POLL_BACKOFF_MAX_SECONDS", "100000"),
            ("WAIT_ONCHAIN_ALERT_SECONDS", "0"),
            ("POLL_SAFETY_MARGIN_MS", "5"),
            ("POLL_LEASE_SECONDS", "0"),
        ] {
            assert_eq!(read(&[(var, value)]).unwrap_err().var, var, "{var}={value}");
        }
        assert_eq!(
            read(&[("PARTNER_ID", "has space")]).unwrap_err().var,
            "PARTNER_ID"
        );
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let err = read(&[
            ("POLL_BACKOFF_INITIAL_SECONDS", "10"),
            ("POLL_BACKOFF_MAX_SECONDS", "5"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "POLL_BACKOFF_MAX_SECONDS");
        let err = read(&[
            ("WAIT_ONCHAIN_ALERT_SECONDS", "600"),
            ("WAIT_ONCHAIN_GIVE_UP_SECONDS", "600"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "WAIT_ONCHAIN_GIVE_UP_SECONDS");
        let err = read(&[
            ("PLATFORM_REQUEST_TIMEOUT_MS", "8000"),
            ("POLL_LEASE_SECONDS", "8"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "POLL_LEASE_SECONDS");
    }

    #[test]
    fn the_default_lease_outlasts_a_long_request_timeout() {
        let c = read(&[("PLATFORM_REQUEST_TIMEOUT_MS", "20000")]).unwrap();
        assert_eq!(c.policy.lease, Duration::from_secs(25));
    }
}
