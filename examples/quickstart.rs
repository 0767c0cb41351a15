//! mesh quickstart: a proxyless service mesh in one process.
//!
//! ```sh
//! cargo run --example quickstart          # ~5 s
//! cargo run --example quickstart -- --fast
//! ```
//!
//! It starts mesh-control (the control plane, reading Istio YAML), three
//! versions of a gRPC echo service on loopback, and a client: a stock
//! tonic-generated client on a `mesh_tonic::Channel`. Then it changes the
//! YAML live, as `kubectl apply` would, and shows what the client does:
//!
//! 1. traffic shifting from v1 to v2: 100/0 → 90/10 → 50/50 → 0/100;
//! 2. fault injection: half the RPCs aborted by the mesh;
//! 3. retries: v3 starts failing; without retries a third of the RPCs
//!    fail, with a retry policy they all succeed.
//!
//! No sidecar is involved: the client itself speaks xDS.

#[path = "common/mod.rs"]
mod common;

use common::{Batch, BoxError, HOST, Mesh, Options, note, section, virtual_service, weights};

const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    let rpcs = opts.pick(400, 100);

    println!("mesh quickstart: a proxyless service mesh in one process");
    let mesh = Mesh::start("quickstart", &VERSIONS, "", &weights(&[("v1", 100)])).await?;
    mesh.describe();

    // The one mesh-specific line: where the channel comes from. Everything
    // else is plain tonic (`TestServiceClient::new(channel)`).
    let channel = mesh.channel().await?;

    section("1. Traffic shifting: v1 → v2 (VirtualService weights, applied live)");
    for (v1, v2) in [(100, 0), (90, 10), (50, 50), (0, 100)] {
        mesh.apply("", &weights(&[("v1", v1), ("v2", v2)])).await?;
        let tally = Batch::new().run(&channel, rpcs).await;
        println!("-- weights v1={v1} v2={v2}: {rpcs} RPCs");
        tally.print(&VERSIONS);
    }

    section("2. Fault injection: the mesh aborts 50% of RPCs with HTTP 503");
    note("fault: {abort: {percentage: {value: 50}, httpStatus: 503}} → gRPC UNAVAILABLE,");
    note("injected by the client's own fault filter; no backend sees those RPCs.");
    let served_before: u64 = mesh.served().values().sum();
    mesh.apply(
        "",
        &virtual_service(&format!(
            "  - fault: {{abort: {{percentage: {{value: 50}}, httpStatus: 503}}}}
    route: [{{destination: {{host: {HOST}}}}}]
"
        )),
    )
    .await?;
    let tally = Batch::new().run(&channel, rpcs).await;
    let served: u64 = mesh.served().values().sum::<u64>() - served_before;
    println!("-- {rpcs} RPCs, round robin over all versions");
    tally.print(&VERSIONS);
    println!("   backends received {served} RPCs: exactly the ones not aborted");

    section("3. Retries: v3 starts failing every RPC with UNAVAILABLE");
    note("each RPC carries `rpc-behavior: hostname=v3 error-code-14`, so v3 fails it.");
    // One RPC at a time: round robin then sends each retry to the next
    // backend. (With many in flight, a retry may land on v3 again, and a
    // cluster allows only a few concurrent retries: see `resilience`.)
    let failing = Batch::new()
        .header("rpc-behavior", "hostname=v3 error-code-14")
        .concurrency(1);
    let rpcs = opts.pick(200, 60);

    let no_retries = format!(
        "  - retries: {{attempts: 0}}
    route: [{{destination: {{host: {HOST}}}}}]
"
    );
    mesh.apply("", &virtual_service(&no_retries)).await?;
    let tally = failing.run(&channel, rpcs).await;
    println!("-- retries: {{attempts: 0}} (istiod's default retry policy switched off)");
    tally.print(&VERSIONS);

    let retries = format!(
        "  - retries: {{attempts: 3, retryOn: unavailable}}
    route: [{{destination: {{host: {HOST}}}}}]
"
    );
    mesh.apply("", &virtual_service(&retries)).await?;
    let v3_before = mesh.served()["v3"];
    let tally = failing.run(&channel, rpcs).await;
    let v3_attempts = mesh.served()["v3"] - v3_before;
    println!("-- retries: {{attempts: 3, retryOn: unavailable}}");
    tally.print(&VERSIONS);
    println!(
        "   v3 still got {v3_attempts} attempts; each failed attempt was retried on another backend"
    );

    section("Done");
    note("Next: cargo run --example canary | fault-injection | resilience | axum-http");
    note("Point your own client at a control plane with GRPC_XDS_BOOTSTRAP and");
    note("`mesh_tonic::Channel::from_target(\"xds:///your-service:port\")`.");
    Ok(())
}
