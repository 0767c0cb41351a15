//! Build script: compiles gRPC channelz's proto
//! (`proto/grpc/channelz/v1/channelz.proto`) into the tonic server and
//! client behind `mesh_tonic::admin::Channelz`. Pure Rust (protox, with its
//! bundled well-known types): no protoc.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["grpc/channelz/v1/channelz.proto"], ["proto"])
        .unwrap_or_else(|e| panic!("cannot compile the channelz proto: {e:?}"));
    tonic_prost_build::configure()
        .build_server(true)
        // The client serves mesh's own tests.
        .build_client(true)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("cannot generate the channelz code: {e}"));
}
