//! Reading `template.yaml`: which functions there are, which binary each runs, and the environment,
//! timeout and memory the template gives each — so a bootstrap under the emulator is configured
//! exactly as it will be in AWS, and a template that forgets a variable a function needs fails the
//! emulator tier.
//!
//! Only the intrinsic functions the template uses in environment variables are understood: `!Ref`,
//! `!Sub` (with `${Name}` references) and `!If` (with conditions given by the caller); a reference
//! the caller did not resolve is an error, never silently an empty string.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;
use serde_norway::value::TaggedValue;

use crate::EmuError;

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// A function as the template describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The logical id, e.g. `IssueFunction`.
    pub logical_id: String,
    /// The cargo binary it runs (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Its environment variables (globals merged with its own).
    pub env: BTreeMap<String, String>,
    /// Its timeout in seconds.
    pub timeout_secs: u64,
    /// Its memory in MB.
    pub memory_mb: u64,
    /// Its handler (`bootstrap` for a custom runtime).
    pub handler: String,
    /// Its runtime, e.g. `provided.al2023`.
    pub runtime: String,
}

/// How `!Ref`, `!Sub` and `!If` are resolved: values for resource and parameter names, and the
/// truth of each condition.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    values: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl Refs {
    /// No references resolved yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves `!Ref name` (and `${name}` in `!Sub`) to `value`.
    pub fn value(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// Sets the truth of a condition.
    pub fn condition(mut self, name: &str, truth: bool) -> Self {
        self.conditions.insert(name.to_owned(), truth);
        self
    }
}

/// What a resolved variable is: a value, or nothing (`AWS::NoValue`).
enum Resolved {
    Text(String),
    NoValue,
}

fn tag_name(t: &TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_owned()
}

impl Template {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, EmuError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmuError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Self, EmuError> {
        let root: Value = serde_norway::from_str(text)
            .map_err(|e| EmuError::Template(format!("not valid YAML: {e}")))?;
        Ok(Self { root })
    }

    /// The resource `logical_id` as written (tags such as `!Ref` left as they are), for static
    /// checks of its properties.
    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.root.get("Resources")?.get(logical_id)
    }

    /// `Refs` holding every parameter's `Default`, to be completed with the parameters that
    /// have none, the resources and the conditions.
    pub fn parameter_defaults(&self) -> Refs {
        let mut refs = Refs::new();
        if let Some(params) = self.root.get("Parameters").and_then(Value::as_mapping) {
            for (name, p) in params {
                let (Some(name), Some(default)) = (name.as_str(), p.get("Default")) else {
                    continue;
                };
                let text = match default {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                refs = refs.value(name, text);
            }
        }
        refs
    }

    fn resources(&self) -> Result<&serde_norway::Mapping, EmuError> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| EmuError::Template("no Resources section".into()))
    }

    /// Every `AWS::Serverless::Function`: its logical id and binary, in template order.
    pub fn functions(&self) -> Result<Vec<(String, String)>, EmuError> {
        let mut out = Vec::new();
        for (id, res) in self.resources()? {
            if res.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let id = id
                .as_str()
                .ok_or_else(|| EmuError::Template("a resource id is not a string".into()))?;
            let binary = res
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    EmuError::Template(format!("{id} has no Metadata.BuildProperties.Binary"))
                })?;
            out.push((id.to_owned(), binary.to_owned()));
        }
        Ok(out)
    }

    /// Every HTTP API route of every function: (`METHOD`, path, function logical id), sorted.
    pub fn http_routes(&self) -> Result<Vec<(String, String, String)>, EmuError> {
        let mut out = Vec::new();
        for (id, res) in self.resources()? {
            let Some(events) = res
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            let id = id.as_str().unwrap_or_default();
            for (_, event) in events {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let props = event.get("Properties");
                let field = |k: &str| {
                    props
                        .and_then(|p| p.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            EmuError::Template(format!("{id}: an HttpApi event has no {k}"))
                        })
                };
                out.push((
                    field("Method")?.to_uppercase(),
                    field("Path")?,
                    id.to_owned(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The logical id of the function running `binary`, when exactly one does, or `name` itself
    /// when it is a function's logical id.
    pub fn find_function(&self, name: &str) -> Result<String, EmuError> {
        let functions = self.functions()?;
        if functions.iter().any(|(id, _)| id == name) {
            return Ok(name.to_owned());
        }
        let matching: Vec<&String> = functions
            .iter()
            .filter(|(_, bin)| bin == name)
            .map(|(id, _)| id)
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(EmuError::Template(format!(
                "no function named {name}; the template has: {}",
                functions
                    .iter()
                    .map(|(id, bin)| format!("{id} ({bin})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            many => Err(EmuError::Template(format!(
                "{name} runs in several functions ({}); name one by its logical id",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The function `logical_id` with its environment resolved through `refs`.
    pub fn function(&self, logical_id: &str, refs: &Refs) -> Result<FunctionSpec, EmuError> {
        let resources = self.resources()?;
        let res = resources
            .get(logical_id)
            .ok_or_else(|| EmuError::Template(format!("no resource {logical_id}")))?;
        let props = res.get("Properties");
        let globals = self.root.get("Globals").and_then(|g| g.get("Function"));
        let pick = |key: &str| {
            props
                .and_then(|p| p.get(key))
                .or_else(|| globals.and_then(|g| g.get(key)))
        };
        // A number as written, or chosen by `!If` (MemorySize on Lambda Managed Instances).
        let number = |key: &str, default: u64| -> Result<u64, EmuError> {
            let not_a_number =
                || EmuError::Template(format!("{logical_id}: {key} is not a number"));
            match pick(key) {
                None => Ok(default),
                Some(v) => match resolve(v, refs)
                    .map_err(|e| EmuError::Template(format!("{logical_id}: {key}: {e}")))?
                {
                    Resolved::Text(t) => t.parse().map_err(|_| not_a_number()),
                    Resolved::NoValue => Ok(default),
                },
            }
        };
        let text = |key: &str| -> Result<String, EmuError> {
            pick(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| EmuError::Template(format!("{logical_id}: no {key}")))
        };
        let mut env = BTreeMap::new();
        for vars in [
            globals.and_then(|g| g.get("Environment")),
            props.and_then(|p| p.get("Environment")),
        ]
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("Variables"))
        {
            let map = vars.as_mapping().ok_or_else(|| {
                EmuError::Template(format!("{logical_id}: Environment.Variables is not a map"))
            })?;
            for (k, v) in map {
                let k = k.as_str().ok_or_else(|| {
                    EmuError::Template(format!("{logical_id}: a variable name is not a string"))
                })?;
                match resolve(v, refs)
                    .map_err(|e| EmuError::Template(format!("{logical_id}: variable {k}: {e}")))?
                {
                    Resolved::Text(t) => {
                        env.insert(k.to_owned(), t);
                    }
                    Resolved::NoValue => {
                        env.remove(k);
                    }
                }
            }
        }
        let binary = self
            .functions()?
            .into_iter()
            .find(|(id, _)| id == logical_id)
            .map(|(_, b)| b)
            .ok_or_else(|| EmuError::Template(format!("{logical_id} is not a function")))?;
        Ok(FunctionSpec {
            logical_id: logical_id.to_owned(),
            binary,
            env,
            timeout_secs: number("Timeout", 3)?,
            memory_mb: number("MemorySize", 128)?,
            handler: text("Handler")?,
            runtime: text("Runtime")?,
        })
    }
}

fn resolve(v: &Value, refs: &Refs) -> Result<Resolved, String> {
    match v {
        Value::String(s) => Ok(Resolved::Text(s.clone())),
        Value::Number(n) => Ok(Resolved::Text(n.to_string())),
        Value::Bool(b) => Ok(Resolved::Text(b.to_string())),
        Value::Tagged(t) => match (tag_name(t).as_str(), &t.value) {
            ("Ref", Value::String(name)) => {
                if name == "AWS::NoValue" {
                    return Ok(Resolved::NoValue);
                }
                refs.values
                    .get(name)
                    .map(|s| Resolved::Text(s.clone()))
                    .ok_or_else(|| format!("!Ref {name} is not resolved"))
            }
            ("Sub", Value::String(text)) => sub(text, refs).map(Resolved::Text),
            ("If", Value::Sequence(parts)) if parts.len() == 3 => {
                let cond = parts[0]
                    .as_str()
                    .ok_or_else(|| "!If without a condition name".to_owned())?;
                let truth = refs
                    .conditions
                    .get(cond)
                    .ok_or_else(|| format!("condition {cond} is not set"))?;
                resolve(if *truth { &parts[1] } else { &parts[2] }, refs)
            }
            (other, _) => Err(format!(
                "!{other} is not supported (only !Ref, !Sub and !If)"
            )),
        },
        _ => Err("unsupported value".to_owned()),
    }
}

fn sub(text: &str, refs: &Refs) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {text}"))?;
        let name = &after[..end];
        let value = refs
            .values
            .get(name)
            .ok_or_else(|| format!("${{{name}}} is not resolved"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Timeout: 10
    MemorySize: !If [OnManagedInstances, 2048, 256]
    Environment:
      Variables:
        NAMESPACE: !Ref Namespace
        SHARED: "1"
Conditions:
  HasPrograms: !Not [!Equals [!Ref Programs, ""]]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  OneFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: one
    Properties:
      Timeout: 29
      MemorySize: !If [OnManagedInstances, 2048, 512]
      Environment:
        Variables:
          TABLE_NAME: !Ref Table
          GREETING: !Sub "hello ${Namespace}/x"
          PROGRAMS: !If [HasPrograms, !Ref Programs, !Ref AWS::NoValue]
          COUNT: 3
  TwoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: one
    Properties: {}
"#;

    fn refs() -> Refs {
        Refs::new()
            .value("Namespace", "ns")
            .value("Table", "records")
            .value("Programs", "[]")
            .condition("HasPrograms", false)
            .condition("OnManagedInstances", false)
    }

    #[test]
    fn a_function_gets_the_globals_merged_with_its_own_resolved_variables() {
        let t = Template::parse(TEMPLATE).unwrap();
        let f = t.function("OneFunction", &refs()).unwrap();
        assert_eq!(f.binary, "one");
        assert_eq!(f.timeout_secs, 29);
        assert_eq!(f.memory_mb, 512);
        assert_eq!(f.handler, "bootstrap");
        assert_eq!(f.env["NAMESPACE"], "ns");
        assert_eq!(f.env["SHARED"], "1");
        assert_eq!(f.env["TABLE_NAME"], "records");
        assert_eq!(f.env["GREETING"], "hello ns/x");
        assert_eq!(f.env["COUNT"], "3");
        assert!(
            !f.env.contains_key("PROGRAMS"),
            "AWS::NoValue drops the variable"
        );
        let g = t.function("TwoFunction", &refs()).unwrap();
        assert_eq!(g.timeout_secs, 10, "the global timeout applies");
        assert_eq!(
            g.memory_mb, 256,
            "the global memory, chosen by its condition"
        );
    }

    #[test]
    fn a_memory_size_chosen_by_a_condition_follows_the_condition() {
        let t = Template::parse(TEMPLATE).unwrap();
        let managed = refs().condition("OnManagedInstances", true);
        assert_eq!(t.function("TwoFunction", &managed).unwrap().memory_mb, 2048);
        assert_eq!(
            t.function("OneFunction", &managed).unwrap().memory_mb,
            2048,
            "a function's own size wins over the global one"
        );
        assert_eq!(t.function("OneFunction", &refs()).unwrap().memory_mb, 512);
        let unset = Refs::new()
            .value("Namespace", "ns")
            .value("Table", "records")
            .condition("HasPrograms", false);
        let err = t.function("TwoFunction", &unset).unwrap_err().to_string();
        assert!(
            err.contains("MemorySize") && err.contains("OnManagedInstances"),
            "{err}"
        );
    }

    #[test]
    fn an_unresolved_reference_is_an_error_naming_the_variable() {
        let t = Template::parse(TEMPLATE).unwrap();
        let err = t
            .function("OneFunction", &Refs::new().value("Namespace", "ns"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TABLE_NAME"), "{err}");
    }

    #[test]
    fn a_binary_run_by_two_functions_must_be_named_by_logical_id() {
        let t = Template::parse(TEMPLATE).unwrap();
        assert!(t.find_function("one").is_err());
        assert_eq!(t.find_function("TwoFunction").unwrap(), "TwoFunction");
        assert!(t.find_function("nothing").is_err());
    }
}
