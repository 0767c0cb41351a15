//! Connections to one endpoint. STUB: being written.

/// The connections to one endpoint.
#[derive(Debug, Default)]
pub struct Connection {}
