//! One client's state-of-the-world ADS session as a pure state machine:
//! requests and new snapshots in, responses out. No I/O, no clock but
//! `SystemTime` for NACK records, so every protocol rule is unit-tested.
//!
//! Rules kept here:
//! - Subscriptions per type, replaced by every request; LDS/CDS become
//!   wildcard when the first request names nothing, or on `"*"`.
//! - What was last sent is remembered per resource (its hash), so a new
//!   snapshot goes only to clients watching a changed resource.
//! - LDS/CDS responses carry every subscribed resource that exists (an
//!   absent one is deleted); RDS/EDS responses carry only what changed.
//! - Requested resources that do not exist are not sent.
//! - A request whose nonce is not the last one sent for its type is stale
//!   and ignored; ACKs and NACKs are recorded in [`ClientStatus`].

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::resource::ResourceType;

use super::node::node_info;
use super::status::{ClientStatus, Nack, Subscription};
use crate::snapshot::{NodeInfo, XdsSnapshot, inbound_address};

/// The `control_plane.identifier` sent in every response.
pub const CONTROL_PLANE_ID: &str = "mesh-control";

/// The order types are pushed in on a snapshot change: clusters before
/// their endpoints, listeners before their routes (make before break).
const PUSH_ORDER: [ResourceType; 4] = [
    ResourceType::Cluster,
    ResourceType::ClusterLoadAssignment,
    ResourceType::Listener,
    ResourceType::RouteConfiguration,
];

/// One type's session state.
#[derive(Debug, Default)]
struct TypeSession {
    /// Whether the wildcard came from an empty first request (the legacy
    /// form, which ends when the client names resources).
    legacy_wildcard: bool,
    /// Hashes of what was last sent, by name.
    sent: BTreeMap<String, u64>,
    /// The nonce of the last response of this type.
    nonce: Option<String>,
}

/// One client's session.
#[derive(Debug)]
pub(crate) struct Session {
    node: Option<NodeInfo>,
    types: BTreeMap<ResourceType, TypeSession>,
    next_nonce: u64,
    status: ClientStatus,
}

impl Session {
    pub fn new(status: ClientStatus) -> Self {
        Session {
            node: None,
            types: BTreeMap::new(),
            next_nonce: 0,
            status,
        }
    }

    /// The status as of the last event.
    pub fn status(&self) -> &ClientStatus {
        &self.status
    }

    /// Handles one request; returns the responses to send (at most one).
    pub fn on_request(
        &mut self,
        req: DiscoveryRequest,
        snapshot: &XdsSnapshot,
    ) -> Vec<DiscoveryResponse> {
        self.status.seen_version = snapshot.version;
        if self.node.is_none() {
            let info = node_info(req.node.as_ref());
            self.status.node_id.clone_from(&info.id);
            if let Some(n) = &req.node {
                self.status.user_agent.clone_from(&n.user_agent_name);
            }
            self.node = Some(info);
        }
        let Some(kind) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(node = %self.status.node_id, type_url = %req.type_url, "ignoring request for an unserved type");
            return Vec::new();
        };
        let first = !self.types.contains_key(&kind);
        let ts = self.types.entry(kind).or_default();
        if !req.response_nonce.is_empty() {
            if ts.nonce.as_deref() != Some(req.response_nonce.as_str()) {
                // A reply to an older response; the client will answer the
                // latest one too.
                return Vec::new();
            }
            match &req.error_detail {
                Some(err) => {
                    tracing::warn!(
                        node = %self.status.node_id,
                        r#type = %kind,
                        nonce = %req.response_nonce,
                        accepted_version = %req.version_info,
                        "NACK: {}",
                        err.message
                    );
                    self.status.nacks += 1;
                    self.status.last_nack = Some(Nack {
                        kind,
                        nonce: req.response_nonce.clone(),
                        accepted_version: req.version_info.clone(),
                        error_detail: err.message.clone(),
                        at: SystemTime::now(),
                    });
                }
                None => {
                    self.status.acked.insert(kind, req.version_info.clone());
                }
            }
        }
        let sub = subscription(kind, first, ts, &req.resource_names);
        let old = self.status.subscriptions.insert(kind, sub.clone());
        let changed = old.as_ref() != Some(&sub);
        if changed {
            // Forget what was sent for names no longer watched, so a later
            // re-subscription (after the client dropped its copy) resends.
            let ts = self.types.get_mut(&kind).expect("inserted above");
            ts.sent
                .retain(|name, _| sub.wildcard || sub.names.contains(name));
        }
        // A changed LDS/CDS subscription is always answered, even when no
        // requested resource exists: the complete response is how the
        // client learns at once that a name does not exist.
        let force = changed && kind.is_complete_state();
        self.respond(kind, snapshot, force).into_iter().collect()
    }

    /// A new snapshot: the responses for every type with a change this
    /// client watches.
    pub fn on_snapshot(&mut self, snapshot: &XdsSnapshot) -> Vec<DiscoveryResponse> {
        self.status.seen_version = snapshot.version;
        let mut out = Vec::new();
        for kind in PUSH_ORDER {
            if self.types.contains_key(&kind) {
                out.extend(self.respond(kind, snapshot, false));
            }
        }
        out
    }

    /// The response `kind` needs now, if any.
    fn respond(
        &mut self,
        kind: ResourceType,
        snapshot: &XdsSnapshot,
        force: bool,
    ) -> Option<DiscoveryResponse> {
        let node = self.node.as_ref()?;
        let sub = self.status.subscriptions.get(&kind)?;
        let desired = desired(kind, sub, node, snapshot);
        let ts = self.types.get_mut(&kind)?;
        let resources: Vec<Any> = if kind.is_complete_state() {
            let unchanged = desired.len() == ts.sent.len()
                && desired
                    .iter()
                    .all(|(n, (h, _))| ts.sent.get(n.as_str()) == Some(h));
            if unchanged && !force {
                return None;
            }
            ts.sent = desired.iter().map(|(n, (h, _))| (n.clone(), *h)).collect();
            desired
                .into_values()
                .map(|(_, any)| (*any).clone())
                .collect()
        } else {
            let changed: Vec<Any> = desired
                .iter()
                .filter(|(n, (h, _))| ts.sent.get(n.as_str()) != Some(h))
                .map(|(_, (_, any))| (**any).clone())
                .collect();
            // RDS and EDS have no deletion: a vanished resource is just
            // forgotten, so it is sent again if it comes back.
            ts.sent = desired.into_iter().map(|(n, (h, _))| (n, h)).collect();
            if changed.is_empty() {
                return None;
            }
            changed
        };
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        ts.nonce = Some(nonce.clone());
        *self.status.responses.entry(kind).or_default() += 1;
        Some(DiscoveryResponse {
            version_info: snapshot.version.to_string(),
            resources,
            type_url: kind.type_url().to_owned(),
            nonce,
            control_plane: Some(ControlPlane {
                identifier: CONTROL_PLANE_ID.to_owned(),
            }),
            ..Default::default()
        })
    }
}

/// The subscription a request asks for.
fn subscription(
    kind: ResourceType,
    first: bool,
    ts: &mut TypeSession,
    names: &[String],
) -> Subscription {
    let star = names.iter().any(|n| n == "*");
    let legacy = kind.is_complete_state() && names.is_empty() && (first || ts.legacy_wildcard);
    ts.legacy_wildcard = legacy;
    Subscription {
        wildcard: star || legacy,
        names: names.iter().filter(|n| *n != "*").cloned().collect(),
    }
}

/// Every resource the subscription covers that exists, with its hash.
fn desired(
    kind: ResourceType,
    sub: &Subscription,
    node: &NodeInfo,
    snapshot: &XdsSnapshot,
) -> BTreeMap<String, (u64, Arc<Any>)> {
    let mut out = BTreeMap::new();
    let shared = snapshot.resources.get(&kind);
    if sub.wildcard {
        for (name, r) in shared.into_iter().flatten() {
            out.insert(name.clone(), (r.hash, r.any.clone()));
        }
    }
    for name in &sub.names {
        if out.contains_key(name) {
            continue;
        }
        let per_node = kind == ResourceType::Listener && inbound_address(name).is_some();
        if per_node {
            if let Some(any) = snapshot.resolve(node, kind, name) {
                out.insert(name.clone(), (hash_bytes(&any.value), any));
            }
        } else if let Some(r) = shared.and_then(|m| m.get(name)) {
            out.insert(name.clone(), (r.hash, r.any.clone()));
        }
    }
    out
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
