//! The interop client's control services on the stats port:
//! LoadBalancerStatsService (GetClientStats, GetClientAccumulatedStats)
//! over [`Stats`](super::stats::Stats), and
//! XdsUpdateClientConfigureService (Configure), which replaces the RPC
//! types, metadata and deadline for the RPCs sent after it.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::testing::proto::grpc_testing::load_balancer_stats_service_server::LoadBalancerStatsService;
use mesh_core::testing::proto::grpc_testing::xds_update_client_configure_service_server::XdsUpdateClientConfigureService;
use mesh_core::testing::proto::grpc_testing::{
    ClientConfigureRequest, ClientConfigureResponse, LoadBalancerAccumulatedStatsRequest,
    LoadBalancerAccumulatedStatsResponse, LoadBalancerStatsRequest, LoadBalancerStatsResponse,
};
use tonic::{Request, Response, Status};

use super::config::{RpcConfig, RpcMetadata, RpcType};
use super::rpc::Shared;

/// Both services over the client's shared state.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub shared: Arc<Shared>,
    /// `--rpc_timeout_sec`, used when Configure leaves `timeout_sec` 0.
    pub default_timeout: Duration,
}

#[tonic::async_trait]
impl LoadBalancerStatsService for Control {
    async fn get_client_stats(
        &self,
        request: Request<LoadBalancerStatsRequest>,
    ) -> Result<Response<LoadBalancerStatsResponse>, Status> {
        let req = request.into_inner();
        let num_rpcs = u64::try_from(req.num_rpcs)
            .map_err(|_| Status::invalid_argument("num_rpcs is negative"))?;
        let timeout = u64::try_from(req.timeout_sec)
            .map_err(|_| Status::invalid_argument("timeout_sec is negative"))?;
        let watcher = self.shared.stats.watch(num_rpcs, &req.metadata_keys);
        let response = self
            .shared
            .stats
            .collect(watcher, Duration::from_secs(timeout))
            .await;
        Ok(Response::new(response))
    }

    async fn get_client_accumulated_stats(
        &self,
        _request: Request<LoadBalancerAccumulatedStatsRequest>,
    ) -> Result<Response<LoadBalancerAccumulatedStatsResponse>, Status> {
        Ok(Response::new(self.shared.stats.accumulated()))
    }
}

#[tonic::async_trait]
impl XdsUpdateClientConfigureService for Control {
    async fn configure(
        &self,
        request: Request<ClientConfigureRequest>,
    ) -> Result<Response<ClientConfigureResponse>, Status> {
        let config = rpc_config(request.into_inner(), self.default_timeout)
            .map_err(Status::invalid_argument)?;
        tracing::info!(?config, "client reconfigured");
        self.shared.rpc.store(Arc::new(config));
        Ok(Response::new(ClientConfigureResponse {}))
    }
}

/// Validates a Configure request (empty `types` sends nothing).
fn rpc_config(req: ClientConfigureRequest, default_timeout: Duration) -> Result<RpcConfig, String> {
    let rpc_type = |v: i32| RpcType::from_proto(v).ok_or_else(|| format!("unknown RPC type {v}"));
    let mut types = Vec::new();
    for t in req.types {
        let t = rpc_type(t)?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let metadata = req
        .metadata
        .iter()
        .map(|m| RpcMetadata::new(rpc_type(m.r#type)?, &m.key, &m.value))
        .collect::<Result<_, _>>()?;
    let timeout = match u64::try_from(req.timeout_sec) {
        Ok(0) => default_timeout,
        Ok(s) => Duration::from_secs(s),
        Err(_) => return Err("timeout_sec is negative".into()),
    };
    Ok(RpcConfig {
        types,
        metadata,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use mesh_core::testing::proto::grpc_testing::client_configure_request::{
        Metadata, RpcType as ProtoType,
    };

    use super::*;

    #[test]
    fn configure_requests_become_rpc_configs() {
        let req = ClientConfigureRequest {
            types: vec![ProtoType::UnaryCall.into(), ProtoType::EmptyCall.into()],
            metadata: vec![Metadata {
                r#type: ProtoType::UnaryCall.into(),
                key: "rpc-behavior".into(),
                value: "keep-open".into(),
            }],
            timeout_sec: 0,
        };
        let c = rpc_config(req, Duration::from_secs(20)).unwrap();
        assert_eq!(c.types, [RpcType::UnaryCall, RpcType::EmptyCall]);
        assert_eq!(c.metadata[0].rpc, RpcType::UnaryCall);
        assert_eq!(c.timeout, Duration::from_secs(20));
        let req = ClientConfigureRequest {
            types: vec![7],
            ..Default::default()
        };
        assert_eq!(
            rpc_config(req, Duration::from_secs(1)).unwrap_err(),
            "unknown RPC type 7"
        );
        let req = ClientConfigureRequest {
            timeout_sec: 2,
            ..Default::default()
        };
        let c = rpc_config(req, Duration::from_secs(1)).unwrap();
        assert!(c.types.is_empty());
        assert_eq!(c.timeout, Duration::from_secs(2));
    }
}
