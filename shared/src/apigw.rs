//! Building the request a Lambda behind API Gateway (HTTP API, payload 2.0) receives: the devstack
//! uses it to call the very handlers the Lambdas run, and tests use it to describe requests with a
//! source address and JWT authorizer claims.

use std::collections::HashMap;

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::http::{HeaderName, HeaderValue, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

/// A request as API Gateway would hand it to the function.
#[derive(Debug, Clone)]
pub struct ApiGatewayRequest {
    method: Method,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source_ip: String,
    claims: Option<HashMap<String, String>>,
    route_key: Option<String>,
}

impl ApiGatewayRequest {
    /// A request for `method path_and_query` from 127.0.0.1 without a body.
    pub fn new(method: Method, path_and_query: &str) -> Self {
        Self {
            method,
            path_and_query: path_and_query.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            source_ip: "127.0.0.1".into(),
            claims: None,
            route_key: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }

    /// The caller's address.
    pub fn source_ip(mut self, ip: &str) -> Self {
        self.source_ip = ip.to_owned();
        self
    }

    /// The claims a JWT authorizer verified.
    pub fn claims(mut self, claims: HashMap<String, String>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// The route key, e.g. `POST /v1/partner-tokens`.
    pub fn route_key(mut self, key: &str) -> Self {
        self.route_key = Some(key.to_owned());
        self
    }

    /// The request the function receives.
    pub fn build(self) -> Request {
        let body = match String::from_utf8(self.body) {
            Ok(text) if text.is_empty() => Body::Empty,
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        };
        let mut req = lambda_http::http::Request::new(body);
        *req.method_mut() = self.method.clone();
        if let Ok(uri) = self.path_and_query.parse() {
            *req.uri_mut() = uri;
        }
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                req.headers_mut().append(k, v);
            }
        }
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.http.method = self.method;
        ctx.http.path = Some(
            self.path_and_query
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
        ctx.http.source_ip = Some(self.source_ip);
        ctx.route_key = self.route_key;
        ctx.stage = Some("$default".into());
        // API Gateway names the host it served the request on.
        ctx.domain_name = self
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("host"))
            .map(|(_, value)| value.clone());
        if let Some(claims) = self.claims {
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims = claims;
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.jwt = Some(jwt);
            ctx.authorizer = Some(authorizer);
        }
        let path = req.uri().path().to_owned();
        req.with_request_context(RequestContext::ApiGatewayV2(ctx))
            .with_raw_http_path(path)
    }
}
