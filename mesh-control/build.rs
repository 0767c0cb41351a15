//! Build script: compiles Istio's CA API (`proto/istio/security/v1alpha1/
//! ca.proto`, package `istio.v1.auth`) into a tonic server and client for
//! `mesh_control::ca::proto`. Pure Rust (protox): no protoc.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["security/v1alpha1/ca.proto"], ["proto/istio"])
        .unwrap_or_else(|e| panic!("cannot compile Istio's CA proto: {e:?}"));
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // `metadata` is a google.protobuf.Struct: reuse envoy-types' copy so
        // no second well-known-types crate is needed.
        .extern_path(
            ".google.protobuf.Struct",
            "::envoy_types::pb::google::protobuf::Struct",
        )
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("cannot generate Istio's CA API code: {e}"));
}
