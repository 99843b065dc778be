//! The CloudFormation template the checks read: its resources, parameters, functions and their
//! environments, and the intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`) it is
//! written with.

use serde_json::Value;

use super::scan::suspects;

pub(super) const SECRET: &str = "AWS::SecretsManager::Secret";
pub(super) const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";
pub(super) const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
pub(super) const LOG_GROUP: &str = "AWS::Logs::LogGroup";

pub(super) struct Template {
    pub(super) root: Value,
}

/// One environment variable of a function, or of `Globals`.
pub(super) struct EnvVar<'a> {
    /// `IssueFunction.Properties.Environment.Variables.TABLE_NAME`.
    pub(super) path: String,
    pub(super) name: &'a str,
    pub(super) value: &'a Value,
    /// The function it is set on (`None` for `Globals`).
    pub(super) function: Option<&'a str>,
}

impl Template {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| format!("the template does not parse as YAML: {e}"))?;
        let root = serde_json::to_value(yaml).map_err(|e| {
            format!("the template does not parse as a CloudFormation document: {e}")
        })?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err("the template does not parse: it has no Resources mapping".to_owned());
        }
        Ok(Self { root })
    }

    pub(super) fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.root["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    pub(super) fn of_type<'a>(
        &'a self,
        ty: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources().filter(move |(_, r)| r["Type"] == ty)
    }

    pub(super) fn type_of(&self, id: &str) -> Option<&str> {
        self.root["Resources"].get(id)?["Type"].as_str()
    }

    pub(super) fn is(&self, id: &str, ty: &str) -> bool {
        self.type_of(id) == Some(ty)
    }

    pub(super) fn parameter(&self, id: &str) -> Option<&Value> {
        self.root["Parameters"].get(id)
    }

    pub(super) fn parameters(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.root["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    /// `AWS::Serverless::Function`s and `AWS::Lambda::Function`s.
    pub(super) fn functions(&self) -> Vec<(&str, &Value)> {
        self.resources()
            .filter(|(_, r)| r["Type"] == SERVERLESS_FUNCTION || r["Type"] == LAMBDA_FUNCTION)
            .collect()
    }

    pub(super) fn globals_function(&self) -> &Value {
        &self.root["Globals"]["Function"]
    }

    pub(super) fn globals_env(&self) -> Vec<EnvVar<'_>> {
        variables(
            &self.globals_function()["Environment"]["Variables"],
            "Globals.Function.Environment.Variables",
            None,
        )
    }

    /// A function's own variables.
    pub(super) fn own_env<'a>(&'a self, id: &'a str, f: &'a Value) -> Vec<EnvVar<'a>> {
        variables(
            &f["Properties"]["Environment"]["Variables"],
            &format!("{id}.Properties.Environment.Variables"),
            Some(id),
        )
    }

    /// A function's environment: its own variables and those of `Globals` it does not override
    /// (`Globals` apply to `AWS::Serverless::Function`s only).
    pub(super) fn env<'a>(&'a self, id: &'a str, f: &'a Value) -> Vec<EnvVar<'a>> {
        let own = self.own_env(id, f);
        let mut out: Vec<EnvVar<'a>> = Vec::new();
        if f["Type"] == SERVERLESS_FUNCTION {
            out.extend(
                self.globals_env()
                    .into_iter()
                    .filter(|g| !own.iter().any(|o| o.name == g.name)),
            );
        }
        out.extend(own);
        out
    }

    /// Every variable as written: `Globals`' and each function's own, each once.
    pub(super) fn all_env(&self) -> Vec<EnvVar<'_>> {
        let mut out = self.globals_env();
        for (id, f) in self.functions() {
            out.extend(self.own_env(id, f));
        }
        out
    }

    /// The logical id of the secret `variable` names (an `!Ref`/`!GetAtt` of an
    /// `AWS::SecretsManager::Secret`), in `Globals` or a function.
    pub(super) fn secret_named_by(&self, variable: &str) -> Option<&str> {
        self.all_env()
            .into_iter()
            .filter(|v| v.name == variable)
            .flat_map(|v| alternatives(v.value))
            .filter_map(resource_of)
            .find(|id| self.is(id, SECRET))
    }

    /// The key rotation function: the one built from the `key-rotation` binary, else the one
    /// named `KeyRotationFunction`.
    pub(super) fn key_rotation_functions(&self) -> Vec<&str> {
        let functions = self.functions();
        let built: Vec<&str> = functions
            .iter()
            .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "key-rotation")
            .map(|(id, _)| *id)
            .collect();
        if !built.is_empty() {
            return built;
        }
        functions
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id == "KeyRotationFunction")
            .collect()
    }
}

pub(super) fn variables<'a>(
    vars: &'a Value,
    at: &str,
    function: Option<&'a str>,
) -> Vec<EnvVar<'a>> {
    vars.as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| EnvVar {
            path: format!("{at}.{name}"),
            name: name.as_str(),
            value,
            function,
        })
        .collect()
}

/// A one-key object that is an intrinsic function: its short name (`Ref`, `GetAtt`, `Sub`, `If`,
/// …) and its argument.
pub(super) fn intrinsic(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    let (key, arg) = o.iter().next()?;
    if key == "Ref" {
        return Some(("Ref", arg));
    }
    let name = key.strip_prefix("Fn::").or_else(|| key.strip_prefix('!'))?;
    Some((name, arg))
}

/// `X` of `!Ref X`.
pub(super) fn ref_of(v: &Value) -> Option<&str> {
    match intrinsic(v) {
        Some(("Ref", Value::String(id))) => Some(id),
        _ => None,
    }
}

/// `(A, B)` of `!GetAtt A.B` or `!GetAtt [A, B]`.
pub(super) fn getatt_of(v: &Value) -> Option<(&str, &str)> {
    match intrinsic(v)? {
        ("GetAtt", Value::String(s)) => s.split_once('.'),
        ("GetAtt", Value::Array(parts)) => {
            Some((parts.first()?.as_str()?, parts.get(1)?.as_str()?))
        }
        _ => None,
    }
}

/// The logical id an `!Ref` or `!GetAtt` names.
pub(super) fn resource_of(v: &Value) -> Option<&str> {
    ref_of(v).or_else(|| getatt_of(v).map(|(id, _)| id))
}

/// The text of a `!Sub` (either form).
pub(super) fn sub_text(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        ("Sub", Value::String(s)) => Some(s),
        ("Sub", Value::Array(parts)) => parts.first()?.as_str(),
        _ => None,
    }
}

/// What a value may be: both branches of an `!If` (recursively), nothing for
/// `!Ref AWS::NoValue`, the value itself otherwise.
pub(super) fn alternatives(v: &Value) -> Vec<&Value> {
    if ref_of(v) == Some("AWS::NoValue") {
        return Vec::new();
    }
    if let Some(("If", Value::Array(parts))) = intrinsic(v)
        && parts.len() == 3
    {
        return parts[1..].iter().flat_map(alternatives).collect();
    }
    vec![v]
}

/// The elements of a property that is one value or a list of values (`Action`, `Resource`,
/// `Policies`), through `!If`s.
pub(super) fn list(v: &Value) -> Vec<&Value> {
    alternatives(v)
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().flat_map(alternatives).collect(),
            Value::Null => Vec::new(),
            v => vec![v],
        })
        .collect()
}

pub(super) fn is_true(v: &Value) -> bool {
    v == &Value::Bool(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// A value as the template writes it, short enough for one evidence line; a string that looks
/// like a secret is replaced by its hint.
pub(super) fn show(v: &Value) -> String {
    let s = render(v);
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(159).collect::<String>())
    } else {
        s
    }
}

pub(super) fn render(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            if let Some((name, arg)) = intrinsic(v) {
                return match (name, arg) {
                    ("GetAtt", Value::Array(parts)) => format!(
                        "!GetAtt {}",
                        parts.iter().map(render).collect::<Vec<_>>().join(".")
                    ),
                    _ => format!("!{name} {}", render(arg)),
                };
            }
            format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!("{k}: {}", render(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

pub(super) fn scalar(s: &str) -> String {
    if let Some(suspect) = suspects(s).first() {
        return format!("<redacted: {}>", suspect.hint);
    }
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == ',') {
        format!("{s:?}")
    } else {
        s.to_owned()
    }
}

/// Every string of a value (mapping keys too) with its path.
pub(super) fn strings<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a str)>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.strip_prefix("Resources.").unwrap_or(key).to_owned()
        } else if path == "Resources" {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::String(s) => out.push((path.to_owned(), s)),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                strings(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                let at = join(k);
                out.push((format!("{at} (the key)"), k));
                strings(v, &at, out);
            }
        }
        _ => {}
    }
}
