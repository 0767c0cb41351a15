//! Endpoint picking. STUB: being written.

/// The balancer of one cluster.
#[derive(Debug, Default)]
pub struct Balancer {}
