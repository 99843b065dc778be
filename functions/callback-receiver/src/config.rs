//! The receiver's configuration, read once at start.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use shared::config::{ConfigError, EnvReader};
use shared::http::ApiBasePath;
use shared::secrets::SecretName;

use crate::keys::DEFAULT_WEBHOOK_SECRETS_SECRET;
use crate::routes::{DEFAULT_ROUTES_JSON, RouteConfig};
use crate::verify::Scheme;

/// The largest body accepted by default (64 KiB; a callback is a few hundred bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// `API_BASE_PATH` (default empty): the custom domain's base path, taken off before routing.
    pub base_path: ApiBasePath,
    /// `MAX_CALLBACK_BODY_BYTES` (default 65536): larger bodies get 413 before anything else.
    pub max_body_bytes: usize,
    /// `WEBHOOK_SCHEME`: `standard` (default) or `hex`.
    pub scheme: Scheme,
    /// `WEBHOOK_TOLERANCE_SECONDS` (default 300, at most 300): the accepted clock difference.
    pub tolerance: Duration,
    /// `CALLBACK_ALLOWED_CIDRS`: comma-separated source ranges; empty allows any source.
    pub allowed_cidrs: Vec<IpNet>,
    /// `WEBHOOK_SECRETS_SECRET_NAME` (default `partner-bundle/webhook-secrets`).
    pub webhook_secrets_secret: SecretName,
    /// `WEBHOOK_SECRETS_CACHE_SECONDS` (default 60, at most 300): how long a container keeps the
    /// secrets, hence how soon a removed secret stops being accepted.
    pub webhook_secrets_ttl: Duration,
    /// `DATA_KEYS_SECRET_NAME` (default `partner-bundle/data-keys`).
    pub data_keys_secret: SecretName,
    /// `DATA_KEYS_CACHE_SECONDS` (default 300, 1–300): how long a container keeps the data keys
    /// (the same setting and default as the issue function's).
    pub data_keys_ttl: Duration,
    /// `CALLBACK_ROUTES_JSON` (default: the sample programs to `compliance` and `events`).
    pub routes: RouteConfig,
    /// `CALLBACK_DEDUP_WINDOW_SECONDS` (default 86400, 60 to 2592000): deliveries of one
    /// (user, verifier, schema) within this window are retries of one authorization; a consent
    /// after it is a new event, audited and routed again. The dedup record expires (TTL) then.
    pub dedup_window: Duration,
    /// `CALLBACK_EVENT_ID_RETENTION_SECONDS` (default 604800, at least the dedup window): how long
    /// a platform `eventId` is remembered, so that a late retry of one event is still a retry.
    pub event_id_retention: Duration,
    /// `ISSUER_DID` (optional): our issuer DID. A callback naming another issuer is acknowledged,
    /// audited and counted, but not routed. Unset, `issuerDid` is not checked.
    pub issuer_did: Option<String>,
}

fn secret_name(r: &EnvReader<'_>, var: &str, default: &str) -> Result<SecretName, ConfigError> {
    let text = r.optional(var).unwrap_or_else(|| default.to_owned());
    SecretName::new(&text).map_err(|e| ConfigError::new(var, e.to_string()))
}

impl CallbackConfig {
    /// Reads the configuration; a bad value names its variable.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let max_body_bytes: usize =
            r.parsed_or("MAX_CALLBACK_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        if max_body_bytes == 0 {
            return Err(ConfigError::new(
                "MAX_CALLBACK_BODY_BYTES",
                "must be at least 1",
            ));
        }
        let allowed_cidrs = r
            .list("CALLBACK_ALLOWED_CIDRS")
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "CALLBACK_ALLOWED_CIDRS",
                            format!("{c:?} is not an address or a CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let routes_json = r
            .optional("CALLBACK_ROUTES_JSON")
            .unwrap_or_else(|| DEFAULT_ROUTES_JSON.to_owned());
        let routes = RouteConfig::parse(&routes_json)
            .map_err(|e| ConfigError::new("CALLBACK_ROUTES_JSON", e))?;
        let dedup_window = r.seconds("CALLBACK_DEDUP_WINDOW_SECONDS", 86_400, 60, 30 * 86_400)?;
        let event_id_retention = r.seconds(
            "CALLBACK_EVENT_ID_RETENTION_SECONDS",
            7 * 86_400,
            60,
            90 * 86_400,
        )?;
        if event_id_retention < dedup_window {
            return Err(ConfigError::new(
                "CALLBACK_EVENT_ID_RETENTION_SECONDS",
                "must be at least CALLBACK_DEDUP_WINDOW_SECONDS",
            ));
        }
        Ok(Self {
            base_path: ApiBasePath::from_env(r)?,
            max_body_bytes,
            scheme: r.parsed_or("WEBHOOK_SCHEME", Scheme::Standard)?,
            tolerance: r.seconds("WEBHOOK_TOLERANCE_SECONDS", 300, 1, 300)?,
            allowed_cidrs,
            webhook_secrets_secret: secret_name(
                r,
                "WEBHOOK_SECRETS_SECRET_NAME",
                DEFAULT_WEBHOOK_SECRETS_SECRET,
            )?,
            webhook_secrets_ttl: r.seconds("WEBHOOK_SECRETS_CACHE_SECONDS", 60, 0, 300)?,
            data_keys_secret: secret_name(
                r,
                "DATA_KEYS_SECRET_NAME",
                shared::pii::DEFAULT_DATA_KEYS_SECRET,
            )?,
            data_keys_ttl: r.seconds("DATA_KEYS_CACHE_SECONDS", 300, 1, 300)?,
            routes,
            dedup_window,
            event_id_retention,
            issuer_did: r.optional("ISSUER_DID").filter(|d| !d.trim().is_empty()),
        })
    }

    /// Whether a delivery from `ip` may be processed.
    pub fn allows_source(&self, ip: Option<IpAddr>) -> bool {
        self.allowed_cidrs.is_empty()
            || ip.is_some_and(|ip| self.allowed_cidrs.iter().any(|net| net.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use shared::config::MapEnv;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<CallbackConfig, ConfigError> {
        let env = MapEnv::from_pairs(pairs.iter().copied());
        CallbackConfig::from_env(&EnvReader::new(&env))
    }

    #[test]
    fn the_defaults_need_no_variable() {
        let c = read(&[]).unwrap();
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.scheme, Scheme::Standard);
        assert_eq!(c.tolerance, Duration::from_secs(300));
        assert_eq!(
            c.webhook_secrets_secret.as_str(),
            "partner-bundle/webhook-secrets"
        );
        assert!(c.allows_source(None));
        assert_eq!(c.dedup_window, Duration::from_secs(86_400));
        assert_eq!(c.event_id_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.issuer_did, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("WEBHOOK_SCHEME", "v2"),
            ("WEBHOOK_TOLERANCE_SECONDS", "301"),
            ("MAX_CALLBACK_BODY_BYTES", "0"),
            ("CALLBACK_ALLOWED_CIDRS", "10.0.0.0/33"),
            ("CALLBACK_ROUTES_JSON", "[]"),
            ("WEBHOOK_SECRETS_SECRET_NAME", "a b"),
            ("CALLBACK_DEDUP_WINDOW_SECONDS", "0"),
            ("CALLBACK_EVENT_ID_RETENTION_SECONDS", "120"),
        ] {
            assert_eq!(read(&[(var, value)]).unwrap_err().var, var, "{var}");
        }
    }

    #[test]
    fn the_allow_list_takes_ranges_and_single_addresses() {
        let c = read(&[("CALLBACK_ALLOWED_CIDRS", "203.0.113.0/24, 198.51.100.7")]).unwrap();
        assert!(c.allows_source(Some("203.0.113.9".parse().unwrap())));
        assert!(c.allows_source(Some("198.51.100.7".parse().unwrap())));
        assert!(!c.allows_source(Some("198.51.100.8".parse().unwrap())));
        assert!(
            !c.allows_source(None),
            "a list and no known source: refused"
        );
    }
}
