//! The xDS client: ADS state of the world over tonic.
//!
//! [`XdsClient`] owns one ADS stream and a cache of validated resources;
//! [`ResourceWatch`] is one subscription. Validation lives in
//! [`crate::resource`]; resolving listeners into routes, clusters and
//! endpoints lives in [`crate::watch`]. Delta xDS, fallback between servers
//! (A71) and federation (A47) are not here yet; the worker is shaped so a
//! delta stream is a second `run_stream`.

mod ads;
pub mod backoff;
mod client;
mod resource_state;
mod status;
mod transport;
mod type_state;

pub use ads::AdsOptions;
pub use client::{ResourceWatch, SERVER_CLIENT_KEY, XdsClient};
pub use resource_state::{AnyResource, ResourceError, ResourceStatus, ResourceUpdate};
pub use status::{ClientStatus, ResourceStatusEntry};
pub use type_state::DataErrorPolicy;
