//! mesh's end-to-end load bench: the same unary gRPC echo (1 KiB request
//! and response) driven at fixed concurrency through several client stacks
//! ("contenders"), each cell measured in its own client process.
//!
//! The pieces, each a subcommand of the `mesh-bench` binary:
//! - [`backends`]: three echo servers in one process with a fixed runtime;
//! - [`control`]: mesh-control serving a one-endpoint and a three-endpoint
//!   cluster for those backends, in its own process;
//! - [`client`]: one closed-loop load cell, printing a JSON line;
//! - [`orchestrate`]: runs the matrix several times and writes the
//!   [`report`] (Markdown, JSON, SVG).
//!
//! Nothing here asserts speed: it measures and reports.

pub mod backends;
pub mod chart;
pub mod client;
pub mod contender;
pub mod control;
pub mod orchestrate;
pub mod procstat;
pub mod report;

/// The boxed error the subcommands return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes in each request payload and each response payload.
pub const PAYLOAD_SIZE: usize = 1024;
