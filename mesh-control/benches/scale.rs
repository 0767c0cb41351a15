//! mesh-control at scale: 1,000 services × 10 endpoints, 200 connected
//! clients, each on its own connection and ADS stream, each watching its
//! own service and `svc-0`.
//!
//! Measures, for a one-service change (an endpoint of `svc-0` replaced):
//! - the commit: `apply_yaml` (parse, validate, translate, publish);
//! - from the commit to every one of the 200 clients ACKing the new EDS;
//! - memory per connected client (RSS growth / 200; the clients run in this
//!   process too, so this is an upper bound for the server's share).
//!
//! Goal (issue #3): under 100 ms from commit to every client ACKing.
//! Run: `cargo bench -p mesh-control --bench scale`.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use mesh_control::server::ControlPlane;
use mesh_core::resource::ResourceType;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

const SERVICES: usize = 1000;
const ENDPOINTS: usize = 10;
const CLIENTS: usize = 200;

fn yaml(generation: u8) -> String {
    let mut s = String::with_capacity(SERVICES * 600);
    for i in 0..SERVICES {
        s.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: default}}\nspec:\n  hosts: [svc-{i}.default.svc.cluster.local]\n  ports: [{{number: 7070, name: grpc, protocol: GRPC}}]\n  resolution: STATIC\n  endpoints:\n"
        ));
        for j in 0..ENDPOINTS {
            // svc-0's first endpoint moves between generations.
            let last = if i == 0 && j == 0 {
                200 + generation
            } else {
                j as u8 + 1
            };
            s.push_str(&format!(
                "  - {{address: 10.{}.{}.{last}, labels: {{app: svc-{i}, version: v1}}}}\n",
                i / 256,
                i % 256
            ));
        }
        s.push_str("---\n");
    }
    s
}

fn names(i: usize) -> [(ResourceType, String); 4] {
    let host = format!("svc-{i}.default.svc.cluster.local");
    let cluster = format!("outbound|7070||{host}");
    [
        (ResourceType::Listener, format!("{host}:7070")),
        (ResourceType::RouteConfiguration, cluster.clone()),
        (ResourceType::Cluster, cluster.clone()),
        (ResourceType::ClusterLoadAssignment, cluster),
    ]
}

/// One raw ADS client on its own connection: subscribes to svc-`own` and
/// svc-0, ACKs everything, and records the EDS version it last ACKed.
async fn run_client(addr: std::net::SocketAddr, id: usize, eds_acked: Arc<AtomicU64>) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut ads =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::unbounded_channel();
    let own = 1 + id % (SERVICES - 1);
    for (k, t) in ResourceType::ALL.iter().enumerate() {
        let mut resource_names: Vec<String> =
            [0, own].iter().map(|i| names(*i)[k].1.clone()).collect();
        resource_names.sort();
        tx.send(DiscoveryRequest {
            node: (k == 0).then(|| envoy_types::pb::envoy::config::core::v3::Node {
                id: format!("bench-{id}"),
                ..Default::default()
            }),
            resource_names,
            type_url: t.type_url().into(),
            ..Default::default()
        })
        .unwrap();
    }
    let mut stream = ads
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let mut subs: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (k, t) in ResourceType::ALL.iter().enumerate() {
        let mut n: Vec<String> = [0, own].iter().map(|i| names(*i)[k].1.clone()).collect();
        n.sort();
        subs.insert(t.type_url().into(), n);
    }
    while let Ok(Some(resp)) = stream.message().await {
        let _ = tx.send(DiscoveryRequest {
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            resource_names: subs[&resp.type_url].clone(),
            type_url: resp.type_url.clone(),
            ..Default::default()
        });
        if resp.type_url == ResourceType::ClusterLoadAssignment.type_url() {
            eds_acked.store(resp.version_info.parse().unwrap_or(0), Ordering::Release);
        }
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn wait_all(acked: &[Arc<AtomicU64>], version: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if acked.iter().all(|a| a.load(Ordering::Acquire) >= version) {
            return Some(start.elapsed());
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check
    // that the config generator yields a valid config, quickly.
    if !std::env::args().any(|a| a == "--bench") {
        mesh_control::config::Config::from_yaml_str(
            "scale.yaml",
            yaml(0)[..3000].rsplit_once("---").unwrap().0,
        )
        .expect("the generated config is valid");
        println!("scale bench: run with `cargo bench -p mesh-control --bench scale`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let cp = ControlPlane::builder()
            .config_yaml(yaml(0))
            .listen("127.0.0.1:0".parse().unwrap())
            .start()
            .await
            .expect("control plane starts");
        println!("start with {SERVICES} services x {ENDPOINTS} endpoints: {:?}", t.elapsed());
        let addr = cp.local_addr();
        let before = rss_bytes();
        let acked: Vec<Arc<AtomicU64>> = (0..CLIENTS).map(|_| Arc::new(AtomicU64::new(0))).collect();
        for (id, a) in acked.iter().enumerate() {
            tokio::spawn(run_client(addr, id, a.clone()));
        }
        let v0 = cp.snapshot().version;
        let synced = wait_all(&acked, v0, Duration::from_secs(60)).await;
        println!("{CLIENTS} clients connected and synced in {synced:?}");
        let per_client = rss_bytes().saturating_sub(before) / CLIENTS as u64;
        println!("memory per connected client (client + server side, upper bound): {} KiB", per_client / 1024);

        // The commit instant is when the new snapshot becomes visible; a
        // thread polls for it while apply_yaml runs.
        let cp = Arc::new(cp);
        let mut samples = Vec::new();
        for generation in 1..=5u8 {
            let yaml = yaml(generation);
            let old = cp.snapshot().version;
            let watcher = {
                let cp = cp.clone();
                std::thread::spawn(move || loop {
                    if cp.snapshot().version != old {
                        return Instant::now();
                    }
                    std::hint::spin_loop();
                })
            };
            let t = Instant::now();
            cp.apply_yaml(&yaml).expect("valid config");
            let apply = t.elapsed();
            let committed_at = watcher.join().unwrap();
            let v = cp.snapshot().version;
            let all_acked = wait_all(&acked, v, Duration::from_secs(30)).await.map(|_| Instant::now());
            let latency = all_acked.map(|at| at.duration_since(committed_at));
            println!("change {generation}: apply_yaml (parse+translate+publish) {apply:?}, commit -> all {CLIENTS} ACKed {latency:?}");
            if let Some(a) = latency {
                samples.push(a);
            }
        }
        let Ok(cp) = Arc::try_unwrap(cp) else {
            panic!("the control plane has no other owner");
        };
        samples.sort();
        if let Some(median) = samples.get(samples.len() / 2) {
            println!("median commit -> every client ACKed: {median:?} (goal: under 100 ms)");
        }
        cp.shutdown().await;
    });
}
