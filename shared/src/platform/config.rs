//! Where the platform is and how patient to be with it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use reqwest::Url;

use crate::config::{ConfigError, EnvReader};
use crate::keys::{Scope, ScopeClaim};

/// The variable naming the platform's base URL.
pub const BASE_URL_VAR: &str = "PLATFORM_BASE_URL";
/// The variable that turns local mode on.
pub const LOCAL_MODE_VAR: &str = "PLATFORM_LOCAL_MODE";
/// The variable naming the local CA certificate file (PEM) in local mode.
pub const LOCAL_CA_VAR: &str = "PLATFORM_LOCAL_CA";

/// The CA certificates an outbound client trusts in local mode **besides** the platform's roots:
/// the local CA that signs the devstack's and the simulator's loopback certificates. Certificate
/// verification stays on; this only adds roots, and the local CA's own name constraints keep it
/// to loopback names.
#[derive(Clone)]
pub struct LocalCaTrust {
    certs: Arc<[reqwest::Certificate]>,
}

impl fmt::Debug for LocalCaTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCaTrust")
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl LocalCaTrust {
    /// The certificates of a PEM bundle (at least one).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let err = |problem: String| ConfigError::new(LOCAL_CA_VAR, problem);
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| err(format!("is not a PEM certificate bundle ({e})")))?;
        if certs.is_empty() {
            return Err(err("holds no certificate".to_owned()));
        }
        Ok(Self {
            certs: certs.into(),
        })
    }

    /// The certificates of the PEM file at `path`.
    pub fn read(path: &str) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::new(LOCAL_CA_VAR, format!("cannot read {path:?}: {e}")))?;
        Self::from_pem(&pem)
    }

    /// `PLATFORM_LOCAL_MODE` (default false) and `PLATFORM_LOCAL_CA`: the trust of local mode,
    /// or `None` outside it. Local mode needs the CA file; the CA file outside local mode is an
    /// error, not silently ignored.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Option<Self>, ConfigError> {
        let local_mode = r.flag(LOCAL_MODE_VAR, false)?;
        match (local_mode, r.optional(LOCAL_CA_VAR)) {
            (true, Some(path)) => Self::read(&path).map(Some),
            (true, None) => Err(ConfigError::new(
                LOCAL_CA_VAR,
                "is required in local mode: the local CA certificate (the devstack's \
                 .devstack/tls/ca.pem)",
            )),
            (false, Some(_)) => Err(ConfigError::new(
                LOCAL_CA_VAR,
                "is honoured only with PLATFORM_LOCAL_MODE=true",
            )),
            (false, None) => Ok(None),
        }
    }
}

/// The builder of every outbound HTTP client of the bundle: rustls, HTTPS only (an `http://`
/// URL fails before anything is sent), TLS 1.2 at least, no redirects, and in local mode the
/// local CA trusted besides the platform's roots.
pub fn outbound_client(local_ca: Option<&LocalCaTrust>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .https_only(true)
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .redirect(reqwest::redirect::Policy::none());
    match local_ca {
        Some(trust) => builder.tls_certs_merge(trust.certs.iter().cloned()),
        None => builder,
    }
}

/// The outbound client's settings.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// `PLATFORM_BASE_URL`: `https://…`, always. A path prefix is kept
    /// (`https://api.example.com/v2` → `https://api.example.com/v2/credentials/…`).
    pub base_url: Url,
    /// Local mode (`PLATFORM_LOCAL_MODE`, default false, with `PLATFORM_LOCAL_CA`): the local CA
    /// the client trusts besides the platform's roots ([`LocalCaTrust`]).
    pub local_ca: Option<LocalCaTrust>,
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
    /// `PLATFORM_TOKEN_SCOPE` (default `issue`): the `scope` claim of the Partner JWTs sent to
    /// the platform. Its documents name the issue-on-behalf scope `issue` in some places and
    /// `issue on-behalf` in others; set the one the platform's dashboard shows for the partner.
    pub token_scope: ScopeClaim,
}

/// The default `scope` claim of outbound Partner JWTs: `issue`.
fn default_token_scope() -> ScopeClaim {
    ScopeClaim::from(Scope::issue())
}

impl PlatformConfig {
    /// Settings for `base_url` with the defaults, checked like [`PlatformConfig::from_env`].
    pub fn new(base_url: &str, local_ca: Option<LocalCaTrust>) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: check_base_url(base_url)?,
            local_ca,
            connect_timeout: Duration::from_millis(2000),
            request_timeout: Duration::from_millis(5000),
            max_attempts: 4,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(2000),
            token_scope: default_token_scope(),
        })
    }

    /// Reads the settings; a bad value (or a base URL we may not talk to) names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let local_ca = LocalCaTrust::from_env(r)?;
        let base_url = check_base_url(&r.required(BASE_URL_VAR)?)?;
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
        let token_scope = match r.optional("PLATFORM_TOKEN_SCOPE") {
            None => default_token_scope(),
            Some(text) => ScopeClaim::parse(&text)
                .map_err(|e| ConfigError::new("PLATFORM_TOKEN_SCOPE", e.0))?,
        };
        Ok(Self {
            base_url,
            local_ca,
            connect_timeout,
            request_timeout,
            max_attempts,
            base_backoff,
            max_backoff,
            token_scope,
        })
    }

    /// Checks settings built by hand (the fields are public) the way `from_env` does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base_url(self.base_url.as_str())?;
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

/// Parses the base URL and refuses what the outbound rules forbid: any scheme but `https` — in
/// local mode too, where the devstack and the simulator serve HTTPS with the local CA — and
/// credentials in the URL (they would end up in logs and error messages).
pub fn check_base_url(text: &str) -> Result<Url, ConfigError> {
    let err = |problem: String| ConfigError::new(BASE_URL_VAR, problem);
    let url = Url::parse(text.trim()).map_err(|e| err(format!("is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("must not carry credentials".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not have a query or a fragment".to_owned()));
    }
    if url.host_str().filter(|h| !h.is_empty()).is_none() {
        return Err(err("must name a host".to_owned()));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" => Err(err(
            "must use https: plain http is refused, in local mode too (the devstack and the \
             simulator serve HTTPS with the local CA)"
                .to_owned(),
        )),
        other => Err(err(format!("must use https, not {other:?}"))),
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
        assert!(c.local_ca.is_none());
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
    fn plain_http_is_refused_to_every_host_loopback_included() {
        for bad in [
            "http://127.0.0.1:4000",
            "http://localhost:4000",
            "http://[::1]:4000",
            "http://example.com",
        ] {
            assert_eq!(check_base_url(bad).unwrap_err().var, BASE_URL_VAR, "{bad}");
        }
        assert!(check_base_url("https://example.com/v2").is_ok());
        assert!(check_base_url("https://127.0.0.1:4000").is_ok());
        assert!(check_base_url("ftp://example.com").is_err());
        assert!(check_base_url("https://user:pw@example.com").is_err());
        assert!(check_base_url("not a url").is_err());
    }

    #[test]
    fn local_mode_needs_the_local_ca_and_the_local_ca_needs_local_mode() {
        let base = ("PLATFORM_BASE_URL", "https://127.0.0.1:4000");
        let err = read(&[base, ("PLATFORM_LOCAL_MODE", "true")]).unwrap_err();
        assert_eq!(err.var, LOCAL_CA_VAR);
        let err = read(&[base, ("PLATFORM_LOCAL_CA", "/nonexistent/ca.pem")]).unwrap_err();
        assert_eq!(err.var, LOCAL_CA_VAR);
        let err = read(&[
            base,
            ("PLATFORM_LOCAL_MODE", "true"),
            ("PLATFORM_LOCAL_CA", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert_eq!(err.var, LOCAL_CA_VAR);
        assert!(read(&[base]).unwrap().local_ca.is_none());
    }

    #[test]
    fn a_local_ca_file_without_a_certificate_is_refused() {
        assert_eq!(LocalCaTrust::from_pem(b"").unwrap_err().var, LOCAL_CA_VAR);
        assert_eq!(
            LocalCaTrust::from_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .unwrap_err()
            .var,
            LOCAL_CA_VAR
        );
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
