//! discovery. STUB: being written.
