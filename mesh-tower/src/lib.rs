//! mesh-tower (work in progress).
