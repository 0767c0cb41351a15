//! retry. STUB: being written.
