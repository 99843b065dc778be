//! The local world a bootstrap under the emulator talks to: DynamoDB and Secrets Manager at
//! `AWS_ENDPOINT_URL` (moto), prepared by a devstack running against them in this process — table,
//! first signing key, data keys, dev API key and webhook secret — with its platform simulator,
//! which verifies the bootstraps' Partner JWTs through the devstack's JWKS.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::EmuError;
use crate::template::{Refs, Template};

/// The AWS variables passed through to the bootstraps (endpoint, dummy credentials, region).
const AWS_PASSTHROUGH: [&str; 7] = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
];

/// A devstack on moto, and what the functions under the emulator need to join it.
pub struct LocalWorld {
    running: devstack::Running,
    _data_dir: tempfile::TempDir,
    table: String,
    partner_id: String,
    credentials: Value,
}

impl std::fmt::Debug for LocalWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorld")
            .field("api", &self.running.api_url())
            .field("platform", &self.running.platform)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl LocalWorld {
    /// Starts a devstack against `AWS_ENDPOINT_URL` with the table `table` (created if missing).
    /// Its own schedules are slowed to once an hour so they never race the functions under test.
    pub async fn start(table: &str) -> Result<Self, EmuError> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            return Err(EmuError::Missing(
                "AWS_ENDPOINT_URL is not set: run under infra/scripts/with-moto.sh (make test and make invoke do)"
                    .into(),
            ));
        }
        let data_dir = tempfile::tempdir().map_err(|source| EmuError::Io {
            what: "creating a data directory".into(),
            source,
        })?;
        let partner_id = "partner-emulator".to_owned();
        let opts = devstack::Options {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: data_dir.path().to_path_buf(),
            aws: true,
            table_name: table.to_owned(),
            partner_id: partner_id.clone(),
            schedule_interval: Duration::from_secs(3600),
        };
        let running = devstack::start(&opts)
            .await
            .map_err(|e| EmuError::World(e.to_string()))?;
        let text =
            std::fs::read_to_string(&running.credentials).map_err(|source| EmuError::Io {
                what: format!("reading {}", running.credentials.display()),
                source,
            })?;
        let credentials: Value = serde_json::from_str(&text)
            .map_err(|e| EmuError::World(format!("dev credentials: {e}")))?;
        Ok(Self {
            running,
            _data_dir: data_dir,
            table: table.to_owned(),
            partner_id,
            credentials,
        })
    }

    /// The devstack's API base URL (its JWKS is at `/.well-known/jwks.json`).
    pub fn api_url(&self) -> String {
        self.running.api_url()
    }

    /// An HTTPS-only client trusting the devstack's local CA.
    ///
    /// # Errors
    /// [`EmuError::World`] when it cannot be built.
    pub fn client(&self) -> Result<reqwest::Client, EmuError> {
        self.running
            .client()
            .map_err(|e| EmuError::World(format!("an HTTPS client: {e}")))
    }

    /// The platform simulator's base URL.
    pub fn platform_url(&self) -> &str {
        &self.running.platform
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The partner id.
    pub fn partner_id(&self) -> &str {
        &self.partner_id
    }

    /// The dev API key: id and secret.
    pub fn api_key(&self) -> Result<(String, String), EmuError> {
        let id = self
            .credentials
            .pointer("/apiKey/id")
            .and_then(Value::as_str);
        let secret = self
            .credentials
            .pointer("/apiKey/secret")
            .and_then(Value::as_str);
        match (id, secret) {
            (Some(i), Some(s)) => Ok((i.to_owned(), s.to_owned())),
            _ => Err(EmuError::World(
                "the dev credentials hold no API key".into(),
            )),
        }
    }

    /// The Standard Webhooks secret the simulator signs callbacks with.
    pub fn webhook_secret(&self) -> Result<String, EmuError> {
        self.credentials
            .get("webhookSecret")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| EmuError::World("the dev credentials hold no webhook secret".into()))
    }

    /// How the template's references resolve here: its parameter defaults, the parameters that
    /// have none, and each resource's name as the devstack created it.
    pub fn refs(&self, template: &Template) -> Refs {
        template
            .parameter_defaults()
            .value("AWS::StackName", "partner-credential-bundle")
            .value("AWS::Region", "us-east-1")
            .value("PartnerId", self.partner_id.clone())
            // The dev API key is a `test` key, as on the devstack.
            .value("StackEnvironment", "test")
            .value("IdentityProviderIssuer", "https://idp.example.com")
            .value("IdentityProviderAudience", "partner-app")
            .value("IssuerDid", format!("did:air:id:test:{}", self.partner_id))
            .value("PlatformBaseUrl", self.running.platform.clone())
            .value("RecordsTable", self.table.clone())
            .value("SigningKeySet", shared::keys::DEFAULT_KEY_SET_SECRET)
            .value("ApiKeyRegistry", shared::auth::DEFAULT_API_KEYS_SECRET)
            .value("DataKeys", shared::pii::DEFAULT_DATA_KEYS_SECRET)
            .value(
                "WebhookSecrets",
                callback_receiver::DEFAULT_WEBHOOK_SECRETS_SECRET,
            )
            .condition("HasPrograms", false)
            .condition("HasAllowedOrigins", false)
            .condition("HasCallbackRoutes", false)
            // The standard deployment: Lambda Managed Instances (one process taking several
            // invocations at once) are run by `ConcurrentFunction` with a concurrency of its own.
            .condition("OnManagedInstances", false)
    }

    /// What the bootstraps need beyond the template: the AWS endpoint and dummy credentials of
    /// this process, and local mode: the devstack's local CA, trusted besides the platform's
    /// roots, to reach the simulator over HTTPS.
    pub fn extra_env(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = AWS_PASSTHROUGH
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        env.entry("AWS_REGION".into())
            .or_insert_with(|| "us-east-1".into());
        env.insert("PLATFORM_LOCAL_MODE".into(), "true".into());
        env.insert(
            "PLATFORM_LOCAL_CA".into(),
            self.running.ca.display().to_string(),
        );
        env
    }

    /// Sets the simulator's clock forward (credentials age, `WAIT_ONCHAIN` → `ONCHAIN`).
    pub async fn advance_platform_clock(&self, seconds: u64) -> Result<(), EmuError> {
        let resp = self
            .running
            .client()
            .map_err(|e| EmuError::World(format!("an HTTPS client: {e}")))?
            .post(format!("{}/sim/clock/advance", self.running.platform))
            .json(&serde_json::json!({ "seconds": seconds }))
            .send()
            .await
            .map_err(|e| EmuError::World(format!("advancing the simulator clock: {e}")))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(EmuError::World(format!(
                "the simulator refused to advance its clock: HTTP {}",
                resp.status()
            )))
        }
    }
}
