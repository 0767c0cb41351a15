//! mesh-control integration tests (one binary).

mod ads;
mod ca;
mod interop;
mod translate;
