use super::*;
use envoy_types::pb::envoy::r#type::matcher::v3 as m;
use envoy_types::pb::google::protobuf::BoolValue;
use wire::common_tls_context::{CertificateProviderInstance, CombinedCertificateValidationContext};

fn plugin(name: &str, cert: &str) -> wire::CertificateProviderPluginInstance {
    wire::CertificateProviderPluginInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    }
}

fn old(name: &str, cert: &str) -> CertificateProviderInstance {
    CertificateProviderInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    }
}

fn san_exact(s: &str) -> m::StringMatcher {
    m::StringMatcher {
        match_pattern: Some(m::string_matcher::MatchPattern::Exact(s.into())),
        ignore_case: false,
    }
}

/// istiod's ISTIO_MUTUAL context: new and deprecated fields side by side.
pub(crate) fn istio_common(san: &str) -> wire::CommonTlsContext {
    wire::CommonTlsContext {
        tls_certificate_provider_instance: Some(plugin("default", "default")),
        tls_certificate_certificate_provider_instance: Some(old("default", "default")),
        validation_context_type: Some(Vct::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(wire::CertificateValidationContext {
                    ca_certificate_provider_instance: Some(plugin("default", "ROOTCA")),
                    match_subject_alt_names: vec![san_exact(san)],
                    ..Default::default()
                }),
                validation_context_certificate_provider_instance: Some(old("default", "ROOTCA")),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn upstream(common: wire::CommonTlsContext) -> wire::UpstreamTlsContext {
    wire::UpstreamTlsContext {
        common_tls_context: Some(common),
        ..Default::default()
    }
}

fn up_err(common: wire::CommonTlsContext) -> FieldError {
    UpstreamTlsContext::from_wire(&upstream(common), "ts").unwrap_err()
}

fn combined_ctx(cvc: CombinedCertificateValidationContext) -> wire::CommonTlsContext {
    wire::CommonTlsContext {
        validation_context_type: Some(Vct::CombinedValidationContext(cvc)),
        ..Default::default()
    }
}

#[test]
fn istio_mutual_upstream() {
    let san = "spiffe://cluster.local/ns/default/sa/echo";
    let mut w = upstream(istio_common(san));
    w.sni = "outbound_.7070_._.echo.default.svc.cluster.local".into();
    let c = UpstreamTlsContext::from_wire(&w, "").unwrap();
    assert_eq!(c.identity.as_ref().unwrap().instance_name, "default");
    assert_eq!(c.validation.ca.certificate_name, "ROOTCA");
    assert_eq!(
        c.validation.match_subject_alt_names,
        vec![StringMatcher::exact(san)]
    );
    assert_eq!(c.sni, "outbound_.7070_._.echo.default.svc.cluster.local");
    assert_eq!(c.provider_names(), vec!["default"]);
}

#[test]
fn new_fields_win_over_deprecated() {
    let mut common = istio_common("x");
    common.tls_certificate_certificate_provider_instance = Some(old("legacy", "c"));
    let Some(Vct::CombinedValidationContext(cvc)) = &mut common.validation_context_type else {
        unreachable!()
    };
    cvc.validation_context_certificate_provider_instance = Some(old("legacy-ca", "r"));
    let c = UpstreamTlsContext::from_wire(&upstream(common), "").unwrap();
    assert_eq!(c.provider_names(), vec!["default"]);
}

#[test]
fn deprecated_fields_alone_work() {
    let common = wire::CommonTlsContext {
        tls_certificate_certificate_provider_instance: Some(old("id", "default")),
        ..combined_ctx(CombinedCertificateValidationContext {
            default_validation_context: Some(wire::CertificateValidationContext {
                match_subject_alt_names: vec![san_exact("spiffe://a")],
                ..Default::default()
            }),
            validation_context_certificate_provider_instance: Some(old("roots", "ROOTCA")),
            ..Default::default()
        })
    };
    let c = UpstreamTlsContext::from_wire(&upstream(common), "").unwrap();
    assert_eq!(c.provider_names(), vec!["id", "roots"]);
    assert_eq!(c.validation.match_subject_alt_names.len(), 1);
    // The top-level deprecated instance: TLS with no SAN check.
    let common = wire::CommonTlsContext {
        validation_context_type: Some(Vct::ValidationContextCertificateProviderInstance(old(
            "roots", "",
        ))),
        ..Default::default()
    };
    let c = UpstreamTlsContext::from_wire(&upstream(common), "").unwrap();
    assert!(c.identity.is_none());
    assert_eq!(c.validation.ca.instance_name, "roots");
}

#[test]
fn upstream_requires_validation() {
    let e = up_err(wire::CommonTlsContext {
        tls_certificate_provider_instance: Some(plugin("default", "")),
        ..Default::default()
    });
    assert_eq!(e.field, "ts.common_tls_context");
    assert!(e.reason.contains("validation context required"), "{e}");
    let e = UpstreamTlsContext::from_wire(&wire::UpstreamTlsContext::default(), "ts").unwrap_err();
    assert_eq!(e.field, "ts.common_tls_context");
}

#[test]
fn combined_context_without_ca_is_rejected() {
    let e = up_err(combined_ctx(CombinedCertificateValidationContext {
        default_validation_context: Some(wire::CertificateValidationContext {
            match_subject_alt_names: vec![san_exact("spiffe://a")],
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert_eq!(e.field, "ts.common_tls_context.combined_validation_context");
    let e = up_err(combined_ctx(Default::default()));
    assert_eq!(e.field, "ts.common_tls_context.combined_validation_context");
    let e = up_err(wire::CommonTlsContext {
        validation_context_type: Some(Vct::ValidationContext(Default::default())),
        ..Default::default()
    });
    assert_eq!(e.field, "ts.common_tls_context.validation_context");
}

#[test]
fn empty_instance_name_is_rejected() {
    let mut common = istio_common("x");
    common.tls_certificate_provider_instance = Some(plugin("", "default"));
    assert_eq!(
        up_err(common).field,
        "ts.common_tls_context.tls_certificate_provider_instance.instance_name"
    );
}

#[test]
fn inline_and_sds_certificates_are_rejected() {
    let mut common = istio_common("x");
    common.tls_certificates = vec![Default::default()];
    assert_eq!(
        up_err(common).field,
        "ts.common_tls_context.tls_certificates"
    );
    let mut common = istio_common("x");
    common.tls_certificate_sds_secret_configs = vec![Default::default()];
    assert_eq!(
        up_err(common).field,
        "ts.common_tls_context.tls_certificate_sds_secret_configs"
    );
    let mut common = istio_common("x");
    common.custom_handshaker = Some(Default::default());
    assert_eq!(
        up_err(common).field,
        "ts.common_tls_context.custom_handshaker"
    );
    let mut common = istio_common("x");
    common.custom_tls_certificate_selector = Some(Default::default());
    assert_eq!(
        up_err(common).field,
        "ts.common_tls_context.custom_tls_certificate_selector"
    );
}

#[test]
fn validation_sds_and_plugin_configs_are_rejected() {
    let e = up_err(wire::CommonTlsContext {
        validation_context_type: Some(Vct::ValidationContextSdsSecretConfig(Default::default())),
        ..Default::default()
    });
    assert_eq!(
        e.field,
        "ts.common_tls_context.validation_context_sds_secret_config"
    );
    let e = up_err(wire::CommonTlsContext {
        validation_context_type: Some(
            Vct::ValidationContextCertificateProvider(Default::default()),
        ),
        ..Default::default()
    });
    assert_eq!(
        e.field,
        "ts.common_tls_context.validation_context_certificate_provider"
    );
    let e = up_err(combined_ctx(CombinedCertificateValidationContext {
        validation_context_sds_secret_config: Some(Default::default()),
        ..Default::default()
    }));
    assert_eq!(
        e.field,
        "ts.common_tls_context.combined_validation_context.validation_context_sds_secret_config"
    );
    let e = up_err(combined_ctx(CombinedCertificateValidationContext {
        validation_context_certificate_provider: Some(Default::default()),
        ..Default::default()
    }));
    assert_eq!(
        e.field,
        "ts.common_tls_context.combined_validation_context.validation_context_certificate_provider"
    );
}

#[test]
fn unsupported_validation_features_are_rejected() {
    type Edit = fn(&mut wire::CertificateValidationContext);
    let cases: [(&str, Edit); 7] = [
        ("verify_certificate_spki", |v| {
            v.verify_certificate_spki = vec!["x".into()]
        }),
        ("verify_certificate_hash", |v| {
            v.verify_certificate_hash = vec!["x".into()]
        }),
        ("require_signed_certificate_timestamp", |v| {
            v.require_signed_certificate_timestamp = Some(BoolValue { value: true })
        }),
        ("crl", |v| v.crl = Some(Default::default())),
        ("custom_validator_config", |v| {
            v.custom_validator_config = Some(Default::default())
        }),
        ("match_typed_subject_alt_names", |v| {
            v.match_typed_subject_alt_names = vec![Default::default()]
        }),
        ("match_subject_alt_names[0]", |v| {
            v.match_subject_alt_names = vec![m::StringMatcher::default()]
        }),
    ];
    for (field, edit) in cases {
        let mut common = istio_common("x");
        let Some(Vct::CombinedValidationContext(cvc)) = &mut common.validation_context_type else {
            unreachable!()
        };
        edit(cvc.default_validation_context.as_mut().unwrap());
        assert_eq!(
            up_err(common).field,
            format!(
                "ts.common_tls_context.combined_validation_context.default_validation_context.{field}"
            )
        );
    }
}

fn downstream(common: wire::CommonTlsContext, rcc: bool) -> wire::DownstreamTlsContext {
    wire::DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: rcc }),
        ..Default::default()
    }
}

fn server_common() -> wire::CommonTlsContext {
    let mut common = istio_common("x");
    let Some(Vct::CombinedValidationContext(cvc)) = &mut common.validation_context_type else {
        unreachable!()
    };
    cvc.default_validation_context
        .as_mut()
        .unwrap()
        .match_subject_alt_names
        .clear();
    common
}

#[test]
fn downstream_mtls_and_tls() {
    let c = DownstreamTlsContext::from_wire(&downstream(server_common(), true), "").unwrap();
    assert!(c.require_client_certificate);
    assert_eq!(c.validation.as_ref().unwrap().ca.certificate_name, "ROOTCA");
    assert_eq!(c.provider_names(), vec!["default"]);
    let tls_only = wire::CommonTlsContext {
        tls_certificate_provider_instance: Some(plugin("server", "")),
        ..Default::default()
    };
    let c = DownstreamTlsContext::from_wire(&downstream(tls_only, false), "").unwrap();
    assert!(c.validation.is_none());
    assert_eq!(c.provider_names(), vec!["server"]);
}

#[test]
fn downstream_requires_identity() {
    let mut common = server_common();
    common.tls_certificate_provider_instance = None;
    common.tls_certificate_certificate_provider_instance = None;
    let e = DownstreamTlsContext::from_wire(&downstream(common, true), "fc").unwrap_err();
    assert_eq!(e.field, "fc.common_tls_context");
    assert!(e.reason.contains("server certificate"), "{e}");
    let e = DownstreamTlsContext::from_wire(&Default::default(), "fc").unwrap_err();
    assert_eq!(e.field, "fc.common_tls_context");
}

#[test]
fn downstream_mtls_requires_validation() {
    let common = wire::CommonTlsContext {
        tls_certificate_provider_instance: Some(plugin("server", "")),
        ..Default::default()
    };
    let e = DownstreamTlsContext::from_wire(&downstream(common, true), "fc").unwrap_err();
    assert_eq!(e.field, "fc.common_tls_context");
    assert!(e.reason.contains("require_client_certificate"), "{e}");
}

#[test]
fn downstream_rejects_san_matchers() {
    let w = downstream(istio_common("spiffe://x"), true);
    let e = DownstreamTlsContext::from_wire(&w, "fc").unwrap_err();
    assert_eq!(
        e.field,
        "fc.common_tls_context.combined_validation_context.match_subject_alt_names"
    );
}

#[test]
fn downstream_rejects_require_sni_and_ocsp() {
    let mut w = downstream(server_common(), true);
    w.require_sni = Some(BoolValue { value: true });
    assert_eq!(
        DownstreamTlsContext::from_wire(&w, "fc").unwrap_err().field,
        "fc.require_sni"
    );
    let mut w = downstream(server_common(), true);
    w.ocsp_staple_policy = 2;
    assert_eq!(
        DownstreamTlsContext::from_wire(&w, "fc").unwrap_err().field,
        "fc.ocsp_staple_policy"
    );
}
