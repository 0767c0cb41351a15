//! Fault injection (Istio's VirtualService `fault`, gRFC A33): delays and
//! aborts injected by the client itself, with percentages.
//!
//! ```sh
//! cargo run --example fault-injection [-- --fast]
//! ```
//!
//! 1. a fixed delay on half the RPCs: the latency percentiles split in two;
//! 2. an abort on a quarter of them, with a gRPC status: the error count;
//! 3. delay and abort together;
//! 4. a delay longer than the route's timeout: the deadline is fixed
//!    before the delay starts, so every RPC ends at the timeout.
//!
//! Faults are decided once per RPC, above retries: an injected abort is
//! never retried, and aborted RPCs never reach a backend.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Batch, BoxError, HOST, Mesh, Options, note, section, virtual_service};

const VERSIONS: [&str; 2] = ["v1", "v2"];

/// One route to every backend with `fault` (YAML flow mapping) and
/// optionally a timeout.
fn with_fault(fault: &str, timeout: Option<Duration>) -> String {
    let timeout = timeout.map_or(String::new(), |t| {
        format!("    timeout: {}ms\n", t.as_millis())
    });
    virtual_service(&format!(
        "  - fault: {fault}
{timeout}    retries: {{attempts: 0}}
    route: [{{destination: {{host: {HOST}}}}}]
"
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    let rpcs = opts.pick(400, 80);
    let delay = opts.pick(Duration::from_millis(100), Duration::from_millis(30));
    let ms = delay.as_millis();
    let batch = Batch::new().concurrency(16);

    println!("mesh fault injection: delays and aborts decided by the client's fault filter");
    let mesh = Mesh::start("faults", &VERSIONS, "", "").await?;
    mesh.describe();
    let channel = mesh.channel().await?;

    section("0. Baseline: no faults");
    let tally = batch.run(&channel, rpcs).await;
    tally.print(&VERSIONS);
    tally.print_latency();

    section(&format!(
        "1. Delay: 50% of RPCs wait {ms} ms before they are sent"
    ));
    let fault = format!("{{delay: {{percentage: {{value: 50}}, fixedDelay: {ms}ms}}}}");
    note(&format!("fault: {fault}"));
    mesh.apply("", &with_fault(&fault, None)).await?;
    let tally = batch.run(&channel, rpcs).await;
    tally.print(&VERSIONS);
    tally.print_latency();
    let delayed = tally.latencies.iter().filter(|l| **l >= delay).count();
    println!(
        "   delayed        {delayed} of {} RPCs took {ms} ms or more ({:.1}%)",
        tally.total(),
        delayed as f64 * 100.0 / tally.total().max(1) as f64
    );

    section("2. Abort: 25% of RPCs fail with INTERNAL, no backend involved");
    let fault = "{abort: {percentage: {value: 25}, grpcStatus: INTERNAL}}";
    note(&format!("fault: {fault}"));
    mesh.apply("", &with_fault(fault, None)).await?;
    let before: u64 = mesh.served().values().sum();
    let tally = batch.run(&channel, rpcs).await;
    let served = mesh.served().values().sum::<u64>() - before;
    tally.print(&VERSIONS);
    println!(
        "   backends received {served} RPCs; {} were aborted in the client",
        tally.failed_total()
    );

    section("3. Both: 50% delayed, 20% aborted (an abort waits for its delay)");
    let fault = format!(
        "{{delay: {{percentage: {{value: 50}}, fixedDelay: {ms}ms}}, abort: {{percentage: {{value: 20}}, httpStatus: 503}}}}"
    );
    note(&format!("fault: {fault}"));
    mesh.apply("", &with_fault(&fault, None)).await?;
    let tally = batch.run(&channel, rpcs).await;
    tally.print(&VERSIONS);
    tally.print_latency();

    let timeout = delay / 2;
    section(&format!(
        "4. A {ms} ms delay on every RPC against a {} ms route timeout",
        timeout.as_millis()
    ));
    let fault = format!("{{delay: {{percentage: {{value: 100}}, fixedDelay: {ms}ms}}}}");
    note(&format!(
        "fault: {fault}, timeout: {}ms",
        timeout.as_millis()
    ));
    note("the deadline starts before the delay, so the delay never outlasts it (gRFC A31)");
    mesh.apply("", &with_fault(&fault, Some(timeout))).await?;
    let tally = batch.run(&channel, opts.pick(100, 32)).await;
    tally.print(&VERSIONS);
    tally.print_latency();

    section("Done");
    Ok(())
}
