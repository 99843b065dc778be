//! Every function of the template is exercised by this tier; the template's static promises
//! (permissions, throttles, the dashboard's metrics, the custom domain) hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lambda_emu::Template;
use serde_json::Value;

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

// -------------------------------------------------------------------------------------------------
// The metrics the code emits, read from its sources.
// -------------------------------------------------------------------------------------------------

/// One place in the sources that emits a metric: its name, the service it runs in (`None` for
/// the shared crate, which runs in several) and the dimensions it adds to `service`.
#[derive(Debug, Clone)]
struct Emission {
    name: String,
    service: Option<String>,
    dimensions: BTreeSet<String>,
    file: String,
}

/// The template as JSON; a short tag becomes a one-key object (`!Sub x` is `{"!Sub": x}`).
fn template_json() -> Value {
    let text = std::fs::read_to_string(lambda_emu::workspace_root().join("template.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(text: &str, at: usize) -> &str {
    let end = text[at..]
        .bytes()
        .position(|c| !is_ident(c))
        .map_or(text.len(), |n| at + n);
    &text[at..end]
}

/// The index of the bracket closing the one at `open`, skipping string and char literals.
fn closing(text: &str, open: usize) -> usize {
    let b = text.as_bytes();
    let (opener, closer) = (b[open], if b[open] == b'(' { b')' } else { b'}' });
    let (mut depth, mut i) = (0usize, open);
    while i < b.len() {
        match b[i] {
            b'r' if b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') => {
                i = text[i + 3..].find("\"#").map_or(b.len(), |n| i + 3 + n + 1);
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i = text[i + 2..].find('\'').map_or(b.len(), |n| i + 2 + n);
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            c if c == opener => depth += 1,
            c if c == closer => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {} in the sources", opener as char)
}

/// The code that runs in production: without full-line comments and `#[cfg(test)]` modules.
fn production_code(text: &str) -> String {
    let mut code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    while let Some(at) = code.find("#[cfg(test)]") {
        let rest = code[at + "#[cfg(test)]".len()..].trim_start();
        let item = code.len() - rest.len();
        let end = match rest.strip_prefix("mod ") {
            Some(m) => {
                let after = item + 4 + ident_at(m, 0).len();
                match code[after..].trim_start().as_bytes().first() {
                    Some(b'{') => closing(&code, code[after..].find('{').unwrap() + after) + 1,
                    _ => code[after..].find(';').unwrap() + after + 1,
                }
            }
            // A test-only function or item: up to its body's end (or its `;`).
            None => {
                let brace = rest.find('{').map(|n| item + n);
                let semi = rest.find(';').map(|n| item + n);
                match (brace, semi) {
                    (Some(b), Some(s)) if s < b => s + 1,
                    (Some(b), _) => closing(&code, b) + 1,
                    (None, Some(s)) => s + 1,
                    (None, None) => code.len(),
                }
            }
        };
        code.replace_range(at..end, "");
    }
    code
}

/// `const NAME: &str = "value";` of a crate.
fn str_constants(files: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for text in files {
        for (at, _) in text.match_indices("const ") {
            if at > 0 && is_ident(text.as_bytes()[at - 1]) {
                continue;
            }
            let name = ident_at(text, at + 6);
            let rest = &text[at + 6 + name.len()..];
            let Some(value) = rest.trim_start().strip_prefix(": &str = \"") else {
                continue;
            };
            let value = &value[..value.find('"').unwrap()];
            if let Some(old) = out.insert(name.to_owned(), value.to_owned()) {
                assert_eq!(old, value, "two &str constants {name} in one crate");
            }
        }
    }
    out
}

/// What a call's first argument is: a string literal or a path (its last segment).
enum FirstArg {
    Literal(String),
    Path(String),
}

/// One call of `.emit(`, `.add(` or `.count(` and where it is.
struct Call {
    method: &'static str,
    first: FirstArg,
    /// The text of its arguments.
    args: String,
    /// The enclosing function: its name, parameters, and its text up to the call.
    function: String,
    params: Vec<String>,
    before: String,
}

fn calls(text: &str) -> Vec<Call> {
    let mut out = Vec::new();
    for method in ["emit", "add", "count"] {
        let needle = format!(".{method}(");
        for (at, _) in text.match_indices(&needle) {
            let open = at + needle.len() - 1;
            let args = &text[open + 1..closing(text, open)];
            let arg = args.trim_start();
            let first = if let Some(lit) = arg.strip_prefix('"') {
                FirstArg::Literal(lit[..lit.find('"').unwrap()].to_owned())
            } else {
                let path: String = arg
                    .bytes()
                    .take_while(|&c| is_ident(c) || c == b':')
                    .map(char::from)
                    .collect();
                if path.is_empty()
                    || !matches!(
                        arg[path.len()..].trim_start().bytes().next(),
                        Some(b',' | b')') | None
                    )
                {
                    continue;
                }
                FirstArg::Path(path.rsplit("::").next().unwrap().to_owned())
            };
            let fn_at = text[..at]
                .match_indices("fn ")
                .filter(|(i, _)| *i == 0 || !is_ident(text.as_bytes()[i - 1]))
                .last()
                .map_or(0, |(i, _)| i);
            let function = ident_at(text, fn_at + 3).to_owned();
            let params_open = fn_at + text[fn_at..].find('(').unwrap();
            let params = text[params_open + 1..closing(text, params_open)]
                .split(',')
                .filter_map(|p| p.split(':').next())
                .map(|p| p.trim().trim_start_matches("mut ").to_owned())
                .collect();
            out.push(Call {
                method,
                first,
                args: args.to_owned(),
                function,
                params,
                before: text[fn_at..at].to_owned(),
            });
        }
    }
    out
}

/// The dimension names a call adds: `("name", value)` pairs among its arguments and
/// `with_dimension("name", …)` on the batch earlier in its function.
fn added_dimensions(call: &Call) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in call.args.match_indices("(\"") {
        let name = ident_at(&call.args, at + 2);
        if call.args[at + 2 + name.len()..].starts_with("\",") {
            out.insert(name.to_owned());
        }
    }
    for (at, _) in call.before.match_indices("with_dimension(\"") {
        out.insert(ident_at(&call.before, at + "with_dimension(\"".len()).to_owned());
    }
    out
}

fn is_constant_name(name: &str) -> bool {
    name.bytes().any(|c| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Every metric the functions and the shared crate emit: the string literals and `&str`
/// constants passed as a metric's name to `Recorder::emit`, `Metrics::add` or `Metrics::count`,
/// or to a function of the same file that passes its parameter on as the name (such as the
/// platform client's `count(metric, status)`), with the dimensions each call adds.
fn emitted_metrics() -> Vec<Emission> {
    let root = lambda_emu::workspace_root();
    let mut crates: Vec<(PathBuf, bool)> = vec![(root.join("shared"), false)];
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("src/main.rs").is_file() {
            crates.push((dir, true));
        }
    }
    let mut out = Vec::new();
    for (dir, is_function) in crates {
        let mut paths = Vec::new();
        rust_files(&dir.join("src"), &mut paths);
        let texts: Vec<String> = paths
            .iter()
            .map(|p| production_code(&std::fs::read_to_string(p).unwrap()))
            .collect();
        let constants = str_constants(&texts);
        let resolve = |name: &str, file: &str| -> String {
            let found = constants.get(name);
            found
                .unwrap_or_else(|| panic!("{file}: the metric name {name} is no &str constant"))
                .clone()
        };
        // The service a function's metrics carry: what its main passes to `Entry::start`.
        let service = is_function.then(|| {
            let main = production_code(&std::fs::read_to_string(dir.join("src/main.rs")).unwrap());
            let at = main.find("Entry::start(").expect("main calls Entry::start")
                + "Entry::start(".len();
            let arg = main[at..].trim_start();
            match arg.strip_prefix('"') {
                Some(lit) => lit[..lit.find('"').unwrap()].to_owned(),
                None => resolve(ident_at(arg, 0), "main.rs"),
            }
        });
        for (path, text) in paths.iter().zip(&texts) {
            let file = path.strip_prefix(&root).unwrap().display().to_string();
            let calls = calls(text);
            // Functions of this file that emit their parameter as a metric name, and the
            // dimensions they add.
            let mut forwarders: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            for c in &calls {
                if let FirstArg::Path(p) = &c.first
                    && c.params.contains(p)
                {
                    forwarders
                        .entry(c.function.as_str())
                        .or_default()
                        .extend(added_dimensions(c));
                }
            }
            for c in &calls {
                let name = match &c.first {
                    FirstArg::Literal(l) => l.clone(),
                    FirstArg::Path(p) if is_constant_name(p) => resolve(p, &file),
                    FirstArg::Path(_) => continue,
                };
                let mut dimensions = added_dimensions(c);
                if let Some(more) = forwarders.get(c.method) {
                    dimensions.extend(more.iter().cloned());
                }
                out.push(Emission {
                    name,
                    service: service.clone(),
                    dimensions,
                    file: file.clone(),
                });
            }
        }
    }
    out
}

/// The dimension sets under which CloudWatch publishes an emission, as the bundle's EMF
/// writer declares them (every metric is also rolled up by `service` alone).
fn published_dimension_sets(e: &Emission) -> Vec<BTreeSet<String>> {
    let mut m = shared::telemetry::Metrics::new("N", e.service.as_deref().unwrap_or("shared"));
    for d in &e.dimensions {
        m = m.with_dimension(d.as_str(), "x");
    }
    m.count(&e.name);
    let docs = m.take_documents(shared::clock::Timestamp::from_millis(0));
    docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| {
            set.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

// -------------------------------------------------------------------------------------------------
// The metrics the dashboard and the alarms watch.
// -------------------------------------------------------------------------------------------------

/// The namespace of the bundle's metrics, as a `!Sub` string of the template names it.
const BUNDLE_NAMESPACE: &str = "${MetricsNamespace}";

/// A metric a widget (or an alarm) names, with its dimensions (a value is `None` when a SEARCH
/// or Metrics Insights schema names the dimension without a value).
#[derive(Debug, Clone)]
struct Watched {
    by: String,
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, Option<String>>,
    stat: Option<String>,
    id: Option<String>,
}

/// A SEARCH schema's text and what follows it: up to the first `}` outside double quotes.
fn split_at_schema_end(s: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `SEARCH('{ns,dim,…} MetricName="X" …', …)` in an expression: namespace, dimensions, name.
fn searches(expression: &str, by: &str) -> Vec<Watched> {
    let mut out = Vec::new();
    for (at, _) in expression.match_indices("SEARCH('") {
        let start = at + "SEARCH('".len();
        let query = &expression[start..start + expression[start..].find('\'').unwrap()];
        let schema = query
            .trim_start()
            .strip_prefix('{')
            .and_then(split_at_schema_end)
            .unwrap_or_else(|| {
                panic!("{by}: SEARCH without an exact {{namespace,dimensions}} schema: {query}")
            });
        let mut names = schema
            .0
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned());
        let namespace = names.next().unwrap();
        let metric = schema
            .1
            .split_once("MetricName=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .unwrap_or_else(|| panic!("{by}: SEARCH without MetricName=\"…\": {query}"))
            .0;
        out.push(Watched {
            by: by.to_owned(),
            namespace,
            name: metric.to_owned(),
            dimensions: names.map(|n| (n, None)).collect(),
            stat: None,
            id: None,
        });
    }
    out
}

/// `SELECT …(X) FROM SCHEMA("ns", dim, …)` of a Metrics Insights query.
fn insights(query: &str, by: &str) -> Vec<Watched> {
    let Some((select, from)) = query.split_once(" FROM SCHEMA(") else {
        return Vec::new();
    };
    let metric = select
        .rsplit_once('(')
        .and_then(|(_, m)| m.split_once(')'))
        .unwrap()
        .0;
    let mut names = from[..from.find(')').unwrap()]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned());
    vec![Watched {
        by: by.to_owned(),
        namespace: names.next().unwrap(),
        name: metric.trim().to_owned(),
        dimensions: names.map(|n| (n, None)).collect(),
        stat: None,
        id: None,
    }]
}

/// The dashboard's body: the `!Sub` text, parsed (its `${…}` references left as they are).
fn dashboard_body(template: &Value) -> Value {
    let body = &template["Resources"]["SecurityDashboard"]["Properties"]["DashboardBody"]["!Sub"];
    serde_json::from_str(
        body.as_str()
            .expect("the dashboard body is one !Sub string"),
    )
    .expect("the dashboard body is JSON")
}

/// Every metric the metric widgets name, in rows and in SEARCH expressions, and every
/// expression of the widgets.
fn dashboard_metrics(body: &Value) -> (Vec<Watched>, Vec<String>) {
    let (mut metrics, mut expressions) = (Vec::new(), Vec::new());
    for w in body["widgets"].as_array().unwrap() {
        if w["type"] != "metric" {
            continue;
        }
        let props = &w["properties"];
        let by = format!("widget {:?}", props["title"].as_str().unwrap_or("?"));
        for row in props["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            let options = row.last().filter(|o| o.is_object());
            let fields: Vec<&str> = row
                .iter()
                .filter_map(Value::as_str)
                .inspect(|f| assert!(*f != "." && *f != "...", "{by}: write every row in full"))
                .collect();
            if let Some(e) = options.and_then(|o| o["expression"].as_str()) {
                expressions.push(e.to_owned());
                metrics.extend(searches(e, &by));
                continue;
            }
            assert!(
                fields.len() >= 2 && fields.len().is_multiple_of(2),
                "{by}: a malformed row {row:?}"
            );
            metrics.push(Watched {
                by: by.clone(),
                namespace: fields[0].to_owned(),
                name: fields[1].to_owned(),
                dimensions: fields[2..]
                    .chunks(2)
                    .map(|kv| (kv[0].to_owned(), Some(kv[1].to_owned())))
                    .collect(),
                stat: options
                    .and_then(|o| o["stat"].as_str())
                    .or(props["stat"].as_str())
                    .map(str::to_owned),
                id: options.and_then(|o| o["id"].as_str()).map(str::to_owned),
            });
        }
    }
    (metrics, expressions)
}

/// Every metric the alarms of the template watch.
fn alarm_metrics(template: &Value) -> Vec<Watched> {
    let mut out = Vec::new();
    let namespace_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        v if v["!Ref"].is_string() => format!("${{{}}}", v["!Ref"].as_str().unwrap()),
        v => panic!("a namespace written as {v}"),
    };
    let dimensions_of = |v: &Value| -> BTreeMap<String, Option<String>> {
        v.as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        (
                            d["Name"].as_str().unwrap().to_owned(),
                            d["Value"].as_str().map(str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for (id, r) in template["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &r["Properties"];
        let by = format!("alarm {id}");
        if p["MetricName"].is_string() {
            out.push(Watched {
                by: by.clone(),
                namespace: namespace_of(&p["Namespace"]),
                name: p["MetricName"].as_str().unwrap().to_owned(),
                dimensions: dimensions_of(&p["Dimensions"]),
                stat: p["Statistic"].as_str().map(str::to_owned),
                id: None,
            });
        }
        for m in p["Metrics"].as_array().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if metric.is_object() {
                out.push(Watched {
                    by: by.clone(),
                    namespace: namespace_of(&metric["Namespace"]),
                    name: metric["MetricName"].as_str().unwrap().to_owned(),
                    dimensions: dimensions_of(&metric["Dimensions"]),
                    stat: m["MetricStat"]["Stat"].as_str().map(str::to_owned),
                    id: m["Id"].as_str().map(str::to_owned),
                });
            }
            let expression = match &m["Expression"] {
                Value::String(e) => e.clone(),
                e if e["!Sub"].is_string() => e["!Sub"].as_str().unwrap().to_owned(),
                _ => continue,
            };
            out.extend(insights(&expression, &by));
            out.extend(searches(&expression, &by));
        }
    }
    out
}

/// What is wrong with each metric of the bundle's namespace that `watched` names: no code
/// emits it, not in the named service, or not under the named dimension set.
fn unemitted(watched: &[Watched], emitted: &[Emission]) -> Vec<String> {
    let mut problems = Vec::new();
    for w in watched {
        if w.namespace != BUNDLE_NAMESPACE {
            if !w.namespace.starts_with("AWS/") {
                problems.push(format!(
                    "{} names the namespace {:?}: the bundle's metrics are in {BUNDLE_NAMESPACE}",
                    w.by, w.namespace
                ));
            }
            continue;
        }
        let by_name: Vec<&Emission> = emitted.iter().filter(|e| e.name == w.name).collect();
        if by_name.is_empty() {
            problems.push(format!("{} watches {}, which no code emits", w.by, w.name));
            continue;
        }
        let service = w.dimensions.get("service").cloned().flatten();
        let in_service: Vec<&&Emission> = by_name
            .iter()
            .filter(|e| service.is_none() || e.service.is_none() || e.service == service)
            .collect();
        if in_service.is_empty() {
            problems.push(format!(
                "{} watches {} of service {service:?}, emitted only by {:?}",
                w.by,
                w.name,
                by_name.iter().map(|e| &e.file).collect::<Vec<_>>()
            ));
            continue;
        }
        let named: BTreeSet<String> = w.dimensions.keys().cloned().collect();
        let published: BTreeSet<BTreeSet<String>> = in_service
            .iter()
            .flat_map(|e| published_dimension_sets(e))
            .collect();
        if !published.contains(&named) {
            problems.push(format!(
                "{} watches {} with the dimensions {named:?}; it is published with {published:?}",
                w.by, w.name
            ));
        }
    }
    problems
}

#[test]
fn the_scan_of_the_sources_finds_the_metrics_and_dimensions_the_code_emits() {
    // A few emissions the scan must see, each by another route: a literal in the shared
    // recorder, a constant through the platform client's forwarding function, a constant of a
    // `pub mod metrics` on a batch with a dimension, a literal in a function.
    let emitted = emitted_metrics();
    let find = |name: &str, service: Option<&str>| -> BTreeSet<BTreeSet<String>> {
        emitted
            .iter()
            .filter(|e| e.name == name && e.service.as_deref() == service)
            .map(|e| e.dimensions.clone())
            .collect()
    };
    let set = |d: &[&str]| {
        d.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<String>>()
    };
    assert!(
        find("AuthFailures", None).contains(&set(&["reason"])),
        "{emitted:#?}"
    );
    assert!(
        find("PlatformAuthFailures", None).contains(&set(&["status"])),
        "{emitted:#?}"
    );
    assert!(
        find("CallbackSignatureFailures", Some("callback-receiver")).contains(&set(&["reason"])),
        "{emitted:#?}"
    );
    assert!(
        find("Issuances", Some("issue")).contains(&set(&["program"])),
        "{emitted:#?}"
    );
    assert!(
        !emitted.iter().any(|e| e.name == "Polled"),
        "a unit test's metric is not emitted"
    );
}

#[test]
fn the_audits_catalogue_of_metrics_is_exactly_what_the_code_emits() {
    // `opsctl audit` checks the alarms against its own list (it runs without the sources).
    let catalogue = opsctl::audit::template::EMITTED_METRICS;
    let listed: BTreeSet<String> = catalogue.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(listed.len(), catalogue.len(), "a metric is listed twice");
    let emitted: BTreeSet<String> = emitted_metrics().into_iter().map(|e| e.name).collect();
    assert_eq!(
        listed,
        emitted,
        "missing from opsctl::audit::template::EMITTED_METRICS: {:?}; listed but not emitted: {:?}",
        emitted.difference(&listed).collect::<Vec<_>>(),
        listed.difference(&emitted).collect::<Vec<_>>()
    );
}

#[test]
fn every_dashboard_widget_watches_a_metric_the_code_emits() {
    let template = template_json();
    let (watched, _) = dashboard_metrics(&dashboard_body(&template));
    assert!(watched.iter().any(|w| w.namespace == BUNDLE_NAMESPACE));
    let problems = unemitted(&watched, &emitted_metrics());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The AWS metrics name resources of this stack.
    let resources = template["Resources"].as_object().unwrap();
    for w in watched.iter().filter(|w| w.namespace.starts_with("AWS/")) {
        for value in w.dimensions.values().flatten() {
            let id = value
                .strip_prefix("${")
                .and_then(|v| v.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{}: {} names {value}, not a resource", w.by, w.name));
            assert!(resources.contains_key(id), "{}: no resource {id}", w.by);
        }
    }
}

#[test]
fn every_alarm_watches_a_metric_the_code_emits() {
    let watched = alarm_metrics(&template_json());
    assert!(watched.iter().any(|w| w.namespace == BUNDLE_NAMESPACE));
    let problems = unemitted(&watched, &emitted_metrics());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_dashboard_covers_every_monitoring_item_of_the_security_checklist() {
    let template = template_json();
    let body = dashboard_body(&template);
    let (watched, expressions) = dashboard_metrics(&body);
    let watches = |name: &str| {
        watched
            .iter()
            .any(|w| w.namespace == BUNDLE_NAMESPACE && w.name == name)
    };
    for item in [
        "AuthFailures",
        "PlatformAuthFailures",
        "Issuances",
        "WaitOnchainSeconds",
        "CredentialsTimedOut",
        "RotationRuns",
        "ApiKeyDaysToExpiry",
        "WebhookSecretAgeDays",
    ] {
        assert!(watches(item), "the dashboard does not show {item}");
    }
    // Authentication failures by reason (the metric) and by route (the audit log lines).
    assert!(
        watched
            .iter()
            .any(|w| w.name == "AuthFailures" && w.dimensions.contains_key("reason"))
    );
    let queries: Vec<&str> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["properties"]["query"].as_str())
        .collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("audit = 'authentication'") && q.contains("route")),
        "no widget counts the refused authentications by route: {queries:?}"
    );
    // Issuance volume inside its anomaly detection band.
    let issuances = watched
        .iter()
        .find(|w| w.name == "Issuances" && w.id.is_some())
        .expect("the issuance metric has an id for its band");
    let band = format!(
        "ANOMALY_DETECTION_BAND({}",
        issuances.id.as_deref().unwrap()
    );
    assert!(
        expressions.iter().any(|e| e.starts_with(&band)),
        "no {band}, …) in {expressions:?}"
    );
    // The WAIT_ONCHAIN duration's percentiles.
    for p in ["p50", "p90", "p99"] {
        assert!(
            watched
                .iter()
                .any(|w| w.name == "WaitOnchainSeconds" && w.stat.as_deref() == Some(p)),
            "no {p} of WaitOnchainSeconds"
        );
    }
    // Every callback outcome the receiver counts.
    for e in emitted_metrics()
        .iter()
        .filter(|e| e.service.as_deref() == Some("callback-receiver"))
    {
        assert!(watches(&e.name), "the dashboard does not show {}", e.name);
    }
    // Where to find it.
    let url = template["Outputs"]["DashboardUrl"]["Value"]["!Sub"]
        .as_str()
        .expect("a DashboardUrl output");
    assert_eq!(
        url,
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${SecurityDashboard}"
    );
    assert_eq!(
        template["Resources"]["SecurityDashboard"]["Type"],
        "AWS::CloudWatch::Dashboard"
    );
}

// -------------------------------------------------------------------------------------------------
// The custom domain.
// -------------------------------------------------------------------------------------------------

/// A value of the template under given parameters: text, truth, or `AWS::NoValue`.
#[derive(Debug, Clone, PartialEq)]
enum Eval {
    Text(String),
    Truth(bool),
    NoValue,
}

/// Evaluates the intrinsic functions the custom domain uses (`!Ref`, `!Sub`, `!If`, `!Equals`,
/// `!Not`, `!And`, `!Or`, `!Condition`), with the template's conditions.
struct Stack<'a> {
    template: &'a Value,
    values: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    /// The template deployed with its defaults and `parameters`, as API `abc123` in eu-west-1.
    fn deployed(template: &'a Value, parameters: &[(&str, &str)]) -> Self {
        let mut values: BTreeMap<String, String> = template["Parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, p)| match &p["Default"] {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        for (k, v) in [
            ("PartnerApi", "abc123"),
            ("AWS::Region", "eu-west-1"),
            ("AWS::URLSuffix", "amazonaws.com"),
        ]
        .iter()
        .chain(parameters)
        {
            values.insert((*k).to_owned(), (*v).to_owned());
        }
        Self { template, values }
    }

    fn condition(&self, name: &str) -> bool {
        match self.eval(&self.template["Conditions"][name]) {
            Eval::Truth(t) => t,
            other => panic!("condition {name} is {other:?}"),
        }
    }

    fn text(&self, v: &Value) -> Eval {
        self.eval(v)
    }

    fn truth(&self, v: &Value) -> bool {
        match self.eval(v) {
            Eval::Truth(t) => t,
            other => panic!("{v} is {other:?}, not a condition"),
        }
    }

    fn eval(&self, v: &Value) -> Eval {
        let lookup = |name: &str| {
            self.values
                .get(name)
                .unwrap_or_else(|| panic!("nothing for {name}"))
                .clone()
        };
        let Some((tag, arg)) = v.as_object().and_then(|o| o.iter().next()) else {
            return Eval::Text(
                v.as_str()
                    .unwrap_or_else(|| panic!("not text: {v}"))
                    .to_owned(),
            );
        };
        let list = || arg.as_array().unwrap_or_else(|| panic!("{tag} of {arg}"));
        match tag.as_str() {
            "!Ref" if arg == "AWS::NoValue" => Eval::NoValue,
            "!Ref" => Eval::Text(lookup(arg.as_str().unwrap())),
            "!Sub" => {
                let mut text = arg.as_str().unwrap().to_owned();
                while let Some(at) = text.find("${") {
                    let end = at + text[at..].find('}').unwrap();
                    let name = text[at + 2..end].to_owned();
                    text.replace_range(at..=end, &lookup(&name));
                }
                Eval::Text(text)
            }
            "!If" => {
                let l = list();
                if self.condition(l[0].as_str().unwrap()) {
                    self.eval(&l[1])
                } else {
                    self.eval(&l[2])
                }
            }
            "!Equals" => Eval::Truth(self.eval(&list()[0]) == self.eval(&list()[1])),
            "!Not" => Eval::Truth(!self.truth(&list()[0])),
            "!And" => Eval::Truth(list().iter().all(|c| self.truth(c))),
            "!Or" => Eval::Truth(list().iter().any(|c| self.truth(c))),
            "!Condition" => Eval::Truth(self.condition(arg.as_str().unwrap())),
            other => panic!("{other} is not evaluated here"),
        }
    }

    /// Whether resource `id` is created.
    fn creates(&self, id: &str) -> bool {
        self.template["Resources"][id]["Condition"]
            .as_str()
            .is_none_or(|c| self.condition(c))
    }

    fn output(&self, name: &str) -> String {
        match self.text(&self.template["Outputs"][name]["Value"]) {
            Eval::Text(t) => t,
            other => panic!("output {name} is {other:?}"),
        }
    }

    /// The rules (`Rules`) that refuse these parameters.
    fn refusing_rules(&self) -> Vec<String> {
        self.template["Rules"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["RuleCondition"].is_null() || self.truth(&r["RuleCondition"]))
            .filter(|(_, r)| {
                !r["Assertions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|a| self.truth(&a["Assert"]))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

const DOMAIN: &str = "partner-api.example.com";
const CERTIFICATE: &str =
    "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab";

/// The resources of the custom domain: every API Gateway domain, mapping and DNS record.
fn custom_domain_resources(template: &Value) -> Vec<String> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            matches!(
                r["Type"].as_str(),
                Some(
                    "AWS::ApiGatewayV2::DomainName"
                        | "AWS::ApiGatewayV2::ApiMapping"
                        | "AWS::Route53::RecordSet"
                        | "AWS::Route53::RecordSetGroup"
                )
            )
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn the_custom_domain_is_regional_tls_1_2_and_created_only_when_named() {
    let template = template_json();
    let domain = &template["Resources"]["CustomDomain"];
    assert_eq!(domain["Type"], "AWS::ApiGatewayV2::DomainName");
    assert_eq!(domain["Condition"], "HasCustomDomain");
    let config = &domain["Properties"]["DomainNameConfigurations"][0];
    assert_eq!(config["SecurityPolicy"], "TLS_1_2");
    assert_eq!(config["EndpointType"], "REGIONAL");

    let mapping = &template["Resources"]["CustomDomainMapping"];
    assert_eq!(mapping["Type"], "AWS::ApiGatewayV2::ApiMapping");
    assert_eq!(mapping["Properties"]["ApiId"]["!Ref"], "PartnerApi");
    assert_eq!(mapping["Properties"]["DomainName"]["!Ref"], "CustomDomain");
    // SAM's reference to the API's generated `$default` stage.
    assert_eq!(mapping["Properties"]["Stage"]["!Ref"], "PartnerApi.Stage");

    let record = &template["Resources"]["CustomDomainRecord"];
    assert_eq!(record["Type"], "AWS::Route53::RecordSet");
    assert_eq!(record["Condition"], "HasHostedZone");
    assert_eq!(record["Properties"]["Type"], "A");
    let alias = &record["Properties"]["AliasTarget"];
    assert_eq!(
        alias["DNSName"]["!GetAtt"],
        "CustomDomain.RegionalDomainName"
    );
    assert_eq!(
        alias["HostedZoneId"]["!GetAtt"],
        "CustomDomain.RegionalHostedZoneId"
    );

    let resources = custom_domain_resources(&template);
    assert_eq!(resources.len(), 3, "{resources:?}");
    // By default: none of them.
    let default = Stack::deployed(&template, &[]);
    for r in &resources {
        assert!(
            !default.creates(r),
            "{r} is created without a custom domain"
        );
    }
    assert!(default.refusing_rules().is_empty());
    // A domain and its certificate: the domain and the mapping at the root, no DNS record.
    let named = Stack::deployed(
        &template,
        &[
            ("CustomDomainName", DOMAIN),
            ("CustomDomainCertificateArn", CERTIFICATE),
        ],
    );
    assert!(named.refusing_rules().is_empty());
    assert!(named.creates("CustomDomain") && named.creates("CustomDomainMapping"));
    assert!(!named.creates("CustomDomainRecord"));
    let props = &domain["Properties"];
    assert_eq!(named.text(&props["DomainName"]), Eval::Text(DOMAIN.into()));
    assert_eq!(
        named.text(&config["CertificateArn"]),
        Eval::Text(CERTIFICATE.into())
    );
    assert_eq!(
        named.text(&mapping["Properties"]["ApiMappingKey"]),
        Eval::NoValue
    );
    // With a hosted zone and a base path: the record in that zone, the mapping under the path.
    let zoned = Stack::deployed(
        &template,
        &[
            ("CustomDomainName", DOMAIN),
            ("CustomDomainCertificateArn", CERTIFICATE),
            ("CustomDomainHostedZoneId", "Z0123456789ABCDEFGHIJ"),
            ("CustomDomainBasePath", "partner"),
        ],
    );
    assert!(zoned.refusing_rules().is_empty());
    assert!(resources.iter().all(|r| zoned.creates(r)));
    assert_eq!(
        zoned.text(&record["Properties"]["HostedZoneId"]),
        Eval::Text("Z0123456789ABCDEFGHIJ".into())
    );
    assert_eq!(
        zoned.text(&record["Properties"]["Name"]),
        Eval::Text(DOMAIN.into())
    );
    assert_eq!(
        zoned.text(&mapping["Properties"]["ApiMappingKey"]),
        Eval::Text("partner".into())
    );
    // A domain without its certificate, or domain settings without the domain, are refused.
    let uncertified = Stack::deployed(&template, &[("CustomDomainName", DOMAIN)]);
    assert_eq!(
        uncertified.refusing_rules(),
        ["CustomDomainNeedsItsCertificate"]
    );
    let stray = Stack::deployed(&template, &[("CustomDomainBasePath", "partner")]);
    assert_eq!(
        stray.refusing_rules(),
        ["CustomDomainSettingsNeedTheDomain"]
    );
    // The parameters are offered together in the console.
    let groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .unwrap();
    for p in [
        "CustomDomainName",
        "CustomDomainCertificateArn",
        "CustomDomainHostedZoneId",
        "CustomDomainBasePath",
    ] {
        assert!(
            groups
                .iter()
                .any(|g| g["Parameters"].as_array().unwrap().iter().any(|n| n == p)),
            "{p} is in no parameter group"
        );
    }
}

#[test]
fn the_urls_to_register_at_the_platform_name_the_custom_domain_when_it_is_set() {
    let template = template_json();
    let default = Stack::deployed(&template, &[]);
    let execute_api = "https://abc123.execute-api.eu-west-1.amazonaws.com";
    assert_eq!(default.output("ApiUrl"), execute_api);
    assert_eq!(
        default.output("JwksUrl"),
        format!("{execute_api}/.well-known/jwks.json")
    );
    assert_eq!(
        default.output("CallbackUrl"),
        format!("{execute_api}/v1/callbacks/cak")
    );

    let named = Stack::deployed(
        &template,
        &[
            ("CustomDomainName", DOMAIN),
            ("CustomDomainCertificateArn", CERTIFICATE),
        ],
    );
    assert_eq!(named.output("ApiUrl"), format!("https://{DOMAIN}"));
    assert_eq!(
        named.output("JwksUrl"),
        format!("https://{DOMAIN}/.well-known/jwks.json")
    );
    assert_eq!(
        named.output("CallbackUrl"),
        format!("https://{DOMAIN}/v1/callbacks/cak")
    );
    // The execute-api address still answers, and is still given.
    assert_eq!(named.output("ExecuteApiUrl"), execute_api);

    let under_path = Stack::deployed(
        &template,
        &[
            ("CustomDomainName", DOMAIN),
            ("CustomDomainCertificateArn", CERTIFICATE),
            ("CustomDomainBasePath", "partner/v1"),
        ],
    );
    assert_eq!(
        under_path.output("JwksUrl"),
        format!("https://{DOMAIN}/partner/v1/.well-known/jwks.json")
    );
    assert_eq!(
        under_path.output("CallbackUrl"),
        format!("https://{DOMAIN}/partner/v1/v1/callbacks/cak")
    );
    // The routes the URLs name are the API's.
    let routes: Vec<String> = Template::load(&lambda_emu::workspace_root().join("template.yaml"))
        .unwrap()
        .http_routes()
        .unwrap()
        .into_iter()
        .map(|(_, path, _)| path)
        .collect();
    for path in ["/.well-known/jwks.json", "/v1/callbacks/cak"] {
        assert!(
            routes.iter().any(|r| r == path),
            "{path} is not a route: {routes:?}"
        );
    }
}
