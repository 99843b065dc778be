//! A world for the status poller: one manual clock moved together with the platform simulator's,
//! the embedded store (or DynamoDB on the moto server `make test` runs), our key set served as a
//! JWKS, the real platform simulator, and credentials issued at the simulator and queued for
//! polling exactly as the issue function queues them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use shared::auth::AccessKeyId;
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::issuance::ProgramId;
use shared::issuance::{Accepted, Issuance, IssuanceId, IssuanceStatus, NewIssuance};
use shared::keys::KeyConfig;
use shared::pii::{DataKeys, Fingerprint, Protector};
use shared::platform::{Deadline, IssueOnBehalf, OnDuplicate};
use shared::redact::Pii;
use shared::secrets::CountingSource;
use shared::secrets::file::FileSecrets;
use shared::store::{DueRecords, NewRecord, Record, RecordStore, Write};
use shared::telemetry::{MemorySink, Recorder};
use status_poller::{PollPolicy, PollerConfig, PollerDeps, PollerPorts, RunSummary, run};

/// The program the seeded credentials belong to.
pub const PROGRAM: &str = "kyc-basic";
/// The API key the test records were requested with.
pub const CALLER: &str = "pk_poller_test_caller";
/// Where the first poll is due after acceptance (as the issue function queues it).
pub const FIRST_POLL_AFTER: Duration = Duration::from_secs(1);

/// Which store the world runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite store in a temporary directory.
    Embedded,
    /// DynamoDB on the moto server at `AWS_ENDPOINT_URL` (fails loudly when it is not there).
    DynamoDb,
}

pub struct World {
    /// The one clock of this world: the poller's, its store's, its secrets' and its tokens'. The
    /// simulator checks token times on its own clock, which [`World::advance`] moves with it.
    pub clock: ManualClock,
    pub store: Arc<dyn RecordStore>,
    pub due: Arc<dyn DueRecords>,
    pub sim: platform_sim::SimHandle,
    pub metrics: MemorySink,
    /// The poller's configuration, as a deployment reads it from its environment, pointed at the
    /// simulator with short backoffs (tests may change it before building a poller).
    pub config: PollerConfig,
    pub dir: tempfile::TempDir,
    /// The pollers' secrets, counting every read they make.
    pub reads: CountingSource<FileSecrets>,
    protector: Protector,
    http: reqwest::Client,
    backend: Backend,
    table: Option<String>,
    _jwks: test_support::JwksServer,
}

/// A world whose simulator anchors credentials `onchain_delay` after issuance.
pub async fn world(backend: Backend, onchain_delay: Duration) -> World {
    let clock = ManualClock::new(Timestamp::from_millis(SystemClock.now().as_millis()));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let keys_config = KeyConfig::from_env(&EnvReader::new(&MapEnv::default())).unwrap();

    // Our signing key, published to the simulator through a tiny JWKS server.
    let test_support::SignedPlatform { sim, jwks, .. } = test_support::SignedPlatform::start(
        Arc::new(files.clone()),
        &keys_config,
        &shared_clock,
        |c| platform_sim::SimConfig {
            onchain_delay,
            token_times: platform_sim::TokenTimes::Simulator,
            ..c
        },
    )
    .await;

    // The function's configuration, as a deployment reads it.
    let sim_url = sim.base_url();
    let env = MapEnv::from_pairs([
        ("PARTNER_ID", "partner-local"),
        ("PLATFORM_BASE_URL", sim_url.as_str()),
        ("PLATFORM_LOCAL_MODE", "true"),
        ("PLATFORM_LOCAL_CA", test_support::local_ca_file()),
        ("PLATFORM_BASE_BACKOFF_MS", "5"),
        ("PLATFORM_MAX_BACKOFF_MS", "20"),
        ("PLATFORM_MAX_ATTEMPTS", "2"),
        ("PLATFORM_REQUEST_TIMEOUT_MS", "1500"),
    ]);
    let config = PollerConfig::from_env(&EnvReader::new(&env)).unwrap();

    let (store, due, table): (Arc<dyn RecordStore>, Arc<dyn DueRecords>, _) = match backend {
        Backend::Embedded => {
            let store = Arc::new(
                shared::store::embedded::EmbeddedStore::open(
                    dir.path().join("records.sqlite3"),
                    shared_clock,
                )
                .unwrap(),
            );
            (store.clone(), store, None)
        }
        Backend::DynamoDb => {
            let sdk = test_support::moto().await;
            let table = format!("poller-{}", uuid::Uuid::new_v4().simple());
            let store = Arc::new(shared::store::dynamodb::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                table.clone(),
                shared_clock,
            ));
            store.create_table_if_missing().await.unwrap();
            (store.clone(), store, Some(table))
        }
    };

    World {
        clock,
        store,
        due,
        sim,
        metrics: MemorySink::default(),
        config,
        dir,
        reads: CountingSource::new(files),
        protector: Protector::new(Arc::new(DataKeys::generate())),
        http: test_support::https_client(),
        backend,
        table,
        _jwks: jwks,
    }
}

impl World {
    /// A fresh poller over this world's store, built as a new Lambda container builds it
    /// ([`PollerDeps::build`]: its own token cache and connection pool), with `policy`.
    pub fn poller(&self, policy: PollPolicy) -> PollerDeps {
        self.poller_on(self.store.clone(), self.due.clone(), policy)
    }

    /// The same over other handles on the store (another connection, another process).
    pub fn poller_on(
        &self,
        store: Arc<dyn RecordStore>,
        due: Arc<dyn DueRecords>,
        policy: PollPolicy,
    ) -> PollerDeps {
        self.build(store, due, policy, self.metrics.clone())
    }

    fn build(
        &self,
        store: Arc<dyn RecordStore>,
        due: Arc<dyn DueRecords>,
        policy: PollPolicy,
        metrics: MemorySink,
    ) -> PollerDeps {
        let clock: SharedClock = Arc::new(self.clock.clone());
        let recorder = Recorder::new(
            "Test",
            status_poller::SERVICE,
            Arc::new(metrics),
            clock.clone(),
        );
        let config = PollerConfig {
            policy,
            ..self.config.clone()
        };
        PollerDeps::build(
            config,
            PollerPorts {
                secrets: Arc::new(self.reads.clone()),
                store,
                due,
                clock,
                recorder,
            },
        )
        .unwrap()
    }

    /// The store this world runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A second DynamoDB client on the same table (another Lambda container).
    pub async fn second_store(&self) -> (Arc<dyn RecordStore>, Arc<dyn DueRecords>) {
        let clock: SharedClock = Arc::new(self.clock.clone());
        let sdk = shared::aws::load().await;
        let store = Arc::new(shared::store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            self.table.clone().expect("a DynamoDB world"),
            clock,
        ));
        (store.clone(), store)
    }

    /// One run with a minute to go.
    pub async fn run(&self, deps: &PollerDeps) -> RunSummary {
        run(deps, Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap()
    }

    /// Moves the poller's clock and the simulator's clock forward together.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.sim.advance(by);
    }

    /// Issues `n` credentials at the simulator (users `{prefix}{i}@example.com`) and queues their
    /// records as the issue function does: `WAIT_ONCHAIN` since now, first poll due 1 s later.
    pub async fn seed(&self, prefix: &str, n: usize) -> Vec<IssuanceId> {
        // The issue function's call, made with a poller's own platform client (and metrics that
        // are not the poller's).
        let seeder = self.build(
            self.store.clone(),
            self.due.clone(),
            PollPolicy::default(),
            MemorySink::default(),
        );
        let client = &seeder.platform;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let email = format!("{prefix}{i}@example.com");
                let issued = client
                    .issue_on_behalf(
                        &email,
                        &IssueOnBehalf {
                            issuer_did: "did:air:id:test:partner-local".into(),
                            credential_id: PROGRAM.into(),
                            credential_subject: json!({"tier": "basic", "country": "DE",
                                "verifiedAt": "2026-11-21T12:00:00Z"}),
                            on_duplicate: OnDuplicate::Revoke,
                        },
                        Deadline::after(Duration::from_secs(30)),
                    )
                    .await
                    .unwrap();
                self.queue(
                    &email,
                    &format!("{prefix}-{i}"),
                    Some(issued.core_claim_hash),
                )
                .await
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// Writes one `WAIT_ONCHAIN` record for `email`, queued as the issue function queues it.
    pub async fn queue(
        &self,
        email: &str,
        idempotency_key: &str,
        core_claim_hash: Option<String>,
    ) -> IssuanceId {
        let id = IssuanceId::derive(CALLER, idempotency_key);
        let key = id.record_key().unwrap();
        let now = self.clock.now();
        let pending = Issuance::pending(
            NewIssuance {
                issuance_id: id.clone(),
                caller: AccessKeyId::parse(CALLER).unwrap(),
                owner: None,
                program_id: ProgramId::parse(PROGRAM).unwrap(),
                user_hash: self.protector.hash(email),
                user: self
                    .protector
                    .seal(&Pii::new(email.to_owned()), key.as_str())
                    .unwrap(),
                subject_hash: Fingerprint::from_stored("0".repeat(64)),
                on_duplicate: OnDuplicate::Revoke,
                previous_core_claim_hash: None,
            },
            now,
            now,
        );
        // Accepted as the issue function records it; a record without a hash (which the issue
        // function never writes) is the same record with the hash taken out.
        let accepted = Accepted {
            core_claim_hash: core_claim_hash.clone().unwrap_or_default(),
            user_uuid: None,
            cak_public_key: None,
        };
        let mut issuance =
            serde_json::to_value(pending.accepted(accepted, false, now).unwrap()).unwrap();
        if core_claim_hash.is_none() {
            issuance.as_object_mut().unwrap().remove("coreClaimHash");
        }
        let record =
            NewRecord::new(key, issuance).due_at(self.queue_of(&id), now.plus(FIRST_POLL_AFTER));
        self.store.write(Write::Create(record)).await.unwrap();
        id
    }

    /// Writes one unfinished record (`PENDING` or `UPLOAD_PENDING`) whose request holds it until
    /// `lease_until`, due for the reconciler then, as the issue function writes it.
    pub async fn unfinished(
        &self,
        email: &str,
        idempotency_key: &str,
        status: IssuanceStatus,
        lease_until: shared::clock::Timestamp,
    ) -> IssuanceId {
        let id = self.queue(email, idempotency_key, None).await;
        let (record, _) = self.record(&id).await;
        // The record as a request that died at that step leaves it.
        let mut issuance = record.data.clone();
        let fields = issuance.as_object_mut().unwrap();
        fields.insert("status".into(), serde_json::to_value(status).unwrap());
        fields.remove("waitOnchainSince");
        fields.insert(
            "leaseUntil".into(),
            serde_json::to_value(lease_until).unwrap(),
        );
        if status == IssuanceStatus::UploadPending {
            fields.insert("coreClaimHash".into(), json!("0xabc"));
            fields.insert("cakPublicKey".into(), json!("04ab"));
        }
        let write = Write::Replace {
            record: NewRecord::new(record.key, issuance).due_at(self.queue_of(&id), lease_until),
            expected: record.version,
        };
        self.store.write(write).await.unwrap();
        id
    }

    /// The queue the issue function puts `id` in (its shard at the default count).
    pub fn queue_of(&self, id: &IssuanceId) -> shared::store::QueueName {
        shared::issuance::PollShards::default().queue_for(id)
    }

    /// Moves the record of `id` to `queue` (due at the same time), as another release queued it.
    pub async fn requeue(&self, id: &IssuanceId, queue: shared::store::QueueName) {
        let (record, _) = self.record(id).await;
        let due = record.due.clone().expect("queued");
        let write = Write::Replace {
            record: NewRecord::new(record.key.clone(), record.data.clone()).due_at(queue, due.at),
            expected: record.version,
        };
        self.store.write(write).await.unwrap();
    }

    /// The stored record and its issuance.
    pub async fn record(&self, id: &IssuanceId) -> (Record, Issuance) {
        let record = self
            .store
            .get(&id.record_key().unwrap())
            .await
            .unwrap()
            .expect("the record exists");
        let issuance = serde_json::from_value(record.data.clone()).unwrap();
        (record, issuance)
    }

    /// The status calls the simulator received, as their `coreClaimHash`es, in arrival order.
    pub fn status_calls(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.route == "GET /credentials/status")
            .map(|r| {
                r.query
                    .unwrap_or_default()
                    .trim_start_matches("coreClaimHash=")
                    .to_owned()
            })
            .collect()
    }

    /// The issue-on-behalf calls the simulator received.
    pub fn issue_calls(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.route == "POST /credentials/issue-on-behalf")
            .count()
    }

    pub async fn fault(&self, spec: Value) {
        test_support::inject_fault(&self.http, &self.sim, &spec).await;
    }

    pub async fn clear_faults(&self) {
        test_support::clear_faults(&self.http, &self.sim).await;
    }

    /// Sum of every value of a metric (all dimensions).
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics.total(name)
    }

    /// Sum of a metric's values under one `kind`.
    pub fn metric_of_kind(&self, name: &str, kind: &str) -> f64 {
        self.metrics
            .documents()
            .iter()
            .filter(|d| d["kind"] == kind)
            .filter_map(|d| d[name].as_f64())
            .sum()
    }
}
