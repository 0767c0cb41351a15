//! mesh-tower's integration tests: one binary, one module per area, over
//! real loopback gRPC backends.

mod authz;
mod balance;
mod breaker;
mod endpoint;
mod outlier;
mod retry;
mod route;
mod stack;
mod tls;
