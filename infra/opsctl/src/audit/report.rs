//! The audit's report: one [`Finding`] per checklist item, each with its outcome and evidence.

use serde::Serialize;

/// The guides whose checklist items the bundle is responsible for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guide {
    /// The AIR Kit partner security checklist.
    AirKit,
    /// The CAK issuer guide.
    CakIssuer,
    /// The Aeropay integration best practices.
    Aeropay,
    /// The HMAC API-security guide.
    Hmac,
    /// The API authentication layers guide.
    AuthLayers,
}

impl Guide {
    /// Every guide, in report order.
    pub const ALL: [Self; 5] = [
        Self::AirKit,
        Self::CakIssuer,
        Self::Aeropay,
        Self::Hmac,
        Self::AuthLayers,
    ];

    /// The guide's name as the report prints it.
    pub fn title(self) -> &'static str {
        match self {
            Self::AirKit => "AIR Kit partner security checklist",
            Self::CakIssuer => "CAK issuer guide",
            Self::Aeropay => "Aeropay best practices",
            Self::Hmac => "HMAC API-security guide",
            Self::AuthLayers => "API authentication layers guide",
        }
    }
}

/// How an item is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Black-box requests to the running API.
    Live,
    /// A reading of the SAM template.
    Template,
    /// A reading of the secrets store, with operator access.
    State,
    /// Nothing outside the stack can observe it.
    Review,
}

/// One checklist item: what the guide asks, in a short paraphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Item {
    /// A stable id (`jwks-public-only`), for scripts and for `--format json`.
    pub id: &'static str,
    /// The guide the item comes from.
    pub guide: Guide,
    /// The item, paraphrased.
    pub paraphrase: &'static str,
    /// How the audit checks it.
    pub method: Method,
}

/// What the audit concluded about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The item holds.
    Pass,
    /// The item does not hold; `why` says what was wrong.
    Fail {
        /// What was wrong, in one sentence.
        why: String,
    },
    /// The item cannot be seen from where the audit runs; `look_at` says what a reviewer should
    /// look at instead (or which option makes it observable).
    NotObservable {
        /// Where a reviewer looks instead.
        look_at: String,
    },
}

impl Outcome {
    /// A failure with its reason.
    pub fn fail(why: impl Into<String>) -> Self {
        Self::Fail { why: why.into() }
    }

    /// Not observable, with where to look instead.
    pub fn not_observable(look_at: impl Into<String>) -> Self {
        Self::NotObservable {
            look_at: look_at.into(),
        }
    }

    /// The outcome's short name: `pass`, `fail`, `not observable from outside`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail { .. } => "fail",
            Self::NotObservable { .. } => "not observable from outside",
        }
    }

    /// Whether this is a failure.
    pub fn failed(&self) -> bool {
        matches!(self, Self::Fail { .. })
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What was seen: each request made and what came back (never a secret), or a template line.
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding for `item`.
    pub fn new(item: Item, outcome: Outcome, evidence: Vec<String>) -> Self {
        Self {
            item,
            outcome,
            evidence,
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The API audited.
    pub api: String,
    /// When the audit ran (RFC 3339).
    pub at: String,
    /// One finding per item, in checklist order.
    pub findings: Vec<Finding>,
}

/// Counts of one guide's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Items that hold.
    pub pass: usize,
    /// Items that do not.
    pub fail: usize,
    /// Items not observable from outside.
    pub not_observable: usize,
}

impl Report {
    /// Whether any observable item failed (the command's exit status).
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.outcome.failed())
    }

    /// The counts per guide, in guide order, for the guides with at least one item.
    pub fn summary(&self) -> Vec<(Guide, Counts)> {
        Guide::ALL
            .into_iter()
            .filter_map(|g| {
                let mut c = Counts::default();
                for f in self.findings.iter().filter(|f| f.item.guide == g) {
                    match f.outcome {
                        Outcome::Pass => c.pass += 1,
                        Outcome::Fail { .. } => c.fail += 1,
                        Outcome::NotObservable { .. } => c.not_observable += 1,
                    }
                }
                (c != Counts::default()).then_some((g, c))
            })
            .collect()
    }

    /// The finding of the item `id`.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.item.id == id)
    }
}
