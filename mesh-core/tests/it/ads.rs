//! The ADS protocol as a server sees it: request sequences for ACK, NACK
//! and partial NACK, deletion and A88 data errors, the does-not-exist timer,
//! reconnection.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::resources::{any, client_listener};
use mesh_core::xds::{AnyResource, ResourceStatus};

use super::support::{client, wait_until};

const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// A listener that fails validation: an HCM with no http_filters.
fn invalid_listener(name: &str) -> lds::Listener {
    let mut l = client_listener(name, "route");
    let hcm_any = l
        .api_listener
        .as_mut()
        .unwrap()
        .api_listener
        .as_mut()
        .unwrap();
    let mut hcm: envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager =
        prost::Message::decode(hcm_any.value.as_slice()).unwrap();
    hcm.http_filters.clear();
    hcm_any.value = prost::Message::encode_to_vec(&hcm);
    l
}

/// A server holding listener "a", a client with `features`, and a watch
/// on "a" that has received it.
async fn watching_a(
    features: &[&str],
) -> (
    TestAdsServer,
    mesh_core::xds::XdsClient,
    mesh_core::xds::ResourceWatch,
) {
    let server = TestAdsServer::start().await;
    server.set_resources(LDS, vec![any(&client_listener("a", "route-a"))]);
    let client = client(&server, features);
    let mut w = client.watch(ResourceType::Listener, "a");
    wait_until(&mut w, |u| u.data.is_some()).await;
    (server, client, w)
}

async fn lds_requests(server: &TestAdsServer, n: usize) -> Vec<DiscoveryRequest> {
    server
        .wait_for_request(Duration::from_secs(5), |_| {
            server.requests_for(LDS).len() >= n
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "expected {n} LDS requests, got {:?}",
                server.requests_for(LDS)
            )
        });
    server.requests_for(LDS)
}

#[tokio::test]
async fn ack_sequence_carries_node_version_and_nonce() {
    let (server, client, _w) = watching_a(&[]).await;

    let reqs = lds_requests(&server, 2).await;
    let first = &reqs[0];
    assert_eq!(
        first.node.as_ref().unwrap().id,
        "test-node",
        "node on the first request"
    );
    assert_eq!(first.node.as_ref().unwrap().user_agent_name, "mesh");
    assert_eq!(first.resource_names, vec!["a"]);
    assert_eq!(
        (first.version_info.as_str(), first.response_nonce.as_str()),
        ("", "")
    );
    let ack = &reqs[1];
    assert!(ack.node.is_none(), "node only on the first request");
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("1", "1")
    );
    assert!(ack.error_detail.is_none());
    assert_eq!(ack.resource_names, vec!["a"]);

    let status = client.status().await;
    let st = status.resource(ResourceType::Listener, "a").unwrap();
    assert_eq!(st.status, ResourceStatus::Acked);
    assert_eq!(st.version, "1");
    assert!(st.raw.is_some(), "raw bytes kept for the config dump");
}

#[tokio::test]
async fn nack_keeps_the_last_good_resource_and_names_the_field() {
    let (server, client, mut w) = watching_a(&[]).await;
    lds_requests(&server, 2).await;

    server.set_resources(LDS, vec![any(&invalid_listener("a"))]);
    let reqs = lds_requests(&server, 3).await;
    let nack = &reqs[2];
    assert_eq!(
        nack.version_info, "1",
        "a NACK carries the last accepted version"
    );
    assert_eq!(
        nack.response_nonce, "2",
        "and the rejected response's nonce"
    );
    let detail = nack.error_detail.as_ref().expect("error_detail on a NACK");
    assert!(
        detail.message.contains("\"a\""),
        "names the resource: {}",
        detail.message
    );
    assert!(
        detail.message.contains("http_filters"),
        "names the field: {}",
        detail.message
    );

    let u = wait_until(&mut w, |u| u.ambient_error.is_some()).await;
    assert!(u.data.is_some(), "A88: the cached listener stays in use");
    assert!(u.error.is_none());
    let status = client.status().await;
    let st = status.resource(ResourceType::Listener, "a").unwrap();
    assert_eq!(st.status, ResourceStatus::Nacked);
    assert_eq!(
        st.error.as_ref().unwrap().1,
        "2",
        "the rejected version is recorded"
    );
}

#[tokio::test]
async fn partial_nack_keeps_the_valid_resources() {
    let server = TestAdsServer::start().await;
    server.set_resources(
        LDS,
        vec![
            any(&client_listener("good", "r")),
            any(&invalid_listener("bad")),
            any(&client_listener("unrequested", "r")),
        ],
    );
    let client = client(&server, &[]);
    let mut good = client.watch(ResourceType::Listener, "good");
    let mut bad = client.watch(ResourceType::Listener, "bad");
    wait_until(&mut good, |u| u.data.is_some()).await;
    let u = wait_until(&mut bad, |u| u.error.is_some()).await;
    assert!(u.data.is_none());

    // The last LDS request NACKs the response naming only the invalid one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let nack = loop {
        let reqs = server.requests_for(LDS);
        if let Some(r) = reqs.iter().rev().find(|r| r.error_detail.is_some()) {
            break r.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no NACK: {reqs:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let msg = &nack.error_detail.unwrap().message;
    assert!(
        msg.contains("\"bad\"") && !msg.contains("\"good\""),
        "{msg}"
    );
    assert!(
        !msg.contains("unrequested"),
        "unrequested resources are ignored: {msg}"
    );
    assert_eq!(nack.version_info, "", "nothing accepted before");
}

#[tokio::test]
async fn duplicate_names_are_nacked() {
    let server = TestAdsServer::start().await;
    server.set_resources(
        LDS,
        vec![
            any(&client_listener("a", "r1")),
            any(&client_listener("a", "r2")),
        ],
    );
    let client = client(&server, &[]);
    let _w = client.watch(ResourceType::Listener, "a");
    let r = server
        .wait_for_request(Duration::from_secs(5), |r| r.request.error_detail.is_some())
        .await
        .expect("a NACK");
    assert!(
        r.request
            .error_detail
            .unwrap()
            .message
            .contains("duplicate")
    );
}

#[tokio::test]
async fn deletion_keeps_the_cached_resource_by_default() {
    let (server, _client, mut w) = watching_a(&[]).await;
    // LDS is complete state: a response without "a" deletes it.
    server.set_resources(LDS, vec![any(&client_listener("b", "r"))]);
    let u = wait_until(&mut w, |u| u.ambient_error.is_some()).await;
    assert!(
        u.data.is_some(),
        "A88 default: keep serving the cached listener"
    );
    assert!(u.ambient_error.unwrap().contains("deleted"));
}

#[tokio::test]
async fn deletion_drops_the_resource_with_fail_on_data_errors() {
    let (server, client, mut w) = watching_a(&["fail_on_data_errors"]).await;
    server.set_resources(LDS, vec![]);
    let u = wait_until(&mut w, |u| u.error.is_some()).await;
    assert!(u.data.is_none());
    let status = client.status().await;
    assert_eq!(
        status.resource(ResourceType::Listener, "a").unwrap().status,
        ResourceStatus::DoesNotExist
    );
}

#[tokio::test]
async fn ignore_resource_deletion_wins_over_fail_on_data_errors() {
    let (server, _client, mut w) =
        watching_a(&["fail_on_data_errors", "ignore_resource_deletion"]).await;
    server.set_resources(LDS, vec![]);
    let u = wait_until(&mut w, |u| u.ambient_error.is_some()).await;
    assert!(u.data.is_some());
}

#[tokio::test]
async fn invalid_update_drops_the_resource_with_fail_on_data_errors() {
    let (server, _client, mut w) = watching_a(&["fail_on_data_errors"]).await;
    server.set_resources(LDS, vec![any(&invalid_listener("a"))]);
    let u = wait_until(&mut w, |u| u.error.is_some()).await;
    assert!(u.data.is_none());
}

#[tokio::test]
async fn does_not_exist_timer_fires_for_uncached_resources() {
    let server = TestAdsServer::start().await;
    let client = client(&server, &[]);
    let mut w = client.watch(ResourceType::Listener, "missing");
    let u = wait_until(&mut w, |u| u.error.is_some()).await;
    assert!(u.error.unwrap().reason.contains("does not exist"));
    let status = client.status().await;
    assert_eq!(
        status
            .resource(ResourceType::Listener, "missing")
            .unwrap()
            .status,
        ResourceStatus::DoesNotExist
    );
}

#[tokio::test]
async fn transient_timer_reports_timeout() {
    let server = TestAdsServer::start().await;
    let client = client(&server, &["resource_timer_is_transient_error"]);
    let mut w = client.watch(ResourceType::Listener, "missing");
    wait_until(&mut w, |u| u.error.is_some()).await;
    let status = client.status().await;
    assert_eq!(
        status
            .resource(ResourceType::Listener, "missing")
            .unwrap()
            .status,
        ResourceStatus::Timeout
    );
}

#[tokio::test]
async fn timer_does_not_start_without_a_connected_stream() {
    // A port with nothing listening: the request is never sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let bootstrap = mesh_core::bootstrap::Bootstrap::builder()
        .xds_server(addr.to_string())
        .node_id("n")
        .build()
        .unwrap();
    let client =
        mesh_core::xds::XdsClient::with_options(&bootstrap, super::support::fast_options());
    let w = client.watch(ResourceType::Listener, "a");
    tokio::time::sleep(Duration::from_millis(900)).await; // 3× the 300 ms timer
    assert!(
        w.current().error.is_none(),
        "no does-not-exist without a stream"
    );
    let status = client.status().await;
    assert!(!status.connected);
    assert_eq!(
        status.resource(ResourceType::Listener, "a").unwrap().status,
        ResourceStatus::Requested
    );
}

#[tokio::test]
async fn reconnect_resubscribes_and_keeps_serving_the_cache() {
    let server = TestAdsServer::start().await;
    server.set_resources(LDS, vec![any(&client_listener("a", "r"))]);
    let client = client(&server, &[]);
    let mut w = client.watch(ResourceType::Listener, "a");
    let before = wait_until(&mut w, |u| u.data.is_some()).await;
    lds_requests(&server, 2).await;

    server.drop_streams();
    let again = server
        .wait_for_request(Duration::from_secs(5), |r| r.stream == 2)
        .await
        .expect("the client reconnects");
    assert!(
        again.request.node.is_some(),
        "a new stream starts with the node"
    );
    assert_eq!(
        again.request.resource_names,
        vec!["a"],
        "every subscription is resent"
    );
    assert_eq!(again.request.version_info, "1", "with the version it holds");
    // The cache kept serving throughout: the same Arc.
    let now = w.current();
    match (before.data.unwrap(), now.data.unwrap()) {
        (AnyResource::Listener(a), AnyResource::Listener(b)) => {
            assert!(std::sync::Arc::ptr_eq(&a, &b))
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn unsubscribe_sends_the_smaller_name_list() {
    let server = TestAdsServer::start().await;
    server.set_resources(
        LDS,
        vec![
            any(&client_listener("a", "r")),
            any(&client_listener("b", "r")),
        ],
    );
    let client = client(&server, &[]);
    let mut a = client.watch(ResourceType::Listener, "a");
    let b = client.watch(ResourceType::Listener, "b");
    let b2 = client.watch(ResourceType::Listener, "b"); // shared subscription
    wait_until(&mut a, |u| u.data.is_some()).await;
    server
        .wait_for_request(Duration::from_secs(5), |r| {
            r.request.resource_names == ["a", "b"]
        })
        .await
        .expect("both subscribed");
    drop(b);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        server
            .requests_for(LDS)
            .last()
            .unwrap()
            .resource_names
            .contains(&"b".to_owned()),
        "b2 still watches b"
    );
    drop(b2);
    server
        .wait_for_request(Duration::from_secs(5), |r| {
            r.request.resource_names == ["a"]
        })
        .await
        .expect("b unsubscribed once its last watcher went");
}

#[tokio::test]
async fn tls_naming_an_unknown_certificate_provider_is_nacked() {
    use mesh_core::testing::resources::{eds_cluster, with_istio_mutual};
    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    let san = "spiffe://cluster.local/ns/default/sa/echo";
    let server = TestAdsServer::start().await;
    server.set_resources(
        CDS,
        vec![
            any(&with_istio_mutual(eds_cluster("known", ""), "default", san)),
            any(&with_istio_mutual(eds_cluster("unknown", ""), "nope", san)),
        ],
    );
    let mut bootstrap = super::support::bootstrap(&server, &[]);
    bootstrap.certificate_providers.insert(
        "default".into(),
        mesh_core::bootstrap::FileWatcher {
            certificate_file: Some("cert.pem".into()),
            private_key_file: Some("key.pem".into()),
            ca_certificate_file: Some("ca.pem".into()),
            ..Default::default()
        }
        .into(),
    );
    let client =
        mesh_core::xds::XdsClient::with_options(&bootstrap, super::support::fast_options());
    let mut known = client.watch(ResourceType::Cluster, "known");
    let mut unknown = client.watch(ResourceType::Cluster, "unknown");
    wait_until(&mut known, |u| u.data.is_some()).await;
    let u = wait_until(&mut unknown, |u| u.error.is_some()).await;
    let reason = u.error.unwrap().reason;
    assert!(
        reason.contains("\"nope\"") && reason.contains("certificate_providers"),
        "{reason}"
    );
}

/// A process may run runtimes one after another (tests do). A connection
/// pooled by an earlier runtime is dead once it shuts down; a later client
/// of a server at the same address must not inherit it.
#[test]
fn a_later_runtime_reaches_a_server_at_an_address_an_earlier_one_used() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let addr = runtime().block_on(async {
        let server = TestAdsServer::start().await;
        server.set_resources(LDS, vec![any(&client_listener("a", "route-a"))]);
        let client = client(&server, &[]);
        let mut w = client.watch(ResourceType::Listener, "a");
        wait_until(&mut w, |u| u.data.is_some()).await;
        server.local_addr()
    });
    runtime().block_on(async {
        // The same address again (the OS reuses ports; here on purpose).
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let server = TestAdsServer::start_on(listener).await;
        server.set_resources(LDS, vec![any(&client_listener("a", "route-a"))]);
        let client = client(&server, &[]);
        let mut w = client.watch(ResourceType::Listener, "a");
        wait_until(&mut w, |u| u.data.is_some()).await;
    });
}
