//! The translated xDS config: every resource by type and name, versioned,
//! immutable once built. The ADS server serves it; the translator builds
//! it. Diffable (per-resource hashes) so pushes go only where something
//! changed, and so a later delta-xDS server fits.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use mesh_core::resource::ResourceType;

/// One resource, encoded, with a hash of its bytes for change detection.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotResource {
    /// The resource as sent.
    pub any: Arc<Any>,
    /// A hash of `any.value`.
    pub hash: u64,
}

impl SnapshotResource {
    /// Wraps an encoded resource.
    pub fn new(any: Any) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        any.value.hash(&mut h);
        SnapshotResource {
            hash: h.finish(),
            any: Arc::new(any),
        }
    }
}

/// What the ADS server knows of a connected node, from its `Node` message:
/// enough to generate its inbound listeners as istiod does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node.id` (`sidecar~10.0.0.1~echo-v1.default~default.svc.cluster.local`).
    pub id: String,
    /// `INSTANCE_IPS` metadata, and the IP in an Istio-style id.
    pub ips: Vec<IpAddr>,
    /// `NAMESPACE` metadata.
    pub namespace: Option<String>,
    /// `LABELS` metadata.
    pub labels: BTreeMap<String, String>,
}

/// A complete, versioned xDS config.
#[derive(Debug, Clone, Default)]
pub struct XdsSnapshot {
    /// Bumped on every change (the `version_info` sent).
    pub version: u64,
    /// Resources that are the same for every node, by type and name.
    pub resources: BTreeMap<ResourceType, BTreeMap<String, SnapshotResource>>,
    /// Inbound (server) listeners by the workload address and port they
    /// serve; looked up per node by [`XdsSnapshot::resolve`].
    pub inbound: BTreeMap<(IpAddr, u16), InboundListener>,
}

/// A server node's inbound listener, ready to be named as requested.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundListener {
    /// The listener (its name is set per request).
    pub listener: envoy_types::pb::envoy::config::listener::v3::Listener,
}

/// The inbound listener name prefix istio-agent's bootstrap template gives.
pub const ISTIO_INBOUND_PREFIX: &str = "xds.istio.io/grpc/lds/inbound/";
/// gRPC's default server listener template's prefix.
pub const GRPC_INBOUND_PREFIX: &str = "grpc/server?xds.resource.listening_address=";

impl XdsSnapshot {
    /// The resource `name` of `kind` as `node` should see it, or `None` if
    /// there is none. Inbound listener names resolve per node: a wildcard
    /// listening address (`0.0.0.0:PORT`, `[::]:PORT`) stands for each of the
    /// node's instance IPs, as istiod resolves it.
    pub fn resolve(&self, node: &NodeInfo, kind: ResourceType, name: &str) -> Option<Arc<Any>> {
        if kind == ResourceType::Listener
            && let Some(addr) = inbound_address(name)
        {
            return self.inbound_for(node, addr, name);
        }
        self.resources.get(&kind)?.get(name).map(|r| r.any.clone())
    }

    /// Every name of `kind` shared by all nodes (for wildcard subscriptions).
    pub fn names(&self, kind: ResourceType) -> impl Iterator<Item = &str> {
        self.resources
            .get(&kind)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    fn inbound_for(
        &self,
        node: &NodeInfo,
        addr: std::net::SocketAddr,
        name: &str,
    ) -> Option<Arc<Any>> {
        let port = addr.port();
        let found = if addr.ip().is_unspecified() {
            node.ips
                .iter()
                .find_map(|ip| self.inbound.get(&(*ip, port)))
        } else {
            self.inbound.get(&(addr.ip(), port))
        }?;
        let mut listener = found.listener.clone();
        listener.name = name.to_owned();
        Some(Arc::new(mesh_core::resource::to_any(
            ResourceType::Listener.type_url(),
            &listener,
        )))
    }
}

/// The listening address in an inbound listener name, if it is one.
pub fn inbound_address(name: &str) -> Option<std::net::SocketAddr> {
    let rest = name
        .strip_prefix(ISTIO_INBOUND_PREFIX)
        .or_else(|| name.strip_prefix(GRPC_INBOUND_PREFIX))?;
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_names_parse() {
        assert_eq!(
            inbound_address("xds.istio.io/grpc/lds/inbound/10.0.0.1:7070"),
            Some("10.0.0.1:7070".parse().unwrap())
        );
        assert_eq!(
            inbound_address("grpc/server?xds.resource.listening_address=[::]:8080"),
            Some("[::]:8080".parse().unwrap())
        );
        assert_eq!(inbound_address("echo:7070"), None);
    }

    #[test]
    fn wildcard_inbound_resolves_by_node_ip() {
        let mut snap = XdsSnapshot::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        snap.inbound.insert(
            (ip, 7070),
            InboundListener {
                listener: Default::default(),
            },
        );
        let node = NodeInfo {
            ips: vec![ip],
            ..Default::default()
        };
        let name = "xds.istio.io/grpc/lds/inbound/0.0.0.0:7070";
        let any = snap.resolve(&node, ResourceType::Listener, name).unwrap();
        let l: envoy_types::pb::envoy::config::listener::v3::Listener =
            prost::Message::decode(any.value.as_slice()).unwrap();
        assert_eq!(l.name, name, "named as requested");
        assert!(
            snap.resolve(&NodeInfo::default(), ResourceType::Listener, name)
                .is_none()
        );
    }
}
