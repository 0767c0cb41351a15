//! mesh-core integration tests: the xDS client over real loopback gRPC
//! against the test ADS server. One binary (faster to link).

mod ads;
mod cascade;
mod support;
