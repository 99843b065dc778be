//! Static checks of the SAM template: one finding for each checklist item read from the template
//! ([`Method::Template`]), from the template's text alone, without AWS.
//!
//! The template is parsed with `serde_norway` and read as JSON values. A CloudFormation short
//! tag is a one-key object (`!Ref X` is `{"!Ref": "X"}`, `!GetAtt A.B` is `{"!GetAtt": "A.B"}`);
//! the long forms (`Ref`, `Fn::GetAtt`, …) are read the same way, and both branches of an
//! `!If` are checked (an `!Ref AWS::NoValue` branch is nothing). A template that does not parse
//! fails every item with the parse error.
//!
//! Evidence lines name the resource's logical id (the `Resources.` prefix left out), the property
//! path and the value as written, e.g.
//! `RecordsTable.Properties.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled: true`.
//! A value that looks like a secret is never printed: only where it is, what it resembles and its
//! length (`<redacted: sk_… (43 characters)>`).
//!
//! # What each check looks at
//!
//! * `no-secret-in-template` — every string of the template (values and keys, `!Sub` texts
//!   included) is scanned for an API key secret (`sk_` and 20 or more base64url characters), a
//!   Standard Webhooks secret or signing key (`whsec_`, `whsk_` and 16 or more), a PEM block
//!   (`-----BEGIN`), a private JWK member (`"d":` inside a string) and an AWS secret access key (40
//!   base64 characters after `aws_secret_access_key`, `SecretAccessKey` or `aws_secret_key`).
//!   Every function variable (`Globals.Function.Environment` included) whose name ends in SECRET,
//!   KEY, PASSWORD or TOKEN (or their plurals, PASSWD) must be a reference: a `!Ref` to a `NoEcho`
//!   parameter, or a `!Ref`/`!GetAtt` of an `AWS::SecretsManager::Secret` (its ARN). A literal, a
//!   `!Sub` or a `{{resolve:…}}` dynamic reference (which writes the secret's value into the
//!   function's configuration) fails. Names ending `_SECRET_NAME`/`_ARN` name a secret and are
//!   fine. A parameter named like a secret (a word Secret, Password or Key, and no word Name, Arn
//!   or Id; SSM parameter types, whose value is a parameter's name, excepted) must be
//!   `NoEcho: true` without a `Default`.
//! * `keys-in-secrets-manager` — the signing key set, the API key registry, the data keys and the
//!   webhook secrets are the secrets the functions' `KEY_SET_SECRET_NAME`,
//!   `API_KEYS_SECRET_NAME`, `DATA_KEYS_SECRET_NAME` and `WEBHOOK_SECRETS_SECRET_NAME` variables
//!   name; each must be named by some function, and what it names must be an
//!   `AWS::SecretsManager::Secret` (or a secret outside the template, read from Secrets Manager).
//!   Every secret of the template holds no key material: its `SecretString` and
//!   `GenerateSecretString.SecretStringTemplate` are absent or an empty JSON document (no string
//!   in it, like `{"version":0,"keys":[]}`); a `SecretString` set from an intrinsic (key material
//!   passing through the stack's inputs) fails. No function variable carries a private key: none
//!   is named like one (a word PRIVATE, SIGNING_KEY, or a name ending `_JWK`, `_PEM`, `KEY_SET`,
//!   `DATA_KEY(S)`, without a `_NAME`/`_ARN`/`_ID` ending) nor holds a PEM private key or a private
//!   JWK. Each function names every secret its policy lets it read by a `*_SECRET_NAME` (or
//!   `*_SECRET_ARN`) variable of its own or of `Globals`, and a variable naming a secret has such
//!   a name.
//! * `least-privilege` — every statement of every function's inline `Policies`, of every
//!   `AWS::IAM::Role`'s `Policies` and of every `AWS::IAM::Policy`/`ManagedPolicy`/`RolePolicy`.
//!   An `Allow` statement fails with an action holding a wildcard (`*`, `service:*`, `s3:Get*`),
//!   with `NotAction` or `NotResource`, without `Resource`, with `Resource: "*"` unless every one
//!   of its actions is in [`STAR_ONLY_ACTIONS`], or with an ARN whose resource part is `*` (every
//!   resource of the service). `Deny` statements restrict and are only reported. Resource policies
//!   (a KMS key policy, a queue policy) are not identity policies and are not read: in a key
//!   policy `Resource: "*"` means the key itself.
//!
//!   SAM policy templates are reported with their parameters. The bundle's functions need only
//!   item-level actions confined to their own record kinds by `dynamodb:LeadingKeys`, and single
//!   named secrets; a template passes only if it is in [`NARROW_SAM_TEMPLATES`] (a fixed, short
//!   list of actions on the one resource its parameter names) and no parameter is `*`. Every
//!   DynamoDB template (`DynamoDBCrudPolicy`, `DynamoDBReadPolicy`, …) grants table-wide access
//!   (every record kind, `DeleteItem`/`Scan` for Crud) without a `LeadingKeys` condition: broader
//!   than any function of the bundle needs, so it fails. Managed policies fail unless they are
//!   the ones SAM attaches itself ([`SAM_IMPLICIT_MANAGED_POLICIES`]), and a function `Role` from
//!   outside the template fails: its permissions cannot be read.
//! * `monitoring-alarms` — every `AWS::CloudWatch::Alarm`: the metrics it watches (`MetricName`,
//!   `Metrics[].MetricStat.Metric`, and the metric of a Metrics Insights `Expression`) in the
//!   bundle's namespace (`!Ref MetricsNamespace`, its default, `${MetricsNamespace}` in a `!Sub`)
//!   must be in [`EMITTED_METRICS`]; AWS namespaces (`AWS/…`) are not checked against it, any
//!   other namespace fails. Every alarm has `AlarmActions` (an `!Ref` must name an
//!   `AWS::SNS::Topic`). Alarms must watch auth failures (`AuthFailures`), the platform's 401/403
//!   (`PlatformAuthFailures`), the issuance volume (an `ANOMALY_DETECTION_BAND` over `Issuances`
//!   that is the alarm's `ThresholdMetricId`), long WAIT_ONCHAIN (`WaitOnchainAlerts`), timed-out
//!   credentials (`CredentialsTimedOut`), refused callbacks (`CallbackSignatureFailures`),
//!   callbacks not recorded (`CallbackStoreFailures`) and key rotation errors (`AWS/Lambda`
//!   `Errors` of the key rotation function, or `RotationRuns`).
//! * `log-retention` — every `AWS::Logs::LogGroup` has `RetentionInDays`; every function has a log
//!   group of the template: its (or `Globals`') `LoggingConfig.LogGroup` is a `!Ref` of one, or
//!   the name of one, or a log group is named `/aws/lambda/${Function}`. Without one Lambda
//!   creates `/aws/lambda/<name>` itself, kept forever.
//! * `table-protection` — every `AWS::DynamoDB::Table` has `SSESpecification.SSEEnabled: true` and
//!   `PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled: true` (literally: a value from
//!   a parameter can be turned off); `DeletionProtectionEnabled` and `DeletionPolicy` are
//!   reported. An `AWS::Serverless::SimpleTable` fails (it has no point-in-time recovery).
//! * `rotation-schedules` — an `AWS::SecretsManager::RotationSchedule` whose `SecretId` is the
//!   signing key set, with `RotationRules` (`ScheduleExpression` or `AutomaticallyAfterDays`) and a
//!   rotation function; and the key rotation function (the schedule's `RotationLambdaARN`, or the
//!   function built from the `key-rotation` binary) has an enabled `Schedule`/`ScheduleV2` event.
//!
//! # The `Resource: "*"` allow-list
//!
//! [`STAR_ONLY_ACTIONS`] holds the actions the Service Authorization Reference lists without a
//! resource type: IAM can grant them on `*` only, so `*` is not a wider grant than an ARN would
//! be. Every other action takes an ARN, and `*` then means every resource of the account.
//! `logs:CreateLogGroup`, `logs:CreateLogStream` and `logs:PutLogEvents` are not in it: they take
//! a log group's ARN (SAM's `AWSLambdaBasicExecutionRole` grants them on `*`, outside the
//! template).

use serde_json::{Map, Value};

mod model;
mod scan;

use model::*;
use scan::*;

use super::checklist;
use super::report::{Finding, Item, Method, Outcome};

/// Every metric name the bundle's code emits in its namespace (Embedded Metric Format): the shared
/// crate (the auth recorder, the platform client) and every function. The emulator tier checks
/// this list against a scan of the sources
/// (`tests/emulator/tests/it/template_coverage.rs`).
pub const EMITTED_METRICS: &[&str] = &[
    // shared: the auth failure recorder and the platform client.
    "AuthFailures",
    "PlatformAuthFailures",
    "UpstreamErrors",
    // token-mint.
    "TokensMinted",
    // issue.
    "Issuances",
    // callback-receiver.
    "CallbacksReceived",
    "CallbackDuplicates",
    "CallbackSignatureFailures",
    "CallbackUnknownSchema",
    "CallbackStoreFailures",
    "CallbackRouteFailures",
    "CallbackForeignIssuer",
    // key-rotation.
    "RotationRuns",
    "KeySetChanges",
    "RotationsSuperseded",
    "ApiKeyDaysToExpiry",
    "WebhookSecretAgeDays",
    "SigningKeyAgeDays",
    // status-poller.
    "StatusPolls",
    "CredentialsIssued",
    "CredentialsStillWaiting",
    "CredentialsTimedOut",
    "CredentialsFailed",
    "WaitOnchainAlerts",
    "WaitOnchainSeconds",
    "PollRunsStoppedEarly",
    "PollErrors",
    "IssuancesAbandoned",
];

/// Actions without a resource type in the Service Authorization Reference: they can only be
/// granted on `Resource: "*"`, so a statement of these alone may name `*`.
pub const STAR_ONLY_ACTIONS: &[&str] = &[
    // CloudWatch metrics (EMF goes through the logs; a direct PutMetricData has no resource).
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    // X-Ray (what `Tracing: Active` needs).
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
    // Listing and describing, without a resource.
    "logs:DescribeLogGroups",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:ListSecrets",
    "ec2:DescribeNetworkInterfaces",
    "sts:GetCallerIdentity",
];

/// SAM policy templates narrow enough for the bundle: each grants a fixed, short list of actions
/// on the one resource its parameter names (`SQSSendMessagePolicy`'s `sqs:SendMessage*` is
/// `SendMessage` and `SendMessageBatch`; `CloudWatchPutMetricPolicy` is `PutMetricData`, on `*`
/// only).
pub const NARROW_SAM_TEMPLATES: &[&str] = &[
    "AWSSecretsManagerGetSecretValuePolicy",
    "SNSPublishMessagePolicy",
    "SQSSendMessagePolicy",
    "KMSDecryptPolicy",
    "CloudWatchPutMetricPolicy",
];

/// The managed policies SAM attaches to a function itself (the basic execution role, and X-Ray
/// with `Tracing: Active`): naming them adds nothing.
pub const SAM_IMPLICIT_MANAGED_POLICIES: &[&str] =
    &["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"];

/// The secrets the bundle keeps, by the variable that names each to the functions.
const KEY_SECRETS: &[(&str, &str)] = &[
    ("KEY_SET_SECRET_NAME", "the signing key set"),
    ("API_KEYS_SECRET_NAME", "the API key registry"),
    ("DATA_KEYS_SECRET_NAME", "the data keys"),
    ("WEBHOOK_SECRETS_SECRET_NAME", "the webhook secrets"),
];

/// The findings of the template items: one for each item of [`checklist::ITEMS`] whose method is
/// [`Method::Template`], in checklist order.
pub fn check(text: &str) -> Vec<Finding> {
    let parsed = Template::parse(text);
    checklist::ITEMS
        .iter()
        .filter(|i| i.method == Method::Template)
        .map(|i| {
            let item = checklist::by_id(i.id);
            match &parsed {
                Err(why) => Finding::new(item, Outcome::fail(why.clone()), Vec::new()),
                Ok(t) => check_item(t, item),
            }
        })
        .collect()
}

fn check_item(t: &Template, item: Item) -> Finding {
    let check = match item.id {
        "no-secret-in-template" => no_secret_in_template(t),
        "keys-in-secrets-manager" => keys_in_secrets_manager(t),
        "least-privilege" => least_privilege(t),
        "monitoring-alarms" => monitoring_alarms(t),
        "log-retention" => log_retention(t),
        "table-protection" => table_protection(t),
        "rotation-schedules" => rotation_schedules(t),
        other => {
            let mut c = Check::default();
            c.fail(format!(
                "the audit has no template check for the item {other}"
            ));
            c
        }
    };
    check.finding(item)
}

// -------------------------------------------------------------------------------------------------
// The outcome of one check.
// -------------------------------------------------------------------------------------------------

/// What a check saw (evidence) and what it found wrong.
#[derive(Default)]
struct Check {
    evidence: Vec<String>,
    problems: Vec<String>,
}

impl Check {
    fn saw(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }

    fn fail(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    fn finding(self, item: Item) -> Finding {
        let outcome = match self.problems.len() {
            0 => Outcome::Pass,
            1 => Outcome::fail(self.problems.concat()),
            n => Outcome::fail(format!("{n} problems: {}", self.problems.join("; "))),
        };
        Finding::new(item, outcome, self.evidence)
    }
}

// -------------------------------------------------------------------------------------------------
// no-secret-in-template
// -------------------------------------------------------------------------------------------------

fn no_secret_in_template(t: &Template) -> Check {
    let mut c = Check::default();
    let mut all = Vec::new();
    strings(&t.root, "", &mut all);
    let mut found = 0;
    for (path, s) in &all {
        for suspect in suspects(s) {
            found += 1;
            c.fail(format!(
                "{path} holds what looks like {} ({})",
                suspect.kind, suspect.hint
            ));
        }
    }
    c.saw(format!(
        "{} strings of the template scanned for API key secrets (sk_), webhook secrets and keys \
         (whsec_, whsk_), PEM blocks, private JWK members (\"d\") and AWS secret access keys: {found} found",
        all.len()
    ));

    let mut named = 0;
    for var in t.all_env() {
        if names_a_secret(var.name) {
            named += 1;
            c.saw(format!(
                "{}: {} (names a secret)",
                var.path,
                show(var.value)
            ));
        } else if secret_like_variable(var.name) {
            for v in alternatives(var.value) {
                match reference(t, v) {
                    Ok(what) => c.saw(format!("{}: {} ({what})", var.path, show(v))),
                    Err(what) => c.fail(format!(
                        "{} is named like a secret but is {what}, not a reference to a NoEcho \
                         parameter or a secret",
                        var.path
                    )),
                }
            }
        }
    }
    if named == 0 {
        c.saw("no function variable names a secret (*_SECRET_NAME)");
    }

    let mut secret_like = 0;
    for (name, p) in t.parameters() {
        let ty = p["Type"].as_str().unwrap_or("");
        if !secret_like_parameter(name) || ty.starts_with("AWS::SSM::Parameter") {
            continue;
        }
        secret_like += 1;
        let no_echo = is_true(&p["NoEcho"]);
        let at = format!("Parameters.{name}");
        c.saw(format!(
            "{at}.NoEcho: {}, Default: {}",
            show(&p["NoEcho"]),
            if p["Default"].is_null() {
                "(absent)".to_owned()
            } else {
                "(set)".to_owned()
            }
        ));
        if !no_echo {
            c.fail(format!(
                "{at} is named like a secret but has no NoEcho: true"
            ));
        }
        if !p["Default"].is_null() {
            c.fail(format!(
                "{at} is named like a secret but has a Default: the value is in the template"
            ));
        }
    }
    if secret_like == 0 {
        c.saw(
            "no parameter is named like a secret (a word Secret, Password or Key without Name, Arn or Id)",
        );
    }
    c
}

/// Whether a variable's value is a reference that keeps the secret out of the template: what it
/// refers to, or what it is instead (never the value itself).
fn reference(t: &Template, v: &Value) -> Result<String, String> {
    if let Some(id) = ref_of(v) {
        if let Some(p) = t.parameter(id) {
            return if is_true(&p["NoEcho"]) {
                Ok(format!("the NoEcho parameter {id}"))
            } else {
                Err(format!("!Ref {id}, a parameter without NoEcho"))
            };
        }
        return match t.type_of(id) {
            Some(SECRET) => Ok(format!("the ARN of the secret {id}")),
            Some(ty) => Err(format!("!Ref {id}, a {ty}")),
            None => Err(format!("!Ref {id}, which the template does not define")),
        };
    }
    if let Some((id, attr)) = getatt_of(v) {
        return if t.is(id, SECRET) {
            Ok(format!("the {attr} of the secret {id}"))
        } else {
            Err(format!("!GetAtt {id}.{attr}, not a secret"))
        };
    }
    match v {
        Value::String(s) if s.contains("{{resolve:") => Err(
            "a dynamic reference, which writes the secret's value into the function's configuration"
                .to_owned(),
        ),
        Value::String(s) => Err(format!("a literal ({} characters)", s.chars().count())),
        Value::Number(_) | Value::Bool(_) => Err("a literal".to_owned()),
        v => match intrinsic(v) {
            Some((name, _)) => Err(format!("an !{name} expression")),
            None => Err("a structured value".to_owned()),
        },
    }
}

// -------------------------------------------------------------------------------------------------
// keys-in-secrets-manager
// -------------------------------------------------------------------------------------------------

fn keys_in_secrets_manager(t: &Template) -> Check {
    let mut c = Check::default();
    let env = t.all_env();

    // The bundle's secrets, as the functions name them.
    for (variable, what) in KEY_SECRETS {
        let naming: Vec<&EnvVar<'_>> = env.iter().filter(|v| v.name == *variable).collect();
        if naming.is_empty() {
            c.fail(format!(
                "no function's environment names {what} ({variable}): it cannot be read from Secrets Manager"
            ));
        }
        for var in naming {
            for v in alternatives(var.value) {
                match resource_of(v) {
                    Some(id) if t.is(id, SECRET) => {
                        c.saw(format!("{}: {} ({what}, an {SECRET})", var.path, show(v)));
                    }
                    Some(id) if t.parameter(id).is_none() && !id.starts_with("AWS::") => {
                        c.fail(format!(
                            "{} names {what} as {}, a {} and not an {SECRET}",
                            var.path,
                            show(v),
                            t.type_of(id)
                                .unwrap_or("resource the template does not define")
                        ));
                    }
                    _ => c.saw(format!(
                        "{}: {} ({what}, a secret outside the template, read from Secrets Manager)",
                        var.path,
                        show(v)
                    )),
                }
            }
        }
    }

    // No secret of the template holds key material.
    for (id, r) in t.of_type(SECRET) {
        let p = &r["Properties"];
        let role = KEY_SECRETS
            .iter()
            .find(|(variable, _)| t.secret_named_by(variable) == Some(id))
            .map_or(String::new(), |(_, what)| format!(" ({what})"));
        match empty_document(&p["SecretString"]) {
            Ok(None) => {}
            Ok(Some(doc)) => c.saw(format!(
                "{id}.Properties.SecretString: {doc} (no key material)"
            )),
            Err(why) => c.fail(format!("{id}.Properties.SecretString{role} {why}")),
        }
        let generate = &p["GenerateSecretString"];
        if generate.is_object() {
            match empty_document(&generate["SecretStringTemplate"]) {
                Ok(doc) => c.saw(format!(
                    "{id}{role}: GenerateSecretString, SecretStringTemplate {} (generated, no key material)",
                    doc.unwrap_or_else(|| "(absent)".to_owned())
                )),
                Err(why) => c.fail(format!(
                    "{id}.Properties.GenerateSecretString.SecretStringTemplate{role} {why}"
                )),
            }
        } else if p["SecretString"].is_null() {
            c.saw(format!("{id}{role}: no initial value in the template"));
        }
    }

    // No private key through a function's environment.
    let mut count = 0;
    for var in &env {
        count += 1;
        if private_key_variable(var.name) {
            c.fail(format!(
                "{} is named like a private key: a private key would reach the function through its \
                 environment instead of Secrets Manager",
                var.path
            ));
        }
        let mut values = Vec::new();
        strings(var.value, &var.path, &mut values);
        for (at, s) in values {
            for suspect in suspects(s).into_iter().filter(|s| s.private_key) {
                c.fail(format!(
                    "{at} holds {} ({}) in a function's environment",
                    suspect.kind, suspect.hint
                ));
            }
        }
    }
    c.saw(format!(
        "{count} function variables (Globals included) read: none may be named like a private key \
         (PRIVATE, SIGNING_KEY, *_JWK, *_PEM, *KEY_SET, *DATA_KEYS) or hold a PEM private key or a private JWK"
    ));

    // Each function names the secrets it may read.
    for (id, f) in t.functions() {
        let env = t.env(id, f);
        let read = secrets_read(t, f);
        let mut named = Vec::new();
        for secret in &read {
            let by = env.iter().find(|v| {
                names_a_secret(v.name)
                    && alternatives(v.value)
                        .into_iter()
                        .any(|v| resource_of(v) == Some(secret))
            });
            match by {
                Some(v) => named.push(format!(
                    "{secret} by {}{}",
                    v.name,
                    if v.function.is_none() {
                        " (Globals)"
                    } else {
                        ""
                    }
                )),
                None => c.fail(format!(
                    "{id} may read the secret {secret} but its environment names it by no \
                     *_SECRET_NAME variable"
                )),
            }
        }
        for v in &env {
            for value in alternatives(v.value) {
                if let Some(secret) = resource_of(value).filter(|s| t.is(s, SECRET))
                    && !names_a_secret(v.name)
                {
                    c.fail(format!(
                        "{} names the secret {secret}: call it *_SECRET_NAME",
                        v.path
                    ));
                }
            }
        }
        if read.is_empty() {
            c.saw(format!("{id}: reads no secret"));
        } else {
            c.saw(format!(
                "{id}: names the secrets it may read, {}",
                named.join(", ")
            ));
        }
    }
    c
}

/// Whether a literal secret value (or template) holds no key material: absent (`None`), or a
/// JSON document without a string in it (`Some(the document)`).
fn empty_document(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            let doc: Value = serde_json::from_str(s).map_err(|_| {
                format!(
                    "is a literal that is no JSON document ({} characters): key material in the template",
                    s.chars().count()
                )
            })?;
            let mut inner = Vec::new();
            strings(&doc, "", &mut inner);
            let values = inner
                .iter()
                .filter(|(p, _)| !p.ends_with("(the key)"))
                .count();
            if values == 0 {
                Ok(Some(s.clone()))
            } else {
                Err(format!(
                    "is a literal document with {values} string value(s): key material in the template"
                ))
            }
        }
        v => Err(format!(
            "is set from {}: key material would pass through the stack's inputs",
            intrinsic(v).map_or("a structured value".to_owned(), |(n, _)| format!("an !{n}"))
        )),
    }
}

/// The secrets of the template a function's policies let it use: the `Resource`s of its
/// statements with a `secretsmanager:` action, and the secret of an
/// `AWSSecretsManagerGetSecretValuePolicy`.
fn secrets_read<'a>(t: &Template, f: &'a Value) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for policy in list(&f["Properties"]["Policies"]) {
        for statement in list(&policy["Statement"]) {
            let secrets = list(&statement["Action"])
                .iter()
                .filter_map(|a| a.as_str())
                .any(|a| a.to_ascii_lowercase().starts_with("secretsmanager:"));
            if secrets && statement["Effect"] != "Deny" {
                out.extend(
                    list(&statement["Resource"])
                        .into_iter()
                        .filter_map(resource_of),
                );
            }
        }
        for v in alternatives(&policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]) {
            out.extend(resource_of(v));
        }
    }
    out.retain(|id| t.is(id, SECRET));
    out.sort_unstable();
    out.dedup();
    out
}

// -------------------------------------------------------------------------------------------------
// least-privilege
// -------------------------------------------------------------------------------------------------

fn least_privilege(t: &Template) -> Check {
    let mut c = Check::default();
    let mut statements = 0;

    for (id, f) in t.of_type(SERVERLESS_FUNCTION) {
        let props = &f["Properties"];
        let policies = list(&props["Policies"]);
        if let Some(role) = props.get("Role") {
            match resource_of(role) {
                Some(r) if t.is(r, "AWS::IAM::Role") => {
                    c.saw(format!("{id}.Properties.Role: {} (read below)", show(role)));
                }
                _ => c.fail(format!(
                    "{id}.Properties.Role is {}, a role from outside the template: its permissions cannot be read",
                    show(role)
                )),
            }
        } else if policies.is_empty() {
            c.saw(format!(
                "{id}: no Policies (only what SAM grants every function: its logs)"
            ));
        }
        for (i, policy) in policies.into_iter().enumerate() {
            let at = format!("{id}.Properties.Policies[{i}]");
            match policy {
                Value::String(name) => managed_policy(&mut c, &at, name),
                Value::Object(o) if o.contains_key("Statement") => {
                    statements += document(&mut c, &at, policy);
                }
                Value::Object(o) if o.len() == 1 && intrinsic(policy).is_none() => {
                    sam_template(&mut c, &at, o);
                }
                v => c.fail(format!(
                    "{at} is {}, a policy whose statements cannot be read",
                    show(v)
                )),
            }
        }
    }

    for (id, r) in t.of_type("AWS::IAM::Role") {
        let props = &r["Properties"];
        for (i, p) in list(&props["Policies"]).into_iter().enumerate() {
            let at = format!("{id}.Properties.Policies[{i}].PolicyDocument");
            statements += document(&mut c, &at, &p["PolicyDocument"]);
        }
        for (i, arn) in list(&props["ManagedPolicyArns"]).into_iter().enumerate() {
            let at = format!("{id}.Properties.ManagedPolicyArns[{i}]");
            match (arn, resource_of(arn)) {
                (_, Some(p)) if t.is(p, "AWS::IAM::ManagedPolicy") => {
                    c.saw(format!("{at}: {} (read below)", show(arn)));
                }
                (Value::String(name), _) => managed_policy(&mut c, &at, name),
                (v, _) => c.fail(format!(
                    "{at} is {}, a managed policy whose statements cannot be read",
                    show(v)
                )),
            }
        }
    }

    for ty in [
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::RolePolicy",
    ] {
        for (id, r) in t.of_type(ty) {
            let at = format!("{id}.Properties.PolicyDocument");
            statements += document(&mut c, &at, &r["Properties"]["PolicyDocument"]);
        }
    }

    c.saw(format!(
        "{statements} IAM statements read; Resource \"*\" is allowed only for {}",
        STAR_ONLY_ACTIONS.join(", ")
    ));
    c
}

/// A managed policy named by a function or a role.
fn managed_policy(c: &mut Check, at: &str, name: &str) {
    let short = name.rsplit('/').next().unwrap_or(name);
    if SAM_IMPLICIT_MANAGED_POLICIES.contains(&short) {
        c.saw(format!(
            "{at}: {name} (a managed policy SAM attaches itself)"
        ));
    } else {
        c.fail(format!(
            "{at} is the managed policy {name}: its statements are not in the template, so \
             least privilege cannot be shown"
        ));
    }
}

/// A SAM policy template (`{DynamoDBCrudPolicy: {TableName: !Ref T}}`).
fn sam_template(c: &mut Check, at: &str, o: &Map<String, Value>) {
    let Some((name, params)) = o.iter().next() else {
        return;
    };
    c.saw(format!("{at}: SAM policy template {name} {}", show(params)));
    if !NARROW_SAM_TEMPLATES.contains(&name.as_str()) {
        let why = if name.starts_with("DynamoDB") {
            "it grants table-wide access (every record kind) without a dynamodb:LeadingKeys \
             condition, broader than any function of the bundle needs"
        } else if name == "AWSSecretsManagerRotationPolicy" {
            "it grants the rotation actions on every secret that names the function (secret:*)"
        } else {
            "it is not one of the SAM policy templates narrow enough for the bundle"
        };
        c.fail(format!("{at} is the SAM policy template {name}: {why}"));
    }
    let mut values = Vec::new();
    strings(params, at, &mut values);
    for (p, v) in values {
        if v == "*" {
            c.fail(format!(
                "{p} is \"*\": the template then grants on every resource"
            ));
        }
    }
}

/// The statements of a policy document; how many there are.
fn document(c: &mut Check, at: &str, doc: &Value) -> usize {
    let parsed;
    let doc = match doc {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => {
                c.fail(format!("{at} is a policy document that does not parse"));
                return 0;
            }
        },
        v => v,
    };
    let statements = list(&doc["Statement"]);
    if statements.is_empty() {
        c.fail(format!("{at} has no Statement"));
    }
    for (j, s) in statements.iter().enumerate() {
        statement(c, &format!("{at}.Statement[{j}]"), s);
    }
    statements.len()
}

fn statement(c: &mut Check, at: &str, s: &Value) {
    let sid = s["Sid"]
        .as_str()
        .map_or(String::new(), |sid| format!(" ({sid})"));
    let at = format!("{at}{sid}");
    let effect = s["Effect"].as_str().unwrap_or("Allow");
    let actions: Vec<&Value> = list(&s["Action"]);
    let resources: Vec<&Value> = list(&s["Resource"]);
    let shown = |vs: &[&Value]| vs.iter().map(|v| show(v)).collect::<Vec<_>>().join(", ");
    let condition = if s["Condition"].is_null() {
        String::new()
    } else {
        format!(" when {}", show(&s["Condition"]))
    };
    c.saw(format!(
        "{at}: {effect} {} on {}{condition}",
        shown(&actions),
        shown(&resources)
    ));
    if effect == "Deny" {
        return;
    }
    if !s["NotAction"].is_null() {
        c.fail(format!(
            "{at} grants with NotAction: every action but those listed"
        ));
    }
    if !s["NotResource"].is_null() {
        c.fail(format!(
            "{at} grants with NotResource: every resource but those listed"
        ));
    }
    if actions.is_empty() && s["NotAction"].is_null() {
        c.fail(format!("{at} names no Action"));
    }
    if resources.is_empty() && s["NotResource"].is_null() {
        c.fail(format!("{at} names no Resource"));
    }
    let mut names = Vec::new();
    for a in &actions {
        match a.as_str() {
            Some(name) if name.contains('*') => {
                c.fail(format!("{at} grants the action {name}: a wildcard"));
            }
            Some(name) => names.push(name),
            None => c.fail(format!("{at} grants the action {}, not a literal", show(a))),
        }
    }
    for r in &resources {
        let text = r.as_str().or_else(|| sub_text(r));
        if text == Some("*") {
            let wide: Vec<&str> = names
                .iter()
                .copied()
                .filter(|a| {
                    !STAR_ONLY_ACTIONS
                        .iter()
                        .any(|ok| ok.eq_ignore_ascii_case(a))
                })
                .collect();
            if !wide.is_empty() || names.is_empty() {
                c.fail(format!(
                    "{at} grants {} on Resource \"*\" (only {} take \"*\" alone)",
                    if wide.is_empty() {
                        "its actions".to_owned()
                    } else {
                        wide.join(", ")
                    },
                    "the actions without a resource type"
                ));
            }
        } else if let Some(arn) = text
            && arn.starts_with("arn:")
            && arn.splitn(6, ':').nth(5) == Some("*")
        {
            c.fail(format!(
                "{at} grants on {arn}: every resource of the service"
            ));
        }
    }
}

// -------------------------------------------------------------------------------------------------
// monitoring-alarms
// -------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespace {
    Bundle,
    Aws(String),
    Other(String),
}

/// One metric an alarm watches.
struct Watched<'a> {
    alarm: &'a str,
    /// Where in the alarm: `Properties.MetricName`, `Properties.Metrics[0].Expression`.
    at: String,
    namespace: Namespace,
    metric: String,
    /// The `FunctionName` dimension's resource, for `AWS/Lambda` metrics.
    function: Option<&'a str>,
    /// The `Id` of its `Metrics` entry.
    id: Option<&'a str>,
}

impl Watched<'_> {
    fn describe(&self) -> String {
        let ns = match &self.namespace {
            Namespace::Bundle => "the bundle's namespace".to_owned(),
            Namespace::Aws(n) | Namespace::Other(n) => n.clone(),
        };
        let of = self.function.map_or(String::new(), |f| format!(" of {f}"));
        format!("{} in {ns}{of} ({})", self.metric, self.at)
    }
}

/// The bundle's namespace: the parameter `Globals`' `METRICS_NAMESPACE` names (else
/// `MetricsNamespace`), its default, and the code's default.
struct BundleNamespace {
    parameter: String,
    literals: Vec<String>,
}

impl BundleNamespace {
    fn of(t: &Template) -> Self {
        let parameter = t
            .globals_env()
            .iter()
            .find(|v| v.name == "METRICS_NAMESPACE")
            .and_then(|v| ref_of(v.value))
            .unwrap_or("MetricsNamespace")
            .to_owned();
        let mut literals = vec![shared::telemetry::DEFAULT_NAMESPACE.to_owned()];
        if let Some(d) = t.parameter(&parameter).and_then(|p| p["Default"].as_str()) {
            literals.push(d.to_owned());
        }
        Self {
            parameter,
            literals,
        }
    }

    fn classify(&self, v: &Value) -> Namespace {
        if ref_of(v) == Some(self.parameter.as_str()) {
            return Namespace::Bundle;
        }
        match v.as_str() {
            Some(s) => self.classify_text(s),
            None => Namespace::Other(show(v)),
        }
    }

    fn classify_text(&self, s: &str) -> Namespace {
        if s == format!("${{{}}}", self.parameter) || self.literals.iter().any(|l| l == s) {
            Namespace::Bundle
        } else if s.starts_with("AWS/") {
            Namespace::Aws(s.to_owned())
        } else {
            Namespace::Other(s.to_owned())
        }
    }
}

/// `SELECT FN(Metric) FROM SCHEMA("ns", …)` or `FROM "ns"`: the namespace and the metric.
fn insights(query: &str) -> Option<(String, String)> {
    let upper = query.to_ascii_uppercase();
    let select = upper.find("SELECT")?;
    let from = upper.find(" FROM ")?;
    let head = &query[select + "SELECT".len()..from];
    let metric = head
        .split_once('(')
        .and_then(|(_, m)| m.split_once(')'))
        .map(|(m, _)| m.trim().trim_matches('"').to_owned())?;
    let rest = query[from + " FROM ".len()..].trim_start();
    let namespace = match rest.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("SCHEMA(") => rest[7..]
            .split([',', ')'])
            .next()?
            .trim()
            .trim_matches('"')
            .to_owned(),
        _ => rest.split_whitespace().next()?.trim_matches('"').to_owned(),
    };
    Some((namespace, metric))
}

fn function_dimension(dimensions: &Value) -> Option<&str> {
    list(dimensions)
        .into_iter()
        .find(|d| d["Name"] == "FunctionName")
        .and_then(|d| resource_of(&d["Value"]))
}

fn watched<'a>(ns: &BundleNamespace, alarm: &'a str, p: &'a Value) -> Vec<Watched<'a>> {
    let mut out = Vec::new();
    if let Some(name) = p["MetricName"].as_str() {
        out.push(Watched {
            alarm,
            at: "Properties.MetricName".to_owned(),
            namespace: ns.classify(&p["Namespace"]),
            metric: name.to_owned(),
            function: function_dimension(&p["Dimensions"]),
            id: None,
        });
    }
    for (i, m) in list(&p["Metrics"]).into_iter().enumerate() {
        let metric = &m["MetricStat"]["Metric"];
        if let Some(name) = metric["MetricName"].as_str() {
            out.push(Watched {
                alarm,
                at: format!("Properties.Metrics[{i}].MetricStat"),
                namespace: ns.classify(&metric["Namespace"]),
                metric: name.to_owned(),
                function: function_dimension(&metric["Dimensions"]),
                id: m["Id"].as_str(),
            });
        }
        let expression = m["Expression"]
            .as_str()
            .or_else(|| sub_text(&m["Expression"]));
        if let Some((namespace, metric)) = expression.and_then(insights) {
            out.push(Watched {
                alarm,
                at: format!("Properties.Metrics[{i}].Expression"),
                namespace: ns.classify_text(&namespace),
                metric,
                function: None,
                id: m["Id"].as_str(),
            });
        }
    }
    out
}

/// Whether an alarm's threshold is an anomaly band over `metric`: its `ThresholdMetricId` is an
/// `ANOMALY_DETECTION_BAND(id, …)` whose `id` watches `metric` in the bundle's namespace.
fn anomaly_band_over(p: &Value, watched: &[Watched<'_>], metric: &str) -> bool {
    let Some(threshold) = p["ThresholdMetricId"].as_str() else {
        return false;
    };
    list(&p["Metrics"]).into_iter().any(|m| {
        m["Id"] == threshold
            && m["Expression"]
                .as_str()
                .and_then(|e| e.trim().strip_prefix("ANOMALY_DETECTION_BAND("))
                .and_then(|rest| rest.split([',', ')']).next())
                .is_some_and(|over| {
                    watched.iter().any(|w| {
                        w.id == Some(over.trim())
                            && w.metric == metric
                            && w.namespace == Namespace::Bundle
                    })
                })
    })
}

fn monitoring_alarms(t: &Template) -> Check {
    let mut c = Check::default();
    let ns = BundleNamespace::of(t);
    let key_rotation = t.key_rotation_functions();
    let alarms: Vec<(&str, &Value)> = t.of_type("AWS::CloudWatch::Alarm").collect();
    let mut all: Vec<Watched<'_>> = Vec::new();
    let mut anomaly: Vec<&str> = Vec::new();

    for (id, a) in &alarms {
        let p = &a["Properties"];
        let seen = watched(&ns, id, p);
        if seen.is_empty() {
            c.fail(format!("{id} watches no metric the audit can read"));
        }
        for w in &seen {
            match &w.namespace {
                Namespace::Bundle if !EMITTED_METRICS.contains(&w.metric.as_str()) => {
                    c.fail(format!(
                        "{id}.{} watches {}, which the bundle's code does not emit",
                        w.at, w.metric
                    ));
                }
                Namespace::Other(n) => c.fail(format!(
                    "{id}.{} watches {} in the namespace {n}, neither the bundle's nor an AWS one",
                    w.at, w.metric
                )),
                _ => {}
            }
        }
        let actions = list(&p["AlarmActions"]);
        if actions.is_empty() {
            c.fail(format!(
                "{id} has no AlarmActions: it would change state without telling anyone"
            ));
        }
        for action in &actions {
            if let Some(target) = ref_of(action)
                && !t.is(target, "AWS::SNS::Topic")
            {
                c.fail(format!(
                    "{id}.Properties.AlarmActions names {target}, not an AWS::SNS::Topic"
                ));
            }
        }
        if anomaly_band_over(p, &seen, "Issuances") {
            anomaly.push(id);
        }
        c.saw(format!(
            "{id}: {}; AlarmActions: {}",
            seen.iter()
                .map(Watched::describe)
                .collect::<Vec<_>>()
                .join(", "),
            show(&p["AlarmActions"])
        ));
        all.extend(seen);
    }

    let by_metric = |metric: &str| -> Vec<&str> {
        let mut ids: Vec<&str> = all
            .iter()
            .filter(|w| w.namespace == Namespace::Bundle && w.metric == metric)
            .map(|w| w.alarm)
            .collect();
        ids.dedup();
        ids
    };
    let mut require = |what: &str, ids: Vec<&str>| {
        if ids.is_empty() {
            c.fail(format!("no alarm watches {what}"));
        } else {
            c.saw(format!("{what}: {}", ids.join(", ")));
        }
    };
    require("auth failures (AuthFailures)", by_metric("AuthFailures"));
    require(
        "the platform's 401/403 answers (PlatformAuthFailures)",
        by_metric("PlatformAuthFailures"),
    );
    require(
        "the issuance volume (an ANOMALY_DETECTION_BAND threshold over Issuances)",
        anomaly.clone(),
    );
    require(
        "long WAIT_ONCHAIN (WaitOnchainAlerts)",
        by_metric("WaitOnchainAlerts"),
    );
    require(
        "timed-out credentials (CredentialsTimedOut)",
        by_metric("CredentialsTimedOut"),
    );
    require(
        "refused callbacks (CallbackSignatureFailures)",
        by_metric("CallbackSignatureFailures"),
    );
    require(
        "callbacks not recorded (CallbackStoreFailures)",
        by_metric("CallbackStoreFailures"),
    );
    let mut rotation: Vec<&str> = all
        .iter()
        .filter(|w| {
            (w.namespace == Namespace::Aws("AWS/Lambda".to_owned())
                && w.metric == "Errors"
                && w.function.is_some_and(|f| key_rotation.contains(&f)))
                || (w.namespace == Namespace::Bundle && w.metric == "RotationRuns")
        })
        .map(|w| w.alarm)
        .collect();
    rotation.dedup();
    require(
        &format!(
            "key rotation errors (AWS/Lambda Errors of {}, or RotationRuns)",
            if key_rotation.is_empty() {
                "the key rotation function".to_owned()
            } else {
                key_rotation.join(", ")
            }
        ),
        rotation,
    );
    c
}

// -------------------------------------------------------------------------------------------------
// log-retention
// -------------------------------------------------------------------------------------------------

fn log_retention(t: &Template) -> Check {
    let mut c = Check::default();
    let groups: Vec<(&str, &Value)> = t.of_type(LOG_GROUP).collect();
    for (id, g) in &groups {
        let retention = &g["Properties"]["RetentionInDays"];
        if retention.is_null() {
            c.fail(format!(
                "{id} has no RetentionInDays: its logs are kept forever"
            ));
        } else {
            let default = ref_of(retention)
                .and_then(|p| t.parameter(p))
                .map(|p| &p["Default"])
                .filter(|d| !d.is_null())
                .map_or(String::new(), |d| format!(" (Default {})", show(d)));
            c.saw(format!(
                "{id}.Properties.RetentionInDays: {}{default}",
                show(retention)
            ));
        }
    }
    let group_named = |name: &Value| -> Option<&str> {
        groups
            .iter()
            .find(|(_, g)| &g["Properties"]["LogGroupName"] == name)
            .map(|(id, _)| *id)
    };
    for (id, f) in t.functions() {
        let own = &f["Properties"]["LoggingConfig"]["LogGroup"];
        let (at, configured) = if own.is_null() && f["Type"] == SERVERLESS_FUNCTION {
            (
                "Globals.Function.LoggingConfig.LogGroup".to_owned(),
                &t.globals_function()["LoggingConfig"]["LogGroup"],
            )
        } else {
            (format!("{id}.Properties.LoggingConfig.LogGroup"), own)
        };
        let linked = if let Some(g) = ref_of(configured).filter(|g| t.is(g, LOG_GROUP)) {
            Some(format!("{at}: !Ref {g}"))
        } else if let Some(g) = (!configured.is_null())
            .then(|| group_named(configured))
            .flatten()
        {
            Some(format!("{at}: {} (the name of {g})", show(configured)))
        } else {
            let default_name = format!("/aws/lambda/${{{id}}}");
            let literal = f["Properties"]["FunctionName"]
                .as_str()
                .map(|n| format!("/aws/lambda/{n}"));
            groups
                .iter()
                .find(|(_, g)| {
                    let name = &g["Properties"]["LogGroupName"];
                    sub_text(name) == Some(default_name.as_str())
                        || (literal.is_some() && name.as_str() == literal.as_deref())
                })
                .map(|(g, gv)| {
                    format!(
                        "{id}: {g}.Properties.LogGroupName: {}",
                        show(&gv["Properties"]["LogGroupName"])
                    )
                })
        };
        match linked {
            Some(line) => c.saw(line),
            None => c.fail(format!(
                "{id} has no log group of the template (no LoggingConfig.LogGroup, no log group \
                 named /aws/lambda/<function>): Lambda creates one kept forever"
            )),
        }
    }
    if groups.is_empty() {
        c.saw("no AWS::Logs::LogGroup in the template");
    }
    c
}

// -------------------------------------------------------------------------------------------------
// table-protection
// -------------------------------------------------------------------------------------------------

fn table_protection(t: &Template) -> Check {
    let mut c = Check::default();
    let tables: Vec<(&str, &Value)> = t.of_type("AWS::DynamoDB::Table").collect();
    if tables.is_empty() {
        c.fail("the template has no AWS::DynamoDB::Table");
    }
    for (id, _) in t.of_type("AWS::Serverless::SimpleTable") {
        c.fail(format!(
            "{id} is an AWS::Serverless::SimpleTable, which has no point-in-time recovery"
        ));
    }
    for (id, table) in tables {
        let p = &table["Properties"];
        for (path, what) in [
            ("SSESpecification.SSEEnabled", "encryption at rest with KMS"),
            (
                "PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled",
                "point-in-time recovery",
            ),
        ] {
            let (outer, inner) = path.split_once('.').unwrap_or((path, ""));
            let v = &p[outer][inner];
            c.saw(format!("{id}.Properties.{path}: {}", show(v)));
            if !is_true(v) {
                c.fail(format!(
                    "{id} has no {what}: Properties.{path} is {}, not true",
                    show(v)
                ));
            }
        }
        for extra in [
            &p["SSESpecification"]["SSEType"],
            &p["SSESpecification"]["KMSMasterKeyId"],
        ] {
            if !extra.is_null() {
                c.saw(format!(
                    "{id}.Properties.SSESpecification: {}",
                    show(&p["SSESpecification"])
                ));
                break;
            }
        }
        c.saw(format!(
            "{id}.Properties.DeletionProtectionEnabled: {}",
            show(&p["DeletionProtectionEnabled"])
        ));
        c.saw(format!(
            "{id}.DeletionPolicy: {}",
            show(&table["DeletionPolicy"])
        ));
    }
    c
}

// -------------------------------------------------------------------------------------------------
// rotation-schedules
// -------------------------------------------------------------------------------------------------

fn rotation_schedules(t: &Template) -> Check {
    let mut c = Check::default();
    let Some(key_set) = t.secret_named_by("KEY_SET_SECRET_NAME") else {
        c.fail(
            "no function's KEY_SET_SECRET_NAME names an AWS::SecretsManager::Secret: the signing key set's rotation cannot be found",
        );
        return c;
    };
    let schedules: Vec<(&str, &Value)> = t
        .of_type("AWS::SecretsManager::RotationSchedule")
        .filter(|(_, s)| {
            alternatives(&s["Properties"]["SecretId"])
                .into_iter()
                .any(|v| resource_of(v) == Some(key_set))
        })
        .collect();
    let mut rotators: Vec<&str> = Vec::new();
    if schedules.is_empty() {
        c.fail(format!(
            "no AWS::SecretsManager::RotationSchedule rotates the signing key set ({key_set})"
        ));
    }
    for (id, s) in schedules {
        let p = &s["Properties"];
        c.saw(format!(
            "{id}.Properties.SecretId: {}",
            show(&p["SecretId"])
        ));
        let rules = &p["RotationRules"];
        let every = [
            &rules["ScheduleExpression"],
            &rules["AutomaticallyAfterDays"],
        ]
        .into_iter()
        .zip(["ScheduleExpression", "AutomaticallyAfterDays"])
        .find(|(v, _)| !v.is_null());
        match every {
            Some((v, name)) => c.saw(format!("{id}.Properties.RotationRules.{name}: {}", show(v))),
            None => c.fail(format!(
                "{id} has no RotationRules.ScheduleExpression or AutomaticallyAfterDays: the signing key set is never rotated on a schedule"
            )),
        }
        let lambda = &p["RotationLambdaARN"];
        if let Some(f) = resource_of(lambda) {
            rotators.push(f);
            c.saw(format!(
                "{id}.Properties.RotationLambdaARN: {}",
                show(lambda)
            ));
        } else if !p["HostedRotationLambda"].is_null() {
            c.saw(format!(
                "{id}.Properties.HostedRotationLambda: {}",
                show(&p["HostedRotationLambda"])
            ));
        } else if !lambda.is_null() {
            c.saw(format!(
                "{id}.Properties.RotationLambdaARN: {}",
                show(lambda)
            ));
        } else {
            c.fail(format!(
                "{id} names no rotation function (RotationLambdaARN)"
            ));
        }
    }

    rotators.retain(|f| t.functions().iter().any(|(id, _)| id == f));
    if rotators.is_empty() {
        rotators = t.key_rotation_functions();
    }
    rotators.sort_unstable();
    rotators.dedup();
    if rotators.is_empty() {
        c.fail("the template has no key rotation function");
    }
    for f in rotators {
        let Some(events) = t.root["Resources"][f]["Properties"]["Events"].as_object() else {
            c.fail(format!(
                "{f} has no Events: the key rotation never runs on a schedule"
            ));
            continue;
        };
        let mut scheduled = false;
        for (name, e) in events {
            let ty = e["Type"].as_str().unwrap_or("");
            if ty != "Schedule" && ty != "ScheduleV2" {
                continue;
            }
            let ep = &e["Properties"];
            let expression = if ep["Schedule"].is_null() {
                &ep["ScheduleExpression"]
            } else {
                &ep["Schedule"]
            };
            let disabled = ep["Enabled"] == Value::Bool(false)
                || ep["Enabled"] == "false"
                || ep["State"] == "DISABLED";
            c.saw(format!(
                "{f}.Properties.Events.{name}: {ty} {}{}",
                show(expression),
                if disabled { " (disabled)" } else { "" }
            ));
            if expression.is_null() {
                c.fail(format!(
                    "{f}.Properties.Events.{name} has no schedule expression"
                ));
            } else if disabled {
                c.fail(format!("{f}.Properties.Events.{name} is disabled"));
            } else {
                scheduled = true;
            }
        }
        if !scheduled {
            c.fail(format!(
                "{f} has no enabled Schedule event: the daily key set maintenance never runs"
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const REAL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));

    const TEMPLATE_ITEMS: [&str; 7] = [
        "no-secret-in-template",
        "keys-in-secrets-manager",
        "least-privilege",
        "monitoring-alarms",
        "log-retention",
        "table-protection",
        "rotation-schedules",
    ];

    /// The real template with `from` (which must occur exactly once) replaced by `to`.
    fn replaced(from: &str, to: &str) -> String {
        replaced_in(REAL, from, to)
    }

    fn replaced_in(text: &str, from: &str, to: &str) -> String {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the template no longer holds {from:?} exactly once"
        );
        text.replacen(from, to, 1)
    }

    /// The real template without the resource `id` (up to the next resource or section).
    fn without_resource(id: &str) -> String {
        let start = REAL
            .find(&format!("\n  {id}:\n"))
            .unwrap_or_else(|| panic!("no resource {id}"))
            + 1;
        let rest = &REAL[start..];
        let end = rest
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .find(|&i| {
                let line = &rest[i..];
                let b = line.as_bytes();
                (b.len() > 2 && b[0] == b' ' && b[1] == b' ' && b[2] != b' ' && b[2] != b'#')
                    || (!b.is_empty() && b[0] != b' ' && b[0] != b'\n')
            })
            .unwrap_or(rest.len());
        format!("{}{}", &REAL[..start], &rest[end..])
    }

    /// The real template with `from` replaced by `to` in the resource `id` only.
    fn replaced_in_resource(id: &str, from: &str, to: &str) -> String {
        let start = REAL.find(&format!("\n  {id}:\n")).unwrap();
        let at = start + REAL[start..].find(from).unwrap();
        format!("{}{to}{}", &REAL[..at], &REAL[at + from.len()..])
    }

    fn finding<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
        findings.iter().find(|f| f.item.id == id).unwrap()
    }

    fn why(f: &Finding) -> &str {
        match &f.outcome {
            Outcome::Fail { why } => why,
            other => panic!("{} is {other:?}, not a failure", f.item.id),
        }
    }

    /// Checks `text`: `id` fails and every other item passes; the failed finding.
    fn fails_only(text: &str, id: &str) -> Finding {
        let findings = check(text);
        for f in &findings {
            if f.item.id == id {
                assert!(f.outcome.failed(), "{id} passed: {:#?}", f.evidence);
            } else {
                assert_eq!(
                    f.outcome,
                    Outcome::Pass,
                    "{} fails too when only {id} should",
                    f.item.id
                );
            }
        }
        finding(&findings, id).clone()
    }

    fn fake_api_key_secret() -> String {
        format!("sk_{}", "0".repeat(40))
    }

    #[test]
    fn the_bundles_template_passes_every_template_item() {
        let findings = check(REAL);
        for f in &findings {
            assert_eq!(f.outcome, Outcome::Pass, "{}: {:#?}", f.item.id, f.evidence);
            assert!(!f.evidence.is_empty(), "{} has no evidence", f.item.id);
        }
    }

    #[test]
    fn there_is_one_finding_for_each_template_item_in_checklist_order() {
        let ids: Vec<&str> = check(REAL).iter().map(|f| f.item.id).collect();
        assert_eq!(ids, TEMPLATE_ITEMS);
        let expected: Vec<&str> = checklist::ITEMS
            .iter()
            .filter(|i| i.method == Method::Template)
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn an_unparsable_template_fails_every_item_with_the_parse_error() {
        let findings = check("Resources: [unclosed\n  - {");
        assert_eq!(findings.len(), TEMPLATE_ITEMS.len());
        for f in &findings {
            assert!(
                why(f).starts_with("the template does not parse"),
                "{}",
                why(f)
            );
        }
        let findings = check("just a string");
        assert!(findings.iter().all(|f| why(f).contains("no Resources")));
    }

    #[test]
    fn the_evidence_names_each_property_path_and_its_value() {
        let findings = check(REAL);
        let evidence = |id: &str| finding(&findings, id).evidence.join("\n");
        let table = evidence("table-protection");
        for line in [
            "RecordsTable.Properties.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled: true",
            "RecordsTable.Properties.SSESpecification.SSEEnabled: true",
            "RecordsTable.Properties.DeletionProtectionEnabled: true",
        ] {
            assert!(table.contains(line), "{table}");
        }
        assert!(
            evidence("rotation-schedules")
                .contains("SigningKeySetRotation.Properties.RotationRules.ScheduleExpression: \"rate(90 days)\""),
            "{}",
            evidence("rotation-schedules")
        );
        assert!(
            evidence("rotation-schedules")
                .contains("KeyRotationFunction.Properties.Events.Daily: Schedule \"rate(1 day)\"")
        );
        assert!(evidence("log-retention").contains(
            "TokenMintLogGroup.Properties.RetentionInDays: !Ref LogRetentionDays (Default 90)"
        ));
        assert!(
            evidence("log-retention")
                .contains("JwksFunction.Properties.LoggingConfig.LogGroup: !Ref JwksLogGroup")
        );
        assert!(evidence("least-privilege").contains(
            "StatusPollerFunction.Properties.Policies[0].Statement[1] (ListDueRecords): Allow dynamodb:Query on !Sub ${RecordsTable.Arn}/index/due-index"
        ), "{}", evidence("least-privilege"));
        assert!(evidence("keys-in-secrets-manager").contains(
            "Globals.Function.Environment.Variables.KEY_SET_SECRET_NAME: !Ref SigningKeySet (the signing key set, an AWS::SecretsManager::Secret)"
        ));
        assert!(
            evidence("monitoring-alarms")
                .contains("long WAIT_ONCHAIN (WaitOnchainAlerts): LongWaitOnchainAlarm")
        );
    }

    // no-secret-in-template --------------------------------------------------------------------

    #[test]
    fn a_literal_api_key_secret_in_a_functions_environment_fails_no_secret_and_is_never_printed() {
        let secret = fake_api_key_secret();
        let text = replaced(
            "          USER_ISSUE_TOKENS: !Ref UserIssueTokens\n",
            &format!(
                "          USER_ISSUE_TOKENS: !Ref UserIssueTokens\n          API_KEY_SECRET: {secret}\n"
            ),
        );
        let f = fails_only(&text, "no-secret-in-template");
        let why = why(&f);
        assert!(
            why.contains("TokenMintFunction.Properties.Environment.Variables.API_KEY_SECRET"),
            "{why}"
        );
        assert!(why.contains("sk_… (43 characters)"), "{why}");
        assert!(why.contains("a literal (43 characters)"), "{why}");
        for f in check(&text) {
            assert!(!format!("{f:?}").contains(&secret[3..]), "{f:?}");
        }
    }

    #[test]
    fn a_webhook_secret_in_the_global_environment_fails_no_secret() {
        let secret = format!("whsec_{}", "A".repeat(32));
        let text = replaced(
            "        METRICS_NAMESPACE: !Ref MetricsNamespace\n",
            &format!(
                "        METRICS_NAMESPACE: !Ref MetricsNamespace\n        CALLBACK_SECRET: {secret}\n"
            ),
        );
        let f = fails_only(&text, "no-secret-in-template");
        assert!(
            why(&f).contains("Globals.Function.Environment.Variables.CALLBACK_SECRET"),
            "{}",
            why(&f)
        );
        assert!(!format!("{f:?}").contains(&secret[6..]));
    }

    #[test]
    fn a_secret_variable_referencing_a_parameter_without_no_echo_fails_no_secret() {
        let text = replaced(
            "          PLATFORM_TOKEN_SCOPE: !Ref PlatformTokenScope\n          TABLE_NAME: !Ref RecordsTable\n          API_KEYS_SECRET_NAME",
            "          PLATFORM_TOKEN_SCOPE: !Ref PlatformTokenScope\n          PLATFORM_TOKEN: !Ref PlatformTokenScope\n          TABLE_NAME: !Ref RecordsTable\n          API_KEYS_SECRET_NAME",
        );
        let f = fails_only(&text, "no-secret-in-template");
        assert!(
            why(&f).contains("!Ref PlatformTokenScope, a parameter without NoEcho"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn a_secret_parameter_without_no_echo_or_with_a_default_fails_no_secret() {
        let text = replaced(
            "\nParameters:\n",
            "\nParameters:\n  PlatformApiSecret:\n    Type: String\n    Default: not-the-real-one\n",
        );
        let f = fails_only(&text, "no-secret-in-template");
        assert!(
            why(&f)
                .contains("Parameters.PlatformApiSecret is named like a secret but has no NoEcho")
        );
        assert!(why(&f).contains("has a Default"));
    }

    #[test]
    fn a_pem_private_key_and_an_aws_secret_key_anywhere_fail_no_secret() {
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----",
            "A".repeat(64)
        );
        let aws = format!("aws_secret_access_key={}", "a".repeat(40));
        let text = replaced(
            "      Description: Partner credential bundle API\n",
            &format!("      Description: \"{pem} {aws}\"\n"),
        );
        let f = fails_only(&text, "no-secret-in-template");
        assert!(
            why(&f).contains(
                "PartnerApi.Properties.Description holds what looks like a PEM private key"
            ),
            "{}",
            why(&f)
        );
        assert!(why(&f).contains("an AWS secret access key"), "{}", why(&f));
        assert!(!format!("{f:?}").contains(&"A".repeat(64)));
        assert!(!format!("{f:?}").contains(&"a".repeat(40)));
    }

    #[test]
    fn the_secret_scan_tells_names_and_descriptions_from_secrets() {
        assert!(suspects("Signing secrets (whsec_...) and public keys (whpk_...)").is_empty());
        assert!(suspects("sk_live_do_not_log").is_empty());
        assert!(suspects(r#"{"id":"issuances","kid":"x"}"#).is_empty());
        let jwk = suspects(r#"{"kty":"EC","d" : "x"}"#);
        assert!(jwk.len() == 1 && jwk[0].private_key);
        let hint = &suspects(&fake_api_key_secret())[0].hint;
        assert_eq!(hint, "sk_… (43 characters)");
        assert!(suspects(&format!("whsk_{}", "b".repeat(20)))[0].private_key);
        assert!(secret_like_parameter("PlatformApiSecret"));
        assert!(secret_like_parameter("SigningKey"));
        assert!(!secret_like_parameter("KmsKeyArn"));
        assert!(!secret_like_parameter("CustomDomainHostedZoneId"));
        assert!(!secret_like_parameter("TokenLifetimeSeconds"));
        assert!(secret_like_variable("API_KEY_SECRET"));
        assert!(!secret_like_variable("API_KEYS_SECRET_NAME"));
        assert!(!secret_like_variable("USER_ISSUE_TOKENS"));
    }

    // keys-in-secrets-manager ------------------------------------------------------------------

    #[test]
    fn a_signing_key_set_with_a_literal_key_fails_keys_in_secrets_manager() {
        let text = replaced(
            "      GenerateSecretString:\n        SecretStringTemplate: '{\"version\":0,\"keys\":[]}'\n        GenerateStringKey: bootstrap\n        PasswordLength: 16\n        ExcludePunctuation: true\n",
            "      SecretString: '{\"version\":0,\"keys\":[{\"kid\":\"not-a-key\"}]}'\n",
        );
        let f = fails_only(&text, "keys-in-secrets-manager");
        assert!(
            why(&f).contains("SigningKeySet.Properties.SecretString (the signing key set) is a literal document with 1 string value(s)"),
            "{}",
            why(&f)
        );
        assert!(!format!("{f:?}").contains("not-a-key"));
    }

    #[test]
    fn a_private_key_in_a_functions_environment_fails_keys_in_secrets_manager() {
        let text = replaced(
            "\nParameters:\n",
            "\nParameters:\n  FakeSigningKey:\n    Type: String\n    NoEcho: true\n",
        );
        let text = replaced_in(
            &text,
            "          USER_ISSUE_TOKENS: !Ref UserIssueTokens\n",
            "          USER_ISSUE_TOKENS: !Ref UserIssueTokens\n          SIGNING_PRIVATE_KEY: !Ref FakeSigningKey\n",
        );
        let f = fails_only(&text, "keys-in-secrets-manager");
        assert!(
            why(&f).contains("TokenMintFunction.Properties.Environment.Variables.SIGNING_PRIVATE_KEY is named like a private key"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn a_function_reading_a_secret_it_does_not_name_fails_keys_in_secrets_manager() {
        let text = replaced(
            "          API_KEYS_SECRET_NAME: !Ref ApiKeyRegistry\n          WEBHOOK_SECRETS_SECRET_NAME: !Ref WebhookSecrets\n",
            "          API_KEYS_SECRET_NAME: !Ref ApiKeyRegistry\n",
        );
        let f = fails_only(&text, "keys-in-secrets-manager");
        assert!(
            why(&f).contains("KeyRotationFunction may read the secret WebhookSecrets but its environment names it by no *_SECRET_NAME variable"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn data_keys_kept_outside_secrets_manager_fail_keys_in_secrets_manager() {
        let text = replaced_in_resource(
            "DataKeys",
            "Type: AWS::SecretsManager::Secret",
            "Type: AWS::SSM::Parameter",
        );
        let f = fails_only(&text, "keys-in-secrets-manager");
        assert!(
            why(&f).contains("names the data keys as !Ref DataKeys, a AWS::SSM::Parameter"),
            "{}",
            why(&f)
        );
    }

    // least-privilege --------------------------------------------------------------------------

    #[test]
    fn a_star_resource_on_a_statement_fails_least_privilege() {
        let text = replaced(
            "Resource: !Sub \"${RecordsTable.Arn}/index/due-index\"",
            "Resource: '*'",
        );
        let f = fails_only(&text, "least-privilege");
        assert!(
            why(&f).contains("StatusPollerFunction.Properties.Policies[0].Statement[1] (ListDueRecords) grants dynamodb:Query on Resource \"*\""),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn a_service_wildcard_action_fails_least_privilege() {
        let text = replaced("Action: dynamodb:Query", "Action: dynamodb:*");
        let f = fails_only(&text, "least-privilege");
        assert!(
            why(&f).contains("grants the action dynamodb:*: a wildcard"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn a_table_wide_sam_policy_template_fails_least_privilege() {
        let text = replaced(
            "              Resource: !Ref SigningKeySet\n      Events:\n        Jwks:\n",
            "              Resource: !Ref SigningKeySet\n        - DynamoDBCrudPolicy:\n            TableName: !Ref RecordsTable\n      Events:\n        Jwks:\n",
        );
        let f = fails_only(&text, "least-privilege");
        assert!(
            why(&f).contains(
                "JwksFunction.Properties.Policies[1] is the SAM policy template DynamoDBCrudPolicy"
            ),
            "{}",
            why(&f)
        );
        assert!(
            f.evidence
                .iter()
                .any(|e| e == "JwksFunction.Properties.Policies[1]: SAM policy template DynamoDBCrudPolicy {TableName: !Ref RecordsTable}"),
            "{:#?}",
            f.evidence
        );
    }

    #[test]
    fn a_star_resource_is_allowed_for_actions_that_take_no_resource_and_only_for_them() {
        let jwks = "              Resource: !Ref SigningKeySet\n      Events:\n        Jwks:\n";
        let statement = |actions: &str| {
            format!(
                "              Resource: !Ref SigningKeySet\n            - Sid: Telemetry\n              Effect: Allow\n              Action: {actions}\n              Resource: '*'\n      Events:\n        Jwks:\n"
            )
        };
        let allowed = replaced(
            jwks,
            &statement("[cloudwatch:PutMetricData, xray:PutTraceSegments]"),
        );
        assert!(check(&allowed).iter().all(|f| f.outcome == Outcome::Pass));
        let mixed = replaced(
            jwks,
            &statement("[xray:PutTraceSegments, secretsmanager:GetSecretValue]"),
        );
        let f = fails_only(&mixed, "least-privilege");
        assert!(
            why(&f).contains("(Telemetry) grants secretsmanager:GetSecretValue on Resource \"*\""),
            "{}",
            why(&f)
        );
    }

    // monitoring-alarms ------------------------------------------------------------------------

    #[test]
    fn an_alarm_on_a_metric_the_code_does_not_emit_fails_monitoring_alarms() {
        let text = replaced(
            "MetricName: WaitOnchainAlerts",
            "MetricName: WaitOnchainAlertsTotal",
        );
        let f = fails_only(&text, "monitoring-alarms");
        let why = why(&f);
        assert!(
            why.contains("LongWaitOnchainAlarm.Properties.MetricName watches WaitOnchainAlertsTotal, which the bundle's code does not emit"),
            "{why}"
        );
        assert!(why.contains("no alarm watches long WAIT_ONCHAIN"), "{why}");
    }

    #[test]
    fn an_alarm_without_actions_fails_monitoring_alarms() {
        let text = replaced_in_resource(
            "CredentialsTimedOutAlarm",
            "      AlarmActions: [!Ref OperationsAlarmTopic]\n",
            "",
        );
        let f = fails_only(&text, "monitoring-alarms");
        assert!(
            why(&f).starts_with("CredentialsTimedOutAlarm has no AlarmActions"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn without_the_issuance_anomaly_alarm_monitoring_alarms_fails() {
        let f = fails_only(
            &without_resource("IssuanceVolumeAnomalyAlarm"),
            "monitoring-alarms",
        );
        assert_eq!(
            why(&f),
            "no alarm watches the issuance volume (an ANOMALY_DETECTION_BAND threshold over Issuances)"
        );
    }

    #[test]
    fn without_the_key_rotation_errors_alarm_monitoring_alarms_fails() {
        let f = fails_only(
            &without_resource("KeyRotationErrorsAlarm"),
            "monitoring-alarms",
        );
        assert!(
            why(&f).starts_with("no alarm watches key rotation errors"),
            "{}",
            why(&f)
        );
    }

    // log-retention ----------------------------------------------------------------------------

    #[test]
    fn a_log_group_without_retention_fails_log_retention() {
        let text = replaced(
            "      LogGroupName: !Sub \"/aws/lambda/${AWS::StackName}/jwks\"\n      RetentionInDays: !Ref LogRetentionDays\n",
            "      LogGroupName: !Sub \"/aws/lambda/${AWS::StackName}/jwks\"\n",
        );
        let f = fails_only(&text, "log-retention");
        assert_eq!(
            why(&f),
            "JwksLogGroup has no RetentionInDays: its logs are kept forever"
        );
    }

    #[test]
    fn a_function_without_a_log_group_fails_log_retention() {
        let text = replaced(
            "      LoggingConfig:\n        LogGroup: !Ref JwksLogGroup\n",
            "",
        );
        let f = fails_only(&text, "log-retention");
        assert!(
            why(&f).starts_with("JwksFunction has no log group of the template"),
            "{}",
            why(&f)
        );
    }

    // table-protection -------------------------------------------------------------------------

    #[test]
    fn a_table_without_point_in_time_recovery_fails_table_protection() {
        let text = replaced(
            "      PointInTimeRecoverySpecification:\n        PointInTimeRecoveryEnabled: true\n",
            "",
        );
        let f = fails_only(&text, "table-protection");
        assert_eq!(
            why(&f),
            "RecordsTable has no point-in-time recovery: Properties.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled is (absent), not true"
        );
    }

    #[test]
    fn a_table_without_encryption_fails_table_protection() {
        let text = replaced("        SSEEnabled: true\n", "        SSEEnabled: false\n");
        let f = fails_only(&text, "table-protection");
        assert!(
            why(&f).starts_with("RecordsTable has no encryption at rest"),
            "{}",
            why(&f)
        );
    }

    // rotation-schedules -----------------------------------------------------------------------

    #[test]
    fn without_the_rotation_schedule_rotation_schedules_fails() {
        let f = fails_only(
            &without_resource("SigningKeySetRotation"),
            "rotation-schedules",
        );
        assert_eq!(
            why(&f),
            "no AWS::SecretsManager::RotationSchedule rotates the signing key set (SigningKeySet)"
        );
    }

    #[test]
    fn a_key_rotation_function_without_a_schedule_event_fails_rotation_schedules() {
        let text = replaced(
            "      Events:\n        Daily:\n          Type: Schedule\n          Properties:\n            Description: Daily key set maintenance (schedule a successor, prune retired keys)\n            Schedule: rate(1 day)\n            RetryPolicy:\n              MaximumRetryAttempts: 2\n            DeadLetterConfig:\n              Arn: !GetAtt ScheduleDeadLetterQueue.Arn\n",
            "",
        );
        let f = fails_only(&text, "rotation-schedules");
        assert!(
            why(&f).starts_with("KeyRotationFunction has no Events"),
            "{}",
            why(&f)
        );
    }

    #[test]
    fn the_catalogue_of_metrics_has_no_duplicates() {
        let mut names = EMITTED_METRICS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EMITTED_METRICS.len());
    }
}
