//! Compiled policies: filter override precedence, rate-limit buckets,
//! timeouts, retries and hash policies.

use super::*;

fn abort_with(code: tonic::Code) -> FilterConfig {
    FilterConfig::Fault(FaultConfig {
        delay: None,
        abort: Some(FaultAbort {
            kind: FaultAbortKind::Grpc(code),
            percentage: Fraction::ALWAYS,
        }),
        max_active_faults: None,
        headers: Vec::new(),
    })
}

fn fault_code(d: &RouteDecision) -> Option<tonic::Code> {
    match d.route.fault.as_ref()?.abort.as_ref()?.kind {
        FaultAbortKind::Grpc(c) => Some(c),
        _ => None,
    }
}

fn overrides(name: &str, config: FilterConfig) -> BTreeMap<String, FilterConfig> {
    BTreeMap::from([(name.to_owned(), config)])
}

#[test]
fn filter_overrides_cluster_weight_over_route_over_virtual_host() {
    use tonic::Code;
    let mut by_route = fwd("by-route", path("/route"), "a");
    by_route.typed_per_filter_config = overrides("fault", abort_with(Code::Aborted));
    let mut by_weight = route(
        "by-weight",
        path("/weight"),
        RouteAction::Forward(weighted(vec![(
            "a",
            1,
            overrides("fault", abort_with(Code::DataLoss)),
        )])),
    );
    by_weight.typed_per_filter_config = overrides("fault", abort_with(Code::Aborted));
    let mut disabled = fwd("disabled", path("/disabled"), "a");
    disabled.typed_per_filter_config = overrides("fault", FilterConfig::Disabled);
    let mut vh = vhost(
        "vh",
        &["*"],
        vec![
            by_route,
            by_weight,
            disabled,
            fwd("by-vhost", RouteMatch::prefix("/"), "a"),
        ],
    );
    vh.typed_per_filter_config = overrides("fault", abort_with(Code::Internal));
    let top = abort_with(Code::Unknown);
    let config = config_with(vec![vh], 0, vec![filter("fault", top)], None);
    let table = compile(&config, &["a"]);
    let h = HeaderMap::new();
    let code = |p: &str| fault_code(&select(&table, p, &h).unwrap());
    assert_eq!(code("/weight"), Some(Code::DataLoss), "cluster weight wins");
    assert_eq!(
        code("/route"),
        Some(Code::Aborted),
        "route beats virtual host"
    );
    assert_eq!(
        code("/other"),
        Some(Code::Internal),
        "virtual host beats the HCM"
    );
    assert_eq!(code("/disabled"), None, "disabled per route");

    // Without overrides the HCM's config applies, and a fault config that
    // injects nothing (istiod's default) compiles to no fault at all.
    let config = config_with(
        vec![vhost(
            "vh",
            &["*"],
            vec![fwd("r", RouteMatch::prefix("/"), "a")],
        )],
        0,
        vec![filter("fault", abort_with(Code::Unknown))],
        None,
    );
    let table = compile(&config, &["a"]);
    assert_eq!(
        fault_code(&select(&table, "/", &h).unwrap()),
        Some(Code::Unknown)
    );
    let empty = FilterConfig::Fault(FaultConfig {
        delay: None,
        abort: None,
        max_active_faults: None,
        headers: Vec::new(),
    });
    let config = config_with(
        vec![vhost(
            "vh",
            &["*"],
            vec![fwd("r", RouteMatch::prefix("/"), "a")],
        )],
        0,
        vec![filter("fault", empty)],
        None,
    );
    let table = compile(&config, &["a"]);
    assert!(select(&table, "/", &h).unwrap().route.fault.is_none());
}

#[test]
fn disabled_top_level_filter_runs_only_where_overridden() {
    let mut f = filter("fault", abort_with(tonic::Code::Unknown));
    f.disabled = true;
    let mut on = fwd("on", path("/on"), "a");
    on.typed_per_filter_config = overrides("fault", abort_with(tonic::Code::Aborted));
    let config = config_with(
        vec![vhost(
            "vh",
            &["*"],
            vec![on, fwd("off", RouteMatch::prefix("/"), "a")],
        )],
        0,
        vec![f],
        None,
    );
    let table = compile(&config, &["a"]);
    let h = HeaderMap::new();
    assert_eq!(
        fault_code(&select(&table, "/on", &h).unwrap()),
        Some(tonic::Code::Aborted)
    );
    assert!(select(&table, "/off", &h).unwrap().route.fault.is_none());
}

fn limit(max_tokens: u32) -> FilterConfig {
    FilterConfig::LocalRateLimit(LocalRateLimit {
        stat_prefix: "rl".into(),
        token_bucket: Some(TokenBucket {
            max_tokens,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(1),
        }),
        filter_enabled: Fraction::ALWAYS,
        filter_enforced: Fraction::ALWAYS,
        status: 429,
        rate_limited_as_resource_exhausted: false,
    })
}

#[tokio::test]
async fn rate_limit_buckets_follow_their_config_and_survive_recompiles() {
    let mut own = fwd("own", path("/own"), "a");
    own.typed_per_filter_config = overrides("rl", limit(5));
    let routes = vec![
        own,
        fwd("r1", path("/r1"), "a"),
        fwd("r2", RouteMatch::prefix("/"), "b"),
    ];
    let config = config_with(
        vec![vhost("vh", &["*"], routes)],
        0,
        vec![filter("rl", limit(10))],
        None,
    );
    let first = compile(&config, &["a", "b"]);
    let h = HeaderMap::new();
    let bucket =
        |t: &RouteTable, p: &str| select(t, p, &h).unwrap().route.rate_limit.clone().unwrap();
    assert!(
        Arc::ptr_eq(&bucket(&first, "/r1"), &bucket(&first, "/r2")),
        "HCM bucket shared"
    );
    assert!(!Arc::ptr_eq(
        &bucket(&first, "/own"),
        &bucket(&first, "/r1")
    ));
    assert_eq!(
        bucket(&first, "/own")
            .config()
            .token_bucket
            .unwrap()
            .max_tokens,
        5
    );
    // Same snapshot recompiled (say, after an EDS update): same buckets.
    let second = RouteTable::compile(
        &config,
        HostSelection::PerChannel,
        &lookup(&["a", "b"]),
        Some(&first),
    );
    assert!(Arc::ptr_eq(
        &bucket(&first, "/own"),
        &bucket(&second, "/own")
    ));
    assert!(Arc::ptr_eq(&bucket(&first, "/r1"), &bucket(&second, "/r1")));
}

#[test]
fn timeouts_retry_and_hash_policy_compile_into_the_policy() {
    let mut action = forward("a");
    action.max_stream_duration = Some(DurationCap::Max(Duration::from_secs(3)));
    action.grpc_timeout_header_max = Some(DurationCap::Unlimited);
    action.hash_policy = vec![HashPolicy {
        kind: HashPolicyKind::Header {
            name: "x-user".into(),
            regex_rewrite: None,
        },
        terminal: false,
    }];
    let mut unlimited = forward("a");
    unlimited.max_stream_duration = Some(DurationCap::Unlimited);
    let config = config_with(
        vec![vhost(
            "vh",
            &["*"],
            vec![
                route("own", path("/own"), RouteAction::Forward(action)),
                route("zero", path("/zero"), RouteAction::Forward(unlimited)),
                fwd("hcm", RouteMatch::prefix("/"), "a"),
            ],
        )],
        0,
        Vec::new(),
        Some(Duration::from_secs(9)),
    );
    let table = compile(&config, &["a"]);
    let mut h = HeaderMap::new();
    h.insert("x-user", "alice".parse().unwrap());
    let own = select(&table, "/own", &h).unwrap();
    assert_eq!(own.route.max_stream_duration, Some(Duration::from_secs(3)));
    assert_eq!(
        own.route.grpc_timeout_header_max,
        Some(DurationCap::Unlimited)
    );
    assert_eq!(own.hash, Some(xxhash_rust::xxh64::xxh64(b"alice", 0)));
    let zero = select(&table, "/zero", &h).unwrap();
    assert_eq!(zero.route.max_stream_duration, None, "0s means no limit");
    let hcm = select(&table, "/x", &h).unwrap();
    assert_eq!(hcm.route.max_stream_duration, Some(Duration::from_secs(9)));
    assert_eq!(hcm.hash, None, "no hash policy, no hash");
    assert_eq!(hcm.route.name, "hcm");
}
