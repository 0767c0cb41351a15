//! mesh-control (work in progress).
