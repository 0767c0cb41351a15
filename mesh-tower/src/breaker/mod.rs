//! Circuit breaking (A32). STUB: being written.

/// Process-wide counters of one {cluster, EDS service name}.
#[derive(Debug, Default)]
pub struct Breaker {}
