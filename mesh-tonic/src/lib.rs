//! mesh-tonic (work in progress).
