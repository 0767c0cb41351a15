//! Outlier detection. STUB: being written.

/// Per-endpoint outlier state.
#[derive(Debug, Default)]
pub struct EndpointOutlier {}
