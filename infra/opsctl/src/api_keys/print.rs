//! What `api-keys` commands print. Only `create` ever prints a secret, once.

use secrecy::zeroize::Zeroize;
use serde::Serialize;
use shared::auth::{AccessKeyId, ApiKey, KeyStatus, KeyType, Permission};
use shared::secrets::SecretName;

use super::{ApiKeyRow, Created, REGISTRY_CACHE_TTL, Revoked};
use crate::Io;
use crate::error::Error;

/// The type's name as the registry and the command line spell it.
pub fn type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::Live => "live",
        KeyType::Test => "test",
        KeyType::ReadOnly => "read_only",
    }
}

/// The status's name as `api-keys list` prints it.
pub fn status_name(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "active",
        KeyStatus::Revoked => "revoked",
    }
}

fn permission_list(permissions: &[Permission]) -> String {
    if permissions.is_empty() {
        return "-".to_owned();
    }
    permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn ip_list<S: AsRef<str>>(ips: &[S]) -> String {
    if ips.is_empty() {
        return "any".to_owned();
    }
    ips.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",")
}

pub(super) fn print_list(
    rows: &[ApiKeyRow],
    secret: &SecretName,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if rows.is_empty() {
        writeln!(
            io.err,
            "no API keys in the registry {secret}; `opsctl api-keys create` creates one"
        )?;
    }
    for r in rows {
        writeln!(
            io.out,
            "{}  {:<7}  type={}  permissions={}  allowedIps={}  owner={}  createdAt={}  ageDays={}  expiresAt={}{}  revokedAt={}  label={:?}",
            r.id,
            status_name(r.status),
            type_name(r.key_type),
            permission_list(&r.permissions),
            ip_list(&r.allowed_ips),
            r.owner,
            r.created_at,
            r.age_days,
            r.expires_at,
            if r.expired { " (expired)" } else { "" },
            r.revoked_at
                .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
            r.label,
        )?;
    }
    Ok(())
}

/// An example `opsctl sign` command for a new key, naming a route its permissions allow.
fn sign_example(key: &ApiKey) -> String {
    let mint_only = key.permissions.iter().all(|p| *p == Permission::TokensMint);
    let path = if mint_only {
        "/v1/server/partner-tokens"
    } else {
        "/v1/credentials"
    };
    format!(
        "opsctl sign --key-id {} --secret-env OPSCTL_API_SECRET --method POST --path {path} \
         --body-file body.json --format curl",
        key.id
    )
}

/// The `--json` output of `api-keys create`: the only place a secret is ever printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedJson<'a> {
    id: &'a AccessKeyId,
    secret: &'a str,
    #[serde(rename = "type")]
    key_type: KeyType,
    permissions: &'a [Permission],
    allowed_ips: &'a [String],
    label: &'a str,
    owner: String,
    expires_at: String,
}

pub(super) fn print_created(created: &Created, json: bool, io: &mut Io<'_>) -> Result<(), Error> {
    let key = &created.key;
    let ranges: Vec<String> = key.allowed_ips.iter().map(ToString::to_string).collect();
    let once = "the secret is shown only now: it cannot be retrieved later (not even by opsctl). \
                Store it in the calling service's secret store now; if it is lost, create a new \
                key and revoke this one.";
    if json {
        let mut text = serde_json::to_string_pretty(&CreatedJson {
            id: &key.id,
            secret: &key.secret,
            key_type: key.key_type,
            permissions: &key.permissions,
            allowed_ips: &ranges,
            label: &key.label,
            owner: key.family().to_string(),
            expires_at: key.expiry().to_rfc3339(),
        })
        .map_err(std::io::Error::other)?;
        let written = writeln!(io.out, "{text}");
        text.zeroize();
        written?;
        writeln!(io.err, "IMPORTANT: {once}")?;
    } else {
        writeln!(io.out, "created API key {}", key.id)?;
        writeln!(io.out, "  id:          {}", key.id)?;
        writeln!(io.out, "  secret:      {}", key.secret)?;
        writeln!(io.out, "  type:        {}", type_name(key.key_type))?;
        writeln!(
            io.out,
            "  permissions: {}",
            permission_list(&key.permissions)
        )?;
        writeln!(io.out, "  allowed IPs: {}", ip_list(&ranges))?;
        writeln!(io.out, "  label:       {:?}", key.label)?;
        writeln!(io.out, "  owner:       {}", key.family())?;
        writeln!(io.out, "  expires at:  {}", key.expiry().to_rfc3339())?;
        writeln!(io.out)?;
        writeln!(io.out, "IMPORTANT: {once}")?;
        writeln!(io.out)?;
        writeln!(
            io.out,
            "Sign a request with it (the secret is read from an environment variable, never \
             from the command line):"
        )?;
        writeln!(
            io.out,
            "  read -rs OPSCTL_API_SECRET && export OPSCTL_API_SECRET   # paste the secret"
        )?;
        writeln!(io.out, "  {}", sign_example(key))?;
    }
    writeln!(
        io.err,
        "wrote API key registry {} (secret version {}); running functions accept the new key \
         within the registry cache TTL ({} s)",
        created.registry,
        created.version.as_str(),
        REGISTRY_CACHE_TTL.as_secs()
    )?;
    Ok(())
}

pub(super) fn print_revoked(r: &Revoked, io: &mut Io<'_>) -> Result<(), Error> {
    writeln!(
        io.out,
        "revoked API key {} (type {}, label {:?}) at {}",
        r.key.id,
        type_name(r.key.key_type),
        r.key.label,
        r.key
            .revoked_at
            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
    )?;
    writeln!(
        io.out,
        "wrote API key registry {} (secret version {}); the key stays listed as revoked for the \
         audit trail",
        r.registry,
        r.version.as_str()
    )?;
    writeln!(
        io.err,
        "warning: running functions see this revocation within the registry cache TTL ({} s): \
         until then they may still accept requests signed with {}.",
        REGISTRY_CACHE_TTL.as_secs(),
        r.key.id
    )?;
    Ok(())
}
