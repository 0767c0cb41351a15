use super::*;
use crate::resource::to_any;
use envoy_types::pb::envoy::config::core::v3::ExtensionConfigSource;
use envoy_types::pb::envoy::config::rbac::v3 as policy;
use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router_wire;
use envoy_types::pb::google::protobuf;

pub(crate) fn any_of<M: Message>(name: &str, m: &M) -> Any {
    to_any(&format!("type.googleapis.com/{name}"), m)
}

pub(crate) fn router() -> hcm::HttpFilter {
    filter(
        "envoy.filters.http.router",
        any_of(names::ROUTER, &router_wire::Router::default()),
    )
}

pub(crate) fn filter(name: &str, any: Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    }
}

pub(crate) fn fault() -> hcm::HttpFilter {
    filter(
        "envoy.filters.http.fault",
        any_of(names::FAULT, &fault_wire::HttpFault::default()),
    )
}

fn unknown(name: &str, optional: bool) -> hcm::HttpFilter {
    hcm::HttpFilter {
        is_optional: optional,
        ..filter(name, any_of("com.example.Custom", &protobuf::Empty {}))
    }
}

fn typed_struct(inner: &str) -> Any {
    any_of(
        names::TYPED_STRUCT,
        &TypedStruct {
            type_url: format!("type.googleapis.com/{inner}"),
            value: None,
        },
    )
}

fn err(filters: &[hcm::HttpFilter], side: FilterSide) -> FieldError {
    parse_http_filters(filters, side).unwrap_err()
}

#[test]
fn fault_then_router() {
    let f = parse_http_filters(&[fault(), router()], FilterSide::Client).unwrap();
    assert_eq!(f.len(), 2);
    assert!(matches!(f[0].config, FilterConfig::Fault(_)));
    assert!(matches!(f[1].config, FilterConfig::Router));
}

#[test]
fn at_least_one_filter() {
    assert_eq!(err(&[], FilterSide::Client).field, "http_filters");
}

#[test]
fn names_unique() {
    let mut second = router();
    second.name = "envoy.filters.http.fault".into();
    let e = err(&[fault(), second], FilterSide::Client);
    assert_eq!(e.field, "http_filters[1]");
    assert!(e.reason.contains("duplicate"), "{e}");
}

#[test]
fn empty_name_rejected() {
    let mut r = router();
    r.name.clear();
    assert_eq!(err(&[r], FilterSide::Client).field, "http_filters[0].name");
}

#[test]
fn router_required_last() {
    let e = err(&[fault()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0]");
    assert!(e.reason.contains("must be the router"), "{e}");
    let e = err(&[router(), fault()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0]");
    assert!(e.reason.contains("must be the last"), "{e}");
}

#[test]
fn unknown_filter_nacked_unless_optional() {
    let e = err(&[unknown("custom", false), router()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0]");
    assert!(e.reason.contains("com.example.Custom"), "{e}");
    let f = parse_http_filters(&[unknown("custom", true), router()], FilterSide::Client).unwrap();
    assert!(
        matches!(&f[0].config, FilterConfig::Ignored { type_url } if type_url.ends_with("Custom"))
    );
    assert!(!f[0].is_active());
    // An ignored optional filter after the router does not break "router last".
    let f = parse_http_filters(&[router(), unknown("custom", true)], FilterSide::Client).unwrap();
    assert_eq!(f.len(), 2);
    let e = err(&[unknown("custom", true)], FilterSide::Client);
    assert_eq!(e.field, "http_filters");
}

#[test]
fn typed_struct_is_unknown_except_router() {
    let e = err(
        &[filter("f", typed_struct(names::FAULT)), router()],
        FilterSide::Client,
    );
    assert_eq!(e.field, "http_filters[0]");
    assert!(e.reason.contains("TypedStruct"), "{e}");
    let mut optional = filter("f", typed_struct("com.example.Lua"));
    optional.is_optional = true;
    let f = parse_http_filters(&[optional, router()], FilterSide::Client).unwrap();
    assert!(
        matches!(&f[0].config, FilterConfig::Ignored { type_url } if type_url.ends_with("Lua"))
    );
    let f = parse_http_filters(
        &[filter("r", typed_struct(names::ROUTER))],
        FilterSide::Client,
    )
    .unwrap();
    assert!(f[0].config.is_terminal());
}

#[test]
fn config_discovery_nacked_unless_optional() {
    let mut ecds = hcm::HttpFilter {
        name: "ecds".into(),
        config_type: Some(hcm::http_filter::ConfigType::ConfigDiscovery(
            ExtensionConfigSource::default(),
        )),
        ..Default::default()
    };
    let e = err(&[ecds.clone(), router()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0].config_discovery");
    ecds.is_optional = true;
    let f = parse_http_filters(&[ecds, router()], FilterSide::Client).unwrap();
    assert!(!f[0].is_active());
}

#[test]
fn missing_typed_config_rejected() {
    let f = hcm::HttpFilter {
        name: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        err(&[f, router()], FilterSide::Client).field,
        "http_filters[0]"
    );
}

#[test]
fn registry_differs_by_side() {
    let rbac = filter(
        "envoy.filters.http.rbac",
        any_of(names::RBAC, &rbac_wire::Rbac::default()),
    );
    let e = err(&[rbac.clone(), router()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0]");
    assert!(e.reason.contains("client"), "{e}");
    assert!(parse_http_filters(&[rbac.clone(), router()], FilterSide::Server).is_ok());
    let e = err(&[fault(), router()], FilterSide::Server);
    assert_eq!(e.field, "http_filters[0]");
    let mut optional = rbac;
    optional.is_optional = true;
    let f = parse_http_filters(&[optional, router()], FilterSide::Client).unwrap();
    assert!(!f[0].is_active());
}

#[test]
fn per_route_types_rejected_at_top_level() {
    let per_route = filter(
        "rbac",
        any_of(names::RBAC_PER_ROUTE, &rbac_wire::RbacPerRoute::default()),
    );
    let e = err(&[per_route, router()], FilterSide::Server);
    assert_eq!(e.field, "http_filters[0].typed_config");
}

#[test]
fn filter_config_errors_nest_under_typed_config() {
    let bad = fault_wire::HttpFault {
        abort: Some(fault_wire::FaultAbort {
            error_type: Some(fault_wire::fault_abort::ErrorType::HttpStatus(700)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = err(
        &[filter("fault", any_of(names::FAULT, &bad)), router()],
        FilterSide::Client,
    );
    assert_eq!(e.field, "http_filters[0].typed_config.abort.http_status");
    let garbage = Any {
        type_url: format!("type.googleapis.com/{}", names::FAULT),
        value: vec![0xff, 0xff, 0xff],
    };
    let e = err(&[filter("fault", garbage), router()], FilterSide::Client);
    assert_eq!(e.field, "http_filters[0].typed_config");
}

#[test]
fn stateful_session_first_not_optional_accepted() {
    let s = filter(
        "envoy.filters.http.stateful_session",
        any_of(names::STATEFUL_SESSION, &session::tests::session("sticky")),
    );
    let f = parse_http_filters(&[s, fault(), router()], FilterSide::Client).unwrap();
    assert!(matches!(&f[0].config, FilterConfig::StatefulSession(s) if s.cookie.is_some()));
}

const FIELD: &str = "virtual_hosts[0].typed_per_filter_config[\"f\"]";

fn wrapper(config: Option<Any>, is_optional: bool, disabled: bool) -> Any {
    any_of(
        names::ROUTE_FILTER_CONFIG,
        &route::FilterConfig {
            config,
            is_optional,
            disabled,
        },
    )
}

#[test]
fn override_direct_and_wrapped() {
    let fault = any_of(names::FAULT, &fault_wire::HttpFault::default());
    let c = parse_filter_override(&fault, FIELD).unwrap();
    assert!(matches!(c, Some(FilterConfig::Fault(_))));
    let c = parse_filter_override(&wrapper(Some(fault), false, false), FIELD).unwrap();
    assert!(matches!(c, Some(FilterConfig::Fault(_))));
}

#[test]
fn override_disabled() {
    let c = parse_filter_override(&wrapper(None, false, true), FIELD).unwrap();
    assert!(matches!(c, Some(FilterConfig::Disabled)));
    let e = parse_filter_override(&wrapper(None, false, false), FIELD).unwrap_err();
    assert_eq!(e.field, format!("{FIELD}.config"));
}

#[test]
fn override_unknown_optional_or_error() {
    let custom = any_of("com.example.Custom", &protobuf::Empty {});
    let e = parse_filter_override(&custom, FIELD).unwrap_err();
    assert_eq!(e.field, FIELD);
    assert!(
        e.reason.contains("type.googleapis.com/com.example.Custom"),
        "{e}"
    );
    assert!(
        parse_filter_override(&wrapper(Some(custom.clone()), true, false), FIELD)
            .unwrap()
            .is_none()
    );
    let e = parse_filter_override(&wrapper(Some(custom), false, false), FIELD).unwrap_err();
    assert_eq!(e.field, format!("{FIELD}.config"));
    let ts = typed_struct(names::FAULT);
    assert!(parse_filter_override(&ts, FIELD).is_err());
    assert!(
        parse_filter_override(&wrapper(Some(ts), true, false), FIELD)
            .unwrap()
            .is_none()
    );
}

#[test]
fn override_uses_per_route_types() {
    let per_route = rbac_wire::RbacPerRoute {
        rbac: Some(rbac_wire::Rbac {
            rules: Some(policy::Rbac::default()),
            ..Default::default()
        }),
    };
    let c = parse_filter_override(&any_of(names::RBAC_PER_ROUTE, &per_route), FIELD).unwrap();
    assert!(matches!(c, Some(FilterConfig::RbacPerRoute(p)) if p.rbac.is_some()));
    let c = parse_filter_override(
        &any_of(names::RBAC_PER_ROUTE, &rbac_wire::RbacPerRoute::default()),
        FIELD,
    )
    .unwrap();
    assert!(matches!(c, Some(FilterConfig::RbacPerRoute(p)) if p.rbac.is_none()));
    for top in [
        any_of(names::RBAC, &rbac_wire::Rbac::default()),
        any_of(
            names::STATEFUL_SESSION,
            &session_wire::StatefulSession::default(),
        ),
        any_of(names::ROUTER, &router_wire::Router::default()),
    ] {
        let e = parse_filter_override(&top, FIELD).unwrap_err();
        assert_eq!(e.field, FIELD, "{}", top.type_url);
    }
    let disabled = session_wire::StatefulSessionPerRoute {
        r#override: Some(session_wire::stateful_session_per_route::Override::Disabled(true)),
    };
    let c = parse_filter_override(&any_of(names::STATEFUL_SESSION_PER_ROUTE, &disabled), FIELD)
        .unwrap();
    assert!(matches!(
        c,
        Some(FilterConfig::StatefulSessionPerRoute(
            StatefulSessionPerRoute::Disabled
        ))
    ));
}

#[test]
fn override_local_ratelimit_needs_bucket() {
    let l = ratelimit_wire::LocalRateLimit {
        stat_prefix: "rl".into(),
        ..Default::default()
    };
    let e = parse_filter_override(&any_of(names::LOCAL_RATELIMIT, &l), FIELD).unwrap_err();
    assert_eq!(e.field, format!("{FIELD}.token_bucket"));
    let top = parse_http_filters(
        &[filter("rl", any_of(names::LOCAL_RATELIMIT, &l)), router()],
        FilterSide::Server,
    )
    .unwrap();
    assert!(matches!(&top[0].config, FilterConfig::LocalRateLimit(l) if l.token_bucket.is_none()));
}
