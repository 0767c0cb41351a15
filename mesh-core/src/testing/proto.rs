//! Generated code of the gRPC interop protos (`proto/grpc/testing/*.proto`,
//! package `grpc.testing`): messages, clients and servers of TestService,
//! LoadBalancerStatsService, XdsUpdateHealthService,
//! XdsUpdateClientConfigureService, ReconnectService and UnimplementedService.
//! Methods a server does not override answer UNIMPLEMENTED.

/// The `grpc.testing` package.
pub mod grpc_testing {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("grpc.testing");
}
