//! HTTPS in local mode, so that nothing is plain HTTP even on a developer's machine.
//!
//! - [`LocalCa`]: a certificate authority of this machine alone. [`LocalCa::ensure`] creates it
//!   at first start in a directory (`ca.pem`, and `ca-key.pem` with mode 0600 in a 0700
//!   directory) and loads it afterwards, so that a client told to trust `ca.pem` once keeps
//!   working across restarts; [`LocalCa::ephemeral`] makes one in memory for a test process.
//!   Its name constraints limit it to loopback (`127.0.0.0/8`, `::1`, `localhost`), so even a
//!   leaked CA key cannot vouch for another host.
//! - [`LocalCa::server_config`]: a rustls server configuration with a fresh leaf certificate for
//!   `127.0.0.1`, `::1` and `localhost`, TLS 1.3 and 1.2 only (the minimum is set explicitly, not
//!   left to a default).
//! - [`serve`]: an axum router over that configuration (axum-server with rustls). A client that
//!   speaks plain HTTP to it gets no HTTP answer: the TLS handshake fails and the connection
//!   closes.
//! - [`client`]: a `reqwest` client that refuses `http://` URLs and TLS below 1.2, and trusts the
//!   CA *in addition to* the platform's roots: verification stays on, it only has one more root.
//!
//! The devstack and the platform simulator serve with it; the functions' outbound clients in
//! local mode are given `ca.pem` (`PLATFORM_LOCAL_CA`).
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write as _;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// The CA certificate's file name in the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in the CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// How long a CA made by [`LocalCa::ensure`] is valid: ten years, so that a developer's trust
/// setting (`curl --cacert`) does not expire under them.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a leaf certificate is valid. Leaves are made at every start, so a short life costs
/// nothing.
const LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far back a certificate's validity starts, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);
/// The common name every local CA carries (the key tells two CAs apart).
const CA_NAME: &str = "partner-bundle local development CA";

/// Why the local CA or a TLS server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file of the CA directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made or read back.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTPS client: {0}")]
    Client(#[from] reqwest::Error),
    /// Only one of the CA's two files exists.
    #[error("{0} exists without its pair; remove it to make a new local CA")]
    HalfCa(PathBuf),
}

/// Which names and what validity a leaf certificate has ([`LocalCa::leaf`]).
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// DNS names and IP addresses (as text) the certificate is for.
    pub hosts: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl LeafSpec {
    /// `127.0.0.1`, `::1` and `localhost`, valid from an hour ago for 30 days.
    #[must_use]
    pub fn loopback() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            hosts: vec!["127.0.0.1".into(), "::1".into(), "localhost".into()],
            not_before: now - BACKDATE,
            not_after: now + LEAF_VALIDITY,
        }
    }
}

/// A leaf certificate with its chain and key, ready for a rustls server.
pub struct Leaf {
    /// The leaf certificate, then the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A certificate authority for loopback hosts: see the crate documentation.
pub struct LocalCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The CA's parameters. The same parameters with the same key make a certificate with the same
/// subject and key identifier, so leaves signed after a reload chain to the `ca.pem` on disk.
fn ca_params(not_before: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "partner-bundle");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(Ipv6Addr::LOCALHOST.octets(), [0xff; 16])),
        ],
        excluded_subtrees: Vec::new(),
    });
    params.not_before = not_before;
    params.not_after = not_before + CA_VALIDITY;
    params
}

impl LocalCa {
    /// A new CA held in memory only (for a test process).
    ///
    /// # Errors
    /// [`TlsError::Certificate`] if the key or the certificate cannot be made.
    pub fn ephemeral() -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Self::from_key(key, None)
    }

    fn from_key(key: KeyPair, dir: Option<PathBuf>) -> Result<Self, TlsError> {
        let params = ca_params(OffsetDateTime::now_utc() - BACKDATE);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            dir,
        })
    }

    /// The CA kept in `dir`: loaded when `ca.pem` and `ca-key.pem` exist there, else made and
    /// written (the directory 0700, the key 0600, the key written before the certificate so that
    /// a crash in between leaves no certificate without its key).
    ///
    /// # Errors
    /// [`TlsError::Io`] for a file that cannot be read or written, [`TlsError::HalfCa`] when only
    /// one of the two files exists, [`TlsError::Certificate`] for a key file that does not parse.
    pub fn ensure(dir: &Path) -> Result<Self, TlsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let key_pem = fs::read_to_string(&key_path).map_err(io(&key_path))?;
                let cert_pem = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
                let key = KeyPair::from_pem(&key_pem)?;
                let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
                    .map_err(|e| TlsError::Io {
                        path: cert_path.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    })?;
                // The stored certificate is what clients trust; the issuer is rebuilt from the
                // same parameters and key, so what it signs chains to it.
                Ok(Self {
                    cert_pem,
                    cert_der: der,
                    issuer: Issuer::new(ca_params(OffsetDateTime::now_utc()), key),
                    dir: Some(dir.to_path_buf()),
                })
            }
            (false, false) => {
                create_private_dir(dir).map_err(io(dir))?;
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
                let ca = Self::from_key(key, Some(dir.to_path_buf()))?;
                fs::write(&cert_path, ca.cert_pem.as_bytes()).map_err(io(&cert_path))?;
                Ok(ca)
            }
            (true, false) => Err(TlsError::HalfCa(cert_path)),
            (false, true) => Err(TlsError::HalfCa(key_path)),
        }
    }

    /// The CA certificate, PEM: what a client is told to trust.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Where `ca.pem` is, for a CA kept on disk.
    #[must_use]
    pub fn cert_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(CA_CERT_FILE))
    }

    /// A leaf certificate signed by this CA.
    ///
    /// # Errors
    /// [`TlsError::Certificate`] for a host that is neither an IP address nor a DNS name.
    pub fn leaf(&self, spec: &LeafSpec) -> Result<Leaf, TlsError> {
        let mut params = CertificateParams::new(spec.hosts.clone())?;
        params.distinguished_name.push(
            DnType::CommonName,
            spec.hosts.first().map_or("", String::as_str),
        );
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A server configuration with a fresh loopback leaf ([`LeafSpec::loopback`]).
    ///
    /// # Errors
    /// As [`LocalCa::leaf`] and [`server_config`].
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        server_config(self.leaf(&LeafSpec::loopback())?)
    }

    /// A client that trusts this CA besides the platform's roots ([`client`]).
    ///
    /// # Errors
    /// [`TlsError::Client`] when the client cannot be built.
    pub fn client(&self) -> Result<reqwest::Client, TlsError> {
        Ok(client_builder(self.cert_pem.as_bytes())?.build()?)
    }
}

/// The TLS versions every local server and client accepts: 1.3 and 1.2, nothing older.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A rustls server configuration for `leaf`: TLS 1.3 and 1.2 only ([`PROTOCOL_VERSIONS`]), the
/// aws-lc-rs provider, HTTP/1.1 by ALPN.
///
/// # Errors
/// [`TlsError::Rustls`] when rustls refuses the certificate or key.
pub fn server_config(leaf: Leaf) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A `reqwest` client builder that refuses `http://` URLs, refuses TLS below 1.2, and trusts the
/// CA certificates in `ca_pem` in addition to the platform's roots.
///
/// # Errors
/// [`TlsError::Client`] when `ca_pem` holds no readable certificate.
pub fn client_builder(ca_pem: &[u8]) -> Result<reqwest::ClientBuilder, TlsError> {
    let roots = reqwest::Certificate::from_pem_bundle(ca_pem)?;
    Ok(reqwest::Client::builder()
        .https_only(true)
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .tls_certs_merge(roots))
}

/// A running HTTPS server ([`serve`]). Dropping it stops accepting at once.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The address it listens on.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<address>`, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish for up to `grace`, and waits.
    pub async fn shutdown(mut self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

/// Serves `router` over TLS with `config` on `listener`, giving handlers the peer address
/// (`ConnectInfo<SocketAddr>`).
///
/// # Errors
/// [`TlsError::Io`] when the listener cannot be handed to the server.
pub fn serve(
    listener: std::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
) -> Result<Server, TlsError> {
    let addr = listener.local_addr().map_err(|source| TlsError::Io {
        path: PathBuf::from("<listener>"),
        source,
    })?;
    let handle = axum_server::Handle::new();
    let server = axum_server::tls_rustls::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(config),
    )
    .map_err(|source| TlsError::Io {
        path: PathBuf::from("<listener>"),
        source,
    })?
    .handle(handle.clone());
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = server.serve(service).await {
            tracing::error!(error = %e, "HTTPS server stopped");
        }
    });
    Ok(Server { addr, handle, task })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
