//! mesh-tonic's integration tests (one binary; a module per topic).

mod channel;
mod interop_server;
mod server;
