//! CORS as the deployed API applies it: the template's `CorsConfiguration`, set from its
//! `AllowedOrigins` parameter, here from `ALLOWED_ORIGINS` (same syntax, same rule). Empty or unset:
//! no CORS at all, as in the template, so browsers on another origin cannot read any answer.
//!
//! What API Gateway does, and so what this does: a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered by the gateway itself, `204` with the allowed
//! methods, headers and max age when the origin is listed and without any CORS header when it is
//! not; any other request from a listed origin gets `Access-Control-Allow-Origin` with that origin
//! on its answer, and a request from any other origin gets none.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response};
use shared::config::ConfigError;

/// The methods the template allows (`AllowMethods`).
pub const ALLOW_METHODS: &[&str] = &["GET", "POST"];
/// The request headers the template allows (`AllowHeaders`).
pub const ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "x-access-key",
    "x-timestamp",
    "x-signature",
];
/// How long a browser may cache a preflight answer (`MaxAge`).
pub const MAX_AGE_SECONDS: u32 = 600;

/// The origins a browser page may call the API from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Reads `ALLOWED_ORIGINS`: empty, or comma-separated `https://host[:port]` origins without a
    /// path or a wildcard — the template's `AllowedPattern` for `AllowedOrigins`. A page served over
    /// plain HTTP can be altered on the way, so an `http://` origin is a configuration error.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        if value.is_empty() {
            return Ok(Self::default());
        }
        let origins = value
            .split(',')
            .map(|origin| {
                if is_https_origin(origin) {
                    Ok(origin.to_owned())
                } else {
                    Err(ConfigError::new(
                        "ALLOWED_ORIGINS",
                        format!(
                            "{origin:?} is not an https:// origin (https://host[:port], no path, no wildcard)"
                        ),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// The listed origin a request comes from, if any.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let origin = headers.get("origin")?.to_str().ok()?;
        self.origins.iter().any(|o| o == origin).then_some(origin)
    }

    /// The gateway's own answer to a preflight, or `None` when the request is not one (or CORS is
    /// off, in which case the request goes to the routes like any other).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        let is_preflight = method == Method::OPTIONS
            && headers.contains_key("origin")
            && headers.contains_key("access-control-request-method");
        if self.origins.is_empty() || !is_preflight {
            return None;
        }
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = axum::http::StatusCode::NO_CONTENT;
        if let Some(origin) = self.allowed(headers) {
            let h = answer.headers_mut();
            put(h, "access-control-allow-origin", origin);
            put(h, "access-control-allow-methods", &ALLOW_METHODS.join(","));
            put(h, "access-control-allow-headers", &ALLOW_HEADERS.join(","));
            put(h, "access-control-max-age", &MAX_AGE_SECONDS.to_string());
            put(h, "vary", "origin");
        }
        Some(answer)
    }

    /// Adds `Access-Control-Allow-Origin` to the answer of a request from a listed origin.
    pub fn decorate(&self, request: &HeaderMap, answer: &mut Response<Body>) {
        if let Some(origin) = self.allowed(request) {
            put(answer.headers_mut(), "access-control-allow-origin", origin);
            put(answer.headers_mut(), "vary", "origin");
        }
    }
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// `https://` then a host of letters, digits, dots and dashes, then an optional `:port` of 1–5
/// digits, and nothing else.
fn is_https_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://") else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const APP: &str = "https://app.example.com";

    #[test]
    fn only_https_origins_without_path_or_wildcard_are_accepted() {
        assert_eq!(Cors::parse("").unwrap(), Cors::default());
        assert!(Cors::parse("https://app.example.com,https://admin.example.com:8443").is_ok());
        for bad in [
            "http://app.example.com",
            "https://*.example.com",
            "https://app.example.com/path",
            "app.example.com",
            "https://app.example.com, https://b.example.com",
            "https://app.example.com:",
            "https://app.example.com:123456",
        ] {
            let e = Cors::parse(bad).unwrap_err();
            assert!(e.to_string().contains("ALLOWED_ORIGINS"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_preflight_from_a_listed_origin_gets_the_templates_methods_headers_and_max_age() {
        let cors = Cors::parse(APP).unwrap();
        let req = request(&[("origin", APP), ("access-control-request-method", "POST")]);
        let answer = cors.preflight(&Method::OPTIONS, &req).unwrap();
        assert_eq!(answer.status(), 204);
        let h = answer.headers();
        assert_eq!(h["access-control-allow-origin"], APP);
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,content-type,idempotency-key,x-access-key,x-timestamp,x-signature"
        );
        assert_eq!(h["access-control-max-age"], "600");
    }

    #[test]
    fn a_foreign_origin_gets_no_cors_header_on_a_preflight_or_an_answer() {
        let cors = Cors::parse(APP).unwrap();
        let foreign = request(&[
            ("origin", "https://evil.example.net"),
            ("access-control-request-method", "POST"),
        ]);
        let answer = cors.preflight(&Method::OPTIONS, &foreign).unwrap();
        assert_eq!(answer.status(), 204);
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let mut answer = Response::new(Body::empty());
        cors.decorate(&foreign, &mut answer);
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        // A listed origin's answer carries it.
        cors.decorate(&request(&[("origin", APP)]), &mut answer);
        assert_eq!(answer.headers()["access-control-allow-origin"], APP);
    }

    #[test]
    fn without_allowed_origins_there_is_no_cors_at_all() {
        let cors = Cors::parse("").unwrap();
        let req = request(&[("origin", APP), ("access-control-request-method", "POST")]);
        assert!(cors.preflight(&Method::OPTIONS, &req).is_none());
        let mut answer = Response::new(Body::empty());
        cors.decorate(&req, &mut answer);
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
}
