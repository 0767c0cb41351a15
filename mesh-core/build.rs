//! Build script: with the `test-util` feature, compiles the grpc.testing
//! interop protos (`proto/grpc/testing/*.proto`) into tonic clients and
//! servers for `mesh_core::testing::proto`. Pure Rust (protox): no protoc.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TEST_UTIL").is_none() {
        return;
    }
    #[cfg(feature = "test-util")]
    compile_grpc_testing();
}

#[cfg(feature = "test-util")]
fn compile_grpc_testing() {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "grpc/testing/empty.proto",
            "grpc/testing/messages.proto",
            "grpc/testing/test.proto",
        ],
        ["proto"],
    )
    .unwrap_or_else(|e| panic!("cannot compile the grpc.testing protos: {e:?}"));
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Unimplemented methods answer UNIMPLEMENTED, so a test only writes
        // the methods it needs.
        .generate_default_stubs(true)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("cannot generate the grpc.testing code: {e}"));
}
