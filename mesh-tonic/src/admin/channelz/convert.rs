//! From mesh's run-time state to channelz messages: a channel's state
//! (aggregated from its endpoints, as gRPC aggregates subchannels), its
//! subchannels (the endpoints of every cluster its runtime holds) and their
//! sockets (each endpoint's open HTTP/2 connections), servers, and sockets
//! with their addresses and TLS certificates.

use std::net::SocketAddr;

use mesh_tower::cluster::EndpointHandle;
use mesh_tower::endpoint::{ConnectivityState, SocketInfo};
use mesh_tower::tls::CertificateProvider;

use super::calls::CallCounts;
use super::proto as pb;
use super::registry::{
    self, ChannelEntry, ServerEntry, ServerSocket, SocketEntity, SocketTls, SubchannelCtx,
};
use pb::channel_connectivity_state::State;

/// A time in nanoseconds since the Unix epoch, as a protobuf Timestamp.
fn timestamp(nanos: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// A TCP address: 4 bytes for IPv4, 16 for IPv6, network order.
pub(super) fn address(addr: SocketAddr) -> pb::Address {
    let ip_address = match addr {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    pb::Address {
        address: Some(pb::address::Address::TcpipAddress(
            pb::address::TcpIpAddress {
                ip_address,
                port: i32::from(addr.port()),
            },
        )),
    }
}

fn state(s: ConnectivityState) -> State {
    match s {
        ConnectivityState::Idle => State::Idle,
        ConnectivityState::Connecting => State::Connecting,
        ConnectivityState::Ready => State::Ready,
        ConnectivityState::TransientFailure => State::TransientFailure,
    }
}

/// A channel's state from its endpoints': READY if any is, else
/// CONNECTING, else IDLE, else TRANSIENT_FAILURE. `None` without endpoints.
pub(super) fn aggregate(states: impl IntoIterator<Item = ConnectivityState>) -> Option<State> {
    let rank = |s: ConnectivityState| match s {
        ConnectivityState::Ready => 3,
        ConnectivityState::Connecting => 2,
        ConnectivityState::Idle => 1,
        ConnectivityState::TransientFailure => 0,
    };
    states.into_iter().max_by_key(|s| rank(*s)).map(state)
}

fn channel_data(target: String, state: State, calls: CallCounts) -> pb::ChannelData {
    pb::ChannelData {
        state: Some(pb::ChannelConnectivityState {
            state: state as i32,
        }),
        target,
        trace: None,
        calls_started: saturate(calls.started),
        calls_succeeded: saturate(calls.succeeded),
        calls_failed: saturate(calls.failed),
        last_call_started_timestamp: calls.last_started.map(timestamp),
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The endpoints of every cluster of the channel's current runtime, each
/// with its cluster's client-certificate provider; and the runtime's
/// error, if RPCs fail as a whole.
fn endpoints(entry: &ChannelEntry) -> (Vec<(std::sync::Arc<EndpointHandle>, SubchannelCtx)>, bool) {
    let Some(view) = &entry.view else {
        return (Vec::new(), false);
    };
    let runtime = view.discovery.load();
    let mut clusters: Vec<_> = runtime.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for cluster in clusters {
        let identity = cluster
            .config
            .tls
            .as_ref()
            .and_then(|ctx| ctx.identity.as_ref())
            .zip(view.tls.as_ref())
            .and_then(|(id, reg)| reg.get(&id.instance_name).ok());
        let ctx = SubchannelCtx { identity };
        for ep in cluster.balancer.endpoints().iter() {
            out.push((ep.clone(), ctx.clone()));
        }
    }
    (out, runtime.error.is_some())
}

/// A channel, with refs to its subchannels.
pub(super) fn channel(entry: &ChannelEntry) -> pb::Channel {
    let (endpoints, failed) = endpoints(entry);
    let ids = registry::subchannel_ids(&endpoints);
    let state =
        aggregate(endpoints.iter().map(|(ep, _)| ep.connection.state())).unwrap_or(if failed {
            State::TransientFailure
        } else {
            State::Idle
        });
    let subchannel_ref = endpoints
        .iter()
        .zip(ids)
        .map(|((ep, _), id)| pb::SubchannelRef {
            subchannel_id: id,
            name: ep.address.to_string(),
        })
        .collect();
    pb::Channel {
        r#ref: Some(pb::ChannelRef {
            channel_id: entry.id,
            name: entry.target.to_string(),
        }),
        data: Some(channel_data(
            entry.target.to_string(),
            state,
            entry.calls.snapshot(),
        )),
        channel_ref: Vec::new(),
        subchannel_ref,
        socket_ref: Vec::new(),
    }
}

/// A subchannel (one endpoint), with refs to its open connections.
pub(super) fn subchannel(id: i64, ep: &EndpointHandle, ctx: &SubchannelCtx) -> pb::Subchannel {
    let conn = &ep.connection;
    let sockets = conn.sockets();
    let ids = registry::client_socket_ids(&sockets, ctx);
    let calls = conn.calls();
    let counts = CallCounts {
        started: calls.started(),
        succeeded: calls.succeeded(),
        failed: calls.failed(),
        last_started: None,
    };
    pb::Subchannel {
        r#ref: Some(pb::SubchannelRef {
            subchannel_id: id,
            name: ep.address.to_string(),
        }),
        data: Some(channel_data(
            ep.address.to_string(),
            state(conn.state()),
            counts,
        )),
        channel_ref: Vec::new(),
        subchannel_ref: Vec::new(),
        socket_ref: sockets
            .iter()
            .zip(ids)
            .map(|(s, id)| socket_ref(id, s.remote_addr()))
            .collect(),
    }
}

pub(super) fn socket_ref(id: i64, remote: SocketAddr) -> pb::SocketRef {
    pb::SocketRef {
        socket_id: id,
        name: remote.to_string(),
    }
}

/// A server, with a ref to its listening socket.
pub(super) fn server(entry: &ServerEntry) -> pb::Server {
    let calls = entry.calls.snapshot();
    pb::Server {
        r#ref: Some(pb::ServerRef {
            server_id: entry.id,
            name: entry.listening.to_string(),
        }),
        data: Some(pb::ServerData {
            trace: None,
            calls_started: saturate(calls.started),
            calls_succeeded: saturate(calls.succeeded),
            calls_failed: saturate(calls.failed),
            last_call_started_timestamp: calls.last_started.map(timestamp),
        }),
        listen_socket: vec![pb::SocketRef {
            socket_id: entry.listen_id,
            name: entry.listening.to_string(),
        }],
    }
}

fn socket_data(streams: CallCounts) -> pb::SocketData {
    pb::SocketData {
        streams_started: saturate(streams.started),
        streams_succeeded: saturate(streams.succeeded),
        streams_failed: saturate(streams.failed),
        last_remote_stream_created_timestamp: None,
        last_local_stream_created_timestamp: None,
        ..Default::default()
    }
}

fn tls_security(tls: &SocketTls) -> pb::Security {
    pb::Security {
        model: Some(pb::security::Model::Tls(pb::security::Tls {
            cipher_suite: tls
                .cipher_suite
                .map(|n| pb::security::tls::CipherSuite::OtherName(n.to_owned())),
            local_certificate: tls.local_certificate.clone().unwrap_or_default(),
            remote_certificate: tls.remote_certificate.clone().unwrap_or_default(),
        })),
    }
}

/// The leaf certificate (DER) a provider currently presents.
pub(crate) fn leaf_certificate(provider: &CertificateProvider) -> Option<Vec<u8>> {
    let material = provider.current();
    let key = material.identity()?;
    key.cert.first().map(|c| c.as_ref().to_vec())
}

/// The socket `id` names (only its data when `summary`).
pub(super) fn socket(id: i64, entity: &SocketEntity, summary: bool) -> pb::Socket {
    let (data, local, remote, security) = match entity {
        SocketEntity::Listen(server) => (
            pb::SocketData::default(),
            Some(server.listening),
            None,
            None,
        ),
        SocketEntity::Server(s) => server_socket(s),
        SocketEntity::Client(info, ctx) => client_socket(info, ctx),
    };
    let mut socket = pb::Socket {
        r#ref: Some(pb::SocketRef {
            socket_id: id,
            name: remote.map(|r| r.to_string()).unwrap_or_default(),
        }),
        data: Some(data),
        local: local.map(address),
        remote: remote.map(address),
        security,
        remote_name: String::new(),
    };
    if summary {
        socket.local = None;
        socket.remote = None;
        socket.security = None;
    }
    socket
}

type SocketParts = (
    pb::SocketData,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<pb::Security>,
);

fn server_socket(s: &ServerSocket) -> SocketParts {
    (
        socket_data(s.streams.snapshot()),
        Some(s.local),
        Some(s.remote),
        s.tls.as_ref().map(tls_security),
    )
}

fn client_socket(info: &SocketInfo, ctx: &SubchannelCtx) -> SocketParts {
    let streams = info.streams();
    let counts = CallCounts {
        started: streams.started(),
        succeeded: streams.succeeded(),
        failed: streams.failed(),
        last_started: None,
    };
    let security = info.tls().map(|tls| {
        tls_security(&SocketTls {
            // rustls does not say which certificate a handshake sent: the
            // provider's current one is it unless it rotated since.
            local_certificate: ctx.identity.as_ref().and_then(leaf_certificate),
            remote_certificate: tls.peer_certificate.clone(),
            cipher_suite: tls.cipher_suite,
        })
    });
    (
        socket_data(counts),
        info.local_addr(),
        Some(info.remote_addr()),
        security,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_raw_octets_and_port() {
        let a = address("10.1.2.3:8080".parse().unwrap());
        let Some(pb::address::Address::TcpipAddress(t)) = a.address else {
            panic!("not tcpip: {a:?}");
        };
        assert_eq!((t.ip_address, t.port), (vec![10, 1, 2, 3], 8080));
        let a = address("[::1]:443".parse().unwrap());
        let Some(pb::address::Address::TcpipAddress(t)) = a.address else {
            panic!("not tcpip: {a:?}");
        };
        assert_eq!(t.ip_address.len(), 16);
        assert_eq!(t.ip_address[15], 1);
    }

    #[test]
    fn timestamps_split_seconds_and_nanos() {
        let t = timestamp(1_700_000_000_123_456_789);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_456_789));
    }

    #[test]
    fn channel_state_prefers_ready_then_connecting_then_idle() {
        use ConnectivityState::*;
        assert_eq!(aggregate([]), None);
        assert_eq!(aggregate([TransientFailure, Idle]), Some(State::Idle));
        assert_eq!(
            aggregate([Idle, Connecting, TransientFailure]),
            Some(State::Connecting)
        );
        assert_eq!(aggregate([Connecting, Ready, Idle]), Some(State::Ready));
        assert_eq!(aggregate([TransientFailure]), Some(State::TransientFailure));
    }

    #[test]
    fn server_sockets_carry_their_tls_certificates() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let server = registry::register_server(addr);
        let tls = SocketTls {
            local_certificate: Some(vec![1, 2]),
            remote_certificate: Some(vec![3]),
            cipher_suite: Some("TLS13_AES_128_GCM_SHA256"),
        };
        let s = registry::register_server_socket(&server, addr, peer, Some(tls));
        s.streams.start(5_000_000_000);
        s.streams.finish(true);
        let entity = registry::socket(s.id).expect("registered");
        let msg = socket(s.id, &entity, false);
        assert_eq!(msg.remote, Some(address(peer)));
        assert_eq!(msg.local, Some(address(addr)));
        let data = msg.data.expect("data");
        assert_eq!((data.streams_started, data.streams_succeeded), (1, 1));
        let Some(pb::security::Model::Tls(t)) = msg.security.and_then(|s| s.model) else {
            panic!("no TLS");
        };
        assert_eq!(
            (t.local_certificate, t.remote_certificate),
            (vec![1, 2], vec![3])
        );
        let summary = socket(s.id, &entity, true);
        assert!(summary.security.is_none() && summary.data.is_some());
        // The listening socket has the server's address as its local one.
        let listen = registry::socket(server.listen_id).expect("listening socket");
        assert_eq!(
            socket(server.listen_id, &listen, false).local,
            Some(address(addr))
        );
    }
}
