//! mesh-tonic's integration tests (one binary; a module per topic).

/// Test certificates: mesh-tower's TLS test helpers (rcgen), shared by the
/// security, interop security and channelz tests.
#[path = "../../../mesh-tower/src/tls/testing.rs"]
mod certs;

mod channel;
mod channelz;
mod examples;
mod http1;
mod interop;
mod interop_server;
mod security;
mod server;
