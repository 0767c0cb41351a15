//! The `mesh_ca` certificate provider: a workload certificate fetched from
//! the mesh's CA over Istio's CA API and renewed before it expires, so a
//! workload starts with only a token and the CA's address.
//!
//! [`MeshCaProvider::start`] reads the trust anchor (`ca_certificate_file`)
//! and publishes it at once, with no identity; a background task then
//! generates a key and CSR, calls `CreateCertificate`
//! ([`mesh_core::ca_client`]) with the token from `token_file` (re-read at
//! every request, as projected service account tokens rotate), checks the
//! chain (see the `issue` module) and publishes it whole. It renews when
//! `renewal_grace_ratio` of the lifetime remains, with jitter (see the
//! `schedule` module). A failed request is reported in the provider's
//! [`ProviderStatus`] and retried with backoff; the current certificate
//! stays in force until a new one replaces it. If the token file cannot be
//! read at a renewal, the current certificate authenticates the request.
//!
//! Until the first certificate arrives, TLS configs naming the provider
//! build, and handshakes that need its certificate fail with
//! [`CertificateProvider::pending_reason`], which names the instance and
//! the last error. Not here: writing the certificate to files, or rotating
//! the trust anchor other than by re-reading its file at each renewal.

mod issue;
mod schedule;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use mesh_core::bootstrap::MeshCa;
use mesh_core::ca_client::{CaClient, Credentials};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::issue::{Issued, KeyAndCsr};
use self::schedule::{Backoff, RenewalSchedule};
use super::{CertificateProvider, ProviderStatus};
use crate::tls::error::{TlsError, TlsErrorKind};
use crate::tls::material::CertifiedMaterial;

/// A source of jitter samples in [-1, 1].
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Starts `mesh_ca` providers.
#[derive(Clone)]
pub struct MeshCaProvider {
    name: Arc<str>,
    config: MeshCa,
    jitter: Jitter,
}

impl std::fmt::Debug for MeshCaProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCaProvider")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MeshCaProvider {
    /// A provider for the bootstrap instance `name` with `config`.
    pub fn new(name: impl Into<Arc<str>>, config: MeshCa) -> Self {
        MeshCaProvider {
            name: name.into(),
            config,
            jitter: Arc::new(|| rand::random_range(-1.0..=1.0)),
        }
    }

    /// Where renewal and retry delays fall within their jitter: a source
    /// of samples in [-1, 1] (default uniform random). Tests pass a
    /// constant.
    pub fn jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// Validates the config, reads the trust anchor (an error names the
    /// instance and the file) and starts fetching the certificate in a
    /// background task, which stops when the last handle to the returned
    /// provider is dropped.
    ///
    /// Must be called within a tokio runtime.
    pub fn start(self) -> Result<CertificateProvider, TlsError> {
        self.config.validate().map_err(|e| {
            TlsError::new(
                TlsErrorKind::Config,
                format!("{}: config.{e}", self.describe()),
            )
        })?;
        let roots = read(&self.config.ca_certificate_file).map_err(|e| self.context(e))?;
        let initial = CertifiedMaterial::from_pem(&self.describe(), None, None, Some(&roots))?;
        let (tx, rx) = watch::channel(Arc::new(initial));
        let (status_tx, status_rx) = watch::channel(ProviderStatus::default());
        let task = tokio::spawn(self.clone().run(tx, status_tx));
        Ok(CertificateProvider::from_watch_with_status(
            Arc::clone(&self.name),
            rx,
            status_rx,
            AbortOnDrop(task),
        ))
    }

    fn describe(&self) -> String {
        format!("certificate provider instance {:?} (mesh_ca)", self.name)
    }

    fn context(&self, e: TlsError) -> TlsError {
        TlsError::with_source(e.kind(), self.describe(), e)
    }

    fn client(&self, roots: &[u8]) -> CaClient {
        let mut client = CaClient::new(
            self.config.server_uri.clone(),
            String::from_utf8_lossy(roots).into_owned(),
        )
        .timeout(self.config.request_timeout);
        if let Some(name) = &self.config.server_name {
            client = client.server_name(name.clone());
        }
        client
    }

    /// Fetch, publish, sleep until renewal; on failure, back off and retry.
    async fn run(
        self,
        material: watch::Sender<Arc<CertifiedMaterial>>,
        status: watch::Sender<ProviderStatus>,
    ) {
        let schedule = RenewalSchedule {
            grace_ratio: self.config.renewal_grace_ratio,
            jitter_ratio: self.config.renewal_jitter_ratio,
        };
        let backoff = Backoff {
            initial: self.config.retry_initial_backoff,
            max: self.config.retry_max_backoff,
        };
        let mut current: Option<Issued> = None;
        let mut failures = 0u32;
        loop {
            let delay = match self.fetch(current.as_ref()).await {
                Ok(issued) => {
                    failures = 0;
                    let now = SystemTime::now();
                    let delay = schedule.renew_in(
                        now,
                        issued.not_before,
                        issued.not_after,
                        now,
                        (self.jitter)(),
                    );
                    if let Some(old) = &current
                        && old.spiffe_id != issued.spiffe_id
                    {
                        tracing::warn!(instance = %self.name, old = %old.spiffe_id, new = %issued.spiffe_id,
                            "the CA issued a certificate for a different identity");
                    }
                    tracing::info!(instance = %self.name, identity = %issued.spiffe_id,
                        renew_in = ?delay, "certificate provider obtained a certificate");
                    material.send_replace(Arc::clone(&issued.material));
                    status.send_modify(|s| {
                        s.issued += 1;
                        s.last_error = None;
                    });
                    current = Some(issued);
                    delay
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let valid_for = current
                        .as_ref()
                        .and_then(|c| c.not_after.duration_since(SystemTime::now()).ok());
                    let delay = backoff.retry_in(failures, valid_for, (self.jitter)());
                    let error = self.context(error);
                    tracing::warn!(%error, retry_in = ?delay, keeping_current = current.is_some(),
                        "certificate request failed");
                    status.send_modify(|s| {
                        s.failures += 1;
                        s.last_error = Some(error.to_string().into());
                    });
                    delay
                }
            };
            tokio::time::sleep(delay).await;
        }
    }

    /// One request: new key and CSR, credentials, call, checks.
    async fn fetch(&self, current: Option<&Issued>) -> Result<Issued, TlsError> {
        let roots = read(&self.config.ca_certificate_file)?;
        let key = KeyAndCsr::generate(self.config.key_type)?;
        let credentials = self.credentials(current)?;
        let chain = self
            .client(&roots)
            .create_certificate(&key.csr_pem, self.config.certificate_lifetime, &credentials)
            .await
            .map_err(|e| {
                TlsError::with_source(TlsErrorKind::Load, "certificate request failed", e)
            })?;
        issue::accept(
            "the CA's answer",
            &chain,
            &key.key_pem,
            &roots,
            SystemTime::now(),
        )
    }

    /// The token, or, if it cannot be read, the current certificate while
    /// it is valid.
    fn credentials(&self, current: Option<&Issued>) -> Result<Credentials, TlsError> {
        match read_token(&self.config.token_file) {
            Ok(token) => Ok(Credentials {
                token: Some(token),
                identity: None,
            }),
            Err(e) => match current.filter(|c| c.not_after > SystemTime::now()) {
                Some(c) => {
                    tracing::warn!(instance = %self.name, error = %e,
                        "no token; renewing with the current certificate");
                    Ok(Credentials {
                        token: None,
                        identity: Some((c.chain_pem.clone(), c.key_pem.clone())),
                    })
                }
                None => Err(e),
            },
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::with_source(
            TlsErrorKind::Load,
            format!("cannot read {}", path.display()),
            e,
        )
    })
}

fn read_token(path: &Path) -> Result<String, TlsError> {
    let token = String::from_utf8(read(path)?).map_err(|_| {
        TlsError::new(
            TlsErrorKind::Load,
            format!("token file {} is not UTF-8", path.display()),
        )
    })?;
    let token = token.trim();
    if token.is_empty() {
        return Err(TlsError::new(
            TlsErrorKind::Load,
            format!("token file {} is empty", path.display()),
        ));
    }
    Ok(token.to_owned())
}

/// Aborts the fetch task with the provider's last handle.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
