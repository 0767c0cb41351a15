//! Test utilities (feature `test-util`): a raw-resource ADS server and the grpc.testing TestService backend.

pub mod ads_server;
pub mod proto;
pub mod resources;
pub mod test_service;
