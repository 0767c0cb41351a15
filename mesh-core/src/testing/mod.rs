//! Test utilities (feature `test-util`): a raw-resource ADS server, the
//! grpc.testing TestService backend and Python gRPC peers (grpcio).

pub mod ads_server;
pub mod proto;
pub mod python;
pub mod resources;
pub mod test_service;
