//! The bootstrap's `node`: who this client is, sent in the first request of
//! every ADS stream. mesh adds its user agent and client features.

use envoy_types::pb::envoy::config::core::v3 as core;
use serde_json::{Map, Value};

use super::parse;
use crate::resource::common::{Locality, json_to_struct};
use crate::resource::{AtField, FieldError};

/// The user agent name mesh reports.
pub const USER_AGENT_NAME: &str = "mesh";

/// The client features mesh reports in `node.client_features`.
pub const CLIENT_FEATURES: [&str; 2] = [
    "envoy.lb.does_not_support_overprovisioning",
    "xds.config.resource-in-sotw",
];

/// Identifies this client to xDS servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Opaque id (`sidecar~10.0.0.1~echo-v1-abc.default~default.svc.cluster.local`
    /// under Istio); empty when the bootstrap has none.
    pub id: String,
    /// The local service cluster.
    pub cluster: String,
    /// Where this client runs.
    pub locality: Locality,
    /// Opaque metadata (istiod reads `GENERATOR`, `NAMESPACE`, `LABELS`, ...).
    pub metadata: Map<String, Value>,
    /// Filled by mesh: [`USER_AGENT_NAME`].
    pub user_agent_name: String,
    /// Filled by mesh: the mesh-core version.
    pub user_agent_version: String,
    /// Filled by mesh: [`CLIENT_FEATURES`].
    pub client_features: Vec<String>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            id: String::new(),
            cluster: String::new(),
            locality: Locality::default(),
            metadata: Map::new(),
            user_agent_name: USER_AGENT_NAME.to_owned(),
            user_agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            client_features: CLIENT_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

impl Node {
    /// Parses `node`; errors are relative to it.
    pub(super) fn from_json(v: &Value) -> Result<Self, FieldError> {
        let o = parse::as_object(v)?;
        let mut node = Node {
            id: parse::opt_str(o, "id")?.unwrap_or_default().to_owned(),
            cluster: parse::opt_str(o, "cluster")?.unwrap_or_default().to_owned(),
            ..Node::default()
        };
        if let Some(l) = parse::opt_obj(o, "locality")? {
            let s = |k| -> Result<String, FieldError> {
                Ok(parse::opt_str(l, k)
                    .at_field("locality")?
                    .unwrap_or_default()
                    .to_owned())
            };
            node.locality = Locality {
                region: s("region")?,
                zone: s("zone")?,
                sub_zone: s("sub_zone")?,
            };
        }
        if let Some(m) = parse::opt_obj(o, "metadata")? {
            node.metadata = m.clone();
        }
        Ok(node)
    }

    /// The node in gRPC's bootstrap format (without the fields mesh fills).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), self.id.clone().into());
        if !self.cluster.is_empty() {
            o.insert("cluster".into(), self.cluster.clone().into());
        }
        if self.locality != Locality::default() {
            let mut l = Map::new();
            for (k, v) in [
                ("region", &self.locality.region),
                ("zone", &self.locality.zone),
                ("sub_zone", &self.locality.sub_zone),
            ] {
                if !v.is_empty() {
                    l.insert(k.into(), v.clone().into());
                }
            }
            o.insert("locality".into(), l.into());
        }
        if !self.metadata.is_empty() {
            o.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(o)
    }

    /// The wire `Node` for ADS and LRS requests.
    pub fn to_proto(&self) -> core::Node {
        let l = &self.locality;
        let locality = (*l != Locality::default()).then(|| core::Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            sub_zone: l.sub_zone.clone(),
        });
        core::Node {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            metadata: (!self.metadata.is_empty())
                .then(|| json_to_struct(&Value::Object(self.metadata.clone()))),
            locality,
            user_agent_name: self.user_agent_name.clone(),
            user_agent_version_type: Some(core::node::UserAgentVersionType::UserAgentVersion(
                self.user_agent_version.clone(),
            )),
            client_features: self.client_features.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::common::struct_to_json;
    use serde_json::json;

    #[test]
    fn node_parses_and_fills_mesh_fields() {
        let n = Node::from_json(&json!({
            "id": "greeter-client-1", "cluster": "greeter",
            "locality": {"region": "r", "zone": "z1", "sub_zone": "s"},
            "metadata": {"GENERATOR": "grpc", "LABELS": {"app": "greeter"}},
            "unknown": true
        }))
        .unwrap();
        assert_eq!(n.id, "greeter-client-1");
        assert_eq!(n.locality.zone, "z1");
        assert_eq!(n.user_agent_name, "mesh");
        assert_eq!(n.user_agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(n.client_features, CLIENT_FEATURES);
        assert_eq!(Node::from_json(&n.to_json()).unwrap(), n);
    }

    #[test]
    fn node_errors_name_their_key() {
        let e = Node::from_json(&json!([])).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("", "must be a JSON object, found array")
        );
        for (v, want) in [
            (json!({"id": 5}), "id: must be a string"),
            (json!({"cluster": []}), "cluster: must be a string"),
            (json!({"locality": "z1"}), "locality: must be a JSON object"),
            (
                json!({"locality": {"zone": 1}}),
                "locality.zone: must be a string",
            ),
            (json!({"metadata": []}), "metadata: must be a JSON object"),
        ] {
            let e = Node::from_json(&v).unwrap_err();
            assert!(e.to_string().starts_with(want), "{v}: {e}");
        }
    }

    #[test]
    fn to_proto_carries_everything() {
        let n = Node::from_json(&json!({
            "id": "a", "cluster": "c", "locality": {"zone": "z"},
            "metadata": {"GENERATOR": "grpc", "INSTANCE_IPS": "10.0.0.1"}
        }))
        .unwrap();
        let p = n.to_proto();
        assert_eq!(p.id, "a");
        assert_eq!(p.cluster, "c");
        assert_eq!(p.locality.unwrap().zone, "z");
        assert_eq!(p.user_agent_name, "mesh");
        assert_eq!(
            p.user_agent_version_type,
            Some(core::node::UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into()
            ))
        );
        assert_eq!(p.client_features, CLIENT_FEATURES);
        assert_eq!(
            struct_to_json(&p.metadata.unwrap()),
            json!({"GENERATOR": "grpc", "INSTANCE_IPS": "10.0.0.1"})
        );
        let bare = Node::default().to_proto();
        assert!(bare.metadata.is_none() && bare.locality.is_none());
    }
}
