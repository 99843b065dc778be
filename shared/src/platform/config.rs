//! Where the platform is and how patient to be with it.

use std::net::IpAddr;
use std::time::Duration;

pub use reqwest::Url;

use crate::config::{ConfigError, EnvReader};

/// The variable naming the platform's base URL.
pub const BASE_URL_VAR: &str = "PLATFORM_BASE_URL";

/// The outbound client's settings.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// `PLATFORM_BASE_URL`: `https://…`, or `http://` to a loopback host in local mode. A path
    /// prefix is kept (`https://api.example.com/v2` → `https://api.example.com/v2/credentials/…`).
    pub base_url: Url,
    /// `PLATFORM_LOCAL_MODE` (default false): allows plain HTTP, and only to loopback.
    pub local_mode: bool,
    /// `PLATFORM_CONNECT_TIMEOUT_MS` (default 2000).
    pub connect_timeout: Duration,
    /// `PLATFORM_REQUEST_TIMEOUT_MS` (default 5000): one attempt, connect to last body byte.
    pub request_timeout: Duration,
    /// `PLATFORM_MAX_ATTEMPTS` (default 4, 1–10): tries of one call on 5xx, timeouts,
    /// connection errors and 429.
    pub max_attempts: u32,
    /// `PLATFORM_BASE_BACKOFF_MS` (default 100): the first retry waits up to this long.
    pub base_backoff: Duration,
    /// `PLATFORM_MAX_BACKOFF_MS` (default 2000): no retry waits longer (before `Retry-After`).
    pub max_backoff: Duration,
}

impl PlatformConfig {
    /// Settings for `base_url` with the defaults, checked like [`PlatformConfig::from_env`].
    pub fn new(base_url: &str, local_mode: bool) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: check_base_url(base_url, local_mode)?,
            local_mode,
            connect_timeout: Duration::from_millis(2000),
            request_timeout: Duration::from_millis(5000),
            max_attempts: 4,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(2000),
        })
    }

    /// Reads the settings; a bad value (or a base URL we may not talk to) names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let local_mode = r.flag("PLATFORM_LOCAL_MODE", false)?;
        let base_url = check_base_url(&r.required(BASE_URL_VAR)?, local_mode)?;
        let millis = |name: &str, default: u64, min: u64, max: u64| -> Result<Duration, _> {
            let v: u64 = r.parsed_or(name, default)?;
            if v < min || v > max {
                return Err(ConfigError::new(
                    name,
                    format!("must be between {min} and {max} milliseconds, got {v}"),
                ));
            }
            Ok(Duration::from_millis(v))
        };
        let connect_timeout = millis("PLATFORM_CONNECT_TIMEOUT_MS", 2000, 1, 60_000)?;
        let request_timeout = millis("PLATFORM_REQUEST_TIMEOUT_MS", 5000, 1, 300_000)?;
        let max_attempts: u32 = r.parsed_or("PLATFORM_MAX_ATTEMPTS", 4)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::new(
                "PLATFORM_MAX_ATTEMPTS",
                format!("must be between 1 and 10, got {max_attempts}"),
            ));
        }
        let base_backoff = millis("PLATFORM_BASE_BACKOFF_MS", 100, 1, 60_000)?;
        let max_backoff = millis("PLATFORM_MAX_BACKOFF_MS", 2000, 1, 300_000)?;
        if max_backoff < base_backoff {
            return Err(ConfigError::new(
                "PLATFORM_MAX_BACKOFF_MS",
                "must not be shorter than PLATFORM_BASE_BACKOFF_MS",
            ));
        }
        Ok(Self {
            base_url,
            local_mode,
            connect_timeout,
            request_timeout,
            max_attempts,
            base_backoff,
            max_backoff,
        })
    }

    /// Checks settings built by hand (the fields are public) the way `from_env` does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base_url(self.base_url.as_str(), self.local_mode)?;
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                "PLATFORM_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "PLATFORM_REQUEST_TIMEOUT_MS",
                "timeouts must be positive",
            ));
        }
        Ok(())
    }
}

/// Parses the base URL and refuses what the outbound rules forbid: any scheme but `https`, and
/// `http` unless in local mode and to a loopback host (127.0.0.0/8, `localhost`, `[::1]`).
/// Credentials in the URL are refused too (they would end up in logs and error messages).
pub fn check_base_url(text: &str, local_mode: bool) -> Result<Url, ConfigError> {
    let err = |problem: String| ConfigError::new(BASE_URL_VAR, problem);
    let url = Url::parse(text.trim()).map_err(|e| err(format!("is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("must not carry credentials".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not have a query or a fragment".to_owned()));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(err("must name a host".to_owned()));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if !local_mode => Err(err(
            "must use https (plain http is allowed only to loopback with PLATFORM_LOCAL_MODE=true)"
                .to_owned(),
        )),
        "http" if is_loopback(host) => Ok(url),
        "http" => Err(err(format!(
            "must use https: plain http is allowed only to loopback (127.0.0.0/8, localhost, [::1]), not {host:?}"
        ))),
        other => Err(err(format!("must use https, not {other:?}"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn read(pairs: &[(&str, &str)]) -> Result<PlatformConfig, ConfigError> {
        let env = MapEnv::from_pairs(pairs.iter().copied());
        PlatformConfig::from_env(&EnvReader::new(&env))
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = read(&[("PLATFORM_BASE_URL", "https://api.example.com")]).unwrap();
        assert!(!c.local_mode);
        assert_eq!(c.connect_timeout, Duration::from_millis(2000));
        assert_eq!(c.request_timeout, Duration::from_millis(5000));
        assert_eq!(c.max_attempts, 4);
        assert!(c.base_backoff <= c.max_backoff);
    }

    #[test]
    fn the_base_url_is_required() {
        assert_eq!(read(&[]).unwrap_err().var, BASE_URL_VAR);
    }

    #[test]
    fn plain_http_is_loopback_only_and_local_mode_only() {
        for ok in [
            "http://127.0.0.1:4000",
            "http://127.1.2.3",
            "http://localhost:4000",
            "http://[::1]:4000",
        ] {
            assert!(check_base_url(ok, true).is_ok(), "{ok}");
            assert_eq!(check_base_url(ok, false).unwrap_err().var, BASE_URL_VAR);
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]",
            "http://0.0.0.0",
        ] {
            assert_eq!(
                check_base_url(bad, true).unwrap_err().var,
                BASE_URL_VAR,
                "{bad}"
            );
        }
        assert!(check_base_url("https://example.com/v2", false).is_ok());
        assert!(check_base_url("ftp://example.com", true).is_err());
        assert!(check_base_url("https://user:pw@example.com", false).is_err());
        assert!(check_base_url("not a url", true).is_err());
    }

    #[test]
    fn out_of_range_numbers_name_their_variable() {
        let base = ("PLATFORM_BASE_URL", "https://api.example.com");
        let err = read(&[base, ("PLATFORM_MAX_ATTEMPTS", "0")]).unwrap_err();
        assert_eq!(err.var, "PLATFORM_MAX_ATTEMPTS");
        let err = read(&[base, ("PLATFORM_REQUEST_TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(err.var, "PLATFORM_REQUEST_TIMEOUT_MS");
        let err = read(&[
            base,
            ("PLATFORM_BASE_BACKOFF_MS", "500"),
            ("PLATFORM_MAX_BACKOFF_MS", "100"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PLATFORM_MAX_BACKOFF_MS");
    }
}
