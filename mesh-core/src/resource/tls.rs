//! TLS contexts (A29). STUB: being filled in.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as wire;

use super::FieldError;

/// A validated `UpstreamTlsContext` (client side). STUB.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTlsContext {}

/// A validated `DownstreamTlsContext` (server side). STUB.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTlsContext {}

impl UpstreamTlsContext {
    /// Validates a wire context found at `field`.
    pub fn from_wire(_c: &wire::UpstreamTlsContext, field: &str) -> Result<Self, FieldError> {
        Err(FieldError::new(field, "not implemented"))
    }
}

impl DownstreamTlsContext {
    /// Validates a wire context found at `field`.
    pub fn from_wire(_c: &wire::DownstreamTlsContext, field: &str) -> Result<Self, FieldError> {
        Err(FieldError::new(field, "not implemented"))
    }
}
