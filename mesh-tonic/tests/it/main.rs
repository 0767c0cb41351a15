//! mesh-tonic's integration tests (one binary; a module per topic).

mod channel;
mod channelz;
mod examples;
mod http1;
mod interop;
mod interop_server;
mod security;
mod server;
