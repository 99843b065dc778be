//! Reading what authentication and input checks need from an API Gateway (HTTP API, payload 2.0)
//! request: the source address, the JWT authorizer's claims, the raw path and body, and the
//! content-type and size guards every JSON route applies before parsing.

use std::collections::HashMap;
use std::net::IpAddr;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

use super::signing::{ACCESS_KEY_HEADER, SIGNATURE_HEADER, SignedParts, TIMESTAMP_HEADER};
use crate::error::{ApiError, ErrorType};

/// The caller's address as API Gateway saw it.
pub fn source_ip(req: &Request) -> Option<IpAddr> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

/// The claims the API Gateway JWT authorizer verified, if the route has one and it ran.
pub fn jwt_claims(req: &Request) -> Option<&HashMap<String, String>> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()
            .map(|j| &j.claims)
            .filter(|c| !c.is_empty()),
        _ => None,
    }
}

/// The values of a list-valued claim as API Gateway passes it: `[a b]`, a JSON array, or one value.
pub fn claim_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list;
    }
    raw.trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The path with its query string, as the client sent and signed it.
pub fn path_and_query(req: &Request) -> String {
    match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => req.uri().path().to_owned(),
    }
}

/// A header's value as text, if present and printable.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The raw body bytes.
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// The signed parts of a server-to-server request.
pub fn signed_parts<'a>(req: &'a Request, path_and_query: &'a str) -> SignedParts<'a> {
    SignedParts {
        method: req.method().as_str(),
        path_and_query,
        access_key: header(req, ACCESS_KEY_HEADER),
        timestamp: header(req, TIMESTAMP_HEADER),
        signature: header(req, SIGNATURE_HEADER),
        body: body_bytes(req),
        source_ip: source_ip(req),
    }
}

/// The JSON body of a request: `415` unless `Content-Type` is `application/json` (parameters
/// allowed), `413` above `limit` bytes, `400` unless it parses as `T`.
pub fn json_body<T: serde::de::DeserializeOwned>(
    req: &Request,
    limit: usize,
) -> Result<T, ApiError> {
    let body = body_bytes(req);
    if body.len() > limit {
        return Err(ApiError::new(
            ErrorType::PayloadTooLarge,
            format!("the body may not exceed {limit} bytes"),
        ));
    }
    let is_json = header(req, "content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorType::UnsupportedMediaType,
            "Content-Type must be application/json",
        ));
    }
    parse_json(body)
}

/// The most JSON values (array elements, object keys and members) a body may hold.
///
/// A parsed value takes several times the bytes of its text: 6 MiB of `[0,0,0,…]` would be three
/// million values, a few hundred MiB in memory, on a function with 256 MiB. Bodies are counted
/// before they are parsed, so the memory a request can take stays a small multiple of its size.
pub const MAX_JSON_VALUES: usize = 50_000;

/// The deepest nesting of arrays and objects a body may have.
pub const MAX_JSON_DEPTH: usize = 64;

/// Counts `body`'s values and nesting without parsing it (a byte scan that skips strings).
fn within_bounds(body: &[u8]) -> Result<(), &'static str> {
    let (mut values, mut depth) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                values += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err("the body is nested too deeply");
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' | b':' => values += 1,
            _ => {}
        }
        if values > MAX_JSON_VALUES {
            return Err("the body holds too many JSON values");
        }
    }
    Ok(())
}

/// Deserializes `body` as `T`, once [`MAX_JSON_VALUES`] and [`MAX_JSON_DEPTH`] are checked.
/// Errors name where the body is wrong (a JSON path, or a line and column) but never quote a
/// value from it: serde's own messages do, and a value may be personal data or a secret.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    within_bounds(body).map_err(|what| ApiError::new(ErrorType::ValidationFailed, what))?;
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Data => {
                format!("the body does not match the expected shape at {path}")
            }
            _ => format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        };
        ApiError::new(ErrorType::ValidationFailed, what)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_too_many_values_or_too_deep_is_refused_before_it_is_parsed() {
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        let e = parse_json::<serde_json::Value>(many.as_bytes()).unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ValidationFailed);
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert!(parse_json::<serde_json::Value>(deep.as_bytes()).is_err());
        // Commas, colons and brackets inside strings are text, not values.
        let text = format!(
            "{{\"doc\": \"{}\", \"q\": \"a\\\"[\"}}",
            ",:[{".repeat(200_000)
        );
        assert!(parse_json::<serde_json::Value>(text.as_bytes()).is_ok());
        let fine = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES - 2));
        assert!(parse_json::<serde_json::Value>(fine.as_bytes()).is_ok());
    }

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut b = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/v1/x?y=1");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(Body::Text(body.to_owned())).unwrap()
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Thing {
        scope: String,
    }

    #[test]
    fn a_json_body_needs_the_json_content_type() {
        let err = json_body::<Thing>(&request(Some("text/plain"), "{}"), 100).unwrap_err();
        assert_eq!(err.error_type(), ErrorType::UnsupportedMediaType);
        let err = json_body::<Thing>(&request(None, "{}"), 100).unwrap_err();
        assert_eq!(err.error_type(), ErrorType::UnsupportedMediaType);
        assert!(
            json_body::<Thing>(
                &request(Some("application/json; charset=utf-8"), r#"{"scope":"a"}"#),
                100
            )
            .is_ok()
        );
    }

    #[test]
    fn an_oversized_body_is_refused_before_parsing() {
        let err = json_body::<Thing>(&request(Some("application/json"), &"x".repeat(101)), 100)
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::PayloadTooLarge);
    }

    #[test]
    fn malformed_json_and_wrong_types_are_validation_failures() {
        let err = json_body::<Thing>(&request(Some("application/json"), "{"), 100).unwrap_err();
        assert_eq!(err.error_type(), ErrorType::ValidationFailed);
        let err = json_body::<Thing>(&request(Some("application/json"), r#"{"scope": 5}"#), 100)
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::ValidationFailed);
        assert!(
            err.message().contains("scope") || err.message().contains("string"),
            "{err}"
        );
    }

    #[test]
    fn a_shape_error_names_the_path_but_never_quotes_the_value() {
        let err = json_body::<Thing>(
            &request(
                Some("application/json"),
                r#"{"scope": ["alice@example.com"]}"#,
            ),
            100,
        )
        .unwrap_err();
        assert!(err.message().contains("scope"), "{err}");
        assert!(!err.message().contains("alice@example.com"), "{err}");
    }

    #[test]
    fn list_claims_parse_in_every_form_api_gateway_uses() {
        assert_eq!(claim_list("[mfa pwd]"), vec!["mfa", "pwd"]);
        assert_eq!(claim_list(r#"["otp","pwd"]"#), vec!["otp", "pwd"]);
        assert_eq!(claim_list("hwk"), vec!["hwk"]);
        assert!(claim_list("[]").is_empty());
    }

    #[test]
    fn the_path_keeps_its_query_string() {
        assert_eq!(path_and_query(&request(None, "")), "/v1/x?y=1");
    }
}
