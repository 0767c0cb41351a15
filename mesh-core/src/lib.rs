//! mesh-core: the xDS client, gRPC bootstrap files, validated config types
//! and the watchers that publish config snapshots to the data plane.
//!
//! Data flows one way: xDS wire resources ([`resource`]) are validated into
//! domain types, cached by the ADS client ([`xds`]), resolved into one
//! consistent snapshot per target ([`watch`]) and published through `watch`
//! channels. No protobuf type appears in the snapshot types.

pub mod bootstrap;
pub mod ca_client;
pub mod resource;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod watch;
pub mod xds;
