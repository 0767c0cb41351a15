//! Inbound (server) listeners, one per workload address and served port:
//! one filter chain, `inbound-mtls` or `inbound-plaintext` by the effective
//! PeerAuthentication, an HCM with the inline `inbound` route and the RBAC
//! filters from the AuthorizationPolicies selecting the workload.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::BoolValue;

use crate::config::{Config, MtlsMode, PeerAuthentication, ROOT_NAMESPACE};
use crate::snapshot::{ISTIO_INBOUND_PREFIX, InboundListener};

use super::Out;
use super::cluster::{legacy_provider, provider, tls_socket};
use super::index::{Index, Workload, selects};
use super::rbac;
use super::wire::{HCM_NAME, ROUTER_NAME, any, http_filter, socket_address};

/// Adds the inbound listener of every workload address and port some
/// service sends traffic to.
pub(super) fn listeners(ix: &Index<'_>, config: &Config, out: &mut Out) {
    // (ip, port) → the workload serving it; the first one wins.
    let mut served: BTreeMap<(std::net::IpAddr, u16), &Workload<'_>> = BTreeMap::new();
    for svc in ix.services() {
        for w in &svc.workloads {
            for port in &svc.entry.ports {
                served.entry((w.ip(), w.port_for(port))).or_insert(w);
            }
        }
    }
    for ((ip, port), w) in served {
        // A36 chains cannot sniff TLS: PERMISSIVE serves plaintext unless
        // the workload is labelled as speaking Istio mTLS.
        let mtls = match effective_mode(&config.peer_authentications, w) {
            MtlsMode::Strict => true,
            MtlsMode::Permissive => {
                w.labels
                    .get("security.istio.io/tlsMode")
                    .map(String::as_str)
                    == Some("istio")
            }
            MtlsMode::Disable => false,
        };
        let (deny, allow) = rbac::filters(&config.authorization_policies, w);
        let manager = hcm::HttpConnectionManager {
            stat_prefix: "inbound".into(),
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
                inbound_routes(port),
            )),
            http_filters: vec![deny, allow, http_filter(ROUTER_NAME, &Router::default())],
            ..Default::default()
        };
        let chain = listener::FilterChain {
            name: if mtls {
                "inbound-mtls"
            } else {
                "inbound-plaintext"
            }
            .into(),
            filters: vec![listener::Filter {
                name: HCM_NAME.into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            transport_socket: mtls.then(downstream_tls),
            ..Default::default()
        };
        let l = listener::Listener {
            name: format!(
                "{ISTIO_INBOUND_PREFIX}{}",
                std::net::SocketAddr::new(ip, port)
            ),
            address: Some(socket_address(ip, port)),
            filter_chains: vec![chain],
            ..Default::default()
        };
        out.snapshot
            .inbound
            .insert((ip, port), InboundListener { listener: l });
    }
}

/// The workload's mTLS mode: its own selector policy, else its namespace's,
/// else the mesh's (root namespace), else PERMISSIVE. UNSET inherits.
pub(crate) fn effective_mode(pas: &[PeerAuthentication], w: &Workload<'_>) -> MtlsMode {
    let workload = pas.iter().find(|p| {
        p.meta.namespace == w.namespace
            && p.mode.is_some()
            && p.selector
                .as_ref()
                .is_some_and(|s| !s.is_empty() && selects(s, &w.labels))
    });
    let namespace = || {
        pas.iter().find(|p| {
            p.meta.namespace == w.namespace
                && p.mode.is_some()
                && p.selector.as_ref().is_none_or(|s| s.is_empty())
        })
    };
    let mesh = || {
        pas.iter().find(|p| {
            p.meta.namespace == ROOT_NAMESPACE
                && p.mode.is_some()
                && p.selector.as_ref().is_none_or(|s| s.is_empty())
        })
    };
    workload
        .or_else(namespace)
        .or_else(mesh)
        .and_then(|p| p.mode)
        .unwrap_or(MtlsMode::Permissive)
}

fn inbound_routes(port: u16) -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: "inbound".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".into()],
            routes: vec![route::Route {
                name: "default".into(),
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::NonForwardingAction(
                    route::NonForwardingAction::default(),
                )),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The server side of mTLS: present the workload certificate, require a
/// client certificate signed by the mesh CA; identity checks are RBAC's.
#[allow(deprecated)] // istiod sets the deprecated twins too
fn downstream_tls() -> envoy_types::pb::envoy::config::core::v3::TransportSocket {
    let ctx = tls::DownstreamTlsContext {
        require_client_certificate: Some(BoolValue { value: true }),
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_provider_instance: Some(provider("default")),
            tls_certificate_certificate_provider_instance: Some(legacy_provider("default")),
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(tls::CertificateValidationContext {
                            ca_certificate_provider_instance: Some(provider("ROOTCA")),
                            ..Default::default()
                        }),
                        validation_context_certificate_provider_instance: Some(legacy_provider(
                            "ROOTCA",
                        )),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    tls_socket(any(&ctx))
}
