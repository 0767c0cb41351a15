//! Route layer tests: matching order, headers, regex, case, runtime
//! fractions, weighted picks, filter override precedence, hash policy,
//! failures, per-request hosts and waiting for the first config.

mod policy;
mod service;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, Request};
use mesh_core::resource::common::Fraction;
use mesh_core::resource::filter::{
    FaultAbort, FaultAbortKind, FaultConfig, FilterConfig, LocalRateLimit, TokenBucket,
};
use mesh_core::resource::matcher::{FullRegex, HeaderMatch, HeaderMatcher, StringMatcher};
use mesh_core::resource::route::{
    DurationCap, HashPolicy, HashPolicyKind, PathMatch, RouteAction, RouteMatch,
};
use tower::{Service, ServiceExt};

use super::testing::*;
use super::*;
use crate::context::RouteDecision;

fn select(table: &RouteTable, path: &str, headers: &HeaderMap) -> Result<RouteDecision, String> {
    match table.select(None, path, headers, &RandomSource::seeded(1), 0) {
        Ok(Selected::Forward(d)) => Ok(d),
        Ok(Selected::Local) => Err("local".into()),
        Err(e) => Err(e.into_owned()),
    }
}

fn cluster_of(table: &RouteTable, path: &str, headers: &HeaderMap) -> String {
    select(table, path, headers)
        .unwrap()
        .cluster
        .name
        .to_string()
}

fn compile(config: &Arc<mesh_core::watch::ClientConfig>, names: &[&str]) -> RouteTable {
    RouteTable::compile(config, HostSelection::PerChannel, &lookup(names), None)
}

fn fwd(name: &str, m: RouteMatch, cluster: &str) -> mesh_core::resource::route::Route {
    route(name, m, RouteAction::Forward(forward(cluster)))
}

fn path(p: &str) -> RouteMatch {
    RouteMatch {
        path: PathMatch::Path(p.into()),
        ..RouteMatch::prefix("")
    }
}

#[test]
fn first_matching_route_wins() {
    let config = config(vec![
        fwd("exact", path("/svc.S/Exact"), "a"),
        fwd("svc", RouteMatch::prefix("/svc.S/"), "b"),
        fwd("shadowed", path("/svc.S/Other"), "never"),
        fwd("default", RouteMatch::prefix(""), "c"),
    ]);
    let table = compile(&config, &["a", "b", "c", "never"]);
    let h = HeaderMap::new();
    assert_eq!(cluster_of(&table, "/svc.S/Exact", &h), "a");
    assert_eq!(
        cluster_of(&table, "/svc.S/Other", &h),
        "b",
        "earlier prefix wins"
    );
    assert_eq!(cluster_of(&table, "/other.O/M", &h), "c");
    let d = select(&table, "/svc.S/Exact", &h).unwrap();
    assert_eq!(d.route.name, "exact");
}

#[test]
fn headers_regex_and_case_sensitivity() {
    let header = |name: &str, value: &str| HeaderMatcher {
        name: name.into(),
        matcher: HeaderMatch::String(StringMatcher::exact(value)),
        invert: false,
        treat_missing_as_empty: false,
    };
    let config = config(vec![
        fwd(
            "canary",
            RouteMatch {
                headers: vec![header("x-canary", "true")],
                ..RouteMatch::prefix("/")
            },
            "canary",
        ),
        fwd(
            "regex",
            RouteMatch {
                path: PathMatch::Regex(FullRegex::new("/echo\\.Echo/(Unary|Stream)Call").unwrap()),
                ..RouteMatch::prefix("")
            },
            "regex",
        ),
        fwd(
            "nocase",
            RouteMatch {
                case_sensitive: false,
                ..RouteMatch::prefix("/Admin.")
            },
            "admin",
        ),
        fwd("default", RouteMatch::prefix("/"), "default"),
    ]);
    let table = compile(&config, &["canary", "regex", "admin", "default"]);
    let mut h = HeaderMap::new();
    assert_eq!(cluster_of(&table, "/echo.Echo/UnaryCall", &h), "regex");
    assert_eq!(cluster_of(&table, "/echo.Echo/OtherCall", &h), "default");
    assert_eq!(
        cluster_of(&table, "/ECHO.Echo/UnaryCall", &h),
        "default",
        "regexes are case-sensitive"
    );
    assert_eq!(cluster_of(&table, "/admin.A/Get", &h), "admin");
    assert_eq!(cluster_of(&table, "/ADMIN.A/Get", &h), "admin");
    h.insert("x-canary", "true".parse().unwrap());
    assert_eq!(cluster_of(&table, "/echo.Echo/UnaryCall", &h), "canary");
    h.insert("x-canary", "false".parse().unwrap());
    assert_eq!(cluster_of(&table, "/echo.Echo/UnaryCall", &h), "regex");
}

#[test]
fn runtime_fraction_matches_its_share() {
    let config = config(vec![
        fwd(
            "quarter",
            RouteMatch {
                runtime_fraction: Some(Fraction::from_ratio(25, 100)),
                ..RouteMatch::prefix("/")
            },
            "a",
        ),
        fwd("rest", RouteMatch::prefix("/"), "b"),
    ]);
    let table = compile(&config, &["a", "b"]);
    let rng = RandomSource::seeded(42);
    let h = HeaderMap::new();
    let n = 20_000;
    let hits = (0..n)
        .filter(|_| match table.select(None, "/x", &h, &rng, 0) {
            Ok(Selected::Forward(d)) => &*d.cluster.name == "a",
            _ => panic!("routed"),
        })
        .count();
    // 25% of 20,000: ±1.5 points is over 4 standard deviations.
    let share = hits as f64 / n as f64;
    assert!((0.235..=0.265).contains(&share), "share {share}");
}

#[test]
fn weighted_split_follows_weights() {
    let config = config(vec![route(
        "split",
        RouteMatch::prefix("/"),
        RouteAction::Forward(weighted(vec![
            ("a", 20, BTreeMap::new()),
            ("b", 80, BTreeMap::new()),
        ])),
    )]);
    let table = compile(&config, &["a", "b"]);
    let rng = RandomSource::seeded(7);
    let h = HeaderMap::new();
    let n = 10_000;
    let a = (0..n)
        .filter(|_| match table.select(None, "/x", &h, &rng, 0) {
            Ok(Selected::Forward(d)) => &*d.cluster.name == "a",
            _ => panic!("routed"),
        })
        .count();
    // 20% of 10,000: ±2 points is 5 standard deviations.
    assert!((1_800..=2_200).contains(&a), "{a} of {n} to a");
}

#[test]
fn failures_say_why() {
    let mut config = (*config(vec![
        route(
            "redirect",
            path("/redirect"),
            RouteAction::Unsupported("redirect action".into()),
        ),
        route("local", path("/local"), RouteAction::NonForwarding),
        fwd("broken", path("/broken"), "broken"),
        fwd("missing", path("/missing"), "missing"),
        fwd("", path("/unnamed"), "a"),
    ]))
    .clone();
    config.clusters.insert(
        "broken".into(),
        Err("cluster broken: CDS resource does not exist".into()),
    );
    let config = Arc::new(config);
    let table = compile(&config, &["a", "broken"]);
    let h = HeaderMap::new();
    let err = |p: &str| select(&table, p, &h).unwrap_err();
    assert_eq!(
        err("/redirect"),
        "route redirect has an unsupported action: redirect action"
    );
    assert!(
        err("/local").contains("non-forwarding"),
        "{}",
        err("/local")
    );
    assert_eq!(
        err("/broken"),
        "cluster broken: CDS resource does not exist"
    );
    assert_eq!(err("/missing"), "cluster missing is not resolved");
    assert!(
        err("/nothing").starts_with("no route matched"),
        "{}",
        err("/nothing")
    );
    assert_eq!(
        select(&table, "/unnamed", &h).unwrap().route.name,
        "vh/routes[4]"
    );
}

#[test]
fn per_request_tables_choose_the_host_by_authority() {
    let config = config_with(
        vec![
            vhost(
                "echo",
                &["echo:7070", "echo"],
                vec![fwd("e", RouteMatch::prefix("/"), "echo")],
            ),
            vhost(
                "admin",
                &["admin.*"],
                vec![
                    route(
                        "srv",
                        RouteMatch::prefix("/local"),
                        RouteAction::NonForwarding,
                    ),
                    fwd("a", RouteMatch::prefix("/"), "admin"),
                ],
            ),
        ],
        0,
        Vec::new(),
        None,
    );
    let table = RouteTable::compile(
        &config,
        HostSelection::PerRequest,
        &lookup(&["echo", "admin"]),
        None,
    );
    let rng = RandomSource::seeded(1);
    let h = HeaderMap::new();
    let pick =
        |authority: Option<&str>, path: &str| match table.select(authority, path, &h, &rng, 0) {
            Ok(Selected::Forward(d)) => d.cluster.name.to_string(),
            Ok(Selected::Local) => "local".into(),
            Err(e) => e.into_owned(),
        };
    assert_eq!(pick(Some("echo:7070"), "/x"), "echo");
    assert_eq!(pick(Some("ECHO"), "/x"), "echo");
    assert_eq!(pick(Some("admin.example"), "/x"), "admin");
    assert_eq!(pick(Some("admin.example"), "/local/x"), "local");
    assert!(pick(Some("other"), "/x").starts_with("no virtual host"));
    assert!(pick(None, "/x").contains("no :authority"));
}
