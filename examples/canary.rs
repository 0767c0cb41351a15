//! Canary release with header-based routing.
//!
//! ```sh
//! cargo run --example canary [-- --fast]
//! ```
//!
//! v1 is stable, v2 the canary. One VirtualService sends every RPC that
//! carries `x-canary: true` to v2 (testers opt in), and splits the rest
//! 90/10 between v1 and v2. Then the canary is promoted: everything goes
//! to v2. The client is a stock tonic-generated client on a
//! `mesh_tonic::Channel`; the header is ordinary gRPC metadata.

#[path = "common/mod.rs"]
mod common;

use common::{Batch, BoxError, HOST, Mesh, Options, note, section, virtual_service};

const VERSIONS: [&str; 2] = ["v1", "v2"];

/// Header match first (routes are tried in order), then the weighted rest.
fn canary(stable: u32, canary: u32) -> String {
    virtual_service(&format!(
        "  - name: opted-in
    match: [{{headers: {{x-canary: {{exact: \"true\"}}}}}}]
    route: [{{destination: {{host: {HOST}, subset: v2}}}}]
  - name: everyone-else
    route:
    - {{destination: {{host: {HOST}, subset: v1}}, weight: {stable}}}
    - {{destination: {{host: {HOST}, subset: v2}}, weight: {canary}}}
"
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    let rpcs = opts.pick(400, 100);

    println!("mesh canary: header-based routing plus a weighted split");
    let mesh = Mesh::start("canary", &VERSIONS, "", &canary(90, 10)).await?;
    mesh.describe();
    let channel = mesh.channel().await?;

    section("1. The canary is live: x-canary: true → v2, everyone else 90/10");
    note("match: [{headers: {x-canary: {exact: \"true\"}}}] → subset v2");
    note("otherwise: v1 weight 90, v2 weight 10");
    let tally = Batch::new()
        .header("x-canary", "true")
        .run(&channel, rpcs)
        .await;
    println!("-- {rpcs} RPCs with x-canary: true");
    tally.print(&VERSIONS);
    let tally = Batch::new().run(&channel, rpcs).await;
    println!("-- {rpcs} RPCs without the header");
    tally.print(&VERSIONS);
    let tally = Batch::new()
        .header("x-canary", "false")
        .run(&channel, rpcs)
        .await;
    println!("-- {rpcs} RPCs with x-canary: false (not an exact match)");
    tally.print(&VERSIONS);

    section("2. Promotion: everyone else moves to v2 as well");
    mesh.apply("", &canary(0, 100)).await?;
    let tally = Batch::new().run(&channel, rpcs).await;
    println!("-- {rpcs} RPCs without the header");
    tally.print(&VERSIONS);

    section("3. Rollback: the canary misbehaves, everyone goes back to v1");
    mesh.apply("", &canary(100, 0)).await?;
    let tally = Batch::new().run(&channel, rpcs).await;
    println!("-- {rpcs} RPCs without the header");
    tally.print(&VERSIONS);
    let tally = Batch::new()
        .header("x-canary", "true")
        .run(&channel, rpcs)
        .await;
    println!("-- {rpcs} RPCs with x-canary: true (testers still reach the canary)");
    tally.print(&VERSIONS);

    section("Done");
    Ok(())
}
