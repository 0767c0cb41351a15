//! [`CaService`]: the `istio.v1.auth.IstioCertificateService` handler.
//! Authenticates the caller, signs its CSR for its own identity, answers
//! `[leaf, …, root]`.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::super::authority::Authority;
use super::super::error::{CaError, CaErrorKind};
use super::super::proto::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use super::super::proto::{IstioCertificateRequest, IstioCertificateResponse};
use super::auth::{Tokens, authenticate};

/// The CA API handler. Mount it on any tonic server with
/// [`CaService::into_server`]; client-certificate authentication needs that
/// server to terminate TLS with the CA's root as client CA (as
/// [`super::CaServer`] does), otherwise only tokens work.
#[derive(Debug, Clone)]
pub struct CaService {
    authority: Authority,
    tokens: Arc<Tokens>,
}

impl CaService {
    /// A handler signing with `authority` and accepting `tokens`.
    pub fn new(authority: Authority, tokens: Tokens) -> Self {
        CaService {
            authority,
            tokens: Arc::new(tokens),
        }
    }

    /// The generated tonic service wrapping this handler.
    pub fn into_server(self) -> IstioCertificateServiceServer<CaService> {
        IstioCertificateServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let peer_certs = request.peer_certs();
        let (id, via) = authenticate(
            peer_certs.as_deref().map(|v| v.as_slice()),
            request.metadata(),
            &self.tokens,
            self.authority.trust_domain(),
        )
        .inspect_err(|s| tracing::warn!(reason = s.message(), "CA: unauthenticated request"))?;
        let req = request.into_inner();
        let validity = match req.validity_duration {
            0 => None,
            s if s > 0 => Some(Duration::from_secs(s as u64)),
            s => {
                return Err(Status::invalid_argument(format!(
                    "validity_duration {s}: must not be negative"
                )));
            }
        };
        // Signing is CPU-bound (an ECDSA signature): keep it off the reactor.
        let authority = self.authority.clone();
        let signer_id = id.clone();
        let chain =
            tokio::task::spawn_blocking(move || authority.sign_csr(&req.csr, &signer_id, validity))
                .await
                .map_err(|e| Status::internal(format!("signing task failed: {e}")))?
                .map_err(|e| {
                    tracing::warn!(caller = %id, error = %e, "CA: refused a certificate request");
                    to_status(e)
                })?;
        tracing::info!(identity = %id, via = ?via, "CA: issued a workload certificate");
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: chain,
        }))
    }
}

fn to_status(e: CaError) -> Status {
    match e.kind() {
        CaErrorKind::IdentityMismatch => Status::permission_denied(e.to_string()),
        CaErrorKind::InvalidCsr | CaErrorKind::InvalidIdentity => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}
