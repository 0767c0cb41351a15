//! Resilience against a misbehaving backend: retries (and the per-cluster
//! cap on them), circuit breaking, and outlier ejection — all from Istio
//! YAML, all enforced in the client.
//!
//! ```sh
//! cargo run --example resilience [-- --fast]
//! ```
//!
//! Three workloads serve the service: `good-1`, `good-2` and `bad`. RPCs
//! that carry `rpc-behavior: hostname=bad error-code-14` fail with
//! UNAVAILABLE when they reach `bad`.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Batch, BoxError, HOST, Mesh, Options, Tally, note, section, virtual_service};

const VERSIONS: [&str; 3] = ["good-1", "good-2", "bad"];
const BAD: (&str, &str) = ("rpc-behavior", "hostname=bad error-code-14");

fn route(retries: &str) -> String {
    virtual_service(&format!(
        "  - retries: {retries}
    route: [{{destination: {{host: {HOST}}}}}]
"
    ))
}

/// One line per round: successes per backend and failures.
fn round(label: &str, t: &Tally) {
    print!("   {label:<10}");
    for v in VERSIONS {
        print!(" {v} {:>3}  ", t.ok_from(v));
    }
    println!(" failed {:>3}", t.failed_total());
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    let rpcs = opts.pick(300, 90);

    println!("mesh resilience: retries, circuit breaking and outlier ejection");
    let mesh = Mesh::start("resilience", &VERSIONS, "", &route("{attempts: 0}")).await?;
    mesh.describe();
    let channel = mesh.channel().await?;
    let failing = Batch::new().header(BAD.0, BAD.1);

    section("1. Retries: `bad` fails every RPC it gets");
    let tally = failing.run(&channel, rpcs).await;
    println!("-- retries: {{attempts: 0}}");
    tally.print(&VERSIONS);

    mesh.apply("", &route("{attempts: 3, retryOn: unavailable}"))
        .await?;
    let tally = failing.run(&channel, rpcs).await;
    println!("-- retries: {{attempts: 3, retryOn: unavailable}}, 8 RPCs in flight");
    tally.print(&VERSIONS);
    note("Some failures remain: a cluster allows only so many retries at once");
    note("(Envoy's retry budget: 20% of active requests, at least 3), so a failing");
    note("backend cannot multiply the load. connectionPool.http.maxRetries sets a cap:");

    let max_retries = "connectionPool: {http: {maxRetries: 100}}";
    mesh.apply(max_retries, &route("{attempts: 3, retryOn: unavailable}"))
        .await?;
    let tally = failing.run(&channel, rpcs).await;
    println!("-- plus trafficPolicy {max_retries}");
    tally.print(&VERSIONS);

    section("2. Circuit breaking: at most 4 RPCs in flight to the cluster");
    let breaker = "connectionPool: {http: {http2MaxRequests: 4}}";
    note(&format!("trafficPolicy: {breaker}"));
    mesh.apply(breaker, &route("{attempts: 0}")).await?;
    let hold = opts.pick(Duration::from_millis(800), Duration::from_millis(300));
    let served_before: u64 = mesh.served().values().sum();
    let held = tokio::spawn({
        let channel = channel.clone();
        async move {
            // `keep-open`: the backend never answers; the deadline ends them.
            Batch::new()
                .header("rpc-behavior", "keep-open")
                .timeout(hold)
                .concurrency(4)
                .run(&channel, 4)
                .await
        }
    });
    // Wait until all four hold their slots at the backends.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mesh.served().values().sum::<u64>() < served_before + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tally = Batch::new().concurrency(4).run(&channel, 20).await;
    println!("-- 20 RPCs while 4 slow ones hold every slot");
    tally.print(&VERSIONS);
    let held = held.await?;
    println!(
        "-- the 4 slow RPCs ended at their {} ms deadline",
        hold.as_millis()
    );
    held.print(&[]);
    let tally = Batch::new().concurrency(4).run(&channel, 20).await;
    println!("-- 20 RPCs, 4 at a time, once the slots are free");
    tally.print(&VERSIONS);

    section("3. Outlier ejection: `bad` is taken out after 3 consecutive errors");
    let interval = opts.pick(500, 200);
    let ejection = opts.pick(1500, 400);
    let outlier = format!(
        "outlierDetection: {{consecutive5xxErrors: 3, interval: {interval}ms, baseEjectionTime: {ejection}ms, maxEjectionPercent: 50}}"
    );
    note(&format!("trafficPolicy: {outlier}"));
    note("retries: {attempts: 0}, so every failure shows");
    mesh.apply(&outlier, &route("{attempts: 0}")).await?;
    let per_round = opts.pick(60, 30);
    for i in 1..=3 {
        let t = failing
            .clone()
            .concurrency(1)
            .run(&channel, per_round)
            .await;
        round(&format!("round {i}"), &t);
    }
    note(&format!(
        "`bad` recovers (the header is dropped); after baseEjectionTime ({ejection} ms)"
    ));
    note("it is returned to the pool on the next detector sweep:");
    let start = Instant::now();
    let mut i = 4;
    loop {
        let t = Batch::new().concurrency(1).run(&channel, per_round).await;
        round(&format!("round {i}"), &t);
        if t.ok_from("bad") > 0 || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(interval / 2)).await;
    }

    section("Done");
    Ok(())
}
