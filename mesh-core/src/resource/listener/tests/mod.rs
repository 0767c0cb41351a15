//! Listener validation tests: one per rule, plus istiod-shaped listeners.
//! Tests with inline routes need `route::RouteConfig` and those with TLS need
//! `tls::DownstreamTlsContext` (other modules).

use super::*;
use crate::resource::filter::names;
use crate::resource::filter::tests::{any_of, fault, filter, router};
use crate::resource::to_any;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::rbac::v3 as policy;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_wire;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf;
use hcm::http_connection_manager::RouteSpecifier;

const OUTBOUND: &str = "echo.default.svc.cluster.local:7070";
const OUTBOUND_ROUTE: &str = "outbound|7070||echo.default.svc.cluster.local";
const INBOUND: &str = "xds.istio.io/grpc/lds/inbound/10.0.0.1:7070";

fn ads() -> Option<core::ConfigSource> {
    Some(core::ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(Default::default())),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    })
}

fn rds(name: &str) -> Option<RouteSpecifier> {
    Some(RouteSpecifier::Rds(hcm::Rds {
        config_source: ads(),
        route_config_name: name.into(),
    }))
}

fn outbound_hcm() -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager {
        route_specifier: rds(OUTBOUND_ROUTE),
        http_filters: vec![fault(), router()],
        ..Default::default()
    }
}

fn hcm_any(h: &hcm::HttpConnectionManager) -> protobuf::Any {
    any_of(HCM_TYPE, h)
}

fn client(h: hcm::HttpConnectionManager) -> wire::Listener {
    wire::Listener {
        name: OUTBOUND.into(),
        api_listener: Some(wire::ApiListener {
            api_listener: Some(hcm_any(&h)),
        }),
        ..Default::default()
    }
}

fn nack(l: wire::Listener) -> FieldError {
    Listener::try_from(l).unwrap_err().error
}

#[test]
fn istiod_outbound_client_listener() {
    let l = Listener::try_from(client(outbound_hcm())).unwrap();
    assert_eq!(l.name, OUTBOUND);
    let h = l.client().expect("client listener");
    assert_eq!(h.rds_name(), Some(OUTBOUND_ROUTE));
    let names: Vec<_> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["envoy.filters.http.fault", "envoy.filters.http.router"]
    );
    assert!(matches!(h.http_filters[0].config, FilterConfig::Fault(_)));
    assert_eq!(h.max_stream_duration, None);
    assert_eq!(
        l.route_names().into_iter().collect::<Vec<_>>(),
        [OUTBOUND_ROUTE]
    );
}

#[test]
fn via_resource_decode() {
    let any = to_any(ResourceType::Listener.type_url(), &client(outbound_hcm()));
    let (name, l) = crate::resource::decode::<Listener>(&any).unwrap();
    assert_eq!(name, OUTBOUND);
    assert!(l.client().is_some());
}

#[test]
fn api_listener_must_hold_an_hcm() {
    let mut l = client(outbound_hcm());
    l.api_listener.as_mut().unwrap().api_listener =
        Some(any_of("com.example.Other", &protobuf::Empty {}));
    let e = nack(l);
    assert_eq!(e.field, "api_listener.api_listener");
    let mut l = client(outbound_hcm());
    l.api_listener.as_mut().unwrap().api_listener = None;
    assert_eq!(nack(l).field, "api_listener.api_listener");
    let mut l = client(outbound_hcm());
    l.api_listener.as_mut().unwrap().api_listener = Some(protobuf::Any {
        type_url: format!("type.googleapis.com/{HCM_TYPE}"),
        value: vec![0xff; 3],
    });
    assert_eq!(nack(l).field, "api_listener.api_listener");
}

#[test]
fn rds_config_source_must_be_ads_or_self() {
    let with_source = |s: Option<ConfigSourceSpecifier>| {
        client(hcm::HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(hcm::Rds {
                config_source: Some(core::ConfigSource {
                    config_source_specifier: s,
                    ..Default::default()
                }),
                route_config_name: "r".into(),
            })),
            ..outbound_hcm()
        })
    };
    let e = nack(with_source(Some(ConfigSourceSpecifier::PathConfigSource(
        Default::default(),
    ))));
    assert_eq!(e.field, "api_listener.api_listener.rds.config_source");
    assert_eq!(
        nack(with_source(None)).field,
        "api_listener.api_listener.rds.config_source"
    );
    let l = Listener::try_from(with_source(Some(ConfigSourceSpecifier::Self_(
        Default::default(),
    ))))
    .unwrap();
    assert_eq!(l.client().unwrap().rds_name(), Some("r"));
}

#[test]
fn rds_name_required() {
    let e = nack(client(hcm::HttpConnectionManager {
        route_specifier: rds(""),
        ..outbound_hcm()
    }));
    assert_eq!(e.field, "api_listener.api_listener.rds.route_config_name");
}

#[test]
fn scoped_routes_and_missing_routes_rejected() {
    let e = nack(client(hcm::HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::ScopedRoutes(Default::default())),
        ..outbound_hcm()
    }));
    assert_eq!(e.field, "api_listener.api_listener.scoped_routes");
    let e = nack(client(hcm::HttpConnectionManager {
        route_specifier: None,
        ..outbound_hcm()
    }));
    assert_eq!(e.field, "api_listener.api_listener.route_specifier");
}

#[test]
fn max_stream_duration_zero_means_none() {
    let with = |seconds| {
        let h = hcm::HttpConnectionManager {
            common_http_protocol_options: Some(core::HttpProtocolOptions {
                max_stream_duration: Some(protobuf::Duration { seconds, nanos: 0 }),
                ..Default::default()
            }),
            ..outbound_hcm()
        };
        Listener::try_from(client(h)).map(|l| l.client().unwrap().max_stream_duration)
    };
    assert_eq!(with(0).unwrap(), None);
    assert_eq!(with(5).unwrap(), Some(Duration::from_secs(5)));
    assert_eq!(
        with(-1).unwrap_err().error.field,
        "api_listener.api_listener.common_http_protocol_options.max_stream_duration"
    );
}

#[test]
fn filter_errors_carry_the_hcm_path() {
    let mut h = outbound_hcm();
    h.http_filters[1].name = h.http_filters[0].name.clone();
    assert_eq!(
        nack(client(h)).field,
        "api_listener.api_listener.http_filters[1]"
    );
    let mut h = outbound_hcm();
    h.http_filters.reverse();
    assert_eq!(
        nack(client(h)).field,
        "api_listener.api_listener.http_filters[0]"
    );
    let mut h = outbound_hcm();
    h.http_filters.clear();
    assert_eq!(
        nack(client(h)).field,
        "api_listener.api_listener.http_filters"
    );
}

#[test]
fn xff_hops_without_rbac_are_fine_on_clients() {
    let h = hcm::HttpConnectionManager {
        xff_num_trusted_hops: 2,
        ..outbound_hcm()
    };
    assert!(Listener::try_from(client(h)).is_ok());
}

mod server;
