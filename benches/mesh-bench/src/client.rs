//! The `client` subcommand: one load cell. A closed loop keeps
//! `concurrency` unary calls in flight through one contender's channel,
//! warms up, then measures for a fixed duration: requests/s, latency
//! percentiles (HDR histogram), CPU seconds per 10k requests and peak RSS
//! of this process alone (and, for the HAProxy row, the proxy's CPU over
//! the same window). Prints one [`CellResult`] JSON line.
//!
//! Before the clock starts, one call must succeed (an xDS channel may
//! still be fetching its config). Does not start backends, the control
//! plane or HAProxy: it is told where they are.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::{Payload, SimpleRequest};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::transport::{Certificate, Channel as TonicChannel, ClientTlsConfig, Endpoint, Identity};

use crate::certs::{CertDirs, TLS_SERVER_NAME, read_pem};
use crate::contender::Contender;
use crate::control::{HOST_ONE, HOST_ONE_MTLS, HOST_THREE, HOST_THREE_MTLS, target};
use crate::xds_channel::XdsGrpc;
use crate::{BoxError, PAYLOAD_SIZE, procstat};

/// How long a channel may take to make its first successful call.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Highest latency the histogram records (longer ones are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// One cell's parameters.
#[derive(Debug, Clone)]
pub struct CellSpec {
    /// The client stack.
    pub contender: Contender,
    /// Calls kept in flight.
    pub concurrency: usize,
    /// Calls before measuring starts.
    pub warmup: Duration,
    /// How long to measure.
    pub duration: Duration,
    /// The backends (the first is the one-backend target).
    pub backends: Vec<SocketAddr>,
    /// The client bootstrap, for the xDS contenders.
    pub bootstrap: Option<PathBuf>,
    /// The client bootstrap with a certificate provider, for the mesh mTLS
    /// contenders.
    pub bootstrap_mtls: Option<PathBuf>,
    /// HAProxy's frontend, for the HAProxy contender.
    pub proxy: Option<SocketAddr>,
    /// HAProxy's process id: its CPU over the window is reported too.
    pub proxy_pid: Option<u32>,
    /// The bare tonic TLS backend, for the `tonic-tls` contender.
    pub tls_backend: Option<SocketAddr>,
    /// The bench certificates' root directory (see [`CertDirs`]).
    pub certs: Option<PathBuf>,
    /// Client runtime worker threads.
    pub workers: usize,
}

/// One cell's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The contender's name.
    pub contender: String,
    /// Calls kept in flight.
    pub concurrency: usize,
    /// Successful calls started in the measured window.
    pub requests: u64,
    /// Failed calls started in the measured window.
    pub errors: u64,
    /// Measured window, seconds.
    pub seconds: f64,
    /// Successful calls per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile latency, µs.
    pub p90_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Client CPU (user + system) seconds per 10,000 successful calls.
    pub cpu_s_per_10k: f64,
    /// Client peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// The proxy's CPU seconds per 10,000 successful calls, for the
    /// HAProxy row (the client's are in `cpu_s_per_10k`).
    #[serde(default)]
    pub proxy_cpu_s_per_10k: Option<f64>,
}

/// A client that can make the echo call; implemented for the generated
/// client over each channel type, so the load loop is monomorphic per
/// contender (no boxing that would tax every stack alike).
pub trait Echo: Clone + Send + 'static {
    /// One UnaryCall; the response body is dropped.
    fn echo(&mut self, req: SimpleRequest) -> impl Future<Output = Result<(), Status>> + Send;
}

impl Echo for TestServiceClient<TonicChannel> {
    async fn echo(&mut self, req: SimpleRequest) -> Result<(), Status> {
        self.unary_call(req).await.map(drop)
    }
}

impl Echo for TestServiceClient<mesh_tonic::Channel> {
    async fn echo(&mut self, req: SimpleRequest) -> Result<(), Status> {
        self.unary_call(req).await.map(drop)
    }
}

impl Echo for TestServiceClient<XdsGrpc> {
    async fn echo(&mut self, req: SimpleRequest) -> Result<(), Status> {
        self.unary_call(req).await.map(drop)
    }
}

/// The request every call sends: a 1 KiB payload, asking for 1 KiB back.
pub fn echo_request() -> SimpleRequest {
    SimpleRequest {
        response_size: PAYLOAD_SIZE as i32,
        payload: Some(Payload {
            body: vec![0x5a; PAYLOAD_SIZE],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs one cell on a fresh runtime and returns its measurements.
pub fn run(spec: &CellSpec) -> Result<CellResult, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.workers)
        .enable_all()
        .build()?;
    rt.block_on(run_cell(spec))
}

async fn run_cell(spec: &CellSpec) -> Result<CellResult, BoxError> {
    let endpoint = |addr: &SocketAddr| Endpoint::from_shared(format!("http://{addr}"));
    let first = spec.backends.first().ok_or("no backends given")?;
    let measured = match spec.contender {
        Contender::Tonic => {
            let ch = endpoint(first)?.connect().await?;
            drive(TestServiceClient::new(ch), spec).await?
        }
        Contender::BalanceList => {
            let eps = spec
                .backends
                .iter()
                .map(endpoint)
                .collect::<Result<Vec<_>, _>>()?;
            let ch = TonicChannel::balance_list(eps.into_iter());
            drive(TestServiceClient::new(ch), spec).await?
        }
        Contender::Haproxy => {
            let proxy = spec.proxy.ok_or("the haproxy contender needs --proxy")?;
            let ch = endpoint(&proxy)?.connect().await?;
            drive(TestServiceClient::new(ch), spec).await?
        }
        Contender::TonicTls => {
            let addr = spec
                .tls_backend
                .ok_or("the tonic-tls contender needs --tls-backend")?;
            let files =
                CertDirs::new(spec.certs.clone().ok_or("tonic-tls needs --certs")?).client();
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read_pem(&files.root_cert)?))
                .identity(Identity::from_pem(
                    read_pem(&files.cert_chain)?,
                    read_pem(&files.key)?,
                ))
                .domain_name(TLS_SERVER_NAME);
            let ch = Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(tls)?
                .connect()
                .await?;
            drive(TestServiceClient::new(ch), spec).await?
        }
        Contender::Mesh1 | Contender::Mesh3 | Contender::Mesh1Mtls | Contender::Mesh3Mtls => {
            let (host, bootstrap) = match spec.contender {
                Contender::Mesh1 => (HOST_ONE, &spec.bootstrap),
                Contender::Mesh3 => (HOST_THREE, &spec.bootstrap),
                Contender::Mesh1Mtls => (HOST_ONE_MTLS, &spec.bootstrap_mtls),
                _ => (HOST_THREE_MTLS, &spec.bootstrap_mtls),
            };
            let path = bootstrap
                .as_ref()
                .ok_or("the mesh contenders need --bootstrap (and --bootstrap-mtls for mTLS)")?;
            let ch = mesh_tonic::Channel::builder(target(host))
                .bootstrap(Bootstrap::from_file(path)?)
                .config_timeout(READY_TIMEOUT)
                .connect()
                .await?;
            drive(TestServiceClient::new(ch), spec).await?
        }
        Contender::TonicXds1 | Contender::TonicXds3 => {
            let host = if spec.contender == Contender::TonicXds1 {
                HOST_ONE
            } else {
                HOST_THREE
            };
            let path = spec
                .bootstrap
                .as_ref()
                .ok_or("the tonic-xds contenders need --bootstrap")?;
            let ch = XdsGrpc::build(path, &target(host))?;
            drive(TestServiceClient::new(ch), spec).await?
        }
    };
    Ok(measured.into_result(spec))
}

/// Calls until one call succeeds (the channel has its config and a
/// connection), or fails after [`READY_TIMEOUT`] with the last error.
async fn wait_ready<E: Echo>(client: &mut E) -> Result<(), BoxError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match client.echo(echo_request()).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("no successful call in {READY_TIMEOUT:?}: {e}").into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// What the load loop measured, before it becomes a [`CellResult`].
struct Measured {
    hist: Histogram<u64>,
    errors: u64,
    seconds: f64,
    cpu_seconds: f64,
    proxy_cpu_seconds: Option<f64>,
    peak_rss_kib: u64,
}

impl Measured {
    fn into_result(self, spec: &CellSpec) -> CellResult {
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        let requests = self.hist.len();
        let per_10k = |cpu: f64| {
            if requests == 0 {
                f64::NAN
            } else {
                cpu * 10_000.0 / requests as f64
            }
        };
        CellResult {
            contender: spec.contender.name().to_owned(),
            concurrency: spec.concurrency,
            requests,
            errors: self.errors,
            seconds: self.seconds,
            rps: requests as f64 / self.seconds,
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            cpu_s_per_10k: per_10k(self.cpu_seconds),
            peak_rss_kib: self.peak_rss_kib,
            proxy_cpu_s_per_10k: self.proxy_cpu_seconds.map(per_10k),
        }
    }
}

/// The closed loop: `concurrency` tasks, each calling back to back. Calls
/// started before the warm-up ends are not recorded; calls started after
/// the window closes are not made.
async fn drive<E: Echo>(mut client: E, spec: &CellSpec) -> Result<Measured, BoxError> {
    wait_ready(&mut client).await?;
    let proxy_cpu = || spec.proxy_pid.map(procstat::cpu_seconds_of).transpose();
    let start = tokio::time::Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let req = echo_request();
    let mut tasks = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency {
        let mut client = client.clone();
        let req = req.clone();
        let (measure_from, end) = (measure_from.into_std(), end.into_std());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static histogram bounds are valid");
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let result = client.echo(req.clone()).await;
                if t0 >= measure_from {
                    match result {
                        Ok(()) => hist.saturating_record(t0.elapsed().as_nanos() as u64),
                        Err(_) => errors += 1,
                    }
                }
            }
            (hist, errors)
        }));
    }
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = procstat::cpu_seconds()?;
    let proxy0 = proxy_cpu()?;
    let t0 = Instant::now();
    tokio::time::sleep_until(end).await;
    let cpu1 = procstat::cpu_seconds()?;
    let proxy1 = proxy_cpu()?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    Ok(Measured {
        hist,
        errors,
        seconds,
        cpu_seconds: cpu1 - cpu0,
        proxy_cpu_seconds: proxy0.zip(proxy1).map(|(a, b)| b - a),
        peak_rss_kib: procstat::peak_rss_kib()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::testing::test_service::TestServiceBackend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_cell_against_a_real_backend_counts_calls() {
        let backend = TestServiceBackend::new("b0").serve().await.unwrap();
        let spec = CellSpec {
            contender: Contender::Tonic,
            concurrency: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
            backends: vec![backend.local_addr()],
            bootstrap: None,
            bootstrap_mtls: None,
            proxy: None,
            proxy_pid: None,
            tls_backend: None,
            certs: None,
            workers: 1,
        };
        let r = run_cell(&spec).await.unwrap();
        assert!(r.requests > 0, "{r:?}");
        assert_eq!(r.errors, 0);
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us && r.p99_us <= r.p999_us);
        assert!(backend.served() >= r.requests);
        assert_eq!(r.proxy_cpu_s_per_10k, None);
    }
}
