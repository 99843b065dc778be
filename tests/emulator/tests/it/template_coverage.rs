//! Every function of the template is exercised by this tier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lambda_emu::Template;

/// The functions the emulator tests invoke, each in its own test file.
const COVERED: &[&str] = &[
    "TokenMintFunction",
    "ServerTokenMintFunction",
    "JwksFunction",
    "KeyRotationFunction",
    "IssueFunction",
    "StatusPollerFunction",
    "CallbackReceiverFunction",
];

#[test]
fn every_function_of_the_template_is_invoked_by_an_emulator_test() {
    let root = lambda_emu::workspace_root();
    let template = Template::load(&root.join("template.yaml")).unwrap();
    let functions: Vec<String> = template
        .functions()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for f in &functions {
        assert!(
            COVERED.contains(&f.as_str()),
            "{f} is in the template but no emulator test invokes it"
        );
    }
    for c in COVERED {
        assert!(
            functions.iter().any(|f| f == c),
            "{c} is no longer in the template"
        );
    }
}

fn statements(template: &Template, function: &str) -> Vec<serde_norway::Value> {
    let f = template.resource(function).unwrap();
    f["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("Statement"))
        .flat_map(|s| s.as_sequence().cloned().unwrap_or_default())
        .collect()
}

fn actions(statement: &serde_norway::Value) -> Vec<String> {
    match &statement["Action"] {
        serde_norway::Value::String(a) => vec![a.clone()],
        serde_norway::Value::Sequence(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_issue_function_may_delete_idempotency_records_and_nothing_else() {
    let template = Template::load(&lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let deleting: Vec<serde_norway::Value> = statements(&template, "IssueFunction")
        .into_iter()
        .filter(|s| {
            actions(s)
                .iter()
                .any(|a| a == "dynamodb:DeleteItem" || a == "dynamodb:*")
        })
        .collect();
    assert_eq!(deleting.len(), 1, "{deleting:?}");
    let keys = &deleting[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert_eq!(
        keys.as_sequence().unwrap().as_slice(),
        [serde_norway::Value::String("IDEM#*".into())],
        "{keys:?}"
    );
}

#[test]
fn the_records_table_is_protected_from_deletion() {
    let template = Template::load(&lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let table = template.resource("RecordsTable").unwrap();
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    assert_eq!(table["DeletionPolicy"], "Retain");
}

#[test]
fn cors_origins_are_https_only() {
    let text = std::fs::read_to_string(lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let pattern = root["Parameters"]["AllowedOrigins"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(pattern.starts_with("^(|https://"), "{pattern}");
    assert!(
        !pattern.contains("https?") && !pattern.contains("http://"),
        "{pattern}"
    );
}

#[test]
fn the_routes_the_platform_calls_have_a_throttle_of_their_own() {
    let template = Template::load(&lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let routes: Vec<String> = template
        .http_routes()
        .unwrap()
        .into_iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    let api = template.resource("PartnerApi").unwrap();
    let settings = api["Properties"]["RouteSettings"].as_mapping().unwrap();
    for route in ["GET /.well-known/jwks.json", "POST /v1/callbacks/cak"] {
        assert!(
            routes.iter().any(|r| r == route),
            "{route} is not a route: {routes:?}"
        );
        let s = settings
            .get(route)
            .unwrap_or_else(|| panic!("{route} has no throttle of its own"));
        assert!(!s["ThrottlingRateLimit"].is_null() && !s["ThrottlingBurstLimit"].is_null());
    }
}

#[test]
fn every_function_behind_the_api_can_be_given_reserved_concurrency() {
    let template = Template::load(&lambda_emu::workspace_root().join("template.yaml")).unwrap();
    for f in [
        "TokenMintFunction",
        "ServerTokenMintFunction",
        "JwksFunction",
        "IssueFunction",
        "CallbackReceiverFunction",
    ] {
        let props = &template.resource(f).unwrap()["Properties"];
        assert!(
            !props["ReservedConcurrentExecutions"].is_null(),
            "{f} has no reserved-concurrency setting"
        );
    }
}
