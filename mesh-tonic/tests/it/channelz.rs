//! channelz (`mesh_tonic::admin::Channelz`) end to end: a
//! `mesh_tonic::Channel` calls an `XdsServer` over loopback (plaintext,
//! then mTLS with istiod-shaped contexts and `file_watcher` providers), and
//! a channelz client reads both sides back: the channel's target, state
//! and call counts, its subchannel and socket, the server, its connection,
//! and on mTLS both sides' certificates.
//!
//! The registry is process-wide and other tests run alongside, so each
//! test finds its own entities: the channel by a target no other test
//! uses, the server by its port.

use std::net::SocketAddr;
use std::time::Duration;

use crate::certs::TestCa;
use crate::security::{CLIENT_ID, PROVIDER, SERVER_ID, Secret, bootstrap, downstream_mtls};
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::resources::{
    any, client_listener, eds_cluster, endpoints, http_filter, inbound_routes, prefix_route,
    route_config, socket_address, type_url, with_istio_mutual,
};
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_tonic::Channel;
use mesh_tonic::admin::Channelz;
use mesh_tonic::server::{ServingMode, XdsServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Endpoint;

use crate::server::{CONVERGE, TEMPLATE};

/// The channelz messages and client, generated from mesh-tonic's proto by
/// its build script (the library keeps its copy private).
#[allow(dead_code, missing_docs, clippy::all)]
mod pb {
    tonic::include_proto!("grpc.channelz.v1");
}

use pb::channel_connectivity_state::State;
use pb::channelz_client::ChannelzClient;

fn server_listener(name: &str, addr: SocketAddr, mtls: bool) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            inbound_routes(),
        )),
        http_filters: vec![http_filter("envoy.filters.http.router", &Router::default())],
        ..Default::default()
    };
    listener::Listener {
        name: name.into(),
        address: Some(socket_address(addr)),
        filter_chains: vec![listener::FilterChain {
            name: "inbound".into(),
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            transport_socket: mtls.then(downstream_mtls),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An XdsServer, a channel to it (target `target`) and a channelz client.
struct Setup {
    _ads: TestAdsServer,
    server_addr: SocketAddr,
    rpc: TestServiceClient<Channel>,
    channelz: ChannelzClient<tonic::transport::Channel>,
    _stop: oneshot::Sender<()>,
}

/// Certificates for an mTLS setup: the server's and the client's.
struct Mtls {
    server: Secret,
    client: Secret,
}

impl Setup {
    async fn start(target: &str, mtls: Option<&Mtls>) -> Setup {
        let ads = TestAdsServer::start().await;
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = tcp.local_addr().unwrap();
        let name = TEMPLATE.replace("%s", &server_addr.to_string());
        let rc = format!("{target}-routes");
        ads.set_resources(
            type_url(ResourceType::Listener),
            vec![
                any(&server_listener(&name, server_addr, mtls.is_some())),
                any(&client_listener(target, &rc)),
            ],
        );
        ads.set_resources(
            type_url(ResourceType::RouteConfiguration),
            vec![any(&route_config(
                &rc,
                &[target],
                vec![prefix_route("", "echo")],
            ))],
        );
        let mut cluster = eds_cluster("echo", "");
        if mtls.is_some() {
            cluster = with_istio_mutual(cluster, PROVIDER, SERVER_ID);
        }
        ads.set_resources(type_url(ResourceType::Cluster), vec![any(&cluster)]);
        ads.set_resources(
            type_url(ResourceType::ClusterLoadAssignment),
            vec![any(&endpoints("echo", &[server_addr]))],
        );

        let routes =
            tonic::service::Routes::new(TestServiceServer::new(TestServiceBackend::new("cz")));
        let (serving_tx, mut serving) = tokio::sync::watch::channel(false);
        let server = XdsServer::builder()
            .bootstrap(bootstrap(&ads, "cz-server", mtls.map(|m| &m.server)))
            .drain_grace(Duration::from_secs(1))
            .on_serving_mode_change(move |mode, _| {
                serving_tx.send_replace(mode == ServingMode::Serving);
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve_with_shutdown(tcp, routes, async {
            let _ = stopped.await;
        }));
        tokio::time::timeout(CONVERGE, serving.wait_for(|s| *s))
            .await
            .expect("the server serves")
            .unwrap();

        let channel = Channel::builder(format!("xds:///{target}"))
            .bootstrap(bootstrap(&ads, "cz-client", mtls.map(|m| &m.client)))
            .config_timeout(CONVERGE)
            .connect()
            .await
            .unwrap();

        // The channelz service on its own plain tonic server.
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Channelz::new().into_service())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(admin)),
        );
        let channelz = ChannelzClient::new(
            Endpoint::from_shared(format!("http://{admin_addr}"))
                .unwrap()
                .connect_lazy(),
        );
        Setup {
            _ads: ads,
            server_addr,
            rpc: TestServiceClient::new(channel),
            channelz,
            _stop: stop,
        }
    }

    async fn unary(&mut self, fail: bool) -> Result<(), tonic::Status> {
        let mut req = tonic::Request::new(SimpleRequest::default());
        if fail {
            req.metadata_mut()
                .insert("rpc-behavior", "error-code-5".parse().unwrap());
        }
        self.rpc.unary_call(req).await.map(drop)
    }

    /// Our channel, found by its target among every channel's pages.
    async fn channel(&mut self, target: &str) -> pb::Channel {
        let want = format!("xds:///{target}");
        let mut start = 0;
        loop {
            let page = self
                .channelz
                .get_top_channels(pb::GetTopChannelsRequest {
                    start_channel_id: start,
                    max_results: 2,
                })
                .await
                .unwrap()
                .into_inner();
            for ch in &page.channel {
                let id = ch.r#ref.as_ref().unwrap().channel_id;
                start = start.max(id + 1);
                if ch.data.as_ref().unwrap().target == want {
                    return ch.clone();
                }
            }
            assert!(!page.end, "no channel with target {want}");
        }
    }

    /// Our server, found by its listening socket's port.
    async fn server(&mut self) -> pb::Server {
        let servers = self
            .channelz
            .get_servers(pb::GetServersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(servers.end);
        for server in servers.server {
            let listen = server.listen_socket[0].socket_id;
            let socket = self.socket(listen).await;
            if port(socket.local.as_ref()) == Some(self.server_addr.port()) {
                return server;
            }
        }
        panic!("no server listens on {}", self.server_addr);
    }

    async fn socket(&mut self, id: i64) -> pb::Socket {
        self.channelz
            .get_socket(pb::GetSocketRequest {
                socket_id: id,
                summary: false,
            })
            .await
            .unwrap()
            .into_inner()
            .socket
            .unwrap()
    }

    /// The channel's one subchannel and that subchannel's one socket.
    async fn subchannel_and_socket(&mut self, ch: &pb::Channel) -> (pb::Subchannel, pb::Socket) {
        assert_eq!(ch.subchannel_ref.len(), 1, "{ch:?}");
        let sub = self
            .channelz
            .get_subchannel(pb::GetSubchannelRequest {
                subchannel_id: ch.subchannel_ref[0].subchannel_id,
            })
            .await
            .unwrap()
            .into_inner()
            .subchannel
            .unwrap();
        assert_eq!(sub.socket_ref.len(), 1, "{sub:?}");
        let socket = self.socket(sub.socket_ref[0].socket_id).await;
        (sub, socket)
    }

    /// The server's connections (socket messages), polled until `want`
    /// holds (server-side counts land as the responses finish).
    async fn server_sockets_until(
        &mut self,
        server_id: i64,
        want: impl Fn(&[pb::Socket]) -> bool,
    ) -> Vec<pb::Socket> {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let refs = self
                .channelz
                .get_server_sockets(pb::GetServerSocketsRequest {
                    server_id,
                    start_socket_id: 0,
                    max_results: 0,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(refs.end);
            let mut sockets = Vec::new();
            for r in refs.socket_ref {
                sockets.push(self.socket(r.socket_id).await);
            }
            if want(&sockets) {
                return sockets;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server sockets never converged: {sockets:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn port(a: Option<&pb::Address>) -> Option<u16> {
    match a?.address.as_ref()? {
        pb::address::Address::TcpipAddress(t) => u16::try_from(t.port).ok(),
        _ => None,
    }
}

fn addr(a: Option<&pb::Address>) -> SocketAddr {
    let Some(pb::address::Address::TcpipAddress(t)) = a.and_then(|a| a.address.as_ref()) else {
        panic!("not a TCP address: {a:?}");
    };
    let ip: [u8; 4] = t.ip_address.clone().try_into().expect("IPv4");
    SocketAddr::from((ip, u16::try_from(t.port).unwrap()))
}

fn counts(data: &pb::ChannelData) -> (i64, i64, i64) {
    (data.calls_started, data.calls_succeeded, data.calls_failed)
}

fn tls_of(socket: &pb::Socket) -> pb::security::Tls {
    match socket.security.as_ref().and_then(|s| s.model.as_ref()) {
        Some(pb::security::Model::Tls(t)) => t.clone(),
        other => panic!("no TLS on the socket: {other:?}"),
    }
}

#[tokio::test]
async fn the_channel_and_server_report_state_calls_and_sockets() {
    const TARGET: &str = "channelz-plain.test:7070";
    let mut s = Setup::start(TARGET, None).await;
    s.unary(false).await.unwrap();
    let before = s.channel(TARGET).await;
    let data = before.data.as_ref().unwrap();
    assert_eq!(data.state.unwrap().state(), State::Ready);
    assert_eq!(counts(data), (1, 1, 0));
    assert!(data.last_call_started_timestamp.is_some());

    // Exactly the RPCs made, successes and failures apart.
    for _ in 0..3 {
        s.unary(false).await.unwrap();
    }
    for _ in 0..2 {
        let status = s.unary(true).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
    let ch = s.channel(TARGET).await;
    assert_eq!(ch.r#ref, before.r#ref);
    assert_eq!(counts(ch.data.as_ref().unwrap()), (6, 4, 2));
    let by_id = s
        .channelz
        .get_channel(pb::GetChannelRequest {
            channel_id: ch.r#ref.as_ref().unwrap().channel_id,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(
        by_id.data.as_ref().unwrap().target,
        format!("xds:///{TARGET}")
    );

    // The subchannel is the endpoint; its socket the connection to it.
    let (sub, socket) = s.subchannel_and_socket(&ch).await;
    let sub_data = sub.data.as_ref().unwrap();
    assert_eq!(sub_data.target, s.server_addr.to_string());
    assert_eq!(sub_data.state.unwrap().state(), State::Ready);
    // Every RPC got an answer from the endpoint (errors included).
    assert_eq!(counts(sub_data), (6, 6, 0));
    assert_eq!(addr(socket.remote.as_ref()), s.server_addr);
    let client_local = addr(socket.local.as_ref());
    assert_eq!(socket.data.as_ref().unwrap().streams_started, 6);
    assert!(socket.security.is_none());

    // The server, its listening socket and the same connection seen from
    // its side (as the interop harness matches them: remote == local).
    let server = s.server().await;
    let server_id = server.r#ref.as_ref().unwrap().server_id;
    let sockets = s
        .server_sockets_until(server_id, |socks| {
            socks.iter().any(|so| {
                so.remote.as_ref().map(|a| addr(Some(a))) == Some(client_local)
                    && so.data.as_ref().unwrap().streams_succeeded == 4
            })
        })
        .await;
    let conn = sockets
        .iter()
        .find(|so| addr(so.remote.as_ref()) == client_local)
        .unwrap();
    assert_eq!(addr(conn.local.as_ref()), s.server_addr);
    let data = conn.data.as_ref().unwrap();
    assert_eq!(
        (
            data.streams_started,
            data.streams_succeeded,
            data.streams_failed
        ),
        (6, 4, 2)
    );
    let server = s
        .channelz
        .get_server(pb::GetServerRequest { server_id })
        .await
        .unwrap()
        .into_inner()
        .server
        .unwrap();
    let data = server.data.unwrap();
    assert_eq!(
        (data.calls_started, data.calls_succeeded, data.calls_failed),
        (6, 4, 2)
    );

    // Unknown ids are NOT_FOUND.
    let missing = s
        .channelz
        .get_subchannel(pb::GetSubchannelRequest {
            subchannel_id: i64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn mtls_sockets_carry_both_certificates_on_both_sides() {
    const TARGET: &str = "channelz-mtls.test:7070";
    let ca = TestCa::new("mesh-root");
    let server_leaf = ca.leaf(&[SERVER_ID]);
    let client_leaf = ca.leaf(&[CLIENT_ID]);
    let certs = Mtls {
        server: Secret::new(&server_leaf, &ca.pem()),
        client: Secret::new(&client_leaf, &ca.pem()),
    };
    let mut s = Setup::start(TARGET, Some(&certs)).await;
    s.unary(false).await.unwrap();
    let ch = s.channel(TARGET).await;
    assert_eq!(counts(ch.data.as_ref().unwrap()), (1, 1, 0));
    let (_, client_socket) = s.subchannel_and_socket(&ch).await;
    let client_tls = tls_of(&client_socket);
    assert_eq!(client_tls.remote_certificate, server_leaf.der.to_vec());
    assert_eq!(client_tls.local_certificate, client_leaf.der.to_vec());
    assert!(client_tls.cipher_suite.is_some());

    let client_local = addr(client_socket.local.as_ref());
    let server = s.server().await;
    let server_id = server.r#ref.unwrap().server_id;
    let sockets = s
        .server_sockets_until(server_id, |socks| {
            socks
                .iter()
                .any(|so| so.remote.as_ref().map(|a| addr(Some(a))) == Some(client_local))
        })
        .await;
    let conn = sockets
        .iter()
        .find(|so| addr(so.remote.as_ref()) == client_local)
        .unwrap();
    let server_tls = tls_of(conn);
    // What the PSM security tests check: each side's local certificate is
    // the other's remote one.
    assert_eq!(server_tls.local_certificate, client_tls.remote_certificate);
    assert_eq!(server_tls.remote_certificate, client_tls.local_certificate);
}

#[tokio::test]
async fn dropped_channels_leave_channelz() {
    const TARGET: &str = "channelz-dropped.test:7070";
    let mut s = Setup::start(TARGET, None).await;
    s.unary(false).await.unwrap();
    let id = s.channel(TARGET).await.r#ref.unwrap().channel_id;
    // Replace the client: the channel's last clone goes with it.
    let admin = s.channelz.clone();
    drop(s);
    let mut admin = admin;
    let gone = admin
        .get_channel(pb::GetChannelRequest { channel_id: id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}
