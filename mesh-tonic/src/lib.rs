//! mesh for tonic and axum: `xds:` client channels ([`Channel`], a tonic
//! `GrpcService`) in [`channel`], a plain-HTTP client for axum apps in
//! [`http`], xDS-enabled servers (gRFC A36) in [`server`], the admin
//! services (CSDS, A40; channelz, A14) in [`admin`], and gflags-style flag parsing for the
//! interop apps in [`flags`].
//!
//! Works with tonic services (`tonic::service::Routes`) and axum `Router`s
//! unchanged: mesh decides which connections and requests a service sees.

pub mod admin;
pub mod channel;
pub mod error;
pub mod flags;
pub mod http;
#[cfg(feature = "interop")]
pub mod interop_client;
pub mod server;

pub use channel::Channel;
pub use error::{Error, ErrorKind};
