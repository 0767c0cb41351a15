//! ping_pong, round_robin, traffic_splitting, change_backend_service and
//! backends_restart.

use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use mesh_core::testing::resources::weighted_route;
use mesh_tonic::interop_client::RpcType;
use tonic::Code;

use super::{
    Backends, Client, SERVICE, Xds, cla, completed, count, delta, eds_cluster, eds_name, match_all,
    method_stats, peer, route, to_cluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong() {
    let backends = Backends::start("pp", 4).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let mut client = Client::start_with(&xds.bootstrap, |c| c.fail_on_failed_rpc = true).await;
    client.wait_all_reached(&backends.names()).await;
    // Every RPC of a block succeeds once the config is in.
    let r = client.stats(100, 30).await;
    assert_eq!(r.num_failures, 0, "{r:?}");
    assert_eq!(r.rpcs_by_peer.values().sum::<i32>(), 100, "{r:?}");
    // The accumulated stats agree: UnaryCall only, all OK since then.
    let acc = method_stats(&client.accumulated().await, RpcType::UnaryCall);
    assert!(acc.rpcs_started >= 100, "{acc:?}");
    assert!(count(&acc, Code::Ok) >= 100, "{acc:?}");
    client.assert_no_failed_rpc();

    // CSDS on the stats port reports the channels' xDS client, scoped by
    // the target, with every resource ACKed.
    let dump = client
        .csds
        .clone()
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let [config] = &dump.config[..] else {
        panic!("one client expected: {dump:?}")
    };
    assert_eq!(config.client_scope, format!("xds:///{SERVICE}"));
    for name in [
        SERVICE.to_owned(),
        eds_name("cluster-a"),
        "cluster-a".into(),
    ] {
        let c = config
            .generic_xds_configs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {config:?}"));
        assert_eq!(c.client_status, ClientResourceStatus::Acked as i32, "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin() {
    let backends = Backends::start("rr", 4).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;
    client.wait_all_reached(&backends.names()).await;
    // Round robin over 4 endpoints: 100 consecutive RPCs split 25 each
    // (±2 for RPCs completing in another order than sent).
    let r = client
        .stats_until("an even split", 100, |r| r.num_failures == 0)
        .await;
    for name in backends.names() {
        let n = peer(&r, &name);
        assert!((23..=27).contains(&n), "{name}: {n} of 100: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_splitting() {
    let a = Backends::start("split-a", 1).await;
    let b = Backends::start("split-b", 1).await;
    let xds = Xds::start().await;
    xds.clusters(vec![eds_cluster("cluster-a"), eds_cluster("cluster-b")]);
    xds.endpoints(vec![cla("cluster-a", &a.addrs), cla("cluster-b", &b.addrs)]);
    xds.routes(vec![route(match_all(), to_cluster("cluster-a"))]);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;
    client.wait_all_reached(&a.names()).await;
    let r = client.stats(200, 30).await;
    assert_eq!(peer(&r, &a.name(0)), 200, "everything to a first: {r:?}");

    // {a: 20, b: 80}, with `prefix: ""` as other control planes send it.
    let mut split = weighted_route(&[("cluster-a", 20), ("cluster-b", 80)]);
    split.r#match = Some(match_all());
    xds.routes(vec![split]);
    client.wait_all_reached(&[a.name(0), b.name(0)]).await;
    // 1000 RPCs split 20/80 (±5 points).
    let r = client.stats(1000, 60).await;
    let total = r.rpcs_by_peer.values().sum::<i32>();
    assert!(total >= 990, "{r:?}");
    let share_a = f64::from(peer(&r, &a.name(0))) * 100.0 / f64::from(total);
    assert!(
        (15.0..=25.0).contains(&share_a),
        "a got {share_a:.1}%: {r:?}"
    );
    let share_b = f64::from(peer(&r, &b.name(0))) * 100.0 / f64::from(total);
    assert!(
        (75.0..=85.0).contains(&share_b),
        "b got {share_b:.1}%: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_backend_service() {
    let old = Backends::start("old", 2).await;
    let new = Backends::start("new", 2).await;
    let xds = Xds::start().await;
    xds.clusters(vec![eds_cluster("cluster-old"), eds_cluster("cluster-new")]);
    xds.endpoints(vec![
        cla("cluster-old", &old.addrs),
        cla("cluster-new", &new.addrs),
    ]);
    xds.routes(vec![route(match_all(), to_cluster("cluster-old"))]);
    let mut client = Client::start_with(&xds.bootstrap, |c| c.fail_on_failed_rpc = true).await;
    client.wait_all_reached(&old.names()).await;
    let before = method_stats(&client.accumulated().await, RpcType::UnaryCall);

    xds.routes(vec![route(match_all(), to_cluster("cluster-new"))]);
    // Once the new service is in, every RPC goes to it.
    let r = client
        .stats_until("all RPCs to the new service", 100, |r| {
            new.names().iter().map(|n| peer(r, n)).sum::<i32>() == 100
        })
        .await;
    assert!(new.names().iter().all(|n| peer(&r, n) > 0), "{r:?}");
    // And no RPC failed during the switch.
    let during = delta(
        &method_stats(&client.accumulated().await, RpcType::UnaryCall),
        &before,
    );
    assert_eq!(count(&during, Code::Ok), completed(&during), "{during:?}");
    client.assert_no_failed_rpc();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_restart() {
    let mut backends = Backends::start("restart", 4).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;
    client.wait_all_reached(&backends.names()).await;
    let before = client.stats(100, 30).await;
    assert_eq!(before.num_failures, 0, "{before:?}");

    for i in 0..4 {
        backends.stop(i);
    }
    // No RPC succeeds while every backend is down.
    client
        .stats_until("every RPC failing", 100, |r| r.num_failures == 100)
        .await;
    let r = client.stats(50, 30).await;
    assert!(r.rpcs_by_peer.is_empty(), "{r:?}");

    for i in 0..4 {
        backends.restart(i).await;
    }
    client.wait_all_reached(&backends.names()).await;
    // The same distribution as before the restart: an even split.
    let after = client
        .stats_until("recovered", 100, |r| r.num_failures == 0)
        .await;
    for name in backends.names() {
        let (b, a) = (peer(&before, &name), peer(&after, &name));
        assert!((b - a).abs() <= 4, "{name}: {b} before, {a} after");
    }
}
