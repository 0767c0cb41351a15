//! The one place that orders the layers. STUB: being written.
