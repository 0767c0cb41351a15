//! A client for Istio's CA API (`istio.v1.auth.IstioCertificateService`):
//! send a PEM CSR, get the signed chain back as PEM strings.
//!
//! [`CaClient::create_certificate`] opens a TLS connection to the CA
//! (verified against the given trust anchor), authenticates with a bearer
//! token and/or the caller's current certificate ([`Credentials`]), makes
//! one `CreateCertificate` call and closes the connection: renewals are
//! hours apart, so a kept-open connection would buy nothing.
//!
//! The two messages are written by hand (the `wire` module), so no generated
//! protobuf type, and no copy of Istio's `.proto`, is needed; none leaves
//! this module. Not here: key or CSR generation, checking the returned
//! certificate, or deciding when to renew (the TLS layer's `mesh_ca`
//! provider does those).

mod error;
mod wire;

use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use self::error::CaClientErrorKind as Kind;
pub use self::error::{CaClientError, CaClientErrorKind};
use self::wire::{IstioCertificateRequest, IstioCertificateResponse};

/// The method path of `CreateCertificate`.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// How the caller proves who it is: a bootstrap token, its current
/// CA-issued certificate, or both (the CA prefers the certificate).
#[derive(Clone, Default)]
pub struct Credentials {
    /// Sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The current certificate chain and key (PEM), presented as the TLS
    /// client identity.
    pub identity: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    // Tokens and keys are secrets: say which are present, not what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// Calls one CA. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CaClient {
    uri: String,
    server_name: Option<String>,
    ca_pem: String,
    timeout: Duration,
}

impl CaClient {
    /// A client for the CA at `server_uri` (`https://host:port`), whose
    /// serving certificate must chain to `ca_pem`.
    pub fn new(server_uri: impl Into<String>, ca_pem: impl Into<String>) -> Self {
        CaClient {
            uri: server_uri.into(),
            server_name: None,
            ca_pem: ca_pem.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The name to verify the CA's certificate against (default: the
    /// host of the URI).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// How long a request may take, connecting included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The CA's address.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Asks the CA to sign `csr_pem` for `validity` (rounded down to whole
    /// seconds; zero asks for the CA's default) and returns the chain,
    /// leaf first, root last, one PEM certificate per string.
    pub async fn create_certificate(
        &self,
        csr_pem: &str,
        validity: Duration,
        credentials: &Credentials,
    ) -> Result<Vec<String>, CaClientError> {
        let call = self.call(csr_pem, validity, credentials);
        let chain = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                CaClientError::new(
                    Kind::Unavailable,
                    format!("CA {}: no answer within {:?}", self.uri, self.timeout),
                )
            })??;
        if chain.is_empty() {
            return Err(CaClientError::new(
                Kind::InvalidResponse,
                format!("CA {}: the response has an empty cert_chain", self.uri),
            ));
        }
        Ok(chain)
    }

    async fn call(
        &self,
        csr_pem: &str,
        validity: Duration,
        credentials: &Credentials,
    ) -> Result<Vec<String>, CaClientError> {
        let endpoint = self.endpoint(credentials)?;
        let channel = endpoint.connect().await.map_err(|e| {
            CaClientError::with_source(
                Kind::Unavailable,
                format!("CA {}: cannot connect", self.uri),
                e,
            )
        })?;
        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr: csr_pem.to_owned(),
            validity_duration: i64::try_from(validity.as_secs()).unwrap_or(i64::MAX),
        });
        if let Some(token) = &credentials.token {
            let value = format!("Bearer {token}").parse().map_err(|_| {
                CaClientError::new(
                    Kind::Config,
                    "the token is not a valid header value (it must be printable ASCII)",
                )
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| {
            CaClientError::with_source(Kind::Unavailable, format!("CA {}: not ready", self.uri), e)
        })?;
        let codec =
            tonic_prost::ProstCodec::<IstioCertificateRequest, IstioCertificateResponse>::default();
        let response = grpc
            .unary(
                request,
                PathAndQuery::from_static(CREATE_CERTIFICATE),
                codec,
            )
            .await
            .map_err(|s| CaClientError::from_status(&self.uri, s))?;
        Ok(response.into_inner().cert_chain)
    }

    fn endpoint(&self, credentials: &Credentials) -> Result<Endpoint, CaClientError> {
        let config =
            |e| CaClientError::with_source(Kind::Config, format!("CA address {:?}", self.uri), e);
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        if let Some((chain, key)) = &credentials.identity {
            tls = tls.identity(Identity::from_pem(chain, key));
        }
        Endpoint::from_shared(self.uri.clone())
            .map_err(config)?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tls_config(tls)
            .map_err(config)
    }
}

#[cfg(test)]
mod tests;
