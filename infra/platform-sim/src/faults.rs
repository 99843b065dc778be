//! Fault injection per route: error statuses at a rate, added latency, held connections,
//! 429 with `Retry-After` and "fail the next N calls". Sampling uses a seeded PRNG, so a run
//! with the same seed and the same request order fails the same calls.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rng::{SplitMix64, digest};

/// What `POST /sim/faults` accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// `"/credentials/issue-on-behalf"`, `"POST /credentials/issue-on-behalf"` or `"*"` (every
    /// platform route).
    pub route: String,
    /// Error status to answer (400–599).
    #[serde(default)]
    pub status: Option<u16>,
    /// Probability in `[0, 1]` that a call gets the fault (default 1).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Latency added to every matching call, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Hold the connection without answering (until `holdMs`, if given, then 504).
    #[serde(default)]
    pub timeout: Option<bool>,
    /// How long a held connection is held before a 504 (default: until shutdown).
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// Answer 429 with this `Retry-After` (seconds).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Do the work, then lose the answer: the call takes effect (a credential is issued, a
    /// ciphertext stored) but the connection breaks before the caller reads the answer.
    #[serde(default)]
    pub lose_answer: Option<bool>,
    /// Apply the fault to the next N calls only (then the rule only adds latency).
    #[serde(default)]
    pub fail_next: Option<u32>,
    /// Seed of this rule's sampling (default: derived from the simulator seed and the route).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The answer a fault imposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// An error response with this status.
    Error(u16),
    /// 429 with `Retry-After`.
    RateLimit(u64),
    /// Hold the connection, then 504 (or forever when `None`).
    Hold(Option<Duration>),
    /// Run the route, then break the connection instead of answering.
    LoseAnswer,
}

/// What to do with one call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decision {
    /// Latency to add first.
    pub latency: Option<Duration>,
    /// The answer to impose instead of the real one.
    pub action: Option<Action>,
}

#[derive(Clone, Debug)]
struct Rule {
    spec: FaultSpec,
    action: Option<Action>,
    remaining: Option<u32>,
    rng: SplitMix64,
    hits: u64,
    injected: u64,
}

/// The active rules, keyed by normalized route.
#[derive(Default)]
pub struct Faults {
    rules: HashMap<String, Rule>,
}

/// Normalizes `"post /x"` to `"POST /x"`, `"/x/"` to `"/x"`; `"*"` stays.
fn normalize(route: &str) -> Result<String, String> {
    let route = route.trim();
    if route == "*" {
        return Ok(route.to_owned());
    }
    let (method, path) = match route.split_once(' ') {
        Some((m, p)) => (Some(m.trim().to_ascii_uppercase()), p.trim()),
        None => (None, route),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "route {route:?} must be \"*\", \"/path\" or \"METHOD /path\""
        ));
    }
    if path.starts_with("/sim") {
        return Err("the /sim control routes cannot be faulted".to_owned());
    }
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    Ok(match method {
        Some(m) => format!("{m} {path}"),
        None => path.to_owned(),
    })
}

impl Faults {
    /// Adds or replaces the rule for `spec.route`.
    ///
    /// # Errors
    /// A message naming the invalid field.
    pub fn set(&mut self, spec: FaultSpec, sim_seed: u64) -> Result<(), String> {
        let key = normalize(&spec.route)?;
        if let Some(rate) = spec.rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err("rate must be between 0 and 1".to_owned());
        }
        if let Some(status) = spec.status
            && !(400..=599).contains(&status)
        {
            return Err("status must be between 400 and 599".to_owned());
        }
        let action = if spec.lose_answer == Some(true) {
            Some(Action::LoseAnswer)
        } else if spec.timeout == Some(true) {
            Some(Action::Hold(spec.hold_ms.map(Duration::from_millis)))
        } else if let Some(secs) = spec.retry_after_secs {
            Some(Action::RateLimit(secs))
        } else if let Some(status) = spec.status {
            Some(if status == 429 {
                Action::RateLimit(1)
            } else {
                Action::Error(status)
            })
        } else if spec.fail_next.is_some() {
            Some(Action::Error(503))
        } else {
            None
        };
        if action.is_none() && spec.latency_ms.is_none() {
            return Err(
                "a fault needs status, timeout, loseAnswer, retryAfterSecs, failNext or latencyMs"
                    .to_owned(),
            );
        }
        let seed = spec.seed.unwrap_or_else(|| {
            let d = digest(sim_seed, &[b"fault", key.as_bytes()]);
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            u64::from_be_bytes(first)
        });
        let rule = Rule {
            remaining: spec.fail_next,
            rng: SplitMix64::new(seed),
            action,
            spec,
            hits: 0,
            injected: 0,
        };
        self.rules.insert(key, rule);
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules with their counters, for `GET /sim/faults`.
    #[must_use]
    pub fn describe(&self) -> serde_json::Value {
        let mut rules: Vec<_> = self
            .rules
            .iter()
            .map(|(key, r)| {
                serde_json::json!({
                    "route": key,
                    "spec": r.spec,
                    "remaining": r.remaining,
                    "hits": r.hits,
                    "injected": r.injected,
                })
            })
            .collect();
        rules.sort_by(|a, b| a["route"].as_str().cmp(&b["route"].as_str()));
        serde_json::json!({ "faults": rules })
    }

    /// Decides the fate of a call to `method path`: the most specific matching rule applies.
    pub fn decide(&mut self, method: &str, path: &str) -> Decision {
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let keys = [format!("{method} {path}"), path.to_owned(), "*".to_owned()];
        let Some(key) = keys.into_iter().find(|k| self.rules.contains_key(k)) else {
            return Decision::default();
        };
        let Some(rule) = self.rules.get_mut(&key) else {
            return Decision::default();
        };
        rule.hits += 1;
        let latency = rule.spec.latency_ms.map(Duration::from_millis);
        let triggered = match rule.remaining.as_mut() {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => {
                let rate = rule.spec.rate.unwrap_or(1.0);
                rule.rng.next_f64() < rate
            }
        };
        let action = if triggered { rule.action } else { None };
        if action.is_some() {
            rule.injected += 1;
        }
        Decision { latency, action }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> FaultSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn fail_next_applies_exactly_n_times() {
        let mut f = Faults::default();
        f.set(
            spec(serde_json::json!({"route": "/a", "failNext": 2, "status": 500})),
            1,
        )
        .unwrap();
        let got: Vec<_> = (0..4).map(|_| f.decide("GET", "/a").action).collect();
        assert_eq!(
            got,
            vec![
                Some(Action::Error(500)),
                Some(Action::Error(500)),
                None,
                None
            ]
        );
    }

    #[test]
    fn the_same_seed_samples_the_same_calls() {
        let run = || {
            let mut f = Faults::default();
            f.set(
                spec(serde_json::json!({"route": "*", "status": 503, "rate": 0.5, "seed": 9})),
                1,
            )
            .unwrap();
            (0..64)
                .map(|_| f.decide("POST", "/x").action.is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.iter().any(|x| *x) && first.iter().any(|x| !*x));
    }

    #[test]
    fn lose_answer_is_an_action_of_its_own() {
        let mut f = Faults::default();
        f.set(
            spec(serde_json::json!({"route": "*", "loseAnswer": true, "failNext": 1})),
            1,
        )
        .unwrap();
        assert_eq!(f.decide("POST", "/x").action, Some(Action::LoseAnswer));
        assert_eq!(f.decide("POST", "/x").action, None);
    }

    #[test]
    fn specific_routes_win_over_the_wildcard() {
        let mut f = Faults::default();
        f.set(spec(serde_json::json!({"route": "*", "status": 500})), 1)
            .unwrap();
        f.set(
            spec(serde_json::json!({"route": "POST /a", "retryAfterSecs": 3})),
            1,
        )
        .unwrap();
        assert_eq!(f.decide("POST", "/a").action, Some(Action::RateLimit(3)));
        assert_eq!(f.decide("GET", "/a").action, Some(Action::Error(500)));
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut f = Faults::default();
        assert!(f.set(spec(serde_json::json!({"route": "/a"})), 1).is_err());
        assert!(
            f.set(spec(serde_json::json!({"route": "/a", "status": 200})), 1)
                .is_err()
        );
        assert!(
            f.set(
                spec(serde_json::json!({"route": "/a", "status": 500, "rate": 2.0})),
                1
            )
            .is_err()
        );
        assert!(
            f.set(
                spec(serde_json::json!({"route": "/sim/faults", "status": 500})),
                1
            )
            .is_err()
        );
        assert!(
            f.set(spec(serde_json::json!({"route": "nope", "status": 500})), 1)
                .is_err()
        );
    }
}
