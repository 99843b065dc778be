//! The key settings every key-related component reads the same way (mint, JWKS, rotation,
//! devstack, `opsctl`).

use std::time::Duration;

use super::policy::RotationPolicy;
use super::set::KeyTimings;
use super::signer::{MAX_TOKEN_LIFETIME, TokenLifetime};
use crate::config::{ConfigError, EnvReader};
use crate::secrets::SecretName;

/// The key set secret's name when `KEY_SET_SECRET_NAME` is not set.
pub const DEFAULT_KEY_SET_SECRET: &str = "partner-bundle/signing-keys";

/// Key settings read from the environment.
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// `KEY_SET_SECRET_NAME`: the secret holding the key set.
    pub secret_name: SecretName,
    /// `TOKEN_LIFETIME_SECONDS` (1–300, default 300).
    pub token_lifetime: TokenLifetime,
    /// Lifetimes, skew and cache times.
    pub timings: KeyTimings,
    /// `ROTATION_PERIOD_SECONDS` (default 90 days) and `ROTATION_LEAD_SECONDS` (default and
    /// minimum: key-set cache TTL + JWKS max-age + clock skew).
    pub policy: RotationPolicy,
}

impl KeyConfig {
    /// Reads the key settings; any bad value names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let name = r
            .optional("KEY_SET_SECRET_NAME")
            .unwrap_or_else(|| DEFAULT_KEY_SET_SECRET.to_owned());
        let secret_name = SecretName::new(&name)
            .map_err(|e| ConfigError::new("KEY_SET_SECRET_NAME", e.to_string()))?;
        let lifetime = r.seconds(
            "TOKEN_LIFETIME_SECONDS",
            MAX_TOKEN_LIFETIME.as_secs(),
            1,
            MAX_TOKEN_LIFETIME.as_secs(),
        )?;
        let token_lifetime = TokenLifetime::new(lifetime)
            .map_err(|e| ConfigError::new("TOKEN_LIFETIME_SECONDS", e.0))?;
        let timings = KeyTimings {
            max_token_lifetime: lifetime,
            clock_skew: r.seconds("CLOCK_SKEW_SECONDS", 60, 0, 300)?,
            jwks_max_age: r.seconds("JWKS_MAX_AGE_SECONDS", 300, 0, 3600)?,
            key_set_cache_ttl: r.seconds("KEY_SET_CACHE_SECONDS", 300, 1, 300)?,
        };
        let period = r.seconds("ROTATION_PERIOD_SECONDS", 90 * 86_400, 60, 366 * 86_400)?;
        let lead = r.seconds(
            "ROTATION_LEAD_SECONDS",
            timings.min_lead().as_secs(),
            0,
            30 * 86_400,
        )?;
        let policy = RotationPolicy::new(period, lead, timings)
            .map_err(|e| ConfigError::new("ROTATION_LEAD_SECONDS", e.to_string()))?;
        Ok(Self {
            secret_name,
            token_lifetime,
            timings,
            policy,
        })
    }

    /// The JWKS `max-age`, in whole seconds.
    pub fn jwks_max_age_secs(&self) -> u32 {
        u32::try_from(self.timings.jwks_max_age.as_secs()).unwrap_or(u32::MAX)
    }

    /// The default lead when none is configured.
    pub fn min_lead(&self) -> Duration {
        self.timings.min_lead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn read(pairs: &[(&str, &str)]) -> Result<KeyConfig, ConfigError> {
        let env = MapEnv::from_pairs(pairs.iter().copied());
        KeyConfig::from_env(&EnvReader::new(&env))
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = read(&[]).unwrap();
        assert_eq!(c.secret_name.as_str(), DEFAULT_KEY_SET_SECRET);
        assert_eq!(c.token_lifetime.get(), Duration::from_secs(300));
        assert_eq!(c.jwks_max_age_secs(), 300);
        assert_eq!(c.policy.lead, Duration::from_secs(660));
        assert_eq!(c.policy.period, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn a_token_lifetime_of_301_seconds_fails_naming_the_variable() {
        let err = read(&[("TOKEN_LIFETIME_SECONDS", "301")]).unwrap_err();
        assert_eq!(err.var, "TOKEN_LIFETIME_SECONDS");
        assert!(err.to_string().contains("between 1 and 300"), "{err}");
    }

    #[test]
    fn a_lead_below_the_minimum_fails_naming_the_variable() {
        let err = read(&[("ROTATION_LEAD_SECONDS", "60")]).unwrap_err();
        assert_eq!(err.var, "ROTATION_LEAD_SECONDS");
        assert!(err.problem.contains("shorter than"), "{err}");
    }

    #[test]
    fn short_local_timings_allow_a_short_lead() {
        let c = read(&[
            ("KEY_SET_CACHE_SECONDS", "2"),
            ("JWKS_MAX_AGE_SECONDS", "2"),
            ("CLOCK_SKEW_SECONDS", "1"),
            ("ROTATION_PERIOD_SECONDS", "60"),
        ])
        .unwrap();
        assert_eq!(c.policy.lead, Duration::from_secs(5));
    }
}
