//! TLS contexts (gRPC A29): the `UpstreamTlsContext` a Cluster's transport
//! socket carries and the `DownstreamTlsContext` of a server filter chain.
//!
//! Certificates come only from certificate provider *instances* named in the
//! bootstrap's `certificate_providers` (gRPC's model): inline certificates,
//! SDS, custom validators and pinning are NACKed rather than silently ignored,
//! since ignoring them would weaken what the control plane asked for.
//! Whether the named instances exist is checked later, by the client against
//! its bootstrap ([`UpstreamTlsContext::provider_names`]); not here.
//!
//! istiod sets both the current provider fields and their deprecated twins
//! (`tls_certificate_certificate_provider_instance`,
//! `validation_context_certificate_provider_instance`); both are accepted at
//! once and the current field wins.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as wire;

use super::FieldError;
use super::matcher::StringMatcher;

use wire::common_tls_context::ValidationContextType as Vct;

/// A certificate provider instance reference: a bootstrap
/// `certificate_providers` key and the certificate name inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertProviderInstance {
    /// The bootstrap `certificate_providers` key (`default` from istiod).
    pub instance_name: String,
    /// Which certificate of that instance (`default`, `ROOTCA` from istiod);
    /// empty means the instance's only one.
    pub certificate_name: String,
}

/// How to validate the peer's certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertValidation {
    /// The provider instance supplying the trusted CA certificates.
    pub ca: CertProviderInstance,
    /// The peer certificate must have a SAN matching one of these (client
    /// side only); empty means any SAN is accepted.
    pub match_subject_alt_names: Vec<StringMatcher>,
}

/// A validated `UpstreamTlsContext` (the client side of a cluster's TLS).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTlsContext {
    /// The client certificate for mTLS; `None` for plain TLS.
    pub identity: Option<CertProviderInstance>,
    /// Server certificate validation (always required on the client).
    pub validation: CertValidation,
    /// The SNI to send; empty sends none.
    pub sni: String,
}

/// A validated `DownstreamTlsContext` (the server side of a filter chain).
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTlsContext {
    /// The server certificate (always required).
    pub identity: CertProviderInstance,
    /// Client certificate validation; present whenever
    /// `require_client_certificate` is true.
    pub validation: Option<CertValidation>,
    /// mTLS: reject clients without a valid certificate.
    pub require_client_certificate: bool,
}

impl UpstreamTlsContext {
    /// Validates a wire context found at `field` (the path of the `Any`
    /// carrying it, e.g. `transport_socket.typed_config`).
    pub fn from_wire(c: &wire::UpstreamTlsContext, field: &str) -> Result<Self, FieldError> {
        Self::convert(c).map_err(|e| prefix(e, field))
    }

    fn convert(c: &wire::UpstreamTlsContext) -> Result<Self, FieldError> {
        let common = c
            .common_tls_context
            .as_ref()
            .ok_or_else(|| FieldError::new("common_tls_context", "missing"))?;
        let parsed = parse_common(common).map_err(|e| e.at("common_tls_context"))?;
        let Some((validation, _)) = parsed.validation else {
            return Err(FieldError::new(
                "common_tls_context",
                "validation context required: a client must verify the server's certificate \
                 (set combined_validation_context.default_validation_context.\
                 ca_certificate_provider_instance)",
            ));
        };
        Ok(UpstreamTlsContext {
            identity: parsed.identity,
            validation,
            sni: c.sni.clone(),
        })
    }

    /// The certificate provider instance names this context references,
    /// without repeats, for checking against the bootstrap.
    pub fn provider_names(&self) -> Vec<&str> {
        names(self.identity.as_ref(), Some(&self.validation))
    }
}

impl DownstreamTlsContext {
    /// Validates a wire context found at `field` (the path of the `Any`
    /// carrying it, e.g. `filter_chains[0].transport_socket.typed_config`).
    pub fn from_wire(c: &wire::DownstreamTlsContext, field: &str) -> Result<Self, FieldError> {
        Self::convert(c).map_err(|e| prefix(e, field))
    }

    fn convert(c: &wire::DownstreamTlsContext) -> Result<Self, FieldError> {
        if c.require_sni.as_ref().is_some_and(|b| b.value) {
            return Err(FieldError::new(
                "require_sni",
                "require_sni is not supported",
            ));
        }
        if c.ocsp_staple_policy != 0 {
            return Err(FieldError::new(
                "ocsp_staple_policy",
                format!(
                    "OCSP stapling policy {} is not supported (only LENIENT_STAPLING)",
                    c.ocsp_staple_policy
                ),
            ));
        }
        let common = c
            .common_tls_context
            .as_ref()
            .ok_or_else(|| FieldError::new("common_tls_context", "missing"))?;
        let parsed = parse_common(common).map_err(|e| e.at("common_tls_context"))?;
        let Some(identity) = parsed.identity else {
            return Err(FieldError::new(
                "common_tls_context",
                "a server certificate is required (set tls_certificate_provider_instance)",
            ));
        };
        let require_client_certificate = c.require_client_certificate.is_some_and(|b| b.value);
        let validation = match parsed.validation {
            Some((v, path)) => {
                if !v.match_subject_alt_names.is_empty() {
                    return Err(FieldError::new(
                        format!("{path}.match_subject_alt_names"),
                        "match_subject_alt_names is not supported on servers (use RBAC)",
                    )
                    .at("common_tls_context"));
                }
                Some(v)
            }
            None if require_client_certificate => {
                return Err(FieldError::new(
                    "common_tls_context",
                    "validation context required when require_client_certificate is true",
                ));
            }
            None => None,
        };
        Ok(DownstreamTlsContext {
            identity,
            validation,
            require_client_certificate,
        })
    }

    /// The certificate provider instance names this context references,
    /// without repeats, for checking against the bootstrap.
    pub fn provider_names(&self) -> Vec<&str> {
        names(Some(&self.identity), self.validation.as_ref())
    }
}

fn names<'a>(
    identity: Option<&'a CertProviderInstance>,
    validation: Option<&'a CertValidation>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::with_capacity(2);
    for name in identity
        .map(|i| i.instance_name.as_str())
        .into_iter()
        .chain(validation.map(|v| v.ca.instance_name.as_str()))
    {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn prefix(e: FieldError, field: &str) -> FieldError {
    if field.is_empty() { e } else { e.at(field) }
}

/// What a `CommonTlsContext` yields: the local certificate and the peer
/// validation, with the path of the validation context (relative to the
/// common context) for later errors.
struct Common {
    identity: Option<CertProviderInstance>,
    validation: Option<(CertValidation, &'static str)>,
}

fn parse_common(c: &wire::CommonTlsContext) -> Result<Common, FieldError> {
    if !c.tls_certificates.is_empty() {
        return Err(FieldError::new(
            "tls_certificates",
            "inline certificates are not supported; use tls_certificate_provider_instance",
        ));
    }
    if !c.tls_certificate_sds_secret_configs.is_empty() {
        return Err(FieldError::new(
            "tls_certificate_sds_secret_configs",
            "SDS is not supported; use tls_certificate_provider_instance",
        ));
    }
    if c.custom_handshaker.is_some() {
        return Err(FieldError::new(
            "custom_handshaker",
            "custom handshakers are not supported",
        ));
    }
    if c.custom_tls_certificate_selector.is_some() {
        return Err(FieldError::new(
            "custom_tls_certificate_selector",
            "custom certificate selectors are not supported",
        ));
    }
    let identity = match (
        &c.tls_certificate_provider_instance,
        &c.tls_certificate_certificate_provider_instance,
    ) {
        (Some(i), _) => Some(instance(
            &i.instance_name,
            &i.certificate_name,
            "tls_certificate_provider_instance",
        )?),
        (None, Some(i)) => Some(instance(
            &i.instance_name,
            &i.certificate_name,
            "tls_certificate_certificate_provider_instance",
        )?),
        (None, None) => None,
    };
    let validation = match &c.validation_context_type {
        None => None,
        Some(Vct::ValidationContext(v)) => {
            const PATH: &str = "validation_context";
            Some((validation(v, None).map_err(|e| e.at(PATH))?, PATH))
        }
        Some(Vct::CombinedValidationContext(cvc)) => {
            const PATH: &str = "combined_validation_context";
            Some((combined(cvc).map_err(|e| e.at(PATH))?, PATH))
        }
        Some(Vct::ValidationContextSdsSecretConfig(_)) => {
            return Err(FieldError::new(
                "validation_context_sds_secret_config",
                "SDS is not supported; use ca_certificate_provider_instance",
            ));
        }
        Some(Vct::ValidationContextCertificateProvider(_)) => {
            return Err(FieldError::new(
                "validation_context_certificate_provider",
                "certificate provider plugin configs are not supported; \
                 use ca_certificate_provider_instance",
            ));
        }
        Some(Vct::ValidationContextCertificateProviderInstance(i)) => {
            const PATH: &str = "validation_context_certificate_provider_instance";
            let ca = instance(&i.instance_name, &i.certificate_name, PATH)?;
            Some((
                CertValidation {
                    ca,
                    match_subject_alt_names: Vec::new(),
                },
                PATH,
            ))
        }
    };
    Ok(Common {
        identity,
        validation,
    })
}

fn combined(
    c: &wire::common_tls_context::CombinedCertificateValidationContext,
) -> Result<CertValidation, FieldError> {
    if c.validation_context_sds_secret_config.is_some() {
        return Err(FieldError::new(
            "validation_context_sds_secret_config",
            "SDS is not supported; use ca_certificate_provider_instance",
        ));
    }
    if c.validation_context_certificate_provider.is_some() {
        return Err(FieldError::new(
            "validation_context_certificate_provider",
            "certificate provider plugin configs are not supported; \
             use ca_certificate_provider_instance",
        ));
    }
    let deprecated = c
        .validation_context_certificate_provider_instance
        .as_ref()
        .map(|i| {
            instance(
                &i.instance_name,
                &i.certificate_name,
                "validation_context_certificate_provider_instance",
            )
        })
        .transpose()?;
    match &c.default_validation_context {
        // A missing CA (an error at the root) is reported at the combined
        // context: the deprecated instance beside it could have supplied one.
        Some(v) => validation(v, deprecated).map_err(|e| {
            if e.field.is_empty() {
                e
            } else {
                e.at("default_validation_context")
            }
        }),
        None => deprecated
            .map(|ca| CertValidation {
                ca,
                match_subject_alt_names: Vec::new(),
            })
            .ok_or_else(no_ca),
    }
}

fn no_ca() -> FieldError {
    FieldError::new(
        "",
        "no CA certificate provider: set ca_certificate_provider_instance \
         (trusted_ca, system_root_certs and watched_directory are not supported)",
    )
}

/// A `CertificateValidationContext`; `fallback_ca` is the deprecated
/// combined-context instance, used when the context names no CA itself.
fn validation(
    v: &wire::CertificateValidationContext,
    fallback_ca: Option<CertProviderInstance>,
) -> Result<CertValidation, FieldError> {
    let unsupported =
        |field: &str, what: &str| Err(FieldError::new(field, format!("{what} is not supported")));
    if !v.verify_certificate_spki.is_empty() {
        return unsupported("verify_certificate_spki", "SPKI pinning");
    }
    if !v.verify_certificate_hash.is_empty() {
        return unsupported("verify_certificate_hash", "certificate hash pinning");
    }
    if v.require_signed_certificate_timestamp
        .is_some_and(|b| b.value)
    {
        return unsupported(
            "require_signed_certificate_timestamp",
            "signed certificate timestamp checking",
        );
    }
    if v.crl.is_some() {
        return unsupported("crl", "a certificate revocation list");
    }
    if v.custom_validator_config.is_some() {
        return unsupported("custom_validator_config", "a custom certificate validator");
    }
    if !v.match_typed_subject_alt_names.is_empty() {
        return Err(FieldError::new(
            "match_typed_subject_alt_names",
            "typed SAN matchers are not supported; use match_subject_alt_names",
        ));
    }
    let ca = match &v.ca_certificate_provider_instance {
        Some(i) => instance(
            &i.instance_name,
            &i.certificate_name,
            "ca_certificate_provider_instance",
        )?,
        None => fallback_ca.ok_or_else(no_ca)?,
    };
    let match_subject_alt_names = v
        .match_subject_alt_names
        .iter()
        .enumerate()
        .map(|(i, m)| StringMatcher::from_wire(m, &format!("match_subject_alt_names[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(CertValidation {
        ca,
        match_subject_alt_names,
    })
}

fn instance(
    instance_name: &str,
    certificate_name: &str,
    field: &str,
) -> Result<CertProviderInstance, FieldError> {
    if instance_name.is_empty() {
        return Err(FieldError::new(
            format!("{field}.instance_name"),
            "must not be empty",
        ));
    }
    Ok(CertProviderInstance {
        instance_name: instance_name.to_owned(),
        certificate_name: certificate_name.to_owned(),
    })
}

#[cfg(test)]
mod tests;
