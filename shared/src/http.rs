//! The one HTTP response builder: every answer of every route goes through [`Reply`], which puts
//! the security headers on it and makes its caching deliberate.

use lambda_http::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue, REFERRER_POLICY,
    RETRY_AFTER, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use lambda_http::http::{HeaderMap, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::ApiError;

/// How a response may be cached. Every response chooses one; nothing is cacheable by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// `no-store`: tokens, errors, anything per-caller.
    NoStore,
    /// `public, max-age=N`: public documents such as the JWKS.
    Public {
        /// Seconds a cache may keep the response.
        max_age_secs: u32,
    },
}

impl CachePolicy {
    fn header_value(self) -> HeaderValue {
        match self {
            Self::NoStore => HeaderValue::from_static("no-store"),
            Self::Public { max_age_secs } => {
                HeaderValue::from_str(&format!("public, max-age={max_age_secs}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
            }
        }
    }
}

/// Puts the headers every answer carries: no MIME sniffing, no framing or active content, HTTPS
/// only, no referrer, and the given cache policy.
pub fn apply_security_headers(headers: &mut HeaderMap, cache: CachePolicy) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, cache.header_value());
}

/// A response under construction.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    body: Body,
    json: bool,
    cache: CachePolicy,
    headers: HeaderMap,
}

impl Reply {
    /// A JSON answer. Serialization of our own response types cannot fail; if it ever did, the
    /// answer becomes a plain 500.
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        match (serde_json::to_string(body), StatusCode::from_u16(status)) {
            (Ok(text), Ok(status)) => Self {
                status,
                body: Body::Text(text),
                json: true,
                cache: CachePolicy::NoStore,
                headers: HeaderMap::new(),
            },
            _ => Self::error(&ApiError::internal()),
        }
    }

    /// A JSON answer whose body is already rendered (e.g. the pre-rendered JWKS).
    pub fn json_text(status: u16, text: String) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Body::Text(text),
            json: true,
            cache: CachePolicy::NoStore,
            headers: HeaderMap::new(),
        }
    }

    /// The answer for an error: its status, its JSON body, `no-store`, and `Retry-After` if set.
    pub fn error(error: &ApiError) -> Self {
        let mut reply = Self {
            status: StatusCode::from_u16(error.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Body::Text(error.body().to_string()),
            json: true,
            cache: CachePolicy::NoStore,
            headers: HeaderMap::new(),
        };
        if let Some(secs) = error.retry_after_secs() {
            reply = reply.header(RETRY_AFTER, &secs.to_string());
        }
        reply
    }

    /// An answer without a body (e.g. 304 Not Modified).
    pub fn empty(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT),
            body: Body::Empty,
            json: false,
            cache: CachePolicy::NoStore,
            headers: HeaderMap::new(),
        }
    }

    /// Sets the cache policy (default `no-store`).
    pub fn cache(mut self, cache: CachePolicy) -> Self {
        self.cache = cache;
        self
    }

    /// Adds a header; a value that is not a valid header value is dropped.
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// The finished response.
    pub fn build(self) -> Response<Body> {
        let mut response = Response::new(self.body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if self.json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        apply_security_headers(headers, self.cache);
        response
    }
}

impl From<ApiError> for Response<Body> {
    fn from(e: ApiError) -> Self {
        Reply::error(&e).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorType;

    fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        for r in [
            Reply::json(200, &serde_json::json!({"ok": true})).build(),
            Reply::error(&ApiError::new(ErrorType::Forbidden, "no")).build(),
            Reply::empty(304).build(),
        ] {
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
            assert_eq!(
                header(&r, "content-security-policy"),
                "default-src 'none'; frame-ancestors 'none'"
            );
            assert!(header(&r, "strict-transport-security").starts_with("max-age="));
            assert_eq!(header(&r, "referrer-policy"), "no-referrer");
            assert!(!header(&r, "cache-control").is_empty());
        }
    }

    #[test]
    fn answers_are_not_cacheable_unless_they_say_so() {
        let r = Reply::json(200, &serde_json::json!({})).build();
        assert_eq!(header(&r, "cache-control"), "no-store");
        let r = Reply::json(200, &serde_json::json!({}))
            .cache(CachePolicy::Public { max_age_secs: 300 })
            .build();
        assert_eq!(header(&r, "cache-control"), "public, max-age=300");
    }

    #[test]
    fn an_error_answer_has_its_status_type_and_retry_after() {
        let r = Reply::error(
            &ApiError::new(ErrorType::RequestInProgress, "retry shortly").with_retry_after(2),
        )
        .build();
        assert_eq!(r.status().as_u16(), 409);
        assert_eq!(header(&r, "retry-after"), "2");
        assert_eq!(header(&r, "content-type"), "application/json");
        let Body::Text(text) = r.body() else {
            panic!("expected a text body")
        };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["errorType"], "request_in_progress");
    }
}

/// The path an API is mapped under on a custom domain (`API_BASE_PATH`, the template's
/// `CustomDomainBasePath`; empty by default). API Gateway keeps the mapping's base path in the
/// path a function receives (`rawPath`), which is also the path the client signed: signatures are
/// checked on that full path, and routes are matched on the path with the base path taken off.
/// A request through the generated `execute-api` address has no base path and routes the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiBasePath(Option<String>);

impl ApiBasePath {
    /// The environment variable.
    pub const VAR: &'static str = "API_BASE_PATH";

    /// A base path: empty, or segments of `A-Za-z0-9._~-` separated by `/` (no leading or
    /// trailing slash), as API Gateway's mapping keys are.
    pub fn parse(text: &str) -> Result<Self, crate::config::ConfigError> {
        if text.is_empty() {
            return Ok(Self(None));
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        };
        if text.len() > 200 || !text.split('/').all(segment_ok) {
            return Err(crate::config::ConfigError::new(
                Self::VAR,
                "must be empty or path segments of A-Za-z0-9._~- separated by / (no leading or \
                 trailing slash)",
            ));
        }
        Ok(Self(Some(format!("/{text}"))))
    }

    /// Reads `API_BASE_PATH` (default: none).
    pub fn from_env(r: &crate::config::EnvReader<'_>) -> Result<Self, crate::config::ConfigError> {
        Self::parse(&r.optional(Self::VAR).unwrap_or_default())
    }

    /// The path within the API: `path` without the base path it starts with, if it does.
    pub fn route<'a>(&self, path: &'a str) -> &'a str {
        match self.split(path) {
            Some(("", _)) | None => path,
            Some((_, "")) => "/",
            Some((_, rest)) => rest,
        }
    }

    /// The base path `path` came through (`/partner`), or `""` when it did not.
    pub fn prefix_of<'a>(&self, path: &'a str) -> &'a str {
        self.split(path).map_or("", |(prefix, _)| prefix)
    }

    fn split<'a>(&self, path: &'a str) -> Option<(&'a str, &'a str)> {
        let base = self.0.as_deref()?;
        let rest = path.strip_prefix(base)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| (&path[..base.len()], rest))
    }
}

/// The public address Partner JWTs name as their issuer (`iss`) and the OIDC discovery document
/// describes: `PUBLIC_BASE_URL` when it is set (an `https://` URL without a trailing slash), else
/// the address the request reached the API on, `https://<requestContext.domainName>` plus the
/// base path the request came through. API Gateway sets the domain name from the host it served
/// (its own `execute-api` name or the custom domain), so a client cannot choose it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicAddress {
    configured: Option<String>,
    base_path: ApiBasePath,
}

impl PublicAddress {
    /// The environment variable of the fixed address.
    pub const VAR: &'static str = "PUBLIC_BASE_URL";

    /// An address fixed to `configured`, or taken from each request when `None`.
    pub fn new(
        configured: Option<&str>,
        base_path: ApiBasePath,
    ) -> Result<Self, crate::config::ConfigError> {
        let configured = match configured {
            None | Some("") => None,
            Some(url) => {
                let ok = url.starts_with("https://")
                    && !url.ends_with('/')
                    && url.len() <= 512
                    && !url.contains(['?', '#', ' '])
                    && url.len() > "https://".len();
                if !ok {
                    return Err(crate::config::ConfigError::new(
                        Self::VAR,
                        "must be an https:// URL without a trailing slash, query or fragment",
                    ));
                }
                Some(url.to_owned())
            }
        };
        Ok(Self {
            configured,
            base_path,
        })
    }

    /// Reads `PUBLIC_BASE_URL` and `API_BASE_PATH`.
    pub fn from_env(r: &crate::config::EnvReader<'_>) -> Result<Self, crate::config::ConfigError> {
        Self::new(r.optional(Self::VAR).as_deref(), ApiBasePath::from_env(r)?)
    }

    /// The base path routes are matched without.
    pub fn base_path(&self) -> &ApiBasePath {
        &self.base_path
    }

    /// The public base URL `req` reached, if it can be told.
    pub fn of(&self, req: &lambda_http::Request) -> Option<String> {
        use lambda_http::RequestExt;
        use lambda_http::request::RequestContext;
        if let Some(url) = &self.configured {
            return Some(url.clone());
        }
        let domain = match req.request_context_ref()? {
            RequestContext::ApiGatewayV2(ctx) => ctx.domain_name.clone()?,
            _ => return None,
        };
        let prefix = self.base_path.prefix_of(req.uri().path());
        Some(format!("https://{domain}{prefix}"))
    }
}

#[cfg(test)]
mod base_path_tests {
    use super::ApiBasePath;

    #[test]
    fn a_base_path_is_taken_off_the_route_only_where_it_is_a_whole_leading_segment() {
        let base = ApiBasePath::parse("partner/v2").unwrap();
        assert_eq!(base.route("/partner/v2/v1/credentials"), "/v1/credentials");
        assert_eq!(base.route("/partner/v2"), "/");
        assert_eq!(
            base.route("/partner/v2x/v1/credentials"),
            "/partner/v2x/v1/credentials"
        );
        assert_eq!(base.route("/v1/credentials"), "/v1/credentials");
        assert_eq!(base.prefix_of("/partner/v2/v1/credentials"), "/partner/v2");
        assert_eq!(base.prefix_of("/v1/credentials"), "");
        let none = ApiBasePath::parse("").unwrap();
        assert_eq!(
            none.route("/partner/v1/credentials"),
            "/partner/v1/credentials"
        );
        for bad in ["/partner", "partner/", "a//b", "a b", "a?b"] {
            assert!(ApiBasePath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
