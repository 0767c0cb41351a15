//! mesh's end-to-end load bench: the same unary gRPC echo (1 KiB request
//! and response) driven at fixed concurrency through several client stacks
//! ("contenders"), each cell measured in its own client process.
//!
//! The pieces, each a subcommand of the `mesh-bench` binary:
//! - [`backends`]: three echo servers in one process with a fixed runtime
//!   (plus three mTLS ones and a TLS one for the TLS rows);
//! - [`control`]: mesh-control serving one-endpoint and three-endpoint
//!   clusters for those backends (plaintext and ISTIO_MUTUAL), in its own
//!   process;
//! - [`client`]: one closed-loop load cell, printing a JSON line;
//! - [`orchestrate`]: runs the matrix several times and writes the
//!   [`report`] (Markdown, JSON, SVG). It also issues the TLS material
//!   ([`certs`], from mesh-control's CA) and runs HAProxy ([`haproxy`]) as
//!   the sidecar stand-in.
//!
//! Nothing here asserts speed: it measures and reports.

pub mod backends;
pub mod certs;
pub mod chart;
pub mod client;
pub mod contender;
pub mod control;
pub mod haproxy;
pub mod orchestrate;
pub mod procstat;
pub mod report;
pub mod xds_channel;

/// The boxed error the subcommands return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes in each request payload and each response payload.
pub const PAYLOAD_SIZE: usize = 1024;
