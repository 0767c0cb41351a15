//! Outbound (client) listeners: one per name a client may dial a service
//! port by (`H:P`, `short:P`), each an `api_listener` HCM with the fault
//! filter and the router, routes over RDS (`outbound|P||H`).

use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use mesh_core::resource::ResourceType;

use crate::config::ServicePort;

use super::Out;
use super::index::{Index, Service};
use super::wire::{FAULT_NAME, ROUTER_NAME, ads, any, cluster_name, http_filter};

/// The client listeners of `svc`'s `port`.
pub(super) fn outbound(_ix: &Index<'_>, svc: &Service<'_>, port: &ServicePort, out: &mut Out) {
    let route_name = cluster_name(port.number, "", &svc.host);
    for name in svc.names() {
        let name = format!("{name}:{}", port.number);
        let manager = hcm::HttpConnectionManager {
            stat_prefix: name.clone(),
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
                hcm::Rds {
                    config_source: Some(ads()),
                    route_config_name: route_name.clone(),
                },
            )),
            http_filters: vec![
                http_filter(FAULT_NAME, &HttpFault::default()),
                http_filter(ROUTER_NAME, &Router::default()),
            ],
            ..Default::default()
        };
        let l = listener::Listener {
            name: name.clone(),
            api_listener: Some(listener::ApiListener {
                api_listener: Some(any(&manager)),
            }),
            ..Default::default()
        };
        out.add(ResourceType::Listener, name, any(&l));
    }
}
