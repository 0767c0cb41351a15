//! Istio config → xDS, shaped as istiod's proxyless (`GENERATOR=grpc`)
//! generator shapes it (see `docs` and ISTIO.md): per service host and port
//! an outbound Listener (under the FQDN and the short names), a
//! RouteConfiguration `outbound|P||H`, Clusters `outbound|P|subset|H` and
//! their ClusterLoadAssignments; per workload address and port an inbound
//! server listener with mTLS and RBAC.
//!
//! Where Istio config cannot be expressed for gRPC, the translation maps it
//! to the nearest thing and says so in [`Translation::warnings`] ("map and
//! warn"): RANDOM and PASSTHROUGH become round robin, MAGLEV becomes
//! RING_HASH (gRPC NACKs MAGLEV; istiod sends it anyway, we do not).
//! Outlier detection is sent with `enforcing_success_rate: 0`, so gRPC
//! clients (which ignore the consecutive-error counters) eject nothing
//! because of it; mesh's own clients honour the counters.
//!
//! Nothing here reads files, serves, or versions snapshots: the caller
//! sets [`XdsSnapshot::version`].

mod cluster;
mod endpoint;
mod inbound;
mod index;
mod listener;
mod rbac;
mod route;
mod wire;

pub mod dump;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use mesh_core::resource::ResourceType;

use crate::config::Config;
use crate::snapshot::{SnapshotResource, XdsSnapshot};

pub use self::dump::dump_json;
pub use self::wire::optional_filter;

/// Endpoints known to be unhealthy beyond what the config says (filled by
/// the health checker): their EDS entries are sent UNHEALTHY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOverrides {
    /// Unhealthy endpoint addresses (workload IP and endpoint port).
    pub unhealthy: BTreeSet<SocketAddr>,
}

impl HealthOverrides {
    /// Whether `addr` is known unhealthy.
    pub fn is_unhealthy(&self, addr: SocketAddr) -> bool {
        self.unhealthy.contains(&addr)
    }
}

/// A translated config: the snapshot (version 0) and what was mapped or
/// dropped on the way.
#[derive(Debug, Clone, Default)]
pub struct Translation {
    /// Every resource; `version` is left 0 for the server to set.
    pub snapshot: XdsSnapshot,
    /// "Map and warn" notes, one line each, for the caller to log.
    pub warnings: Vec<String>,
}

/// Collects resources and warnings while translating.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub snapshot: XdsSnapshot,
    pub warnings: Vec<String>,
}

impl Out {
    /// Adds a resource under `name` (later duplicates are dropped with a
    /// warning: the first definition wins).
    pub fn add(
        &mut self,
        kind: ResourceType,
        name: String,
        any: envoy_types::pb::google::protobuf::Any,
    ) {
        let map = self.snapshot.resources.entry(kind).or_default();
        if map.contains_key(&name) {
            self.warnings.push(format!(
                "{kind} resource {name} generated twice: keeping the first"
            ));
            return;
        }
        map.insert(name, SnapshotResource::new(any));
    }

    /// Records a warning.
    pub fn warn(&mut self, w: impl Into<String>) {
        self.warnings.push(w.into());
    }
}

/// Translates `config` into xDS; endpoints in `health` are sent UNHEALTHY.
pub fn translate(config: &Config, health: &HealthOverrides) -> Translation {
    let mut out = Out::default();
    let ix = index::Index::build(config, &mut out);
    for svc in ix.services() {
        for port in &svc.entry.ports {
            listener::outbound(&ix, svc, port, &mut out);
            route::outbound(&ix, svc, port, &mut out);
            cluster::outbound(&ix, svc, port, &mut out);
            endpoint::outbound(&ix, svc, port, health, &mut out);
        }
    }
    inbound::listeners(&ix, config, &mut out);
    out.warnings.sort();
    out.warnings.dedup();
    Translation {
        snapshot: out.snapshot,
        warnings: out.warnings,
    }
}

#[cfg(test)]
mod tests;
