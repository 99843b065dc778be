//! `opsctl keys …`: list, rotate and revoke the Partner JWT signing keys (docs/architecture.md §3).
//!
//! Every change goes through `shared::keys::policy` and is written as one new `AWSCURRENT`
//! version of the key set secret by [`KeySetStore::save`], which refuses to overwrite a version
//! someone else wrote in the meantime. Nothing here ever prints a private key member.

use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;
use shared::clock::{SharedClock, Timestamp};
use shared::config::{EnvReader, ProcessEnv};
use shared::keys::policy::{self, Change, RotationPolicy};
use shared::keys::{KeyConfig, KeySet, KeySetStore, KeyState, KeyTimings, Kid};
use shared::secrets::{SecretName, SecretWriter, VersionId};

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::{Io, backend};

/// `opsctl keys …`
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// One line per key: kid, state now, createdAt, activateAt, signing end, revokedAt.
    List {
        /// Print a JSON array instead (public information only).
        #[arg(long)]
        json: bool,
    },
    /// Add a successor key that signs after the rotation lead (bootstraps an empty key set).
    ///
    /// If a key is already pending this says so and writes nothing, unless --now is given.
    Rotate {
        /// Make the new key sign at once; the current key retires now (its tokens still verify).
        #[arg(long)]
        now: bool,
    },
    /// Emergency revocation of a compromised key: unpublished and unusable at once, and a new
    /// key made active at once if no other key can sign.
    Revoke {
        /// The kid of the key to revoke, as `opsctl keys list` shows it. A kid is base64url and
        /// may start with `-`: it is taken as the kid, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// Runs a `keys` command: reads the key settings from the process environment, opens the secrets
/// store chosen by the global flags, and acts at the clock's current time.
pub async fn run(
    cmd: &KeysCommand,
    global: &GlobalArgs,
    clock: SharedClock,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let config = KeyConfig::from_env(&EnvReader::new(&ProcessEnv))?;
    let secrets = backend::secrets(global, clock.clone()).await?;
    let store = KeySetStore::new(secrets, config.secret_name.clone());
    execute(cmd, &store, &config, clock.now(), io).await
}

/// Runs a `keys` command against `store` at `now` and prints its outcome.
pub async fn execute<W: SecretWriter>(
    cmd: &KeysCommand,
    store: &KeySetStore<W>,
    config: &KeyConfig,
    now: Timestamp,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match cmd {
        KeysCommand::List { json } => {
            let rows = list(store, &config.timings, now).await?;
            if *json {
                print_json(&rows, io)
            } else {
                print_list(&rows, store.name(), io)
            }
        }
        KeysCommand::Rotate { now: immediate } => {
            let outcome = rotate(store, &config.policy, now, *immediate).await?;
            print_rotated(&outcome, now, config, io)
        }
        KeysCommand::Revoke { kid } => {
            let outcome = revoke(store, kid, &config.policy, now).await?;
            print_revoked(&outcome, config, io)
        }
    }
}

/// One key as `keys list` shows it: public facts only, by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    /// The key id (RFC 7638 thumbprint).
    pub kid: Kid,
    /// The key's state at the listing instant.
    pub state: KeyState,
    /// When the key was generated.
    #[serde(with = "shared::clock::rfc3339")]
    pub created_at: Timestamp,
    /// From when it signs.
    #[serde(with = "shared::clock::rfc3339")]
    pub activate_at: Timestamp,
    /// When it stops (or stopped) signing, if a successor or a retire time is known.
    #[serde(with = "shared::clock::rfc3339_opt")]
    pub signing_ends_at: Option<Timestamp>,
    /// When it was revoked.
    #[serde(with = "shared::clock::rfc3339_opt")]
    pub revoked_at: Option<Timestamp>,
}

/// The rows of `set` at `now`, oldest key first.
pub fn rows(set: &KeySet, now: Timestamp, timings: &KeyTimings) -> Vec<KeyRow> {
    set.keys
        .iter()
        .map(|k| KeyRow {
            kid: k.kid.clone(),
            state: set.state(k, now, timings),
            created_at: k.created_at,
            activate_at: k.activate_at,
            signing_ends_at: set.signing_ends(k),
            revoked_at: k.revoked_at,
        })
        .collect()
}

/// `keys list`: the keys of the current key set and their states at `now`.
pub async fn list<W: SecretWriter>(
    store: &KeySetStore<W>,
    timings: &KeyTimings,
    now: Timestamp,
) -> Result<Vec<KeyRow>, Error> {
    let loaded = store
        .load()
        .await
        .map_err(|e| Error::key_set("read", store.name(), e))?;
    Ok(rows(&loaded.set, now, timings))
}

/// How one key's state changed with a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The key.
    pub kid: Kid,
    /// Its state before (`None`: the key is new).
    pub before: Option<KeyState>,
    /// Its state after (`None`: the key was pruned from the document).
    pub after: Option<KeyState>,
}

/// The key states that differ between `before` and `after` at `now`.
pub fn transitions(
    before: &KeySet,
    after: &KeySet,
    now: Timestamp,
    t: &KeyTimings,
) -> Vec<Transition> {
    let state_in = |set: &KeySet, kid: &Kid| set.get(kid).map(|k| set.state(k, now, t));
    let mut kids: Vec<&Kid> = before.keys.iter().map(|k| &k.kid).collect();
    kids.extend(
        after
            .keys
            .iter()
            .map(|k| &k.kid)
            .filter(|kid| before.get(kid).is_none()),
    );
    kids.into_iter()
        .filter_map(|kid| {
            let (b, a) = (state_in(before, kid), state_in(after, kid));
            (b != a).then(|| Transition {
                kid: kid.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

/// A key set version this command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The document's new `version`.
    pub document_version: u64,
    /// The secret version that now carries `AWSCURRENT`.
    pub secret_version: VersionId,
}

/// Reads the key set back after a write and checks that `applied` holds for it.
///
/// [`KeySetStore::save`] checks the current version just before writing, but not atomically with
/// the write: a writer that read the same version can still replace ours a moment later. Reading
/// back narrows that window and, above all, keeps a lost revocation from being reported as done.
async fn confirm<W: SecretWriter>(
    store: &KeySetStore<W>,
    applied: impl Fn(&KeySet) -> bool,
) -> Result<(), Error> {
    let current = store
        .load()
        .await
        .map_err(|e| Error::key_set("read back", store.name(), e))?;
    if applied(&current.set) {
        Ok(())
    } else {
        Err(Error::Overwritten {
            secret: store.name().clone(),
        })
    }
}

/// What `keys rotate` did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The key set secret.
    pub secret: SecretName,
    /// What the policy decided (for an unchanged set: the key already pending).
    pub change: Change,
    /// The new version, or `None` when nothing needed writing.
    pub written: Option<Written>,
    /// The key states that changed.
    pub transitions: Vec<Transition>,
}

/// `keys rotate [--now]`: applies [`policy::rotate`] and saves the result; writes nothing when a
/// key is already pending and `immediate` is not set.
pub async fn rotate<W: SecretWriter>(
    store: &KeySetStore<W>,
    policy: &RotationPolicy,
    now: Timestamp,
    immediate: bool,
) -> Result<Rotated, Error> {
    let loaded = store
        .load()
        .await
        .map_err(|e| Error::key_set("read", store.name(), e))?;
    let (next, change) = policy::rotate(&loaded.set, now, policy, immediate);
    let mut outcome = Rotated {
        secret: store.name().clone(),
        change,
        written: None,
        transitions: Vec::new(),
    };
    if next == loaded.set {
        return Ok(outcome);
    }
    let secret_version = store
        .save(&loaded, &next)
        .await
        .map_err(|e| Error::key_set("write", store.name(), e))?;
    if let Change::Bootstrapped(kid) | Change::Scheduled { kid, .. } = &outcome.change {
        confirm(store, |set| set.get(kid).is_some()).await?;
    }
    outcome.transitions = transitions(&loaded.set, &next, now, &policy.timings);
    outcome.written = Some(Written {
        document_version: next.version,
        secret_version,
    });
    Ok(outcome)
}

/// What `keys revoke` did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The key set secret.
    pub secret: SecretName,
    /// The revoked key.
    pub kid: Kid,
    /// The key made active at once to replace it, if it was needed.
    pub replacement: Option<Kid>,
    /// The key that signs after the revocation.
    pub signer: Option<Kid>,
    /// The new version.
    pub written: Written,
    /// The key states that changed.
    pub transitions: Vec<Transition>,
}

/// The most of a malformed kid an error message repeats.
const SHOWN_INPUT: usize = 64;

/// `keys revoke <kid>`: applies [`policy::revoke`] and saves the result.
pub async fn revoke<W: SecretWriter>(
    store: &KeySetStore<W>,
    kid: &str,
    policy: &RotationPolicy,
    now: Timestamp,
) -> Result<Revoked, Error> {
    let kid = Kid::parse(kid).ok_or_else(|| Error::MalformedKid {
        input: kid.chars().take(SHOWN_INPUT).collect(),
    })?;
    let loaded = store
        .load()
        .await
        .map_err(|e| Error::key_set("read", store.name(), e))?;
    let (next, change) = policy::revoke(&loaded.set, &kid, now, policy).map_err(Error::Revoke)?;
    let replacement = match change {
        Change::Revoked { replacement, .. } => replacement,
        _ => None,
    };
    let secret_version = store
        .save(&loaded, &next)
        .await
        .map_err(|e| Error::key_set("write", store.name(), e))?;
    confirm(store, |set| {
        set.get(&kid).is_some_and(|k| k.revoked_at.is_some())
    })
    .await?;
    Ok(Revoked {
        secret: store.name().clone(),
        kid,
        replacement,
        signer: next.signer(now, &policy.timings).map(|k| k.kid.clone()),
        transitions: transitions(&loaded.set, &next, now, &policy.timings),
        written: Written {
            document_version: next.version,
            secret_version,
        },
    })
}

/// The state's name as `keys list` prints it.
pub fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Pending => "pending",
        KeyState::Active => "active",
        KeyState::Retired => "retired",
        KeyState::Expired => "expired",
        KeyState::Revoked => "revoked",
    }
}

fn or_dash(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
}

fn print_list(rows: &[KeyRow], secret: &SecretName, io: &mut Io<'_>) -> Result<(), Error> {
    if rows.is_empty() {
        writeln!(
            io.err,
            "no keys in the key set {secret}; `opsctl keys rotate` creates the first one"
        )?;
    }
    for r in rows {
        writeln!(
            io.out,
            "{}  {:<7}  createdAt={}  activateAt={}  signingEnds={}  revokedAt={}",
            r.kid,
            state_name(r.state),
            r.created_at,
            r.activate_at,
            or_dash(r.signing_ends_at),
            or_dash(r.revoked_at),
        )?;
    }
    Ok(())
}

fn print_json(rows: &[KeyRow], io: &mut Io<'_>) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    writeln!(io.out, "{text}")?;
    Ok(())
}

fn print_transitions(transitions: &[Transition], io: &mut Io<'_>) -> Result<(), Error> {
    for t in transitions {
        writeln!(
            io.out,
            "  {}  {} -> {}",
            t.kid,
            t.before.map_or("new", state_name),
            t.after.map_or("pruned", state_name),
        )?;
    }
    Ok(())
}

fn print_written(secret: &SecretName, w: &Written, io: &mut Io<'_>) -> Result<(), Error> {
    writeln!(
        io.out,
        "wrote key set {secret} version {} (secret version {})",
        w.document_version,
        w.secret_version.as_str()
    )?;
    Ok(())
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn print_rotated(
    r: &Rotated,
    now: Timestamp,
    config: &KeyConfig,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let t = &config.timings;
    let Some(written) = &r.written else {
        if let Change::Scheduled { kid, activate_at } = &r.change {
            writeln!(
                io.out,
                "key {kid} is already pending and signs from {activate_at}; nothing written"
            )?;
        } else {
            writeln!(io.out, "the key set needs no change; nothing written")?;
        }
        writeln!(
            io.err,
            "note: `opsctl keys rotate --now` adds a key that signs at once"
        )?;
        return Ok(());
    };
    let activate_at = match &r.change {
        Change::Bootstrapped(kid) => {
            writeln!(io.out, "bootstrapped key {kid}: it signs from {now}")?;
            now
        }
        Change::Scheduled { kid, activate_at } => {
            let wait = activate_at.since(now);
            if wait.is_zero() {
                writeln!(io.out, "rotated to key {kid}: it signs from {activate_at}")?;
            } else {
                writeln!(
                    io.out,
                    "scheduled key {kid}: it signs from {activate_at} (in {} s)",
                    secs(wait)
                )?;
            }
            *activate_at
        }
        other => {
            writeln!(io.out, "changed the key set: {other:?}")?;
            now
        }
    };
    print_transitions(&r.transitions, io)?;
    print_written(&r.secret, written, io)?;
    if activate_at <= now {
        writeln!(
            io.err,
            "warning: the new key signs at once. Other containers start using it within the \
             key-set cache TTL ({} s), and verifiers behind HTTP caches may see it only after the \
             JWKS max-age ({} s): tokens it signs before then can fail verification there.",
            secs(t.key_set_cache_ttl),
            secs(t.jwks_max_age),
        )?;
    }
    Ok(())
}

fn print_revoked(r: &Revoked, config: &KeyConfig, io: &mut Io<'_>) -> Result<(), Error> {
    let t = &config.timings;
    writeln!(io.out, "revoked key {}", r.kid)?;
    match (&r.replacement, &r.signer) {
        (Some(new), _) => writeln!(io.out, "replacement key {new} signs from now on")?,
        (None, Some(signer)) => writeln!(
            io.out,
            "no replacement needed: key {signer} signs from now on"
        )?,
        (None, None) => writeln!(io.out, "no key signs now")?,
    }
    print_transitions(&r.transitions, io)?;
    print_written(&r.secret, &r.written, io)?;
    writeln!(
        io.err,
        "warning: other containers see this revocation within the key-set cache TTL ({} s): \
         until then they may still sign with {} and publish it in the JWKS, and verifiers that \
         cached the JWKS may accept its tokens for up to {} s (cache TTL + JWKS max-age).",
        secs(t.key_set_cache_ttl),
        r.kid,
        secs(t.key_set_cache_ttl + t.jwks_max_age),
    )?;
    if let Some(new) = &r.replacement {
        writeln!(
            io.err,
            "warning: verifiers behind HTTP caches may see the replacement key {new} only after \
             the JWKS max-age ({} s): tokens it signs before then can fail verification there.",
            secs(t.jwks_max_age),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
