//! The CA API's two messages, hand-written with prost's derive. Field
//! numbers as in Istio's `security/v1alpha1/ca.proto`; `metadata` (field
//! 4, a `google.protobuf.Struct` for impersonation by trusted callers) is
//! never sent, and so not declared.

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct IstioCertificateRequest {
    /// The PEM-encoded PKCS#10 CSR.
    #[prost(string, tag = "1")]
    pub(crate) csr: String,
    /// Requested validity in seconds; 0 for the CA's default.
    #[prost(int64, tag = "3")]
    pub(crate) validity_duration: i64,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct IstioCertificateResponse {
    /// PEM certificates, leaf first, root last.
    #[prost(string, repeated, tag = "1")]
    pub(crate) cert_chain: Vec<String>,
}
