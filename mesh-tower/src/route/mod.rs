//! route. STUB: being written.
