//! What every example shares: an embedded mesh-control fed Istio YAML,
//! grpc.testing backends on loopback, an RPC driver and the tables the
//! examples print. Read an example first; this is the plumbing.
//!
//! Every example takes `--fast` (or `MESH_EXAMPLE_FAST=1`): fewer RPCs and
//! shorter delays, for the smoke test that runs them all.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mesh_control::server::{ControlPlane, RunningControlPlane};
use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::test_service::{RunningBackend, TestServiceBackend};
use mesh_tonic::Channel;
use tonic::Code;

/// The boxed error the examples' `main` returns.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The service every gRPC example calls.
pub const HOST: &str = "echo.default.svc.cluster.local";
/// Its port.
pub const PORT: u16 = 7070;

/// The client's target.
pub fn target() -> String {
    format!("xds:///{HOST}:{PORT}")
}

/// `--fast` / `MESH_EXAMPLE_FAST=1`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Short run: fewer RPCs, shorter delays.
    pub fast: bool,
}

impl Options {
    /// From the command line and the environment.
    pub fn from_env() -> Self {
        let fast = std::env::args().skip(1).any(|a| a == "--fast")
            || std::env::var("MESH_EXAMPLE_FAST").is_ok_and(|v| v == "1");
        Options { fast }
    }

    /// `normal`, or `fast` in a short run.
    pub fn pick<T>(&self, normal: T, fast: T) -> T {
        if self.fast { fast } else { normal }
    }
}

/// Prints a section header.
pub fn section(title: &str) {
    println!();
    println!("== {title} ==");
}

/// Prints an indented note.
pub fn note(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}

/// An embedded control plane serving one service, `echo`, whose workloads
/// are the backends (one WorkloadEntry each, labelled `version: <name>`).
pub struct Mesh {
    /// The control plane.
    pub cp: RunningControlPlane,
    /// The backends, in the order given.
    pub backends: Vec<RunningBackend>,
    node_id: String,
    bootstrap: Bootstrap,
}

impl Mesh {
    /// Starts backends named `versions` and a control plane with the
    /// service, a DestinationRule with one subset per version (and
    /// `traffic_policy`, YAML under `trafficPolicy:`, if not empty) and the
    /// VirtualService `virtual_service` (none if empty).
    pub async fn start(
        client: &str,
        versions: &[&str],
        traffic_policy: &str,
        virtual_service: &str,
    ) -> Result<Mesh, BoxError> {
        let mut backends = Vec::new();
        for v in versions {
            backends.push(TestServiceBackend::new(*v).serve().await?);
        }
        let yaml = mesh_yaml(&backends, traffic_policy, virtual_service);
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse()?)
            .config_yaml(yaml)
            .start()
            .await?;
        let node_id = format!("sidecar~127.0.0.1~{client}.default~default.svc.cluster.local");
        let bootstrap = cp.client_bootstrap(&node_id);
        Ok(Mesh {
            cp,
            backends,
            node_id,
            bootstrap,
        })
    }

    /// Prints where everything runs.
    pub fn describe(&self) {
        println!(
            "   control plane  mesh-control on {} (Istio YAML in, xDS out)",
            self.cp.local_addr()
        );
        for b in &self.backends {
            println!(
                "   backend        {HOST} version {:<6} on {}",
                b.backend().hostname_str(),
                b.local_addr()
            );
        }
        println!("   client         mesh_tonic::Channel to {}", target());
    }

    /// The client bootstrap (what `GRPC_XDS_BOOTSTRAP` would point to).
    pub fn bootstrap(&self) -> Bootstrap {
        self.bootstrap.clone()
    }

    /// A channel to the service: the only mesh-specific line a client has.
    pub async fn channel(&self) -> Result<Channel, BoxError> {
        let channel = Channel::builder(target())
            .bootstrap(self.bootstrap())
            .config_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(channel)
    }

    /// Replaces the config (same workloads) and waits until the client
    /// acknowledged it.
    pub async fn apply(&self, traffic_policy: &str, virtual_service: &str) -> Result<(), BoxError> {
        self.apply_yaml(&mesh_yaml(&self.backends, traffic_policy, virtual_service))
            .await
    }

    /// Applies `yaml` and waits (at most 5 s) until this example's client
    /// ACKs the new version, then a moment for it to take effect.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<(), BoxError> {
        let before = self.cp.snapshot().version;
        self.cp.apply_yaml(yaml)?;
        let version = self.cp.snapshot().version;
        if version == before {
            return Ok(());
        }
        let want = version.to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let acked = self.cp.clients().iter().any(|c| {
                c.connected && c.node_id == self.node_id && c.acked.values().any(|v| *v == want)
            });
            if acked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The ACK leaves the xDS client before the new snapshot reaches
        // the channel's route table; give it a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    /// RPCs each backend received so far, by version.
    pub fn served(&self) -> BTreeMap<String, u64> {
        self.backends
            .iter()
            .map(|b| (b.backend().hostname_str().to_owned(), b.served()))
            .collect()
    }
}

/// The Istio YAML of the demo service.
pub fn mesh_yaml(
    backends: &[RunningBackend],
    traffic_policy: &str,
    virtual_service: &str,
) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: echo}}}}
"
    );
    for b in backends {
        let version = b.backend().hostname_str();
        y += &format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-{version}, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {port}}}
  labels: {{app: echo, version: {version}}}
",
            port = b.local_addr().port()
        );
    }
    y += &format!(
        "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: {HOST}
  subsets:
"
    );
    for b in backends {
        let v = b.backend().hostname_str();
        y += &format!("  - {{name: {v}, labels: {{version: {v}}}}}\n");
    }
    if !traffic_policy.is_empty() {
        y += "  trafficPolicy:\n";
        for line in traffic_policy.lines() {
            y += &format!("    {line}\n");
        }
    }
    if !virtual_service.is_empty() {
        y += "---\n";
        y += virtual_service;
    }
    y
}

/// A VirtualService for the demo service with `http` (YAML list items,
/// indented by two spaces) as its routes.
pub fn virtual_service(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  http:
{http}"
    )
}

/// A VirtualService splitting traffic between subsets by weight.
pub fn weights(split: &[(&str, u32)]) -> String {
    let mut http = String::from("  - route:\n");
    for (subset, w) in split {
        http +=
            &format!("    - {{destination: {{host: {HOST}, subset: {subset}}}, weight: {w}}}\n");
    }
    virtual_service(&http)
}

/// How one batch of RPCs went.
#[derive(Debug, Default)]
pub struct Tally {
    /// Successes by the answering backend's version.
    pub ok: BTreeMap<String, u64>,
    /// Failures by gRPC code: count and one message.
    pub failed: BTreeMap<&'static str, (u64, String)>,
    /// Every RPC's latency, sorted once the batch is done.
    pub latencies: Vec<Duration>,
}

impl Tally {
    /// RPCs in the batch.
    pub fn total(&self) -> u64 {
        self.ok_total() + self.failed_total()
    }

    /// Successful RPCs.
    pub fn ok_total(&self) -> u64 {
        self.ok.values().sum()
    }

    /// Failed RPCs.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().map(|(n, _)| n).sum()
    }

    /// Successes from `version`.
    pub fn ok_from(&self, version: &str) -> u64 {
        self.ok.get(version).copied().unwrap_or(0)
    }

    /// The `p`th latency percentile (0..=100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p / 100.0).round() as usize;
        self.latencies[i]
    }

    /// Prints a row per version in `versions` (zeros included), then one
    /// per failure code.
    pub fn print(&self, versions: &[&str]) {
        let total = self.total().max(1);
        for v in versions {
            row(v, self.ok_from(v), total, "");
        }
        for (code, (n, msg)) in &self.failed {
            row(code, *n, total, &format!("  e.g. \"{}\"", shorten(msg, 80)));
        }
    }

    /// Prints the latency percentiles.
    pub fn print_latency(&self) {
        println!(
            "   latency        p50 {:>7.1?}   p90 {:>7.1?}   p99 {:>7.1?}   max {:>7.1?}",
            self.percentile(50.0),
            self.percentile(90.0),
            self.percentile(99.0),
            self.percentile(100.0)
        );
    }

    /// One line: `v1 45%  v2 55%  errors 0`.
    fn summary(&self) -> String {
        let total = self.total().max(1) as f64;
        let mut s = String::new();
        for (v, n) in &self.ok {
            s += &format!("{v} {:>5.1}%  ", *n as f64 * 100.0 / total);
        }
        if self.failed_total() > 0 {
            s += &format!(
                "failed {:>5.1}%",
                self.failed_total() as f64 * 100.0 / total
            );
        }
        s
    }
}

fn row(label: &str, n: u64, total: u64, extra: &str) {
    const WIDTH: u64 = 40;
    let filled = (n * WIDTH + total / 2) / total;
    let bar: String = "█".repeat(filled as usize) + &"·".repeat((WIDTH - filled) as usize);
    println!(
        "   {label:<17} {bar} {n:>5}  {:>5.1}%{extra}",
        n as f64 * 100.0 / total as f64
    );
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The gRPC name of `code` (`UNAVAILABLE`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One batch of RPCs.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Metadata on every RPC.
    pub metadata: Vec<(&'static str, String)>,
    /// A deadline on every RPC (sent as `grpc-timeout`).
    pub timeout: Option<Duration>,
    /// RPCs in flight at once (default 8).
    pub concurrency: usize,
}

impl Batch {
    /// No metadata, no deadline, 8 in flight.
    pub fn new() -> Self {
        Batch {
            concurrency: 8,
            ..Default::default()
        }
    }

    /// Adds `key: value` to every RPC.
    pub fn header(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }

    /// Sets every RPC's deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how many RPCs are in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sends `n` UnaryCalls through `channel` with an unchanged
    /// tonic-generated client, showing the running split on a terminal.
    pub async fn run(&self, channel: &Channel, n: usize) -> Tally {
        let live = std::io::stdout().is_terminal();
        let mut tally = Tally::default();
        let mut calls = futures::stream::iter(0..n)
            .map(|_| {
                let mut client = TestServiceClient::new(channel.clone());
                let mut req = tonic::Request::new(SimpleRequest::default());
                for (k, v) in &self.metadata {
                    req.metadata_mut()
                        .insert(*k, v.parse().expect("valid metadata value"));
                }
                if let Some(t) = self.timeout {
                    req.set_timeout(t);
                }
                async move {
                    let start = Instant::now();
                    let result = client.unary_call(req).await;
                    (start.elapsed(), result.map(|r| r.into_inner().hostname))
                }
            })
            .buffer_unordered(self.concurrency);
        let mut last_draw = Instant::now();
        while let Some((latency, result)) = calls.next().await {
            tally.latencies.push(latency);
            match result {
                Ok(host) => *tally.ok.entry(host).or_default() += 1,
                Err(status) => {
                    let e = tally
                        .failed
                        .entry(code_name(status.code()))
                        .or_insert_with(|| (0, status.message().to_owned()));
                    e.0 += 1;
                }
            }
            if live && last_draw.elapsed() > Duration::from_millis(60) {
                last_draw = Instant::now();
                print!("\r   {:>5}/{n}  {}", tally.total(), tally.summary());
                let _ = std::io::stdout().flush();
            }
        }
        if live {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
        tally.latencies.sort_unstable();
        tally
    }
}
