//! mesh-control integration tests (one binary).

mod ads;
mod interop;
mod translate;
