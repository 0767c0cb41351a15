//! Reads [`NodeInfo`] from a client's `Node`: the Istio-style id
//! (`sidecar~IP~POD.NS~NS.svc.cluster.local`) and the metadata istio-agent
//! writes (`INSTANCE_IPS`, `NAMESPACE`, `LABELS`).
//!
//! Nothing here rejects a node: a client with a plain id and no metadata
//! still gets every shared resource; it just has no inbound listeners.

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::snapshot::NodeInfo;

/// The node metadata key listing the workload's IPs, comma-separated.
pub const INSTANCE_IPS: &str = "INSTANCE_IPS";
/// The node metadata key naming the workload's namespace.
pub const NAMESPACE: &str = "NAMESPACE";
/// The node metadata key holding the workload's labels (an object).
pub const LABELS: &str = "LABELS";

/// The parts of an Istio proxy id `TYPE~IP~POD.NS~NS.svc.cluster.local`.
struct IstioId<'a> {
    ip: Option<IpAddr>,
    namespace: Option<&'a str>,
}

fn parse_istio_id(id: &str) -> Option<IstioId<'_>> {
    let parts: Vec<&str> = id.split('~').collect();
    if parts.len() != 4 {
        return None;
    }
    let namespace = parts[3]
        .split('.')
        .next()
        .filter(|ns| !ns.is_empty())
        .or_else(|| parts[2].split_once('.').map(|(_, ns)| ns));
    Some(IstioId {
        ip: parts[1].parse().ok(),
        namespace,
    })
}

/// What the server needs to know of `node` (`None`: an empty node).
pub fn node_info(node: Option<&Node>) -> NodeInfo {
    let Some(node) = node else {
        return NodeInfo::default();
    };
    let meta = node.metadata.as_ref();
    let istio = parse_istio_id(&node.id);
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(list) = meta.and_then(|m| string_field(m, INSTANCE_IPS)) {
        ips.extend(
            list.split(',')
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok()),
        );
    }
    if let Some(ip) = istio.as_ref().and_then(|i| i.ip) {
        ips.push(ip);
    }
    let mut seen = std::collections::BTreeSet::new();
    ips.retain(|ip| seen.insert(*ip));
    let namespace = meta
        .and_then(|m| string_field(m, NAMESPACE))
        .map(str::to_owned)
        .or_else(|| istio.and_then(|i| i.namespace).map(str::to_owned));
    let labels = meta
        .and_then(|m| m.fields.get(LABELS))
        .map(labels_of)
        .unwrap_or_default();
    NodeInfo {
        id: node.id.clone(),
        ips,
        namespace,
        labels,
    }
}

fn string_field<'a>(s: &'a Struct, key: &str) -> Option<&'a str> {
    match s.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(v) => Some(v),
        _ => None,
    }
}

/// LABELS is an object of strings; istio-agent also accepts it as a JSON
/// string in some tools, so that form is read too.
fn labels_of(v: &Value) -> BTreeMap<String, String> {
    match v.kind.as_ref() {
        Some(Kind::StructValue(s)) => s
            .fields
            .iter()
            .filter_map(|(k, v)| match v.kind.as_ref()? {
                Kind::StringValue(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        Some(Kind::StringValue(json)) => serde_json::from_str(json).unwrap_or_default(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(v.into())),
        }
    }

    fn node(id: &str, fields: Vec<(&str, Value)>) -> Node {
        Node {
            id: id.into(),
            metadata: Some(Struct {
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn istio_node_reads_metadata() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("app".to_owned(), s("echo"))].into_iter().collect(),
            })),
        };
        let n = node(
            "sidecar~10.0.0.1~echo-v1.prod~prod.svc.cluster.local",
            vec![
                (INSTANCE_IPS, s("10.0.0.2, 10.0.0.1,fe80::1")),
                (NAMESPACE, s("prod")),
                (LABELS, labels),
            ],
        );
        let info = node_info(Some(&n));
        let ips: Vec<String> = info.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.2", "10.0.0.1", "fe80::1"], "deduplicated");
        assert_eq!(info.namespace.as_deref(), Some("prod"));
        assert_eq!(info.labels["app"], "echo");
    }

    #[test]
    fn istio_id_alone_gives_ip_and_namespace() {
        let n = node("sidecar~127.0.0.1~pod.ns1~ns1.svc.cluster.local", vec![]);
        let info = node_info(Some(&n));
        assert_eq!(info.ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(info.namespace.as_deref(), Some("ns1"));
    }

    #[test]
    fn plain_ids_have_no_address() {
        let info = node_info(Some(&node("greeter-client-1", vec![])));
        assert_eq!(info.id, "greeter-client-1");
        assert!(info.ips.is_empty() && info.namespace.is_none());
        assert_eq!(node_info(None), NodeInfo::default());
    }

    #[test]
    fn labels_as_json_string() {
        let n = node("x", vec![(LABELS, s(r#"{"version":"v2"}"#))]);
        assert_eq!(node_info(Some(&n)).labels["version"], "v2");
    }
}
