//! fault. STUB: being written.
