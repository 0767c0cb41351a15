//! mesh-core's [`ClientStatus`] as a CSDS `ClientConfig` (A40): one
//! `generic_xds_configs` entry per subscribed resource.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::envoy::service::status::v3::ClientConfig;
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::google::protobuf::Timestamp;
use mesh_core::xds::{ClientStatus, ResourceStatus, ResourceStatusEntry};

/// The CSDS view of one client, under `scope` (`client_scope`).
pub fn client_config(scope: &str, status: &ClientStatus) -> ClientConfig {
    ClientConfig {
        node: Some(status.node.clone()),
        generic_xds_configs: status.resources.iter().map(generic).collect(),
        client_scope: scope.to_owned(),
        ..ClientConfig::default()
    }
}

fn generic(r: &ResourceStatusEntry) -> GenericXdsConfig {
    // The last rejection; else an ambient error (A88: the cached resource
    // stays in use, the error is still worth showing).
    let error_state = match (&r.error, &r.ambient_error) {
        (Some((details, version, at)), _) => Some(UpdateFailureState {
            details: details.clone(),
            version_info: version.clone(),
            last_update_attempt: Some(timestamp(*at)),
            failed_configuration: None,
        }),
        (None, Some(details)) => Some(UpdateFailureState {
            details: details.clone(),
            ..UpdateFailureState::default()
        }),
        (None, None) => None,
    };
    GenericXdsConfig {
        type_url: r.kind.type_url().to_owned(),
        name: r.name.clone(),
        version_info: r.version.clone(),
        xds_config: r.raw.clone(),
        last_updated: r.last_updated.map(timestamp),
        client_status: csds_status(r.status) as i32,
        error_state,
        ..GenericXdsConfig::default()
    }
}

fn csds_status(s: ResourceStatus) -> ClientResourceStatus {
    match s {
        ResourceStatus::Requested => ClientResourceStatus::Requested,
        ResourceStatus::DoesNotExist => ClientResourceStatus::DoesNotExist,
        ResourceStatus::Acked => ClientResourceStatus::Acked,
        ResourceStatus::Nacked => ClientResourceStatus::Nacked,
        ResourceStatus::ReceivedError => ClientResourceStatus::ReceivedError,
        ResourceStatus::Timeout => ClientResourceStatus::Timeout,
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::google::protobuf::Any;
    use mesh_core::resource::ResourceType;

    use super::*;

    fn entry(status: ResourceStatus) -> ResourceStatusEntry {
        ResourceStatusEntry {
            kind: ResourceType::Listener,
            name: "grpc/server?xds.resource.listening_address=0.0.0.0:8080".into(),
            status,
            version: "3".into(),
            last_updated: Some(UNIX_EPOCH + Duration::new(10, 5)),
            error: None,
            ambient_error: None,
            raw: Some(Any {
                type_url: ResourceType::Listener.type_url().into(),
                value: vec![1, 2],
            }),
        }
    }

    #[test]
    fn resources_map_to_generic_configs() {
        let mut nacked = entry(ResourceStatus::Nacked);
        nacked.error = Some(("bad".into(), "4".into(), UNIX_EPOCH + Duration::new(20, 0)));
        let status = ClientStatus {
            node: Node {
                id: "n".into(),
                ..Node::default()
            },
            server: "localhost:1".into(),
            connected: true,
            versions: vec![],
            resources: vec![entry(ResourceStatus::Acked), nacked],
        };
        let c = client_config("#server", &status);
        assert_eq!(c.client_scope, "#server");
        assert_eq!(c.node.unwrap().id, "n");
        let [acked, nacked] = &c.generic_xds_configs[..] else {
            panic!("two configs")
        };
        assert_eq!(acked.client_status, ClientResourceStatus::Acked as i32);
        assert_eq!(acked.type_url, ResourceType::Listener.type_url());
        assert_eq!(acked.version_info, "3");
        assert_eq!(acked.xds_config.as_ref().unwrap().value, [1, 2]);
        let t = acked.last_updated.as_ref().unwrap();
        assert_eq!((t.seconds, t.nanos), (10, 5));
        assert!(acked.error_state.is_none());
        assert_eq!(nacked.client_status, ClientResourceStatus::Nacked as i32);
        let e = nacked.error_state.as_ref().unwrap();
        assert_eq!((e.details.as_str(), e.version_info.as_str()), ("bad", "4"));
        assert_eq!(e.last_update_attempt.as_ref().unwrap().seconds, 20);
    }

    #[test]
    fn every_status_maps() {
        use ClientResourceStatus as C;
        use ResourceStatus as R;
        for (r, c) in [
            (R::Requested, C::Requested),
            (R::DoesNotExist, C::DoesNotExist),
            (R::Acked, C::Acked),
            (R::Nacked, C::Nacked),
            (R::ReceivedError, C::ReceivedError),
            (R::Timeout, C::Timeout),
        ] {
            assert_eq!(csds_status(r), c);
        }
        let mut e = entry(ResourceStatus::Acked);
        e.ambient_error = Some("later update rejected".into());
        let g = generic(&e);
        assert_eq!(g.error_state.unwrap().details, "later update rejected");
    }
}
