//! Active endpoint health checking with `grpc.health.v1.Health/Check`:
//! every interval, each endpoint the served EDS names is asked for its
//! status; the set of endpoints that did not answer SERVING (in time) is
//! published whenever it changes, so the control plane can mark them
//! UNHEALTHY in EDS and bring them back when they recover.
//!
//! [`mark_unhealthy`] applies the result to a snapshot. This module does
//! not translate config or decide when to check ([`crate::server`] runs
//! it, and only when enabled).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, lb_endpoint,
};
use mesh_core::resource::ResourceType;
use prost::Message;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::snapshot::{SnapshotResource, XdsSnapshot};

/// The default check interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How health checks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Time between rounds of checks.
    pub interval: Duration,
    /// How long one check (connect included) may take before it counts as
    /// a failure.
    pub timeout: Duration,
    /// The service name asked for (`""`: the server as a whole).
    pub service: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: DEFAULT_INTERVAL,
            timeout: Duration::from_secs(1),
            service: String::new(),
        }
    }
}

impl HealthCheckConfig {
    /// The default config with another interval (the timeout is capped at
    /// the interval).
    pub fn with_interval(interval: Duration) -> Self {
        let d = Self::default();
        HealthCheckConfig {
            timeout: d.timeout.min(interval),
            interval,
            ..d
        }
    }
}

/// Every endpoint address in `snapshot`'s EDS resources (the ones to
/// check).
pub fn endpoint_addresses(snapshot: &XdsSnapshot) -> BTreeSet<SocketAddr> {
    let mut out = BTreeSet::new();
    let eds = snapshot.resources.get(&ResourceType::ClusterLoadAssignment);
    for r in eds.into_iter().flat_map(|m| m.values()) {
        let Ok(cla) = ClusterLoadAssignment::decode(r.any.value.as_slice()) else {
            continue;
        };
        out.extend(
            cla.endpoints
                .iter()
                .flat_map(|l| &l.lb_endpoints)
                .filter_map(lb_address),
        );
    }
    out
}

/// An endpoint's IP and port, if it has them.
fn lb_address(lb: &LbEndpoint) -> Option<SocketAddr> {
    let lb_endpoint::HostIdentifier::Endpoint(ep) = lb.host_identifier.as_ref()? else {
        return None;
    };
    let address::Address::SocketAddress(sock) = ep.address.as_ref()?.address.as_ref()? else {
        return None;
    };
    let socket_address::PortSpecifier::PortValue(port) = sock.port_specifier.as_ref()? else {
        return None;
    };
    Some(SocketAddr::new(
        sock.address.parse::<IpAddr>().ok()?,
        u16::try_from(*port).ok()?,
    ))
}

/// Marks every endpoint at an address in `unhealthy` UNHEALTHY in
/// `snapshot`'s EDS resources (clients then stop using it); the others
/// keep the status translation gave them.
pub fn mark_unhealthy(snapshot: &mut XdsSnapshot, unhealthy: &BTreeSet<SocketAddr>) {
    if unhealthy.is_empty() {
        return;
    }
    let Some(eds) = snapshot
        .resources
        .get_mut(&ResourceType::ClusterLoadAssignment)
    else {
        return;
    };
    for r in eds.values_mut() {
        let Ok(mut cla) = ClusterLoadAssignment::decode(r.any.value.as_slice()) else {
            continue;
        };
        let mut changed = false;
        for lb in cla.endpoints.iter_mut().flat_map(|l| &mut l.lb_endpoints) {
            if lb_address(lb).is_some_and(|a| unhealthy.contains(&a)) {
                lb.health_status = HealthStatus::Unhealthy as i32;
                changed = true;
            }
        }
        if changed {
            *r = SnapshotResource::new(mesh_core::resource::to_any(
                ResourceType::ClusterLoadAssignment.type_url(),
                &cla,
            ));
        }
    }
}

/// Checks the endpoints `targets` names every interval and publishes the
/// unhealthy ones on `unhealthy` when the set changes. Runs until
/// `targets`' sender is dropped.
pub async fn run(
    config: HealthCheckConfig,
    mut targets: watch::Receiver<BTreeSet<SocketAddr>>,
    unhealthy: watch::Sender<BTreeSet<SocketAddr>>,
) {
    let mut channels: HashMap<SocketAddr, Channel> = HashMap::new();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
                // New endpoints are checked at once, not an interval later.
            }
        }
        let now: BTreeSet<SocketAddr> = targets.borrow_and_update().clone();
        channels.retain(|a, _| now.contains(a));
        let checks = now.iter().map(|addr| {
            let ch = channels
                .entry(*addr)
                .or_insert_with(|| lazy_channel(*addr, config.timeout))
                .clone();
            let service = config.service.clone();
            let timeout = config.timeout;
            async move { (*addr, check(ch, service, timeout).await) }
        });
        let results = futures::future::join_all(checks).await;
        let down: BTreeSet<SocketAddr> = results
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(a, _)| a)
            .collect();
        unhealthy.send_if_modified(|cur| {
            if *cur == down {
                return false;
            }
            tracing::info!(
                unhealthy = ?down,
                "endpoint health changed"
            );
            *cur = down;
            true
        });
    }
}

fn lazy_channel(addr: SocketAddr, timeout: Duration) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a socket address is a valid URI")
        .connect_timeout(timeout)
        .connect_lazy()
}

/// One check: SERVING within `timeout`.
async fn check(channel: Channel, service: String, timeout: Duration) -> bool {
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest { service });
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(resp)) => resp.into_inner().status == ServingStatus::Serving as i32,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::testing::resources::{any, endpoints};
    use mesh_core::testing::test_service::TestServiceBackend;

    use super::*;

    #[test]
    fn endpoints_come_from_eds() {
        let a: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1002".parse().unwrap();
        let mut snap = XdsSnapshot::default();
        snap.resources
            .entry(ResourceType::ClusterLoadAssignment)
            .or_default()
            .insert(
                "c".into(),
                SnapshotResource::new(any(&endpoints("c", &[a, b]))),
            );
        assert_eq!(endpoint_addresses(&snap), [a, b].into_iter().collect());

        let before = snap.clone();
        mark_unhealthy(&mut snap, &BTreeSet::new());
        assert_eq!(snap.resources, before.resources, "nothing to mark");
        mark_unhealthy(&mut snap, &[b].into());
        let r = &snap.resources[&ResourceType::ClusterLoadAssignment]["c"];
        assert_ne!(
            r.hash,
            before.resources[&ResourceType::ClusterLoadAssignment]["c"].hash
        );
        let cla = ClusterLoadAssignment::decode(r.any.value.as_slice()).unwrap();
        let status: Vec<i32> = cla.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|l| l.health_status)
            .collect();
        assert_eq!(
            status,
            [HealthStatus::Healthy as i32, HealthStatus::Unhealthy as i32]
        );
    }

    #[tokio::test]
    async fn dead_and_not_serving_endpoints_are_reported_then_recover() {
        let up = TestServiceBackend::new("up").serve().await.unwrap();
        let flaky = TestServiceBackend::new("flaky").serve().await.unwrap();
        let dead = {
            let b = TestServiceBackend::new("dead").serve().await.unwrap();
            b.local_addr()
        }; // dropped: nothing listens there now
        let all: BTreeSet<_> = [up.local_addr(), flaky.local_addr(), dead].into();
        let (_targets_tx, targets) = watch::channel(all);
        let (tx, mut rx) = watch::channel(BTreeSet::new());
        let cfg = HealthCheckConfig::with_interval(Duration::from_millis(50));
        tokio::spawn(run(cfg, targets, tx));
        let want: BTreeSet<_> = [dead].into();
        rx.wait_for(|s| *s == want).await.unwrap();
        flaky.set_serving(false).await;
        let want: BTreeSet<_> = [dead, flaky.local_addr()].into();
        rx.wait_for(|s| *s == want).await.unwrap();
        flaky.set_serving(true).await;
        let want: BTreeSet<_> = [dead].into();
        rx.wait_for(|s| *s == want).await.unwrap();
    }
}
