#!/usr/bin/env bash
# Runs every test of the workspace's default members (the load bench in
# benches/ is not one: it is run by hand). Idempotent; installs what the tests'
# real peers need (the interop tests install grpcio into target/ themselves).
# Set MESH_REQUIRE_PEERS=1 to fail, not skip, when a peer cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo test --all-targets --no-fail-fast
cargo test --doc
