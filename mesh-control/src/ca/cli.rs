//! What `mesh-control ca init`, `mesh-control ca issue` and the CA side of
//! `mesh-control serve --ca` do, kept out of `main.rs` so the command line
//! only parses arguments.
//!
//! `serve --ca DIR` runs a [`CaServer`] beside ADS ([`start_ca`]) with the
//! root in `DIR` (generated there when absent), the bootstrap tokens given
//! as `--ca-token TOKEN=NS/SA` ([`parse_ca_token`]) and, when bootstraps
//! are written, one freshly minted token per bootstrap ([`BootstrapTokens`]).
//! [`write_bootstrap_credentials`] writes those tokens and the root next to
//! the bootstraps and points them at the CA. Not here: ADS, rotating the
//! root, or revoking tokens (they live as long as the process).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;

use super::authority::{Authority, CA_CERT_FILE};
use super::error::{CaError, CaErrorKind as Kind};
use super::files::{ROOT_CERT_PEM, WorkloadCertPaths, write_atomic};
use super::identity::{DEFAULT_TRUST_DOMAIN, SpiffeId};
use super::server::CaServer;
use crate::bootstrap_gen::with_mesh_ca;

/// `ca init`: generates a root for `trust_domain` and saves it into `out`
/// (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`). Refuses to overwrite an
/// existing CA there.
pub fn init(out: &Path, trust_domain: &str) -> Result<Authority, CaError> {
    if out.join(CA_CERT_FILE).exists() {
        return Err(CaError::new(
            Kind::Io,
            format!(
                "{} already exists: refusing to replace a CA",
                out.join(CA_CERT_FILE).display()
            ),
        ));
    }
    let ca = Authority::generate(trust_domain)?;
    ca.save(out)?;
    Ok(ca)
}

/// What `ca issue` did.
#[derive(Debug)]
pub struct Issued {
    /// The files written.
    pub paths: WorkloadCertPaths,
    /// The identity issued.
    pub identity: String,
    /// Whether the root was generated on the fly (no `--root`): nothing else
    /// will trust it unless its `root-cert.pem` is distributed.
    pub ephemeral_root: bool,
}

/// `ca issue`: issues `ns`/`sa` into `out` (`cert-chain.pem`, `key.pem`,
/// `root-cert.pem`), signing with the CA in `root` or, without one, with a
/// freshly generated root.
pub fn issue(
    ns: &str,
    sa: &str,
    out: &Path,
    root: Option<&PathBuf>,
    trust_domain: &str,
    validity: Option<Duration>,
) -> Result<Issued, CaError> {
    let ca = match root {
        Some(dir) => Authority::load(dir, trust_domain)?,
        None => Authority::generate(trust_domain)?,
    };
    let id = ca.identity(ns, sa)?;
    let paths = ca.issue_for(&id, validity)?.write_to(out)?;
    Ok(Issued {
        paths,
        identity: id.uri(),
        ephemeral_root: root.is_none(),
    })
}

/// The client bootstrap's identity when `--client-sa` is not given.
pub const DEFAULT_CLIENT_SA: &str = "default/client";
/// The server bootstrap's service account when `--server-sa` is not given:
/// Kubernetes's default, which is also the identity mesh-control's TLS
/// contexts expect of an endpoint with no `serviceAccount`.
pub const DEFAULT_SERVER_SA: &str = "default";
/// The client bootstrap's token file, beside `client.json`.
pub const CLIENT_TOKEN_FILE: &str = "client.token";
/// The server bootstrap's token file, beside `server.json`.
pub const SERVER_TOKEN_FILE: &str = "server.token";

/// A workload identity by namespace and service account (the trust domain
/// is the CA's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
}

impl Workload {
    /// `namespace`/`service_account`, both checked as SPIFFE path segments.
    pub fn new(
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Result<Self, CaError> {
        let w = Workload {
            namespace: namespace.into(),
            service_account: service_account.into(),
        };
        SpiffeId::new(DEFAULT_TRUST_DOMAIN, &w.namespace, &w.service_account)?;
        Ok(w)
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

/// A bootstrap token and the identity it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The secret sent as `authorization: Bearer <token>`.
    pub token: String,
    /// Whom the CA issues certificates to for it.
    pub workload: Workload,
}

impl std::fmt::Debug for TokenGrant {
    // Tokens are secrets: show whom they are for, not what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token", &"<redacted>")
            .field("workload", &self.workload)
            .finish()
    }
}

/// Parses `NS/SA` for the flag named `flag`; errors name the flag and the
/// value.
pub fn parse_workload(flag: &str, value: &str) -> Result<Workload, String> {
    ns_sa(value).map_err(|why| format!("{flag} {value:?}: {why}"))
}

fn ns_sa(value: &str) -> Result<Workload, String> {
    let (ns, sa) = value
        .split_once('/')
        .ok_or("expected NS/SA (e.g. default/client)")?;
    Workload::new(ns, sa).map_err(|e| e.to_string())
}

/// Parses `--ca-token TOKEN=NS/SA`. The token is everything before the
/// last `=` (namespaces and service accounts have none, base64 tokens may);
/// errors name the flag and the value.
pub fn parse_ca_token(value: &str) -> Result<TokenGrant, String> {
    const FLAG: &str = "--ca-token";
    let (token, who) = value
        .rsplit_once('=')
        .ok_or_else(|| format!("{FLAG} {value:?}: expected TOKEN=NS/SA"))?;
    if token.is_empty() {
        return Err(format!("{FLAG} {value:?}: the token is empty"));
    }
    // The token travels in an HTTP header.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{FLAG} {value:?}: the token must be printable ASCII without spaces"
        ));
    }
    Ok(TokenGrant {
        token: token.to_owned(),
        workload: ns_sa(who).map_err(|why| format!("{FLAG} {value:?}: {why}"))?,
    })
}

/// A fresh random token: 32 bytes from the OS-seeded generator, as hex.
pub fn mint_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tokens minted for the bootstraps `serve --write-bootstrap` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapTokens {
    /// For `client.json`'s workload.
    pub client: TokenGrant,
    /// For `server.json`'s workload.
    pub server: TokenGrant,
}

impl BootstrapTokens {
    /// One [`mint_token`] each for `client` and `server`.
    pub fn mint(client: Workload, server: Workload) -> Self {
        Self::mint_with(client, server, mint_token)
    }

    /// Like [`mint`](Self::mint) with tokens from `mint` (tests pass a
    /// deterministic source).
    pub fn mint_with(client: Workload, server: Workload, mut mint: impl FnMut() -> String) -> Self {
        BootstrapTokens {
            client: TokenGrant {
                token: mint(),
                workload: client,
            },
            server: TokenGrant {
                token: mint(),
                workload: server,
            },
        }
    }
}

/// What `serve --ca` runs.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// The CA directory (`ca init`'s layout); a root is generated into it
    /// when it holds none.
    pub dir: PathBuf,
    /// Where the CA API listens.
    pub listen: SocketAddr,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// Bootstrap tokens given on the command line.
    pub tokens: Vec<TokenGrant>,
}

/// The CA server `serve --ca` runs beside ADS.
#[derive(Debug)]
pub struct RunningCa {
    server: CaServer,
    authority: Authority,
}

impl RunningCa {
    /// The `https://` URI workloads dial: the bound address, with an
    /// unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
    pub fn uri(&self) -> String {
        format!("https://{}", dialable(self.server.local_addr()))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The root workloads trust.
    pub fn root_pem(&self) -> &str {
        self.authority.root_pem()
    }

    /// The authority signing for the server.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Loads the root in `options.dir` (or generates and saves one there) and
/// starts the CA server with `options.tokens` plus, when given, the
/// bootstraps' minted tokens. Errors name the directory, the bad identity
/// or the address.
pub async fn start_ca(
    options: &CaOptions,
    bootstrap_tokens: Option<&BootstrapTokens>,
) -> Result<RunningCa, CaError> {
    let authority = Authority::load_or_generate(&options.dir, &options.trust_domain)?;
    let minted = bootstrap_tokens
        .into_iter()
        .flat_map(|t| [&t.client, &t.server]);
    let grants = options.tokens.iter().chain(minted).map(|g| {
        (
            g.token.clone(),
            (
                g.workload.namespace.clone(),
                g.workload.service_account.clone(),
            ),
        )
    });
    let server = CaServer::builder()
        .authority(authority.clone())
        .tokens(grants)
        .listen(options.listen)
        .start()
        .await?;
    Ok(RunningCa { server, authority })
}

/// The files [`write_bootstrap_credentials`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapCredentialFiles {
    /// `client.token` (mode 0600 on Unix).
    pub client_token: PathBuf,
    /// `server.token` (mode 0600 on Unix).
    pub server_token: PathBuf,
    /// `root-cert.pem`: the CA's root.
    pub root_cert: PathBuf,
}

/// Writes `client.token`, `server.token` and `root-cert.pem` into `dir`
/// (created if missing; paths made absolute) and returns `client` and
/// `server` pointed at them and at the CA at `ca_uri` (see
/// [`with_mesh_ca`]), ready for `bootstrap_gen::write_bootstraps`.
pub fn write_bootstrap_credentials(
    dir: &Path,
    ca_uri: &str,
    root_pem: &str,
    tokens: &BootstrapTokens,
    client: Bootstrap,
    server: Bootstrap,
) -> Result<(Bootstrap, Bootstrap, BootstrapCredentialFiles), CaError> {
    let io = |e| CaError::with_source(Kind::Io, format!("cannot create {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let dir = std::path::absolute(dir).map_err(io)?;
    let files = BootstrapCredentialFiles {
        client_token: dir.join(CLIENT_TOKEN_FILE),
        server_token: dir.join(SERVER_TOKEN_FILE),
        root_cert: dir.join(ROOT_CERT_PEM),
    };
    write_atomic(&files.root_cert, root_pem, false)?;
    write_atomic(&files.client_token, &tokens.client.token, true)?;
    write_atomic(&files.server_token, &tokens.server.token, true)?;
    let point = |b, token: &Path| {
        with_mesh_ca(b, ca_uri, token, &files.root_cert)
            .map_err(|e| CaError::with_source(Kind::Server, format!("CA address {ca_uri:?}"), e))
    };
    let client = point(client, &files.client_token)?;
    let server = point(server, &files.server_token)?;
    Ok((client, server, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_with_that_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let ca = init(&root, "cluster.local").unwrap();
        assert!(init(&root, "cluster.local").is_err(), "no overwrite");
        let out = dir.path().join("echo");
        let issued = issue("default", "echo", &out, Some(&root), "cluster.local", None).unwrap();
        assert_eq!(issued.identity, "spiffe://cluster.local/ns/default/sa/echo");
        assert!(!issued.ephemeral_root);
        let written_root = std::fs::read_to_string(&issued.paths.root_cert).unwrap();
        assert_eq!(written_root, ca.root_pem());
        assert!(issued.paths.key.exists() && issued.paths.cert_chain.exists());
    }

    #[test]
    fn issue_without_root_generates_one() {
        let dir = tempfile::tempdir().unwrap();
        let issued = issue("ns", "sa", dir.path(), None, "cluster.local", None).unwrap();
        assert!(issued.ephemeral_root);
        assert!(issued.paths.root_cert.exists());
        let missing = dir.path().join("nothing-here");
        let err = issue(
            "ns",
            "sa",
            dir.path(),
            Some(&missing),
            "cluster.local",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ca-cert.pem"), "{err}");
    }

    #[test]
    fn ca_token_flag_parses_and_names_bad_values() {
        let g = parse_ca_token("s3cr3t==/x=prod/billing").unwrap();
        assert_eq!(g.token, "s3cr3t==/x");
        assert_eq!(g.workload, Workload::new("prod", "billing").unwrap());
        assert!(!format!("{g:?}").contains("s3cr3t"), "Debug redacts");

        for (bad, why) in [
            ("no-equals", "expected TOKEN=NS/SA"),
            ("=ns/sa", "the token is empty"),
            ("tok=nsonly", "expected NS/SA"),
            ("tok=/sa", "namespace"),
            ("tok=ns/", "service account"),
            ("tok=ns/a/b", "service account"),
            ("to k=ns/sa", "printable ASCII"),
        ] {
            let e = parse_ca_token(bad).unwrap_err();
            assert!(e.starts_with(&format!("--ca-token {bad:?}")), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn workload_flag_parses() {
        let w = parse_workload("--client-sa", DEFAULT_CLIENT_SA).unwrap();
        assert_eq!(w.to_string(), "default/client");
        let e = parse_workload("--client-sa", "client").unwrap_err();
        assert!(e.starts_with("--client-sa \"client\""), "{e}");
    }

    #[test]
    fn minted_tokens_are_long_distinct_hex() {
        let (a, b) = (mint_token(), mint_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        let mut n = 0;
        let t = BootstrapTokens::mint_with(
            Workload::new("default", "client").unwrap(),
            Workload::new("default", "default").unwrap(),
            || {
                n += 1;
                format!("t{n}")
            },
        );
        assert_eq!(
            (t.client.token.as_str(), t.server.token.as_str()),
            ("t1", "t2")
        );
    }

    #[test]
    fn unspecified_listen_addresses_dial_loopback() {
        let d = |s: &str| dialable(s.parse().unwrap()).to_string();
        assert_eq!(d("0.0.0.0:15012"), "127.0.0.1:15012");
        assert_eq!(d("[::]:15012"), "[::1]:15012");
        assert_eq!(d("10.1.2.3:15012"), "10.1.2.3:15012");
    }

    #[test]
    fn bootstrap_credentials_are_written_private_and_referenced() {
        use mesh_core::bootstrap::CertificateProviderConfig as P;
        let dir = tempfile::tempdir().unwrap();
        let xds = "127.0.0.1:15010".parse().unwrap();
        let tokens = BootstrapTokens::mint(
            Workload::new("default", "client").unwrap(),
            Workload::new("default", "default").unwrap(),
        );
        let (c, s, files) = write_bootstrap_credentials(
            &dir.path().join("out"),
            "https://127.0.0.1:15012",
            "ROOT PEM",
            &tokens,
            crate::bootstrap_gen::client_bootstrap(xds, "c"),
            crate::bootstrap_gen::client_bootstrap(xds, "s"),
        )
        .unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&files.client_token), tokens.client.token);
        assert_eq!(read(&files.server_token), tokens.server.token);
        assert_eq!(read(&files.root_cert), "ROOT PEM");
        #[cfg(unix)]
        for p in [&files.client_token, &files.server_token] {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        for (b, token) in [(&c, &files.client_token), (&s, &files.server_token)] {
            let P::MeshCa(m) = &b.certificate_providers["default"] else {
                panic!("{:?}", b.certificate_providers)
            };
            assert_eq!(&m.token_file, token);
            assert!(m.token_file.is_absolute());
            assert_eq!(m.ca_certificate_file, files.root_cert);
        }
    }
}
