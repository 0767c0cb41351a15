//! timeout. STUB: being written.
