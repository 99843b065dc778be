//! `infra/openapi.yaml`, `template.yaml` and the devstack agree: the same routes, the documented
//! answers, the stable error types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::Value;
use shared::error::ErrorType;

fn spec() -> Value {
    let path = lambda_emu::workspace_root().join("infra/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// (METHOD, path) of every operation in the spec.
fn spec_routes(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_spec_is_openapi_3_1_and_lists_exactly_the_template_routes() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1."));
    let template =
        lambda_emu::Template::load(&lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let deployed: BTreeSet<(String, String)> = template
        .http_routes()
        .unwrap()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    assert_eq!(spec_routes(&spec), deployed);
}

#[test]
fn the_spec_documents_every_stable_error_type_and_nothing_else() {
    let spec = spec();
    let documented: BTreeSet<String> = spec["components"]["schemas"]["ErrorType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let real: BTreeSet<String> = ErrorType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(documented, real);
}

#[test]
fn every_operation_declares_its_security_and_documents_its_500() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op.get("security").is_some(),
                "{method} {path} says nothing of auth"
            );
            assert!(
                op.get("operationId").is_some(),
                "{method} {path} has no operationId"
            );
            assert!(
                op["responses"].get("500").is_some(),
                "{method} {path} does not document its 500"
            );
        }
    }
}

/// A request for a spec path, with sample values for its parameters.
fn concrete(path: &str) -> String {
    path.replace("{id}", "iss_0123456789abcdef0123456789abcdef")
}

#[tokio::test]
async fn the_devstack_serves_every_spec_route_with_a_documented_answer_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let running = devstack::start(&devstack::Options {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        aws: false,
        table_name: "unused".into(),
        partner_id: "partner-openapi".into(),
        schedule_interval: std::time::Duration::from_secs(3600),
    })
    .await
    .unwrap();
    let api = running.api_url();
    let http = running.client().unwrap();
    let spec = spec();
    for (method, path) in spec_routes(&spec) {
        let url = format!("{api}{}", concrete(&path));
        // An unauthenticated, empty request: every route must answer it as the spec says.
        let resp = http
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16().to_string();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["errorMessage"], "no such route",
            "the devstack does not serve {method} {path}"
        );
        let documented = &spec["paths"][&path][method.to_lowercase()]["responses"];
        assert!(
            documented.get(&status).is_some(),
            "{method} {path} answered {status}, which the spec does not document: {body}"
        );
    }
    // A route outside the spec is not served.
    let resp = http
        .get(format!("{api}/v1/not-a-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn the_devstack_applies_the_cors_rules_of_the_template() {
    let text = std::fs::read_to_string(lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let template = serde_json::to_value(yaml).unwrap();
    let cors = &template["Resources"]["PartnerApi"]["Properties"]["CorsConfiguration"];
    // `!If [HasAllowedOrigins, {…}, !Ref AWS::NoValue]`: the configuration when origins are given.
    let when_set = &cors["!If"][1];
    assert_eq!(cors["!If"][0], "HasAllowedOrigins", "{cors}");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        strings(&when_set["AllowMethods"]),
        devstack::cors::ALLOW_METHODS
    );
    assert_eq!(
        strings(&when_set["AllowHeaders"]),
        devstack::cors::ALLOW_HEADERS
    );
    assert_eq!(
        when_set["MaxAge"].as_u64(),
        Some(u64::from(devstack::cors::MAX_AGE_SECONDS))
    );
}
