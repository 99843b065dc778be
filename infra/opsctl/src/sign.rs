//! `opsctl sign`: the `X-Access-Key`, `X-Timestamp` and `X-Signature` headers of a request to a
//! server-to-server route, computed with [`shared::auth::sign`] — the function the server's
//! verifier checks against — so operators can call the API by hand.
//!
//! The secret never comes from the command line (it would land in the shell history and in `ps`):
//! only from an environment variable named by `--secret-env`, or a file. The command needs no
//! access to the secrets store, and never prints the secret.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use shared::auth::AccessKeyId;
use shared::auth::signing::SIGNATURE_WINDOW;
use shared::clock::Timestamp;

use crate::Io;
use crate::api_keys::quoted;
use crate::error::Error;

/// `opsctl sign …`
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("secret").required(true).args(["secret_env", "secret_file"])))]
#[command(group(ArgGroup::new("request_body").args(["body", "body_file"])))]
pub struct SignArgs {
    /// The API key's id (`pk_…`), sent as X-Access-Key.
    #[arg(long, value_name = "ID")]
    pub key_id: String,
    /// The NAME of the environment variable holding the key's secret (never the secret itself).
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// A file holding the key's secret (surrounding whitespace is ignored).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// The HTTP method, e.g. POST.
    #[arg(long)]
    pub method: String,
    /// The path and query exactly as the server receives them, e.g. '/v1/credentials?x=1'.
    #[arg(long, value_name = "PATH_AND_QUERY")]
    pub path: String,
    /// A file holding the exact body bytes to send (`-`: standard input); send it with
    /// `curl --data-binary @FILE`.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// The body as text (default: empty).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub body: Option<String>,
    /// The X-Timestamp to sign, in Unix seconds (default: now). The server accepts ±300 s.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub timestamp: Option<u64>,
    /// `headers`: one `Name: value` line per header; `curl`: `-H Name:value` arguments for
    /// `curl … $(opsctl sign … --format curl)`.
    #[arg(long, value_enum, default_value_t = Format::Headers)]
    pub format: Format,
}

/// How `sign` prints the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `X-Access-Key: pk_…` lines.
    Headers,
    /// `-H X-Access-Key:pk_…` lines: curl arguments that survive the shell's word splitting.
    Curl,
}

/// The three signed headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-Access-Key`.
    pub access_key: AccessKeyId,
    /// `X-Timestamp`, exactly as signed.
    pub timestamp: String,
    /// `X-Signature`.
    pub signature: String,
}

impl Signed {
    /// The headers, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, &str); 3] {
        [
            ("X-Access-Key", self.access_key.as_str()),
            ("X-Timestamp", &self.timestamp),
            ("X-Signature", &self.signature),
        ]
    }
}

/// The longest timestamp the server reads as Unix seconds (`shared::auth::parse_timestamp`).
const MAX_TIMESTAMP: u64 = 999_999_999_999;

/// Runs `sign` with the process environment, the files it names, and the time `now`.
pub fn run(args: &SignArgs, now: Timestamp, io: &mut Io<'_>) -> Result<(), Error> {
    execute(args, &|name| std::env::var_os(name), now, io)
}

/// Runs `sign`, reading environment variables through `env`, and prints the headers.
pub fn execute(
    args: &SignArgs,
    env: &dyn Fn(&str) -> Option<OsString>,
    now: Timestamp,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let key_id =
        AccessKeyId::parse(args.key_id.trim()).ok_or_else(|| Error::MalformedApiKeyId {
            input: quoted(&args.key_id),
        })?;
    let method = method(&args.method)?;
    let path = path(&args.path)?;
    let timestamp = match args.timestamp {
        None => now.as_secs(),
        Some(t) if t <= MAX_TIMESTAMP => i64::try_from(t).unwrap_or(i64::MAX),
        Some(_) => {
            return Err(Error::invalid(
                "--timestamp",
                "a timestamp is Unix seconds (at most 12 digits)",
            ));
        }
    };
    let secret = secret(args, env, io)?;
    let body = body(args)?;
    let signed = sign(&key_id, &secret, method, path, timestamp, &body);
    let skew = Timestamp::from_secs(timestamp)
        .since(now)
        .max(now.since(Timestamp::from_secs(timestamp)));
    if skew > SIGNATURE_WINDOW {
        writeln!(
            io.err,
            "note: X-Timestamp is {} s away from now; the server refuses a timestamp more than {} \
             s away from its clock",
            skew.as_secs(),
            SIGNATURE_WINDOW.as_secs()
        )?;
    }
    print(&signed, args.format, io)
}

/// The headers of a request signed with `secret`.
pub fn sign(
    key_id: &AccessKeyId,
    secret: &SecretString,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
) -> Signed {
    let timestamp = timestamp.to_string();
    let signature = shared::auth::sign(
        secret.expose_secret(),
        method,
        path_and_query,
        &timestamp,
        body,
    );
    Signed {
        access_key: key_id.clone(),
        timestamp,
        signature,
    }
}

/// Prints the headers in `format`. Every value is `[A-Za-z0-9_-]`, so the curl form needs no
/// quoting: `$(opsctl sign … --format curl)` splits into exactly `-H` and `Name:value` words.
pub fn print(signed: &Signed, format: Format, io: &mut Io<'_>) -> Result<(), Error> {
    for (name, value) in signed.headers() {
        match format {
            Format::Headers => writeln!(io.out, "{name}: {value}")?,
            Format::Curl => writeln!(io.out, "-H {name}:{value}")?,
        }
    }
    Ok(())
}

/// The method, in upper case (the server signs the method as the request line carries it).
fn method(text: &str) -> Result<&'static str, Error> {
    const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    METHODS
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            Error::invalid(
                "--method",
                format!(
                    "{} is not an HTTP method ({})",
                    quoted(text),
                    METHODS.join(", ")
                ),
            )
        })
}

/// The path and query, checked: they are signed byte for byte, so they must be what the server
/// receives (no scheme or host, no fragment, no spaces).
fn path(text: &str) -> Result<&str, Error> {
    let problem = if text.contains("://") {
        Some("give the path and query only, without the scheme and host")
    } else if !text.starts_with('/') {
        Some("the path must start with /")
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("the path may not contain spaces or control characters (percent-encode them)")
    } else if text.contains('#') {
        Some("a fragment (#…) is never sent to the server")
    } else {
        None
    };
    match problem {
        None => Ok(text),
        Some(p) => Err(Error::invalid(
            "--path",
            format!("{p}, e.g. /v1/credentials?x=1 (got {})", quoted(text)),
        )),
    }
}

/// Whether `name` is a plausible environment variable name (and not, say, a pasted secret).
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with("sk_")
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The key's secret, from the environment variable or the file.
fn secret(
    args: &SignArgs,
    env: &dyn Fn(&str) -> Option<OsString>,
    io: &mut Io<'_>,
) -> Result<SecretString, Error> {
    let secret = match (&args.secret_env, &args.secret_file) {
        (Some(name), _) => {
            if !is_variable_name(name) {
                return Err(Error::invalid(
                    "--secret-env",
                    format!(
                        "{} is not an environment variable name: --secret-env takes the NAME of \
                         the variable holding the secret (e.g. OPSCTL_API_SECRET), never the \
                         secret itself",
                        quoted(name)
                    ),
                ));
            }
            let value = env(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::SecretEnvUnset { name: name.clone() })?;
            let value = value.into_string().map_err(|_| {
                Error::invalid("--secret-env", format!("{name} does not hold UTF-8 text"))
            })?;
            SecretString::from(value)
        }
        (None, Some(path)) => read_secret_file(path, io)?,
        (None, None) => {
            return Err(Error::invalid(
                "--secret-env",
                "give --secret-env VAR or --secret-file PATH",
            ));
        }
    };
    let trimmed = secret.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(
            "--secret-env/--secret-file",
            "the secret is empty",
        ));
    }
    if !trimmed.starts_with("sk_") {
        writeln!(
            io.err,
            "note: the secret does not start with sk_ like the secrets `opsctl api-keys create` \
             makes; check it is the right one if the server answers signature_mismatch"
        )?;
    }
    if trimmed.len() == secret.expose_secret().len() {
        Ok(secret)
    } else {
        Ok(SecretString::from(trimmed.to_owned()))
    }
}

fn read_secret_file(path: &Path, io: &mut Io<'_>) -> Result<SecretString, Error> {
    let read_error = |source| Error::ReadFile {
        what: "secret",
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let mut bytes = e.into_bytes();
        secrecy::zeroize::Zeroize::zeroize(&mut bytes);
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            writeln!(
                io.err,
                "warning: the secret file {} is readable by other users; `chmod 600` it",
                path.display()
            )?;
        }
    }
    Ok(SecretString::from(text))
}

/// The body bytes, exactly as given.
fn body(args: &SignArgs) -> Result<Vec<u8>, Error> {
    match (&args.body, &args.body_file) {
        (Some(text), _) => Ok(text.as_bytes().to_vec()),
        (None, Some(path)) => {
            let read_error = |source| Error::ReadFile {
                what: "body",
                path: path.clone(),
                source,
            };
            if path.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(read_error)?;
                Ok(bytes)
            } else {
                std::fs::read(path).map_err(read_error)
            }
        }
        (None, None) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("sk_test".to_owned())
    }

    fn id() -> AccessKeyId {
        AccessKeyId::parse("pk_0123456789abcdef").unwrap()
    }

    #[test]
    fn the_signature_is_the_servers_over_the_exact_request() {
        let signed = sign(
            &id(),
            &secret(),
            "POST",
            "/v1/x?a=1",
            1_700_000_000,
            b"{}\n",
        );
        assert_eq!(signed.timestamp, "1700000000");
        assert_eq!(
            signed.signature,
            shared::auth::sign("sk_test", "POST", "/v1/x?a=1", "1700000000", b"{}\n")
        );
    }

    #[test]
    fn the_curl_form_has_one_unquoted_argument_pair_per_header() {
        let signed = sign(&id(), &secret(), "GET", "/", 1, b"");
        let mut out = Vec::new();
        let mut err = Vec::new();
        print(
            &signed,
            Format::Curl,
            &mut Io {
                out: &mut out,
                err: &mut err,
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "-H",
                "X-Access-Key:pk_0123456789abcdef",
                "-H",
                "X-Timestamp:1",
                "-H",
                &format!("X-Signature:{}", signed.signature),
            ]
        );
    }

    #[test]
    fn methods_are_upper_cased_and_paths_checked() {
        assert_eq!(method("post").unwrap(), "POST");
        assert!(method("FETCH").is_err());
        assert!(path("/v1/credentials?x=1").is_ok());
        for bad in [
            "v1/credentials",
            "https://api/v1",
            "/v1/a b",
            "/v1#frag",
            "",
        ] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_is_not_taken_for_a_variable_name() {
        assert!(is_variable_name("OPSCTL_API_SECRET"));
        assert!(!is_variable_name("sk_AbCdEf0123456789"));
        assert!(!is_variable_name("1ABC"));
        assert!(!is_variable_name("A-B"));
    }
}
