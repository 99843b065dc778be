//! `opsctl api-keys …`: create, list and revoke the API keys of the server-to-server routes
//! (docs/architecture.md §4).
//!
//! Every key lives in one registry document ([`ApiKeyRegistry`]) in one secret
//! (`API_KEYS_SECRET_NAME`, default [`DEFAULT_API_KEYS_SECRET`]). Every change reads the current
//! version, edits the document and writes it back with [`SecretWriter::put_current_if`] (or
//! [`SecretWriter::create`] for the first key), so two writers can never silently undo each
//! other's change; the command then reads the registry back to check its change is in effect.
//!
//! A key's secret is printed once, by `create`; nothing else ever prints one. A revoked key stays
//! in the registry (status `revoked`, `revokedAt`) for the audit trail.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use shared::auth::{
    AccessKeyId, ApiKey, ApiKeyRegistry, DEFAULT_API_KEYS_SECRET, DEFAULT_KEY_LIFETIME, KeyOwner,
    KeyStatus, KeyType, MAX_KEY_LIFETIME, Permission, RegistryError, RegistryFormat,
};
use shared::clock::{SharedClock, Timestamp};
use shared::config::{ConfigError, EnvReader, ProcessEnv};
use shared::secrets::{SecretName, SecretWriter, VersionId, read_versioned, write_if_unchanged};

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::{Io, backend};

/// The environment variable naming the registry secret (as the functions read it).
pub const SECRET_NAME_VAR: &str = "API_KEYS_SECRET_NAME";

/// How long a running function keeps the registry before reading it again (the TTL that
/// `functions/token-mint` gives `SecretApiKeys`): the delay before a change takes effect there.
pub const REGISTRY_CACHE_TTL: Duration = Duration::from_secs(60);

/// The longest label accepted.
const MAX_LABEL_CHARS: usize = 200;

/// `opsctl api-keys …`
#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeysCommand {
    /// Create an active API key and print its id and secret (the secret only this once).
    Create {
        /// What the key is for; a read_only key is refused on every write, whatever its
        /// permissions.
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        key_type: TypeArg,
        /// A permission of the key (repeat for several): credentials:write, credentials:read,
        /// tokens:mint.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// A source address or CIDR range the key may be used from (repeat for several); without
        /// any, the key may be used from anywhere.
        #[arg(long = "allow-ip", value_name = "IP_OR_CIDR")]
        allow_ips: Vec<String>,
        /// A human label, e.g. the calling service's name.
        #[arg(long, default_value = "")]
        label: String,
        /// The key family it belongs to (1-64 characters of A-Z a-z 0-9 . _ -): the keys of one
        /// owner read each other's issuances, so a successor key gets its predecessor's owner.
        /// Without it the key is a family of its own.
        #[arg(long, value_name = "NAME")]
        owner: Option<String>,
        /// Days until the key stops working (1-366; default 90, the platform checklists'
        /// rotation period).
        #[arg(long, value_name = "DAYS", default_value_t = 90)]
        expires_in_days: u32,
        /// Print one JSON object {id, secret, type, permissions, allowedIps, label} instead.
        #[arg(long)]
        json: bool,
    },
    /// One line per key: id, status, type, permissions, allowed IPs, owner, createdAt, age,
    /// expiresAt, revokedAt, label. Never a secret.
    List {
        /// Print a JSON array instead (never a secret).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: refused from then on (within the functions' registry cache TTL), and kept in
    /// the registry, marked revoked, for the audit trail.
    Revoke {
        /// The key's id (`pk_…`), as `opsctl api-keys list` shows it.
        id: String,
    },
}

/// `--type` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    /// Production traffic.
    Live,
    /// Test traffic.
    Test,
    /// Reads only.
    #[value(name = "read_only", alias = "read-only")]
    ReadOnly,
}

impl From<TypeArg> for KeyType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Live => Self::Live,
            TypeArg::Test => Self::Test,
            TypeArg::ReadOnly => Self::ReadOnly,
        }
    }
}

/// The registry secret's name: `API_KEYS_SECRET_NAME`, else the default.
pub fn secret_name(env: &EnvReader<'_>) -> Result<SecretName, ConfigError> {
    let name = env
        .optional(SECRET_NAME_VAR)
        .unwrap_or_else(|| DEFAULT_API_KEYS_SECRET.to_owned());
    SecretName::new(&name).map_err(|e| ConfigError::new(SECRET_NAME_VAR, e.to_string()))
}

/// Runs an `api-keys` command: the registry named by the process environment, in the secrets
/// store chosen by the global flags, at the clock's current time.
pub async fn run(
    cmd: &ApiKeysCommand,
    global: &GlobalArgs,
    clock: SharedClock,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let name = secret_name(&EnvReader::new(&ProcessEnv))?;
    let secrets = backend::secrets(global, clock.clone()).await?;
    let registry = Registry::new(secrets, name);
    execute(cmd, &registry, clock.now(), io).await
}

/// Runs an `api-keys` command against `registry` at `now` and prints its outcome.
pub async fn execute<W: SecretWriter>(
    cmd: &ApiKeysCommand,
    registry: &Registry<W>,
    now: Timestamp,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match cmd {
        ApiKeysCommand::Create {
            key_type,
            permissions,
            allow_ips,
            label,
            owner,
            expires_in_days,
            json,
        } => {
            let spec = NewKey::parse(*key_type, permissions, allow_ips, label)?
                .owned_by(owner.as_deref())?
                .expiring_in_days(*expires_in_days)?;
            for note in spec.notes() {
                writeln!(io.err, "note: {note}")?;
            }
            let created = create(registry, &spec, now).await?;
            print_created(&created, *json, io)
        }
        ApiKeysCommand::List { json } => {
            let rows = list(registry, now).await?;
            if *json {
                let text = serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?;
                writeln!(io.out, "{text}")?;
            } else {
                print_list(&rows, registry.name(), io)?;
            }
            Ok(())
        }
        ApiKeysCommand::Revoke { id } => {
            let revoked = revoke(registry, id, now).await?;
            print_revoked(&revoked, io)
        }
    }
}

/// The registry secret, read and written as a whole with a compare-and-swap.
#[derive(Debug)]
pub struct Registry<W> {
    secrets: W,
    name: SecretName,
}

/// The registry as read, with the version it came from (`None`: the secret does not exist yet).
#[derive(Debug)]
pub struct Loaded {
    /// The document.
    pub registry: ApiKeyRegistry,
    /// The secret version carrying `AWSCURRENT` when it was read.
    pub version: Option<VersionId>,
}

impl<W: SecretWriter> Registry<W> {
    /// The registry in secret `name` of `secrets`.
    pub fn new(secrets: W, name: SecretName) -> Self {
        Self { secrets, name }
    }

    /// The registry secret's name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }

    /// The current document (empty when the secret does not exist yet).
    pub async fn load(&self) -> Result<Loaded, Error> {
        self.read("read").await
    }

    async fn read(&self, action: &'static str) -> Result<Loaded, Error> {
        match read_versioned(&self.secrets, &self.name, &RegistryFormat).await {
            Ok(read) => Ok(Loaded {
                registry: read.document,
                version: read.version,
            }),
            Err(RegistryError::Malformed(detail)) => Err(Error::MalformedRegistry {
                secret: self.name.clone(),
                detail,
            }),
            Err(RegistryError::Secrets(e)) => Err(Error::registry(action, &self.name, e)),
        }
    }

    /// Writes `next` as the new current version, provided the current version is still the one
    /// `loaded` came from; creates the secret when `loaded` found none.
    pub async fn save(&self, loaded: &Loaded, next: &ApiKeyRegistry) -> Result<VersionId, Error> {
        write_if_unchanged(
            &self.secrets,
            &self.name,
            loaded.version.as_ref(),
            &next.to_secret(),
        )
        .await
        .map_err(|e| Error::registry("write", &self.name, e))
    }

    /// Reads the registry back after a write and checks that `applied` holds for it: a writer
    /// that replaced our version right after the swap must not leave a change reported as done.
    async fn confirm(&self, applied: impl Fn(&ApiKeyRegistry) -> bool) -> Result<(), Error> {
        let current = self.read("read back").await?;
        if applied(&current.registry) {
            Ok(())
        } else {
            Err(Error::RegistryOverwritten {
                secret: self.name.clone(),
            })
        }
    }
}

/// A validated `api-keys create` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key's type.
    pub key_type: KeyType,
    /// Its permissions, each once, in the order given.
    pub permissions: Vec<Permission>,
    /// Its allow-list as canonical CIDR text (network address / prefix length).
    pub allowed_ips: Vec<AllowedIp>,
    /// Its label.
    pub label: String,
    /// Its family (`None`: a family of its own).
    pub owner: Option<KeyOwner>,
    /// How long it stays valid.
    pub lifetime: Duration,
}

/// One `--allow-ip`, as given and as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedIp {
    /// What the operator typed.
    pub given: String,
    /// The canonical range stored, e.g. `203.0.113.0/24` (a bare address gets /32 or /128).
    pub range: String,
}

/// The permission names, for messages.
const PERMISSION_NAMES: &str =
    "credentials:write, credentials:read, tokens:mint, tokens:mint-issue";

impl NewKey {
    /// Validates the `create` arguments.
    pub fn parse(
        key_type: TypeArg,
        permissions: &[String],
        allow_ips: &[String],
        label: &str,
    ) -> Result<Self, Error> {
        let mut perms = Vec::new();
        for text in permissions {
            let p = Permission::parse(text.trim()).ok_or_else(|| {
                Error::invalid(
                    "--permission",
                    format!(
                        "unknown permission {}; the permissions are {PERMISSION_NAMES}",
                        quoted(text)
                    ),
                )
            })?;
            if !perms.contains(&p) {
                perms.push(p);
            }
        }
        if perms.is_empty() {
            return Err(Error::invalid(
                "--permission",
                format!("a key needs at least one permission ({PERMISSION_NAMES})"),
            ));
        }
        let allowed_ips = allow_ips
            .iter()
            .map(|given| {
                parse_allowed_ip(given.trim())
                    .map(|range| AllowedIp {
                        given: given.clone(),
                        range,
                    })
                    .ok_or_else(|| {
                        Error::invalid(
                            "--allow-ip",
                            format!(
                                "{} is not an IP address or CIDR range (e.g. 203.0.113.7, \
                                 203.0.113.0/24 or 2001:db8::/32)",
                                quoted(given)
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let label = label.trim();
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(Error::invalid(
                "--label",
                format!(
                    "a label is at most {MAX_LABEL_CHARS} characters, without control characters"
                ),
            ));
        }
        Ok(Self {
            key_type: key_type.into(),
            permissions: perms,
            allowed_ips,
            label: label.to_owned(),
            owner: None,
            lifetime: DEFAULT_KEY_LIFETIME,
        })
    }

    /// The request with `--owner`.
    pub fn owned_by(mut self, owner: Option<&str>) -> Result<Self, Error> {
        self.owner = owner
            .map(|o| {
                KeyOwner::parse(o.trim()).ok_or_else(|| {
                    Error::invalid(
                        "--owner",
                        format!(
                            "{} is not an owner name: 1 to 64 characters of A-Z a-z 0-9 . _ -",
                            quoted(o)
                        ),
                    )
                })
            })
            .transpose()?;
        Ok(self)
    }

    /// The request with `--expires-in-days`.
    pub fn expiring_in_days(mut self, days: u32) -> Result<Self, Error> {
        let lifetime = Duration::from_secs(u64::from(days) * 86_400);
        if days == 0 || lifetime > MAX_KEY_LIFETIME {
            return Err(Error::invalid(
                "--expires-in-days",
                format!(
                    "a key lives 1 to {} days",
                    MAX_KEY_LIFETIME.as_secs() / 86_400
                ),
            ));
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// What the operator should know about this request before it is applied.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.key_type == KeyType::ReadOnly {
            let writes: Vec<&str> = self
                .permissions
                .iter()
                .filter(|p| p.is_write())
                .map(|p| p.as_str())
                .collect();
            if !writes.is_empty() {
                notes.push(format!(
                    "a read_only key is refused on every write: {} will never be granted to it",
                    writes.join(", ")
                ));
            }
        }
        for ip in &self.allowed_ips {
            if ip.given.trim() != ip.range && ip.given.contains('/') {
                notes.push(format!(
                    "--allow-ip {} is stored as the range {}",
                    ip.given.trim(),
                    ip.range
                ));
            }
        }
        notes
    }
}

/// An address (`203.0.113.7`, `2001:db8::1`) or a CIDR range (`203.0.113.0/24`) as the canonical
/// range the registry stores: the network address (host bits cleared) and the prefix length.
pub fn parse_allowed_ip(text: &str) -> Option<String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|len| *len <= max)?
        }
        Some(_) => return None,
    };
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
            IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
    };
    Some(format!("{network}/{len}"))
}

/// `api-keys create`: adds a new active key to the registry and returns it, secret included.
pub async fn create<W: SecretWriter>(
    registry: &Registry<W>,
    spec: &NewKey,
    now: Timestamp,
) -> Result<Created, Error> {
    let loaded = registry.load().await?;
    let mut key = ApiKey::generate(
        spec.key_type,
        spec.permissions.clone(),
        Vec::new(),
        &spec.label,
        now,
    );
    key.owner = spec.owner.clone();
    key.expires_at = Some(now.plus(spec.lifetime));
    // The registry's own range type (`ipnet::IpNet`), reached through its serde form so that
    // opsctl needs no direct dependency on it: the ranges were validated and made canonical
    // above, so this only fails on a bug.
    let ranges: Vec<&str> = spec
        .allowed_ips
        .iter()
        .map(|ip| ip.range.as_str())
        .collect();
    key.allowed_ips = serde_json::from_value(serde_json::json!(ranges))
        .map_err(|e| Error::invalid("--allow-ip", format!("cannot store the ranges: {e}")))?;
    let mut next = loaded.registry.clone();
    next.keys.push(key.clone());
    let version = registry.save(&loaded, &next).await?;
    registry
        .confirm(|r| {
            r.get(&key.id)
                .is_some_and(|k| k.status == KeyStatus::Active && k.secret == key.secret)
        })
        .await?;
    Ok(Created {
        key,
        registry: registry.name().clone(),
        version,
    })
}

/// What `api-keys create` did.
#[derive(Debug)]
pub struct Created {
    /// The new key, secret included (zeroized on drop).
    pub key: ApiKey,
    /// The registry secret.
    pub registry: SecretName,
    /// The secret version written.
    pub version: VersionId,
}

/// One key as `api-keys list` shows it: no secret, by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRow {
    /// `X-Access-Key`.
    pub id: AccessKeyId,
    /// Its type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Where it may be used from (empty: anywhere).
    pub allowed_ips: Vec<String>,
    /// Active or revoked.
    pub status: KeyStatus,
    /// Its label.
    pub label: String,
    /// When it was created.
    #[serde(with = "shared::clock::rfc3339")]
    pub created_at: Timestamp,
    /// When it was revoked.
    #[serde(with = "shared::clock::rfc3339_opt")]
    pub revoked_at: Option<Timestamp>,
    /// Its family (the key's own id when it has no owner).
    pub owner: KeyOwner,
    /// When it stops (or stopped) working.
    #[serde(with = "shared::clock::rfc3339")]
    pub expires_at: Timestamp,
    /// Whole days since its creation, when listed.
    pub age_days: u64,
    /// Whether it had expired when listed.
    pub expired: bool,
}

impl ApiKeyRow {
    /// The row of `k` as seen at `now`.
    pub fn of(k: &ApiKey, now: Timestamp) -> Self {
        Self {
            id: k.id.clone(),
            key_type: k.key_type,
            permissions: k.permissions.clone(),
            allowed_ips: k.allowed_ips.iter().map(ToString::to_string).collect(),
            status: k.status,
            label: k.label.clone(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            owner: k.family(),
            expires_at: k.expiry(),
            age_days: now.since(k.created_at).as_secs() / 86_400,
            expired: k.is_expired(now),
        }
    }
}

/// `api-keys list`: every key of the registry, in registry order (oldest first), with its age
/// and expiry at `now`.
pub async fn list<W: SecretWriter>(
    registry: &Registry<W>,
    now: Timestamp,
) -> Result<Vec<ApiKeyRow>, Error> {
    let loaded = registry.load().await?;
    Ok(loaded
        .registry
        .keys
        .iter()
        .map(|k| ApiKeyRow::of(k, now))
        .collect())
}

/// What `api-keys revoke` did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The registry secret.
    pub registry: SecretName,
    /// The revoked key.
    pub key: ApiKeyRow,
    /// The secret version written.
    pub version: VersionId,
}

/// `api-keys revoke <id>`: marks the key revoked (kept in the registry) and saves.
pub async fn revoke<W: SecretWriter>(
    registry: &Registry<W>,
    id: &str,
    now: Timestamp,
) -> Result<Revoked, Error> {
    let id = AccessKeyId::parse(id.trim())
        .ok_or_else(|| Error::MalformedApiKeyId { input: quoted(id) })?;
    let loaded = registry.load().await?;
    let mut next = loaded.registry.clone();
    let key = next
        .keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| Error::UnknownApiKey {
            id: id.to_string(),
            secret: registry.name().clone(),
        })?;
    if key.status == KeyStatus::Revoked {
        return Err(Error::ApiKeyAlreadyRevoked {
            id: id.to_string(),
            revoked_at: key
                .revoked_at
                .map_or_else(|| "an unknown time".to_owned(), |t| t.to_rfc3339()),
        });
    }
    key.status = KeyStatus::Revoked;
    key.revoked_at = Some(now);
    let row = ApiKeyRow::of(key, now);
    let version = registry.save(&loaded, &next).await?;
    registry
        .confirm(|r| r.get(&id).is_some_and(|k| k.status == KeyStatus::Revoked))
        .await?;
    Ok(Revoked {
        registry: registry.name().clone(),
        key: row,
        version,
    })
}

/// The most of a malformed argument an error message repeats.
const SHOWN_INPUT: usize = 64;

/// `input` quoted and shortened for an error message; something that looks like an API key
/// secret (`sk_…`) is never repeated.
pub(crate) fn quoted(input: &str) -> String {
    if input.contains("sk_") {
        "the value given (it looks like an API key secret, so it is not repeated here; if it \
         is one, treat it as exposed)"
            .to_owned()
    } else {
        format!("{:?}", input.chars().take(SHOWN_INPUT).collect::<String>())
    }
}

mod print;
#[cfg(test)]
mod tests;

use print::{print_created, print_list, print_revoked};
pub use print::{status_name, type_name};
