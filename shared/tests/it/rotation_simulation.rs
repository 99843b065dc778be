#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Zero-downtime key rotation, simulated on a manual clock (docs/architecture.md §3).
//!
//! The simulation models the deployment second by second, without sleeping:
//!
//! - the key set **secret**: one JSON document, with a log of every write;
//! - the **rotation job**: runs [`plan`] every ten simulated minutes and writes its result;
//! - several **signer containers**, each with its own key-set cache (re-read only when the cached
//!   copy is older than the key-set cache TTL; the containers start at staggered times so their
//!   copies disagree around every write), minting a token every few seconds, round-robin;
//! - one **JWKS container** with its own key-set cache, serving the JWKS through [`JwksCache`];
//! - several **verifiers** (relying parties) whose clocks are off by up to the allowed skew, each
//!   caching the JWKS for its full `max-age` and re-fetching early only for a `kid` it does not
//!   know (at most once per kid per fetch). Every token is verified when minted and again one
//!   second before it expires, by different verifiers.
//!
//! The run is shared by the tests below; each checks one promise of the rotation design.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use shared::clock::{Clock, ManualClock, Timestamp};
use shared::keys::policy::{Change, RotationPolicy, plan};
use shared::keys::{
    JwksCache, KeySet, KeyTimings, Kid, PartnerId, PreparedKeys, RenderedJwks, Scope, ScopeClaim,
    TokenLifetime, TokenRequest,
};

/// 2026-11-21T12:00:00Z.
const START: i64 = 1_795_262_400;
/// How long tokens are minted for (seconds after `START`).
const MINT_UNTIL: i64 = 12 * 3600;
/// The run goes on after the last mint so that the last tokens get their late verification.
const RUN_UNTIL: i64 = MINT_UNTIL + 600;
/// A short rotation period, so that many rotations fit in the run.
const ROTATION_PERIOD: Duration = Duration::from_secs(3600);
/// The rotation job's schedule.
const JOB_EVERY: i64 = 600;
/// One token is minted every this many seconds, by the next signer container in turn.
const MINT_EVERY: i64 = 7;
/// The JWKS endpoint is also requested (by other relying parties) this often.
const PROBE_EVERY: i64 = 30;
/// When each signer container starts (its cache is filled on its first mint).
const SIGNER_STARTS: [i64; 4] = [0, 79, 158, 237];
/// When each verifier starts, and how far its clock is off ours (within the allowed skew).
const VERIFIERS: [(i64, i64); 4] = [(0, -60), (67, -20), (134, 25), (201, 60)];

fn timings() -> KeyTimings {
    KeyTimings {
        max_token_lifetime: Duration::from_secs(300),
        clock_skew: Duration::from_secs(60),
        jwks_max_age: Duration::from_secs(300),
        key_set_cache_ttl: Duration::from_secs(300),
    }
}

fn policy() -> RotationPolicy {
    let t = timings();
    RotationPolicy::new(ROTATION_PERIOD, t.min_lead(), t).expect("the minimum lead is accepted")
}

fn at(offset: i64) -> Timestamp {
    Timestamp::from_secs(START + offset)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).expect("a short duration")
}

/// Seconds since the start of the run, for messages.
fn rel(t: Timestamp) -> String {
    format!("t+{}s", t.as_secs() - START)
}

/// The secret holding the key set document, with its write log.
struct Secret {
    text: String,
    writes: Vec<(Timestamp, KeySet)>,
    /// Every private `d` ever stored, to look for in the JWKS.
    private_ds: HashSet<String>,
}

impl Secret {
    fn new() -> Self {
        Self {
            text: KeySet::default().to_json(),
            writes: Vec::new(),
            private_ds: HashSet::new(),
        }
    }

    fn read(&self) -> KeySet {
        KeySet::parse(&self.text).expect("the secret holds a valid key set")
    }

    fn version(&self) -> u64 {
        self.writes.last().map_or(0, |(_, s)| s.version)
    }

    fn write(&mut self, now: Timestamp, set: KeySet) {
        self.text = set.to_json();
        self.private_ds
            .extend(set.keys.iter().map(|k| k.private_jwk.d.clone()));
        self.writes.push((now, set));
    }
}

/// A signer container and its key-set cache.
struct SignerContainer {
    starts: i64,
    cached: Option<(Timestamp, Arc<PreparedKeys>)>,
}

/// The JWKS container and its key-set cache.
struct JwksContainer {
    cached: Option<(Timestamp, KeySet)>,
    rendered: JwksCache,
}

/// A verifier's copy of the JWKS.
struct VerifierDoc {
    fetched_at: Timestamp,
    keys: HashMap<String, DecodingKey>,
    /// Kids this copy was already re-fetched for (at most one early fetch per kid per copy).
    early_for: HashSet<String>,
}

struct Verifier {
    starts: i64,
    clock_offset: i64,
    doc: Option<VerifierDoc>,
}

/// A minted token, as the test remembers it.
#[derive(Debug, Clone)]
struct TokenRecord {
    kid: Kid,
    minted_at: Timestamp,
    expires_at: Timestamp,
    signer: usize,
}

/// One response of the JWKS endpoint.
#[derive(Debug, Clone)]
struct Served {
    at: Timestamp,
    kids: Vec<Kid>,
}

/// What the run observed; shared by the tests.
#[derive(Debug)]
struct Outcome {
    lead: Duration,
    timings: KeyTimings,
    /// Every secret write: when, the document version, and the kids it holds.
    writes: Vec<(Timestamp, u64, Vec<Kid>)>,
    changes: Vec<(Timestamp, Change)>,
    tokens: Vec<TokenRecord>,
    verifications: usize,
    failures: Vec<String>,
    early_refetches: Vec<String>,
    served: Vec<Served>,
    private_leaks: Vec<String>,
    signer_reads: usize,
    jwks_reads: usize,
    verifier_fetches: usize,
    stale_mints: usize,
    stale_jwks_responses: usize,
    first_container_read: Option<Timestamp>,
}

impl Outcome {
    fn summary(&self) -> String {
        let kids: BTreeSet<&Kid> = self.tokens.iter().map(|t| &t.kid).collect();
        let rotations = self
            .changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Scheduled { .. }))
            .count();
        format!(
            "simulated {} s: {} secret writes ({} rotations), {} kids signed, {} tokens minted, \
             {} verifications, {} failures, {} early JWKS re-fetches; signer key-set reads {}, \
             JWKS key-set reads {}, JWKS responses {} ({} from a stale key-set copy), verifier \
             fetches {}, mints from a stale key-set copy {}",
            RUN_UNTIL,
            self.writes.len(),
            rotations,
            kids.len(),
            self.tokens.len(),
            self.verifications,
            self.failures.len(),
            self.early_refetches.len(),
            self.signer_reads,
            self.jwks_reads,
            self.served.len(),
            self.stale_jwks_responses,
            self.verifier_fetches,
            self.stale_mints,
        )
    }

    /// The kids in order of first signing, with their first and last token.
    fn signing_history(&self) -> Vec<(Kid, &TokenRecord, &TokenRecord)> {
        let mut order: Vec<Kid> = Vec::new();
        let mut spans: HashMap<&Kid, (&TokenRecord, &TokenRecord)> = HashMap::new();
        for t in &self.tokens {
            spans
                .entry(&t.kid)
                .and_modify(|(_, last)| *last = t)
                .or_insert_with(|| {
                    order.push(t.kid.clone());
                    (t, t)
                });
        }
        order
            .into_iter()
            .map(|k| {
                let (first, last) = spans[&k];
                (k, first, last)
            })
            .collect()
    }

    fn served_at(&self, t: Timestamp) -> Option<&Served> {
        self.served.iter().find(|s| s.at == t)
    }
}

struct Sim {
    clock: ManualClock,
    timings: KeyTimings,
    policy: RotationPolicy,
    secret: Secret,
    prepared: HashMap<u64, Arc<PreparedKeys>>,
    signers: Vec<SignerContainer>,
    jwks: JwksContainer,
    verifiers: Vec<Verifier>,
    next_signer: usize,
    next_verifier: usize,
    validation: Validation,
    out: Outcome,
}

impl Sim {
    fn new() -> Self {
        let timings = timings();
        let policy = policy();
        let mut validation = Validation::new(Algorithm::ES256);
        // The simulated clock is not the system clock: times are checked against it below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iat"]);
        Self {
            clock: ManualClock::new(at(0)),
            timings,
            policy,
            secret: Secret::new(),
            prepared: HashMap::new(),
            signers: SIGNER_STARTS
                .iter()
                .map(|&starts| SignerContainer {
                    starts,
                    cached: None,
                })
                .collect(),
            jwks: JwksContainer {
                cached: None,
                rendered: JwksCache::default(),
            },
            verifiers: VERIFIERS
                .iter()
                .map(|&(starts, clock_offset)| Verifier {
                    starts,
                    clock_offset,
                    doc: None,
                })
                .collect(),
            next_signer: 0,
            next_verifier: 0,
            validation,
            out: Outcome {
                lead: policy.lead,
                timings,
                writes: Vec::new(),
                changes: Vec::new(),
                tokens: Vec::new(),
                verifications: 0,
                failures: Vec::new(),
                early_refetches: Vec::new(),
                served: Vec::new(),
                private_leaks: Vec::new(),
                signer_reads: 0,
                jwks_reads: 0,
                verifier_fetches: 0,
                stale_mints: 0,
                stale_jwks_responses: 0,
                first_container_read: None,
            },
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn note_container_read(&mut self) {
        let now = self.now();
        self.out.first_container_read.get_or_insert(now);
    }

    fn rotation_job(&mut self) {
        let now = self.now();
        let current = self.secret.read();
        if let Some((next, changes)) = plan(&current, now, &self.policy) {
            let kids = next.keys.iter().map(|k| k.kid.clone()).collect();
            self.out.writes.push((now, next.version, kids));
            self.out
                .changes
                .extend(changes.into_iter().map(|c| (now, c)));
            self.secret.write(now, next);
        }
    }

    /// The signer container's keys, re-read when the cached copy is older than the TTL.
    fn signer_keys(&mut self, i: usize) -> Arc<PreparedKeys> {
        let now = self.now();
        let ttl = self.timings.key_set_cache_ttl;
        let fresh = self.signers[i]
            .cached
            .as_ref()
            .is_some_and(|(read_at, _)| now.since(*read_at) <= ttl);
        if !fresh {
            self.note_container_read();
            self.out.signer_reads += 1;
            let set = self.secret.read();
            // Preparing decodes every key (a scalar multiplication each); containers that read
            // the same version get the same preparation, which only saves the test time.
            let timings = self.timings;
            let prepared = Arc::clone(self.prepared.entry(set.version).or_insert_with(|| {
                Arc::new(PreparedKeys::new(set, timings, now).expect("the keys decode"))
            }));
            self.signers[i].cached = Some((now, prepared));
        }
        let (_, keys) = self.signers[i].cached.as_ref().expect("filled above");
        Arc::clone(keys)
    }

    fn pick_signer(&mut self, t: i64) -> usize {
        loop {
            let i = self.next_signer % self.signers.len();
            self.next_signer += 1;
            if self.signers[i].starts <= t {
                return i;
            }
        }
    }

    fn pick_verifier(&mut self, t: i64) -> usize {
        loop {
            let i = self.next_verifier % self.verifiers.len();
            self.next_verifier += 1;
            if self.verifiers[i].starts <= t {
                return i;
            }
        }
    }

    fn mint(&mut self, t: i64) -> (usize, String) {
        let signer = self.pick_signer(t);
        let keys = self.signer_keys(signer);
        if keys.set().version != self.secret.version() {
            self.out.stale_mints += 1;
        }
        let now = self.now();
        let partner = PartnerId::new("partner-sim").unwrap();
        let scope = ScopeClaim::parse(Scope::ISSUE).unwrap();
        let minted = keys
            .mint(
                &TokenRequest {
                    partner_id: &partner,
                    scope: &scope,
                    email: Some("dana@example.com"),
                    sub: None,
                    issuer: None,
                    lifetime: TokenLifetime::new(self.timings.max_token_lifetime).unwrap(),
                },
                now,
            )
            .unwrap_or_else(|e| panic!("signer {signer} cannot mint at {}: {e}", rel(now)));
        self.out.tokens.push(TokenRecord {
            kid: minted.kid,
            minted_at: now,
            expires_at: minted.expires_at,
            signer,
        });
        (self.out.tokens.len() - 1, minted.token.expose().to_owned())
    }

    /// A request to the JWKS endpoint: the container re-reads the key set when its copy is older
    /// than the TTL, then serves the rendering for its copy at `now`.
    fn request_jwks(&mut self) -> Arc<RenderedJwks> {
        let now = self.now();
        let ttl = self.timings.key_set_cache_ttl;
        let fresh = self
            .jwks
            .cached
            .as_ref()
            .is_some_and(|(read_at, _)| now.since(*read_at) <= ttl);
        if !fresh {
            self.note_container_read();
            self.out.jwks_reads += 1;
            self.jwks.cached = Some((now, self.secret.read()));
        }
        let (_, set) = self.jwks.cached.as_ref().expect("filled above");
        if set.version != self.secret.version() {
            self.out.stale_jwks_responses += 1;
        }
        let rendered = self.jwks.rendered.get(set, now, &self.timings);
        if let Some(leak) = private_member(&rendered.body, &self.secret.private_ds) {
            self.out
                .private_leaks
                .push(format!("at {}: {leak}: {}", rel(now), rendered.body));
        }
        self.out.served.push(Served {
            at: now,
            kids: rendered.kids.clone(),
        });
        rendered
    }

    fn fetch_for_verifier(&mut self, early_for: HashSet<String>) -> VerifierDoc {
        self.out.verifier_fetches += 1;
        let rendered = self.request_jwks();
        let doc: serde_json::Value = serde_json::from_str(&rendered.body).expect("JWKS is JSON");
        let keys = doc["keys"]
            .as_array()
            .expect("JWKS has keys")
            .iter()
            .map(|k| {
                let x = k["x"].as_str().expect("x");
                let y = k["y"].as_str().expect("y");
                let kid = k["kid"].as_str().expect("kid").to_owned();
                let key = DecodingKey::from_ec_components(x, y).expect("a valid EC key");
                (kid, key)
            })
            .collect();
        VerifierDoc {
            fetched_at: self.now(),
            keys,
            early_for,
        }
    }

    /// Verifies a token as a relying party would, at the simulated time (its own clock being off
    /// by its offset).
    fn verify(&mut self, v: usize, token: usize, jwt: &str) {
        self.out.verifications += 1;
        if let Err(reason) = self.try_verify(v, jwt) {
            let rec = &self.out.tokens[token];
            let failure = format!(
                "token #{token} (kid {}, minted at {} by signer {}, exp {}) failed at verifier {v} \
                 (clock {:+} s) at {}: {reason}",
                rec.kid,
                rel(rec.minted_at),
                rec.signer,
                rel(rec.expires_at),
                self.verifiers[v].clock_offset,
                rel(self.now()),
            );
            self.out.failures.push(failure);
        }
    }

    fn try_verify(&mut self, v: usize, jwt: &str) -> Result<(), String> {
        let now = self.now();
        let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("bad header: {e}"))?;
        if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some("JWT") {
            return Err(format!("unexpected header {header:?}"));
        }
        let kid = header.kid.ok_or("no kid in the header")?;
        let max_age = self.timings.jwks_max_age;
        let expired = self.verifiers[v]
            .doc
            .as_ref()
            .is_none_or(|d| now.since(d.fetched_at) > max_age);
        if expired {
            let doc = self.fetch_for_verifier(HashSet::new());
            self.verifiers[v].doc = Some(doc);
        }
        let doc = self.verifiers[v].doc.as_ref().expect("fetched above");
        if !doc.keys.contains_key(&kid) && !doc.early_for.contains(&kid) {
            let mut early_for = doc.early_for.clone();
            early_for.insert(kid.clone());
            let note = format!(
                "verifier {v} met kid {kid} at {}, not in its JWKS copy fetched at {}",
                rel(now),
                rel(doc.fetched_at)
            );
            self.out.early_refetches.push(note);
            let doc = self.fetch_for_verifier(early_for);
            self.verifiers[v].doc = Some(doc);
        }
        let doc = self.verifiers[v].doc.as_ref().expect("fetched above");
        let key = doc.keys.get(&kid).ok_or_else(|| {
            format!(
                "kid {kid} is not in the JWKS copy fetched at {}",
                rel(doc.fetched_at)
            )
        })?;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, key, &self.validation)
            .map_err(|e| format!("signature or claims rejected: {e}"))?;
        let claim = |name: &str| {
            data.claims[name]
                .as_i64()
                .ok_or_else(|| format!("claim {name} missing"))
        };
        let (iat, nbf, exp) = (claim("iat")?, claim("nbf")?, claim("exp")?);
        let verifier_now = now.as_secs() + self.verifiers[v].clock_offset;
        let skew = secs(self.timings.clock_skew);
        if nbf > verifier_now + skew || iat > verifier_now + skew {
            return Err(format!(
                "not yet valid (iat {iat}, nbf {nbf}, verifier clock {verifier_now})"
            ));
        }
        if exp < verifier_now - skew {
            return Err(format!(
                "expired (exp {exp}, verifier clock {verifier_now})"
            ));
        }
        Ok(())
    }

    fn run(mut self) -> Outcome {
        let lifetime = secs(self.timings.max_token_lifetime);
        let skew = secs(self.timings.clock_skew);
        // Late verifications (one second before expiry) and extra JWKS requests, by time.
        let mut late: BTreeMap<i64, Vec<(usize, String)>> = BTreeMap::new();
        let mut probes: BTreeSet<i64> = BTreeSet::new();
        for t in 0..=RUN_UNTIL {
            self.clock.set(at(t));
            if t % JOB_EVERY == 0 {
                self.rotation_job();
            }
            if t % MINT_EVERY == 0 && t <= MINT_UNTIL {
                let (token, jwt) = self.mint(t);
                let v = self.pick_verifier(t);
                self.verify(v, token, &jwt);
                late.entry(t + lifetime - 1).or_default().push((token, jwt));
                // The JWKS must still serve the key when the token expires, and as long as a
                // verifier whose clock is behind ours may still accept it.
                probes.insert(t + lifetime);
                probes.insert(t + lifetime + skew);
            }
            for (token, jwt) in late.remove(&t).unwrap_or_default() {
                let v = self.pick_verifier(t);
                self.verify(v, token, &jwt);
            }
            if t % PROBE_EVERY == 0 || probes.remove(&t) {
                self.request_jwks();
            }
        }
        assert!(late.is_empty(), "every late verification ran");
        self.out
    }
}

/// What in a JWKS body would disclose a private key, if anything.
fn private_member(body: &str, private_ds: &HashSet<String>) -> Option<String> {
    if body.contains("\"d\"") {
        return Some("a member named \"d\"".into());
    }
    if let Some(d) = private_ds.iter().find(|d| body.contains(d.as_str())) {
        return Some(format!("the private scalar of a key ({} chars)", d.len()));
    }
    let doc: serde_json::Value = match serde_json::from_str(body) {
        Ok(doc) => doc,
        Err(e) => return Some(format!("a body that is not JSON ({e})")),
    };
    const PUBLIC: [&str; 7] = ["alg", "crv", "kid", "kty", "use", "x", "y"];
    for key in doc["keys"].as_array().into_iter().flatten() {
        let members = key.as_object().into_iter().flat_map(|m| m.keys());
        for m in members {
            if !PUBLIC.contains(&m.as_str()) {
                return Some(format!("a non-public member {m:?}"));
            }
        }
    }
    None
}

fn outcome() -> &'static Outcome {
    static OUTCOME: OnceLock<Outcome> = OnceLock::new();
    OUTCOME.get_or_init(|| Sim::new().run())
}

fn list(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
    let more = items.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join("\n  "),
        if more > 0 {
            format!("\n  … and {more} more")
        } else {
            String::new()
        }
    )
}

#[test]
fn tokens_minted_across_ten_rotations_all_verify() {
    let out = outcome();
    println!("{}", out.summary());
    let kids: BTreeSet<&Kid> = out.tokens.iter().map(|t| &t.kid).collect();
    assert!(
        kids.len() >= 11,
        "expected at least 11 distinct signing kids (10 rotations), saw {}: {}",
        kids.len(),
        out.summary()
    );
    assert!(
        out.verifications >= 2 * out.tokens.len(),
        "every token is verified at mint time and one second before it expires: {}",
        out.summary()
    );
    assert!(
        out.failures.is_empty(),
        "{} of {} verifications failed:\n  {}",
        out.failures.len(),
        out.verifications,
        list(&out.failures)
    );
    // The harness really exercised disagreeing caches.
    assert!(
        out.stale_mints > 0 && out.stale_jwks_responses > 0,
        "the simulation should mint and serve from stale key-set copies: {}",
        out.summary()
    );
}

#[test]
fn a_new_key_is_published_for_the_whole_lead_before_it_signs() {
    let out = outcome();
    let bootstraps: Vec<&(Timestamp, Change)> = out
        .changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Bootstrapped(_)))
        .collect();
    // The first key is created before any container runs (nothing can have been verified yet);
    // it is the only key allowed to sign without a lead.
    let [(boot_at, Change::Bootstrapped(boot_kid))] = bootstraps[..] else {
        panic!("expected exactly one bootstrap, got {bootstraps:?}")
    };
    assert!(
        out.first_container_read.is_some_and(|r| r >= *boot_at),
        "the bootstrap write ({}) precedes every container's first read",
        rel(*boot_at)
    );
    let mut first_write: HashMap<&Kid, Timestamp> = HashMap::new();
    for (t, _, kids) in &out.writes {
        for k in kids {
            first_write.entry(k).or_insert(*t);
        }
    }
    let required = out.timings.min_lead();
    let mut checked = 0;
    let mut least_margin: Option<Duration> = None;
    for (kid, first, _) in out.signing_history() {
        if &kid == boot_kid {
            continue;
        }
        let written = first_write
            .get(&kid)
            .unwrap_or_else(|| panic!("kid {kid} signed but was never written to the secret"));
        let published_for = first.minted_at.since(*written);
        assert!(
            first.minted_at >= written.plus(required),
            "kid {kid} was first written at {} and first signed at {} (signer {}): published \
             for {published_for:?}, less than the least lead {required:?} (key-set cache TTL + \
             JWKS max-age + clock skew)",
            rel(*written),
            rel(first.minted_at),
            first.signer,
        );
        least_margin = Some(least_margin.map_or(published_for, |m| m.min(published_for)));
        checked += 1;
    }
    println!(
        "{checked} rotated kids checked; shortest time from first write to first signature: \
         {least_margin:?} (least lead {required:?})"
    );
    assert!(
        out.lead >= required,
        "the policy's lead {:?} is below {required:?}",
        out.lead
    );
    assert!(
        checked >= 10,
        "expected at least 10 rotated kids, saw {checked}"
    );
    // What the lead buys: a verifier never meets a kid missing from its cached JWKS.
    assert!(
        out.early_refetches.is_empty(),
        "with a lead of {:?}, no verifier should have to re-fetch the JWKS early:\n  {}",
        out.lead,
        list(&out.early_refetches)
    );
}

#[test]
fn a_retired_key_stays_published_until_its_last_token_expires_and_then_goes() {
    let out = outcome();
    let t = &out.timings;
    let bound = t.publish_grace() + t.key_set_cache_ttl + Duration::from_secs(JOB_EVERY as u64);
    let history = out.signing_history();
    let (current, _, _) = history.last().expect("some key signed");
    let mut checked = 0;
    let mut after_last_signature = Vec::new();
    for (kid, _, last) in history.iter().filter(|(k, _, _)| k != current) {
        // Published at the last token's expiry, and while a verifier behind us may accept it.
        for probe in [last.expires_at, last.expires_at.plus(t.clock_skew)] {
            let served = out
                .served_at(probe)
                .unwrap_or_else(|| panic!("the JWKS was requested at {}", rel(probe)));
            assert!(
                served.kids.contains(kid),
                "retired kid {kid} (last token minted at {}, exp {}) is missing from the JWKS \
                 served at {}: {:?}",
                rel(last.minted_at),
                rel(last.expires_at),
                rel(probe),
                served.kids
            );
        }
        // Once it appeared, it is served continuously until it goes, and it never comes back.
        let first_served = out
            .served
            .iter()
            .position(|s| s.kids.contains(kid))
            .unwrap_or_else(|| panic!("kid {kid} signed but was never served"));
        let gone = out.served[first_served..]
            .iter()
            .find(|s| !s.kids.contains(kid));
        if let Some(gone) = gone
            && let Some(back) = out
                .served
                .iter()
                .find(|s| s.at > gone.at && s.kids.contains(kid))
        {
            panic!(
                "kid {kid} left the JWKS at {} and came back at {}",
                rel(gone.at),
                rel(back.at)
            );
        }
        let deadline = last.minted_at.plus(bound);
        if deadline > at(RUN_UNTIL) {
            continue; // the run ends before the key has to go
        }
        let gone = gone.unwrap_or_else(|| {
            panic!(
                "retired kid {kid} (last signed at {}) is still served at the end of the run ({})",
                rel(last.minted_at),
                rel(at(RUN_UNTIL))
            )
        });
        assert!(
            gone.at <= deadline,
            "retired kid {kid} last signed at {} but was still served until {} (allowed: \
             publish grace {:?} + key-set cache TTL {:?} + job interval {JOB_EVERY} s)",
            rel(last.minted_at),
            rel(gone.at),
            t.publish_grace(),
            t.key_set_cache_ttl
        );
        assert!(
            gone.at > last.expires_at.plus(t.clock_skew),
            "kid {kid} left the JWKS at {} while its last token (exp {}) may still be accepted",
            rel(gone.at),
            rel(last.expires_at)
        );
        after_last_signature.push(gone.at.since(last.minted_at));
        checked += 1;
    }
    after_last_signature.sort();
    println!(
        "{checked} retired kids published until their last token expired, then unpublished \
         between {:?} and {:?} after their last signature (bound {bound:?})",
        after_last_signature.first(),
        after_last_signature.last()
    );
    assert!(
        checked >= 10,
        "expected at least 10 retired kids to follow through, saw {checked}"
    );
}

#[test]
fn the_served_jwks_never_contains_a_private_member() {
    // The detector itself flags a private member.
    let forged = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#;
    assert!(private_member(forged, &HashSet::new()).is_some());
    let renamed = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","k":"c"}]}"#;
    assert!(private_member(renamed, &HashSet::new()).is_some());
    let scalar = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","kid":"SECRET"}]}"#;
    assert!(private_member(scalar, &HashSet::from(["SECRET".to_owned()])).is_some());

    let out = outcome();
    assert!(
        out.served.len() > 1000,
        "the JWKS was requested throughout the run"
    );
    assert!(
        out.private_leaks.is_empty(),
        "the JWKS disclosed private key material:\n  {}",
        list(&out.private_leaks)
    );
}
