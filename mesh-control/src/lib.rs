//! mesh-control: the control plane users run on a laptop and in CI.
//!
//! It reads the Istio YAML users deploy to Kubernetes (VirtualService,
//! DestinationRule, ServiceEntry, WorkloadEntry, PeerAuthentication,
//! AuthorizationPolicy), translates it into xDS shaped as istiod's proxyless
//! generator shapes it, and serves it over ADS to any proxyless client:
//! mesh's own, grpcio, grpc-go, grpc-java.
//!
//! Data flows one way: [`config`] (files → validated Istio model) →
//! [`translate`] (model → [`snapshot::XdsSnapshot`]) → [`ads`] (snapshot →
//! clients).

pub mod ads;
pub mod bootstrap_gen;
pub mod ca;
pub mod check;
pub mod config;
pub mod health;
pub mod server;
pub mod snapshot;
pub mod translate;
