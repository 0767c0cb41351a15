//! Client status: per-resource state, versions and a JSON config dump, the
//! material CSDS (A40) serves.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use serde_json::json;

use super::resource_state::ResourceStatus;
use crate::resource::ResourceType;

/// A point-in-time view of one xDS client.
#[derive(Debug, Clone)]
pub struct ClientStatus {
    /// The node the client identifies as (protobuf: CSDS needs the raw form).
    pub node: Node,
    /// The server URI.
    pub server: String,
    /// Whether an ADS stream is open.
    pub connected: bool,
    /// Last accepted version per type.
    pub versions: Vec<(ResourceType, String)>,
    /// Every subscribed resource.
    pub resources: Vec<ResourceStatusEntry>,
}

/// One subscribed resource's status.
#[derive(Debug, Clone)]
pub struct ResourceStatusEntry {
    /// Its type.
    pub kind: ResourceType,
    /// Its name.
    pub name: String,
    /// CSDS status.
    pub status: ResourceStatus,
    /// Version of the response that last carried it.
    pub version: String,
    /// When it was last accepted.
    pub last_updated: Option<SystemTime>,
    /// The last rejection: error, rejected version, when.
    pub error: Option<(String, String, SystemTime)>,
    /// An error that leaves the cached value in force (A88).
    pub ambient_error: Option<String>,
    /// The accepted resource as received (for CSDS's `xds_config`).
    pub raw: Option<Any>,
}

impl ClientStatus {
    /// The status of one resource, if subscribed.
    pub fn resource(&self, kind: ResourceType, name: &str) -> Option<&ResourceStatusEntry> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.name == name)
    }

    /// A JSON config dump shaped like CSDS's `ClientConfig.generic_xds_configs`
    /// (raw resources base64-encoded, as protobuf JSON encodes bytes).
    pub fn to_json(&self) -> serde_json::Value {
        let configs: Vec<_> = self
            .resources
            .iter()
            .map(|r| {
                let mut v = json!({
                    "type_url": r.kind.type_url(),
                    "name": r.name,
                    "client_status": r.status,
                    "version_info": r.version,
                });
                if let Some(t) = r.last_updated {
                    v["last_updated"] = json!(timestamp(t));
                }
                if let Some((details, version, at)) = &r.error {
                    v["error_state"] = json!({
                        "details": details,
                        "version_info": version,
                        "last_update_attempt": timestamp(*at),
                    });
                }
                if let Some(a) = &r.ambient_error {
                    v["ambient_error"] = json!(a);
                }
                if let Some(raw) = &r.raw {
                    v["xds_config"] = json!({"@type": raw.type_url, "value": base64(&raw.value)});
                }
                v
            })
            .collect();
        json!({
            "node": {"id": self.node.id, "cluster": self.node.cluster},
            "server": self.server,
            "connected": self.connected,
            "versions": self.versions.iter().map(|(k, v)| (k.short_name().to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "generic_xds_configs": configs,
        })
    }
}

fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
